// Package logstore is a node-wide Raft log store: one append-only WAL holding
// the logs of every Raft group hosted on a node, and one bbolt file holding
// their stable state (terms, votes), with group commit across groups.
//
// Why: with one log file per group (raft-boltdb), every group runs its own
// stream of fsyncs, batches shrink as groups are added, and node throughput
// falls (measured with stock hashicorp/raft on two cores: 18k writes/s with
// one group, 2.2k with 32). Here one writer goroutine takes every write
// queued by any group into a single commit: one WAL frame, written with one
// sequential write and made durable with one fdatasync, however many groups
// it holds. (Format 1 kept the logs in bbolt too; a commit then rewrote each
// touched group's B-tree pages and synced twice, and cost three to four
// times as long on this machine's disk.) There is no batching timer: a lone
// write commits at once, and batches grow only with the writes that queue up
// during a commit. wal.go documents the WAL's format, how its space is
// reclaimed, and what a crash can leave.
//
// Each group is served by a *GroupStore (Store.Group), which implements
// raft.LogStore and raft.StableStore.
//
// Invariants:
//   - Only the writer goroutine opens write transactions. A write returns
//     only after the transaction holding it has committed (fsynced unless
//     Options.NoSync) or failed; every write in a failed transaction gets the
//     error, and after a failed commit the store refuses writes (ErrFailed)
//     until reopened, because the durable state is then unknown, and calls
//     Options.OnFailure once (or panics): a node whose log store refuses
//     every write must stop, not linger. The one exception is an async
//     append, below.
//   - A group's FirstIndex/LastIndex are served from memory. They equal the
//     bounds of its committed log (its index, logIndex) as of the last
//     commit, widened by its pending async appends, and are updated before
//     the writes of that commit are acknowledged and before an async
//     StoreLogs returns.
//   - Log reads pread the record the group's index points to, holding the
//     group's lock shared, which keeps the record's segment from being
//     removed; they never see uncommitted writes, except pending async
//     appends, which are served from memory. Stable reads run in bbolt read
//     transactions. Both proceed concurrently with the writer.
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
//     transaction) fails the store, calls Options.OnFailure once (or
//     panics), wakes WaitDurable with ErrFailed, and leaves its requests
//     pending: raft was told they were stored, the node must stop.
//   - Bytes read from disk are never trusted: a record that does not
//     decode, fails its CRC-32C, or holds an index other than its key's is
//     reported as ErrCorrupt, never a panic; so is a WAL frame that fails its
//     checks anywhere but at the very end (see wal.go).
//
// Files: <path> is the bbolt file: a bucket "meta" with the format version
// (2), and per group a top-level bucket "g"+8-byte big-endian group ID with a
// sub-bucket "stable". <path>.wal/ holds the WAL's segments (wal.go).
//
// The bbolt file is small and written only on elections, so it runs with
// bbolt's defaults, plus a flock timeout: a second opener fails instead of
// hanging. That flock guards the WAL directory too.
package logstore
