package jepsen

import (
	"context"
	"fmt"

	"github.com/duro-db/duro/bench/failover"
)

// BusiestLeader returns the running node that leads the most groups, the meta group
// included, with how many it leads and how many groups there are. A group two nodes
// claim to lead (an old leader that has not heard of the new term yet) counts for the
// claim of the higher term. Ties go to the meta group's leader, then to the lower index.
func (c *Cluster) BusiestLeader(ctx context.Context) (node, led, groups int, err error) {
	type claim struct {
		node int
		term uint64
	}
	leaders := map[uint64]claim{}
	seen := map[uint64]bool{}
	var lastErr error
	for _, n := range c.Nodes {
		if n.State() != NodeRunning {
			continue
		}
		st, err := c.Status(ctx, n.Index)
		if err != nil {
			lastErr = err
			continue
		}
		for _, g := range st.Groups {
			seen[g.ID] = true
			if g.Role != "leader" {
				continue
			}
			if l, ok := leaders[g.ID]; !ok || g.Term > l.term {
				leaders[g.ID] = claim{n.Index, g.Term}
			}
		}
	}
	if len(leaders) == 0 {
		return -1, 0, len(seen), fmt.Errorf("%w for any group (last status error: %v)", ErrNoLeader, lastErr)
	}
	count := make([]int, len(c.Nodes))
	for _, l := range leaders {
		count[l.node]++
	}
	meta, hasMeta := leaders[0]
	node = -1
	for i, k := range count {
		better := node < 0 || k > count[node] ||
			(k == count[node] && hasMeta && meta.node == i && meta.node != node)
		if k > 0 && better {
			node = i
		}
	}
	return node, count[node], len(seen), nil
}

// FailoverTarget returns c as the target of a failover run (bench/failover): the victim
// is BusiestLeader; kill SIGKILLs it, pause SIGSTOPs it until the run undoes the fault,
// and partition cuts every raft link to and from it, both ways, while its client proxy
// stays open (clients still reach it, as they would a node cut off from its peers only).
func (c *Cluster) FailoverTarget() failover.Target { return failoverTarget{c} }

type failoverTarget struct{ c *Cluster }

func (t failoverTarget) Victim(ctx context.Context) (string, string, error) {
	i, led, groups, err := t.c.BusiestLeader(ctx)
	if err != nil {
		return "", "", err
	}
	return t.c.Nodes[i].ID, fmt.Sprintf("leads %d of %d groups", led, groups), nil
}

func (t failoverTarget) Strike(_ context.Context, f failover.Fault, id string) (func() error, error) {
	i := -1
	for _, n := range t.c.Nodes {
		if n.ID == id {
			i = n.Index
		}
	}
	if i < 0 {
		return nil, fmt.Errorf("jepsen: no node %q", id)
	}
	switch f {
	case failover.Kill:
		return nil, t.c.Kill(i)
	case failover.Pause:
		if err := t.c.Pause(i); err != nil {
			return nil, err
		}
		return func() error { return t.c.Resume(i) }, nil
	case failover.Partition:
		t.c.isolate(i, true)
		return func() error { t.c.isolate(i, false); return nil }, nil
	}
	return nil, fmt.Errorf("jepsen: fault %q is not one of failover.Faults", f)
}

// isolate cuts (or heals) every raft link between node i and the others, both ways.
func (c *Cluster) isolate(i int, cut bool) {
	for j := range c.Nodes {
		if j != i {
			c.Cut(i, j, cut)
			c.Cut(j, i, cut)
		}
	}
}
