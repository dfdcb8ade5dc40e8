package main

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestSender(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"stream", "GET /raft/stream/msgappv2/8e9e05c52164694d HTTP/1.1\r\nHost: x\r\nX-Server-From: 8e9e05c52164694d\r\n\r\n", "8e9e05c52164694d"},
		{"pipeline with a body", "POST /raft HTTP/1.1\r\nX-Server-From: 91bc3c398fb3c146\r\nContent-Length: 3\r\n\r\nabc", "91bc3c398fb3c146"},
		{"no header", "GET /version HTTP/1.1\r\nHost: x\r\n\r\n", ""},
		{"HTTP/2", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ""},
		{"cut short", "GET / HTTP/1.1\r\nX-Server-From: 1", ""},
	} {
		r := bufio.NewReaderSize(strings.NewReader(tc.in), maxHead)
		if got := sender(r); got != tc.want {
			t.Errorf("%s: sender = %q, want %q", tc.name, got, tc.want)
		}
		// Nothing is consumed: the target gets the bytes as they were sent.
		if rest, _ := io.ReadAll(r); string(rest) != tc.in {
			t.Errorf("%s: %q left to forward, want all of %q", tc.name, rest, tc.in)
		}
	}
}

// A sender that stops after its head and waits for an answer is not waited for.
func TestSenderDoesNotWaitPastTheHead(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _, _ = io.WriteString(a, "GET / HTTP/1.1\r\nX-Server-From: 2a\r\n\r\n") }()
	done := make(chan string, 1)
	go func() { done <- sender(bufio.NewReaderSize(b, maxHead)) }()
	select {
	case got := <-done:
		if got != "2a" {
			t.Errorf("sender = %q, want 2a", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sender still waiting 10s after a complete head")
	}
}

// echoServer answers every connection with what it reads.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// peerConn dials p as member from would, sends its request head, and returns the
// connection and a reader of what comes back.
func peerConn(t *testing.T, p *proxy, from string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	head := "GET /raft/stream/message/" + from + " HTTP/1.1\r\nX-Server-From: " + from + "\r\n\r\n"
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	echo := make([]byte, len(head))
	if _, err := io.ReadFull(r, echo); err != nil || string(echo) != head {
		t.Fatalf("head from %s came back as %q, %v", from, echo, err)
	}
	return c, r
}

// roundTrip sends line on c and reports whether it came back within d.
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string, d time.Duration) bool {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	got, err := r.ReadString('\n')
	return err == nil && got == line+"\n"
}

// Isolating a member drops the bytes of its connections, to and from it, and no others;
// healing closes the connections that lost bytes.
func TestProxyIsolates(t *testing.T) {
	part := &partition{}
	toA, err := newProxy(echoServer(t), part)
	if err != nil {
		t.Fatal(err)
	}
	defer toA.close()
	toB, err := newProxy(echoServer(t), part)
	if err != nil {
		t.Fatal(err)
	}
	defer toB.close()
	toA.setMember("a")
	toB.setMember("b")

	cToA, rToA := peerConn(t, toA, "c")  // c → a
	aToB, rAToB := peerConn(t, toB, "a") // a → b
	cToB, rCToB := peerConn(t, toB, "c") // c → b
	part.isolate("a")
	if roundTrip(t, cToA, rToA, "to a", 200*time.Millisecond) {
		t.Error("bytes to the isolated member got through")
	}
	if roundTrip(t, aToB, rAToB, "from a", 200*time.Millisecond) {
		t.Error("bytes from the isolated member got through")
	}
	if !roundTrip(t, cToB, rCToB, "c to b", 10*time.Second) {
		t.Error("bytes between members on the same side were dropped")
	}
	part.isolate("")
	toA.healed()
	toB.healed()
	_ = cToA.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := rToA.ReadString('\n'); err == nil {
		t.Error("a connection that lost bytes stayed open after the heal")
	}
	if !roundTrip(t, cToB, rCToB, "still", 10*time.Second) {
		t.Error("a connection that lost nothing was closed at the heal")
	}
	c2, r2 := peerConn(t, toA, "c")
	if !roundTrip(t, c2, r2, "healed", 10*time.Second) {
		t.Error("a new connection to the member does not get through after the heal")
	}
}
