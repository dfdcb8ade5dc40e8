package duro

import (
	"context"
	"fmt"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/objid"
	"github.com/duro-db/duro/objects"
	"github.com/duro-db/duro/raftgroup"
)

// locator routes an object to its group: ID → slot → data group (placement) → this
// node's replica, if it serves the group. It implements objects.Locator.
type locator struct {
	node   *raftgroup.Node
	slots  []uint64
	groups map[uint64]*group // one adapter per hosted group, so Locate's value is stable
}

func newLocator(n *raftgroup.Node, faults *faultSwitches) *locator {
	l := &locator{node: n, slots: n.Placement().Slots, groups: map[uint64]*group{}}
	for _, g := range n.Groups() {
		l.groups[g.ID()] = &group{g: g, self: n.ID(), faults: faults}
	}
	return l
}

// Locate returns the group of id if this node serves it, else the *raftgroup.NotLeaderError
// naming the leader it knows of.
func (l *locator) Locate(id objid.ID) (objects.Group, error) {
	gid := l.slots[id.Slot(len(l.slots))]
	if _, err := l.node.Serving(gid); err != nil {
		return nil, err
	}
	g := l.groups[gid]
	if g == nil {
		// Serving succeeded, so the node hosts gid, and every hosted group has an adapter.
		panic(fmt.Sprintf("duro: node serves group %d but has no adapter for it (invariant: one adapter per hosted group)", gid))
	}
	if _, ok := g.LeaderTerm(); !ok {
		return nil, g.notLeader()
	}
	return g, nil
}

// group adapts a raftgroup.Group to objects.Group: submission and wait apart, so that one
// object's commands enter the log in the order its calls ran while their commits overlap.
//
// The runtime's Prefix rule (of one object's pipelined commands, only a prefix ever
// applies) does not rest on raft here: every command carries the object version it
// produces (fsm.Command.Version), and the state machine rejects one whose predecessor
// did not apply.
type group struct {
	g      *raftgroup.Group
	self   string         // this node's ID
	faults *faultSwitches // nil but in a failpoints build that was asked for some
}

func (a *group) LeaderTerm() (term uint64, ok bool) { return a.g.LeaderTerm() }

func (a *group) Submit(_ context.Context, term uint64, cmd *fsm.Command) objects.Proposal {
	return a.propose(term, cmd) // failpoints.go: a.g.Submit plus test-only faults
}

func (a *group) ReadIndex(ctx context.Context) error  { return a.readIndex(ctx) } // failpoints.go
func (a *group) View(fn func(tx *fsm.Tx) error) error { return a.g.View(fn) }
func (a *group) String() string                       { return fmt.Sprintf("group %d", a.g.ID()) }

var _ objects.Group = (*group)(nil)

// notLeader names the leader this replica knows of; it never points a client back here
// (a leader that is not serving yet, or stepping down, gives no hint).
func (a *group) notLeader() error {
	id, addr := a.g.Leader()
	if id == a.self {
		id, addr = "", ""
	}
	return &raftgroup.NotLeaderError{Group: a.g.ID(), LeaderID: id, LeaderAddr: addr}
}
