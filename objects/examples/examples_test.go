package examples

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/objid"
	"github.com/duro-db/duro/objects"
	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"
)

// syncGroup is a one-node group for these tests: Submit applies at once, in call order,
// through a real fsm.Store. (The objects package's own tests exercise pipelining.)
type syncGroup struct {
	mu    sync.Mutex
	store *fsm.Store
	index uint64
}

func (g *syncGroup) Submit(_ context.Context, _ uint64, cmd *fsm.Command) objects.Proposal {
	g.mu.Lock()
	defer g.mu.Unlock()
	data, err := fsm.EncodeCommand(cmd)
	if err != nil {
		return objects.Settled(nil, err)
	}
	g.index++
	res, _ := g.store.Apply(&raft.Log{Index: g.index, Type: raft.LogCommand, Data: data}).(*fsm.Result)
	return objects.Settled(res, nil)
}

func (g *syncGroup) ReadIndex(context.Context) error        { return nil }
func (g *syncGroup) View(fn func(tx *fsm.Tx) error) error   { return g.store.View(fn) }
func (g *syncGroup) LeaderTerm() (uint64, bool)             { return 1, true }
func (g *syncGroup) Locate(objid.ID) (objects.Group, error) { return g, nil }

// clock is a settable time source for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	rt    *objects.Runtime
	clock *clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := fsm.Open(filepath.Join(t.TempDir(), "fsm.db"), fsm.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	g := &syncGroup{store: st}
	reg := objects.NewRegistry()
	RegisterAll(reg)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	rt := objects.NewRuntime(reg, g, objects.Options{Now: c.Now})
	t.Cleanup(func() {
		rt.Close()
		_ = st.Close()
	})
	return &env{t: t, rt: rt, clock: c}
}

// call calls class/name.method with in and decodes the result into out.
func (e *env) call(class, name, method string, in, out any) error {
	e.t.Helper()
	enc := func(v any) []byte {
		var buf []byte
		if v != nil {
			var err error
			buf, err = marshal(v)
			if err != nil {
				e.t.Fatal(err)
			}
		}
		return buf
	}
	res, err := e.rt.Call(context.Background(), objects.Request{
		Class: class, ID: objid.FromName(class, name), Name: name, Method: method, Args: enc(in),
	})
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return unmarshal(res, out)
}

// marshal and unmarshal use the wire convention, as the SDK does: msgpack with struct
// fields named by their json tags.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetCustomStructTag("json")
	err := enc.Encode(v)
	return buf.Bytes(), err
}

func unmarshal(b []byte, v any) error {
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	dec.SetCustomStructTag("json")
	return dec.Decode(v)
}

func (e *env) must(class, name, method string, in, out any) {
	e.t.Helper()
	if err := e.call(class, name, method, in, out); err != nil {
		e.t.Fatalf("%s/%s.%s(%+v): %v", class, name, method, in, err)
	}
}

func TestRegisterAll(t *testing.T) {
	reg := objects.NewRegistry()
	RegisterAll(reg)
	want := []string{"Bank", "Batcher", "ChatLog", "Counter", "Lock", "RateLimiter", "Register", "Reminder", "Session", "Set"}
	if got := reg.Classes(); !slices.Equal(got, want) {
		t.Fatalf("classes = %v, want %v", got, want)
	}
}

func TestCounter(t *testing.T) {
	e := newEnv(t)
	var v int64
	e.must("Counter", "c", "Add", 5, &v)
	e.must("Counter", "c", "Add", -2, &v)
	if v != 3 {
		t.Fatalf("Add = %d, want 3", v)
	}
	e.must("Counter", "c", "Get", nil, &v)
	if v != 3 {
		t.Fatalf("Get = %d, want 3", v)
	}
	e.must("Counter", "other", "Get", nil, &v)
	if v != 0 {
		t.Fatalf("a fresh counter = %d", v)
	}
	// The CLI's JSON path.
	res, err := e.rt.Call(context.Background(), objects.Request{Class: "Counter", ID: objid.FromName("Counter", "c"),
		Method: "Add", Args: []byte("10"), JSON: true})
	if err != nil || string(res) != "13" {
		t.Fatalf("JSON Add = %s, %v", res, err)
	}
}

func TestRegister(t *testing.T) {
	e := newEnv(t)
	var v RegisterValue
	e.must("Register", "r", "Get", nil, &v)
	if v.Value != "" {
		t.Fatalf("fresh register = %q", v.Value)
	}
	e.must("Register", "r", "Put", PutArgs{"a"}, &v)
	tests := []struct {
		in   CASArgs
		want CASResult
	}{
		{CASArgs{Expect: "b", Value: "c"}, CASResult{OK: false, Current: "a"}},
		{CASArgs{Expect: "a", Value: "c"}, CASResult{OK: true, Current: "c"}},
		{CASArgs{Expect: "a", Value: "d"}, CASResult{OK: false, Current: "c"}},
	}
	for _, tt := range tests {
		var got CASResult
		e.must("Register", "r", "CompareAndSet", tt.in, &got)
		if got != tt.want {
			t.Fatalf("CAS(%+v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	e.must("Register", "r", "Get", nil, &v)
	if v.Value != "c" {
		t.Fatalf("Get = %q, want c", v.Value)
	}
}

func TestRateLimiter(t *testing.T) {
	e := newEnv(t)
	take := func(n float64) TakeResult {
		t.Helper()
		var r TakeResult
		e.must("RateLimiter", "rl", "Take", TakeArgs{N: n}, &r)
		return r
	}
	for i := 0; i < DefaultBurst; i++ {
		if r := take(1); !r.Allowed {
			t.Fatalf("take %d of the default burst refused", i)
		}
	}
	if r := take(1); r.Allowed || r.Remaining != 0 {
		t.Fatalf("take past the burst = %+v", r)
	}
	e.clock.advance(250 * time.Millisecond) // 2.5 tokens at 10/s
	if r := take(2); !r.Allowed || r.Remaining != 0.5 {
		t.Fatalf("take after refill = %+v, want allowed with 0.5 left", r)
	}
	e.clock.advance(time.Hour) // refill stops at the burst
	if r := take(0); !r.Allowed || r.Remaining != DefaultBurst-1 {
		t.Fatalf("take after an hour = %+v", r)
	}

	e.must("RateLimiter", "rl", "Configure", ConfigureArgs{Rate: 1, Burst: 2}, nil)
	if r := take(3); r.Allowed || r.Remaining != 2 {
		t.Fatalf("take more than the burst = %+v", r)
	}
	e.clock.advance(-time.Minute) // a clock stepping back refills nothing
	if r := take(2); !r.Allowed || r.Remaining != 0 {
		t.Fatalf("take = %+v", r)
	}
	var he *objects.HandlerError
	if err := e.call("RateLimiter", "rl", "Configure", ConfigureArgs{Rate: 0, Burst: 1}, nil); !errors.As(err, &he) {
		t.Fatalf("bad config = %v, want a HandlerError", err)
	}
}

func TestLock(t *testing.T) {
	e := newEnv(t)
	acquire := func(owner string, ttl int64) AcquireResult {
		t.Helper()
		var r AcquireResult
		e.must("Lock", "l", "Acquire", AcquireArgs{Owner: owner, TTLms: ttl}, &r)
		return r
	}
	release := func(owner string, token uint64) bool {
		t.Helper()
		var r ReleaseResult
		e.must("Lock", "l", "Release", ReleaseArgs{Owner: owner, Token: token}, &r)
		return r.OK
	}
	if r := acquire("a", 1000); r != (AcquireResult{OK: true, Token: 1, Holder: "a"}) {
		t.Fatalf("a acquires = %+v", r)
	}
	if r := acquire("b", 1000); r.OK || r.Holder != "a" {
		t.Fatalf("b acquires a held lock = %+v", r)
	}
	e.clock.advance(500 * time.Millisecond)
	if r := acquire("a", 1000); !r.OK || r.Token != 1 {
		t.Fatalf("a renews = %+v, want the same token", r)
	}
	e.clock.advance(1001 * time.Millisecond) // a's lease expired
	if r := acquire("b", 1000); !r.OK || r.Token != 2 {
		t.Fatalf("b acquires an expired lock = %+v, want token 2", r)
	}
	if release("a", 1) {
		t.Fatal("a released a lock it no longer holds")
	}
	if release("b", 1) {
		t.Fatal("b released with a wrong token")
	}
	if !release("b", 2) {
		t.Fatal("b could not release its lock")
	}
	if r := acquire("c", 1000); !r.OK || r.Token != 3 {
		t.Fatalf("c acquires = %+v, want token 3 (tokens only grow)", r)
	}
	var he *objects.HandlerError
	if err := e.call("Lock", "l", "Acquire", AcquireArgs{Owner: "", TTLms: 1}, nil); !errors.As(err, &he) {
		t.Fatalf("empty owner = %v", err)
	}
}

func TestChatLog(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 12; i++ { // past 9 and 10: keys must sort numerically
		var r AppendResult
		e.must("ChatLog", "room", "Append", AppendArgs{Text: "msg", Author: "ann"}, &r)
		if r.Seq != uint64(i) {
			t.Fatalf("Append = %d, want %d", r.Seq, i)
		}
		e.clock.advance(time.Second)
	}
	seqs := func(r ReadResult) []uint64 {
		var s []uint64
		for _, m := range r.Messages {
			s = append(s, m.Seq)
		}
		return s
	}
	tests := []struct {
		in   ReadArgs
		want []uint64
	}{
		{ReadArgs{}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{ReadArgs{From: 5, Limit: 3}, []uint64{5, 6, 7}},
		{ReadArgs{From: 11}, []uint64{11, 12}},
		{ReadArgs{From: 13}, nil},
	}
	for _, tt := range tests {
		var r ReadResult
		e.must("ChatLog", "room", "Read", tt.in, &r)
		if !slices.Equal(seqs(r), tt.want) {
			t.Fatalf("Read(%+v) = %v, want %v", tt.in, seqs(r), tt.want)
		}
	}
	var r ReadResult
	e.must("ChatLog", "room", "Read", ReadArgs{From: 2, Limit: 1}, &r)
	if m := r.Messages[0]; m.Author != "ann" || m.Text != "msg" || m.Time != time.Unix(1_800_000_001, 0).UnixNano() {
		t.Fatalf("message = %+v", m)
	}
	var he *objects.HandlerError
	if err := e.call("ChatLog", "room", "Read", ReadArgs{Limit: MaxReadLimit + 1}, nil); !errors.As(err, &he) {
		t.Fatalf("limit too large = %v", err)
	}
}
