//go:build !linux

package vfs

import (
	"errors"
	"os"
)

// Outside Linux (macOS, for development) files take the paths Linux takes on file systems
// that refuse O_DIRECT and fallocate: writes through the page cache, each made durable by
// a sync. Performance figures are Linux's.

func openDirect(string) (*os.File, error) {
	return nil, errors.New("direct writes are only used on Linux")
}

// datasync is a full sync. On macOS os.File.Sync calls F_FULLFSYNC, which also flushes the
// drive's cache, as an acknowledged write needs; plain fsync there does not.
func datasync(f *os.File) error { return f.Sync() }

// allocate does nothing: the file grows as it is written.
func allocate(*os.File, int64) error { return nil }
