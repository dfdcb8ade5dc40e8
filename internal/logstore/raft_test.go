package logstore

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/internal/testutil"
)

// listFSM records every command it applies, in order.
type listFSM struct {
	// durable, if set, is the group's store with async appends: Apply
	// first waits for the entry to be durable, as raftgroup does, because
	// a leader may count its own copy toward the commit before it is.
	durable *GroupStore

	mu   sync.Mutex
	cmds []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	if f.durable != nil {
		if err := f.durable.WaitDurable(context.Background(), l.Index); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, string(l.Data))
	return len(f.cmds)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return listSnapshot(slices.Clone(f.cmds)), nil
}

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var cmds []string
	if err := json.NewDecoder(rc).Decode(&cmds); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = cmds
	return nil
}

func (f *listFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds)
}

type listSnapshot []string

func (s listSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode([]string(s)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (listSnapshot) Release() {}

// raftCluster is nodes × groups raft.Raft instances: every node keeps the
// logs and stable state of all its groups in one Store.
type raftCluster struct {
	t      *testing.T
	dir    string
	groups []uint64
	async  bool // leaders append asynchronously
	stores []*Store
	// Indexed [node][group index].
	rafts [][]*raft.Raft
	fsms  [][]*listFSM
	trans [][]*raft.InmemTransport
	snaps [][]*raft.InmemSnapshotStore // survive restarts, as a disk would
}

func serverAddr(node int, groupID uint64) raft.ServerAddress {
	return raft.ServerAddress(fmt.Sprintf("node%d-group%d", node, groupID))
}

func newRaftCluster(t *testing.T, nodes int, groups []uint64, async bool) *raftCluster {
	c := &raftCluster{t: t, dir: t.TempDir(), groups: groups, async: async}
	for n := range nodes {
		c.stores = append(c.stores, nil)
		c.rafts = append(c.rafts, make([]*raft.Raft, len(groups)))
		c.fsms = append(c.fsms, make([]*listFSM, len(groups)))
		c.trans = append(c.trans, make([]*raft.InmemTransport, len(groups)))
		c.snaps = append(c.snaps, make([]*raft.InmemSnapshotStore, len(groups)))
		for gi := range groups {
			c.snaps[n][gi] = raft.NewInmemSnapshotStore()
		}
	}
	t.Cleanup(func() {
		for n := range c.rafts {
			c.stop(n)
		}
	})
	for n := range nodes {
		c.start(n)
	}
	return c
}

// start opens node n's store and starts its raft instances, with fresh FSMs.
func (c *raftCluster) start(n int) {
	t := c.t
	t.Helper()
	// Not openStore: the cluster's cleanup must stop raft before closing.
	s, err := Open(filepath.Join(c.dir, fmt.Sprintf("node%d", n), "raft.db"), Options{
		OnFailure: func(err error) { t.Errorf("node %d: async appends lost: %v", n, err) },
	})
	if err != nil {
		t.Fatalf("node %d: Open: %v", n, err)
	}
	c.stores[n] = s
	for gi, gid := range c.groups {
		gs := group(t, c.stores[n], gid)
		_, trans := raft.NewInmemTransport(serverAddr(n, gid))
		c.trans[n][gi] = trans
		for m := range c.trans {
			if peer := c.trans[m][gi]; m != n && peer != nil {
				trans.Connect(serverAddr(m, gid), peer)
				peer.Connect(serverAddr(n, gid), trans)
			}
		}
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(fmt.Sprintf("node%d", n))
		conf.Logger = hclog.NewNullLogger()
		conf.HeartbeatTimeout = 500 * time.Millisecond
		conf.ElectionTimeout = 500 * time.Millisecond
		conf.LeaderLeaseTimeout = 250 * time.Millisecond
		conf.CommitTimeout = 5 * time.Millisecond
		// Snapshot and compact often, so that raft deletes log prefixes
		// and a lagging node may be sent a snapshot (a gap in its log).
		conf.SnapshotInterval = 100 * time.Millisecond
		conf.SnapshotThreshold = 40
		conf.TrailingLogs = 20
		c.fsms[n][gi] = &listFSM{}
		if c.async {
			c.fsms[n][gi].durable = gs
		}
		r, err := raft.NewRaft(conf, c.fsms[n][gi], gs, gs, c.snaps[n][gi], trans)
		if err != nil {
			t.Fatalf("node %d group %d: NewRaft: %v", n, gid, err)
		}
		if c.async {
			gs.SetAsyncAppends(func() bool { return r.State() == raft.Leader })
		}
		c.rafts[n][gi] = r
	}
}

// stop shuts down node n's raft instances and closes its store.
func (c *raftCluster) stop(n int) {
	c.t.Helper()
	c.shutdownRafts(n)
	if s := c.stores[n]; s != nil {
		closeStore(c.t, s)
		c.stores[n] = nil
	}
}

func (c *raftCluster) shutdownRafts(n int) {
	t := c.t
	t.Helper()
	for gi, gid := range c.groups {
		if r := c.rafts[n][gi]; r != nil {
			if err := r.Shutdown().Error(); err != nil {
				t.Errorf("node %d group %d: Shutdown: %v", n, gid, err)
			}
			c.rafts[n][gi] = nil
			for m := range c.trans {
				if peer := c.trans[m][gi]; m != n && peer != nil {
					peer.Disconnect(serverAddr(n, gid))
				}
			}
			c.trans[n][gi] = nil
		}
	}
}

func (c *raftCluster) bootstrap() {
	c.t.Helper()
	for gi, gid := range c.groups {
		var conf raft.Configuration
		for n := range c.rafts {
			conf.Servers = append(conf.Servers, raft.Server{
				ID:      raft.ServerID(fmt.Sprintf("node%d", n)),
				Address: serverAddr(n, gid),
			})
		}
		if err := c.rafts[0][gi].BootstrapCluster(conf).Error(); err != nil {
			c.t.Fatalf("group %d: bootstrap: %v", gid, err)
		}
	}
}

func command(gid uint64, i int) string { return fmt.Sprintf("group%d-cmd%d", gid, i) }

// apply submits commands [from, to) to every group's leader and waits for
// them to commit. A command whose outcome is unknown because leadership
// moved (a slow fsync on a loaded machine can cost a leader its lease) is
// submitted again, so it may be applied twice; waitApplied allows for that.
func (c *raftCluster) apply(from, to int) {
	c.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(c.groups))
	for gi, gid := range c.groups {
		wg.Go(func() {
			var pending []string
			for i := from; i < to; i++ {
				pending = append(pending, command(gid, i))
			}
			deadline := time.Now().Add(time.Minute)
			for len(pending) > 0 {
				if time.Now().After(deadline) {
					errs <- fmt.Errorf("group %d: %d commands not committed before the deadline", gid, len(pending))
					return
				}
				leader := c.leaderNow(gi)
				if leader == nil {
					time.Sleep(10 * time.Millisecond) // no leader yet: poll
					continue
				}
				futures := make([]raft.ApplyFuture, len(pending))
				for i, cmd := range pending {
					futures[i] = leader.Apply([]byte(cmd), 10*time.Second)
				}
				var failed []string
				for i, f := range futures {
					switch err := f.Error(); err {
					case nil:
					case raft.ErrLeadershipLost, raft.ErrNotLeader, raft.ErrLeadershipTransferInProgress, raft.ErrEnqueueTimeout:
						failed = append(failed, pending[i])
					default:
						errs <- fmt.Errorf("group %d: apply %s: %w", gid, pending[i], err)
						return
					}
				}
				pending = failed
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		c.t.Fatal(err)
	}
}

func (c *raftCluster) leaderNow(gi int) *raft.Raft {
	for n := range c.rafts {
		if r := c.rafts[n][gi]; r != nil && r.State() == raft.Leader {
			return r
		}
	}
	return nil
}

// waitApplied waits until, in every group, the FSMs of all running nodes
// are identical (same commands in the same order) and hold each of the
// commands [0, n), and nothing else.
func (c *raftCluster) waitApplied(n int) {
	c.t.Helper()
	for gi, gid := range c.groups {
		want := make(map[string]bool, n)
		for i := range n {
			want[command(gid, i)] = true
		}
		var lists [][]string
		testutil.WaitFor(c.t, waitLimit, fmt.Sprintf("group %d to apply %d commands on every node", gid, n), func() bool {
			lists = lists[:0]
			for node := range c.rafts {
				if c.rafts[node][gi] != nil {
					lists = append(lists, c.fsms[node][gi].list())
				}
			}
			for _, l := range lists[1:] {
				if !slices.Equal(l, lists[0]) {
					return false
				}
			}
			seen := make(map[string]bool, n)
			for _, cmd := range lists[0] {
				seen[cmd] = true
			}
			return len(seen) == n
		})
		for _, cmd := range lists[0] {
			if !want[cmd] {
				c.t.Fatalf("group %d: FSMs applied %q, which was never submitted", gid, cmd)
			}
		}
	}
}

func TestRaftClusterOnLogStore(t *testing.T) { testRaftCluster(t, false) }

// Leaders append without waiting for their fsync; FSMs wait for durability
// (listFSM.durable). Leadership moves around, so former leaders go on as
// followers, appending synchronously over what they appended asynchronously
// (truncating it when a new leader disagrees; the unit test
// TestAsyncAppendThenTruncateAndReplace covers that case deterministically).
// The leader's commit index is not clamped to its DurableIndex here as
// raftgroup does; without crashes that makes no difference.
func TestRaftClusterAsyncLeaderAppends(t *testing.T) { testRaftCluster(t, true) }

func testRaftCluster(t *testing.T, async bool) {
	const nodes = 3
	c := newRaftCluster(t, nodes, []uint64{1, 2}, async)
	c.bootstrap()
	c.apply(0, 200)
	c.waitApplied(200)

	// Restart a node from its store while the others make progress.
	const restarted = 2
	before := make([]uint64, len(c.groups))
	for gi, gid := range c.groups {
		before[gi], _ = group(t, c.stores[restarted], gid).LastIndex()
	}
	c.stop(restarted)
	c.apply(200, 300)
	c.start(restarted)
	for gi, gid := range c.groups {
		gs := group(t, c.stores[restarted], gid)
		// What raft persisted before the stop is still there.
		if term, err := gs.GetUint64([]byte("CurrentTerm")); err != nil || term == 0 {
			t.Fatalf("group %d: CurrentTerm after restart = %d, %v", gid, term, err)
		}
		if last, _ := gs.LastIndex(); last < before[gi] {
			t.Fatalf("group %d: last index %d after restart, %d before", gid, last, before[gi])
		}
	}
	c.waitApplied(300)
	// The restarted node may have caught up from a snapshot; these reach
	// it as log entries, possibly after a gap.
	c.apply(300, 350)
	c.waitApplied(350)
	if async {
		// New leaders, over logs they appended as leaders before.
		c.transferLeadership()
		c.apply(350, 400)
		c.transferLeadership()
		c.apply(400, 450)
		c.waitApplied(450)
	}

	// Raft compacted its logs through DeleteRange.
	for _, gid := range c.groups {
		gs := group(t, c.stores[0], gid)
		testutil.WaitFor(t, waitLimit, fmt.Sprintf("group %d to compact its log", gid), func() bool {
			first, _ := gs.FirstIndex()
			return first > 1
		})
	}

	// Every command has been applied everywhere, so every entry is
	// committed: stop raft and check that the replicas' logs agree wherever
	// they overlap. A replica sent a snapshot keeps a gap in its log, so a
	// missing entry inside the bounds is not an error.
	stats := make([]Stats, nodes)
	for n := range nodes {
		c.shutdownRafts(n)
		if async {
			// Raft has stopped; what it appended is durable by now or
			// soon, and then DurableIndex is the last index.
			for _, gid := range c.groups {
				gs := group(t, c.stores[n], gid)
				last, _ := gs.LastIndex()
				mustOK(t, gs.WaitDurable(context.Background(), last))
				assertDurable(t, gs, last)
			}
		}
		// Reopen: the comparison reads what is on disk.
		stats[n] = c.stores[n].Stats()
		closeStore(t, c.stores[n])
		s, err := Open(c.stores[n].Path(), Options{})
		if err != nil {
			t.Fatalf("node %d: reopen: %v", n, err)
		}
		c.stores[n] = s
	}
	for _, gid := range c.groups {
		var lo, hi uint64 = 0, ^uint64(0)
		gss := make([]*GroupStore, nodes)
		for n := range nodes {
			gss[n] = group(t, c.stores[n], gid)
			first, _ := gss[n].FirstIndex()
			last, _ := gss[n].LastIndex()
			lo, hi = max(lo, first), min(hi, last)
		}
		compared := 0
		for index := lo; index <= hi && lo > 0; index++ {
			logs := make([]raft.Log, nodes)
			missing := false
			for n := range nodes {
				err := gss[n].GetLog(index, &logs[n])
				if err == raft.ErrLogNotFound {
					missing = true
					continue
				}
				if err != nil {
					t.Fatalf("node %d group %d: GetLog(%d): %v", n, gid, index, err)
				}
			}
			if missing {
				continue
			}
			for n := 1; n < nodes; n++ {
				if logs[n].Term != logs[0].Term || string(logs[n].Data) != string(logs[0].Data) {
					t.Fatalf("group %d index %d: node %d has (term %d, %q), node 0 (term %d, %q)",
						gid, index, n, logs[n].Term, logs[n].Data, logs[0].Term, logs[0].Data)
				}
			}
			compared++
		}
		if compared == 0 {
			t.Fatalf("group %d: no entry held by all nodes in [%d, %d]", gid, lo, hi)
		}
		t.Logf("group %d: %d entries identical on all nodes in [%d, %d]", gid, compared, lo, hi)
	}
	var asyncRequests uint64
	for n := range nodes {
		st := stats[n]
		asyncRequests += st.AsyncRequests
		t.Logf("node %d: %d requests (%d async) in %d transactions (%.2f per commit)",
			n, st.Requests, st.AsyncRequests, st.Transactions, st.AvgBatchRequests)
	}
	if async != (asyncRequests > 0) {
		t.Fatalf("%d async appends with async %t", asyncRequests, async)
	}
}

// transferLeadership asks every group's leader to hand over, and waits for
// the outcome; a transfer that fails (say, a follower lags) is only logged.
func (c *raftCluster) transferLeadership() {
	for gi, gid := range c.groups {
		var leader *raft.Raft
		testutil.WaitFor(c.t, waitLimit, fmt.Sprintf("group %d to elect a leader", gid), func() bool {
			leader = c.leaderNow(gi)
			return leader != nil
		})
		if err := leader.LeadershipTransfer().Error(); err != nil {
			c.t.Logf("group %d: leadership transfer: %v", gid, err)
		}
	}
}
