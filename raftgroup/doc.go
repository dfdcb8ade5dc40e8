// Package raftgroup runs a node's replicas of many small Raft groups (hashicorp/raft) on
// one listener and one log store: the meta group 0, replicated on every node, and the
// data groups 1..G, each on R nodes.
//
// Invariants:
//   - Placement is a pure function of the sorted peer IDs and the shape (G, R, S): every
//     node bootstraps its own replicas with the same configurations without talking first,
//     and a restart with existing raft state never bootstraps again. The data dir records
//     its node and cluster (duro-node.json) and refuses to open for another.
//   - A replica serves (Commit, Submit, ReadIndex) only as leader and only after a Barrier
//     committed in its current term, so its state includes every entry acknowledged by an
//     earlier leader. LeaderTerm reports that state; any loss of leadership ends it.
//   - ReadIndex: commit index read after the call began, leadership confirmed by a quorum
//     afterwards in the same term, then the state machine waited for up to the last entry
//     it is handed at or below that index. Concurrent readers share rounds, never joining
//     one that started before them.
//   - The state machine is persistent and owns its applied index, so raft does not replay
//     a snapshot into it at start unless the state is older than the newest snapshot.
//   - Errors say whether the command may have been appended: *NotLeaderError (no) or
//     ErrUnknownOutcome (maybe; retry with the same request ID).
//   - Leadership is spread by handing each group to its preferred replica (Plan) once that
//     replica answers heartbeats; never to a node whose heartbeats are failing.
//   - Heartbeats travel as one round per pair of nodes for all groups, and appends of all
//     groups on one connection per pair (the node's link, internal/link). Raft's own
//     heartbeat calls may be answered from a round at most half a heartbeat timeout old;
//     a read's leadership check never is: it waits for rounds that start after it.
//   - A leader's log appends return before their fsync (logstore.SetAsyncAppends). Nothing
//     depends on an entry before it is durable locally: the state machine applies it only
//     then, and the commit index sent to followers never passes the durable index, so
//     whatever anyone observes is durable on a majority (durable_commit.go).
//   - Submit's commands enter the log in submission order, several to an entry when they
//     queue behind the group's one entry in flight (propose.go); each is applied, refused
//     and answered on its own, as if it had an entry of its own.
package raftgroup
