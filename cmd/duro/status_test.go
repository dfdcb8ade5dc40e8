package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/duro-db/duro/internal/testutil"
)

// statusJSON runs `duro status --json` and decodes what it printed.
func statusJSON(t *testing.T, endpoints string) (clusterView, result) {
	t.Helper()
	r := runCLI(t, "status", "--json", "--timeout", "2s", "-e", endpoints)
	var v clusterView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("status --json printed no JSON: %v\n%s", err, r)
	}
	return v, r
}

// checkView reports the first way v differs from: exactly the nodes in reachable answer,
// and every group (the meta group and 1..groups) has a leader among them.
func checkView(v clusterView, groups int, reachable ...string) error {
	want := map[string]bool{}
	for _, id := range reachable {
		want[id] = true
	}
	if len(v.Nodes) != 3 {
		return fmt.Errorf("%d nodes, want 3", len(v.Nodes))
	}
	for _, n := range v.Nodes {
		if n.Reachable != want[n.ID] {
			return fmt.Errorf("node %s reachable=%v (%s), want %v", n.ID, n.Reachable, n.Error, want[n.ID])
		}
		if !n.Reachable && n.Error == "" {
			return fmt.Errorf("node %s unreachable without a reason", n.ID)
		}
	}
	for g := range uint64(groups) + 1 {
		leader, ok := v.Leaders[g]
		if !ok {
			return fmt.Errorf("group %d has no leader (leaders %v)", g, v.Leaders)
		}
		if !want[leader] {
			return fmt.Errorf("group %d led by %s, which is not reachable", g, leader)
		}
	}
	if len(v.Leaders) != groups+1 {
		return fmt.Errorf("leaders of %d groups, want %d: %v", len(v.Leaders), groups+1, v.Leaders)
	}
	return nil
}

// duro status shows every node and every group's leader, exit 0 when all is well; with a
// node down it shows that node unreachable, the groups led by the others, and exits 1.
func TestStatus(t *testing.T) {
	t.Parallel()
	const groups = 2
	c := startCluster(t, 3, groups)

	testutil.Eventually(t, 10*time.Second, func() error {
		v, r := statusJSON(t, c.endpoints)
		if err := checkView(v, groups, "n1", "n2", "n3"); err != nil {
			return err
		}
		if r.code != exitOK || r.stderr != "" {
			return fmt.Errorf("want exit 0 and no stderr\n%s", r)
		}
		return nil
	})

	// The table and the other views agree.
	r := runCLI(t, "status", "-e", c.endpoints)
	reachable := 0
	for _, line := range strings.Split(r.stdout, "\n") {
		// NODE ADDRESS REACHABLE ...
		if f := strings.Fields(line); len(f) > 2 && strings.HasPrefix(f[0], "n") && f[2] == "yes" {
			reachable++
		}
	}
	if r.code != exitOK || reachable != 3 {
		t.Errorf("status table: want 3 reachable nodes\n%s", r)
	}
	r = runCLI(t, "members", "-e", c.endpoints)
	for _, a := range c.addrs {
		if r.code != exitOK || !strings.Contains(r.stdout, a) {
			t.Errorf("members lacks %s\n%s", a, r)
		}
	}
	r = runCLI(t, "groups", "--json", "-e", c.endpoints)
	var gs map[string]struct {
		Leader string `json:"leader"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &gs); err != nil || r.code != exitOK || len(gs) != groups+1 {
		t.Errorf("groups --json: want %d groups (%v)\n%s", groups+1, err, r)
	}
	for id, g := range gs {
		if g.Leader == "" {
			t.Errorf("groups --json: group %s has no leader\n%s", id, r)
		}
	}

	// n3 stops as if it crashed. Its groups elect new leaders among n1 and n2.
	c.stop(2)
	testutil.Eventually(t, 15*time.Second, func() error {
		v, r := statusJSON(t, c.endpoints)
		if err := checkView(v, groups, "n1", "n2"); err != nil {
			return err
		}
		if r.code != exitFailed {
			return fmt.Errorf("exit %d, want %d\n%s", r.code, exitFailed, r)
		}
		if !strings.Contains(r.stderr, "unreachable: n3 (every group still has a leader)") {
			return fmt.Errorf("stderr does not say n3 is the problem\n%s", r)
		}
		wantOneLine(t, r)
		return nil
	})
}

// With no node to reach, duro status exits 75, like call.
func TestStatusNoNode(t *testing.T) {
	t.Parallel()
	nobody := freeAddr(t)
	for _, cmd := range []string{"status", "members", "groups"} {
		r := runCLI(t, cmd, "-e", nobody, "--timeout", "2s")
		if r.code != exitRetryable || r.stdout != "" || !strings.Contains(r.stderr, nobody) {
			t.Errorf("%s: want exit %d naming %s\n%s", cmd, exitRetryable, nobody, r)
		}
		wantOneLine(t, r)
	}
}
