package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/diskspace"
	"github.com/duro-db/duro/internal/hclogslog"
	"github.com/duro-db/duro/internal/link"
	"github.com/duro-db/duro/internal/logstore"
	"github.com/duro-db/duro/internal/vfs"
	"github.com/duro-db/duro/transport"
)

// logCacheEntries is how many recent log entries each group keeps in memory for raft's
// reads (raft.LogCache): a few of its largest appends (MaxAppendEntries is 256).
const logCacheEntries = 1024

// Node hosts this process's replicas of the meta group and of the data groups the
// placement assigns to it, all sharing one listener (transport.Mux) and one log store.
type Node struct {
	cfg       Config
	placement Placement
	mux       *transport.Mux
	logs      *logstore.Store
	link      nodeLink
	slots     entrySlots
	log       *slog.Logger

	groups  map[uint64]*Group // immutable after Start
	started chan struct{}     // closed once Start has filled groups
	serving chan struct{}     // capacity 1: some group started or stopped serving

	disk *diskspace.Monitor // free space of the data dir (diskspace.go)

	closeOnce sync.Once
	stop      chan struct{}
	done      sync.WaitGroup
}

// nodeLink is what a node uses of its link to the other nodes (internal/link.Link), which
// carries every group's heartbeats and appends between two nodes on shared connections.
type nodeLink interface {
	// Transport returns group gid's raft transport: nt for votes, snapshots and
	// TimeoutNow, the link for heartbeats and appends. stop is the group's shutdown.
	Transport(nt *raft.NetworkTransport, gid uint64, stop <-chan struct{}) *link.Transport
	// Confirm counts the peers that accept this node as gid's leader in term, in rounds
	// that start after the call; it returns once need have.
	Confirm(gid, term uint64, peers []string, need int, stop <-chan struct{}) int
	// SetPump sets (nil: removes) the channel that asks a group this node leads for
	// heartbeats at each tick of the rounds.
	SetPump(gid uint64, ch chan<- struct{})
	// Forget removes a group that stopped or never started.
	Forget(gid uint64)
	Stats() link.Stats
	Close()
}

// Start opens (or creates) the node's data dir, starts a replica of every group placed on
// it, and bootstraps those groups if the data dir is new. It returns without waiting for
// elections: use WaitReady.
//
// Bootstrap is static and idempotent: every node derives the same initial configuration
// of every group from the same peers list and shape (see Plan), so each bootstraps its own
// replicas independently, and a restart with existing state skips it.
func Start(cfg Config, mux *transport.Mux) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := &Node{
		cfg:       cfg,
		placement: Plan(cfg),
		mux:       mux,
		log:       cfg.Logger.With("node", cfg.ID),
		groups:    map[uint64]*Group{},
		started:   make(chan struct{}),
		serving:   make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	n.slots.free = entrySlotsFor(runtime.GOMAXPROCS(0))
	fresh, err := checkIdentity(cfg, n.placement.ClusterID)
	if err != nil {
		return nil, err
	}
	if err := n.watchDisk(fresh); err != nil {
		return nil, err
	}
	n.logs, err = logstore.Open(filepath.Join(cfg.DataDir, "raft-log.db"), logstore.Options{NoSync: cfg.NoSync, Logger: n.log, FS: cfg.FS,
		SegmentSize: cfg.WALSegmentSize, BeforeCommit: cfg.beforeLogCommit})
	if err != nil {
		n.disk.Stop()
		return nil, fmt.Errorf("open log store: %w", err)
	}
	n.link = link.New(link.Config{
		ID:                     cfg.ID,
		Advertise:              mux.Advertise().String(),
		HeartbeatTimeout:       cfg.Timing.HeartbeatTimeout,
		LeaderHeartbeatTimeout: cfg.Timing.LeaderHeartbeatTimeout,
		Resolve: func(id string) (string, error) {
			a, err := dialAddrs{n}.ServerAddr(raft.ServerID(id))
			return string(a), err
		},
		Beats:   mux.BeatListener(),
		Appends: mux.AppendListener(),
		OnRound: cfg.Metrics.HeartbeatRound,
		Logger:  n.log,
	})
	ids := make([]uint64, 0, len(n.placement.Replicas))
	for gid := range n.placement.Replicas {
		if n.placement.Hosts(cfg.ID, gid) {
			ids = append(ids, gid)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, gid := range ids {
		g, err := n.openGroup(gid, fresh)
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("group %d: %w", gid, err)
		}
		n.groups[gid] = g
	}
	close(n.started)
	n.cfg.Metrics.Register(stateCollector{n})
	n.done.Add(1)
	go n.balance()
	n.log.Info("node started", "cluster", n.placement.ClusterID, "groups", len(ids), "fresh", fresh)
	return n, nil
}

func (n *Node) openGroup(gid uint64, fresh bool) (*Group, error) {
	dir := filepath.Join(n.cfg.DataDir, "groups", strconv.FormatUint(gid, 10))
	// Made durable in its parent: a group directory that a power cut takes back takes
	// the group's snapshots with it, and raft may have compacted its log behind them.
	if err := vfs.MkdirAllSynced(n.cfg.FS, dir, 0o755); err != nil {
		return nil, err
	}
	glog := n.log.With("group", gid)
	hlog := hclogslog.New(glog, "raft", n.cfg.RaftLogLevel)

	stateNoSync, rebuilt, err := prepareState(n.cfg, dir)
	if err != nil {
		return nil, fmt.Errorf("prepare state: %w", err)
	}
	if rebuilt {
		glog.Warn("the machine restarted while this group's state was open; rebuilding it from the latest snapshot and the raft log")
	}
	state, err := fsm.Open(filepath.Join(dir, "state.db"), fsm.Options{NoSync: n.cfg.NoSync || stateNoSync, Logger: glog, CommitInterval: stateCommitInterval, FS: n.cfg.FS})
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	if err != nil {
		state.Close()
		return nil, fmt.Errorf("open snapshots: %w", err)
	}
	logs, err := n.logs.Group(gid)
	if err != nil {
		state.Close()
		return nil, fmt.Errorf("open log: %w", err)
	}

	t := n.cfg.Timing
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.ID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = t.HeartbeatTimeout
	rc.ElectionTimeout = t.ElectionTimeout
	rc.LeaderLeaseTimeout = t.LeaderLeaseTimeout
	rc.CommitTimeout = t.CommitTimeout
	rc.SnapshotInterval = t.SnapshotInterval
	rc.SnapshotThreshold = t.SnapshotThreshold
	rc.TrailingLogs = t.TrailingLogs
	rc.MaxAppendEntries = 256
	rc.BatchApplyCh = true
	rc.NoLegacyTelemetry = true
	// The state machine is persistent and records its applied index atomically with the
	// data, so on restart raft need not (and must not, for speed) rebuild it from the last
	// snapshot — unless the state is older than that snapshot (e.g. lost with its disk),
	// when only the snapshot can bring it forward: the log before it is gone.
	if snapIndex := latestSnapshotIndex(snaps); state.AppliedIndex() >= snapIndex {
		rc.NoSnapshotRestoreOnStart = true
	}

	stop := make(chan struct{})
	// The link carries the group's heartbeats and appends; the commit index it sends
	// stops at this node's durable log (durable_commit.go).
	trans := durableCommitTransport{
		Transport: n.link.Transport(transport.NewRaftTransportVia(n.mux.RaftLayer(gid), 3, 10*time.Second, hlog, dialAddrs{n}), gid, stop),
		logs:      logs,
	}
	// Raft reads every entry back soon after storing it: followers to apply what
	// committed, leaders to replicate. The cache answers those reads from memory
	// (measured: 6% of a loaded node's CPU went to bbolt read transactions for them).
	abandon := func() {
		close(stop) // ends the transport's forwarder and any delivery in progress
		n.link.Forget(gid)
		trans.Close()
		state.Close()
	}
	cached, err := raft.NewLogCache(logCacheEntries, logs)
	if err != nil {
		abandon()
		return nil, err
	}
	r, err := raft.NewRaft(rc, groupFSM{state, logs, n.cfg.Metrics}, cached, logs, snaps, trans)
	if err != nil {
		abandon()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	// A leader's appends return before their fsync; durable_commit.go says why that is safe.
	appendBeforeFsyncWhileLeading(logs, r, n.disk.Low)
	g := &Group{id: gid, node: n, dir: dir, raft: r, state: state, logs: logs, trans: trans, log: glog,
		failed: map[raft.ServerID]bool{}, pump: make(chan struct{}, 1), stop: stop}
	for _, id := range n.placement.Replicas[gid] {
		if id != n.cfg.ID {
			g.peers = append(g.peers, id)
		}
	}

	has, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		g.shutdown()
		return nil, err
	}
	if !has {
		if !fresh {
			n.log.Warn("group has no raft state in an existing data dir; bootstrapping it", "group", gid)
		}
		var servers []raft.Server
		for _, id := range n.placement.Replicas[gid] {
			servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(n.addrOf(id))})
		}
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			g.shutdown()
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
	}
	obs := make(chan raft.Observation, 64)
	r.RegisterObserver(raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		}
		return false
	}))
	g.done.Add(3)
	go g.watchLeadership()
	go g.watchHeartbeats(obs)
	go g.pumpHeartbeats()
	return g, nil
}

func latestSnapshotIndex(s raft.SnapshotStore) uint64 {
	metas, err := s.List()
	if err != nil || len(metas) == 0 {
		return 0
	}
	return metas[0].Index
}

func (g *Group) shutdown() {
	close(g.stop)
	g.failAll()
	if err := g.raft.Shutdown().Error(); err != nil {
		g.log.Warn("raft shutdown", "err", err)
	}
	g.done.Wait()
	g.node.link.Forget(g.id)
	if c, ok := g.trans.(interface{ Close() error }); ok {
		c.Close()
	}
	if err := g.state.Close(); err != nil {
		g.log.Warn("close state", "err", err)
	} else {
		closeState(g.node.cfg.FS, g.dir)
	}
}

// dialAddrs tells raft where to dial each peer: Config.DialAddrs when it names the peer,
// else the peer's address from the peers list.
type dialAddrs struct{ n *Node }

func (d dialAddrs) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	if a, ok := d.n.cfg.DialAddrs[string(id)]; ok {
		return raft.ServerAddress(a), nil
	}
	if a := d.n.addrOf(string(id)); a != "" {
		return raft.ServerAddress(a), nil
	}
	return "", fmt.Errorf("unknown peer %q", id)
}

func (n *Node) addrOf(id string) string {
	for _, p := range n.cfg.Peers {
		if p.ID == id {
			return p.Addr
		}
	}
	return ""
}

// ID returns this node's ID.
func (n *Node) ID() string { return n.cfg.ID }

// Config returns the node's configuration, defaults applied.
func (n *Node) Config() Config { return n.cfg }

// Placement returns the cluster's placement.
func (n *Node) Placement() Placement { return n.placement }

// Group returns this node's replica of gid, or nil.
func (n *Node) Group(gid uint64) *Group { return n.groups[gid] }

// Groups returns this node's replicas, ordered by ID.
func (n *Node) Groups() []*Group {
	out := make([]*Group, 0, len(n.groups))
	for _, g := range n.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// Leading returns the data groups this node currently serves as leader.
func (n *Node) Leading() []uint64 {
	var out []uint64
	for _, g := range n.Groups() {
		if _, ok := g.LeaderTerm(); ok && g.id != MetaGroup {
			out = append(out, g.id)
		}
	}
	return out
}

// ServingChanged delivers a value after a group of this node started or stopped serving
// (see Group.LeaderTerm); changes that come before the receiver takes one coalesce. It is
// meant for one receiver, which then looks at every group again.
func (n *Node) ServingChanged() <-chan struct{} { return n.serving }

func (n *Node) servingChanged() {
	select {
	case n.serving <- struct{}{}:
	default:
	}
}

// Serving returns the group replica this node leads, or a *NotLeaderError naming the
// leader it knows of, or ErrNoGroup (as a *NotLeaderError with no hint, since the caller
// should go elsewhere) when it hosts no replica of gid.
func (n *Node) Serving(gid uint64) (*Group, error) {
	g := n.groups[gid]
	if g == nil {
		return nil, &NotLeaderError{Group: gid}
	}
	if _, ok := g.LeaderTerm(); !ok {
		return nil, g.notLeader()
	}
	return g, nil
}

// WaitReady waits until every group this node hosts has a known leader that is serving.
// It is meant for tests and startup probes.
func (n *Node) WaitReady(ctx context.Context) error {
	for {
		ready := true
		for _, g := range n.groups {
			if id, _ := g.Leader(); id == "" {
				ready = false
				break
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for group leaders: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// onLeader runs when g starts serving. The first serving leader of the meta group writes
// the cluster record, so the placement lives in replicated state.
func (n *Node) onLeader(g *Group) {
	if g.id != MetaGroup {
		return
	}
	go func() {
		// A group can win an election while Start is still opening the others; the
		// record reads n.groups, which is complete (and immutable) only after Start.
		select {
		case <-n.started:
		case <-n.stop:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.recordCluster(ctx, g); err != nil && !errors.Is(err, ErrNotLeader) {
			n.log.Warn("record cluster in meta group", "err", err)
		}
	}()
}

// balance hands each group this node leads to the group's preferred leader once that node
// is reachable, so leadership spreads evenly (Plan) and returns to a node after it restarts.
func (n *Node) balance() {
	defer n.done.Done()
	backoff := map[uint64]time.Time{}
	for {
		d := n.cfg.Timing.BalanceInterval
		d += time.Duration(rand.Int64N(int64(d)/2 + 1))
		select {
		case <-n.stop:
			return
		case <-time.After(d):
		}
		for _, g := range n.Groups() {
			if _, ok := g.LeaderTerm(); !ok {
				continue
			}
			pref := n.placement.Replicas[g.id][0]
			if pref == n.cfg.ID || time.Now().Before(backoff[g.id]) {
				continue
			}
			// Give heartbeats time to report an unreachable follower before trusting silence.
			if time.Since(time.Unix(0, g.leaderSince.Load())) < 3*n.cfg.Timing.HeartbeatTimeout || g.peerFailing(pref) {
				continue
			}
			n.log.Debug("handing leadership to preferred leader", "group", g.id, "to", pref)
			err := g.waitFuture(context.Background(), g.raft.LeadershipTransferToServer(raft.ServerID(pref), raft.ServerAddress(n.addrOf(pref))))
			if err != nil {
				backoff[g.id] = time.Now().Add(30 * time.Second)
				n.log.Debug("leadership transfer failed", "group", g.id, "to", pref, "err", err)
			}
		}
	}
}

// Close shuts down every group and the log store. It does not close the Mux.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.stop)
		n.done.Wait()
		var wg sync.WaitGroup
		for _, g := range n.groups {
			wg.Add(1)
			go func() { defer wg.Done(); g.shutdown() }()
		}
		wg.Wait()
		if n.link != nil {
			n.link.Close()
		}
		if n.logs != nil {
			if err := n.logs.Close(); err != nil {
				n.log.Warn("close log store", "err", err)
			}
		}
		if n.disk != nil {
			n.disk.Stop()
		}
	})
	return nil
}

// Shutdown hands off every group this node leads (so clients see a short blip instead of
// an election timeout) and then closes the node.
func (n *Node) Shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, g := range n.Groups() {
		if g.raft.State() != raft.Leader || len(n.placement.Replicas[g.id]) < 2 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = g.waitFuture(ctx, g.raft.LeadershipTransfer())
		}()
	}
	wg.Wait()
	return n.Close()
}
