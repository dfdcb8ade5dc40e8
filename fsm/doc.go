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
//     batch's data. A replay after a crash skips every entry at or below it, so no entry
//     is applied twice and none committed to disk is lost.
//   - Deduplication. A command whose (Client, Seq) is in the dedup table is not applied
//     again; it returns the first result.
//   - Shape. An object has a version record from its first command on; a bucket of keys
//     only while it has keys; an alarm record and an alarm index entry together or not at
//     all.
//
// Storage choices. One bbolt transaction per raft batch, so one pair of fsyncs (data pages,
// then meta page) is shared by the whole batch: raft's apply batches are the only group
// commit the state machine gets. fsync stays on unless Options.NoSync, because raft
// truncates its log after a snapshot and the state machine is then the only copy. The
// freelist is not written on commit (NoFreelistSync), which saves a page write per
// commit on a write-heavy file; the price is a scan of the file at open to rebuild it.
// The freelist is the hashmap kind, whose cost does not grow with fragmentation as the
// array kind's does. The memory map starts large (Options.InitialMmapSize) because
// growing it waits for every read transaction, a snapshot being streamed included.
//
// Concurrency. Apply, ApplyBatch, Snapshot and Restore run on raft's FSM goroutine; the
// FSMSnapshot's Persist runs concurrently with Apply on its own bbolt read transaction.
// View, Hash, AppliedIndex and WaitApplied are safe from any goroutine. Restore and Close
// swap the *bbolt.DB under a RWMutex that View holds shared.
package fsm
