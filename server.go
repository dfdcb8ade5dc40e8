package duro

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/internal/metrics"
	"github.com/duro-db/duro/internal/wire"
	"github.com/duro-db/duro/objects"
	"github.com/duro-db/duro/raftgroup"
	"github.com/duro-db/duro/transport"
)

// Server is a running duro node: its Raft groups, its object runtime and its SDK server.
type Server struct {
	cfg  Config
	log  *slog.Logger
	mux  *transport.Mux
	node *raftgroup.Node
	rt   *objects.Runtime
	ln   net.Listener // SDK connections, header consumed

	// The static part of every topology answer.
	clusterID string
	slots     []uint64
	members   []wire.Member

	metrics *metrics.Node
	http    *http.Server
	httpLn  net.Listener

	mu     sync.Mutex
	conns  map[*sdkConn]struct{}
	closed bool
	wg     sync.WaitGroup // accept loop and connections

	closeOnce sync.Once
}

// Start starts a node: it listens (or takes cfg.Mux), opens or creates its Raft groups
// under cfg.DataDir, starts the object runtime, and serves SDK connections. It does not
// wait for the groups to elect leaders: calls that arrive before are answered NotLeader
// or Unavailable, which the client retries. Use WaitReady to wait.
//
// ctx is checked before and after startup; opening the data dir is not interruptible.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	faults, err := loadFaults()
	if err != nil {
		return nil, err
	}
	cfg.metrics = metrics.New()
	log := cfg.Logger.With("node", cfg.ID)

	mux := cfg.Mux
	if mux == nil {
		var err error
		mux, err = transport.Listen(cfg.Listen, transport.Options{Logger: log, Advertise: cfg.Advertise})
		if err != nil {
			return nil, err
		}
	}
	// Claim the SDK listener before anything else: until it exists the Mux refuses
	// client connections.
	ln := mux.ClientListener()
	node, err := raftgroup.Start(cfg.raftConfig(), mux)
	if err != nil {
		mux.Close()
		return nil, err
	}
	p := node.Placement()
	s := &Server{
		cfg:       cfg,
		log:       log,
		mux:       mux,
		node:      node,
		rt:        objects.NewRuntime(cfg.Registry, newLocator(node, faults), cfg.Objects),
		ln:        ln,
		metrics:   cfg.metrics,
		clusterID: p.ClusterID,
		slots:     p.Slots,
		conns:     map[*sdkConn]struct{}{},
	}
	for _, peer := range node.Config().Peers {
		s.members = append(s.members, wire.Member{ID: peer.ID, Addr: peer.Addr})
	}
	if err := ctx.Err(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.startHTTP(); err != nil {
		s.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.acceptLoop()
	log.Info("duro node serving", "addr", mux.Addr().String(), "cluster", p.ClusterID)
	return s, nil
}

// Addr returns the address the node listens on.
func (s *Server) Addr() string { return s.mux.Addr().String() }

// Node returns the node's Raft groups.
func (s *Server) Node() *raftgroup.Node { return s.node }

// Runtime returns the node's object runtime.
func (s *Server) Runtime() *objects.Runtime { return s.rt }

// WaitReady waits until every group this node hosts has a leader.
func (s *Server) WaitReady(ctx context.Context) error { return s.node.WaitReady(ctx) }

// Close stops the node at once: SDK connections are closed (their calls in progress
// end with the connection), the runtime waits for the outcome of every command already
// proposed, then the Raft groups and the listener close. A group this node led goes
// through an election on the others. Close is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stopHTTP()
		s.stopSDK()
		s.rt.Close()
		s.node.Close()
		s.mux.Close()
	})
	return nil
}

// Shutdown stops the node gracefully: it first hands the leadership of every group it
// leads to another replica, while still answering clients (they are redirected to the
// new leaders), then closes as Close does. ctx bounds the handoff; when it ends, Shutdown
// closes anyway and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.handOff(ctx)
	s.closeOnce.Do(func() {
		s.stopHTTP()
		s.stopSDK()
		s.rt.Close()
		if nerr := s.node.Shutdown(ctx); err == nil {
			err = nerr
		}
		s.mux.Close()
	})
	return err
}

// handOff transfers the leadership of the groups this node leads, in parallel.
func (s *Server) handOff(ctx context.Context) error {
	replicas := s.node.Placement().Replicas
	var wg sync.WaitGroup
	for _, g := range s.node.Groups() {
		if g.Raft().State() != raft.Leader || len(replicas[g.ID()]) < 2 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := g.Raft().LeadershipTransfer()
			done := make(chan error, 1)
			go func() { done <- f.Error() }()
			select {
			case err := <-done:
				if err != nil {
					s.log.Warn("leadership handoff failed", "group", g.ID(), "err", err)
				}
			case <-ctx.Done():
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("SDK listener failed", "err", err)
			}
			return
		}
		c := newSDKConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// stopSDK stops accepting SDK connections, closes those open and waits for their
// goroutines.
func (s *Server) stopSDK() {
	s.mu.Lock()
	s.closed = true
	conns := make([]*sdkConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.ln.Close()
	for _, c := range conns {
		c.close()
	}
	s.wg.Wait()
}

// topology is the answer to a topology request: the placement, the members, and the
// leader of each hosted group as this node knows it.
func (s *Server) topology() *wire.Topology {
	t := &wire.Topology{
		ClusterID: s.clusterID,
		Slots:     s.slots,
		Members:   s.members,
		Leaders:   map[uint64]string{},
	}
	for _, g := range s.node.Groups() {
		if id, _ := g.Leader(); id != "" {
			t.Leaders[g.ID()] = id
		}
	}
	return t
}

func (s *Server) String() string { return fmt.Sprintf("duro node %s at %s", s.cfg.ID, s.Addr()) }
