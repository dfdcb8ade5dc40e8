// Package crashfs is a vfs.FS for tests that simulates a power cut, in the spirit of
// pebble's strict in-memory file system and Jepsen's LazyFS.
//
// It passes every operation through to the real files under a root directory, so the
// code under test sees an ordinary file system, and keeps beside them what a disk would
// hold if power failed at that instant:
//   - each file's durable content: as of its last Sync or Datasync, or, for a file
//     opened with OpenDirect, of each write as it returns; the writes since then are
//     pending;
//   - the durable names: files created, renamed and removed and directories made are
//     pending until SyncDir of the directory holding them.
//
// Cut (or CutAtOp, which cuts during the n-th mutating operation) writes the image a
// restarted machine would find into another directory, and from then on every operation
// fails with ErrPowerCut. The real files are never synced: what is durable is what the FS
// keeps, and tests run at the speed of the page cache. In the image:
//   - every pending write of a file lands or not sector by sector (512 bytes), each
//     sector chosen apart, so a write may land torn, in any order with the others, and a
//     sector written twice may hold either version or its durable one; a pending size
//     change (truncate, preallocation) lands or not;
//   - the pending namespace operations of each directory land as a prefix, in order:
//     journalling file systems commit metadata in order, and no later operation lands
//     without the earlier ones of its directory; a file or directory whose parent did not
//     land is gone with it;
//   - a file written behind the FS's back (OpenExternal, bbolt) that does not sync
//     itself is its content at its last Sync through the FS plus any subset of the
//     sectors that differ from it now; one that does (bbolt with fsync) is its content
//     now, since its writer's fsyncs order its commits.
//
// Choices are drawn from the random source given to the FS, so that a failing seed can
// be run again; goroutines of the code under test can still interleave differently from
// run to run.
package crashfs
