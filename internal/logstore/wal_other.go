//go:build !linux

package logstore

import (
	"errors"
	"os"
)

// Outside Linux (macOS, for development) the WAL takes the paths Linux takes on file
// systems that refuse O_DIRECT and fallocate: writes through the page cache, each made
// durable by a sync. Performance figures in the README are Linux's.

// openDirect refuses: segments are written through the page cache.
var openDirect = func(path string) (*os.File, error) {
	return nil, errors.New("direct writes are only used on Linux")
}

// preallocate does nothing: the file grows as it is written.
func preallocate(f *os.File, size int64) {}

// fdatasync is a full sync. On macOS os.File.Sync calls F_FULLFSYNC, which also
// flushes the drive's cache, as an acknowledged write needs; plain fsync there does not.
func fdatasync(f *os.File) error { return f.Sync() }
