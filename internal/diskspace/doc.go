// Package diskspace watches the free space of the file system a node's data dir is on,
// against a reserve, so that a node turns writes away before its disk fills instead of
// failing (or dying) when it does.
//
// Invariants:
//   - Low reports whether the free space, as last measured, is below the reserve. It
//     turns true as soon as a measurement is below the reserve, and false again only once
//     one is at least the reserve plus a margin (a tenth of the reserve, at most 64 MiB),
//     so that a node on the edge does not flap between refusing and accepting writes.
//   - Free space is what an unprivileged writer can use (statfs's f_bavail): blocks that
//     the WAL has preallocated count as used already, so they are never counted twice.
//   - Measurements come from one goroutine, every interval (ten times as often once free
//     space is within four reserves) and whenever Check is called; Low and Free are safe
//     from any goroutine and cost an atomic load.
//   - ErrNoSpace is what a write refused for want of space returns: retryable, once space
//     has been freed, and nothing of the refused write has been applied.
package diskspace
