package transport

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// newTestMux starts a Mux on a loopback port, closed at the end of the test.
func newTestMux(tb testing.TB, opts Options) *Mux {
	tb.Helper()
	m, err := Listen("127.0.0.1:0", opts)
	if err != nil {
		tb.Fatalf("Listen: %v", err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// checkNoGoroutineLeak fails tb if the goroutine count does not come back to
// at most before (taken with runtime.NumGoroutine before the code under test).
func checkNoGoroutineLeak(tb testing.TB, before int) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			tb.Fatalf("%d goroutines, %d before the test:\n%s", runtime.NumGoroutine(), before, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logRecorder is a slog.Handler keeping every record, for tests to inspect.
type logRecorder struct {
	mu      sync.Mutex
	records []logRecord
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]any
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: make(map[string]any)}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Any()
		return true
	})
	h.mu.Lock()
	h.records = append(h.records, rec)
	h.mu.Unlock()
	return nil
}

// find returns the first record whose "remote" attribute is remote.
func (h *logRecorder) find(remote string) (logRecord, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if r.attrs["remote"] == remote {
			return r, true
		}
	}
	return logRecord{}, false
}

// atOrAbove returns the records at level or above.
func (h *logRecorder) atOrAbove(level slog.Level) []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRecord
	for _, r := range h.records {
		if r.level >= level {
			out = append(out, r)
		}
	}
	return out
}

// echoServer accepts from l and echoes each connection's bytes until l
// closes, which it does at the end of the test.
func echoServer(tb testing.TB, l net.Listener) {
	tb.Helper()
	var wg sync.WaitGroup
	// Cleanups run last-in first-out: close l here rather than rely on the
	// Mux's cleanup, which runs after this one.
	tb.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
}

// roundTrip writes msg to c and expects it echoed back.
func roundTrip(tb testing.TB, c net.Conn, msg string) {
	tb.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		tb.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := readFull(c, got); err != nil {
		tb.Fatalf("read echo: %v", err)
	}
	if string(got) != msg {
		tb.Fatalf("echo = %q, want %q", got, msg)
	}
}

func readFull(c net.Conn, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := c.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// expectClosedByPeer waits for the server to close c: a read must fail with
// something other than a timeout.
func expectClosedByPeer(tb testing.TB, c net.Conn, within time.Duration) {
	tb.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, 64)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue // the peer may have echoed or sent something first
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			tb.Fatalf("connection still open after %v", within)
		}
		return
	}
}
