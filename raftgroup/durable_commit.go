package raftgroup

import (
	"context"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/internal/link"
	"github.com/duro-db/duro/internal/logstore"
)

// A leader appends before its own fsync.
//
// hashicorp/raft's leader stores a batch (StoreLogs, fsync) before it hands it to the
// replication goroutines, so a write would pay two fsyncs in series: the leader's, then a
// follower's. etcd's raft persists on the leader in parallel with sending; duro gets the
// same through the log store. While a group's raft is the leader, StoreLogs queues the
// entries for the next group commit and returns at once (logstore.GroupStore.
// SetAsyncAppends, set by appendBeforeFsyncWhileLeading). The entries are readable (raft's
// replication reads them back) before they are durable, and raft then counts the leader's
// undurable copy toward a commit.
//
// Two rules make that as safe as fsync-first, and this file enforces both:
//
//  1. The state machine applies an entry only once it is durable in this node's log
//     (awaitDurable, which groupFSM.ApplyBatch calls first). Every reply and every read
//     comes from applied state.
//  2. The commit index a leader tells its followers never passes its durable index
//     (durableCommitTransport, around the group's link transport), so no follower applies
//     an entry that a crash of the leader could still take back.
//
// So any entry anyone can observe is durable on a majority. A log commit that fails while
// holding such entries stops the node (logstore's OnFailure): raft was told they were
// stored. On followers appends stay synchronous, and the wait in rule 1 is free.
//
// TestNothingObservedBeforeTheLeaderLogIsDurable (durable_commit_test.go) holds a leader's
// log writes: without rule 1 the proposer is answered, without rule 2 the followers apply,
// and the test fails. Every kill -9 test covers the rest: a killed leader loses its queued
// entries exactly as a power cut would.

// appendBeforeFsyncWhileLeading makes the group's StoreLogs return before the fsync while
// r leads the group, and only then; and not while the disk is below its reserve: an
// append that then fails for want of space fails alone (raft's leader steps down), where
// a failed async append must stop the node.
func appendBeforeFsyncWhileLeading(logs *logstore.GroupStore, r *raft.Raft, diskLow func() bool) {
	logs.SetAsyncAppends(func() bool { return r.State() == raft.Leader && !diskLow() })
}

// awaitDurable returns once every entry of batch is durable in the group's log (rule 1).
// The entries are in index order, so waiting for the last one is enough.
func awaitDurable(logs *logstore.GroupStore, batch []*raft.Log) {
	if len(batch) == 0 {
		return
	}
	last := batch[len(batch)-1].Index
	if err := logs.WaitDurable(context.Background(), last); err != nil {
		// The log store failed or closed under raft: continuing would expose entries
		// that may not be on disk. The store's failure hook stops the node.
		panic(fmt.Sprintf("raftgroup: group %d: entries up to %d never became durable (invariant: a leader's entries are applied only once durable): %v", logs.ID(), last, err))
	}
}

// durableCommitTransport is a group's transport (internal/link) with the commit index it
// tells followers clamped to what is durable in this node's log (rule 2).
type durableCommitTransport struct {
	*link.Transport
	logs *logstore.GroupStore
}

func (t durableCommitTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return t.Transport.AppendEntries(id, target, clampCommit(args, t.logs.DurableIndex()), resp)
}

// clampCommit returns args, or a copy of it whose LeaderCommitIndex is at most durable.
// Heartbeats carry no commit index and pass as they are; args itself is never changed,
// since raft may still use it.
func clampCommit(args *raft.AppendEntriesRequest, durable uint64) *raft.AppendEntriesRequest {
	if link.IsHeartbeat(args) || args.LeaderCommitIndex <= durable {
		return args
	}
	clamped := *args
	clamped.LeaderCommitIndex = durable
	return &clamped
}
