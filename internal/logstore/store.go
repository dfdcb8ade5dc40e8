package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
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
	// OnAsyncFailure is called, once, when a commit fails (or its
	// transaction aborts) while holding log entries that StoreLogs
	// accepted without waiting (GroupStore.SetAsyncAppends). Raft was
	// told those entries were stored and they are not, and nothing can
	// make that true again: the node must stop, and reopen the store to
	// learn what is on disk. The store is failed by then (ErrFailed), the
	// entries stay in the groups' in-memory view and DurableIndex stays
	// below them. It runs on a goroutine of its own, so it may shut raft
	// down and close the store. If nil, the store panics instead.
	OnAsyncFailure func(error)
	// BeforeCommit, if set, runs in the writer goroutine before each commit.
	// Tests of other packages use it to hold a node's log writes back (to show
	// what must not happen before a write is durable). Nil in production.
	BeforeCommit func()
}

// File layout. Every group has one top-level bucket, "g" + 8-byte big-endian
// group ID, holding two sub-buckets: logBucket (8-byte big-endian index ->
// encoded raft.Log) and stableBucket (raft's stable keys -> values). One
// top-level bucket per group keeps groups independent: a group's logs are one
// contiguous key range, and dropping a group is one DeleteBucket.
var (
	metaBucket   = []byte("meta")
	formatKey    = []byte("format")
	logBucket    = []byte("log")
	stableBucket = []byte("stable")
)

const (
	formatVersion       byte = 1
	groupBucketPrefix        = 'g'
	groupBucketNameSize      = 1 + 8
)

// bbolt tuning; see the package documentation for the reasoning.
const (
	// initialMmapSize reserves address space, not memory or disk. bbolt
	// remaps when the file outgrows the mapping, and a remap waits for every
	// open read transaction (raft's replication reads logs constantly) while
	// holding up the writer, so it should be rare.
	initialMmapSize = 1 << 30
	// lockTimeout bounds the wait for bbolt's flock: a second process opening
	// the same file gets an error instead of hanging forever.
	lockTimeout = 2 * time.Second
)

func groupBucketName(id uint64) [groupBucketNameSize]byte {
	var name [groupBucketNameSize]byte
	name[0] = groupBucketPrefix
	binary.BigEndian.PutUint64(name[1:], id)
	return name
}

// Store is a node-wide Raft log store: one bbolt file holding the logs and
// stable state of every group on the node, written by a single goroutine that
// commits all queued writes together. It is safe for concurrent use.
type Store struct {
	db   *bbolt.DB
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

	// onAsyncFailure is Options.OnAsyncFailure, or a panic; asyncFailOnce
	// makes it run once.
	onAsyncFailure func(error)
	asyncFailOnce  sync.Once
	// halted is set once the store has failed or its writer has exited:
	// no entry becomes durable after that, so WaitDurable gives up.
	halted atomic.Bool

	beforeCommit func() // Options.BeforeCommit

	// testHookCommit, if set, runs in the writer just before each commit
	// with the batch size; a non-nil error is treated as a failed commit.
	// Only tests set it, before the first write.
	testHookCommit func(batchRequests int) error
}

// Open opens the store at path, creating the file and its parent directories
// if needed, and starts its writer goroutine. Only one Store (in any process)
// may have a file open at a time.
func Open(path string, opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("logstore: create directory: %w", err)
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)

	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:         lockTimeout,
		NoFreelistSync:  true,
		FreelistType:    bbolt.FreelistMapType,
		InitialMmapSize: initialMmapSize,
		NoSync:          opts.NoSync,
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
		if err := syncDir(dir); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("logstore: sync directory %s: %w", dir, err)
		}
	}
	if err := db.Update(checkFormat); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("logstore: open %s: %w", path, err)
	}

	s := &Store{
		db:             db,
		path:           path,
		log:            logger,
		groups:         make(map[uint64]*GroupStore),
		writerDone:     make(chan struct{}),
		onAsyncFailure: opts.OnAsyncFailure,
		beforeCommit:   opts.BeforeCommit,
	}
	if s.onAsyncFailure == nil {
		s.onAsyncFailure = panicOnAsyncFailure
	}
	s.cond.L = &s.mu
	go s.run()
	logger.Debug("logstore opened", "path", path, "created", created, "no_sync", opts.NoSync)
	return s, nil
}

// checkFormat stamps a new file with formatVersion and rejects files stamped
// with another.
func checkFormat(tx *bbolt.Tx) error {
	b, err := tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return err
	}
	v := b.Get(formatKey)
	if v == nil {
		return b.Put(formatKey, []byte{formatVersion})
	}
	if len(v) != 1 || v[0] != formatVersion {
		return fmt.Errorf("%w: format %x, this build reads %d", ErrUnsupportedFormat, v, formatVersion)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
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
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("logstore: close %s: %w", s.path, err)
	}
	return nil
}

// Group returns the store of Raft group id, the same *GroupStore on every
// call. Its buckets are created by its first write; its first and last index
// are read from the file here, once.
func (s *Store) Group(id uint64) (*GroupStore, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	if g := s.groups[id]; g != nil {
		return g, nil
	}
	g := &GroupStore{s: s, id: id, name: groupBucketName(id)}
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		g.diskFirst, g.diskLast, err = logBounds(g.logBucket(tx))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("logstore: group %d: %w", id, err)
	}
	g.publishLocked() // g is not shared yet: no lock needed
	s.groups[id] = g
	return g, nil
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

// logBounds returns the first and last index in a log bucket, 0 and 0 if it
// is empty or nil.
func logBounds(b *bbolt.Bucket) (first, last uint64, err error) {
	if b == nil {
		return 0, 0, nil
	}
	c := b.Cursor()
	k, _ := c.First()
	if k == nil {
		return 0, 0, nil
	}
	if first, err = parseIndexKey(k); err != nil {
		return 0, 0, err
	}
	k, _ = c.Last()
	if last, err = parseIndexKey(k); err != nil {
		return 0, 0, err
	}
	return first, last, nil
}
