package objects

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/objid"
	"github.com/hashicorp/raft"
)

// This file is the test harness: a Group backed by a real fsm.Store, with a fake log in
// front of it that tests can pause, fail and depose. It is never shipped.

// notLeaderError is what the fake group returns when it does not lead; it carries a hint
// the way the node's error does, so tests can check it passes through unchanged.
type notLeaderError struct{ hint string }

func (e *notLeaderError) Error() string { return "not leader; try " + e.hint }

var (
	errBoom     = errors.New("injected proposal failure")
	errTermOver = errors.New("refused: the proposal's term is over")
)

// memGroup is a one-node "Raft group": Submit appends to an in-memory log that a single
// applier goroutine applies, in order, through fsm.Store.Apply. It keeps Group's contracts:
// order, prefix (a failure fails every pending command), and Wait returns after apply.
type memGroup struct {
	store *fsm.Store

	mu      sync.Mutex
	cond    *sync.Cond
	term    uint64
	leader  bool
	index   uint64
	pending []*memProposal // submitted, not applied, in log order
	paused  bool
	closed  bool
	// applyDelay, if set, is called before each apply (e.g. to yield or to block).
	applyDelay func()
	// failAfterApply makes the next apply report a leadership loss to its proposer.
	failAfterApply bool
	// reelect makes this node win the term that follows a failAfterApply.
	reelect bool
	// readGate, if set, blocks ReadIndex until it is closed.
	readGate chan struct{}
	// submitted counts every Submit, for tests that check what was proposed.
	submitted []*fsm.Command

	done chan struct{}
}

type memProposal struct {
	cmd   *fsm.Command
	data  []byte
	index uint64
	term  uint64
	done  chan struct{}
	res   *fsm.Result
	err   error
}

func (p *memProposal) Done() <-chan struct{} { return p.done }

func (p *memProposal) Wait() (*fsm.Result, error) {
	<-p.done
	return p.res, p.err
}

// openStore opens a NoSync fsm store in dir.
func openStore(dir string) (*fsm.Store, error) {
	return fsm.Open(filepath.Join(dir, "fsm.db"), fsm.Options{NoSync: true})
}

func newMemGroupIn(dir string) (*memGroup, error) {
	st, err := openStore(dir)
	if err != nil {
		return nil, err
	}
	g := &memGroup{store: st, term: 1, leader: true, done: make(chan struct{})}
	g.cond = sync.NewCond(&g.mu)
	go g.applyLoop()
	return g, nil
}

func newMemGroup(t testing.TB) *memGroup {
	t.Helper()
	g, err := newMemGroupIn(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.close)
	return g
}

func (g *memGroup) close() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	g.failPendingLocked(errors.New("group closed"))
	g.cond.Broadcast()
	g.mu.Unlock()
	<-g.done
	_ = g.store.Close()
}

func (g *memGroup) Submit(ctx context.Context, term uint64, cmd *fsm.Command) Proposal {
	p := &memProposal{cmd: cmd, done: make(chan struct{})}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.submitted = append(g.submitted, cmd)
	fail := func(err error) Proposal {
		p.err = err
		close(p.done)
		return p
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if g.closed {
		return fail(errors.New("group closed"))
	}
	if !g.leader {
		return fail(&notLeaderError{hint: "node-2"})
	}
	if term != g.term {
		return fail(fmt.Errorf("%w: term %d is over (now %d)", errTermOver, term, g.term))
	}
	data, err := fsm.EncodeCommand(cmd)
	if err != nil {
		return fail(err)
	}
	p.data, p.term = data, g.term
	g.pending = append(g.pending, p)
	g.cond.Broadcast()
	return p
}

func (g *memGroup) applyLoop() {
	defer close(g.done)
	for {
		g.mu.Lock()
		for !g.closed && (g.paused || len(g.pending) == 0) {
			g.cond.Wait()
		}
		if g.closed {
			g.mu.Unlock()
			return
		}
		delay := g.applyDelay
		failAfter, reelect := g.failAfterApply, g.reelect
		g.failAfterApply = false
		// Without hooks, apply everything pending in one batch, as raft hands a
		// BatchingFSM; with hooks, one entry at a time so they act per entry.
		n := len(g.pending)
		if delay != nil || failAfter {
			n = 1
		}
		batch := slices.Clone(g.pending[:n])
		g.pending = g.pending[n:]
		logs := make([]*raft.Log, n)
		for i, p := range batch {
			g.index++ // indexes are assigned in apply (log) order
			p.index = g.index
			logs[i] = &raft.Log{Index: p.index, Term: p.term, Type: raft.LogCommand, Data: p.data}
		}
		g.mu.Unlock()
		if delay != nil {
			delay()
		}
		resps := g.store.ApplyBatch(logs)
		for i, p := range batch {
			if failAfter {
				// Committed and applied, but the proposer hears only that it lost
				// leadership: an unknown outcome, as when a leader dies between commit
				// and reply.
				p.err = &notLeaderError{hint: "node-2"}
				g.depose()
				if reelect {
					g.elect()
				}
			} else {
				p.res, _ = resps[i].(*fsm.Result)
			}
			close(p.done)
		}
	}
}

// insert puts cmd into the log as if another proposer had, at position at among the
// pending commands (0 = next to apply; -1 = last).
func (g *memGroup) insert(t testing.TB, cmd *fsm.Command, at int) *memProposal {
	t.Helper()
	data, err := fsm.EncodeCommand(cmd)
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	p := &memProposal{cmd: cmd, data: data, term: g.term, done: make(chan struct{})}
	if at < 0 {
		at = len(g.pending)
	}
	g.pending = slices.Insert(g.pending, at, p)
	g.cond.Broadcast()
	g.mu.Unlock()
	return p
}

func (g *memGroup) pause() {
	g.mu.Lock()
	g.paused = true
	g.mu.Unlock()
}

func (g *memGroup) resume() {
	g.mu.Lock()
	g.paused = false
	g.cond.Broadcast()
	g.mu.Unlock()
}

// failPending fails every command not yet applied: they are never applied. The failure
// ends the term (this node leads the next one), as Group's Prefix rule requires.
func (g *memGroup) failPending(err error) {
	g.mu.Lock()
	g.failPendingLocked(err)
	g.term++
	g.mu.Unlock()
}

func (g *memGroup) failPendingLocked(err error) {
	for _, p := range g.pending {
		p.err = err
		close(p.done)
	}
	g.pending = nil
}

// depose ends this node's leadership: pending commands are lost (a new leader never had
// them) and the term moves on.
func (g *memGroup) depose() {
	g.mu.Lock()
	g.deposeLocked()
	g.mu.Unlock()
}

func (g *memGroup) deposeLocked() {
	g.leader = false
	g.term++
	g.failPendingLocked(&notLeaderError{hint: "node-2"})
}

// elect makes this node the leader of a new term.
func (g *memGroup) elect() {
	g.mu.Lock()
	g.leader = true
	g.term++
	g.mu.Unlock()
}

func (g *memGroup) pendingCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pending)
}

func (g *memGroup) ReadIndex(ctx context.Context) error {
	g.mu.Lock()
	gate := g.readGate
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.leader {
		return &notLeaderError{hint: "node-2"}
	}
	return nil
}

func (g *memGroup) View(fn func(tx *fsm.Tx) error) error { return g.store.View(fn) }

func (g *memGroup) LeaderTerm() (uint64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.term, g.leader
}

// oneGroup routes every object to one memGroup, failing like the node when it does not lead.
type oneGroup struct{ g *memGroup }

func (l oneGroup) Locate(objid.ID) (Group, error) {
	if _, ok := l.g.LeaderTerm(); !ok {
		return nil, &notLeaderError{hint: "node-2"}
	}
	return l.g, nil
}

// newTestRuntime returns a Runtime over reg and a fresh memGroup, closed at cleanup.
func newTestRuntime(t testing.TB, reg *Registry, opts Options) (*Runtime, *memGroup) {
	t.Helper()
	g := newMemGroup(t)
	rt := NewRuntime(reg, oneGroup{g}, opts)
	t.Cleanup(rt.Close) // runs before g.close (cleanups run last-in first-out)
	return rt, g
}

// call encodes in, calls method on the object called name of class, and decodes the
// result into a new Out.
func call[Out any](ctx context.Context, rt *Runtime, class, name, method string, in any) (Out, error) {
	return callReq[Out](ctx, rt, Request{Class: class, ID: objid.FromName(class, name), Name: name, Method: method}, in)
}

func callReq[Out any](ctx context.Context, rt *Runtime, req Request, in any) (Out, error) {
	var out Out
	if in != nil {
		b, err := marshal(in)
		if err != nil {
			return out, err
		}
		req.Args = b
	}
	res, err := rt.Call(ctx, req)
	if err != nil {
		return out, err
	}
	if err := unmarshal(res, &out, false); err != nil {
		return out, fmt.Errorf("decode result: %w", err)
	}
	return out, nil
}

// committed reads key of object from the group's committed state.
func committed[V any](t testing.TB, g *memGroup, id objid.ID, key string) (V, bool) {
	t.Helper()
	var v V
	var found bool
	err := g.View(func(tx *fsm.Tx) error {
		b, ok := tx.Get(id[:], []byte(key))
		if !ok {
			return nil
		}
		found = true
		return unmarshal(b, &v, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	return v, found
}

func version(t testing.TB, g *memGroup, id objid.ID) uint64 {
	t.Helper()
	var v uint64
	if err := g.View(func(tx *fsm.Tx) error { v = tx.Version(id[:]); return nil }); err != nil {
		t.Fatal(err)
	}
	return v
}

// asyncCall runs a call in a goroutine; its outcome arrives on the returned channel.
type result[Out any] struct {
	v   Out
	err error
}

func asyncCall[Out any](rt *Runtime, req Request, in any) <-chan result[Out] {
	ch := make(chan result[Out], 1)
	go func() {
		v, err := callReq[Out](context.Background(), rt, req, in)
		ch <- result[Out]{v, err}
	}()
	return ch
}

// recv waits for an async call's outcome.
func recv[Out any](t testing.TB, ch <-chan result[Out]) result[Out] {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a call's answer")
		panic("unreachable")
	}
}

// notAnswered checks that an async call has no answer yet. Only meaningful when nothing
// can answer it meanwhile (e.g. the group is paused).
func notAnswered[Out any](t testing.TB, ch <-chan result[Out], what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s was answered early: %+v", what, r)
	default:
	}
}

// instantGroup acknowledges every command as applied without applying it: for benchmarks
// of the runtime alone. Reads see an empty store. Its versions count per group, which is
// right for one object.
type instantGroup struct {
	store   *fsm.Store
	version atomic.Uint64
}

func (g *instantGroup) Submit(_ context.Context, _ uint64, cmd *fsm.Command) Proposal {
	v := g.version.Add(1)
	return Settled(&fsm.Result{Index: v, Version: v}, nil)
}
func (g *instantGroup) ReadIndex(context.Context) error      { return nil }
func (g *instantGroup) View(fn func(tx *fsm.Tx) error) error { return g.store.View(fn) }
func (g *instantGroup) LeaderTerm() (uint64, bool)           { return 1, true }

type staticLocator struct{ g Group }

func (l staticLocator) Locate(objid.ID) (Group, error) { return l.g, nil }

// waitLimit bounds every wait for a state in this package's tests (testutil.WaitFor).
const waitLimit = 10 * time.Second
