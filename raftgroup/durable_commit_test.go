package raftgroup

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/internal/testutil"
)

// logHold holds back the raft log writes of chosen nodes.
type logHold struct {
	mu   sync.Mutex
	held map[string]chan struct{}
}

func (h *logHold) opt() clusterOpt {
	return func(c *Config) {
		id := c.ID
		c.beforeLogCommit = func() {
			h.mu.Lock()
			ch := h.held[id]
			h.mu.Unlock()
			if ch != nil {
				<-ch
			}
		}
	}
}

func (h *logHold) hold(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held == nil {
		h.held = map[string]chan struct{}{}
	}
	if h.held[id] == nil {
		h.held[id] = make(chan struct{})
	}
}

func (h *logHold) release(id string) {
	h.mu.Lock()
	ch := h.held[id]
	delete(h.held, id)
	h.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// A leader's appends return before its own fsync, so raft commits an entry on the
// followers' copies alone. Until the leader's copy is durable too, nobody may observe the
// entry: the proposer gets no answer, and no follower applies it (the commit index the
// leader advertises stops at its durable index). Otherwise a crash of the leader that
// lost the entry, followed by an election the entry's holders lose, would take back a
// write that was observed.
func TestNothingObservedBeforeTheLeaderLogIsDurable(t *testing.T) {
	h := &logHold{}
	c := newCluster(t, 3, withGroups(1), h.opt())
	c.waitAllLeaders()
	const gid = 1
	l := c.leader(gid)
	leaderID := c.cfgs[l].ID
	t.Cleanup(func() { h.release(leaderID) }) // before the cluster closes
	obj := randomID()
	first := c.commit(gid, put(obj, "k", "v0")).Index
	testutil.WaitFor(t, 10*time.Second, "every replica applies the first write", func() bool {
		for _, n := range c.nodes {
			if n.Group(gid).state.AppliedIndex() < first {
				return false
			}
		}
		return true
	})

	h.hold(leaderID)
	g := c.nodes[l].Group(gid)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := g.Commit(ctx, put(obj, "k", "v1"))
		done <- err
	}()
	testutil.WaitFor(t, 10*time.Second, "raft commits the write on the followers' copies", func() bool {
		return g.raft.CommitIndex() > first
	})
	// Give the leader many commit timeouts to tell the followers the commit index.
	time.Sleep(20 * c.cfgs[0].Timing.CommitTimeout)
	for i, n := range c.nodes {
		if applied := n.Group(gid).state.AppliedIndex(); applied != first {
			t.Errorf("%s applied up to %d while the leader's copy of %d was not durable", c.cfgs[i].ID, applied, first+1)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the proposal returned (%v) before the leader's copy was durable", err)
	default:
	}

	h.release(leaderID)
	if err := <-done; err != nil {
		t.Fatalf("proposal after the leader's log was released: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, "every replica applies the second write", func() bool {
		for _, n := range c.nodes {
			if n.Group(gid).state.AppliedIndex() <= first {
				return false
			}
		}
		return true
	})
}

// Rule 2 on its own: a commit index above the durable index is clamped on a copy, and
// heartbeats, which carry none, pass untouched.
func TestClampCommit(t *testing.T) {
	leader := raft.RPCHeader{Addr: []byte("127.0.0.1:1")}
	for _, tc := range []struct {
		name         string
		args         raft.AppendEntriesRequest
		durable      uint64
		want         uint64
		sameInstance bool
	}{
		{"above durable", raft.AppendEntriesRequest{RPCHeader: leader, Term: 2, PrevLogEntry: 9, LeaderCommitIndex: 10}, 7, 7, false},
		{"at durable", raft.AppendEntriesRequest{RPCHeader: leader, Term: 2, PrevLogEntry: 9, LeaderCommitIndex: 7}, 7, 7, true},
		{"below durable", raft.AppendEntriesRequest{RPCHeader: leader, Term: 2, PrevLogEntry: 9, LeaderCommitIndex: 5}, 7, 5, true},
		{"nothing durable", raft.AppendEntriesRequest{RPCHeader: leader, Term: 2, PrevLogEntry: 1, LeaderCommitIndex: 1}, 0, 0, false},
		{"heartbeat", raft.AppendEntriesRequest{RPCHeader: leader, Term: 2}, 0, 0, true},
	} {
		args := tc.args
		got := clampCommit(&args, tc.durable)
		if got.LeaderCommitIndex != tc.want {
			t.Errorf("%s: commit index %d, want %d", tc.name, got.LeaderCommitIndex, tc.want)
		}
		if (got == &args) != tc.sameInstance {
			t.Errorf("%s: returned the request itself: %v, want %v", tc.name, got == &args, tc.sameInstance)
		}
		if args.LeaderCommitIndex != tc.args.LeaderCommitIndex {
			t.Errorf("%s: the caller's request was changed", tc.name)
		}
	}
}
