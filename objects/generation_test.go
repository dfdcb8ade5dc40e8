package objects

// Invariant 6 (doc.go): a generation ends when a command fails, is rejected, is a
// duplicate or skips the object's version, or when the term or the group changes; no
// command of it can then apply on a state its handler never saw.

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/objid"
	"github.com/duro-db/duro/internal/testutil"
)

// A failed command fails itself with the group's error, every later in-flight call with
// ErrInstanceReset, drops the instance, and leaves committed state as it was.
func TestFailedCommandResetsInstance(t *testing.T) {
	f := newFixture(t, Options{})
	if _, err := f.add("x", 10); err != nil {
		t.Fatal(err)
	}
	id := objid.FromName("T", "x")
	v0 := version(t, f.g, id)

	f.g.pause()
	a := asyncCall[int](f.rt, f.req("x", "Add"), 1)
	testutil.WaitFor(t, waitLimit, "A submitted", func() bool { return f.g.pendingCount() == 1 })
	b := asyncCall[int](f.rt, f.req("x", "Add"), 1)
	testutil.WaitFor(t, waitLimit, "B submitted", func() bool { return f.g.pendingCount() == 2 })
	r := asyncCall[int](f.rt, f.req("x", "Get"), nil)
	testutil.WaitFor(t, waitLimit, "the read ran", func() bool { return f.handled.Load() == 4 })

	f.g.failPending(errBoom)
	if got := recv(t, a); !errors.Is(got.err, errBoom) {
		t.Fatalf("A = %v, want the group's error", got.err)
	}
	for name, ch := range map[string]<-chan result[int]{"B": b, "read": r} {
		if got := recv(t, ch); !errors.Is(got.err, ErrInstanceReset) {
			t.Fatalf("%s = %+v, want ErrInstanceReset", name, got)
		}
	}
	if v, _ := committed[int](t, f.g, id, "n"); v != 10 {
		t.Fatalf("committed n = %d after failed commands, want 10", v)
	}
	if v := version(t, f.g, id); v != v0 {
		t.Fatalf("version %d, want %d", v, v0)
	}

	f.g.resume()
	if v, err := f.add("x", 1); err != nil || v != 11 {
		t.Fatalf("Add after reset = %d, %v; want 11 (from committed state)", v, err)
	}
	if n := f.inits.Load(); n != 2 {
		t.Fatalf("Init ran %d times, want 2 (the reset dropped the instance)", n)
	}
	if local, err := callReq[int](context.Background(), f.rt, f.req("x", "Local"), nil); err != nil || local != 1 {
		t.Fatalf("in-memory state after reset = %d, %v; want 1", local, err)
	}
	if s := f.rt.Stats(); s.Resets != 1 {
		t.Fatalf("Stats.Resets = %d, want 1", s.Resets)
	}
}

func TestLeadershipChanges(t *testing.T) {
	f := newFixture(t, Options{})
	if _, err := f.add("x", 1); err != nil {
		t.Fatal(err)
	}

	// Not leader: the Locator's error, with its hint, unchanged.
	f.g.depose()
	var nl *notLeaderError
	if _, err := f.add("x", 1); !errors.As(err, &nl) {
		t.Fatalf("Add on a non-leader = %v, want the notLeaderError", err)
	}

	// Leader again in a later term: the instance is rebuilt from committed state.
	f.g.elect()
	if v, err := f.add("x", 1); err != nil || v != 2 {
		t.Fatalf("Add after re-election = %d, %v; want 2", v, err)
	}
	if n := f.inits.Load(); n != 2 {
		t.Fatalf("Init ran %d times, want 2", n)
	}

	// A term change between two calls (nothing in flight) also resets.
	f.g.depose()
	f.g.elect()
	if v, err := f.add("x", 1); err != nil || v != 3 {
		t.Fatalf("Add = %d, %v; want 3", v, err)
	}
	if n := f.inits.Load(); n != 3 {
		t.Fatalf("Init ran %d times, want 3", n)
	}

	// Deposed with commands in flight: they are lost, callers hear so, state stays.
	f.g.pause()
	a := asyncCall[int](f.rt, f.req("x", "Add"), 1)
	testutil.WaitFor(t, waitLimit, "A submitted", func() bool { return f.g.pendingCount() == 1 })
	b := asyncCall[int](f.rt, f.req("x", "Add"), 1)
	testutil.WaitFor(t, waitLimit, "B submitted", func() bool { return f.g.pendingCount() == 2 })
	f.g.depose()
	if got := recv(t, a); !errors.As(got.err, &nl) {
		t.Fatalf("A = %+v, want notLeaderError", got)
	}
	if got := recv(t, b); !errors.Is(got.err, ErrInstanceReset) {
		t.Fatalf("B = %+v, want ErrInstanceReset", got)
	}
	f.g.elect()
	f.g.resume()
	if v, err := f.get("x"); err != nil || v != 3 {
		t.Fatalf("Get = %d, %v; want 3", v, err)
	}
	f.checkNoOverlap()
}

// If the log applies another attempt of the same request first, the runtime's command is
// a duplicate: the caller gets the first result and the instance resets.
func TestDuplicateInLogResets(t *testing.T) {
	f := newFixture(t, Options{})
	id := objid.FromName("T", "x")
	req := withClient(f.req("x", "Add"), 7, 1)
	f.g.pause()
	a := asyncCall[int](f.rt, req, 1)
	testutil.WaitFor(t, waitLimit, "A submitted", func() bool { return f.g.pendingCount() == 1 })
	first, _ := marshal(100)
	f.g.insert(t, &fsm.Command{
		Object: id[:], Ops: []fsm.Op{{Kind: fsm.OpPut, Key: []byte("n"), Value: first}},
		Client: req.Client[:], Seq: 1, Result: first, Time: time.Now().UnixNano(),
	}, 0)
	f.g.resume()
	if got := recv(t, a); got.err != nil || got.v != 100 {
		t.Fatalf("A = %+v, want the first attempt's result 100", got)
	}
	if v, err := f.add("x", 1); err != nil || v != 101 {
		t.Fatalf("Add after the duplicate = %d, %v; want 101", v, err)
	}
	if n := f.inits.Load(); n != 2 {
		t.Fatalf("Init ran %d times, want 2", n)
	}

	// A request that claims to be a first attempt is not looked up, and the state
	// machine still refuses to apply it twice.
	h := f.handled.Load()
	lying := req
	lying.FirstAttempt = true
	if v, err := callReq[int](context.Background(), f.rt, lying, 1); err != nil || v != 100 {
		t.Fatalf("a first attempt already applied = %d, %v; want the first result 100", v, err)
	}
	if f.handled.Load() == h {
		t.Fatal("a first attempt was answered without running: it was looked up")
	}
	if v, err := f.add("x", 1); err != nil || v != 102 {
		t.Fatalf("Add after = %d, %v; want 102: the lying attempt applied", v, err)
	}
}

// A write to the object from outside the instance shows as a version skip: the instance
// resets rather than go on with a wrong view.
func TestForeignWriteDetected(t *testing.T) {
	f := newFixture(t, Options{})
	id := objid.FromName("T", "x")
	if _, err := f.add("x", 1); err != nil {
		t.Fatal(err)
	}
	f.g.pause()
	a := asyncCall[int](f.rt, f.req("x", "Add"), 1)
	testutil.WaitFor(t, waitLimit, "A submitted", func() bool { return f.g.pendingCount() == 1 })
	v, _ := marshal(50)
	f.g.insert(t, &fsm.Command{Object: id[:], Ops: []fsm.Op{{Kind: fsm.OpPut, Key: []byte("n"), Value: v}}}, -1)
	b := asyncCall[int](f.rt, f.req("x", "Add"), 1)
	testutil.WaitFor(t, waitLimit, "B submitted", func() bool { return f.g.pendingCount() == 3 })
	f.g.resume()
	if got := recv(t, a); got.err != nil || got.v != 2 {
		t.Fatalf("A = %+v, want 2", got)
	}
	if got := recv(t, b); !errors.Is(got.err, ErrInstanceReset) {
		t.Fatalf("B = %+v, want ErrInstanceReset (version skipped)", got)
	}
	if n := f.inits.Load(); n != 1 {
		// Init runs lazily on the next call.
		t.Fatalf("Init ran %d times before the next call, want 1", n)
	}
	if _, err := f.get("x"); err != nil {
		t.Fatal(err)
	}
	if n := f.inits.Load(); n != 2 {
		t.Fatalf("Init ran %d times, want 2", n)
	}
}

// switchLocator routes every object to whichever group it currently points at.
type switchLocator struct{ g atomic.Pointer[memGroup] }

func (l *switchLocator) Locate(objid.ID) (Group, error) { return l.g.Load(), nil }

// An object that moves to another group is rebuilt there from that group's state.
func TestObjectMovesGroup(t *testing.T) {
	f := newFixture(t, Options{})
	g2 := newMemGroup(t)
	loc := &switchLocator{}
	loc.g.Store(f.g)
	rt := NewRuntime(f.reg, loc, Options{})
	t.Cleanup(rt.Close)
	add := func() (int, error) {
		return callReq[int](context.Background(), rt, f.req("x", "Add"), 1)
	}
	if v, err := add(); err != nil || v != 1 {
		t.Fatalf("Add on group 1 = %d, %v", v, err)
	}
	loc.g.Store(g2)
	if v, err := add(); err != nil || v != 1 {
		t.Fatalf("Add on group 2 = %d, %v; want 1 (group 2's state)", v, err)
	}
	if n := f.inits.Load(); n != 2 {
		t.Fatalf("Init ran %d times, want 2", n)
	}
}

// The state machine refuses a late retry (its dedup entry pruned by a later Ack) after a
// later command was built on it. The later command carries the version it was built for,
// so the state machine refuses it too instead of applying it on a state its handler never
// saw.
func TestRejectedCommandCannotDragLaterOnes(t *testing.T) {
	f := newFixture(t, Options{})
	id := objid.FromName("T", "x")
	late := withClient(f.req("x", "Add"), 1, 5)
	late.Ack = 5
	if _, err := callReq[int](context.Background(), f.rt, late, 1); err != nil {
		t.Fatal(err)
	}
	later := withClient(f.req("x", "Add"), 1, 10)
	later.Ack = 10 // the client has seq 5's answer: its dedup entry may go
	if _, err := callReq[int](context.Background(), f.rt, later, 1); err != nil {
		t.Fatal(err)
	}
	var pruned bool
	_ = f.g.View(func(tx *fsm.Tx) error { _, found := tx.Dedup(late.Client[:], 5); pruned = !found; return nil })
	if !pruned {
		t.Skip("the state machine kept the acknowledged entry; nothing to detect")
	}

	f.g.pause()
	a := asyncCall[int](f.rt, late, 1) // a stale copy of seq 5 arrives now
	testutil.WaitFor(t, waitLimit, "the late retry submitted", func() bool { return f.g.pendingCount() == 1 })
	b := asyncCall[int](f.rt, f.req("x", "Add"), 1)
	testutil.WaitFor(t, waitLimit, "B submitted behind it", func() bool { return f.g.pendingCount() == 2 })
	f.g.resume()
	if got := recv(t, a); !errors.Is(got.err, fsm.ErrStaleSequence) {
		t.Fatalf("late retry = %+v, want the state machine's ErrStaleSequence", got)
	}
	if got := recv(t, b); !errors.Is(got.err, ErrInstanceReset) {
		t.Fatalf("B = %+v, want ErrInstanceReset", got)
	}
	testutil.WaitFor(t, waitLimit, "B's command to drain", func() bool { return f.g.pendingCount() == 0 })
	if n := f.rt.Stats().Inconsistent; n != 0 {
		t.Fatalf("%d commands applied on a state their handlers did not see", n)
	}
	if v, _ := committed[int](t, f.g, id, "n"); v != 2 {
		// B was built on the late retry's write (3): had it applied, n would be 4.
		t.Fatalf("committed n = %d, want 2", v)
	}
	if v, err := f.add("x", 1); err != nil || v != 3 {
		t.Fatalf("Add after the reset = %d, %v; want 3", v, err)
	}
}
