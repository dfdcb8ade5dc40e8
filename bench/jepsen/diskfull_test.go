package jepsen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duro-db/duro/client"
	"github.com/duro-db/duro/internal/testutil"
	"github.com/duro-db/duro/objects/examples"
)

// mountTmpfs mounts a tmpfs of size at dir for the test, or skips the test where it
// cannot (not root, no mount).
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot give each node a small file system of its own (mount -t tmpfs needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
}

func resizeTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("growing %s: %v: %s", dir, err, out)
	}
}

// Three nodes, each on a file system of its own of 160 MiB, 16 callers writing 4 KiB values
// to objects of their own until every disk is below its reserve: no node exits, writes
// get ErrNoSpace, reads keep working and see every acknowledged write, and once the file
// systems grow, writes resume without a restart; every write acknowledged before the disks
// filled is still there, object by object.
func TestFullDiskRefusesWritesAndRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("fills three file systems: not in -short")
	}
	dir := t.TempDir()
	for i := 1; i <= 3; i++ {
		mountTmpfs(t, filepath.Join(dir, fmt.Sprintf("n%d", i)), "160m")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, err := StartCluster(ctx, ClusterConfig{Binary: duroBinary, Dir: dir, Nodes: 3, Seed: 1,
		Env: []string{"DURO_DISK_RESERVE=40MiB", "DURO_WAL_SEGMENT_SIZE=8MiB"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer func() {
		if t.Failed() {
			for _, n := range c.Nodes {
				if b, err := os.ReadFile(n.LogPath); err == nil {
					t.Logf("--- %s log (tail) ---\n%s", n.ID, tail(b, 3000))
				}
			}
		}
	}()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	cl, err := client.Dial(ctx, c.Endpoints(), client.WithRetryBackoff(5*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ns := cl.Namespace("Register")
	value := func(name string) string { return name + ":" + strings.Repeat("v", 4096) }
	// Sessions to end (DeleteAll) once the disks are full: deletes must go on.
	sessions := cl.Namespace("Session")
	for i := range 3 {
		if _, err := client.Call[examples.SessionInfo](ctx, sessions.GetByName(fmt.Sprint(i)), "Start", examples.SessionStartArgs{TTLms: 3600_000}); err != nil {
			t.Fatal(err)
		}
	}

	// Fill: each caller writes new objects until it has seen ErrNoSpace ten times in a row.
	var (
		mu    sync.Mutex
		acked []string
		other []error
	)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			refused := 0
			for i := 0; refused < 10 && ctx.Err() == nil; i++ {
				name := fmt.Sprintf("w%d-%d", w, i)
				_, err := client.Call[examples.RegisterValue](ctx, ns.GetByName(name), "Put", examples.PutArgs{Value: value(name)})
				switch {
				case err == nil:
					refused = 0
					mu.Lock()
					acked = append(acked, name)
					mu.Unlock()
				case errors.Is(err, client.ErrNoSpace):
					if !client.IsRetryable(err) {
						t.Errorf("ErrNoSpace is not retryable: %v", err)
					}
					refused++
					time.Sleep(20 * time.Millisecond)
				default:
					mu.Lock()
					other = append(other, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d writes acknowledged before the disks filled; %d other errors", len(acked), len(other))
	if ctx.Err() != nil {
		t.Fatal("the disks never filled")
	}
	if len(other) > 0 {
		t.Errorf("writes failed with something other than ErrNoSpace: %v", other[:min(len(other), 3)])
	}
	for i, n := range c.Nodes {
		select {
		case <-c.Exited(i):
			t.Fatalf("%s exited when its disk filled", n.ID)
		default:
		}
	}
	// The nodes say so.
	low := 0
	for i := range c.Nodes {
		st, err := c.Status(ctx, i)
		if err != nil {
			t.Fatalf("status of %s: %v", c.Nodes[i].ID, err)
		}
		if st.Disk.Low {
			low++
		}
	}
	if low == 0 {
		t.Fatal("no node reports its disk below the reserve")
	}

	check := func(when string) {
		t.Helper()
		for _, name := range acked {
			v, err := client.Call[examples.RegisterValue](ctx, ns.GetByName(name), "Get", nil)
			if err != nil || v.Value != value(name) {
				t.Fatalf("%s: %s reads %d bytes, %v; want its acknowledged value", when, name, len(v.Value), err)
			}
		}
	}
	check("with the disks full")
	if _, err := client.Call[examples.RegisterValue](ctx, ns.GetByName("late"), "Put", examples.PutArgs{Value: value("late")}); !errors.Is(err, client.ErrNoSpace) {
		t.Fatalf("a write with the disks full = %v, want ErrNoSpace", err)
	}

	for i := range 3 {
		if _, err := client.Call[bool](ctx, sessions.GetByName(fmt.Sprint(i)), "End", nil); err != nil {
			t.Fatalf("a delete (Session.End: DeleteAll) with the disks full: %v", err)
		}
	}

	// Space comes back: writes resume by themselves.
	for _, n := range c.Nodes {
		resizeTmpfs(t, n.DataDir, "400m")
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		_, err := client.Call[examples.RegisterValue](ctx, ns.GetByName("late"), "Put", examples.PutArgs{Value: value("late")})
		return err
	})
	check("after space came back")
	for i, n := range c.Nodes {
		select {
		case <-c.Exited(i):
			t.Fatalf("%s exited", n.ID)
		default:
		}
	}
}
