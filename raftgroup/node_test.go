package raftgroup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/testutil"
)

// Must show 1: clusters bootstrap, every group elects a leader, and leadership settles
// evenly: no node leads more than ceil(G/N)+1 data groups.
func TestBootstrapAndBalance(t *testing.T) {
	for _, tc := range []struct{ nodes, groups int }{{3, 16}, {5, 16}} {
		t.Run(fmt.Sprintf("%dnodes", tc.nodes), func(t *testing.T) {
			c := newCluster(t, tc.nodes, withGroups(tc.groups))
			c.waitAllLeaders()
			limit := (tc.groups+tc.nodes-1)/tc.nodes + 1
			testutil.WaitFor(t, 30*time.Second, fmt.Sprintf("every node to lead at most %d groups", limit), func() bool {
				total := 0
				for _, n := range c.nodes {
					l := len(n.Leading())
					if l > limit {
						return false
					}
					total += l
				}
				return total == tc.groups
			})
			for _, n := range c.nodes {
				t.Logf("%s leads %v", n.ID(), n.Leading())
			}
			// Every replica agrees on membership of each group it hosts.
			for _, n := range c.nodes {
				for _, g := range n.Groups() {
					f := g.Raft().GetConfiguration()
					if err := f.Error(); err != nil {
						t.Fatal(err)
					}
					if got, want := len(f.Configuration().Servers), len(n.Placement().Replicas[g.ID()]); got != want {
						t.Fatalf("%s group %d: %d servers, want %d", n.ID(), g.ID(), got, want)
					}
				}
			}
			// The meta group recorded the cluster.
			testutil.WaitFor(t, 10*time.Second, "cluster record on every node", func() bool {
				for _, n := range c.nodes {
					rec, ok, err := n.ClusterRecord()
					if err != nil || !ok || rec.ClusterID != n.Placement().ClusterID || len(rec.Members) != tc.nodes {
						return false
					}
				}
				return true
			})
		})
	}
}

// Must show 2: a write through a group's leader is on every replica; a command of 100 puts
// on one object is all or nothing.
func TestReplicatedAtomicWrites(t *testing.T) {
	c := newCluster(t, 3)
	c.waitAllLeaders()
	const gid = 2
	obj := randomID()
	var kv []string
	for i := 0; i < 100; i++ {
		kv = append(kv, fmt.Sprintf("k%03d", i), fmt.Sprintf("v%d", i))
	}
	res := c.commit(gid, put(obj, kv...))
	if res.Version != 1 {
		t.Fatalf("version %d, want 1", res.Version)
	}
	for _, n := range c.nodes {
		g := n.Group(gid)
		testutil.WaitFor(t, 5*time.Second, n.ID()+" to apply", func() bool { return g.CaughtUp(res.Index) })
		for i := 0; i < 100; i++ {
			if v, ok := get(t, g, obj, fmt.Sprintf("k%03d", i)); !ok || v != fmt.Sprintf("v%d", i) {
				t.Fatalf("%s: k%03d = %q,%v", n.ID(), i, v, ok)
			}
		}
	}

	// A 100-op command whose last op is invalid is refused whole: nothing of it is written.
	obj2 := randomID()
	bad := put(obj2, kv...)
	bad.Ops[99].Key = nil
	g := c.nodes[c.leader(gid)].Group(gid)
	if _, err := g.Commit(context.Background(), bad); !errors.Is(err, fsm.ErrBadCommand) {
		t.Fatalf("invalid command: err %v, want ErrBadCommand", err)
	}
	for _, n := range c.nodes {
		if _, ok := get(t, n.Group(gid), obj2, "k000"); ok {
			t.Fatalf("%s: part of a rejected command was applied", n.ID())
		}
	}
}

// Must show 6: a write sent to a non-leader gets a typed NotLeader error with the leader's
// address.
func TestNotLeaderError(t *testing.T) {
	c := newCluster(t, 3)
	c.waitAllLeaders()
	const gid = 1
	li := c.leader(gid)
	for i, n := range c.nodes {
		if i == li {
			continue
		}
		_, err := n.Group(gid).Commit(context.Background(), put(randomID(), "k", "v"))
		var nle *NotLeaderError
		if !errors.As(err, &nle) || !errors.Is(err, ErrNotLeader) {
			t.Fatalf("%s: err %v, want *NotLeaderError", n.ID(), err)
		}
		testutil.WaitFor(t, 5*time.Second, "leader hint", func() bool {
			_, err = n.Group(gid).Commit(context.Background(), put(randomID(), "k", "v"))
			return errors.As(err, &nle) && nle.LeaderAddr != ""
		})
		if nle.LeaderID != c.nodes[li].ID() || nle.LeaderAddr != c.cfgs[li].self().Addr {
			t.Fatalf("%s: hint %s@%s, want %s@%s", n.ID(), nle.LeaderID, nle.LeaderAddr, c.nodes[li].ID(), c.cfgs[li].self().Addr)
		}
		if err := n.Group(gid).ReadIndex(context.Background()); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("%s: ReadIndex on follower: %v", n.ID(), err)
		}
	}
}

// Linearizable reads: ReadIndex on the leader sees every write acknowledged before it.
func TestReadIndexSeesAcknowledgedWrites(t *testing.T) {
	c := newCluster(t, 3)
	c.waitAllLeaders()
	const gid = 3
	obj := randomID()
	for i := 0; i < 50; i++ {
		c.commit(gid, put(obj, "k", fmt.Sprint(i)))
		g := c.nodes[c.leader(gid)].Group(gid)
		if err := g.ReadIndex(context.Background()); err != nil {
			t.Fatal(err)
		}
		if v, _ := get(t, g, obj, "k"); v != fmt.Sprint(i) {
			t.Fatalf("read %q after writing %d", v, i)
		}
	}
}

// Must show 5: a node kept down while the others truncate their logs catches up by
// snapshot; afterwards every replica of every group has the same state hash.
func TestSnapshotCatchUp(t *testing.T) {
	timing := fastTiming()
	timing.SnapshotThreshold = 64
	timing.TrailingLogs = 16
	timing.SnapshotInterval = 100 * time.Millisecond
	c := newCluster(t, 3, withTiming(timing))
	c.waitAllLeaders()

	down := 2
	c.stop(down)
	objs := [][]byte{randomID(), randomID(), randomID()}
	for i := 0; i < 300; i++ {
		gid := uint64(1 + i%4)
		c.commit(gid, put(objs[i%3], fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)))
	}
	// Force a snapshot everywhere so the entries the down node lacks are gone from the logs.
	for i, n := range c.nodes {
		if i == down {
			continue
		}
		for _, g := range n.Groups() {
			if err := g.Raft().Snapshot().Error(); err != nil {
				t.Fatalf("%s group %d snapshot: %v", n.ID(), g.ID(), err)
			}
		}
	}
	for gid := uint64(1); gid <= 4; gid++ {
		g := c.nodes[c.leader(gid)].Group(gid)
		first, _ := g.raft.Stats()["last_snapshot_index"], 0
		if first == "0" {
			t.Fatalf("group %d: no snapshot taken", gid)
		}
	}
	c.restart(down)
	for gid := uint64(0); gid <= 4; gid++ {
		lead := c.nodes[c.leader(gid)].Group(gid)
		want := lead.raft.CommitIndex()
		testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("group %d to converge", gid), func() bool {
			var ref []byte
			for _, n := range c.nodes {
				h, _, err := n.Group(gid).State().Hash()
				if err != nil || !n.Group(gid).CaughtUp(want) {
					return false
				}
				if ref != nil && !bytes.Equal(ref, h) {
					return false
				}
				ref = h
			}
			return true
		})
	}
	// The restarted node got there through InstallSnapshot: it holds a snapshot it never took.
	restored := 0
	for _, g := range c.nodes[down].Groups() {
		if g.raft.Stats()["last_snapshot_index"] != "0" {
			restored++
		}
	}
	if restored == 0 {
		t.Fatalf("restarted node caught up without any snapshot")
	}
}

// Restarting every node in-process keeps every write and applies nothing twice.
func TestRestartAllInProcess(t *testing.T) {
	c := newCluster(t, 3)
	c.waitAllLeaders()
	obj := randomID()
	const gid = 1
	for i := 0; i < 40; i++ {
		c.commit(gid, put(obj, fmt.Sprintf("k%d", i), "v"))
	}
	for i := range c.nodes {
		c.stop(i)
	}
	for i := range c.nodes {
		c.restart(i)
	}
	g := c.nodes[c.leader(gid)].Group(gid)
	if err := g.ReadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	var version uint64
	var keys int
	g.View(func(tx *fsm.Tx) error {
		version = tx.Version(obj)
		return tx.List(obj, fsm.ListOptions{}, func(k, v []byte) bool { keys++; return true })
	})
	if version != 40 || keys != 40 {
		t.Fatalf("after restart: version %d keys %d, want 40 and 40", version, keys)
	}
}

func TestConfigValidation(t *testing.T) {
	peers := []Peer{{"a", "127.0.0.1:1"}, {"b", "127.0.0.1:2"}, {"c", "127.0.0.1:3"}}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no id", Config{DataDir: "d", Peers: peers}},
		{"not in peers", Config{ID: "z", DataDir: "d", Peers: peers}},
		{"dup id", Config{ID: "a", DataDir: "d", Peers: append(peers, Peer{"a", "127.0.0.1:4"})}},
		{"dup addr", Config{ID: "a", DataDir: "d", Peers: append(peers, Peer{"d", "127.0.0.1:3"})}},
		{"replicas > peers", Config{ID: "a", DataDir: "d", Peers: peers, Replicas: 5}},
		{"slots < groups", Config{ID: "a", DataDir: "d", Peers: peers, Groups: 10, Slots: 5}},
		{"too many groups", Config{ID: "a", DataDir: "d", Peers: peers, Groups: MaxGroups + 1}},
		{"leader heartbeat below follower", Config{ID: "a", DataDir: "d", Peers: peers,
			Timing: Timing{HeartbeatTimeout: time.Second, LeaderHeartbeatTimeout: 500 * time.Millisecond}}},
		{"leader heartbeat past the lease", Config{ID: "a", DataDir: "d", Peers: peers,
			Timing: Timing{LeaderLeaseTimeout: time.Second, LeaderHeartbeatTimeout: 5 * time.Second}}},
	} {
		if err := tc.cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err %v, want ErrInvalidConfig", tc.name, err)
		}
	}
	for _, bad := range []string{"", "a", "a=", "=x:1", "a=nohostport"} {
		if _, err := ParsePeers(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ParsePeers(%q): %v", bad, err)
		}
	}
	if p, err := ParsePeers("a=127.0.0.1:1, b=127.0.0.1:2"); err != nil || len(p) != 2 || FormatPeers(p) != "a=127.0.0.1:1,b=127.0.0.1:2" {
		t.Errorf("ParsePeers roundtrip: %v %v", p, err)
	}
}

func TestDataDirBelongsToOneNode(t *testing.T) {
	c := newCluster(t, 3)
	c.waitAllLeaders()
	cfg := c.cfgs[0]
	c.stop(0)
	other := cfg
	other.ID = "n2"
	if _, err := Start(other, nil); !errors.Is(err, ErrDataDir) {
		t.Fatalf("another node's data dir: %v", err)
	}
	shape := cfg
	shape.Groups = 8
	if _, err := Start(shape, nil); !errors.Is(err, ErrDataDir) {
		t.Fatalf("another cluster shape: %v", err)
	}
}

func TestPlanSpreadsLeaders(t *testing.T) {
	peers := []Peer{{"c", "h:3"}, {"a", "h:1"}, {"b", "h:2"}, {"e", "h:5"}, {"d", "h:4"}}
	for _, g := range []int{1, 5, 16, 33} {
		p := Plan(Config{Peers: peers, Groups: g, Replicas: 3})
		lead := map[string]int{}
		for gid := uint64(1); gid <= uint64(g); gid++ {
			r := p.Replicas[gid]
			if len(r) != 3 || r[0] == r[1] || r[1] == r[2] || r[0] == r[2] {
				t.Fatalf("G=%d group %d replicas %v", g, gid, r)
			}
			lead[r[0]]++
		}
		for id, l := range lead {
			if l > (g+4)/5 {
				t.Fatalf("G=%d: %s preferred for %d groups", g, id, l)
			}
		}
		counts := map[uint64]int{}
		for _, gid := range p.Slots {
			counts[gid]++
		}
		if len(counts) != g {
			t.Fatalf("G=%d: slots cover %d groups", g, len(counts))
		}
	}
}

// A state machine left open when the machine (not just the process) went down may be torn,
// since it does not fsync: the node discards it and rebuilds it from the snapshot and log.
func TestStateRebuiltAfterMachineCrash(t *testing.T) {
	if bootID(Config{}) == nil {
		t.Skip("no boot ID on this system: state machines fsync instead")
	}
	timing := fastTiming()
	timing.SnapshotThreshold = 32
	timing.TrailingLogs = 8
	timing.SnapshotInterval = 100 * time.Millisecond
	c := newCluster(t, 3, withTiming(timing))
	c.waitAllLeaders()
	obj := randomID()
	for i := 0; i < 60; i++ {
		c.commit(1, put(obj, fmt.Sprintf("k%d", i), "v"))
	}
	for _, n := range c.nodes {
		if err := n.Group(1).Raft().Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 60; i < 70; i++ { // some entries after the snapshot, to be replayed from the log
		c.commit(1, put(obj, fmt.Sprintf("k%d", i), "v"))
	}
	victim := 2
	dir := filepath.Join(c.cfgs[victim].DataDir, "groups", "1")
	c.stop(victim)
	// What a power loss leaves: the marker of an earlier boot and a torn state file.
	if err := os.WriteFile(filepath.Join(dir, markerName), []byte("an-earlier-boot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.db"), []byte("torn"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.restart(victim)
	lead := c.nodes[c.leader(1)].Group(1)
	want := lead.raft.CommitIndex()
	testutil.WaitFor(t, 20*time.Second, "the rebuilt replica to match the others", func() bool {
		var ref []byte
		for _, n := range c.nodes {
			h, _, err := n.Group(1).State().Hash()
			if err != nil || !n.Group(1).CaughtUp(want) || (ref != nil && !bytes.Equal(ref, h)) {
				return false
			}
			ref = h
		}
		return true
	})
	if v, ok := get(t, c.nodes[victim].Group(1), obj, "k69"); !ok || v != "v" {
		t.Fatalf("rebuilt replica lacks the last write")
	}
}
