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
//     until reopened, because the durable state is then unknown. The one
//     exception is an async append, below.
//   - A group's FirstIndex/LastIndex are served from memory. They equal the
//     bounds of its log bucket as of the last commit, widened by its pending
//     async appends, and are updated before the writes of that commit are
//     acknowledged and before an async StoreLogs returns.
//   - Reads run in bbolt read transactions, concurrently with the writer,
//     and never see uncommitted writes, except pending async appends, which
//     are served from memory.
//
// Async appends (async.go), for a raft leader whose fsync should overlap
// replication instead of preceding it:
//   - With GroupStore.SetAsyncAppends set and reporting leadership, StoreLogs
//     queues its request like any write but returns once it is queued. From
//     then until the writer has committed it, the request sits in its
//     group's pending list, and GetLog decodes its entries from it, exactly
//     as the file would return them (Index, Term, Type, Data, Extensions,
//     AppendedAt). Every other write stays synchronous.
//   - A group's view is its committed log with its pending requests applied
//     over it in queue order, newest winning. A synchronous write enters
//     the view at its commit, i.e. when it returns. Batches are prefixes of
//     the queue, so every pending request follows every committed write of
//     its group, and the view is exact: a DeleteRange queued after an async
//     append removes its entries when it commits, a StoreLogs queued after
//     that replaces them, and a synchronous StoreLogs behind async ones
//     returns after they are durable too.
//   - DurableIndex never exceeds the committed log's last index nor reaches
//     the lowest pending index, so every entry the view holds at or below
//     it is on disk. It equals LastIndex when nothing is pending. It is
//     published, and WaitDurable's callers woken, only after the commit.
//   - A request leaves the pending list only after its commit, under the
//     group's lock, and is recycled only after that, so a reader that
//     misses it in the list finds it in the file.
//   - Close commits the queued async appends before it returns; pending
//     requests are released as soon as they are committed. Nothing bounds
//     how many are pending: raft keeps appending while the disk is slow.
//   - A batch holding async appends that fails (commit or aborted
//     transaction) fails the store, calls Options.OnAsyncFailure once (or
//     panics), wakes WaitDurable with ErrFailed, and leaves its requests
//     pending: raft was told they were stored, the node must stop.
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
