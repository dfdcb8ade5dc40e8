package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/internal/framing"
	"github.com/duro-db/duro/internal/testutil"
)

// listFSM records every applied command, in order.
type listFSM struct {
	mu   sync.Mutex
	cmds []string
}

func (f *listFSM) Apply(l *raft.Log) any {
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
	f.cmds = cmds
	f.mu.Unlock()
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
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (listSnapshot) Release() {}

// raftCluster runs groups × nodes raft.Raft instances, one Mux per node, every
// group's transport a StreamLayer of that node's Mux.
type raftCluster struct {
	muxes  []*Mux
	groups []uint64
	rafts  map[uint64][]*raft.Raft // by group, then node
	fsms   map[uint64][]*listFSM
	once   sync.Once
}

// testRaftConfig is tuned for loopback: fast elections without flapping under
// the race detector on two cores.
func testRaftConfig(id string) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(id)
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.Logger = hclog.NewNullLogger()
	return c
}

func newRaftCluster(tb testing.TB, nodes int, groups []uint64, netLogger hclog.Logger) *raftCluster {
	tb.Helper()
	c := &raftCluster{
		groups: groups,
		rafts:  make(map[uint64][]*raft.Raft),
		fsms:   make(map[uint64][]*listFSM),
	}
	tb.Cleanup(c.shutdown)
	for range nodes {
		m, err := Listen("127.0.0.1:0", Options{})
		if err != nil {
			tb.Fatalf("Listen: %v", err)
		}
		c.muxes = append(c.muxes, m)
	}
	var servers []raft.Server
	for i, m := range c.muxes {
		servers = append(servers, raft.Server{
			ID:      raft.ServerID(fmt.Sprintf("n%d", i)),
			Address: raftAddr(m),
		})
	}
	for _, g := range groups {
		for i, m := range c.muxes {
			fsm := &listFSM{}
			store := raft.NewInmemStore()
			trans := NewRaftTransport(m.RaftLayer(g), 0, 0, netLogger)
			r, err := raft.NewRaft(testRaftConfig(string(servers[i].ID)), fsm, store, store, raft.NewInmemSnapshotStore(), trans)
			if err != nil {
				tb.Fatalf("NewRaft group %d node %d: %v", g, i, err)
			}
			c.rafts[g] = append(c.rafts[g], r)
			c.fsms[g] = append(c.fsms[g], fsm)
		}
		// Any one member may bootstrap; the others learn the configuration
		// from the leader.
		if err := c.rafts[g][0].BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			tb.Fatalf("bootstrap group %d: %v", g, err)
		}
	}
	return c
}

// shutdown stops every raft in the documented order (rafts, which close
// their transports, then the Muxes). It is idempotent.
func (c *raftCluster) shutdown() {
	c.once.Do(func() {
		var wg sync.WaitGroup
		for _, rs := range c.rafts {
			for _, r := range rs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r.Shutdown().Error()
				}()
			}
		}
		wg.Wait()
		for _, m := range c.muxes {
			m.Close()
		}
	})
}

// leader waits for group g to have exactly one leader and returns it.
func (c *raftCluster) leader(tb testing.TB, g uint64) *raft.Raft {
	tb.Helper()
	var leader *raft.Raft
	testutil.WaitFor(tb, 20*time.Second, fmt.Sprintf("a leader in group %d", g), func() bool {
		leader = nil
		for _, r := range c.rafts[g] {
			if r.State() == raft.Leader {
				if leader != nil {
					return false
				}
				leader = r
			}
		}
		return leader != nil
	})
	return leader
}

// apply applies cmds in group g through its leader, retrying on a leader
// change before the command was accepted.
func (c *raftCluster) apply(tb testing.TB, g uint64, cmds ...string) {
	tb.Helper()
	for _, cmd := range cmds {
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := c.leader(tb, g).Apply([]byte(cmd), 5*time.Second).Error()
			if err == nil {
				break
			}
			if !errors.Is(err, raft.ErrNotLeader) || time.Now().After(deadline) {
				tb.Fatalf("apply %q in group %d: %v", cmd, g, err)
			}
		}
	}
}

// waitAgree waits until every replica of group g has applied exactly want.
func (c *raftCluster) waitAgree(tb testing.TB, g uint64, want []string) {
	tb.Helper()
	testutil.WaitFor(tb, 20*time.Second, fmt.Sprintf("group %d replicas to apply %d commands", g, len(want)), func() bool {
		for _, f := range c.fsms[g] {
			if !slices.Equal(f.list(), want) {
				return false
			}
		}
		return true
	})
}

func commands(g uint64, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("group-%d-cmd-%d", g, i))
	}
	return out
}

// TestRaftGroupsEndToEnd runs two Raft groups over three Muxes and checks
// that each group elects a leader and replicates its own commands, and only
// its own, to every member; then that hostile connections to the Muxes,
// including garbage after a valid Raft header, disturb neither group; then
// that shutdown leaves no goroutine behind.
func TestRaftGroupsEndToEnd(t *testing.T) {
	before := runtime.NumGoroutine()
	groups := []uint64{1, 7}
	c := newRaftCluster(t, 3, groups, hclog.NewNullLogger())

	want := map[uint64][]string{}
	for _, g := range groups {
		want[g] = commands(g, 0, 50)
		c.apply(t, g, want[g]...)
	}
	for _, g := range groups {
		c.waitAgree(t, g, want[g])
	}

	// Garbage, on every node, for every group and for nobody's group.
	rng := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 64<<10)
	for i := range junk {
		junk[i] = byte(rng.UintN(256))
	}
	payloads := []struct {
		name string
		data []byte
	}{
		{"random bytes", junk},
		// rpcAppendEntries (0) followed by msgpack claiming huge containers:
		// the decoder must not allocate what the lengths promise.
		{"huge array", []byte{0, 0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"huge map", []byte{0, 0xdf, 0xff, 0xff, 0xff, 0xff}},
		{"huge entries", []byte{0, 0x81, 0xa7, 'E', 'n', 't', 'r', 'i', 'e', 's', 0xdd, 0x7f, 0xff, 0xff, 0xff}},
		{"huge string", []byte{0, 0xdb, 0x7f, 0xff, 0xff, 0xff, 'x'}},
		{"unknown rpc", []byte{99}},
	}
	for _, m := range c.muxes {
		for _, g := range append([]uint64{3}, groups...) {
			for _, p := range payloads {
				conn, err := net.Dial("tcp", m.Addr().String())
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				hdr, _ := framing.AppendHeader(nil, framing.ProtoRaft, g)
				if _, err := conn.Write(append(hdr, p.data...)); err != nil {
					t.Fatalf("write %s: %v", p.name, err)
				}
				// A prefix of a plausible message keeps raft's decoder
				// waiting for the rest; ending the stream makes it give up.
				conn.(*net.TCPConn).CloseWrite()
				expectClosedByPeer(t, conn, 10*time.Second)
				conn.Close()
			}
		}
	}

	for _, g := range groups {
		more := commands(g, 50, 100)
		want[g] = append(want[g], more...)
		c.apply(t, g, more...)
	}
	for _, g := range groups {
		c.waitAgree(t, g, want[g])
		for _, f := range c.fsms[g] {
			for _, cmd := range f.list() {
				if !strings.HasPrefix(cmd, fmt.Sprintf("group-%d-", g)) {
					t.Fatalf("group %d applied %q from another group", g, cmd)
				}
			}
		}
	}

	c.shutdown()
	checkNoGoroutineLeak(t, before)
}

// syncBuffer is an io.Writer safe for the transport's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRaftTransportClosesQuietly runs RPCs between two NetworkTransports,
// closes them as raft.Shutdown does, and checks that nothing was logged at
// error level (raft logs every Accept error it sees before its own shutdown
// and every read error but io.EOF) and that no goroutine is left.
func TestRaftTransportClosesQuietly(t *testing.T) {
	before := runtime.NumGoroutine()
	var logs syncBuffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})
	a, err := Listen("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Listen("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	ta := NewRaftTransport(a.RaftLayer(4), 2, time.Second, logger)
	tb := NewRaftTransport(b.RaftLayer(4), 2, time.Second, logger)

	// Answer every RPC that reaches tb.
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case rpc := <-tb.Consumer():
				rpc.Respond(&raft.RequestVoteResponse{Term: 9, Granted: true}, nil)
			case <-done:
				return
			}
		}
	}()
	for i := range 5 {
		var resp raft.RequestVoteResponse
		req := raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte("a"), Addr: []byte(ta.LocalAddr())}, Term: 9}
		if err := ta.RequestVote("b", tb.LocalAddr(), &req, &resp); err != nil {
			t.Fatalf("RequestVote %d: %v", i, err)
		}
		if !resp.Granted || resp.Term != 9 {
			t.Fatalf("RequestVote %d response = %+v", i, resp)
		}
	}
	if got, want := string(ta.LocalAddr()), a.Advertise().String(); got != want {
		t.Fatalf("transport LocalAddr = %q, want the advertise address %q", got, want)
	}

	// raft.Shutdown's order: transports first, then the Muxes. The serving
	// side goes first, so its handlers are blocked reading pooled
	// connections when their layer closes them.
	tb.Close()
	ta.Close()
	close(done)
	wg.Wait()
	a.Close()
	b.Close()
	checkNoGoroutineLeak(t, before)
	if s := logs.String(); s != "" {
		t.Fatalf("transport logged during a clean shutdown:\n%s", s)
	}
}

// BenchmarkRaftApply measures Apply throughput of one 3-node group with
// in-memory stores and FSM, through this package's Mux ("mux") and, as the
// baseline, through hashicorp/raft's own TCP transport with the same
// NetworkTransport settings ("raft-tcp"). Commands are 256 bytes, the values
// of the etcd comparison's writes (scripts/bench-vs-etcd.sh). "sequential" has one caller (latency bound); "parallel"
// has 64. A CPU-starved machine can make the leader miss its lease; callers
// then follow the new leader and the "leader-changes" metric says how often
// it happened, since such a run measures the machine more than the transport.
func BenchmarkRaftApply(b *testing.B) {
	for _, transport := range []string{"mux", "raft-tcp"} {
		b.Run(transport, func(b *testing.B) {
			c := benchCluster(b, transport)
			cmd := bytes.Repeat([]byte{'x'}, 256)
			b.Run("sequential", func(b *testing.B) {
				c.changes.Store(0)
				b.SetBytes(int64(len(cmd)))
				for b.Loop() {
					c.apply(b, cmd)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "applies/s")
				b.ReportMetric(float64(c.changes.Load()), "leader-changes")
			})
			b.Run("parallel", func(b *testing.B) {
				c.changes.Store(0)
				b.SetBytes(int64(len(cmd)))
				b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						c.apply(b, cmd)
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "applies/s")
				b.ReportMetric(float64(c.changes.Load()), "leader-changes")
			})
		})
	}
}

type benchRaft struct {
	rafts   []*raft.Raft
	muxes   []*Mux
	leader  atomic.Pointer[raft.Raft]
	changes atomic.Int64
}

// apply applies cmd through the current leader, following leadership if it
// moves. The outcome of a command caught in a leader change is unknown,
// which does not matter to a throughput figure.
func (c *benchRaft) apply(b *testing.B, cmd []byte) {
	for {
		l := c.leader.Load()
		err := l.Apply(cmd, 10*time.Second).Error()
		if err == nil {
			return
		}
		if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) {
			b.Error(err)
			return
		}
		if !c.findLeader(b, l) {
			return
		}
	}
}

// findLeader waits for a leader (old may win again) and publishes it in
// place of old, the leader the caller last used (nil at start). It reports
// failure with b.Error, not Fatal, as RunParallel's goroutines call it.
func (c *benchRaft) findLeader(b *testing.B, old *raft.Raft) bool {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if c.leader.Load() != old {
			return true // another caller published one
		}
		for _, r := range c.rafts {
			if r.State() == raft.Leader {
				if c.leader.CompareAndSwap(old, r) && old != nil {
					c.changes.Add(1)
				}
				return true
			}
		}
	}
	b.Error("no leader within 30s")
	return false
}

func (c *benchRaft) stop() {
	for _, r := range c.rafts {
		r.Shutdown().Error()
	}
	for _, m := range c.muxes {
		m.Close()
	}
}

// benchCluster starts a 3-node group with default raft timeouts and waits
// for its leader.
func benchCluster(b *testing.B, transport string) *benchRaft {
	b.Helper()
	c := &benchRaft{}
	b.Cleanup(c.stop)
	var (
		trans   []raft.Transport
		servers []raft.Server
	)
	for i := range 3 {
		id := raft.ServerID(fmt.Sprintf("n%d", i))
		switch transport {
		case "mux":
			m, err := Listen("127.0.0.1:0", Options{})
			if err != nil {
				b.Fatal(err)
			}
			c.muxes = append(c.muxes, m)
			trans = append(trans, NewRaftTransport(m.RaftLayer(1), 0, 0, hclog.NewNullLogger()))
		case "raft-tcp":
			// The same NetworkTransport settings over raft's own TCP
			// stream layer: the difference measured is the Mux alone.
			config := raftTransportConfig(0, 0, hclog.NewNullLogger())
			t, err := raft.NewTCPTransportWithConfig("127.0.0.1:0", nil, config)
			if err != nil {
				b.Fatal(err)
			}
			trans = append(trans, t)
		}
		servers = append(servers, raft.Server{ID: id, Address: trans[i].LocalAddr()})
	}
	for i := range 3 {
		conf := raft.DefaultConfig()
		conf.LocalID = servers[i].ID
		conf.Logger = hclog.NewNullLogger()
		store := raft.NewInmemStore()
		r, err := raft.NewRaft(conf, &listFSM{}, store, store, raft.NewInmemSnapshotStore(), trans[i])
		if err != nil {
			b.Fatal(err)
		}
		c.rafts = append(c.rafts, r)
	}
	if err := c.rafts[0].BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		b.Fatal(err)
	}
	if !c.findLeader(b, nil) {
		b.FailNow()
	}
	return c
}
