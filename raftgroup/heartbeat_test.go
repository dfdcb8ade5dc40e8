package raftgroup

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/internal/testutil"
)

// Followers hear from their leaders only through the node-to-node rounds: if those did not
// reach every group's raft, followers would time out and elections would never stop.
func TestCoalescedHeartbeatsHoldLeadership(t *testing.T) {
	c := newCluster(t, 3, withGroups(8))
	c.waitAllLeaders()
	terms := func() map[uint64]uint64 {
		m := map[uint64]uint64{}
		for _, n := range c.nodes {
			for _, g := range n.Groups() {
				if term, ok := g.LeaderTerm(); ok {
					m[g.ID()] = term
				}
			}
		}
		return m
	}
	// Leadership balancing moves some groups once; after that a window of 6 heartbeat
	// timeouts must pass with every group keeping its leader and term.
	window := 6 * c.cfgs[0].Timing.HeartbeatTimeout
	testutil.WaitFor(t, 30*time.Second, "a quiet window without elections", func() bool {
		before := terms()
		time.Sleep(window)
		after := terms()
		if len(before) != len(c.nodes[0].Placement().Replicas) {
			return false
		}
		for gid, term := range before {
			if after[gid] != term {
				return false
			}
		}
		return true
	})
	var rounds uint64
	for _, n := range c.nodes {
		rounds += n.link.Stats().Rounds
	}
	if rounds == 0 {
		t.Fatal("no heartbeat rounds were exchanged")
	}
}

// A read must confirm leadership with rounds that start after it, never with the acks
// raft's heartbeats are answered from: a leader cut off from its peers refuses reads at
// once, though its last acks are still fresh.
func TestReadIndexNeedsAFreshRound(t *testing.T) {
	c, proxies, _ := newProxiedCluster(t, 3, 3)
	c.waitAllLeaders()
	const gid = 1
	l := c.leader(gid)
	g := c.nodes[l].Group(gid)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.ReadIndex(ctx); err != nil {
		t.Fatalf("read on the leader: %v", err)
	}
	for link, p := range proxies {
		if link[0] == l || link[1] == l {
			p.cut()
		}
	}
	if err := g.ReadIndex(ctx); err == nil {
		t.Fatal("a leader cut off from every peer confirmed a read")
	}
	for _, p := range proxies {
		p.heal()
	}
	testutil.WaitFor(t, 15*time.Second, "reads served again", func() bool {
		i := c.leader(gid)
		return c.nodes[i].Group(gid).ReadIndex(ctx) == nil
	})
}

// A group's raft runs with the stretched heartbeat timeout while it leads and with the
// short one otherwise: a follower left with the leader's value would take that much longer
// to notice its leader is gone.
func TestLeaderRunsWithStretchedHeartbeats(t *testing.T) {
	c := newCluster(t, 3, withGroups(4))
	c.waitAllLeaders()
	tm := c.nodes[0].cfg.Timing
	if tm.LeaderHeartbeatTimeout <= tm.HeartbeatTimeout {
		t.Fatalf("test timing does not stretch: leader %v, follower %v", tm.LeaderHeartbeatTimeout, tm.HeartbeatTimeout)
	}
	testutil.WaitFor(t, 10*time.Second, "leaders stretched, followers not", func() bool {
		for _, n := range c.nodes {
			for _, g := range n.Groups() {
				want := tm.HeartbeatTimeout
				if g.Raft().State() == raft.Leader {
					want = tm.LeaderHeartbeatTimeout
				}
				if got := g.Raft().ReloadableConfig().HeartbeatTimeout; got != want {
					t.Logf("group %d on %s (%v): heartbeat timeout %v, want %v", g.ID(), n.cfg.ID, g.Raft().State(), got, want)
					return false
				}
			}
		}
		return true
	})
}

// Leaders heartbeat on the node's round ticks, not on raft's own timer: with that timer
// stretched far past the leader lease, a leader whose raft depended on it would find its
// followers' contact stale at the next lease check and step down.
func TestLeadersHeartbeatOnTheTicks(t *testing.T) {
	tm := fastTiming()
	tm.BalanceInterval = time.Hour // no leadership transfers while we watch
	tm.CommitTimeout = time.Hour   // nor idle appends, which refresh contact too
	c := newCluster(t, 3, withGroups(4), withTiming(tm))
	c.waitAllLeaders()
	type lead struct {
		node string
		term uint64
	}
	leaders := map[uint64]lead{}
	for _, n := range c.nodes {
		for _, g := range n.Groups() {
			if g.Raft().State() != raft.Leader {
				continue
			}
			rc := g.Raft().ReloadableConfig()
			rc.HeartbeatTimeout, rc.ElectionTimeout = 40*tm.LeaderLeaseTimeout, 40*tm.LeaderLeaseTimeout
			if err := g.Raft().ReloadConfig(rc); err != nil {
				t.Fatal(err)
			}
			leaders[g.ID()] = lead{n.cfg.ID, g.Raft().CurrentTerm()}
		}
	}
	if len(leaders) != 5 {
		t.Fatalf("%d leaders, want 5 (meta and 4 data groups)", len(leaders))
	}
	// Raft's own heartbeats now come every 4-8 leases: without the ticks, every leader
	// would step down within about two leases.
	time.Sleep(8 * tm.LeaderLeaseTimeout)
	for _, n := range c.nodes {
		for _, g := range n.Groups() {
			l := leaders[g.ID()]
			if l.node != n.cfg.ID {
				continue
			}
			if g.Raft().State() != raft.Leader || g.Raft().CurrentTerm() != l.term {
				t.Errorf("group %d: %s no longer leads term %d (%v, term %d)", g.ID(), n.cfg.ID, l.term, g.Raft().State(), g.Raft().CurrentTerm())
			}
		}
	}
}
