package transport

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/internal/framing"
	"github.com/duro-db/duro/internal/testutil"
)

// TestMuxRejectsBadConnections sends each kind of bad connection to a Mux
// while a good connection of a registered group stays open, and checks that
// the bad one is closed for the right reason, logged below warn, and that the
// good one and the Mux keep working.
func TestMuxRejectsBadConnections(t *testing.T) {
	rec := &logRecorder{}
	const headerTimeout = 300 * time.Millisecond
	m := newTestMux(t, Options{Logger: slog.New(rec), HeaderTimeout: headerTimeout})
	layer := m.RaftLayer(1)
	echoServer(t, layer)

	peer := newTestMux(t, Options{})
	good, err := peer.RaftLayer(1).Dial(raftAddr(m), time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer good.Close()
	roundTrip(t, good, "before")

	tests := []struct {
		name       string
		send       string
		closeWrite bool   // half-close after sending, as a peer that gives up
		wantErr    error  // cause logged for the rejection, if a sentinel
		wantText   string // or a substring of it
	}{
		{name: "garbage", send: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", wantErr: framing.ErrBadMagic},
		{name: "http", send: "GET / HTTP/1.1\r\nHost: x\r\n\r\n", wantErr: framing.ErrBadMagic},
		{name: "bad magic", send: "DUR0\x01\x01\x01", wantErr: framing.ErrBadMagic},
		{name: "bad version", send: "DURO\x07\x01\x01", wantErr: framing.ErrBadVersion},
		{name: "unknown protocol", send: "DURO\x01\x09", wantErr: framing.ErrUnknownProto},
		{name: "group overflow", send: "DURO\x01\x01\xff\xff\xff\xff\xff\xff", wantErr: framing.ErrBadGroup},
		{name: "unregistered group", send: "DURO\x01\x01\x02raft", wantText: "no raft layer for group 2"},
		{name: "no client listener", send: "DURO\x01\x02", wantText: "no listener for protocol 2"},
		{name: "truncated then closed", send: "DURO\x01", closeWrite: true, wantErr: io.ErrUnexpectedEOF},
		{name: "connect and close", closeWrite: true, wantErr: io.EOF},
		{name: "truncated then silent", send: "DURO\x01\x01", wantErr: os.ErrDeadlineExceeded},
		{name: "silent", wantErr: os.ErrDeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", m.Addr().String())
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if tt.send != "" {
				if _, err := c.Write([]byte(tt.send)); err != nil {
					t.Fatalf("write: %v", err)
				}
			}
			if tt.closeWrite {
				c.(*net.TCPConn).CloseWrite()
			}
			expectClosedByPeer(t, c, 10*headerTimeout)

			var r logRecord
			testutil.WaitFor(t, 5*time.Second, "rejection log", func() bool {
				var ok bool
				r, ok = rec.find(c.LocalAddr().String())
				return ok
			})
			if r.level != slog.LevelDebug {
				t.Errorf("rejection logged at %v, want debug", r.level)
			}
			cause, _ := r.attrs["err"].(error)
			switch {
			case tt.wantErr != nil && !errors.Is(cause, tt.wantErr):
				t.Errorf("logged cause %v, want %v", cause, tt.wantErr)
			case tt.wantText != "" && (cause == nil || !strings.Contains(cause.Error(), tt.wantText)):
				t.Errorf("logged cause %v, want it to mention %q", cause, tt.wantText)
			}
			roundTrip(t, good, "still alive after "+tt.name)
		})
	}

	// New connections of the group are still routed.
	fresh, err := peer.RaftLayer(1).Dial(raftAddr(m), time.Second)
	if err != nil {
		t.Fatalf("Dial after bad connections: %v", err)
	}
	defer fresh.Close()
	roundTrip(t, fresh, "after")
	if bad := rec.atOrAbove(slog.LevelWarn); len(bad) > 0 {
		t.Fatalf("records at warn or above: %+v", bad)
	}
}

func raftAddr(m *Mux) raft.ServerAddress { return raft.ServerAddress(m.Advertise().String()) }

// TestMuxHeaderDoesNotBlockAccept opens silent connections that hold their
// handshake for the whole HeaderTimeout, then checks a good connection is
// still routed at once.
func TestMuxHeaderDoesNotBlockAccept(t *testing.T) {
	m := newTestMux(t, Options{HeaderTimeout: time.Minute})
	echoServer(t, m.RaftLayer(3))
	for range 20 {
		c, err := net.Dial("tcp", m.Addr().String())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
	}
	peer := newTestMux(t, Options{})
	start := time.Now()
	good, err := peer.RaftLayer(3).Dial(raftAddr(m), 5*time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer good.Close()
	roundTrip(t, good, "hello")
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("good connection took %v behind silent ones", d)
	}
}

// TestMuxHeaderAndDataInOneSegment checks that bytes arriving with the header
// (read ahead by the header reader) reach the receiver first and in order.
func TestMuxHeaderAndDataInOneSegment(t *testing.T) {
	m := newTestMux(t, Options{})
	echoServer(t, m.RaftLayer(framing.MaxGroupID))
	c, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	hdr, err := framing.AppendHeader(nil, framing.ProtoRaft, framing.MaxGroupID)
	if err != nil {
		t.Fatal(err)
	}
	msg := "payload that travels with the header and is longer than the header buffer"
	if _, err := c.Write(append(hdr, msg...)); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := readFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

func TestRaftLayerRegistry(t *testing.T) {
	m := newTestMux(t, Options{})
	a := m.RaftLayer(5)
	if b := m.RaftLayer(5); b != a {
		t.Fatal("RaftLayer returned a different layer for the same group")
	}
	if other := m.RaftLayer(6); other == a {
		t.Fatal("RaftLayer returned the same layer for two groups")
	}
	if a.Group() != 5 {
		t.Fatalf("Group() = %d, want 5", a.Group())
	}
	if got, want := a.Addr().String(), m.Addr().String(); got != want {
		t.Fatalf("Addr() = %q, want the listener address %q", got, want)
	}
	a.Close()
	if b := m.RaftLayer(5); b == a {
		t.Fatal("RaftLayer returned a closed layer instead of registering a new one")
	}

	bad := m.RaftLayer(framing.MaxGroupID + 1)
	if _, err := bad.Accept(); !errors.Is(err, framing.ErrBadGroup) {
		t.Fatalf("Accept on an out-of-range group = %v, want framing.ErrBadGroup", err)
	}
	if _, err := bad.Dial(raftAddr(m), time.Second); !errors.Is(err, framing.ErrBadGroup) {
		t.Fatalf("Dial on an out-of-range group = %v, want framing.ErrBadGroup", err)
	}
}

// TestStreamLayerClose checks that closing a layer unblocks Accept, closes
// the connections it owns (reads see a clean EOF), refuses later connections
// for the group, and leaves other groups alone.
func TestStreamLayerClose(t *testing.T) {
	m := newTestMux(t, Options{})
	peer := newTestMux(t, Options{})
	closing, staying := m.RaftLayer(1), m.RaftLayer(2)
	echoServer(t, staying)

	// A connection accepted by the layer, read by a goroutine as raft would.
	out, err := peer.RaftLayer(1).Dial(raftAddr(m), time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer out.Close()
	in, err := closing.Accept()
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := in.Read(make([]byte, 1))
		readErr <- err
	}()
	acceptErr := make(chan error, 1)
	go func() {
		_, err := closing.Accept()
		acceptErr <- err
	}()

	if err := closing.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := closing.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for name, ch := range map[string]chan error{"Accept": acceptErr, "Read": readErr} {
		select {
		case err := <-ch:
			want := net.ErrClosed
			if name == "Read" {
				want = io.EOF
			}
			if !errors.Is(err, want) {
				t.Fatalf("%s after Close = %v, want %v", name, err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still blocked after Close", name)
		}
	}
	expectClosedByPeer(t, out, 5*time.Second)

	// Later connections for the group are refused.
	late, err := peer.RaftLayer(1).Dial(raftAddr(m), time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer late.Close()
	expectClosedByPeer(t, late, 5*time.Second)
	if _, err := closing.Dial(raftAddr(peer), time.Second); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Dial on a closed layer = %v, want net.ErrClosed", err)
	}

	other, err := peer.RaftLayer(2).Dial(raftAddr(m), time.Second)
	if err != nil {
		t.Fatalf("Dial group 2: %v", err)
	}
	defer other.Close()
	roundTrip(t, other, "group 2 unaffected")
}

// TestMuxClose checks that Mux.Close unblocks every Accept, ends every
// connection and handshake, is idempotent, and leaks no goroutine.
func TestMuxClose(t *testing.T) {
	before := runtime.NumGoroutine()
	m, err := Listen("127.0.0.1:0", Options{HeaderTimeout: time.Minute})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	peer, err := Listen("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	layers := []*StreamLayer{m.RaftLayer(1), m.RaftLayer(2)}
	client := m.ClientListener()

	// One live connection per layer, one silent handshake in progress.
	var conns []net.Conn
	for _, l := range layers {
		c, err := peer.RaftLayer(l.Group()).Dial(raftAddr(m), time.Second)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		conns = append(conns, c)
		if _, err := l.Accept(); err != nil {
			t.Fatalf("Accept: %v", err)
		}
	}
	silent, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conns = append(conns, silent)

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, l := range []net.Listener{layers[0], layers[1], client} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Accept()
			errs <- err
		}()
	}

	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Mux.Close = %v, want net.ErrClosed", err)
		}
	}
	for _, c := range conns {
		expectClosedByPeer(t, c, 5*time.Second)
		c.Close()
	}
	if _, err := net.Dial("tcp", m.Addr().String()); err == nil {
		t.Fatal("listener still accepting after Close")
	}
	if _, err := m.RaftLayer(9).Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a layer of a closed Mux = %v, want net.ErrClosed", err)
	}
	if _, err := m.ClientListener().Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on the client listener of a closed Mux = %v, want net.ErrClosed", err)
	}
	if err := peer.Close(); err != nil {
		t.Fatalf("peer Close: %v", err)
	}
	checkNoGoroutineLeak(t, before)
}

// TestClientListener runs the SDK path: header, then frames echoed back.
func TestClientListener(t *testing.T) {
	m := newTestMux(t, Options{})
	l := m.ClientListener()
	if l != m.ClientListener() {
		t.Fatal("ClientListener returned a different listener on the second call")
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := l.Accept()
		if err != nil {
			t.Errorf("Accept: %v", err)
			return
		}
		defer c.Close()
		r, w := bufio.NewReader(c), bufio.NewWriter(c)
		var buf []byte
		for {
			buf, err = framing.ReadFrame(r, buf)
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Errorf("server framing.ReadFrame: %v", err)
				return
			}
			if err := framing.WriteFrame(w, buf); err != nil {
				t.Errorf("server framing.WriteFrame: %v", err)
				return
			}
			if err := w.Flush(); err != nil {
				t.Errorf("server flush: %v", err)
				return
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := framing.Dial(ctx, m.Advertise().String(), framing.ProtoClient, 0)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	for _, msg := range []string{"call 1", "", strings.Repeat("x", 1<<20), "last"} {
		if err := framing.WriteFrame(c, []byte(msg)); err != nil {
			t.Fatalf("framing.WriteFrame: %v", err)
		}
		got, err := framing.ReadFrame(r, nil)
		if err != nil {
			t.Fatalf("framing.ReadFrame: %v", err)
		}
		if string(got) != msg {
			t.Fatalf("echo of %d bytes came back as %d bytes", len(msg), len(got))
		}
	}
	c.(*net.TCPConn).CloseWrite()
	if _, err := framing.ReadFrame(r, nil); err != io.EOF {
		t.Fatalf("framing.ReadFrame after server closed = %v, want io.EOF", err)
	}
}

func TestListenAdvertise(t *testing.T) {
	tests := []struct {
		name      string
		addr      string
		advertise string
		wantErr   error
		want      string // expected Advertise(), "" for the listener address
	}{
		{name: "loopback", addr: "127.0.0.1:0"},
		{name: "hostname", addr: "127.0.0.1:0", advertise: "node1.example:7000", want: "node1.example:7000"},
		{name: "wildcard without advertise", addr: ":0", wantErr: ErrNotAdvertisable},
		{name: "wildcard with advertise", addr: ":0", advertise: "10.0.0.1:7000", want: "10.0.0.1:7000"},
		{name: "advertise wildcard", addr: "127.0.0.1:0", advertise: "0.0.0.0:7000", wantErr: ErrNotAdvertisable},
		{name: "advertise no port", addr: "127.0.0.1:0", advertise: "node1", wantErr: ErrNotAdvertisable},
		{name: "advertise port 0", addr: "127.0.0.1:0", advertise: "node1:0", wantErr: ErrNotAdvertisable},
		{name: "advertise empty host", addr: "127.0.0.1:0", advertise: ":7000", wantErr: ErrNotAdvertisable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Listen(tt.addr, Options{Advertise: tt.advertise})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Listen error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}
			defer m.Close()
			want := tt.want
			if want == "" {
				want = m.Addr().String()
			}
			if got := m.RaftLayer(1).Addr().String(); got != want {
				t.Fatalf("StreamLayer.Addr() = %q, want %q", got, want)
			}
		})
	}
	if _, err := Listen("127.0.0.1:0", Options{HeaderTimeout: -time.Second}); err == nil {
		t.Fatal("Listen accepted a negative HeaderTimeout")
	}
}
