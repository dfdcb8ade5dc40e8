package logstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// The WAL's three calls into the kernel that package os does not offer. Other systems
// have wal_other.go: no direct writes, no preallocation, fsync for fdatasync.

// openDirect opens path for direct, synchronous writes. File systems without
// O_DIRECT refuse it at open; tests replace it to take that path.
var openDirect = func(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT|unix.O_DSYNC, 0)
}

// preallocate reserves size bytes for f where the file system can; where it
// cannot, the file grows as it is written, which costs fdatasync a metadata
// update per commit but is otherwise the same.
func preallocate(f *os.File, size int64) {
	for {
		err := unix.Fallocate(int(f.Fd()), 0, 0, size)
		if err != unix.EINTR {
			return
		}
	}
}

func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}
