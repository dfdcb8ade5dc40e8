package jepsen

// The process-level fault tests, on real `duro server` processes: the output
// gate under a crash between running a call and committing it, exactly-once increments
// under SIGKILLs and dropped connections, and no stale read from a leader cut off from
// its quorum.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/client"
	"github.com/duro-db/duro/internal/testutil"
	"github.com/duro-db/duro/objects/examples"
)

func dial(t testing.TB, ctx context.Context, endpoints []string) *client.Client {
	t.Helper()
	cl, err := client.Dial(ctx, endpoints, client.WithRetryBackoff(5*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// exitedNode returns the node whose process has ended, or -1.
func exitedNode(c *Cluster) int {
	for i := range c.Nodes {
		select {
		case <-c.Exited(i):
			return i
		default:
		}
	}
	return -1
}

// A leader killed after a call ran but before its command
// committed never acknowledges it; the SDK's retry reaches the next leader, and the
// value shows exactly one application, also once the killed node is back.
func TestOutputGateCrashBeforeCommit(t *testing.T) {
	for _, fp := range []string{"crash-before-propose", "crash-before-commit"} {
		t.Run(fp, func(t *testing.T) {
			arm := filepath.Join(t.TempDir(), "armed")
			c := startCluster(t, 3, fmt.Sprintf("%s=%s=%s", duro.EnvFailpoints, fp, arm))
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cl := dial(t, ctx, c.Endpoints())
			stub := cl.Namespace("Counter").GetByName("gate")
			if v, err := client.Call[int64](ctx, stub, "Add", 10); err != nil || v != 10 {
				t.Fatalf("warm-up Add = %d, %v; want 10", v, err)
			}
			if err := os.WriteFile(arm, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			v, err := client.Call[int64](ctx, stub, "Add", 1)
			if err != nil {
				t.Fatalf("Add across the crash: %v", err)
			}
			if v != 11 {
				t.Fatalf("Add across the crash returned %d, want 11 (applied exactly once)", v)
			}
			if _, err := os.Stat(arm); !os.IsNotExist(err) {
				t.Fatalf("the failpoint did not fire (arming file: %v)", err)
			}
			dead := exitedNode(c)
			if dead < 0 {
				t.Fatal("the failpoint fired but no node process ended")
			}
			if err := c.Start(dead); err != nil {
				t.Fatal(err)
			}
			if err := c.WaitReady(ctx); err != nil {
				t.Fatal(err)
			}
			fresh := dial(t, ctx, c.Endpoints())
			got, err := client.Call[int64](ctx, fresh.Namespace("Counter").GetByName("gate"), "Get", nil)
			if err != nil || got != 11 {
				t.Fatalf("after %s restarted: Get = %d, %v; want 11", c.Nodes[dead].ID, got, err)
			}
		})
	}
}

// exactlyOnceIncrements is the size of TestExactlyOnceUnderKillsAndResets: the 10,000 of
// README's guarantee by default, 2,000 with -short, or DURO_EXACTLY_ONCE_INCREMENTS.
func exactlyOnceIncrements(t *testing.T) int {
	if s := os.Getenv("DURO_EXACTLY_ONCE_INCREMENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("DURO_EXACTLY_ONCE_INCREMENTS=%q: want a positive integer", s)
		}
		return n
	}
	if testing.Short() {
		return 2000
	}
	return 10000
}

// 16 clients incrementing one counter while the harness resets
// every connection and SIGKILLs the counter's leader end with the counter equal to the
// number of successful increments: no retry applied twice, no acknowledged one was lost.
func TestExactlyOnceUnderKillsAndResets(t *testing.T) {
	const clients = 16
	total := exactlyOnceIncrements(t)
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const name = "exactly-once"
	gid := c.GroupOf("Counter", name)

	var ok, unknown atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, clients)
	for i := range clients {
		cl := dial(t, ctx, c.Endpoints())
		stub := cl.Namespace("Counter").GetByName(name)
		n := total / clients
		if i < total%clients {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				_, err := client.Call[int64](cctx, stub, "Add", 1)
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, client.ErrUnknownOutcome):
					unknown.Add(1)
				default:
					errs <- err
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()

	// The nemesis: reset every connection, then kill the counter's leader and restart it,
	// until the clients are done.
	kills, resets := 0, 0
	pause := func(d time.Duration) bool {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-tm.C:
			return true
		case <-done:
			return false
		}
	}
loop:
	for {
		if !pause(300 * time.Millisecond) {
			break
		}
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		l, err := c.Leader(lctx, gid)
		lcancel()
		if err == nil {
			if err := c.Kill(l); err != nil {
				t.Fatal(err)
			}
			kills++
			cont := pause(500 * time.Millisecond)
			if err := c.Start(l); err != nil {
				t.Fatal(err)
			}
			if !cont {
				break loop
			}
		}
		if !pause(500 * time.Millisecond) {
			break
		}
		c.ResetConnections()
		resets++
	}
	<-done
	close(errs)
	for err := range errs {
		t.Errorf("an increment failed definitely: %v", err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	cl := dial(t, ctx, c.Endpoints())
	got, err := client.Call[int64](ctx, cl.Namespace("Counter").GetByName(name), "Get", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d increments by %d clients: %d ok, %d unknown; %d leader kills, %d connection resets; counter = %d",
		total, clients, ok.Load(), unknown.Load(), kills, resets, got)
	if kills == 0 {
		t.Error("no leader was killed while the clients ran: the test proved nothing")
	}
	if unknown.Load() == 0 && got != ok.Load() {
		t.Fatalf("counter = %d, want %d (the successful increments)", got, ok.Load())
	}
	if got < ok.Load() || got > ok.Load()+unknown.Load() {
		t.Fatalf("counter = %d, want between %d (ok) and %d (ok + unknown)", got, ok.Load(), ok.Load()+unknown.Load())
	}
}

// A leader cut off from its quorum never answers a read with a
// value older than a write the majority side acknowledged before the read began.
func TestNoStaleReadFromIsolatedLeader(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const name = "isolated"
	gid := c.GroupOf("Register", name)
	l, err := c.Leader(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	var others []string
	for i, n := range c.Nodes {
		if i != l {
			others = append(others, n.Addr)
		}
	}
	h := NewHistory()
	// The reader starts at the leader, which it keeps asking until told otherwise.
	reader := NewWorker(0, dial(t, ctx, []string{c.Nodes[l].Addr}), 1, h, 2*time.Second)
	writer := NewWorker(1, dial(t, ctx, others), 1, h, 60*time.Second)
	rstub := reader.Client.Namespace("Register").GetByName(name)
	wstub := writer.Client.Namespace("Register").GetByName(name)
	put := func(v string) Op {
		return writer.do(ctx, "register", name, "write", RegisterInput{Value: v}, false, false, func(ctx context.Context) (any, error) {
			r, err := client.Call[examples.RegisterValue](ctx, wstub, "Put", examples.PutArgs{Value: v})
			return RegisterOutput{Value: r.Value}, err
		})
	}
	if op := put("before"); op.Status != StatusOK {
		t.Fatalf("first write: %s", op.Error)
	}

	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			reader.do(ctx, "register", name, "read", nil, true, false, func(ctx context.Context) (any, error) {
				r, err := client.Call[examples.RegisterValue](ctx, rstub, "Get", nil)
				return RegisterOutput{Value: r.Value}, err
			})
		}
	}()
	// Let the reader settle on the leader, then cut the leader off both ways.
	testutil.WaitFor(t, 10*time.Second, "20 reads from the leader", func() bool { return countReads(h.Ops(), StatusOK) >= 20 })
	cutAt := h.Since()
	for j := range c.Nodes {
		if j != l {
			c.Cut(l, j, true)
			c.Cut(j, l, true)
		}
	}
	after := put("after")
	if after.Status != StatusOK {
		t.Fatalf("write on the majority side: %s", after.Error)
	}
	// Keep reading for a while with the old leader still cut off, then heal.
	readsAt := len(h.Ops())
	testutil.WaitFor(t, 30*time.Second, "20 more reads with the leader cut off", func() bool { return len(h.Ops()) >= readsAt+20 })
	close(stop)
	<-readerDone
	if err := c.Heal(); err != nil {
		t.Fatal(err)
	}

	ops := h.Ops()
	isolatedOK := 0
	for _, op := range ops {
		if op.F != "read" || op.Status != StatusOK {
			continue
		}
		if op.Call > cutAt && op.Call < after.Return {
			isolatedOK++
		}
		if op.Call > after.Return && string(op.Output) != string(mustJSON(RegisterOutput{Value: "after"})) {
			t.Errorf("stale read: op %d began %v after the write of \"after\" was acknowledged and returned %s",
				op.Index, op.Call-after.Return, op.Output)
		}
	}
	res := checkLinearizable("register", name, ops, registerModel, "")
	if res.Verdict != Valid {
		t.Errorf("history not linearizable: %v", res.Problems)
	}
	t.Logf("leader %s cut off at %v; \"after\" acknowledged at %v; %d reads answered in between; %d operations in all",
		c.Nodes[l].ID, cutAt, after.Return, isolatedOK, len(ops))
}

func countReads(ops []Op, s Status) int {
	n := 0
	for _, op := range ops {
		if op.F == "read" && op.Status == s {
			n++
		}
	}
	return n
}
