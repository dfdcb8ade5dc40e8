package raftgroup

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
)

// MetaGroup is the ID of the meta group, replicated on every node.
const MetaGroup uint64 = 0

// Placement says where data lives: slot → data group, and each group's replicas in order of
// preference for leadership (Replicas[g][0] is g's preferred leader).
type Placement struct {
	ClusterID string
	Slots     []uint64            // index: slot; value: data group (1..G)
	Replicas  map[uint64][]string // group → node IDs; MetaGroup included (every node)
}

// Plan computes the initial placement of a cluster. It is a pure function of the sorted peer
// IDs, G, R and S, so every node derives the same plan at bootstrap without talking first.
//
// Group g (1..G) lives on R consecutive nodes starting at node (g-1) mod N, and the first of
// them is its preferred leader; slot s belongs to group 1 + s mod G. With leaders on their
// preferred nodes, every node leads ceil(G/N) or floor(G/N) groups.
func Plan(c Config) Placement {
	c = c.withDefaults()
	n := len(c.Peers)
	p := Placement{
		ClusterID: clusterID(c),
		Slots:     make([]uint64, c.Slots),
		Replicas:  make(map[uint64][]string, c.Groups+1),
	}
	all := make([]string, n)
	for i, peer := range c.Peers {
		all[i] = peer.ID
	}
	p.Replicas[MetaGroup] = all
	for g := 1; g <= c.Groups; g++ {
		reps := make([]string, c.Replicas)
		for i := range reps {
			reps[i] = all[(g-1+i)%n]
		}
		p.Replicas[uint64(g)] = reps
	}
	for s := range p.Slots {
		p.Slots[s] = 1 + uint64(s%c.Groups)
	}
	return p
}

// clusterID names a cluster by what must never change under it: the member IDs and the
// shape (G, R, S). Addresses may change; these may not.
func clusterID(c Config) string {
	ids := make([]string, len(c.Peers))
	for i, p := range c.Peers {
		ids[i] = p.ID
	}
	h := sha256.New()
	fmt.Fprintf(h, "duro-cluster\x00%s\x00", strings.Join(ids, "\x00"))
	var b [24]byte
	binary.BigEndian.PutUint64(b[0:], uint64(c.Groups))
	binary.BigEndian.PutUint64(b[8:], uint64(c.Replicas))
	binary.BigEndian.PutUint64(b[16:], uint64(c.Slots))
	h.Write(b[:])
	return fmt.Sprintf("%x", h.Sum(nil)[:8])
}

// GroupOf returns the data group of slot.
func (p Placement) GroupOf(slot int) uint64 { return p.Slots[slot] }

// Hosts reports whether node hosts a replica of group.
func (p Placement) Hosts(node string, group uint64) bool {
	for _, id := range p.Replicas[group] {
		if id == node {
			return true
		}
	}
	return false
}
