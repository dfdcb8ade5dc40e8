package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/internal/ports"
	"github.com/duro-db/duro/internal/testutil"
	"github.com/duro-db/duro/transport"
)

// duroBin is the duro binary built once by TestMain for the tests that need a real
// process (signals, a node that must outlive a call to run). Empty with -short.
var duroBin string

func TestMain(m *testing.M) {
	flag.Parse()
	var dir string
	if !testing.Short() {
		var err error
		dir, err = os.MkdirTemp("", "duro-cli-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		duroBin = filepath.Join(dir, "duro")
		if out, err := exec.Command("go", "build", "-o", duroBin, ".").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// result is what one invocation of the CLI produced.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runMu serializes in-process runs of the CLI: urfave/cli v2 writes to its global help
// flag on every run, so two at once race (a process only ever runs one).
var runMu sync.Mutex

// runCLI runs the CLI in-process with args (without the program name) and fails the test
// if it has not returned within 30s: a command expected to fail must not start serving.
// Its standard input is empty.
func runCLI(t testing.TB, args ...string) result {
	t.Helper()
	return runCLIWithStdin(t, "", args...)
}

// runCLIWithStdin is runCLI with stdin as the standard input.
func runCLIWithStdin(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		runMu.Lock()
		defer runMu.Unlock()
		done <- run(append([]string{"duro"}, args...), strings.NewReader(stdin), &stdout, &stderr)
	}()
	select {
	case code := <-done:
		return result{code, stdout.String(), stderr.String()}
	case <-time.After(30 * time.Second):
		t.Fatalf("duro %s still running after 30s\nstdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), stdout.String(), stderr.String())
		return result{}
	}
}

// wantOneLine asserts that stderr is exactly one line starting with "duro: ", as every
// failure of the CLI must be: no usage text, no stack trace.
func wantOneLine(t testing.TB, r result) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "duro: ") || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr is not one line starting with \"duro: \":\n%s", r)
	}
	for _, bad := range []string{"USAGE", "goroutine ", "panic"} {
		if strings.Contains(r.stderr, bad) {
			t.Errorf("stderr contains %q:\n%s", bad, r)
		}
	}
}

// freeAddr returns a loopback address nothing listens on right now, below the
// ephemeral ports (see internal/ports).
func freeAddr(t testing.TB) string {
	t.Helper()
	addrs, err := ports.Free(1)
	if err != nil {
		t.Fatal(err)
	}
	return addrs[0]
}

// freeBasePort returns a base port B for `duro dev` such that B+1..B+3 and B+81..B+83
// are free right now.
func freeBasePort(t testing.TB) int {
	t.Helper()
	base, err := ports.FreeBase(1, 2, 3, 81, 82, 83)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// testCluster is an in-process cluster serving the stock classes (this package's init
// registers them in the default registry, as the binary does).
type testCluster struct {
	servers   []*duro.Server
	addrs     []string
	endpoints string // addrs joined by commas, for --endpoints
	groups    int
}

func startCluster(t testing.TB, n, groups int) *testCluster {
	t.Helper()
	c := &testCluster{groups: groups}
	var muxes []*transport.Mux
	var peers []duro.Peer
	for i := range n {
		m, err := transport.Listen("127.0.0.1:0", transport.Options{})
		if err != nil {
			t.Fatal(err)
		}
		muxes = append(muxes, m)
		peers = append(peers, duro.Peer{ID: fmt.Sprintf("n%d", i+1), Addr: m.Addr().String()})
		c.addrs = append(c.addrs, m.Addr().String())
	}
	c.endpoints = strings.Join(c.addrs, ",")
	for i := range n {
		s, err := duro.Start(context.Background(), duro.Config{
			ID: peers[i].ID, DataDir: t.TempDir(), Peers: peers, Groups: groups, Slots: 64,
			NoSync: true, Mux: muxes[i],
			Timing: duro.Timing{
				HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
				LeaderLeaseTimeout: 150 * time.Millisecond, CommitTimeout: 20 * time.Millisecond,
				// Leaders stay where they were elected: status must not see a handoff.
				BalanceInterval: time.Hour,
			},
		})
		if err != nil {
			t.Fatalf("start %s: %v", peers[i].ID, err)
		}
		c.servers = append(c.servers, s)
	}
	t.Cleanup(func() {
		for i := range c.servers {
			c.stop(i)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range c.servers {
		if err := s.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// stop closes node i at once, as a crash looks to the others.
func (c *testCluster) stop(i int) {
	if c.servers[i] != nil {
		c.servers[i].Close()
		c.servers[i] = nil
	}
}

// proc is a duro process started by a test.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	exited         chan struct{}
	err            error // valid once exited is closed
}

// startProc starts the built binary with args and extra environment variables; it is
// killed at the end of the test if still running.
func startProc(t testing.TB, env []string, args ...string) *proc {
	t.Helper()
	if duroBin == "" {
		t.Skip("needs the duro binary (not built with -short)")
	}
	p := &proc{cmd: exec.Command(duroBin, args...), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

func (p *proc) String() string {
	return fmt.Sprintf("duro %s\nstdout:\n%s\nstderr:\n%s", strings.Join(p.cmd.Args[1:], " "), p.stdout.String(), p.stderr.String())
}

// mustRun fails the test at once if the process has exited.
func (p *proc) mustRun(t testing.TB) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("exited (%v)\n%s", p.err, p)
	default:
	}
}

// waitStdout waits until the process has printed want.
func (p *proc) waitStdout(t testing.TB, want string, d time.Duration) {
	t.Helper()
	testutil.Eventually(t, d, func() error {
		p.mustRun(t)
		if !strings.Contains(p.stdout.String(), want) {
			return fmt.Errorf("has not printed %q\n%s", want, p)
		}
		return nil
	})
}

// signalAndWait sends sig and returns the process's exit error (nil: status 0), failing
// the test if it has not exited within d.
func (p *proc) signalAndWait(t testing.TB, sig syscall.Signal, d time.Duration) error {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		return p.err
	case <-time.After(d):
		t.Fatalf("still running %v after %v\n%s", d, sig, p)
		return nil
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
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
