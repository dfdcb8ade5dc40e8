// Package logstore is a node-wide Raft log store: one bbolt file holding the
// logs and stable state of every Raft group hosted on a node, with group
// commit across groups.
//
// Why: with one log file per group (raft-boltdb), every group runs its own
// stream of fsyncs, batches shrink as groups are added, and node throughput
// falls (measured with stock hashicorp/raft on two cores: 18k writes/s with
// one group, 2.2k with 32). Here one writer goroutine takes every write
// queued by any group into a single bbolt transaction, so a node pays one
// round of fsyncs per batch however many groups it hosts. There is no batching timer: a lone write commits at
// once, and batches grow only with the writes that queue up during a commit.
//
// Each group is served by a *GroupStore (Store.Group), which implements
// raft.LogStore and raft.StableStore.
//
// Invariants:
//   - Only the writer goroutine opens write transactions. A write returns
//     only after the transaction holding it has committed (fsynced unless
//     Options.NoSync) or failed; every write in a failed transaction gets the
//     error, and after a failed commit the store refuses writes (ErrFailed)
//     until reopened, because the durable state is then unknown.
//   - A group's FirstIndex/LastIndex are served from memory. They equal the
//     bounds of its log bucket as of the last commit, and are updated before
//     the writes of that commit are acknowledged.
//   - Reads run in bbolt read transactions, concurrently with the writer,
//     and never see uncommitted writes.
//   - Bytes read from the file are never trusted: a record that does not
//     decode, fails its CRC-32C, or holds an index other than its key's is
//     reported as ErrCorrupt, never a panic.
//
// File layout: a bucket "meta" with the format version, and per group a
// top-level bucket "g"+8-byte big-endian group ID with sub-buckets "log"
// (8-byte big-endian index -> record, see codec.go) and "stable".
//
// bbolt options, and why:
//   - NoFreelistSync: bbolt otherwise rewrites the whole freelist on every
//     commit; raft's compaction frees pages constantly, so that is an extra
//     page write per fsync round. The price is a scan of the file to rebuild
//     the freelist at Open.
//   - FreelistMapType: page allocation in O(1) instead of scanning an array
//     freelist, which degrades as compaction fragments the file.
//   - InitialMmapSize of 1 GiB (address space, not memory): a remap blocks the
//     writer until every read transaction has finished, and raft reads logs
//     continuously while replicating.
//   - A flock timeout, so that a second opener fails instead of hanging.
//
// The log bucket's FillPercent is raised to 0.9 in each write transaction
// because raft only appends at the tail, where bbolt's default of 0.5 would
// leave every page half empty.
package logstore
