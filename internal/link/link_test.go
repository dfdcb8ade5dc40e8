package link

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/transport"
)

// testLinks starts one link per id, each on a Mux of its own, that reach each other by ID.
func testLinks(t *testing.T, ids ...string) map[string]*Link {
	t.Helper()
	muxes := map[string]*transport.Mux{}
	for _, id := range ids {
		m, err := transport.Listen("127.0.0.1:0", transport.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		muxes[id] = m
	}
	resolve := func(id string) (string, error) {
		if m := muxes[id]; m != nil {
			return m.Addr().String(), nil
		}
		return "", fmt.Errorf("unknown peer %q", id)
	}
	links := map[string]*Link{}
	for _, id := range ids {
		m := muxes[id]
		l := New(Config{ID: id, Advertise: m.Advertise().String(), HeartbeatTimeout: time.Second,
			LeaderHeartbeatTimeout: 2 * time.Second, Resolve: resolve, Beats: m.BeatListener(), Appends: m.AppendListener()})
		t.Cleanup(l.Close)
		links[id] = l
	}
	return links
}

// answer plays group gid's raft on l until stop: it accepts every append and heartbeat in
// term.
func answer(t *testing.T, l *Link, gid, term uint64) (stop chan struct{}) {
	stop = make(chan struct{})
	t.Cleanup(func() { close(stop) })
	rpcs := make(chan raft.RPC)
	l.apps.setConsumer(gid, rpcs, stop)
	l.beats.setHandler(gid, func(rpc raft.RPC) {
		rpc.Respond(&raft.AppendEntriesResponse{Term: term, Success: true}, nil)
	})
	go func() {
		for {
			select {
			case rpc := <-rpcs:
				req := rpc.Command.(*raft.AppendEntriesRequest)
				last := req.PrevLogEntry
				if n := len(req.Entries); n > 0 {
					last = req.Entries[n-1].Index
				}
				rpc.Respond(&raft.AppendEntriesResponse{Term: term, LastLog: last, Success: true}, nil)
			case <-stop:
				return
			}
		}
	}()
	return stop
}

// Appends reach the peer's group over the shared connection, and the link redials after
// every connection broke.
func TestAppendsReachThePeerAndRedial(t *testing.T) {
	links := testLinks(t, "a", "b")
	a, b := links["a"], links["b"]
	answer(t, b, 5, 7)
	send := func() *raft.AppendEntriesResponse {
		t.Helper()
		req := sampleAppend()
		var resp raft.AppendEntriesResponse
		if err := a.apps.appendEntries("b", 5, req, &resp, nil); err != nil {
			t.Fatal(err)
		}
		return &resp
	}
	if resp := send(); !resp.Success || resp.Term != 7 || resp.LastLog != 44 {
		t.Fatalf("response %+v", resp)
	}
	for _, l := range links {
		l.conns.mu.Lock()
		for c := range l.conns.open {
			c.Close()
		}
		l.conns.mu.Unlock()
	}
	// The first send after the break may still find the dead connection; the next redials.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var resp raft.AppendEntriesResponse
		err := a.apps.appendEntries("b", 5, sampleAppend(), &resp, nil)
		if err == nil && resp.Success {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no append got through after the connections broke: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := b.Stats().Delivered; got < 2 {
		t.Fatalf("%d requests delivered, want at least 2", got)
	}

	var resp raft.AppendEntriesResponse
	if err := a.apps.appendEntries("b", 6, sampleAppend(), &resp, nil); err == nil {
		t.Fatal("an append for a group the peer does not run succeeded")
	}
}

// Heartbeats and confirmations get the peer's answer through a round; a group the peer
// does not run is not acknowledged.
func TestRoundsAnswerHeartbeats(t *testing.T) {
	links := testLinks(t, "a", "b")
	a, b := links["a"], links["b"]
	answer(t, b, 5, 7)
	ack, err := a.beats.heartbeat("b", 5, 7, nil)
	if err != nil || !ack.ok || ack.term != 7 {
		t.Fatalf("heartbeat: %+v, %v", ack, err)
	}
	if n := a.Confirm(5, 7, []string{"b"}, 1, nil); n != 1 {
		t.Fatalf("Confirm = %d, want 1", n)
	}
	if ack, err := a.beats.heartbeat("b", 6, 7, nil); err != nil || ack.ok {
		t.Fatalf("heartbeat for a group the peer does not run: %+v, %v", ack, err)
	}
	if n := a.Confirm(6, 7, []string{"b"}, 1, nil); n != 0 {
		t.Fatalf("Confirm for a group the peer does not run = %d", n)
	}
	if a.Stats().Rounds == 0 {
		t.Fatal("no rounds counted")
	}
}

// A confirmation waits for a round that starts after it: with the peer gone, a fresh ack
// answers raft's heartbeat call, but not Confirm.
func TestConfirmNeedsANewRound(t *testing.T) {
	links := testLinks(t, "a", "b")
	a, b := links["a"], links["b"]
	answer(t, b, 5, 7)
	if _, err := a.beats.heartbeat("b", 5, 7, nil); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if ack, err := a.beats.heartbeat("b", 5, 7, nil); err != nil || !ack.ok {
		t.Fatalf("a heartbeat call within the fresh window was not answered from the last round: %+v, %v", ack, err)
	}
	if n := a.Confirm(5, 7, []string{"b"}, 1, nil); n != 0 {
		t.Fatalf("Confirm = %d with the peer gone", n)
	}
}

// Close ends every call in progress or to come, and every connection.
func TestCloseEndsEverything(t *testing.T) {
	links := testLinks(t, "a", "b")
	a, b := links["a"], links["b"]
	answer(t, b, 5, 7)
	if _, err := a.beats.heartbeat("b", 5, 7, nil); err != nil {
		t.Fatal(err)
	}
	a.Close()
	a.Close() // idempotent
	if _, err := a.beats.heartbeat("b", 5, 8, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("heartbeat after Close: %v", err)
	}
	var resp raft.AppendEntriesResponse
	if err := a.apps.appendEntries("b", 5, sampleAppend(), &resp, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after Close: %v", err)
	}
	a.conns.mu.Lock()
	n := len(a.conns.open)
	a.conns.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d connections open after Close", n)
	}
	if _, err := a.cfg.Beats.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the heartbeat listener is still open: %v", err)
	}
}

func TestUntilTick(t *testing.T) {
	iv := 300 * time.Millisecond
	for _, tc := range []struct {
		at   time.Duration // after a multiple of iv
		want time.Duration
	}{{0, iv}, {1, iv - 1}, {100 * time.Millisecond, 200 * time.Millisecond}, {iv - 1, 1}} {
		now := time.Unix(1800000000, 0).Add(tc.at) // a multiple of 300 ms
		if got := untilTick(now, iv); got != tc.want {
			t.Errorf("untilTick(+%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
}
