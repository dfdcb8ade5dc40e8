package raftgroup

import (
	"time"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/logstore"
	"github.com/duro-db/duro/internal/metrics"
)

// groupFSM is what a group's raft applies to: the group's state machine, which applies an
// entry only once it is durable in this node's log (durable_commit.go says why a leader's
// may not be yet), and measures each batch for the node's metrics.
type groupFSM struct {
	*fsm.Store
	logs *logstore.GroupStore
	m    *metrics.Node
}

func (f groupFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	awaitDurable(f.logs, logs)
	start := time.Now()
	out := f.Store.ApplyBatch(logs)
	f.m.Applied(len(logs), time.Since(start))
	return out
}
