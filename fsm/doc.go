// Package fsm is the replicated state machine of one Raft group on one node: it applies
// per-object commands to a bbolt file. A *Store implements hashicorp/raft's FSM and
// BatchingFSM; there is one Store (and one file) per group replica.
//
// A Command carries one object's writes from one call and is applied all or nothing: it is
// validated as a whole before any of it is written, and a command that fails validation
// or decoding writes nothing, identically on every replica.
//
// Invariants:
//
//   - Determinism. The state after the entry at index i depends only on the log up to i
//     (and on Options.DedupTTL and DedupPerClient, which must match across replicas). No
//     wall clock, no randomness, and nothing that depends on how raft happens to cut the
//     log into batches: time is the log clock (the highest Command.Time applied), and dedup
//     pruning has a per-command, not per-batch, budget.
//   - Exactly once. The applied index is written in the same bbolt transaction as the
//     data of the entries up to it, so every commit leaves the file holding a prefix of
//     the log together with its index. A replay after a crash skips every entry at or
//     below it, so no entry is applied twice and none committed to disk is lost; the
//     entries applied after the last commit are in raft's log, which replays them.
//   - Visibility. An entry is applied (AppliedIndex, WaitApplied) once View sees it, and
//     View sees every applied entry, whether or not its transaction has committed. The
//     file lags the applied index by about Options.CommitInterval of entries at most (and
//     by no more than 256 entries plus one raft batch), and not at all once Snapshot,
//     Restore, Hash or Close has returned. Raft compacts its log only below a snapshot,
//     and Snapshot commits first, so the log always holds whatever the file lacks.
//   - Failure. An apply or commit that fails panics (on raft's FSM goroutine or the
//     flusher's) and leaves the store broken: acknowledged entries were rolled back, so
//     View errs and ApplyBatch panics until the store is reopened and raft replays.
//   - Deduplication. A command whose (Client, Seq) is in the dedup table is not applied
//     again; it returns the first result.
//   - Shape. An object has a record (version, alarm) from its first command on, and its
//     keys follow it, in key order, in the one bucket of all objects; an alarm record and
//     an alarm index entry together or not at all. A dedup client has a record while it
//     has entries, and its entries follow it, in Seq order, in the dedup bucket.
//
// Storage choices. The layout (layout.go) is format 2: one B-tree of all objects' records
// and keys, keyed object ID ‖ key, rather than a bucket per object, and each dedup
// client's record in the dedup tree just before its entries, so that one cursor pass
// reads both; a format-1 file (or snapshot) is migrated when opened (or restored), in one
// transaction. A command touches four trees (objects, dedup, dedup-expiry, meta), five
// with an alarm change. Deferred commit: one bbolt write transaction stays open across
// raft batches and commits when it is Options.CommitInterval (100ms) old or holds 256
// entries, when the file itself is needed (Snapshot, Restore, Hash, Close), and, when
// applies stop, from a flusher goroutine. A commit writes every B-tree page its entries
// dirtied however few entries there are, so gathering entries is the group commit the
// state machine gets: raft's apply batches alone hold a few entries. View reads the open
// transaction, so no reader needs a commit (DESIGN.md has the measurements).
// fsync stays on unless Options.NoSync, because raft truncates its log after a snapshot
// and the state machine is then the only copy; with NoSync, Close still syncs the file and
// its directory, so that a file closed cleanly is whole on disk. The freelist is not written on commit
// (NoFreelistSync), which saves a page write per commit on a write-heavy file; the price
// is a scan of the file at open to rebuild it. The freelist is the hashmap kind, whose
// cost does not grow with fragmentation as the array kind's does. The memory map starts
// large (Options.InitialMmapSize) because growing it waits for every read transaction, a
// snapshot being streamed included.
//
// Concurrency. Apply, ApplyBatch, Snapshot and Restore run on raft's FSM goroutine; the
// FSMSnapshot's Persist runs concurrently with Apply on its own bbolt read transaction.
// View, Hash, AppliedIndex and WaitApplied are safe from any goroutine. Restore and Close
// swap the *bbolt.DB under a RWMutex that View holds shared. A bbolt transaction is not
// safe for concurrent use, so a mutex (txMu) serialises everything that touches the open
// write transaction: a whole ApplyBatch, a commit, and a View that reads it; a View with
// no transaction open reads a bbolt read transaction of its own, concurrently. The values
// written into the open transaction alias the raft entries' Data until it commits: raft
// and its callers must not modify an entry's Data once it is proposed (none does).
package fsm
