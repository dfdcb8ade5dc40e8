package raftgroup

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/testutil"
	"github.com/duro-db/duro/transport"
)

// testCluster is an in-process cluster: n nodes, each with its own Mux on a loopback port
// and its own data dir.
type testCluster struct {
	t     testing.TB
	cfgs  []Config
	nodes []*Node
	muxes []*transport.Mux
}

type clusterOpt func(*Config)

func withGroups(g int) clusterOpt { return func(c *Config) { c.Groups = g } }
func withTiming(t Timing) clusterOpt {
	return func(c *Config) { c.Timing = t }
}

// fastTiming keeps elections short so tests settle quickly.
func fastTiming() Timing {
	return Timing{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      20 * time.Millisecond,
		BalanceInterval:    300 * time.Millisecond,
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("DURO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newCluster(t testing.TB, n int, opts ...clusterOpt) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	var peers []Peer
	for i := 0; i < n; i++ {
		m, err := transport.Listen("127.0.0.1:0", transport.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c.muxes = append(c.muxes, m)
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i+1), Addr: m.Addr().String()})
	}
	for i := 0; i < n; i++ {
		cfg := Config{ID: peers[i].ID, DataDir: t.TempDir(), Peers: peers, Groups: 4,
			Timing: fastTiming(), NoSync: true, Logger: testLogger().With("n", peers[i].ID)}
		for _, o := range opts {
			o(&cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
		node, err := Start(cfg, c.muxes[i])
		if err != nil {
			t.Fatalf("start %s: %v", cfg.ID, err)
		}
		c.nodes = append(c.nodes, node)
	}
	t.Cleanup(c.close)
	return c
}

func (c *testCluster) close() {
	for i := range c.nodes {
		c.stop(i)
	}
}

// stop closes node i and its listener.
func (c *testCluster) stop(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].Close()
		c.nodes[i] = nil
	}
	if c.muxes[i] != nil {
		c.muxes[i].Close()
		c.muxes[i] = nil
	}
}

// restart reopens node i from its data dir on its old address.
func (c *testCluster) restart(i int) {
	c.t.Helper()
	c.stop(i)
	var m *transport.Mux
	var err error
	testutil.WaitFor(c.t, 10*time.Second, "listen again", func() bool {
		m, err = transport.Listen(c.cfgs[i].self().Addr, transport.Options{})
		return err == nil
	})
	c.muxes[i] = m
	node, err := Start(c.cfgs[i], m)
	if err != nil {
		c.t.Fatalf("restart %s: %v", c.cfgs[i].ID, err)
	}
	c.nodes[i] = node
}

// leader returns the index of the node serving group gid, waiting for one.
func (c *testCluster) leader(gid uint64) int {
	c.t.Helper()
	idx := -1
	testutil.WaitFor(c.t, 15*time.Second, fmt.Sprintf("a serving leader of group %d", gid), func() bool {
		for i, n := range c.nodes {
			if n == nil || n.Group(gid) == nil {
				continue
			}
			if _, ok := n.Group(gid).LeaderTerm(); ok {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

func (c *testCluster) waitAllLeaders() {
	c.t.Helper()
	for gid := range c.nodes[0].Placement().Replicas {
		c.leader(gid)
	}
}

func randomID() []byte {
	id := make([]byte, fsm.IDLen)
	rand.Read(id)
	return id
}

func put(obj []byte, kv ...string) *fsm.Command {
	cmd := &fsm.Command{Object: obj, Time: time.Now().UnixNano()}
	for i := 0; i+1 < len(kv); i += 2 {
		cmd.Ops = append(cmd.Ops, fsm.Op{Kind: fsm.OpPut, Key: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return cmd
}

var testClient = func() []byte { b := make([]byte, 16); rand.Read(b); return b }()
var testSeq atomic.Uint64

// commit sends cmd to whichever node serves gid, retrying on NotLeader and on unknown
// outcomes; the command carries a request ID, so a retry is applied at most once.
func (c *testCluster) commit(gid uint64, cmd *fsm.Command) *fsm.Result {
	c.t.Helper()
	if cmd.Client == nil {
		cmd.Client, cmd.Seq = testClient, testSeq.Add(1)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		g := c.nodes[c.leader(gid)].Group(gid)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := g.Commit(ctx, cmd)
		cancel()
		if err == nil {
			return res
		}
		retry := errors.Is(err, ErrNotLeader) || errors.Is(err, ErrUnknownOutcome)
		if !retry || time.Now().After(deadline) {
			c.t.Fatalf("commit to group %d: %v", gid, err)
		}
	}
}

func get(t testing.TB, g *Group, obj []byte, key string) (string, bool) {
	t.Helper()
	var v string
	var ok bool
	if err := g.View(func(tx *fsm.Tx) error {
		b, found := tx.Get(obj, []byte(key))
		v, ok = string(b), found
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v, ok
}

// isDone reports whether c is closed.
func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
