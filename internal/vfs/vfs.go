package vfs

import (
	"io"
	"os"
	"path/filepath"
)

// FS is a file system. Paths are the operating system's; every method may be called from
// any goroutine.
type FS interface {
	// OpenFile opens a file as os.OpenFile does.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// OpenDirect opens an existing file for direct, synchronous writes (see the
	// package doc). File systems without O_DIRECT refuse it.
	OpenDirect(name string) (File, error)
	// OpenExternal opens a file for a library that writes it behind the FS's back
	// (bbolt's Options.OpenFile); selfSynced says whether it fsyncs its own commits.
	OpenExternal(name string, flag int, perm os.FileMode, selfSynced bool) (*os.File, error)
	Remove(name string) error
	RemoveAll(name string) error
	Rename(oldname, newname string) error
	MkdirAll(name string, perm os.FileMode) error
	ReadDir(name string) ([]os.DirEntry, error)
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the entries of directory name durable: files created, renamed
	// into or removed from it, and directories made in it.
	SyncDir(name string) error
}

// File is an open file of an FS.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Sync is fsync: the file's data and metadata are durable when it returns.
	Sync() error
	// Datasync is fdatasync: the file's data, and the metadata needed to read it
	// (its size), are durable when it returns.
	Datasync() error
	// Allocate reserves the first size bytes of the file where the file system can
	// (fallocate); where it cannot, it does nothing and the file grows as written.
	Allocate(size int64) error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Name() string
	Close() error
}

// Default is the operating system's file system.
var Default FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) OpenDirect(name string) (File, error) {
	f, err := openDirect(name)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) OpenExternal(name string, flag int, perm os.FileMode, _ bool) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}

func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) RemoveAll(name string) error                  { return os.RemoveAll(name) }
func (osFS) Rename(oldname, newname string) error         { return os.Rename(oldname, newname) }
func (osFS) MkdirAll(name string, perm os.FileMode) error { return os.MkdirAll(name, perm) }
func (osFS) ReadDir(name string) ([]os.DirEntry, error)   { return os.ReadDir(name) }
func (osFS) Stat(name string) (os.FileInfo, error)        { return os.Stat(name) }

func (osFS) SyncDir(name string) error {
	d, err := os.Open(name)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

type osFile struct{ *os.File }

func (f osFile) Datasync() error           { return datasync(f.File) }
func (f osFile) Allocate(size int64) error { return allocate(f.File, size) }

// MkdirAllSynced makes directory name and any parents it lacks, and makes each one made
// durable in its parent: a directory whose entry a power cut takes back takes every
// file in it along, however well those were synced.
func MkdirAllSynced(fs FS, name string, perm os.FileMode) error {
	name = filepath.Clean(name)
	// The topmost missing ancestor: its parent exists, and every directory from it
	// down to name is new.
	top := ""
	for p := name; ; p = filepath.Dir(p) {
		if _, err := fs.Stat(p); err == nil {
			break
		}
		top = p
		if filepath.Dir(p) == p {
			break
		}
	}
	if top == "" {
		return nil
	}
	if err := fs.MkdirAll(name, perm); err != nil {
		return err
	}
	for p := name; ; p = filepath.Dir(p) {
		if err := fs.SyncDir(filepath.Dir(p)); err != nil {
			return err
		}
		if p == top {
			return nil
		}
	}
}

// SyncFile makes the content of the file at name durable: fsync through a descriptor of
// its own, which covers every write made to the file through any other (bbolt's, for
// one), since the kernel syncs the file, not the descriptor.
func SyncFile(fs FS, name string) error {
	f, err := fs.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteFileSynced writes data to name, replacing what was there, and makes it and its
// directory entry durable.
func WriteFileSynced(fs FS, name string, data []byte, perm os.FileMode) error {
	f, err := fs.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return fs.SyncDir(filepath.Dir(name))
}

// ReadFile reads the whole file at name.
func ReadFile(fs FS, name string) ([]byte, error) {
	f, err := fs.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, st.Size())
	n, err := f.ReadAt(b, 0)
	if err == io.EOF {
		err = nil
	}
	return b[:n], err
}

// NewWriter returns an io.Writer that writes f from offset 0 on, each write after the
// last: how a stream (a snapshot) is copied into a File.
func NewWriter(f File) io.Writer { return &writer{f: f} }

type writer struct {
	f   File
	off int64
}

func (w *writer) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	return n, err
}
