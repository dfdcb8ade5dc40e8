package logstore

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/hashicorp/raft"
)

// Async appends. A hashicorp/raft leader calls StoreLogs and only then starts
// replicating, so a write pays the leader's fsync and then a follower's in
// series. With SetAsyncAppends, a leader's StoreLogs queues its request for
// the next group commit and returns at once, and the leader's fsync overlaps
// the round trip to the followers, as in etcd.
//
// Until its commit, an async request is held in its group's pending list,
// which serves reads: raft's replication goroutines read the entries back to
// send them. The group's view of its log is the committed log plus the
// pending requests applied over it in order; a synchronous write (any
// DeleteRange, a follower's StoreLogs) enters the view at its commit, which is
// when it returns. Because batches are prefixes of the queue, every pending
// request of a group was queued after every write of that group already
// committed, so applying the pending ones over the committed log gives the
// view exactly, and a synchronous write still queued takes effect at its
// commit in queue order, over and under async ones alike.
//
// The caller must not treat an entry as stored for good before DurableIndex
// covers it: a crash loses what is pending. raftgroup/durable_commit.go holds
// the rule that makes a leader's async appends safe, and enforces it: entries
// are applied, and commit indexes advertised, only up to DurableIndex.

// SetAsyncAppends makes StoreLogs asynchronous while leader returns true;
// nil makes every StoreLogs synchronous again. leader is called by StoreLogs,
// on raft's goroutine, once per call, and must be cheap: typically
// func() bool { return r.State() == raft.Leader }. Followers keep durable-on-
// return appends, which raft's commit rule relies on; only the leader's own
// copy may lag, and its caller must account for that through DurableIndex.
func (g *GroupStore) SetAsyncAppends(leader func() bool) {
	if leader == nil {
		g.leader.Store(nil)
		return
	}
	g.leader.Store(&leader)
}

func (g *GroupStore) appendAsync() bool {
	leader := g.leader.Load()
	return leader != nil && (*leader)()
}

// DurableIndex returns an index up to which the group's log is on disk:
// every entry with an index at most this value that the store holds is
// committed by the writer (fsynced unless Options.NoSync). With no async
// append pending it equals LastIndex; otherwise it stays below the first
// pending entry, and never above the committed log's last index. It can
// fall when raft truncates the log.
func (g *GroupStore) DurableIndex() uint64 { return g.durable.Load() }

// WaitDurable returns nil once DurableIndex is at least index, ctx.Err() if
// ctx is done first, and ErrClosed or ErrFailed once the store has closed or
// failed with DurableIndex still below index.
func (g *GroupStore) WaitDurable(ctx context.Context, index uint64) error {
	for {
		if g.durable.Load() >= index {
			return nil
		}
		changed := g.DurableChanged()
		// Again: durable may have moved before changed was taken.
		if g.durable.Load() >= index {
			return nil
		}
		if g.s.halted.Load() {
			return g.s.haltErr()
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// DurableChanged returns a channel that is closed when DurableIndex next
// changes, or when the store closes or fails; it is closed already if the
// store has. To follow DurableIndex without polling, read DurableIndex after
// taking the channel and wait on it.
func (g *GroupStore) DurableChanged() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.s.halted.Load() {
		return closedChan
	}
	if g.changed == nil {
		g.changed = make(chan struct{})
	}
	return g.changed
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// wakeLocked closes the channel of DurableChanged, if anyone took it.
func (g *GroupStore) wakeLocked() {
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}

// storeAsync queues r, adds it to the pending list, and returns without
// waiting for the commit. It consumes r.
func (g *GroupStore) storeAsync(r *request) error {
	r.lo, r.hi, r.dense = indexSpan(r.keys)
	if r.lo == 0 {
		// Not a raft index; DurableIndex could not stay below it.
		return g.s.submit(r)
	}
	r.async = true
	// mu across the enqueue keeps pending in queue order, and keeps the
	// writer, which takes mu after committing r, from looking for r in
	// pending before it is there.
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.s.enqueue(r); err != nil {
		putRequest(r)
		return err
	}
	if len(g.pending) == 0 {
		g.pendLo, g.pendHi, g.ascending = r.lo, r.hi, true
	} else {
		g.ascending = g.ascending && r.lo > g.pendHi
		g.pendLo, g.pendHi = min(g.pendLo, r.lo), max(g.pendHi, r.hi)
	}
	g.pending = append(g.pending, r)
	g.publishLocked()
	return nil
}

// indexSpan returns the smallest and largest of the 8-byte index keys, and
// whether they are consecutive and ascending.
func indexSpan(keys []byte) (lo, hi uint64, dense bool) {
	first := binary.BigEndian.Uint64(keys)
	lo, hi, dense = first, first, true
	for i := indexKeySize; i < len(keys); i += indexKeySize {
		k := binary.BigEndian.Uint64(keys[i:])
		lo, hi = min(lo, k), max(hi, k)
		dense = dense && k == first+uint64(i/indexKeySize)
	}
	return lo, hi, dense
}

// record returns the encoded entry that async request r holds for index,
// nil if none.
func (r *request) record(index uint64) []byte {
	if index < r.lo || index > r.hi {
		return nil
	}
	i := -1
	if r.dense {
		i = int(index - r.lo)
	} else {
		// The last one wins, as it does in the log bucket.
		for j := len(r.ends) - 1; j >= 0 && i < 0; j-- {
			if binary.BigEndian.Uint64(r.keys[j*indexKeySize:]) == index {
				i = j
			}
		}
		if i < 0 {
			return nil
		}
	}
	start := 0
	if i > 0 {
		start = r.ends[i-1]
	}
	return r.recs[start:r.ends[i]]
}

// pendingLog reads index from the newest pending request that holds it.
// found is false if none does.
func (g *GroupStore) pendingLog(index uint64, log *raft.Log) (found bool, err error) {
	g.mu.RLock()
	defer g.mu.RUnlock() // the writer recycles a request only after taking mu
	if len(g.pending) == 0 || index < g.pendLo || index > g.pendHi {
		return false, nil
	}
	for i := len(g.pending) - 1; i >= 0; i-- {
		if rec := g.pending[i].record(index); rec != nil {
			if err := decodeLog(rec, log); err != nil {
				return true, fmt.Errorf("logstore: group %d: pending log %d: %w", g.id, index, err)
			}
			return true, nil
		}
	}
	return false, nil
}

// committed applies a successful commit's log writes to g's index (its
// frame was written at off in seg; pos locates the records in the frame),
// publishes its new bounds, and ends pending for g's first gt.async
// requests, which were in the commit. It appends those to durable for the
// writer to recycle.
func (g *GroupStore) committed(gt *groupTx, seg *segment, off int64, pos []int, durable []*request) []*request {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range gt.copies {
		g.idx.put(c.index, loc{seg: seg, off: off + int64(c.pos), n: c.n})
	}
	for _, op := range gt.ops {
		r := op.r
		switch r.op {
		case opStoreLogs:
			start := 0
			for i, end := range r.ends {
				index := binary.BigEndian.Uint64(r.keys[i*indexKeySize:])
				g.idx.put(index, loc{seg: seg, off: off + int64(pos[op.pos+i]), n: uint32(end - start)})
				start = end
			}
		case opDeleteRange:
			g.idx.deleteRange(r.min, r.max)
		}
	}
	g.diskFirst, g.diskLast = g.idx.bounds()
	if n := gt.async; n > 0 {
		durable = append(durable, g.pending[:n]...)
		clear(g.pending[:n]) // pin nothing
		switch {
		case n < len(g.pending):
			// O(n), not O(len): appends move the rest to a new
			// array once they outgrow this one.
			g.pending = g.pending[n:]
		case cap(g.pending) > maxBatchRequests:
			g.pending = nil // a backlog is over: drop its array
		default:
			g.pending = g.pending[:0]
		}
		g.pendLo, g.pendHi = g.pendingSpan()
	}
	g.publishLocked()
	return durable
}

func (g *GroupStore) pendingSpan() (lo, hi uint64) {
	n := len(g.pending)
	switch {
	case n == 0:
		return 0, 0
	case g.ascending:
		return g.pending[0].lo, g.pending[n-1].hi
	}
	lo, hi = g.pending[0].lo, g.pending[0].hi
	for _, r := range g.pending[1:] {
		lo, hi = min(lo, r.lo), max(hi, r.hi)
	}
	return lo, hi
}

// publishLocked recomputes the view that lock-free readers load from the
// committed bounds and the pending list, and wakes DurableChanged's callers
// if DurableIndex moved.
func (g *GroupStore) publishLocked() {
	first, last, durable := g.diskFirst, g.diskLast, g.diskLast
	if len(g.pending) > 0 {
		if last == 0 { // nothing committed
			first, last = g.pendLo, g.pendHi
		} else {
			first, last = min(first, g.pendLo), max(last, g.pendHi)
		}
		// pendLo-1: the committed entries above it may be hidden by
		// pending ones. last: above it, only pending ones exist.
		durable = min(durable, g.pendLo-1)
	}
	g.first.Store(first)
	g.last.Store(last)
	g.npending.Store(int64(len(g.pending)))
	if g.durable.Swap(durable) != durable {
		g.wakeLocked()
	}
}

// halt wakes, for good, every caller waiting for an entry to become durable:
// after the store fails or its writer exits, none will.
func (s *Store) halt() {
	if s.halted.Swap(true) {
		return
	}
	s.groupsMu.Lock()
	groups := make([]*GroupStore, 0, len(s.groups))
	for _, g := range s.groups {
		groups = append(groups, g)
	}
	s.groupsMu.Unlock()
	// A group missing from the copy was created after halted was set, and
	// DurableChanged checks halted under g.mu.
	for _, g := range groups {
		g.mu.Lock()
		g.wakeLocked()
		g.mu.Unlock()
	}
}

func (s *Store) haltErr() error {
	if err := s.failure(); err != nil {
		return err
	}
	return ErrClosed
}

// asyncFailed handles a batch that failed with async requests in it: raft
// was told their entries were stored, so the store fails, even if the
// transaction merely aborted, and the node must stop (OnFailure). The
// requests stay pending: the in-memory view keeps matching what raft
// believes, and DurableIndex stays below them.
func (s *Store) asyncFailed(err error) {
	s.setFailed(err)
	s.failOnce.Do(func() {
		s.log.Error("logstore: lost log entries appended asynchronously; the node must stop",
			"path", s.path, "error", err)
		// Not on the writer: the hook may shut raft down, which waits
		// for raft's goroutines, which may be waiting for the writer.
		go s.onFailure(err)
	})
}

func panicOnFailure(err error) {
	panic(fmt.Sprintf("logstore: the raft log store failed, so no group on this node can "+
		"append or vote; stopping the node (set Options.OnFailure to stop it cleanly): %v", err))
}
