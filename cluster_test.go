package duro_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/client"
	"github.com/duro-db/duro/internal/testutil"
	"github.com/duro-db/duro/objects"
	"github.com/duro-db/duro/transport"
)

// testCluster is an in-process cluster of duro.Servers on loopback ports.
type testCluster struct {
	t       testing.TB
	servers []*duro.Server
	addrs   []string
	stats   *classStats
}

type clusterOpt func(*duro.Config)

// fastTiming keeps elections short so tests settle quickly.
func fastTiming() duro.Timing {
	return duro.Timing{
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      20 * time.Millisecond,
		BalanceInterval:    300 * time.Millisecond,
	}
}

// noBalance keeps leaders where they were elected, so a test can move them itself.
func noBalance(c *duro.Config) { c.Timing.BalanceInterval = time.Hour }

func testLogger() *slog.Logger {
	if os.Getenv("DURO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newCluster starts n nodes serving the test classes and waits until every group has a
// leader. The listeners are opened first, since every node needs every address.
func newCluster(t testing.TB, n int, opts ...clusterOpt) *testCluster {
	t.Helper()
	c := &testCluster{t: t, stats: &classStats{}}
	reg := objects.NewRegistry()
	registerTestClasses(reg, c.stats)
	var muxes []*transport.Mux
	var peers []duro.Peer
	for i := range n {
		m, err := transport.Listen("127.0.0.1:0", transport.Options{})
		if err != nil {
			t.Fatal(err)
		}
		muxes = append(muxes, m)
		peers = append(peers, duro.Peer{ID: fmt.Sprintf("n%d", i+1), Addr: m.Addr().String()})
		c.addrs = append(c.addrs, m.Addr().String())
	}
	for i := range n {
		cfg := duro.Config{
			ID:       peers[i].ID,
			DataDir:  t.TempDir(),
			Peers:    peers,
			Groups:   4,
			Slots:    256,
			Timing:   fastTiming(),
			NoSync:   true,
			Logger:   testLogger().With("n", peers[i].ID),
			Mux:      muxes[i],
			Registry: reg,
		}
		for _, o := range opts {
			o(&cfg)
		}
		s, err := duro.Start(context.Background(), cfg)
		if err != nil {
			t.Fatalf("start %s: %v", cfg.ID, err)
		}
		c.servers = append(c.servers, s)
	}
	t.Cleanup(c.close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range c.servers {
		if err := s.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *testCluster) close() {
	for i := range c.servers {
		c.kill(i)
	}
}

// kill closes server i at once, as a crash would look to its peers and clients.
func (c *testCluster) kill(i int) {
	if c.servers[i] != nil {
		c.servers[i].Close()
		c.servers[i] = nil
	}
}

// dial returns a client of the cluster, closed at the end of the test.
func (c *testCluster) dial(endpoints []string, opts ...client.Option) *client.Client {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, endpoints, opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// groupOf returns the data group holding id.
func (c *testCluster) groupOf(id client.ID) uint64 {
	p := c.anyServer().Node().Placement()
	return p.Slots[id.Slot(len(p.Slots))]
}

func (c *testCluster) anyServer() *duro.Server {
	for _, s := range c.servers {
		if s != nil {
			return s
		}
	}
	c.t.Fatal("no server running")
	return nil
}

// leaderOf returns the index of the server that serves group gid, waiting for one.
func (c *testCluster) leaderOf(gid uint64) int {
	c.t.Helper()
	idx := -1
	testutil.WaitFor(c.t, 10*time.Second, fmt.Sprintf("a serving leader of group %d", gid), func() bool {
		for i, s := range c.servers {
			if s == nil {
				continue
			}
			if g := s.Node().Group(gid); g != nil {
				if _, ok := g.LeaderTerm(); ok {
					idx = i
					return true
				}
			}
		}
		return false
	})
	return idx
}

// classStats counts what the test classes' handlers did, across all nodes.
type classStats struct {
	panics atomic.Int64
}

type counter struct{}

// tooBig is one byte over the storage value limit once msgpack-encoded.
var tooBig = strings.Repeat("x", objects.MaxValueSize)

type echoArgs struct {
	Text  string `json:"text"`
	Count int    `json:"count"`
}

func registerTestClasses(reg *objects.Registry, st *classStats) {
	objects.RegisterIn(reg, "Counter", func() *counter { return &counter{} },
		objects.Method("Add", func(_ *counter, ctx *objects.Context, n int64) (int64, error) {
			v, _, err := objects.GetAs[int64](ctx.Storage(), "n")
			if err != nil {
				return 0, err
			}
			v += n
			return v, ctx.Storage().Put("n", v)
		}),
		objects.Method("Get", func(_ *counter, ctx *objects.Context, _ struct{}) (int64, error) {
			v, _, err := objects.GetAs[int64](ctx.Storage(), "n")
			return v, err
		}),
		// AddThenPanic writes, then panics: nothing of it may be written.
		objects.Method("AddThenPanic", func(_ *counter, ctx *objects.Context, n int64) (int64, error) {
			if err := ctx.Storage().Put("n", n); err != nil {
				return 0, err
			}
			st.panics.Add(1)
			panic("boom")
		}),
		objects.Method("AddThenFail", func(_ *counter, ctx *objects.Context, n int64) (int64, error) {
			if err := ctx.Storage().Put("n", n); err != nil {
				return 0, err
			}
			return 0, errors.New("refused")
		}),
		objects.Method("PutHuge", func(_ *counter, ctx *objects.Context, _ struct{}) (bool, error) {
			return true, ctx.Storage().Put("huge", tooBig)
		}),
		objects.Method("Name", func(_ *counter, ctx *objects.Context, _ struct{}) (string, error) {
			return ctx.Name(), nil
		}),
		objects.Method("Echo", func(_ *counter, _ *objects.Context, in echoArgs) (echoArgs, error) {
			in.Count++
			return in, nil
		}),
	)
	objects.RegisterIn(reg, "Other", func() *counter { return &counter{} },
		objects.Method("Get", func(_ *counter, ctx *objects.Context, _ struct{}) (int64, error) {
			return 0, nil
		}),
	)
}

// servingNodes is for failure messages.
func (c *testCluster) leaders() string {
	var b strings.Builder
	for i, s := range c.servers {
		if s == nil {
			continue
		}
		fmt.Fprintf(&b, "n%d leads %v; ", i+1, s.Node().Leading())
	}
	return b.String()
}
