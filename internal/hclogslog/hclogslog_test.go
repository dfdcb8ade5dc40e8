package hclogslog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

func TestLevelsAndRepeats(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "raft", slog.LevelInfo)
	l.Debug("below the floor")
	l.Info("hello", "k", 1)
	for i := 0; i < 50; i++ {
		l.Error("failed to heartbeat to", "peer", "n3")
	}
	out := buf.String()
	if strings.Contains(out, "below the floor") {
		t.Fatalf("a record below the floor passed:\n%s", out)
	}
	if !strings.Contains(out, "hello") || strings.Count(out, "failed to heartbeat") != 1 {
		t.Fatalf("want hello once and the repeated error once:\n%s", out)
	}
	// After the window the next one passes and says how many were held back.
	ok, n := l.(*adapter).rep.admit("failed to heartbeat to", time.Now().Add(RepeatWindow+time.Second))
	if !ok || n != 49 {
		t.Fatalf("after the window: ok=%v suppressed=%d, want true 49", ok, n)
	}
	if l.Named("x").(*adapter).rep != l.(*adapter).rep || l.GetLevel() != hclog.Info {
		t.Fatalf("derived loggers must share the repeat state; level %v", l.GetLevel())
	}
}

// A shutdown's errors about connections this node closed go to Debug; other errors stay.
func TestOwnClosesAreDebug(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "raft", slog.LevelDebug)
	closed := &net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed}
	l.Error("failed to flush response", "group", 2, "error", closed)
	l.Error("failed to decode incoming command", "error", fmt.Errorf("read: %w", raft.ErrTransportShutdown))
	l.Error("failed to appendEntries to", "error", errors.New("connection refused"))
	out := buf.String()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		want := "level=DEBUG"
		if strings.Contains(line, "appendEntries") {
			want = "level=ERROR"
		}
		if !strings.Contains(line, want) {
			t.Errorf("%s: want %s", line, want)
		}
	}
	if strings.Count(out, "\n") != 3 {
		t.Fatalf("want 3 records:\n%s", out)
	}
}
