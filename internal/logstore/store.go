package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/duro-db/duro/internal/vfs"
)

var (
	// ErrClosed is returned by every method of a Store, and of its
	// GroupStores, once Close has been called, and by Close after the first.
	ErrClosed = errors.New("logstore: closed")

	// ErrFailed is returned by every write after a commit has failed. A failed
	// commit (a write or fsync error) leaves the file's durable state unknown:
	// the kernel may have dropped the dirty pages and cleared the error, so a
	// later "successful" fsync would not cover them. Rather than acknowledge
	// writes on top of that, the store refuses them until it is reopened,
	// which re-reads the last committed state from disk. Reads keep working.
	// The error wraps the original commit error too.
	ErrFailed = errors.New("logstore: an earlier commit failed; reopen the store")

	// ErrUnsupportedFormat is returned by Open for a file written in a format
	// version this build does not know.
	ErrUnsupportedFormat = errors.New("logstore: unsupported file format")
)

// Options configures Open.
type Options struct {
	// NoSync disables fsync (tests/benchmarks only; unsafe). Default false.
	NoSync bool
	// Logger receives the store's few log lines (open, commit failures).
	// May be nil.
	Logger *slog.Logger
	// OnFailure is called, once, when the store fails (ErrFailed): a
	// commit failed, so what is on disk is unknown, or a transaction
	// holding log entries that StoreLogs accepted without waiting
	// (GroupStore.SetAsyncAppends) aborted, so raft was told they were
	// stored and they are not. Either way nothing can make the log whole
	// again while the store stays open: every later write of every group
	// fails, and a node that stayed up would only look alive while it
	// votes and appends for no group. The node must stop, and reopen the
	// store to learn what is on disk. By then the store refuses writes,
	// and pending async entries stay in the groups' in-memory view with
	// DurableIndex below them. It runs on a goroutine of its own, so it
	// may shut raft down and close the store. If nil, the store panics
	// instead.
	OnFailure func(error)
	// FS is the file system the store writes through; nil means vfs.Default. Tests
	// simulate power cuts with one.
	FS vfs.FS
	// SegmentSize is the size of a WAL segment (wal.go); 0 means DefaultSegmentSize. A
	// node sets aside two of them (the active segment and a spare); small disks and
	// tests make it smaller.
	SegmentSize int64
	// BeforeCommit, if set, runs in the writer goroutine before each commit.
	// Tests of other packages use it to hold a node's log writes back (to show
	// what must not happen before a write is durable). Nil in production.
	BeforeCommit func()
}

// DefaultSegmentSize is the size of a WAL segment unless Options.SegmentSize says
// otherwise.
const DefaultSegmentSize = defaultSegmentSize

// File layout. The logs are in the WAL (wal.go), in the directory named by
// the file's path plus walSuffix. The bbolt file holds the format version
// and raft's stable state: every group has one top-level bucket, "g" +
// 8-byte big-endian group ID, holding the sub-bucket stableBucket (raft's
// stable keys -> values). Format 1 kept the logs in the file too, in a
// sub-bucket logBucket (8-byte big-endian index -> encoded raft.Log); Open
// moves them into the WAL (migrateV1).
var (
	metaBucket   = []byte("meta")
	formatKey    = []byte("format")
	logBucket    = []byte("log")
	stableBucket = []byte("stable")
)

const (
	formatVersion       byte = 2
	formatV1            byte = 1
	groupBucketPrefix        = 'g'
	groupBucketNameSize      = 1 + 8
	walSuffix                = ".wal"
)

// lockTimeout bounds the wait for bbolt's flock: a second process opening
// the same file gets an error instead of hanging forever.
const lockTimeout = 2 * time.Second

func groupBucketName(id uint64) [groupBucketNameSize]byte {
	var name [groupBucketNameSize]byte
	name[0] = groupBucketPrefix
	binary.BigEndian.PutUint64(name[1:], id)
	return name
}

// Store is a node-wide Raft log store: one WAL holding the logs of every
// group on the node and one bbolt file holding their stable state, written
// by a single goroutine that commits all queued writes together. It is safe
// for concurrent use.
type Store struct {
	db   *bbolt.DB
	wal  *wal // the writer's, after Open
	path string
	log  *slog.Logger

	// closed is set at the start of Close; reads check it so that they fail
	// with ErrClosed rather than bbolt's error.
	closed atomic.Bool

	groupsMu sync.Mutex
	groups   map[uint64]*GroupStore

	// mu guards the write queue and the writer's lifecycle.
	mu         sync.Mutex
	cond       sync.Cond // signalled when queue grows or closing is set
	queue      []*request
	closing    bool
	failed     error // first commit error; sticky, see ErrFailed
	writerDone chan struct{}

	stats counters

	// onFailure is Options.OnFailure, or a panic; failOnce makes it run
	// once.
	onFailure func(error)
	failOnce  sync.Once
	// halted is set once the store has failed or its writer has exited:
	// no entry becomes durable after that, so WaitDurable gives up.
	halted atomic.Bool

	beforeCommit func() // Options.BeforeCommit

	// testHookCommit, if set, runs in the writer just before each commit
	// with the batch size; a non-nil error is treated as a failed commit.
	// Only tests set it, before the first write.
	testHookCommit func(batchRequests int) error
}

// Open opens the store at path, creating the file, its WAL directory (path +
// ".wal") and their parent directories if needed, replays the WAL, and
// starts the writer goroutine. Only one Store (in any process) may have a
// file open at a time.
func Open(path string, opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	fsys := opts.FS
	if fsys == nil {
		fsys = vfs.Default
	}
	dir := filepath.Dir(path)
	mkdir := vfs.MkdirAllSynced
	if opts.NoSync {
		mkdir = vfs.FS.MkdirAll
	}
	if err := mkdir(fsys, dir, 0o700); err != nil {
		return nil, fmt.Errorf("logstore: create directory: %w", err)
	}
	_, statErr := fsys.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)

	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: lockTimeout,
		NoSync:  opts.NoSync,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			return fsys.OpenExternal(name, flag, perm, !opts.NoSync)
		},
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("logstore: open %s: file is locked by another process: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("logstore: open %s: %w", path, err)
	}
	// A new file's directory entry is durable only once the directory is
	// synced; without this a crash could lose the file and every fsynced
	// commit in it.
	if created && !opts.NoSync {
		if err := fsys.SyncDir(dir); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("logstore: sync directory %s: %w", dir, err)
		}
	}
	walDir := path + walSuffix
	if err := checkFormat(fsys, db, walDir, opts.NoSync, logger); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("logstore: open %s: %w", path, err)
	}
	segSize := opts.SegmentSize
	if segSize <= 0 {
		segSize = segmentSize
	}
	w, indexes, err := openWAL(fsys, walDir, opts.NoSync, segSize, logger)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("logstore: open %s: %w", walDir, err)
	}

	s := &Store{
		db:           db,
		wal:          w,
		path:         path,
		log:          logger,
		groups:       make(map[uint64]*GroupStore),
		writerDone:   make(chan struct{}),
		onFailure:    opts.OnFailure,
		beforeCommit: opts.BeforeCommit,
	}
	if s.onFailure == nil {
		s.onFailure = panicOnFailure
	}
	for id, x := range indexes {
		s.groups[id] = s.newGroup(id, x)
	}
	s.stats.segments.Store(uint64(len(w.segs)))
	s.cond.L = &s.mu
	go s.run()
	logger.Debug("logstore opened", "path", path, "created", created, "no_sync", opts.NoSync,
		"wal_segments", len(w.segs), "groups", len(indexes))
	return s, nil
}

// checkFormat stamps a new file with formatVersion, moves the logs of a
// format 1 file into the WAL, and rejects files stamped with another format.
func checkFormat(fsys vfs.FS, db *bbolt.DB, walDir string, noSync bool, log *slog.Logger) error {
	var version []byte
	err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		if v := b.Get(formatKey); v != nil {
			version = append(version, v...)
			return nil
		}
		version = []byte{formatVersion}
		return b.Put(formatKey, version)
	})
	switch {
	case err != nil:
		return err
	case len(version) == 1 && version[0] == formatVersion:
		return nil
	case len(version) == 1 && version[0] == formatV1:
		return migrateV1(fsys, db, walDir, noSync, log)
	}
	return fmt.Errorf("%w: format %x, this build reads %d", ErrUnsupportedFormat, version, formatVersion)
}

// migrateV1 moves the logs of a format 1 file into a new WAL in walDir, then
// drops them from the file and stamps it format 2 in one transaction. A crash
// before that leaves format 1, and the next Open starts over.
func migrateV1(fsys vfs.FS, db *bbolt.DB, walDir string, noSync bool, log *slog.Logger) error {
	if err := fsys.RemoveAll(walDir); err != nil {
		return fmt.Errorf("migrate format 1: clear %s: %w", walDir, err)
	}
	w, _, err := openWAL(fsys, walDir, noSync, segmentSize, log)
	if err != nil {
		return fmt.Errorf("migrate format 1: %w", err)
	}
	defer w.close()
	var groups [][]byte
	logs := 0
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, top *bbolt.Bucket) error {
			if len(name) != groupBucketNameSize || name[0] != groupBucketPrefix {
				return nil
			}
			b := top.Bucket(logBucket)
			if b == nil {
				return nil
			}
			groups = append(groups, slices.Clone(name))
			id := binary.BigEndian.Uint64(name[1:])
			frame := w.newFrame(nil)
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				index, err := parseIndexKey(k)
				if err != nil {
					return err
				}
				if got, err := recordIndex(v); err != nil || got != index {
					return fmt.Errorf("%w: group %d: log record under index %d", ErrCorrupt, id, index)
				}
				// One op per record keeps each op's count known up
				// front; a frame per megabyte keeps frames small.
				frame = appendStoreOp(frame, id, 1)
				frame, _ = appendRecord(frame, v)
				logs++
				if len(frame) >= 1<<20 {
					if _, _, err := w.write(frame); err != nil {
						return err
					}
					frame = w.newFrame(frame)
				}
			}
			if !frameEmpty(frame) {
				if _, _, err := w.write(frame); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("migrate format 1: %w", err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range groups {
			if err := tx.Bucket(name).DeleteBucket(logBucket); err != nil {
				return err
			}
		}
		return tx.Bucket(metaBucket).Put(formatKey, []byte{formatVersion})
	})
	if err != nil {
		return fmt.Errorf("migrate format 1: %w", err)
	}
	log.Info("logstore: moved the raft logs into the WAL (format 1 to 2)", "groups", len(groups), "logs", logs, "wal", walDir)
	return nil
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// Close commits every write already queued, async appends included, stops
// the writer, and closes the file, waiting for reads in progress. Writes
// that arrive during or after Close fail with ErrClosed, as does every later
// call to Close.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closing = true
	s.closed.Store(true)
	s.cond.Broadcast()
	s.mu.Unlock()

	<-s.writerDone
	s.halt()
	s.wal.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("logstore: close %s: %w", s.path, err)
	}
	return nil
}

// Group returns the store of Raft group id, the same *GroupStore on every
// call.
func (s *Store) Group(id uint64) (*GroupStore, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	if g := s.groups[id]; g != nil {
		return g, nil
	}
	g := s.newGroup(id, new(logIndex))
	s.groups[id] = g
	return g, nil
}

func (s *Store) newGroup(id uint64, x *logIndex) *GroupStore {
	g := &GroupStore{s: s, id: id, name: groupBucketName(id), idx: x}
	g.diskFirst, g.diskLast = x.bounds()
	g.publishLocked() // g is not shared yet: no lock needed
	return g
}

// lookupGroup returns the store of group id if it exists.
func (s *Store) lookupGroup(id uint64) *GroupStore {
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	return s.groups[id]
}

// view runs fn in a read transaction, which proceeds concurrently with the
// writer and other readers.
func (s *Store) view(fn func(*bbolt.Tx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}
