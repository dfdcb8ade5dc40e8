package main

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/duro-db/duro/internal/testutil"
)

// `duro health` is what a container or unit runs to ask whether its node serves: 0 once
// the node is ready, 1 while it is up but not ready (with --live, 0 as soon as it
// answers), 1 when nothing answers.
func TestHealth(t *testing.T) {
	t.Parallel()
	addr, httpAddr := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(httpAddr)

	r := runCLI(t, "health", "--http", httpAddr, "--timeout", "1s")
	if r.code != exitFailed || !strings.Contains(r.stderr, "no answer") {
		t.Errorf("health before the node starts: want exit 1, no answer\n%s", r)
	}
	wantOneLine(t, r)

	// n1 of a three-node cluster whose other nodes never start: it runs, but its groups
	// never elect a leader, so it is live and never ready.
	lone := startProc(t, nil, "server", "--id", "n1", "--listen", addr, "--http", httpAddr,
		"--peers", fmt.Sprintf("n1=%s,n2=127.0.0.1:1,n3=127.0.0.1:2", addr),
		"--groups", "1", "--data-dir", t.TempDir(), "--log-level", "error")
	testutil.Eventually(t, 20*time.Second, func() error {
		lone.mustRun(t)
		if r := runCLI(t, "health", "--live", "--http", httpAddr); r.code != exitOK {
			return fmt.Errorf("health --live: %s", r)
		}
		return nil
	})
	r = runCLI(t, "health", "--http", httpAddr)
	if r.code != exitFailed || !strings.Contains(r.stderr, "not ready") {
		t.Errorf("health of a node without a quorum: want exit 1, not ready\n%s", r)
	}
	wantOneLine(t, r)
	lone.signalAndWait(t, syscall.SIGKILL, 10*time.Second)

	// A node that is a cluster of its own becomes ready; a listen-everywhere --http (what
	// a container sets) is checked on loopback.
	solo := startProc(t, nil, "server", "--id", "n1", "--listen", addr, "--http", httpAddr,
		"--peers", "n1="+addr, "--replicas", "1", "--groups", "1", "--data-dir", t.TempDir(), "--log-level", "error")
	testutil.Eventually(t, 20*time.Second, func() error {
		solo.mustRun(t)
		if r := runCLI(t, "health", "--http", "0.0.0.0:"+port); r.code != exitOK || !strings.Contains(r.stdout, "ok") {
			return fmt.Errorf("health --http 0.0.0.0:%s: %s", port, r)
		}
		return nil
	})
}

func TestDialableHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"127.0.0.1:7180", "127.0.0.1:7180"},
		{"10.0.0.1:7180", "10.0.0.1:7180"},
		{"n1:7180", "n1:7180"},
		{"0.0.0.0:7180", "127.0.0.1:7180"},
		{":7180", "127.0.0.1:7180"},
		{"[::]:7180", "[::1]:7180"},
		{"localhost", ""},
		{"0.0.0.0:0", ""},
		{"0.0.0.0:http", ""},
	}
	for _, tt := range tests {
		got, err := dialableHTTP(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("dialableHTTP(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("dialableHTTP(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
