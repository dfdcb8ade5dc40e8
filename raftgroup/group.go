package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/fsm"
)

// defaultApplyTimeout bounds a proposal whose context has no deadline.
const defaultApplyTimeout = 30 * time.Second

// Group is this node's replica of one Raft group: the raft instance, its state machine and
// the leadership state that decides whether it may serve.
//
// A replica serves (Commit, Submit, ReadIndex) only while it is the leader AND has committed a
// Barrier in its current term: before that, its commit index may lag entries of earlier
// terms and its state machine may not reflect everything acknowledged by a previous leader.
type Group struct {
	id    uint64
	node  *Node
	dir   string // the group's directory: state, snapshots
	raft  *raft.Raft
	state *fsm.Store
	logs  raft.LogStore
	trans raft.Transport
	peers []string // the group's other replicas
	log   *slog.Logger

	// servingTerm is the term in which this replica became a serving leader (Barrier done),
	// or 0 when it is not serving.
	servingTerm atomic.Uint64
	leaderSince atomic.Int64 // unix nanos when serving began

	// failed holds peers whose heartbeats are failing, as seen by this leader.
	failedMu sync.Mutex
	failed   map[raft.ServerID]bool

	prop proposer // Submit's queue

	readMu      sync.Mutex
	readPending []chan error
	readRunning bool

	pump chan struct{} // (1) the node's round ticker: ask raft for heartbeats now

	stop chan struct{}
	done sync.WaitGroup
}

// ID returns the group's ID.
func (g *Group) ID() uint64 { return g.id }

// State returns the group's state machine on this node, for reads.
func (g *Group) State() *fsm.Store { return g.state }

// Raft exposes the underlying raft instance for status reporting.
func (g *Group) Raft() *raft.Raft { return g.raft }

// View runs fn on a consistent snapshot of this replica's applied state. On its own it is
// not a linearizable read: call ReadIndex first.
func (g *Group) View(fn func(tx *fsm.Tx) error) error { return g.state.View(fn) }

// LeaderTerm reports whether this replica is the serving leader, and the term it serves in.
func (g *Group) LeaderTerm() (term uint64, ok bool) {
	t := g.servingTerm.Load()
	if t == 0 || g.raft.State() != raft.Leader || g.raft.CurrentTerm() != t {
		return 0, false
	}
	return t, true
}

// Leader returns the group's leader as this replica knows it ("" when unknown).
func (g *Group) Leader() (id, addr string) {
	a, i := g.raft.LeaderWithID()
	return string(i), string(a)
}

func (g *Group) notLeader() error {
	id, addr := g.Leader()
	if id == g.node.cfg.ID {
		// We are the raft leader but not serving yet (Barrier pending) or stepping down:
		// the client should retry shortly, here or wherever the leader moves.
		id, addr = "", ""
	}
	return &NotLeaderError{Group: g.id, LeaderID: id, LeaderAddr: addr}
}

// Commit replicates cmd through the group as a log entry of its own and returns once it
// has committed on a quorum and been applied to this replica's state machine. It blocks
// its caller for the whole round and shares no entry with other commands: meant for rare
// writes (the cluster record) and tests. The runtime's commands go through Submit.
//
// Errors: *NotLeaderError (nothing was appended; retry at the leader), ErrUnknownOutcome
// (the command may or may not commit; retry with the same request ID), a wrapped
// fsm.ErrBadCommand (rejected deterministically, nothing applied), ErrClosed.
func (g *Group) Commit(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	if _, ok := g.LeaderTerm(); !ok {
		return nil, g.notLeader()
	}
	if err := g.node.spaceFor(cmd); err != nil {
		return nil, err
	}
	data, err := fsm.EncodeCommand(cmd)
	if err != nil {
		return nil, err
	}
	timeout := defaultApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		if timeout = time.Until(dl); timeout <= 0 {
			return nil, ctx.Err()
		}
	}
	f := g.raft.Apply(data, timeout)
	if err := g.waitFuture(ctx, f); err != nil {
		g.node.cfg.Metrics.Proposed(g.id, false)
		return nil, g.applyError(err)
	}
	g.node.cfg.Metrics.Proposed(g.id, true)
	res := g.result(f)
	if res.Err != nil {
		return res, res.Err
	}
	return res, nil
}

// Submit hands cmd to raft if this replica still serves term, and returns without waiting
// for the commit; the Pending reports the outcome as Commit does, except that a command
// the state machine rejected returns (res, nil) with res.Err set. Commands submitted one
// after another enter the log in submission order, which is what lets a caller pipeline
// the commands of one object. Commands submitted together may share one log entry (see
// proposer); each is still applied and answered on its own. Submit never blocks and never
// refuses one command and then accepts the next for lack of room: the queue holds what
// callers have in flight (the server bounds that per connection and per object), and
// raft's own queue holds the proposer back.
func (g *Group) Submit(term uint64, cmd *fsm.Command) *Pending {
	if t, ok := g.LeaderTerm(); !ok || t != term {
		return settled(g.notLeader())
	}
	if err := g.node.spaceFor(cmd); err != nil {
		return settled(err)
	}
	data, err := fsm.EncodeCommand(cmd)
	if err != nil {
		return settled(err)
	}
	x := &Pending{term: term, data: data, done: make(chan struct{})}
	g.submit(x)
	return x
}

func (g *Group) result(f raft.ApplyFuture) *fsm.Result {
	res, ok := f.Response().(*fsm.Result)
	if !ok {
		panic(fmt.Sprintf("raftgroup: group %d: state machine returned %T (invariant: fsm.Store returns *fsm.Result)", g.id, f.Response()))
	}
	return res
}

// waitFuture waits for f, ctx, or the group's shutdown. hashicorp/raft never answers a
// future still queued when it shuts down (its futures carry no shutdown channel), so a
// plain f.Error() can block forever; the goroutine left waiting on such a future is the
// price of not hanging.
func (g *Group) waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, ctx.Err())
	case <-g.stop:
		return raft.ErrRaftShutdown
	}
}

// applyError sorts raft's errors into "definitely not appended" and "unknown".
func (g *Group) applyError(err error) error {
	switch {
	case errors.Is(err, ErrUnknownOutcome):
		return err
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrEnqueueTimeout):
		return g.notLeader()
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, ErrClosed)
	default:
		// ErrLeadershipLost, ErrAbortedByRestore, timeouts after enqueue: the entry may
		// still commit under the next leader.
		return fmt.Errorf("%w: group %d: %w", ErrUnknownOutcome, g.id, err)
	}
}

// ReadIndex returns once this replica has confirmed it is still the leader and has applied
// every entry committed before ReadIndex was called; a read of View after it is linearizable.
//
// Concurrent callers share rounds: each round reads the commit index, confirms leadership
// with one heartbeat round (confirmLeader) and waits for the state machine to catch up. A
// caller joins the next round to start after it arrived, never one already under way, since
// that round's commit index may predate the caller.
func (g *Group) ReadIndex(ctx context.Context) error {
	if _, ok := g.LeaderTerm(); !ok {
		return g.notLeader()
	}
	ch := make(chan error, 1)
	g.readMu.Lock()
	g.readPending = append(g.readPending, ch)
	if !g.readRunning {
		g.readRunning = true
		go g.readRounds()
	}
	g.readMu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *Group) readRounds() {
	for {
		g.readMu.Lock()
		batch := g.readPending
		g.readPending = nil
		if len(batch) == 0 {
			g.readRunning = false
			g.readMu.Unlock()
			return
		}
		g.readMu.Unlock()
		err := g.readRound()
		for _, ch := range batch {
			ch <- err
		}
	}
}

func (g *Group) readRound() error {
	term, ok := g.LeaderTerm()
	if !ok {
		return g.notLeader()
	}
	index := g.raft.CommitIndex()
	if !g.confirmLeader(term) {
		return g.notLeader()
	}
	// Leadership confirmed after reading index; the term must not have moved in between,
	// or index could belong to a term in which we were not yet serving.
	if t, ok := g.LeaderTerm(); !ok || t != term {
		return g.notLeader()
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.node.cfg.Timing.ElectionTimeout*5)
	defer cancel()
	return g.waitApplied(ctx, index)
}

// confirmLeader reports whether a majority of the group's replicas, this one included,
// accept this node as the group's leader in term, as shown by heartbeat rounds that
// started after the call (raft's VerifyLeader, through the node's coalesced rounds, so
// the reads of every group this node leads share them).
func (g *Group) confirmLeader(term uint64) bool {
	need := (len(g.peers) + 1) / 2 // a majority of the replicas, minus this one
	return g.node.link.Confirm(g.id, term, g.peers, need, g.stop) >= need
}

// waitApplied returns once the state machine reflects every entry up to index.
func (g *Group) waitApplied(ctx context.Context, index uint64) error {
	if err := g.state.WaitApplied(ctx, g.lastStateEntry(index)); err != nil {
		return fmt.Errorf("group %d: waiting for apply of index %d: %w", g.id, index, err)
	}
	return nil
}

// lastStateEntry returns the index of the last entry at or below index that raft hands to
// the state machine. Raft never passes no-op and barrier entries to it, so the state
// machine's applied index stops at the last command or configuration entry; waiting for
// index itself would wait forever when the newest entries are a new leader's no-op or our
// own Barrier.
func (g *Group) lastStateEntry(index uint64) uint64 {
	applied := g.state.AppliedIndex()
	if last, err := g.logs.LastIndex(); err != nil || index > last {
		// Not in this replica's log yet (a follower behind the leader): nothing tells what
		// kind of entry it is, so it counts as one the state machine must reach.
		return index
	}
	for i := index; i > applied; i-- {
		var l raft.Log
		if err := g.logs.GetLog(i, &l); err != nil {
			// Compacted into a snapshot, which this replica's state already includes.
			return applied
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i
		}
	}
	return applied
}

// CaughtUp reports whether this replica's state reflects every entry up to index.
func (g *Group) CaughtUp(index uint64) bool {
	return g.state.AppliedIndex() >= g.lastStateEntry(index)
}

// watchLeadership turns raft's leadership signals into the serving state: on gaining
// leadership it commits a Barrier, then serves; on losing it, stops at once.
func (g *Group) watchLeadership() {
	defer g.done.Done()
	for {
		select {
		case <-g.stop:
			return
		case leader := <-g.raft.LeaderCh():
			g.leaderTiming(leader)
			if !leader {
				g.servingTerm.Store(0)
				g.node.servingChanged()
				g.node.cfg.Metrics.LeaderChanged(g.id)
				g.log.Debug("lost leadership")
				continue
			}
			term := g.raft.CurrentTerm()
			if err := g.waitFuture(context.Background(), g.raft.Barrier(g.node.cfg.Timing.ElectionTimeout*5)); err != nil {
				g.log.Warn("barrier after election failed", "err", err)
				continue
			}
			if g.raft.State() != raft.Leader || g.raft.CurrentTerm() != term {
				continue
			}
			g.failedMu.Lock()
			g.failed = map[raft.ServerID]bool{}
			g.failedMu.Unlock()
			g.leaderSince.Store(time.Now().UnixNano())
			g.servingTerm.Store(term)
			g.node.servingChanged()
			g.node.cfg.Metrics.LeaderChanged(g.id)
			g.log.Debug("serving as leader", "term", term)
			g.node.onLeader(g)
		}
	}
}

// leaderTiming switches raft's HeartbeatTimeout between the leader's stretched value and
// the followers' (Timing.LeaderHeartbeatTimeout says why that is safe). Raft re-reads it on
// every timer, and shortening it resets a follower's election timer at once.
func (g *Group) leaderTiming(leader bool) {
	t := g.node.cfg.Timing
	rc := g.raft.ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = t.HeartbeatTimeout, t.ElectionTimeout
	if leader {
		// Raft requires ElectionTimeout >= HeartbeatTimeout; a leader uses it only to
		// bound a leadership transfer.
		rc.HeartbeatTimeout = t.LeaderHeartbeatTimeout
		rc.ElectionTimeout = max(t.ElectionTimeout, t.LeaderHeartbeatTimeout)
	}
	if err := g.raft.ReloadConfig(rc); err != nil {
		g.log.Warn("cannot set raft's heartbeat timeout", "leader", leader, "err", err)
	}
	if leader {
		g.node.link.SetPump(g.id, g.pump)
	} else {
		g.node.link.SetPump(g.id, nil)
	}
}

// pumpHeartbeats asks raft for heartbeats each time the node's round ticker says so,
// while this group leads (internal/link/beats.go says why). VerifyLeader is used only for that side
// effect: its answer, which the node's cached round acks may give, is not a read
// guarantee (ReadIndex confirms leadership itself), so nobody waits for it. It blocks only
// if raft's main loop stops taking requests, and returns once raft shuts down.
func (g *Group) pumpHeartbeats() {
	defer g.done.Done()
	for {
		select {
		case <-g.stop:
			return
		case <-g.pump:
			g.raft.VerifyLeader()
		}
	}
}

// watchHeartbeats records which followers this leader cannot reach, so leadership is never
// handed to a node that is down.
func (g *Group) watchHeartbeats(ch chan raft.Observation) {
	defer g.done.Done()
	for {
		select {
		case <-g.stop:
			return
		case o := <-ch:
			g.failedMu.Lock()
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				g.failed[d.PeerID] = true
			case raft.ResumedHeartbeatObservation:
				delete(g.failed, d.PeerID)
			}
			g.failedMu.Unlock()
		}
	}
}

func (g *Group) peerFailing(id string) bool {
	g.failedMu.Lock()
	defer g.failedMu.Unlock()
	return g.failed[raft.ServerID(id)]
}
