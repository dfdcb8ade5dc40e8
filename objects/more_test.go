package objects

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/objid"
)

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
	waitFor(t, "the late retry submitted", func() bool { return f.g.pendingCount() == 1 })
	b := asyncCall[int](f.rt, f.req("x", "Add"), 1)
	waitFor(t, "B submitted behind it", func() bool { return f.g.pendingCount() == 2 })
	f.g.resume()
	if got := recv(t, a); !errors.Is(got.err, fsm.ErrStaleSequence) {
		t.Fatalf("late retry = %+v, want the state machine's ErrStaleSequence", got)
	}
	if got := recv(t, b); !errors.Is(got.err, ErrInstanceReset) {
		t.Fatalf("B = %+v, want ErrInstanceReset", got)
	}
	waitFor(t, "B's command to drain", func() bool { return f.g.pendingCount() == 0 })
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

func TestContextAccessors(t *testing.T) {
	clock := time.Unix(1_700_000_000, 42)
	f := newFixture(t, Options{Now: func() time.Time { return clock }})
	type seen struct {
		ID    objid.ID `json:"id"`
		Name  string   `json:"name"`
		Class string   `json:"class"`
		Now   int64    `json:"now"`
	}
	f.fn("who", func(ctx *Context) (any, error) {
		if ctx.Storage() == nil || ctx.Err() != nil {
			return nil, errors.New("no storage or a dead context")
		}
		return seen{ctx.ID(), ctx.Name(), ctx.Class(), ctx.Now().UnixNano()}, nil
	})
	req := f.req("alice", "Do")
	req.Args = mustMarshal(t, "who")
	got, err := callReq[seen](context.Background(), f.rt, req, nil)
	want := seen{objid.FromName("T", "alice"), "alice", "T", clock.UnixNano()}
	if err != nil || got != want {
		t.Fatalf("context = %+v, %v; want %+v", got, err, want)
	}
	// Addressed by ID only: no name.
	req.Name = ""
	got, err = callReq[seen](context.Background(), f.rt, req, nil)
	if err != nil || got.Name != "" || got.ID != want.ID {
		t.Fatalf("context by ID = %+v, %v", got, err)
	}
}
