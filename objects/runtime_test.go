package objects

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/objid"
	"github.com/duro-db/duro/internal/testutil"
)

// admitted returns the number of calls the object holds (queued, in flight, following).
func admitted(rt *Runtime, id objid.ID) int {
	sh := &rt.shards[id[1]%numShards]
	sh.mu.Lock()
	in := sh.instances[id]
	sh.mu.Unlock()
	if in == nil {
		return 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.admitted
}

// 64 callers do unlocked read-modify-write on one object: the input gate and the pipeline
// must make it exact, every caller must see a distinct value, and handlers never overlap.
func TestConcurrentReadModifyWriteIsExact(t *testing.T) {
	f := newFixture(t, Options{})
	f.g.applyDelay = runtime.Gosched // let calls pile up behind in-flight commands
	const callers = 64
	each := 40
	if raceEnabled {
		each = 8
	}
	seen := make([]bool, callers*each+1)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				v, err := f.add("hot", 1)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if v < 1 || v > callers*each || seen[v] {
					t.Errorf("Add returned %d twice or out of range", v)
				}
				seen[v] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	f.checkNoOverlap()
	if v, err := f.get("hot"); err != nil || v != callers*each {
		t.Fatalf("Get = %d, %v; want %d", v, err, callers*each)
	}
	if v, _ := committed[int](t, f.g, objid.FromName("T", "hot"), "n"); v != callers*each {
		t.Fatalf("committed n = %d, want %d", v, callers*each)
	}
}

// A call runs while the previous call's command is still in flight, sees its writes, and
// neither is answered before its command is applied.
func TestPipeliningAndOutputGate(t *testing.T) {
	f := newFixture(t, Options{})
	f.g.pause()
	a := asyncCall[int](f.rt, f.req("x", "Add"), 1)
	testutil.WaitFor(t, waitLimit, "A's command submitted", func() bool { return f.g.pendingCount() == 1 })
	b := asyncCall[int](f.rt, f.req("x", "Add"), 10)
	// B ran and proposed while A's command had not committed: pipelining.
	testutil.WaitFor(t, waitLimit, "B's command submitted behind A's", func() bool { return f.g.pendingCount() == 2 })
	notAnswered(t, a, "A (command not applied)")
	notAnswered(t, b, "B (command not applied)")
	r := asyncCall[int](f.rt, f.req("x", "Get"), nil)
	testutil.WaitFor(t, waitLimit, "the read ran", func() bool { return f.handled.Load() == 3 })
	notAnswered(t, r, "a read that saw uncommitted writes")

	f.g.resume()
	if got := recv(t, a); got.err != nil || got.v != 1 {
		t.Fatalf("A = %+v, want 1", got)
	}
	if got := recv(t, b); got.err != nil || got.v != 11 {
		t.Fatalf("B = %+v, want 11 (built on A's in-flight write)", got)
	}
	if got := recv(t, r); got.err != nil || got.v != 11 {
		t.Fatalf("read = %+v, want 11", got)
	}
	f.checkNoOverlap()
}

// A read-only call is answered only after ReadIndex confirms leadership.
func TestReadWaitsForReadIndex(t *testing.T) {
	f := newFixture(t, Options{})
	if _, err := f.add("x", 3); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	f.g.mu.Lock()
	f.g.readGate = gate
	f.g.mu.Unlock()
	r := asyncCall[int](f.rt, f.req("x", "Get"), nil)
	testutil.WaitFor(t, waitLimit, "the read ran", func() bool { return f.handled.Load() == 2 })
	notAnswered(t, r, "a read before ReadIndex")
	close(gate)
	if got := recv(t, r); got.err != nil || got.v != 3 {
		t.Fatalf("read = %+v, want 3", got)
	}

	// A ReadIndex failure (this node was deposed meanwhile) reaches the caller unchanged.
	gate = make(chan struct{})
	f.g.mu.Lock()
	f.g.readGate = gate
	f.g.mu.Unlock()
	r = asyncCall[int](f.rt, f.req("x", "Get"), nil)
	testutil.WaitFor(t, waitLimit, "the read ran", func() bool { return f.handled.Load() == 3 })
	f.g.depose()
	close(gate)
	var nl *notLeaderError
	if got := recv(t, r); !errors.As(got.err, &nl) || nl.hint != "node-2" {
		t.Fatalf("read on a deposed leader = %+v, want the notLeaderError", got)
	}
}

func TestExactlyOnce(t *testing.T) {
	f := newFixture(t, Options{})
	id := objid.FromName("T", "x")

	// A retry after success returns the stored result without running the handler.
	req := withClient(f.req("x", "Add"), 1, 1)
	if v, err := callReq[int](context.Background(), f.rt, req, 5); err != nil || v != 5 {
		t.Fatalf("first = %d, %v", v, err)
	}
	h := f.handled.Load()
	if v, err := callReq[int](context.Background(), f.rt, req, 5); err != nil || v != 5 {
		t.Fatalf("retry = %d, %v; want the first result 5", v, err)
	}
	if f.handled.Load() != h {
		t.Fatal("the retry of an applied call ran the handler again")
	}

	// A retry while the first attempt is in flight waits for it.
	f.g.pause()
	req = withClient(f.req("x", "Add"), 2, 1)
	a1 := asyncCall[int](f.rt, req, 1)
	testutil.WaitFor(t, waitLimit, "attempt 1 submitted", func() bool { return f.g.pendingCount() == 1 })
	a2 := asyncCall[int](f.rt, req, 1)
	testutil.WaitFor(t, waitLimit, "attempt 2 admitted", func() bool { return admitted(f.rt, id) == 2 })
	f.g.resume()
	r1, r2 := recv(t, a1), recv(t, a2)
	if r1.err != nil || r2.err != nil || r1.v != 6 || r2.v != 6 {
		t.Fatalf("attempts = %+v, %+v; want 6 and 6", r1, r2)
	}

	// Unknown outcome: applied, but the caller heard a leadership loss. The retry on the
	// new leader gets the first result; the increment happened once.
	req = withClient(f.req("x", "Add"), 3, 1)
	f.g.mu.Lock()
	f.g.failAfterApply = true
	f.g.mu.Unlock()
	var nl *notLeaderError
	if _, err := callReq[int](context.Background(), f.rt, req, 1); !errors.As(err, &nl) {
		t.Fatalf("call = %v, want the unknown-outcome notLeaderError", err)
	}
	f.g.elect()
	h = f.handled.Load()
	if v, err := callReq[int](context.Background(), f.rt, req, 1); err != nil || v != 7 {
		t.Fatalf("retry = %d, %v; want the first result 7", v, err)
	}
	if f.handled.Load() != h {
		t.Fatal("the retry ran the handler again")
	}

	// Calls failed by a reset were not applied: their retries run and apply once.
	f.g.pause()
	ra := withClient(f.req("x", "Add"), 4, 1)
	rb := withClient(f.req("x", "Add"), 5, 1)
	a := asyncCall[int](f.rt, ra, 1)
	testutil.WaitFor(t, waitLimit, "A submitted", func() bool { return f.g.pendingCount() == 1 })
	b := asyncCall[int](f.rt, rb, 1)
	testutil.WaitFor(t, waitLimit, "B submitted", func() bool { return f.g.pendingCount() == 2 })
	f.g.failPending(errBoom)
	if got := recv(t, a); !errors.Is(got.err, errBoom) {
		t.Fatalf("A = %+v", got)
	}
	if got := recv(t, b); !errors.Is(got.err, ErrInstanceReset) {
		t.Fatalf("B = %+v", got)
	}
	f.g.resume()
	if v, err := callReq[int](context.Background(), f.rt, ra, 1); err != nil || v != 8 {
		t.Fatalf("retry A = %d, %v; want 8", v, err)
	}
	if v, err := callReq[int](context.Background(), f.rt, rb, 1); err != nil || v != 9 {
		t.Fatalf("retry B = %d, %v; want 9", v, err)
	}
	if v, _ := committed[int](t, f.g, id, "n"); v != 9 {
		t.Fatalf("committed n = %d, want 9: some call applied twice or not at all", v)
	}
	f.checkNoOverlap()
}

func TestReadOnlyCallsAreNotStored(t *testing.T) {
	f := newFixture(t, Options{})
	req := withClient(f.req("x", "Get"), 1, 1)
	for i := 0; i < 2; i++ {
		if _, err := callReq[int](context.Background(), f.rt, req, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.handled.Load(); n != 2 {
		t.Fatalf("handler ran %d times, want 2 (read-only calls are re-run)", n)
	}
	var found bool
	_ = f.g.View(func(tx *fsm.Tx) error {
		_, found = tx.Dedup(req.Client[:], 1)
		return nil
	})
	if found {
		t.Fatal("a read-only call stored a dedup entry")
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t, Options{})
	good := f.req("x", "Add")
	args := func(v any) []byte {
		b, err := marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	other := objid.FromName("Other", "x")
	tests := []struct {
		name string
		req  func(q Request) Request
		want error
	}{
		{"unknown class", func(q Request) Request { q.Class = "Nope"; return q }, ErrNoSuchClass},
		{"unknown method", func(q Request) Request { q.Method = "Nope"; return q }, ErrNoSuchMethod},
		{"zero ID", func(q Request) Request { q.ID = objid.ID{}; q.Name = ""; return q }, ErrInvalidID},
		{"another class's ID", func(q Request) Request { q.ID = other; q.Name = ""; return q }, ErrWrongClass},
		{"name does not match ID", func(q Request) Request { q.Name = "y"; return q }, ErrInvalidID},
		{"string for int", func(q Request) Request { q.Args = args("five"); return q }, ErrBadArgument},
		{"trailing bytes", func(q Request) Request { q.Args = append(args(5), 1); return q }, ErrBadArgument},
		{"garbage", func(q Request) Request { q.Args = []byte{0xc1}; return q }, ErrBadArgument},
		{"bad JSON", func(q Request) Request { q.Args, q.JSON = []byte(`{`), true; return q }, ErrBadArgument},
		{"JSON string for int", func(q Request) Request { q.Args, q.JSON = []byte(`"5"`), true; return q }, ErrBadArgument},
		{"oversized args", func(q Request) Request { q.Args = make([]byte, MaxArgsSize+1); return q }, ErrArgumentsTooLarge},
		{"seq without client", func(q Request) Request { q.Seq = 1; return q }, ErrBadRequest},
		{"client without seq", func(q Request) Request { q.Client[0] = 1; return q }, ErrBadRequest},
		{"ack beyond seq", func(q Request) Request { q.Client[0], q.Seq, q.Ack = 1, 1, 2; return q }, ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.rt.Call(context.Background(), tt.req(good))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if n := f.handled.Load(); n != 0 {
		t.Fatalf("a handler ran %d times on bad input", n)
	}
	// Oversized arguments also match the general ErrBadArgument.
	q := good
	q.Args = make([]byte, MaxArgsSize+1)
	if _, err := f.rt.Call(context.Background(), q); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("oversized args: %v does not match ErrBadArgument", err)
	}
}

func TestStrictArguments(t *testing.T) {
	type in struct {
		Name string `json:"name"`
		N    int    `json:"n,omitempty"`
	}
	reg := NewRegistry()
	RegisterIn(reg, "S", func() *struct{} { return new(struct{}) },
		Method("Echo", func(_ *struct{}, _ *Context, v in) (in, error) { return v, nil }))
	rt, _ := newTestRuntime(t, reg, Options{})
	req := Request{Class: "S", ID: objid.FromName("S", "s"), Method: "Echo"}

	// msgpack with the json tag names.
	got, err := callReq[in](context.Background(), rt, req, map[string]any{"name": "a", "n": 2})
	if err != nil || got != (in{"a", 2}) {
		t.Fatalf("Echo = %+v, %v", got, err)
	}
	// An unknown field is a caller's bug.
	if _, err := callReq[in](context.Background(), rt, req, map[string]any{"nme": "a"}); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("unknown field: %v, want ErrBadArgument", err)
	}
	// JSON in, JSON out.
	req.JSON = true
	req.Args = []byte(`{"name":"b","n":3}`)
	res, err := rt.Call(context.Background(), req)
	if err != nil || string(res) != `{"name":"b","n":3}` {
		t.Fatalf("JSON Echo = %s, %v", res, err)
	}
	req.Args = []byte(`{"name":"b","x":1}`)
	if _, err := rt.Call(context.Background(), req); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("JSON unknown field: %v, want ErrBadArgument", err)
	}
	// No arguments at all: the zero value.
	req.Args = nil
	if res, err := rt.Call(context.Background(), req); err != nil || string(res) != `{"name":""}` {
		t.Fatalf("Echo() = %s, %v", res, err)
	}
}

func TestHandlerPanic(t *testing.T) {
	f := newFixture(t, Options{})
	id := objid.FromName("T", "x")
	if _, err := f.add("x", 1); err != nil {
		t.Fatal(err)
	}
	f.fn("panic", func(ctx *Context) (any, error) {
		if err := ctx.Storage().Put("n", 1000); err != nil {
			return nil, err
		}
		panic("boom")
	})
	_, err := f.do("x", "panic")
	var he *HandlerError
	if !errors.As(err, &he) || !he.Panicked || !strings.Contains(he.Message, "panic: boom") {
		t.Fatalf("err = %v, want a HandlerError saying it panicked", err)
	}
	if v, _ := committed[int](t, f.g, id, "n"); v != 1 {
		t.Fatalf("committed n = %d, want 1: the panicking call's write leaked", v)
	}
	if v, err := f.add("x", 1); err != nil || v != 2 {
		t.Fatalf("Add after panic = %d, %v; want 2", v, err)
	}
	if n := f.inits.Load(); n != 2 {
		t.Fatalf("Init ran %d times, want 2 (the panic reset the instance)", n)
	}
	if s := f.rt.Stats(); s.Panics != 1 {
		t.Fatalf("Stats.Panics = %d", s.Panics)
	}
}

func TestHandlerErrorDiscardsWrites(t *testing.T) {
	f := newFixture(t, Options{})
	id := objid.FromName("T", "x")
	errInsufficient := errors.New("insufficient funds")
	f.fn("fail", func(ctx *Context) (any, error) {
		if err := ctx.Storage().Put("n", 1000); err != nil {
			return nil, err
		}
		return nil, errInsufficient
	})
	_, err := f.do("x", "fail")
	var he *HandlerError
	if !errors.As(err, &he) || he.Panicked || he.Message != "insufficient funds" || !errors.Is(err, errInsufficient) {
		t.Fatalf("err = %v, want HandlerError wrapping the handler's error", err)
	}
	if _, found := committed[int](t, f.g, id, "n"); found {
		t.Fatal("a failed call's write was committed")
	}
	if n := f.inits.Load(); n != 1 {
		t.Fatalf("Init ran %d times, want 1 (an error does not reset)", n)
	}
}

func TestInitErrors(t *testing.T) {
	reg := NewRegistry()
	var fail, panics sync.Map
	RegisterIn(reg, "I", func() *initObj { return &initObj{fail: &fail, panics: &panics} },
		Method("Get", func(o *initObj, ctx *Context, _ struct{}) (int, error) { return o.inits, nil }))
	rt, _ := newTestRuntime(t, reg, Options{})
	req := Request{Class: "I", ID: objid.FromName("I", "x"), Method: "Get"}

	fail.Store("on", true)
	_, err := rt.Call(context.Background(), req)
	var he *HandlerError
	if !errors.As(err, &he) || !strings.HasPrefix(he.Message, "init: ") {
		t.Fatalf("err = %v, want a HandlerError from Init", err)
	}
	fail.Delete("on")
	panics.Store("on", true)
	if _, err := rt.Call(context.Background(), req); !errors.As(err, &he) || !he.Panicked {
		t.Fatalf("err = %v, want a HandlerError for Init's panic", err)
	}
	panics.Delete("on")
	if v, err := callReq[int](context.Background(), rt, req, nil); err != nil || v != 1 {
		t.Fatalf("Get after Init recovered = %d, %v", v, err)
	}
}

type initObj struct {
	fail, panics *sync.Map
	inits        int
}

func (o *initObj) Init(ctx *Context) error {
	if _, ok := o.fail.Load("on"); ok {
		return errors.New("no")
	}
	if _, ok := o.panics.Load("on"); ok {
		panic("init panic")
	}
	o.inits++
	return nil
}

// Init's writes are their own command, submitted before the first call's.
func TestInitWritesCommitFirst(t *testing.T) {
	f := newFixture(t, Options{})
	f.initWrite.Store(true)
	f.g.pause()
	a := asyncCall[int](f.rt, f.req("x", "Add"), 1)
	testutil.WaitFor(t, waitLimit, "Init's and Add's commands submitted", func() bool { return f.g.pendingCount() == 2 })
	f.g.mu.Lock()
	first, second := f.g.submitted[0], f.g.submitted[1]
	f.g.mu.Unlock()
	if string(first.Ops[0].Key) != "inits" || string(second.Ops[0].Key) != "n" {
		t.Fatalf("commands out of order: %q then %q", first.Ops[0].Key, second.Ops[0].Key)
	}
	f.g.resume()
	if got := recv(t, a); got.err != nil || got.v != 1 {
		t.Fatalf("Add = %+v", got)
	}
	if v, _ := committed[int](t, f.g, objid.FromName("T", "x"), "inits"); v != 1 {
		t.Fatalf("committed inits = %d, want 1", v)
	}
}

func TestOverload(t *testing.T) {
	f := newFixture(t, Options{MaxQueue: 4})
	id := objid.FromName("T", "x")
	release := make(chan struct{})
	f.fn("block", func(ctx *Context) (any, error) {
		<-release
		return nil, nil
	})
	blocked := make(chan error, 1)
	go func() {
		_, err := f.do("x", "block")
		blocked <- err
	}()
	testutil.WaitFor(t, waitLimit, "the blocking handler runs", func() bool { return f.handled.Load() == 1 })
	var queued []<-chan result[int]
	for i := 0; i < 3; i++ {
		queued = append(queued, asyncCall[int](f.rt, f.req("x", "Add"), 1))
	}
	testutil.WaitFor(t, waitLimit, "4 calls admitted", func() bool { return admitted(f.rt, id) == 4 })
	if _, err := f.add("x", 1); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("5th call = %v, want ErrOverloaded", err)
	}
	// Other objects are unaffected.
	if _, err := f.add("y", 1); err != nil {
		t.Fatalf("call to another object: %v", err)
	}
	close(release)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	for _, q := range queued {
		if got := recv(t, q); got.err != nil {
			t.Fatal(got.err)
		}
	}
	if v, err := f.get("x"); err != nil || v != 3 {
		t.Fatalf("Get = %d, %v; want 3", v, err)
	}
	if s := f.rt.Stats(); s.Overloaded != 1 {
		t.Fatalf("Stats.Overloaded = %d", s.Overloaded)
	}
}

func TestContextCancellation(t *testing.T) {
	f := newFixture(t, Options{})
	id := objid.FromName("T", "x")
	release := make(chan struct{})
	f.fn("block", func(ctx *Context) (any, error) {
		<-release
		return nil, nil
	})
	blocked := make(chan error, 1)
	go func() {
		_, err := f.do("x", "block")
		blocked <- err
	}()
	testutil.WaitFor(t, waitLimit, "the blocking handler runs", func() bool { return f.handled.Load() == 1 })

	// Cancelled while queued: the caller returns at once and the call never runs.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := callReq[int](ctx, f.rt, f.req("x", "Add"), 1)
		done <- err
	}()
	testutil.WaitFor(t, waitLimit, "the Add is queued", func() bool { return admitted(f.rt, id) == 2 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call = %v, want context.Canceled", err)
	}
	close(release)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	if v, err := f.get("x"); err != nil || v != 0 {
		t.Fatalf("Get = %d, %v; want 0: the cancelled call ran", v, err)
	}

	// Cancelled while its command is in flight: the caller returns, the command still
	// commits, and later calls see it in order.
	f.g.pause()
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		_, err := callReq[int](ctx, f.rt, f.req("x", "Add"), 1)
		done <- err
	}()
	testutil.WaitFor(t, waitLimit, "the Add is submitted", func() bool { return f.g.pendingCount() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call = %v, want context.Canceled", err)
	}
	b := asyncCall[int](f.rt, f.req("x", "Add"), 1)
	f.g.resume()
	if got := recv(t, b); got.err != nil || got.v != 2 {
		t.Fatalf("next Add = %+v, want 2", got)
	}
	testutil.WaitFor(t, waitLimit, "the object to go idle", func() bool { return admitted(f.rt, id) == 0 })
}

func TestEviction(t *testing.T) {
	t.Run("idle objects keep no goroutine", func(t *testing.T) {
		f := newFixture(t, Options{IdleTimeout: DefaultIdleTimeout})
		base := runtime.NumGoroutine()
		const n = 200
		for i := 0; i < n; i++ {
			if _, err := f.add("o"+itoa(i), 1); err != nil {
				t.Fatal(err)
			}
		}
		testutil.WaitFor(t, waitLimit, "executors to exit", func() bool { return f.rt.Stats().Executing == 0 })
		testutil.WaitFor(t, waitLimit, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= base+5 })
		if s := f.rt.Stats(); s.Instances != n {
			t.Fatalf("Instances = %d, want %d", s.Instances, n)
		}
	})
	t.Run("idle objects are evicted", func(t *testing.T) {
		f := newFixture(t, Options{IdleTimeout: 20 * 1e6})
		const n = 50
		for i := 0; i < n; i++ {
			if _, err := f.add("o"+itoa(i), 1); err != nil {
				t.Fatal(err)
			}
		}
		testutil.WaitFor(t, waitLimit, "eviction", func() bool { return f.rt.Stats().Instances == 0 })
		if s := f.rt.Stats(); s.Evictions != n {
			t.Fatalf("Evictions = %d, want %d", s.Evictions, n)
		}
		// The next call activates a fresh instance over the stored state.
		if v, err := f.add("o0", 1); err != nil || v != 2 {
			t.Fatalf("Add after eviction = %d, %v; want 2", v, err)
		}
		if got := f.inits.Load(); got != n+1 {
			t.Fatalf("Init ran %d times, want %d", got, n+1)
		}
	})
}

// Close: commands already submitted commit and their callers get success; everything
// else — a handler still running, queued calls, reads waiting for ReadIndex — gets
// ErrClosed and commits nothing.
func TestClose(t *testing.T) {
	f := newFixture(t, Options{})
	f.g.pause()
	w := asyncCall[int](f.rt, f.req("w", "Add"), 1)
	testutil.WaitFor(t, waitLimit, "W submitted", func() bool { return f.g.pendingCount() == 1 })

	release := make(chan struct{})
	f.fn("block", func(ctx *Context) (any, error) {
		<-release
		return nil, ctx.Storage().Put("b", 1)
	})
	blocked := make(chan error, 1)
	go func() {
		_, err := f.do("x", "block")
		blocked <- err
	}()
	testutil.WaitFor(t, waitLimit, "the blocking handler runs", func() bool { return f.handled.Load() == 2 })
	q := asyncCall[int](f.rt, f.req("x", "Add"), 1)
	testutil.WaitFor(t, waitLimit, "the Add is queued", func() bool { return admitted(f.rt, objid.FromName("T", "x")) == 2 })
	f.g.mu.Lock()
	f.g.readGate = make(chan struct{})
	f.g.mu.Unlock()
	read := asyncCall[int](f.rt, f.req("z", "Get"), nil)
	testutil.WaitFor(t, waitLimit, "the read ran", func() bool { return f.handled.Load() == 3 })

	closed := make(chan struct{})
	go func() {
		f.rt.Close()
		close(closed)
	}()
	testutil.WaitFor(t, waitLimit, "Close to start", func() bool {
		_, err := callReq[int](context.Background(), f.rt, f.req("y", "Local"), nil)
		return errors.Is(err, ErrClosed)
	})
	f.g.resume()
	if got := recv(t, w); got.err != nil || got.v != 1 {
		t.Fatalf("submitted call = %+v, want success", got)
	}
	close(release)
	if err := <-blocked; !errors.Is(err, ErrClosed) {
		t.Fatalf("a handler finishing after Close = %v, want ErrClosed", err)
	}
	if got := recv(t, q); !errors.Is(got.err, ErrClosed) {
		t.Fatalf("queued call = %+v, want ErrClosed", got)
	}
	if got := recv(t, read); !errors.Is(got.err, ErrClosed) {
		t.Fatalf("read waiting for ReadIndex = %+v, want ErrClosed", got)
	}
	<-closed
	if f.handled.Load() != 3 {
		t.Fatal("a queued call ran after Close")
	}
	if _, found := committed[int](t, f.g, objid.FromName("T", "x"), "b"); found {
		t.Fatal("the write of a handler that finished after Close was committed")
	}
	f.rt.Close() // idempotent
}

func TestRegisterPanicsOnProgrammingErrors(t *testing.T) {
	m := Method("M", func(*struct{}, *Context, int) (int, error) { return 0, nil })
	newFn := func() *struct{} { return new(struct{}) }
	tests := []struct {
		name string
		fn   func(r *Registry)
	}{
		{"empty class name", func(r *Registry) { RegisterIn(r, "", newFn, m) }},
		{"bad class name", func(r *Registry) { RegisterIn(r, "a b", newFn, m) }},
		{"nil constructor", func(r *Registry) { RegisterIn[struct{}](r, "C", nil, m) }},
		{"no methods", func(r *Registry) { RegisterIn(r, "C", newFn) }},
		{"duplicate class", func(r *Registry) { RegisterIn(r, "C", newFn, m); RegisterIn(r, "C", newFn, m) }},
		{"duplicate method", func(r *Registry) { RegisterIn(r, "C", newFn, m, m) }},
		{"bad method name", func(r *Registry) {
			RegisterIn(r, "C", newFn, Method("a/b", func(*struct{}, *Context, int) (int, error) { return 0, nil }))
		}},
		{"zero MethodDef", func(r *Registry) { RegisterIn(r, "C", newFn, MethodDef[struct{}]{}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("did not panic")
				}
			}()
			tt.fn(NewRegistry())
		})
	}
	r := NewRegistry()
	RegisterIn(r, "B", newFn, m, Method("A", func(*struct{}, *Context, int) (int, error) { return 0, nil }))
	RegisterIn(r, "A", newFn, m)
	if got := strings.Join(r.Classes(), ","); got != "A,B" {
		t.Fatalf("Classes = %s", got)
	}
	if got := strings.Join(r.Methods("B"), ","); got != "A,M" {
		t.Fatalf("Methods = %s", got)
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

// The caller that finds an object idle runs its executor, and meanwhile runs the calls that
// queue behind its own. If it leaves (its context ends) before its call is answered, a
// goroutine takes the executor over: the calls behind it still run, commit and are
// answered in order.
func TestCallerLeavingHandsOverTheExecutor(t *testing.T) {
	f := newFixture(t, Options{})
	id := objid.FromName("T", "x")
	f.g.pause()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := callReq[int](ctx, f.rt, f.req("x", "Add"), 1) // finds x idle: runs its executor
		done <- err
	}()
	testutil.WaitFor(t, waitLimit, "the first Add is submitted", func() bool { return f.g.pendingCount() == 1 })
	// The next two run on the first caller's goroutine, pipelined behind its command.
	b := asyncCall[int](f.rt, f.req("x", "Add"), 10)
	testutil.WaitFor(t, waitLimit, "the second Add is submitted", func() bool { return f.g.pendingCount() == 2 })
	c := asyncCall[int](f.rt, f.req("x", "Add"), 100)
	testutil.WaitFor(t, waitLimit, "the third Add is submitted", func() bool { return f.g.pendingCount() == 3 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the leaving caller got %v, want context.Canceled", err)
	}
	d := asyncCall[int](f.rt, f.req("x", "Add"), 1000) // queued for whoever runs the executor now
	notAnswered(t, b, "an Add whose command is not applied")
	f.g.resume()
	for _, want := range []struct {
		ch <-chan result[int]
		v  int
	}{{b, 11}, {c, 111}, {d, 1111}} {
		if got := recv(t, want.ch); got.err != nil || got.v != want.v {
			t.Fatalf("Add = %+v, want %d", got, want.v)
		}
	}
	testutil.WaitFor(t, waitLimit, "the object to go idle", func() bool { return admitted(f.rt, id) == 0 })
	f.checkNoOverlap()
}
