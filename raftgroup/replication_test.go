package raftgroup

import (
	"fmt"
	"testing"
	"time"

	"github.com/duro-db/duro/internal/testutil"
)

// Followers get their entries over the shared connections, and replication carries on
// after those connections break.
func TestReplicationUsesSharedConnections(t *testing.T) {
	c, proxies, _ := newProxiedCluster(t, 3, 4)
	c.waitAllLeaders()
	obj := randomID()
	for gid := range c.nodes[0].Placement().Replicas {
		c.commit(gid, put(obj, "k", fmt.Sprint(gid)))
	}
	// A write returns once a quorum has it; the slowest follower may get it just after.
	testutil.WaitFor(t, 10*time.Second, "every node to get append requests over the shared connections", func() bool {
		for _, n := range c.nodes {
			if n.link.Stats().Delivered == 0 {
				return false
			}
		}
		return true
	})

	// Break every connection between the nodes; the next writes redial.
	for _, p := range proxies {
		p.cut()
		p.heal()
	}
	before := make([]uint64, len(c.nodes))
	for i, n := range c.nodes {
		before[i] = n.link.Stats().Delivered
	}
	for gid := range c.nodes[0].Placement().Replicas {
		res := c.commit(gid, put(obj, "k2", fmt.Sprint(gid)))
		if res.Err != nil {
			t.Fatalf("group %d: %v", gid, res.Err)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "at least two nodes to get entries over new connections", func() bool {
		grew := 0
		for i, n := range c.nodes {
			if n.link.Stats().Delivered > before[i] {
				grew++
			}
		}
		return grew >= 2
	})
}
