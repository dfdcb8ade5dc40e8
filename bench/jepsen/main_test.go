package jepsen

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// duroBinary is the duro binary built once for this test binary by TestMain.
var duroBinary string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "duro-jepsen-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	duroBinary = filepath.Join(dir, "duro")
	// With the failpoints compiled in, for the powercut nemesis; they do nothing unless
	// a test asks for them.
	build := exec.Command("go", "build", "-tags", "failpoints", "-o", duroBinary, "github.com/duro-db/duro/cmd/duro")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building duro:", err)
		return 1
	}
	return m.Run()
}

// startCluster starts a cluster of real processes for t and waits until it is ready.
func startCluster(t testing.TB, nodes int, env ...string) *Cluster {
	t.Helper()
	return startClusterWith(t, ClusterConfig{Nodes: nodes, Env: env})
}

// startClusterWith is startCluster with more of the cluster's configuration; Binary, Dir
// and Seed are filled in.
func startClusterWith(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	cfg.Binary, cfg.Dir, cfg.Seed = duroBinary, t.TempDir(), 1
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := StartCluster(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			for _, n := range c.Nodes {
				if b, err := os.ReadFile(n.LogPath); err == nil {
					t.Logf("--- %s log (tail) ---\n%s", n.ID, tail(b, 4000))
				}
			}
		}
	})
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
