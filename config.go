package duro

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/duro-db/duro/internal/metrics"
	"github.com/duro-db/duro/internal/vfs"
	"github.com/duro-db/duro/objects"
	"github.com/duro-db/duro/raftgroup"
	"github.com/duro-db/duro/transport"
)

// Peer is one node of the cluster: its stable ID and the address peers and clients dial.
type Peer = raftgroup.Peer

// Timing holds the Raft timers of every group; zero fields take raftgroup's defaults.
type Timing = raftgroup.Timing

// Defaults of the SDK server.
const (
	// DefaultMaxInflightPerConn bounds the requests one SDK connection may have in
	// progress; more are answered CodeOverloaded without running.
	DefaultMaxInflightPerConn = 1024
	// DefaultCallTimeout bounds a call whose request carries no timeout.
	DefaultCallTimeout = 30 * time.Second
	// MaxCallTimeout caps the timeout a request may ask for.
	MaxCallTimeout = 10 * time.Minute
)

// Config configures one node. ID, DataDir and Peers are required; the cluster's shape
// (Groups, Replicas, Slots) must be the same on every node and can never change.
type Config struct {
	ID      string // this node's ID; must appear in Peers
	DataDir string
	Peers   []Peer // every node of the cluster, this one included

	Groups   int // data groups; 0 = raftgroup.DefaultGroups
	Replicas int // replicas per data group; 0 = min(3, len(Peers))
	Slots    int // 0 = raftgroup.DefaultSlots

	Timing Timing
	// DialAddrs overrides where this node dials each peer's raft traffic (peer ID →
	// host:port); see raftgroup.Config.DialAddrs. For test harnesses.
	DialAddrs map[string]string
	// NoSync turns fsync off for the Raft log and the state. Tests only: unsafe.
	NoSync bool
	// DiskReserve is the free space, in bytes, below which the node refuses calls that
	// store something (ErrNoSpace); 0 means 256 MiB. WALSegmentSize is the size of the
	// raft log's segments, two of which a new node sets aside; 0 means 64 MiB.
	DiskReserve    uint64
	WALSegmentSize int64
	// FS and BootID run the node on a simulated disk that can lose power (see
	// raftgroup.Config): for the power-cut tests. Nil and empty in a deployment.
	FS     vfs.FS
	BootID string
	Logger *slog.Logger // nil discards
	// RaftLogLevel is the lowest level of hashicorp/raft's own records that reach Logger
	// (default Warn).
	RaftLogLevel slog.Level

	// Listen is the host:port the node listens on for peers and clients; "" means this
	// node's address in Peers.
	Listen string
	// HTTP is the address of the operator endpoints (/livez, /readyz, /status, /metrics,
	// /debug/pprof); empty turns them off.
	HTTP string
	// Advertise is the host:port peers and clients dial; "" means this node's address in
	// Peers.
	Advertise string
	// Mux, if set, is an open listener to serve on instead of listening on Listen (tests
	// that need every address before any node starts open theirs first). The Server owns
	// it from Start on and closes it.
	Mux *transport.Mux

	// Registry holds the classes this node serves; nil means objects.DefaultRegistry.
	Registry *objects.Registry
	// Objects configures the object runtime; a nil Objects.Logger means Logger.
	Objects objects.Options

	// MaxInflightPerConn: see DefaultMaxInflightPerConn; 0 means the default.
	MaxInflightPerConn int
	// CallTimeout bounds calls whose request carries no timeout; 0 means
	// DefaultCallTimeout.
	CallTimeout time.Duration

	metrics *metrics.Node // set by Start
}

// alarmPollBackstop is the default objects.Options.AlarmPoll of a node.
const alarmPollBackstop = 2 * time.Second

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registry == nil {
		c.Registry = objects.DefaultRegistry
	}
	if c.Objects.Logger == nil {
		c.Objects.Logger = c.Logger.With("node", c.ID)
	}
	if c.Objects.AlarmPoll <= 0 {
		// The node tells the runtime when its serving set changes (locator.ServingChanged),
		// so the poll is only a backstop.
		c.Objects.AlarmPoll = alarmPollBackstop
	}
	if c.MaxInflightPerConn <= 0 {
		c.MaxInflightPerConn = DefaultMaxInflightPerConn
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	self := c.self()
	if c.Listen == "" {
		c.Listen = self.Addr
	}
	if c.Advertise == "" {
		c.Advertise = self.Addr
	}
	return c
}

func (c Config) self() Peer {
	for _, p := range c.Peers {
		if p.ID == c.ID {
			return p
		}
	}
	return Peer{}
}

func (c Config) raftConfig() raftgroup.Config {
	return raftgroup.Config{
		ID:             c.ID,
		DataDir:        c.DataDir,
		Peers:          c.Peers,
		Groups:         c.Groups,
		Replicas:       c.Replicas,
		Slots:          c.Slots,
		Timing:         c.Timing,
		NoSync:         c.NoSync,
		FS:             c.FS,
		DiskReserve:    c.DiskReserve,
		WALSegmentSize: c.WALSegmentSize,
		BootID:         c.BootID,
		Logger:         c.Logger,
		RaftLogLevel:   c.RaftLogLevel,
		Metrics:        c.metrics,
		DialAddrs:      c.DialAddrs,
	}
}

// Validate reports the first problem with c, wrapping raftgroup.ErrInvalidConfig.
func (c Config) Validate() error {
	if err := c.raftConfig().Validate(); err != nil {
		return err
	}
	if c.Mux == nil && c.Listen == "" && c.self().Addr == "" {
		return fmt.Errorf("%w: no address to listen on", raftgroup.ErrInvalidConfig)
	}
	return nil
}
