package jepsen

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer echoes every line back until the connection closes.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func newTestProxy(t *testing.T) *Proxy {
	t.Helper()
	p, err := NewProxy("127.0.0.1:0", echoServer(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

type lineConn struct {
	net.Conn
	r *bufio.Reader
}

func dialProxy(t *testing.T, p *Proxy) *lineConn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &lineConn{c, bufio.NewReader(c)}
}

// roundTrip sends a line and waits up to d for its echo.
func (c *lineConn) roundTrip(line string, d time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	s, err := c.r.ReadString('\n')
	if len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestProxyFaults(t *testing.T) {
	tests := []struct {
		name     string
		up, down Link
		// want: "echo" (delivered), "timeout" (dropped)
		want     string
		minDelay time.Duration
	}{
		{name: "passes", want: "echo"},
		{name: "up cut drops requests", up: Link{Cut: true}, want: "timeout"},
		{name: "down cut drops responses", down: Link{Cut: true}, want: "timeout"},
		{name: "delay holds bytes back", up: Link{Delay: 50 * time.Millisecond}, down: Link{Delay: 50 * time.Millisecond}, want: "echo", minDelay: 100 * time.Millisecond},
		{name: "certain loss costs a retransmission", up: Link{Loss: 1}, want: "echo", minDelay: RetransmitDelay},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestProxy(t)
			c := dialProxy(t, p)
			if got, err := c.roundTrip("warm", time.Second); err != nil || got != "warm" {
				t.Fatalf("before the fault: %q, %v", got, err)
			}
			p.SetLinks(tt.up, tt.down)
			start := time.Now()
			got, err := c.roundTrip("x", 300*time.Millisecond+tt.minDelay)
			switch tt.want {
			case "echo":
				if err != nil || got != "x" {
					t.Fatalf("got %q, %v; want the echo", got, err)
				}
				if d := time.Since(start); d < tt.minDelay {
					t.Fatalf("echo after %v, want at least %v", d, tt.minDelay)
				}
			case "timeout":
				if !isTimeout(err) {
					t.Fatalf("got %q, %v; want a timeout", got, err)
				}
				// Healing closes the connection that lost bytes, and a new one works.
				p.SetLinks(Link{}, Link{})
				if _, err := c.roundTrip("y", time.Second); err == nil || isTimeout(err) {
					t.Fatalf("connection that lost bytes still usable after heal: %v", err)
				}
				c2 := dialProxy(t, p)
				if got, err := c2.roundTrip("z", time.Second); err != nil || got != "z" {
					t.Fatalf("new connection after heal: %q, %v", got, err)
				}
			}
		})
	}
}

func TestProxyReset(t *testing.T) {
	p := newTestProxy(t)
	c := dialProxy(t, p)
	if _, err := c.roundTrip("a", time.Second); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	if _, err := c.roundTrip("b", time.Second); err == nil || isTimeout(err) {
		t.Fatalf("after Reset: %v, want the connection closed", err)
	}
	c2 := dialProxy(t, p)
	if got, err := c2.roundTrip("c", time.Second); err != nil || got != "c" {
		t.Fatalf("after Reset, a new connection: %q, %v", got, err)
	}
}
