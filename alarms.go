package duro

import (
	"github.com/duro-db/duro/objects"
	"github.com/duro-db/duro/raftgroup"
)

// ServingGroups returns the data groups this node leads and serves now, as the same
// adapters Locate returns, so the object runtime fires their alarms (objects.AlarmGroups).
// The runtime asks again whenever the node's serving set changes (ServingChanged), so a
// group whose leadership moved here has its alarms resumed right after its Barrier.
func (l *locator) ServingGroups() []objects.Group {
	var out []objects.Group
	for _, g := range l.node.Groups() {
		if g.ID() == raftgroup.MetaGroup {
			continue // holds the cluster record, no objects of users
		}
		if _, ok := g.LeaderTerm(); !ok {
			continue
		}
		if a := l.groups[g.ID()]; a != nil {
			out = append(out, a)
		}
	}
	return out
}

// ServingChanged implements objects.ServingNotifier.
func (l *locator) ServingChanged() <-chan struct{} { return l.node.ServingChanged() }

var (
	_ objects.AlarmGroups     = (*locator)(nil)
	_ objects.ServingNotifier = (*locator)(nil)
)
