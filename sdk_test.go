package duro_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duro-db/duro/client"
	"github.com/duro-db/duro/internal/framing"
	"github.com/duro-db/duro/internal/objid"
	"github.com/duro-db/duro/internal/testutil"
	"github.com/duro-db/duro/internal/wire"
)

func ctxFor(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestCalls covers addressing an object by name, by ID and by a parsed ID, the JSON path,
// and that the name travels to the object.
func TestCalls(t *testing.T) {
	c := newCluster(t, 3)
	cl := c.dial(c.addrs[:1])
	ctx := ctxFor(t, 20*time.Second)
	ns := cl.Namespace("Counter")

	byName := ns.GetByName("visits")
	if v, err := client.Call[int64](ctx, byName, "Add", 2); err != nil || v != 2 {
		t.Fatalf("Add by name = %d, %v; want 2", v, err)
	}
	// The same object through its ID, and through its printed ID.
	byID := ns.Get(ns.IDFromName("visits"))
	if v, err := client.Call[int64](ctx, byID, "Add", 3); err != nil || v != 5 {
		t.Fatalf("Add by ID = %d, %v; want 5", v, err)
	}
	id, err := ns.IDFromString(byName.ID().String())
	if err != nil {
		t.Fatal(err)
	}
	if v, err := client.Call[int64](ctx, ns.Get(id), "Get", nil); err != nil || v != 5 {
		t.Fatalf("Get by parsed ID = %d, %v; want 5", v, err)
	}
	// A unique ID is another object.
	if v, err := client.Call[int64](ctx, ns.Get(ns.NewUniqueID()), "Get", nil); err != nil || v != 0 {
		t.Fatalf("Get of a new object = %d, %v; want 0", v, err)
	}

	if name, err := client.Call[string](ctx, byName, "Name", nil); err != nil || name != "visits" {
		t.Fatalf("Name by name = %q, %v", name, err)
	}
	if name, err := client.Call[string](ctx, byID, "Name", nil); err != nil || name != "" {
		t.Fatalf("Name by ID = %q, %v; want empty", name, err)
	}

	// Struct arguments travel with their json tags, in msgpack and in JSON.
	out, err := client.Call[echoArgs](ctx, byName, "Echo", echoArgs{Text: "hi", Count: 1})
	if err != nil || out != (echoArgs{Text: "hi", Count: 2}) {
		t.Fatalf("Echo = %+v, %v", out, err)
	}
	js, err := byName.CallJSON(ctx, "Echo", []byte(`{"text":"yo","count":41}`))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(js, &got); err != nil || got["text"] != "yo" || got["count"] != float64(42) {
		t.Fatalf("CallJSON = %s, %v", js, err)
	}
	if js, err := byName.CallJSON(ctx, "Add", []byte(`10`)); err != nil || string(js) != "15" {
		t.Fatalf("CallJSON Add = %s, %v; want 15", js, err)
	}
}

// TestConcurrentClientsExact: 64 clients incrementing one counter end at the exact sum.
func TestConcurrentClientsExact(t *testing.T) {
	c := newCluster(t, 3)
	ctx := ctxFor(t, 60*time.Second)
	const clients, each = 64, 10
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		cl := c.dial([]string{c.addrs[i%len(c.addrs)]})
		wg.Add(1)
		go func() {
			defer wg.Done()
			stub := cl.Namespace("Counter").GetByName("shared")
			for range each {
				if err := stub.Call(ctx, "Add", 1, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cl := c.dial(c.addrs)
	v, err := client.Call[int64](ctx, cl.Namespace("Counter").GetByName("shared"), "Get", nil)
	if err != nil || v != clients*each {
		t.Fatalf("counter = %d, %v; want %d", v, err, clients*each)
	}
}

// TestBadInput: every kind of bad input gives its typed error, and leaves the node and
// the object's state as they were.
func TestBadInput(t *testing.T) {
	c := newCluster(t, 3)
	cl := c.dial(c.addrs)
	ctx := ctxFor(t, 30*time.Second)
	counters := cl.Namespace("Counter")
	obj := counters.GetByName("victim")
	if err := obj.Call(ctx, "Add", 7, nil); err != nil {
		t.Fatal(err)
	}

	var malformed client.ID // the zero ID is no class's
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"unknown class", func() error { return cl.Namespace("Nope").GetByName("x").Call(ctx, "Get", nil, nil) }, client.ErrNoSuchClass},
		{"unknown method", func() error { return obj.Call(ctx, "Nope", nil, nil) }, client.ErrNoSuchMethod},
		{"malformed ID", func() error { return counters.Get(malformed).Call(ctx, "Get", nil, nil) }, client.ErrInvalidID},
		{"ID of another class", func() error {
			return counters.Get(cl.Namespace("Other").IDFromName("x")).Call(ctx, "Get", nil, nil)
		}, client.ErrWrongClass},
		{"wrong argument type", func() error { return obj.Call(ctx, "Add", "seven", nil) }, client.ErrBadArgument},
		{"wrong JSON argument", func() error { _, err := obj.CallJSON(ctx, "Add", []byte(`{"n":1}`)); return err }, client.ErrBadArgument},
		{"argument larger than a frame", func() error { return obj.Call(ctx, "Echo", echoArgs{Text: strings.Repeat("a", 5<<20)}, nil) }, client.ErrTooLarge},
		{"value over the storage limit", func() error { return obj.Call(ctx, "PutHuge", nil, nil) }, client.ErrValueTooLarge},
		{"result into the wrong type", func() error { var s []string; return obj.Call(ctx, "Get", nil, &s) }, client.ErrBadArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			// Said once: the client's wording of the code, not the node's as well.
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.want.Error()) || strings.Count(msg, tt.want.Error()) != 1 || strings.Count(msg, "duro:") > 1 ||
				strings.Contains(msg, "objects:") || strings.Contains(msg, "fsm:") {
				t.Errorf("error %q does not say %q once, in the client's words", msg, tt.want)
			}
			if client.IsRetryable(err) {
				t.Errorf("IsRetryable(%v) = true", err)
			}
		})
	}
	if !errors.Is(client.ErrValueTooLarge, client.ErrTooLarge) {
		t.Error("ErrValueTooLarge does not match ErrTooLarge")
	}

	for _, method := range []string{"AddThenPanic", "AddThenFail"} {
		err := obj.Call(ctx, method, 1000, nil)
		var he *client.HandlerError
		if !errors.As(err, &he) {
			t.Fatalf("%s: got %v, want *HandlerError", method, err)
		}
		if method == "AddThenPanic" && !strings.Contains(he.Message, "boom") {
			t.Errorf("panic message %q does not say what panicked", he.Message)
		}
	}
	if n := c.stats.panics.Load(); n != 1 {
		t.Fatalf("handler panicked %d times, want once (a handler error must not be retried)", n)
	}
	// The node lives and nothing of the failed calls was written.
	if v, err := client.Call[int64](ctx, obj, "Add", 1); err != nil || v != 8 {
		t.Fatalf("after bad calls Add = %d, %v; want 8", v, err)
	}
}

// TestServerMapsBadIDs sends what the Go client refuses to send: IDs that are malformed
// or of another class, and a name that does not match the ID.
func TestServerMapsBadIDs(t *testing.T) {
	c := newCluster(t, 1)
	rc := dialRaw(t, c.addrs[0])
	good := objid.FromName("Counter", "a")
	tests := []struct {
		name string
		call wire.Call
		want wire.Code
	}{
		{"malformed", wire.Call{Class: "Counter", Method: "Get"}, wire.CodeInvalidID},
		{"other class", wire.Call{Class: "Counter", ID: objid.FromName("Other", "a"), Method: "Get"}, wire.CodeWrongClass},
		{"name of another ID", wire.Call{Class: "Counter", ID: good, Name: "b", Method: "Get"}, wire.CodeInvalidID},
		{"no class", wire.Call{ID: good, Method: "Get"}, wire.CodeNoSuchClass},
		{"bad msgpack args", wire.Call{Class: "Counter", ID: good, Method: "Add", Args: []byte{0xc1}}, wire.CodeBadArgument},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := rc.roundTrip(t, &wire.Request{StreamID: uint64(i + 1), Op: wire.OpCall, Call: tt.call})
			if resp.Err == nil || resp.Err.Code != tt.want {
				t.Fatalf("got %+v, want code %v", resp.Err, tt.want)
			}
		})
	}
	resp := rc.roundTrip(t, &wire.Request{StreamID: 99, Op: 42})
	if resp.Err == nil || resp.Err.Code != wire.CodeBadRequest {
		t.Fatalf("unknown op: got %+v, want CodeBadRequest", resp.Err)
	}
}

// TestTopology checks the topology a node reports.
func TestTopology(t *testing.T) {
	c := newCluster(t, 3)
	rc := dialRaw(t, c.addrs[1])
	resp := rc.roundTrip(t, &wire.Request{StreamID: 1, Op: wire.OpTopology})
	topo := resp.Topology
	if topo == nil {
		t.Fatalf("no topology: %+v", resp)
	}
	if len(topo.Slots) != 256 || len(topo.Members) != 3 || topo.ClusterID == "" {
		t.Fatalf("topology = %d slots, %d members, cluster %q", len(topo.Slots), len(topo.Members), topo.ClusterID)
	}
	for g := uint64(1); g <= 4; g++ {
		if topo.Leaders[g] == "" {
			t.Errorf("no leader reported for group %d", g)
		}
	}
}

// TestNotLeaderRedirect moves a group's leader after the client learnt it: the client's
// first attempt reaches a follower, which redirects it.
func TestNotLeaderRedirect(t *testing.T) {
	c := newCluster(t, 3, noBalance)
	logs := &recordingHandler{}
	cl := c.dial(c.addrs, client.WithLogger(slog.New(logs)))
	ctx := ctxFor(t, 20*time.Second)
	stub := cl.Namespace("Counter").GetByName("moving")
	if err := stub.Call(ctx, "Add", 1, nil); err != nil {
		t.Fatal(err)
	}
	gid := c.groupOf(stub.ID())
	old := c.leaderOf(gid)
	if err := c.servers[old].Node().Group(gid).Raft().LeadershipTransfer().Error(); err != nil {
		t.Fatalf("transfer leadership: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, "a new serving leader", func() bool { return c.leaderOf(gid) != old })
	newLeader := c.leaderOf(gid)
	newID := c.servers[newLeader].Node().ID()
	testutil.WaitFor(t, 10*time.Second, "the old leader to learn the new one", func() bool {
		id, _ := c.servers[old].Node().Group(gid).Leader()
		return id == newID
	})

	// A raw call to the old leader gets the hint.
	rc := dialRaw(t, c.addrs[old])
	resp := rc.roundTrip(t, &wire.Request{StreamID: 1, Op: wire.OpCall, Call: wire.Call{Class: "Counter", ID: stub.ID(), Method: "Get"}})
	if resp.Err == nil || resp.Err.Code != wire.CodeNotLeader || resp.Err.LeaderAddr != c.addrs[newLeader] || resp.Err.Group != gid {
		t.Fatalf("follower answered %+v, want NotLeader pointing at %s", resp.Err, c.addrs[newLeader])
	}

	if v, err := client.Call[int64](ctx, stub, "Add", 1); err != nil || v != 2 {
		t.Fatalf("Add after the move = %d, %v; want 2", v, err)
	}
	if !logs.has("following leader hint") {
		t.Fatal("the client did not follow a leader hint: its first attempt did not reach the old leader")
	}
}

// TestLeaderKilledExactlyOnce closes the leader of a busy group mid-load. Calls keep
// succeeding, and every counter equals the increments acknowledged for it: a retry after
// the failover never applies twice, and no acknowledged increment is lost.
func TestLeaderKilledExactlyOnce(t *testing.T) {
	c := newCluster(t, 3)
	cl := c.dial(c.addrs)
	ctx := ctxFor(t, 60*time.Second)
	ns := cl.Namespace("Counter")

	const objectsN, workers = 8, 32
	stubs := make([]*client.Stub, objectsN)
	for i := range stubs {
		stubs[i] = ns.GetByName(fmt.Sprintf("kill-%d", i))
	}
	victim := c.leaderOf(c.groupOf(stubs[0].ID()))

	var acked [objectsN]atomic.Int64
	var total atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := i % objectsN
				cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				err := stubs[k].Call(cctx, "Add", 1, nil)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("object %d: %w", k, err)
					return
				}
				acked[k].Add(1)
				total.Add(1)
			}
		}()
	}
	testutil.WaitFor(t, 20*time.Second, "load before the kill", func() bool { return total.Load() >= 200 })
	before := total.Load()
	c.kill(victim)
	testutil.WaitFor(t, 30*time.Second, "load after the kill", func() bool {
		select {
		case err := <-errs:
			t.Fatalf("a call failed: %v", err)
		default:
		}
		return total.Load() >= before+400
	})
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a call failed: %v (leaders: %s)", err, c.leaders())
	}
	for k, stub := range stubs {
		v, err := client.Call[int64](ctx, stub, "Get", nil)
		if err != nil {
			t.Fatal(err)
		}
		if v != acked[k].Load() {
			t.Errorf("object %d: counter %d, acknowledged increments %d", k, v, acked[k].Load())
		}
	}
}

// TestShutdownHandsOff shuts a leader down gracefully under load: no call fails.
func TestShutdownHandsOff(t *testing.T) {
	c := newCluster(t, 3)
	cl := c.dial(c.addrs)
	ctx := ctxFor(t, 60*time.Second)
	stub := cl.Namespace("Counter").GetByName("handoff")
	victim := c.leaderOf(c.groupOf(stub.ID()))
	var n atomic.Int64
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if i == 50 {
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := c.servers[victim].Shutdown(sctx)
				cancel()
				if err != nil {
					done <- fmt.Errorf("shutdown: %w", err)
					return
				}
			}
			if i == 150 {
				done <- nil
				return
			}
			if err := stub.Call(ctx, "Add", 1, nil); err != nil {
				done <- err
				return
			}
			n.Add(1)
		}
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.servers[victim] = nil
	if v, err := client.Call[int64](ctx, stub, "Get", nil); err != nil || v != n.Load() {
		t.Fatalf("counter = %d, %v; want %d", v, err, n.Load())
	}
}

// TestGarbageClosesOnlyThatConnection sends bytes that are not requests: the node closes
// that connection, and nothing else notices.
func TestGarbageClosesOnlyThatConnection(t *testing.T) {
	c := newCluster(t, 1)
	cl := c.dial(c.addrs)
	ctx := ctxFor(t, 20*time.Second)
	stub := cl.Namespace("Counter").GetByName("bystander")
	if err := stub.Call(ctx, "Add", 1, nil); err != nil {
		t.Fatal(err)
	}
	bystander := dialRaw(t, c.addrs[0])

	frame := func(payload []byte) []byte {
		var b strings.Builder
		if err := framing.WriteFrame(&b, payload); err != nil {
			t.Fatal(err)
		}
		return []byte(b.String())
	}
	tests := []struct {
		name string
		raw  []byte
	}{
		{"garbage frame", frame([]byte("this is not msgpack"))},
		{"truncated request", frame(wire.AppendRequest(nil, &wire.Request{StreamID: 1, Op: wire.OpTopology})[:2])},
		{"oversized frame", []byte{0x7f, 0xff, 0xff, 0xff}},
		{"huge declared string", frame([]byte{0x93, 0x01, 0x01, 0x9a, 0xdb, 0xff, 0xff, 0xff, 0xff})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := framing.Dial(ctx, c.addrs[0], framing.ProtoClient, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Write(tt.raw); err != nil {
				t.Fatal(err)
			}
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := nc.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
				t.Fatalf("connection not closed: read %d bytes, %v", n, err)
			}
		})
	}
	if v, err := client.Call[int64](ctx, stub, "Add", 1); err != nil || v != 2 {
		t.Fatalf("client after garbage: %d, %v", v, err)
	}
	if resp := bystander.roundTrip(t, &wire.Request{StreamID: 5, Op: wire.OpTopology}); resp.Topology == nil {
		t.Fatalf("bystander connection: %+v", resp)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rawConn speaks the SDK protocol by hand, to send what the client never would.
type rawConn struct{ nc net.Conn }

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := framing.Dial(context.Background(), addr, framing.ProtoClient, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{nc: nc}
}

func (r *rawConn) roundTrip(t testing.TB, req *wire.Request) *wire.Response {
	t.Helper()
	r.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := framing.WriteFrame(r.nc, wire.AppendRequest(nil, req)); err != nil {
		t.Fatal(err)
	}
	frame, err := framing.ReadFrame(r.nc, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := wire.DecodeResponse(frame)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StreamID != req.StreamID {
		t.Fatalf("response to stream %d, want %d", resp.StreamID, req.StreamID)
	}
	return resp
}

// recordingHandler keeps the messages of the records logged through it.
type recordingHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.msgs = append(h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) has(msg string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		if m == msg {
			return true
		}
	}
	return false
}
