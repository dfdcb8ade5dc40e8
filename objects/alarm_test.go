package objects

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/objid"
	"github.com/duro-db/duro/internal/testutil"
)

// alarmLocator is oneGroup that also tells the runtime which groups it leads, so the
// runtime fires alarms.
type alarmLocator struct{ oneGroup }

func (l alarmLocator) ServingGroups() []Group {
	if _, ok := l.g.LeaderTerm(); ok {
		return []Group{l.g}
	}
	return nil
}

// firing is one invocation of the test class's Alarm handler.
type firing struct {
	id   objid.ID
	info AlarmInfo
	now  time.Time // Context.Now: the firing's log time
}

// alarmFixture is a Runtime firing the alarms of class "A", whose handler behaves as the
// object's stored "mode" says and records every invocation.
type alarmFixture struct {
	t   *testing.T
	rt  *Runtime
	g   *memGroup
	reg *Registry

	mu    sync.Mutex
	fired []firing

	running  sync.Map // objid.ID → *atomic.Int32: handlers of the object running now
	overlaps atomic.Int32
}

// aObj is an instance of "A"; enter and exit bracket every handler and detect two of the
// object's handlers running at once (the input gate).
type aObj struct {
	f       *alarmFixture
	running *atomic.Int32
}

func (o *aObj) enter(ctx *Context) {
	if o.running == nil {
		r, _ := o.f.running.LoadOrStore(ctx.ID(), new(atomic.Int32))
		o.running = r.(*atomic.Int32)
	}
	if o.running.Add(1) != 1 {
		o.f.overlaps.Add(1)
	}
}
func (o *aObj) exit() { o.running.Add(-1) }

// Alarm modes (stored under "mode"):
//
//	""       succeed, counting firings in "fired"
//	"fail:N" fail while RetryCount < N (N = 99: always)
//	"panic"  panic on the first attempt, then succeed
//	"rearm:N" set the alarm again 20ms later until "fired" reaches N
//	"wipe"   DeleteAll
func (o *aObj) Alarm(ctx *Context, info AlarmInfo) error {
	o.enter(ctx)
	defer o.exit()
	o.f.mu.Lock()
	o.f.fired = append(o.f.fired, firing{id: ctx.ID(), info: info, now: ctx.Now()})
	o.f.mu.Unlock()
	st := ctx.Storage()
	if _, ok, _ := st.GetAlarm(); ok {
		return errors.New("GetAlarm reports the firing alarm")
	}
	mode, _, err := GetAs[string](st, "mode")
	if err != nil {
		return err
	}
	n, _, err := GetAs[int](st, "fired")
	if err != nil {
		return err
	}
	if err := st.Put("fired", n+1); err != nil {
		return err
	}
	var limit int
	switch {
	case mode == "":
	case mode == "panic":
		if !info.IsRetry {
			panic("alarm handler panics")
		}
	case mode == "wipe":
		return st.DeleteAll()
	case sscan(mode, "fail:%d", &limit):
		if info.RetryCount < limit {
			return fmt.Errorf("failing attempt %d", info.RetryCount)
		}
	case sscan(mode, "rearm:%d", &limit):
		if n+1 < limit {
			return st.SetAlarm(ctx.Now().Add(20 * time.Millisecond))
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	return nil
}

func sscan(s, format string, v *int) bool {
	_, err := fmt.Sscanf(s, format, v)
	return err == nil
}

// alarmState is what a method of "A" reports.
type alarmState struct {
	At    int64    `json:"at"` // 0: no alarm
	Fired int      `json:"fired"`
	Keys  []string `json:"keys"`
}

func newAlarmFixture(t *testing.T, opts Options) *alarmFixture {
	t.Helper()
	if opts.AlarmRetryDelay == 0 {
		opts.AlarmRetryDelay = 20 * time.Millisecond
	}
	if opts.AlarmPoll == 0 {
		opts.AlarmPoll = 5 * time.Millisecond
	}
	f := &alarmFixture{t: t, reg: NewRegistry()}
	RegisterIn(f.reg, "A", func() *aObj { return &aObj{f: f} },
		// Set sets the mode and the alarm, ms milliseconds from now.
		Method("Set", func(o *aObj, ctx *Context, in struct {
			Ms   int    `json:"ms"`
			Mode string `json:"mode"`
		}) (int64, error) {
			o.enter(ctx)
			defer o.exit()
			at := ctx.Now().Add(time.Duration(in.Ms) * time.Millisecond)
			if err := ctx.Storage().Put("mode", in.Mode); err != nil {
				return 0, err
			}
			return at.UnixNano(), ctx.Storage().SetAlarm(at)
		}),
		Method("Delete", func(o *aObj, ctx *Context, _ struct{}) (bool, error) {
			o.enter(ctx)
			defer o.exit()
			return true, ctx.Storage().DeleteAlarm()
		}),
		Method("Wipe", func(o *aObj, ctx *Context, _ struct{}) (bool, error) {
			o.enter(ctx)
			defer o.exit()
			return true, ctx.Storage().DeleteAll()
		}),
		Method("State", func(o *aObj, ctx *Context, _ struct{}) (alarmState, error) {
			o.enter(ctx)
			defer o.exit()
			var s alarmState
			at, ok, err := ctx.Storage().GetAlarm()
			if err != nil {
				return s, err
			}
			if ok {
				s.At = at.UnixNano()
			}
			if s.Fired, _, err = GetAs[int](ctx.Storage(), "fired"); err != nil {
				return s, err
			}
			es, err := ctx.Storage().List(ListOptions{})
			for _, e := range es {
				s.Keys = append(s.Keys, e.Key)
			}
			return s, err
		}),
		// Touch is a call that writes, for the overlap test.
		Method("Touch", func(o *aObj, ctx *Context, _ struct{}) (int, error) {
			o.enter(ctx)
			defer o.exit()
			n, _, err := GetAs[int](ctx.Storage(), "touched")
			if err != nil {
				return 0, err
			}
			return n + 1, ctx.Storage().Put("touched", n+1)
		}),
	)
	RegisterIn(f.reg, "N", func() *struct{} { return new(struct{}) },
		Method("Set", func(_ *struct{}, ctx *Context, ms int) (bool, error) {
			return true, ctx.Storage().SetAlarm(ctx.Now().Add(time.Duration(ms) * time.Millisecond))
		}))
	f.g = newMemGroup(t)
	f.rt = NewRuntime(f.reg, alarmLocator{oneGroup{f.g}}, opts)
	t.Cleanup(f.rt.Close)
	return f
}

func (f *alarmFixture) set(name string, ms int, mode string) time.Time {
	f.t.Helper()
	at, err := call[int64](context.Background(), f.rt, "A", name, "Set", map[string]any{"ms": ms, "mode": mode})
	if err != nil {
		f.t.Fatalf("Set %s: %v", name, err)
	}
	return time.Unix(0, at)
}

func (f *alarmFixture) do(name, method string) {
	f.t.Helper()
	if _, err := call[bool](context.Background(), f.rt, "A", name, method, nil); err != nil {
		f.t.Fatalf("%s %s: %v", method, name, err)
	}
}

func (f *alarmFixture) state(name string) alarmState {
	f.t.Helper()
	s, err := call[alarmState](context.Background(), f.rt, "A", name, "State", nil)
	if err != nil {
		f.t.Fatalf("State %s: %v", name, err)
	}
	return s
}

// firings returns the recorded firings of object name.
func (f *alarmFixture) firings(name string) []firing {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []firing
	id := objid.FromName("A", name)
	for _, x := range f.fired {
		if x.id == id {
			out = append(out, x)
		}
	}
	return out
}

// waitFired waits until object name's handler ran n times and its alarm is gone from
// the committed state (the last firing committed).
func (f *alarmFixture) waitFired(name string, n int) []firing {
	f.t.Helper()
	id := objid.FromName("A", name)
	testutil.WaitFor(f.t, waitLimit, fmt.Sprintf("%d firings of %s", n, name), func() bool {
		return len(f.firings(name)) >= n && !f.hasAlarm(id)
	})
	return f.firings(name)
}

func (f *alarmFixture) hasAlarm(id objid.ID) bool {
	var ok bool
	_ = f.g.View(func(tx *fsm.Tx) error { _, ok = tx.Alarm(id[:]); return nil })
	return ok
}

// barrier sets an alarm on a fresh object ms from now and waits for it: alarms due
// before it had their chance to fire.
func (f *alarmFixture) barrier(ms int) {
	f.t.Helper()
	name := fmt.Sprintf("barrier-%d", time.Now().UnixNano())
	f.set(name, ms, "")
	f.waitFired(name, 1)
}

// checkNotEarly checks that every firing's log time is at or after its alarm time.
func (f *alarmFixture) checkNotEarly() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range f.fired {
		if x.now.Before(x.info.Scheduled) {
			f.t.Errorf("%s fired %v before its time %v", x.id, x.info.Scheduled.Sub(x.now), x.info.Scheduled)
		}
	}
	if n := f.overlaps.Load(); n != 0 {
		f.t.Errorf("input gate broken: %d handler invocations overlapped", n)
	}
}

func TestAlarms(t *testing.T) {
	t.Parallel()
	const delay = 20 * time.Millisecond // AlarmRetryDelay
	tests := []struct {
		name string
		run  func(t *testing.T, f *alarmFixture)
	}{
		{"fires once at its time and clears", func(t *testing.T, f *alarmFixture) {
			at := f.set("a", 50, "")
			got := f.waitFired("a", 1)
			if got[0].info != (AlarmInfo{Scheduled: at}) {
				t.Errorf("info = %+v", got[0].info)
			}
			f.barrier(50)
			if s := f.state("a"); len(f.firings("a")) != 1 || s.Fired != 1 || s.At != 0 {
				t.Errorf("after firing: %d firings, state %+v", len(f.firings("a")), s)
			}
		}},
		{"a past time fires at once", func(t *testing.T, f *alarmFixture) {
			f.set("a", -1000, "")
			f.waitFired("a", 1)
		}},
		{"replacing moves it earlier", func(t *testing.T, f *alarmFixture) {
			f.set("a", 60_000, "")
			at := f.set("a", 30, "")
			if got := f.waitFired("a", 1); got[0].info.Scheduled != at {
				t.Errorf("fired for %v, want %v", got[0].info.Scheduled, at)
			}
		}},
		{"replacing moves it later", func(t *testing.T, f *alarmFixture) {
			f.set("a", 200, "")
			at := f.set("a", 400, "")
			got := f.waitFired("a", 1)
			if len(got) != 1 || got[0].info.Scheduled != at {
				t.Errorf("firings %+v, want one for %v", got, at)
			}
		}},
		{"deleting cancels it", func(t *testing.T, f *alarmFixture) {
			f.set("a", 200, "")
			f.do("a", "Delete")
			f.barrier(400)
			if n := len(f.firings("a")); n != 0 {
				t.Errorf("deleted alarm fired %d times", n)
			}
		}},
		{"DeleteAll cancels it", func(t *testing.T, f *alarmFixture) {
			f.set("a", 200, "")
			f.do("a", "Wipe")
			f.barrier(400)
			if n := len(f.firings("a")); n != 0 {
				t.Errorf("alarm fired %d times after DeleteAll", n)
			}
		}},
		{"retries with backoff and RetryCount", func(t *testing.T, f *alarmFixture) {
			f.set("a", 10, "fail:3")
			testutil.WaitFor(t, waitLimit, "a retry", func() bool { return len(f.firings("a")) >= 2 })
			if s := f.state("a"); len(s.Keys) != 1 || s.Keys[0] != "mode" || s.At == 0 {
				t.Errorf("during retries: state %+v (reserved keys must be hidden, alarm set)", s)
			}
			got := f.waitFired("a", 4)
			for i, x := range got {
				if x.info.RetryCount != i || x.info.IsRetry != (i > 0) {
					t.Errorf("firing %d: info %+v", i, x.info)
				}
				if i > 0 {
					want := delay << (i - 1)
					if gap := x.now.Sub(got[i-1].now); gap < want {
						t.Errorf("retry %d after %v, want >= %v", i, gap, want)
					}
				}
			}
			f.barrier(2 * int(delay/time.Millisecond))
			// The failed attempts wrote nothing: only the success counted.
			if s := f.state("a"); len(f.firings("a")) != 4 || s.Fired != 1 || s.At != 0 || len(s.Keys) != 2 {
				t.Errorf("after success: %d firings, state %+v", len(f.firings("a")), s)
			}
			if st := f.rt.Stats(); st.AlarmRetries != 3 {
				t.Errorf("AlarmRetries = %d, want 3", st.AlarmRetries)
			}
			var retryKey bool
			id := objid.FromName("A", "a")
			_ = f.g.View(func(tx *fsm.Tx) error { _, retryKey = tx.Get(id[:], []byte(alarmRetryKey)); return nil })
			if retryKey {
				t.Error("the retry count survived the successful firing")
			}
		}},
		{"gives up after the last retry", func(t *testing.T, f *alarmFixture) {
			f.set("a", 0, "fail:99")
			f.waitFired("a", 1+MaxAlarmRetries)
			f.barrier(int(delay/time.Millisecond) << MaxAlarmRetries)
			if n := len(f.firings("a")); n != 1+MaxAlarmRetries {
				t.Errorf("%d firings, want %d", n, 1+MaxAlarmRetries)
			}
			if st := f.rt.Stats(); st.AlarmsDropped != 1 {
				t.Errorf("AlarmsDropped = %d", st.AlarmsDropped)
			}
		}},
		{"a panic is retried", func(t *testing.T, f *alarmFixture) {
			f.set("a", 0, "panic")
			got := f.waitFired("a", 2)
			if !got[1].info.IsRetry || f.state("a").Fired != 1 {
				t.Errorf("firings %+v", got)
			}
		}},
		{"re-arming inside the handler keeps the new alarm", func(t *testing.T, f *alarmFixture) {
			f.set("a", 0, "rearm:4")
			got := f.waitFired("a", 4)
			for i := 1; i < len(got); i++ {
				if got[i].info.Scheduled.Sub(got[i-1].now) != 20*time.Millisecond || got[i].info.IsRetry {
					t.Errorf("firing %d: %+v after %v", i, got[i].info, got[i-1].now)
				}
			}
			if s := f.state("a"); s.Fired != 4 || s.At != 0 {
				t.Errorf("state %+v", s)
			}
		}},
		{"DeleteAll inside the handler", func(t *testing.T, f *alarmFixture) {
			f.set("a", 0, "wipe")
			f.waitFired("a", 1)
			if s := f.state("a"); s.At != 0 || len(s.Keys) != 0 {
				t.Errorf("state %+v", s)
			}
		}},
		{"setting a new alarm ends the retries", func(t *testing.T, f *alarmFixture) {
			f.set("a", 0, "fail:1")
			testutil.WaitFor(t, waitLimit, "first failure", func() bool { return len(f.firings("a")) >= 1 })
			at := f.set("a", 100, "")
			got := f.waitFired("a", 2)
			last := got[len(got)-1]
			if last.info.Scheduled != at || last.info.RetryCount != 0 {
				t.Errorf("last firing %+v, want a first attempt for %v", last.info, at)
			}
		}},
		{"a class without a handler drops its alarm", func(t *testing.T, f *alarmFixture) {
			if _, err := call[bool](context.Background(), f.rt, "N", "n", "Set", 0); err != nil {
				t.Fatal(err)
			}
			id := objid.FromName("N", "n")
			testutil.WaitFor(t, waitLimit, "the alarm to go", func() bool { return !f.hasAlarm(id) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newAlarmFixture(t, Options{AlarmRetryDelay: delay})
			tt.run(t, f)
			f.checkNotEarly()
		})
	}
}

func TestReservedKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	for _, op := range []func(st *Storage) error{
		func(st *Storage) error { return st.Put(alarmRetryKey, 1) },
		func(st *Storage) error { _, err := st.Get(reservedPrefix+"x", new(int)); return err },
		func(st *Storage) error { _, err := st.Delete(alarmRetryKey); return err },
		func(st *Storage) error { return st.PutMany(map[string]any{reservedPrefix: 1}) },
	} {
		f.fn("op", func(ctx *Context) (any, error) { return nil, op(ctx.Storage()) })
		if _, err := f.do("x", "op"); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("got %v, want ErrInvalidKey", err)
		}
	}
}

// TestAlarmAcrossLeaderChange: an alarm being retried and alarms due while the group has
// no leader all fire after this node leads again, with the retry count kept.
func TestAlarmAcrossLeaderChange(t *testing.T) {
	t.Parallel()
	f := newAlarmFixture(t, Options{AlarmRetryDelay: 100 * time.Millisecond})
	f.set("retrying", 0, "fail:1")
	id := objid.FromName("A", "retrying")
	testutil.WaitFor(t, waitLimit, "the first failure's retry to commit", func() bool {
		var ok bool
		_ = f.g.View(func(tx *fsm.Tx) error { _, ok = tx.Get(id[:], []byte(alarmRetryKey)); return nil })
		return ok
	})
	f.g.depose()
	// While no leader: these are due meanwhile. Set them directly in the log, as the
	// former leader's last commands.
	var want []string
	for i := range 5 {
		name := fmt.Sprintf("due-%d", i)
		id := objid.FromName("A", name)
		f.g.insert(t, &fsm.Command{Object: id[:], Time: time.Now().UnixNano(),
			Ops: []fsm.Op{{Kind: fsm.OpSetAlarm, Alarm: time.Now().Add(10 * time.Millisecond).UnixNano()}}}, -1).Wait()
		want = append(want, name)
	}
	f.g.elect()
	got := f.waitFired("retrying", 2)
	if got[1].info.RetryCount != 1 {
		t.Errorf("after the leader change: %+v, want RetryCount 1", got[1].info)
	}
	for _, name := range want {
		f.waitFired(name, 1)
	}
	f.checkNotEarly()
}

// TestAlarmMemoryBound: with room for few alarms in memory, many due alarms all fire.
func TestAlarmMemoryBound(t *testing.T) {
	t.Parallel()
	const n, room = 60, 4
	f := newAlarmFixture(t, Options{AlarmMaxLoaded: room, AlarmLookahead: 200 * time.Millisecond})
	for i := range n {
		f.set(fmt.Sprintf("o%d", i), 20+5*i, "")
	}
	maxLoaded := 0
	testutil.WaitFor(t, waitLimit, "every alarm", func() bool {
		maxLoaded = max(maxLoaded, f.rt.Stats().AlarmsLoaded)
		return f.rt.Stats().AlarmsFired >= n
	})
	for i := range n {
		f.waitFired(fmt.Sprintf("o%d", i), 1)
	}
	if maxLoaded > room {
		t.Errorf("%d alarms loaded at once, bound %d", maxLoaded, room)
	}
	f.checkNotEarly()
}

// TestAlarmAndCallsNeverOverlap: alarms re-arming themselves every 20ms while calls hammer
// the same objects; the handlers' overlap detector must stay at 0.
func TestAlarmAndCallsNeverOverlap(t *testing.T) {
	t.Parallel()
	f := newAlarmFixture(t, Options{})
	const objs = 4
	for i := range objs {
		f.set(fmt.Sprintf("o%d", i), 0, "rearm:15")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_, err := call[int](ctx, f.rt, "A", fmt.Sprintf("o%d", w%objs), "Touch", nil)
				if err != nil && ctx.Err() == nil {
					t.Errorf("Touch: %v", err)
					return
				}
			}
		}()
	}
	for i := range objs {
		f.waitFired(fmt.Sprintf("o%d", i), 15)
	}
	cancel()
	wg.Wait()
	f.checkNotEarly()
}

func TestRetryCodec(t *testing.T) {
	for n := 1; n <= MaxAlarmRetries; n++ {
		if got, err := decodeRetry(encodeRetry(n)); err != nil || got != n {
			t.Errorf("round trip of %d: %d, %v", n, got, err)
		}
	}
	for _, b := range [][]byte{nil, {0}, {MaxAlarmRetries + 1}, {1, 1}, {0xff}} {
		if _, err := decodeRetry(b); !errors.Is(err, ErrDecode) {
			t.Errorf("decodeRetry(%x) = %v, want ErrDecode", b, err)
		}
	}
	if got, err := decodeClass(encodeClass("Counter")); err != nil || got != "Counter" {
		t.Errorf("class round trip: %q, %v", got, err)
	}
}

func FuzzDecodeRetry(f *testing.F) {
	f.Add([]byte{1})
	f.Add([]byte{MaxAlarmRetries})
	f.Add([]byte{})
	f.Add([]byte{0x80, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := decodeRetry(b)
		if err == nil && (n < 1 || n > MaxAlarmRetries || string(encodeRetry(n)) != string(b)) {
			t.Fatalf("decodeRetry(%x) = %d", b, n)
		}
	})
}

func FuzzDecodeClass(f *testing.F) {
	f.Add(encodeClass("Counter"))
	f.Add([]byte{0xd9, 0xff})
	f.Add([]byte{0xc0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeClass(b)
		if err == nil {
			if got, err := decodeClass(encodeClass(s)); err != nil || got != s {
				t.Fatalf("re-encoding %q: %q, %v", s, got, err)
			}
		}
	})
}

// TestClassesOf: an ordinary ID passes exactly its own class's checksum.
func TestClassesOf(t *testing.T) {
	reg := NewRegistry()
	for _, name := range []string{"A", "B", "C"} {
		RegisterIn(reg, name, func() *struct{} { return new(struct{}) },
			Method("M", func(*struct{}, *Context, struct{}) (int, error) { return 0, nil }))
	}
	for _, name := range []string{"A", "B", "C"} {
		cs := reg.classesOf(objid.FromName(name, "x"))
		if len(cs) != 1 || cs[0].name != name {
			t.Errorf("classesOf(ID of %s) = %v", name, cs)
		}
	}
	if cs := reg.classesOf(objid.FromName("Z", "x")); len(cs) != 0 {
		t.Errorf("an ID of an unregistered class matched %d classes", len(cs))
	}
}

// Groups that scanned at different times rescan at the same instant, within half the
// lookahead of each scan.
func TestNextScanAt(t *testing.T) {
	const la = 5 * time.Second
	base := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).UnixNano() // a multiple of 2.5 s
	for _, off := range []time.Duration{0, 1, 700 * time.Millisecond, la/2 - 1} {
		now := base + int64(off)
		got := nextScanAt(now, la)
		if got != base+int64(la/2) {
			t.Errorf("scan at +%v: next at +%v, want +%v", off, time.Duration(got-base), la/2)
		}
		if got <= now || got > now+int64(la/2) {
			t.Errorf("scan at +%v: next at +%v, not within (now, now+lookahead/2]", off, time.Duration(got-base))
		}
	}
}
