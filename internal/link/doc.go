// Package link is the node-to-node link of a duro node: the connections that carry every
// group's heartbeats and log replication between two nodes, whatever the number of groups
// they share. raftgroup runs each group's hashicorp/raft on a Transport of this package.
//
// Two protocols, each on connections of its own (framing.ProtoBeat, ProtoAppend):
//   - Heartbeats (beats.go, beatwire.go): a node sends each peer node one round per tick
//     listing every group it leads there; the peer hands each to the group's raft heartbeat
//     handler and answers with one frame of acks.
//   - Appends (appends.go, appendwire.go): every non-heartbeat AppendEntries a node sends
//     to one peer node, for any group, goes on one shared connection, request IDs letting
//     groups answer out of order.
//
// Votes, snapshots, TimeoutNow and an append too large for one frame stay on the group's
// raft.NetworkTransport, which Transport wraps.
//
// Invariants:
//   - One connection manager (conns.go) owns every connection of both protocols, dialed
//     or accepted: Close closes them all and returns only once every goroutine of the link
//     has ended.
//   - Raft's own heartbeat calls may be answered from a round at most half a heartbeat
//     timeout old; Confirm never is: it counts only rounds that start after it was called.
//   - A group's appends reach its raft in the order raft sent them: raft sends one
//     AppendEntries at a time per follower and group (no pipelining), so the follower may
//     handle requests of different groups concurrently.
//   - Nothing read from a peer causes a panic: a frame that does not decode (fuzzed) ends
//     that connection only, and the next use redials.
//   - The link knows nothing of what a group stores: what to send, and what to promise
//     (such as the commit index a leader may advertise), is the caller's.
package link
