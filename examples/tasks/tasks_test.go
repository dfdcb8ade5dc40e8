// Package tasks_test runs the TaskQueue example as a user would: it builds the server and
// the client with `go build`, starts the server's 3-node -dev cluster, runs the client
// against it, and stops the server with SIGTERM.
package tasks_test

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/duro-db/duro/internal/ports"
)

func TestExampleEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs two binaries")
	}
	bin := t.TempDir()
	server, client := filepath.Join(bin, "tasks-server"), filepath.Join(bin, "tasks-client")
	goBuild(t, server, "./server")
	goBuild(t, client, "./client")

	base := freeBasePort(t)
	srv := exec.Command(server, "-dev", "-base-port", strconv.Itoa(base), "-data-dir", t.TempDir())
	var srvErr syncBuffer
	srv.Stderr = &srvErr
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			srv.Process.Kill()
			<-exited
		}
	})

	// The server prints "ready; try: ... -endpoints A,B,C" once every group has a leader.
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var endpoints string
	deadline := time.After(30 * time.Second)
	for endpoints == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("server stdout closed before it was ready; stderr:\n%s", srvErr.String())
			}
			if _, after, found := strings.Cut(line, "-endpoints "); found && strings.HasPrefix(line, "ready") {
				endpoints = after
			}
		case <-deadline:
			t.Fatalf("server not ready within 30s; stderr:\n%s", srvErr.String())
		}
	}
	go func() {
		for range lines { // keep draining so the server never blocks on a full pipe
		}
	}()
	want := []string{"127.0.0.1:" + strconv.Itoa(base+1), "127.0.0.1:" + strconv.Itoa(base+2), "127.0.0.1:" + strconv.Itoa(base+3)}
	if endpoints != strings.Join(want, ",") {
		t.Fatalf("server printed endpoints %q, want %q", endpoints, strings.Join(want, ","))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := exec.CommandContext(ctx, client, "-endpoints", endpoints)
	var clOut, clErr bytes.Buffer
	cl.Stdout, cl.Stderr = &clOut, &clErr
	if err := cl.Run(); err != nil {
		t.Fatalf("client: %v\nstdout:\n%s\nstderr:\n%s", err, clOut.String(), clErr.String())
	}
	out := clOut.String()
	for _, w := range []string{
		`pushed #3 "deploy"`,
		`rejected "": empty title`,
		`dave claimed #3 "deploy" for 1m0s (claim 2)`,
		`carol cannot finish #3: task 3 is claimed by dave`,
		"erin found nothing to claim",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("client output lacks %q:\n%s", w, out)
		}
	}
	if !strings.HasSuffix(out, "\nok\n") {
		t.Errorf("client output does not end with ok:\n%s", out)
	}

	// SIGTERM stops the whole cluster cleanly: exit status 0, within seconds, no panic.
	// (hashicorp/raft may log errors while its peers close around it; those are not
	// checked.)
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("server exited with %v after SIGTERM; stderr:\n%s", err, srvErr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("server still running 15s after SIGTERM; stderr:\n%s", srvErr.String())
	}
	if s := srvErr.String(); strings.Contains(s, "panic") {
		t.Errorf("server stderr:\n%s", s)
	}
}

// goBuild builds the package at dir (relative to this test's directory) into out.
func goBuild(t *testing.T, out, dir string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, b)
	}
}

// freeBasePort returns a base port B such that the -dev cluster's ports B+1..B+3 and
// B+81..B+83 are free right now (see internal/ports).
func freeBasePort(t *testing.T) int {
	t.Helper()
	base, err := ports.FreeBase(1, 2, 3, 81, 82, 83)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// syncBuffer is a bytes.Buffer that a process may write while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
