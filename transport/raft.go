package transport

import (
	"context"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/internal/framing"
)

// StreamLayer is the raft.StreamLayer of one group on a Mux. Accept returns
// the connections that announced this group; Dial connects to a peer's Mux
// and announces it. Close unregisters the layer: connections for the group
// that arrive later are refused, and the ones it owns are closed.
type StreamLayer struct {
	l     *listener
	group uint64
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// Group is the Raft group this layer carries.
func (s *StreamLayer) Group() uint64 { return s.group }

// Accept waits for the next connection of this group. After Close (of the
// layer or of its Mux) it returns an error that matches net.ErrClosed.
func (s *StreamLayer) Accept() (net.Conn, error) { return s.l.Accept() }

// Close unregisters the layer, unblocks Accept and closes every connection
// the layer accepted or dialed. It is idempotent and returns nil.
// raft.NetworkTransport.Close calls it.
func (s *StreamLayer) Close() error { return s.l.Close() }

// Addr is the Mux's advertise address, which NetworkTransport reports as
// this node's Raft address.
func (s *StreamLayer) Addr() net.Addr { return s.l.Addr() }

// Dial connects to the Mux at address and announces this layer's group.
// timeout bounds the connect and the header write together.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.l.isClosed() {
		return nil, s.l.closedErr()
	}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	raw, err := framing.Dial(ctx, string(address), framing.ProtoRaft, s.group)
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: raw, owner: s.l}
	if err := s.l.adopt(c); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// Defaults NewRaftTransport applies to zero arguments.
const (
	// DefaultRaftMaxPool is the number of idle connections kept per peer and
	// group, as in hashicorp/raft's own examples.
	DefaultRaftMaxPool = 3
	// DefaultRaftTimeout bounds each RPC's I/O (InstallSnapshot scales it by
	// size).
	DefaultRaftTimeout = 10 * time.Second
)

// NewRaftTransport wraps layer in a raft.NetworkTransport with duro's
// settings. maxPool <= 0 and timeout <= 0 mean the defaults above; a nil
// logger means hclog's default logger. Logs carry the group.
//
// duro's settings: msgpack's current time encoding (every duro node decodes
// both, so there is no legacy peer to stay compatible with). Pipelining stays
// at raft's default depth (MaxRPCsInFlight 2); NewRaftTransportVia turns it
// off, see there.
func NewRaftTransport(layer *StreamLayer, maxPool int, timeout time.Duration, logger hclog.Logger) *raft.NetworkTransport {
	if logger == nil {
		logger = hclog.Default().Named("raft-net")
	}
	config := raftTransportConfig(maxPool, timeout, logger.With("group", layer.group))
	config.Stream = layer
	return raft.NewNetworkTransportWithConfig(config)
}

// raftTransportConfig is duro's NetworkTransport configuration, Stream unset
// (the benchmark gives the same one to raft's TCP transport as a baseline).
func raftTransportConfig(maxPool int, timeout time.Duration, logger hclog.Logger) *raft.NetworkTransportConfig {
	if maxPool <= 0 {
		maxPool = DefaultRaftMaxPool
	}
	if timeout <= 0 {
		timeout = DefaultRaftTimeout
	}
	return &raft.NetworkTransportConfig{
		MaxPool:                 maxPool,
		Timeout:                 timeout,
		Logger:                  logger,
		MsgpackUseNewTimeFormat: true,
	}
}
