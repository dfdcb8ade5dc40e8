// Package vfs is the file system the storage engines write through: the raft log store
// (internal/logstore), the state machine files (fsm) and a group's marker files
// (raftgroup). Production uses Default, the operating system; tests use crashfs, which
// keeps what was synced and, at a simulated power cut, drops or tears what was not.
//
// The interface is what those engines need and no more, in the spirit of pebble's vfs:
// files with positioned reads and writes, fsync and fdatasync, preallocation, and the
// directory operations whose durability a crash can take back (create, rename, remove,
// mkdir), made durable by SyncDir.
//
// Invariants every FS keeps, and that callers may rely on:
//   - A File's Sync or Datasync returns only once every write made through any File of
//     the same file before it is durable, and the file's size with it. It does not make
//     the file's name durable: that takes SyncDir of its directory.
//   - A File from OpenDirect is written synchronously (O_DIRECT|O_DSYNC): each WriteAt
//     is durable when it returns, with the blocks it covers; writes must be whole,
//     aligned blocks. An FS that cannot do that returns an error, and callers fall back
//     to OpenFile and Datasync.
//   - OpenExternal hands out an *os.File for a library that writes it through its own
//     descriptor and memory map (bbolt). The FS does not see those writes; selfSynced
//     says whether the library fsyncs its own commits. Where it does not, only a Sync
//     through a File of this FS makes the file's content durable.
package vfs
