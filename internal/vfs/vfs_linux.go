package vfs

import (
	"os"

	"golang.org/x/sys/unix"
)

// The three calls into the kernel that package os does not offer. Other systems have
// vfs_other.go: no direct writes, no preallocation, a full sync for fdatasync.

func openDirect(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_WRONLY|unix.O_DIRECT|unix.O_DSYNC, 0)
}

func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

func allocate(f *os.File, size int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), 0, 0, size)
		if err != unix.EINTR {
			return err
		}
	}
}
