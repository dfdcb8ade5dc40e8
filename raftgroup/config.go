package raftgroup

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/duro-db/duro/internal/diskspace"
	"github.com/duro-db/duro/internal/metrics"
	"github.com/duro-db/duro/internal/vfs"
)

// Defaults for a cluster's shape. They are fixed when the cluster is created: every node
// must be started with the same values (the data dir records them and refuses others).
const (
	DefaultGroups   = 16
	DefaultReplicas = 3
	DefaultSlots    = 4096

	MaxGroups = 1024
	MaxSlots  = 65536
)

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("invalid configuration")

// Peer is one node of the cluster: its stable ID and the address its peers and clients dial.
type Peer struct {
	ID   string
	Addr string
}

// ParsePeers parses "id=host:port,id=host:port,...".
func ParsePeers(s string) ([]Peer, error) {
	var peers []Peer
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("%w: peer %q: want id=host:port", ErrInvalidConfig, part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("%w: peer %q: %v", ErrInvalidConfig, part, err)
		}
		peers = append(peers, Peer{ID: id, Addr: addr})
	}
	if len(peers) == 0 {
		return nil, fmt.Errorf("%w: empty peers list", ErrInvalidConfig)
	}
	return peers, nil
}

// FormatPeers is the inverse of ParsePeers.
func FormatPeers(peers []Peer) string {
	parts := make([]string, len(peers))
	for i, p := range peers {
		parts[i] = p.ID + "=" + p.Addr
	}
	return strings.Join(parts, ",")
}

// Timing holds the Raft timers of every group. hashicorp/raft's defaults are tuned for one
// group per process; with tens of groups per node the per-group fixed costs dominate idle
// CPU: heartbeats (coalesced into one round per peer node, see internal/link/beats.go) and an
// AppendEntries per follower every CommitTimeout even when idle, only to carry the commit
// index. So duro stretches CommitTimeout and keeps the election timers near the defaults,
// which bound failover time.
type Timing struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// LeaderHeartbeatTimeout is the HeartbeatTimeout a group's raft runs with while it
	// leads (raft.ReloadConfig); followers and candidates run with HeartbeatTimeout.
	// A leader's raft uses it only to pace its heartbeat goroutines (one per follower,
	// every tenth to fifth of it) and to cap their retry back-off. Those goroutines are
	// driven by the node's round ticks instead (internal/link: every HeartbeatTimeout/3 a leader
	// asks its raft for heartbeats), so raft's own timer, stretched past the tick, is only
	// the fallback; followers hear from the leader through the coalesced rounds, so
	// stretching it leaves failover alone. Should the ticks stop, raft's timer must still
	// refresh the contact times its leader lease checks, so a fifth of it stays inside
	// LeaderLeaseTimeout. Default: 4 × LeaderLeaseTimeout (4s), less when the lease is short.
	LeaderHeartbeatTimeout time.Duration
	CommitTimeout          time.Duration
	SnapshotInterval       time.Duration
	SnapshotThreshold      uint64
	TrailingLogs           uint64
	// BalanceInterval is how often a leader checks whether a group it leads should be
	// handed to the group's preferred leader.
	BalanceInterval time.Duration
}

// DefaultTiming is used for zero fields of Config.Timing. See ARCHITECTURE.md for the reasoning.
func DefaultTiming() Timing {
	return Timing{
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 1000 * time.Millisecond,
		CommitTimeout:      5 * time.Second,
		SnapshotInterval:   60 * time.Second,
		SnapshotThreshold:  16384,
		TrailingLogs:       8192,
		BalanceInterval:    2 * time.Second,
	}
}

func (t Timing) withDefaults() Timing {
	d := DefaultTiming()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&t.HeartbeatTimeout, d.HeartbeatTimeout)
	set(&t.ElectionTimeout, d.ElectionTimeout)
	set(&t.LeaderLeaseTimeout, d.LeaderLeaseTimeout)
	set(&t.CommitTimeout, d.CommitTimeout)
	set(&t.SnapshotInterval, d.SnapshotInterval)
	set(&t.BalanceInterval, d.BalanceInterval)
	if t.LeaderHeartbeatTimeout <= 0 {
		// Stretch up to 4×, keeping raft's longest heartbeat gap (a fifth of it) at least
		// max(lease/5, 50ms) inside the lease; short test timings are not stretched.
		margin := max(t.LeaderLeaseTimeout/5, 50*time.Millisecond)
		t.LeaderHeartbeatTimeout = max(t.HeartbeatTimeout, min(4*t.LeaderLeaseTimeout, 5*(t.LeaderLeaseTimeout-margin)))
	}
	if t.SnapshotThreshold == 0 {
		t.SnapshotThreshold = d.SnapshotThreshold
	}
	if t.TrailingLogs == 0 {
		t.TrailingLogs = d.TrailingLogs
	}
	return t
}

// Config configures one node.
type Config struct {
	ID      string // this node's ID; must appear in Peers
	DataDir string
	Peers   []Peer // every node of the cluster, this one included

	Groups   int // data groups; 0 = DefaultGroups
	Replicas int // replicas per data group; 0 = min(DefaultReplicas, len(Peers))
	Slots    int // 0 = DefaultSlots

	Timing Timing
	// NoSync turns fsync off for the log and state stores. Tests only: unsafe.
	NoSync bool
	// DiskReserve is the free space, in bytes, below which the node refuses writes
	// (diskspace.go); 0 means diskspace.DefaultReserve.
	DiskReserve uint64
	// WALSegmentSize is the size of the WAL's segments; 0 means
	// logstore.DefaultSegmentSize.
	WALSegmentSize int64
	// FS is the file system the node's files are written through; nil means the
	// operating system's. Tests simulate power cuts with one.
	FS vfs.FS
	// BootID, when set, stands for the kernel's boot ID in telling a state file left
	// open by a process crash from one left open by a machine crash (statefile.go).
	// Tests that simulate a power cut give the restarted node a new one.
	BootID string

	// beforeLogCommit is logstore.Options.BeforeCommit, for tests of this package.
	beforeLogCommit func()
	Logger          *slog.Logger
	// DialAddrs overrides, for this node only, the address it dials to reach a peer's
	// raft traffic (peer ID → host:port). The group configurations keep the canonical
	// addresses of Peers; a test harness uses this to put a proxy on every directed link.
	DialAddrs map[string]string
	// Metrics receives the node's measurements; nil records nothing.
	Metrics *metrics.Node
	// RaftLogLevel is the lowest level of hashicorp/raft's own records that reach Logger.
	// Raft logs routine events of every group at Info; the default is Warn.
	RaftLogLevel slog.Level
}

func (c Config) withDefaults() Config {
	if c.Groups == 0 {
		c.Groups = DefaultGroups
	}
	if c.Replicas == 0 {
		c.Replicas = min(DefaultReplicas, len(c.Peers))
	}
	if c.Slots == 0 {
		c.Slots = DefaultSlots
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.DiskReserve == 0 {
		c.DiskReserve = diskspace.DefaultReserve
	}
	if c.RaftLogLevel == 0 {
		c.RaftLogLevel = slog.LevelWarn
	}
	c.Timing = c.Timing.withDefaults()
	c.Peers = append([]Peer(nil), c.Peers...)
	sort.Slice(c.Peers, func(i, j int) bool { return c.Peers[i].ID < c.Peers[j].ID })
	return c
}

// Validate reports the first problem with c (after defaults are applied), wrapping
// ErrInvalidConfig, in words meant for the operator.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if c.ID == "" {
		return bad("node ID is empty")
	}
	if c.DataDir == "" {
		return bad("data dir is empty")
	}
	if len(c.Peers) == 0 {
		return bad("peers list is empty")
	}
	seenID := map[string]bool{}
	seenAddr := map[string]bool{}
	self := false
	for _, p := range c.Peers {
		if seenID[p.ID] {
			return bad("peer ID %q appears twice", p.ID)
		}
		if seenAddr[p.Addr] {
			return bad("peer address %q appears twice", p.Addr)
		}
		seenID[p.ID], seenAddr[p.Addr] = true, true
		if p.ID == c.ID {
			self = true
		}
	}
	if !self {
		return bad("peers list does not name this node (%q)", c.ID)
	}
	for id, addr := range c.DialAddrs {
		if !seenID[id] {
			return bad("dial address given for %q, which is not a peer", id)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return bad("dial address of %q: %v", id, err)
		}
	}
	if c.Groups < 1 || c.Groups > MaxGroups {
		return bad("groups must be in 1..%d, got %d", MaxGroups, c.Groups)
	}
	if c.Replicas < 1 || c.Replicas > len(c.Peers) {
		return bad("replicas must be in 1..%d (the number of peers), got %d", len(c.Peers), c.Replicas)
	}
	if c.Slots < c.Groups || c.Slots > MaxSlots {
		return bad("slots must be in %d..%d (at least one per group), got %d", c.Groups, MaxSlots, c.Slots)
	}
	t := c.Timing
	if t.LeaderLeaseTimeout > t.HeartbeatTimeout {
		return bad("leader lease timeout (%v) exceeds heartbeat timeout (%v)", t.LeaderLeaseTimeout, t.HeartbeatTimeout)
	}
	if t.LeaderHeartbeatTimeout < t.HeartbeatTimeout {
		return bad("leader heartbeat timeout (%v) is below heartbeat timeout (%v)", t.LeaderHeartbeatTimeout, t.HeartbeatTimeout)
	}
	if t.LeaderHeartbeatTimeout > t.HeartbeatTimeout && t.LeaderHeartbeatTimeout/5 > 4*t.LeaderLeaseTimeout/5 {
		return bad("leader heartbeat timeout (%v) is too long for the leader lease (%v): raft's own heartbeats, every fifth of it at most, must refresh the lease well within it",
			t.LeaderHeartbeatTimeout, t.LeaderLeaseTimeout)
	}
	return nil
}

func (c Config) self() Peer {
	for _, p := range c.Peers {
		if p.ID == c.ID {
			return p
		}
	}
	return Peer{}
}
