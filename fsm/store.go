package fsm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/duro-db/duro/internal/vfs"
)

// ErrClosed is returned by the methods of a closed Store.
var ErrClosed = errors.New("fsm: store closed")

// Defaults for Options.
const (
	DefaultDedupTTL        = time.Hour
	DefaultDedupPerClient  = 4096
	DefaultInitialMmapSize = 1 << 30
	DefaultCommitInterval  = 100 * time.Millisecond
	openTimeout            = 10 * time.Second
	// defaultCommitEntries: the open write transaction also commits once it holds this
	// many entries, whatever its age, so that one commit never has too much to write.
	defaultCommitEntries = 256
)

// Options configure a Store. DedupTTL and DedupPerClient decide which dedup entries are
// dropped, which changes what a later retry does: they are part of the state machine and
// must be identical on every replica of a group.
type Options struct {
	// NoSync turns fsync off. A crash can then lose or corrupt state: tests only.
	NoSync bool
	// DedupTTL: dedup entries older than this, by log time, expire. Default 1h.
	DedupTTL time.Duration
	// DedupPerClient: beyond this many entries, a client's lowest sequence numbers are
	// dropped. Default 4096.
	DedupPerClient int
	// InitialMmapSize is the size of bbolt's first memory map. A write that must grow the
	// map waits for every open read transaction, including a snapshot being persisted,
	// so the map is made large up front (address space only; default 1 GiB).
	InitialMmapSize int
	// CommitInterval is how long applied entries may stay in the open bbolt write
	// transaction before it commits (see doc.go, "Deferred commit"). They are visible to
	// View at once either way; the interval only bounds what a crash loses from the file,
	// all of which raft replays. Default 100ms; negative commits every batch.
	CommitInterval time.Duration
	// Logger receives the store's few events (open, restore). Default slog.Default().
	Logger *slog.Logger
	// FS is the file system the store's files are written through; nil means
	// vfs.Default. Tests simulate power cuts with one.
	FS vfs.FS
}

func (o *Options) withDefaults() {
	if o.DedupTTL <= 0 {
		o.DedupTTL = DefaultDedupTTL
	}
	if o.DedupPerClient <= 0 {
		o.DedupPerClient = DefaultDedupPerClient
	}
	if o.InitialMmapSize <= 0 {
		o.InitialMmapSize = DefaultInitialMmapSize
	}
	if o.CommitInterval == 0 {
		o.CommitInterval = DefaultCommitInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
}

// Store is the state machine of one Raft group replica, persisted in one bbolt file.
//
// Apply, ApplyBatch, Snapshot and Restore must be called from one goroutine (raft's FSM
// goroutine). View, Hash, AppliedIndex and WaitApplied may be called from any goroutine at
// any time, also during Restore.
type Store struct {
	path string
	opts Options
	log  *slog.Logger

	// dbMu guards db: held shared by every user of db, exclusively by Restore and Close
	// while they swap or close it.
	dbMu sync.RWMutex
	db   *bolt.DB

	// txMu guards wtx, wtxStart, wtxEntries, wview, broken, commitEntries and ap: held by
	// ApplyBatch for a whole batch, by View while fn reads the open transaction, and by
	// every commit. Taken after dbMu (shared or exclusive), never before it.
	txMu sync.Mutex
	// wtx is the open write transaction: entries applied (and visible to View) but not
	// yet committed to the file, with their applied index. nil when everything applied is
	// committed.
	wtx        *bolt.Tx
	wtxStart   time.Time // when wtx began
	wtxEntries int       // entries applied in wtx
	// wview is the Tx Views read wtx through, built by the first View after wtx began:
	// every call's View (dedup lookup, reads) would otherwise look up the five top-level
	// buckets again while holding txMu. Those buckets live as long as wtx does.
	wview *Tx
	// broken is set when a commit or an apply failed: the open transaction was rolled
	// back with entries that had been acknowledged, so nothing may be read or applied
	// any more.
	broken error
	// commitEntries: see defaultCommitEntries (a field so that tests can lower it).
	commitEntries int

	applied atomic.Uint64
	closed  atomic.Bool

	// waitMu guards waitCh, which is closed (and cleared) whenever applied changes; it is
	// made only when someone waits, so an apply with no waiters allocates nothing.
	waitMu  sync.Mutex
	waitCh  chan struct{}
	closeCh chan struct{}

	// kick wakes the flusher when a write transaction begins; flushDone is closed when
	// the flusher has returned.
	kick      chan struct{}
	flushDone chan struct{}

	// ap is the apply scratch state, reused by every batch (under txMu).
	ap applier
}

var (
	_ raft.FSM         = (*Store)(nil)
	_ raft.BatchingFSM = (*Store)(nil)
)

// Open opens or creates the store at path. A file that exists must be a duro fsm file.
func Open(path string, opts Options) (*Store, error) {
	opts.withDefaults()
	removeRestoreLeftovers(opts.FS, path, opts.Logger)
	db, err := openDB(path, &opts)
	if err != nil {
		return nil, err
	}
	s := &Store{
		path:          path,
		opts:          opts,
		log:           opts.Logger,
		db:            db,
		commitEntries: defaultCommitEntries,
		closeCh:       make(chan struct{}),
		kick:          make(chan struct{}, 1),
		flushDone:     make(chan struct{}),
	}
	s.ap.store = s
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	go s.flusher()
	s.log.Debug("fsm opened", "path", path, "applied", s.applied.Load())
	return s, nil
}

// openDB opens path with the store's bbolt settings (see doc.go for why these) and
// creates or checks the layout.
func openDB(path string, opts *Options) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         openTimeout,
		NoSync:          opts.NoSync,
		NoGrowSync:      opts.NoSync,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: opts.InitialMmapSize,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			return opts.FS.OpenExternal(name, flag, perm, !opts.NoSync)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("fsm: open %s: %w", path, err)
	}
	if err := db.Update(initFile); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("fsm: open %s: %w", path, err)
	}
	return db, nil
}

// load reads the applied index and log clock of the current db into memory.
func (s *Store) load() error {
	return s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		applied, err := readApplied(meta)
		if err != nil {
			return err
		}
		clock, err := readClock(meta)
		if err != nil {
			return err
		}
		s.ap.clock = clock
		s.setApplied(applied)
		return nil
	})
}

// removeRestoreLeftovers deletes temporary files of a Restore that a crash interrupted.
func removeRestoreLeftovers(fsys vfs.FS, path string, log *slog.Logger) {
	dir, prefix := filepath.Dir(path), filepath.Base(path)+restoreTempSuffix
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return // Open reports the real problem
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		f := filepath.Join(dir, e.Name())
		if err := fsys.Remove(f); err != nil {
			log.Warn("fsm: cannot remove restore leftover", "file", f, "err", err)
		}
	}
}

// Close commits the open write transaction and closes the store. Raft must be shut down
// first: an Apply after Close panics. Close waits for open View calls and snapshots (until
// their Release). Waiters in WaitApplied return ErrClosed. Closing twice is a no-op.
//
// A failed commit is returned, not panicked: the entries it held are in raft's log, which
// replays them when the store is opened again.
//
// Without fsync (Options.NoSync) Close still syncs the file and its directory before it
// returns: whoever
// opened the store that way must know when its content is durable (raftgroup trusts a
// state file that was closed cleanly, and would trust a torn one after a machine crash
// that came before the kernel wrote it back).
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.closeCh)
	<-s.flushDone
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db == nil {
		return nil
	}
	s.txMu.Lock()
	err := s.commitLocked()
	s.txMu.Unlock()
	err = errors.Join(err, s.db.Close())
	s.db = nil
	if err == nil && s.opts.NoSync {
		// The file's content, and its name, which a new file's first commit did not
		// make durable either.
		err = vfs.SyncFile(s.opts.FS, s.path)
		if err == nil {
			err = s.opts.FS.SyncDir(filepath.Dir(s.path))
		}
		if err != nil {
			err = fmt.Errorf("fsm: close %s: sync: %w", s.path, err)
		}
	}
	return err
}

// AppliedIndex returns the index of the last entry applied: every entry up to it is
// visible to View. It is loaded at Open from the file. While a write transaction is open
// it is ahead of the file's applied index (by at most Options.CommitInterval of entries);
// a crash loses that much of the file, which raft replays from its log.
func (s *Store) AppliedIndex() uint64 { return s.applied.Load() }

func (s *Store) setApplied(index uint64) {
	s.applied.Store(index)
	s.waitMu.Lock()
	if s.waitCh != nil {
		close(s.waitCh)
		s.waitCh = nil
	}
	s.waitMu.Unlock()
}

// WaitApplied returns nil once AppliedIndex() >= index, that is once the entry at index
// (and every earlier one) is visible to View; or ctx's error; or ErrClosed.
//
// Raft does not pass barrier and no-op entries to a BatchingFSM, so index must be that
// of an entry the store sees (a command or a configuration change), or a later one must
// follow; see Command for the no-op command that serves as a visible barrier.
func (s *Store) WaitApplied(ctx context.Context, index uint64) error {
	for {
		if s.applied.Load() >= index {
			return nil
		}
		if s.closed.Load() {
			return ErrClosed
		}
		s.waitMu.Lock()
		if s.waitCh == nil {
			s.waitCh = make(chan struct{})
		}
		ch := s.waitCh
		s.waitMu.Unlock()
		// Recheck: an apply that stored its index before we took the channel has already
		// closed the previous one.
		if s.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closeCh:
			return ErrClosed
		}
	}
}

// View runs fn read-only on the applied state: every entry up to AppliedIndex() (as read
// before View was called) and nothing partial. fn sees one consistent state; it must not
// call other Store methods (they may wait for fn: a deadlock). Slices handed out by the Tx
// are valid only until fn returns.
//
// When entries are waiting in the open write transaction, fn reads that transaction while
// holding the store's transaction lock: applies, commits and other such Views wait until
// fn returns, so fn should be short. Otherwise fn runs on a bbolt read transaction of its
// own, concurrently with everything. (Measured in DESIGN.md: reading the open transaction
// costs less than committing it for every reader.)
func (s *Store) View(fn func(tx *Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	s.txMu.Lock()
	if s.broken != nil {
		s.txMu.Unlock()
		return s.brokenErr()
	}
	if s.wtx != nil {
		defer s.txMu.Unlock()
		if s.wview == nil {
			tx, err := newTx(s.wtx)
			if err != nil {
				return err
			}
			s.wview = tx
		}
		return fn(s.wview)
	}
	btx, err := s.db.Begin(false)
	s.txMu.Unlock()
	if err != nil {
		return fmt.Errorf("fsm: view: %w", err)
	}
	defer func() { _ = btx.Rollback() }()
	tx, err := newTx(btx)
	if err != nil {
		return err
	}
	return fn(tx)
}

// beginLocked makes sure a write transaction is open, and returns it. It panics if one
// cannot be begun: see ApplyBatch. txMu must be held.
func (s *Store) beginLocked() *bolt.Tx {
	if s.wtx != nil {
		return s.wtx
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		panic(fmt.Sprintf("fsm: cannot persist applied entries: begin: %v", err))
	}
	s.wtx, s.wtxStart, s.wtxEntries, s.wview = tx, time.Now(), 0, nil
	select {
	case s.kick <- struct{}{}:
	default: // the flusher has a wake-up pending already
	}
	return tx
}

// commitDue reports whether the open write transaction should commit now rather than
// wait for more entries. txMu must be held.
func (s *Store) commitDue() bool {
	return s.opts.CommitInterval < 0 || s.wtxEntries >= s.commitEntries ||
		time.Since(s.wtxStart) >= s.opts.CommitInterval
}

// commitLocked commits the open write transaction, if any. If the commit fails, the
// transaction is gone with entries that were acknowledged and are visible to View: the
// store is marked broken (View errs, ApplyBatch panics) and the error returned. txMu must
// be held.
func (s *Store) commitLocked() error {
	tx := s.wtx
	if tx == nil {
		return s.brokenErr()
	}
	s.wtx, s.wtxEntries, s.wview = nil, 0, nil
	err := tx.Commit() // a failed Commit rolls back
	s.ap.release()
	if err != nil {
		s.broken = fmt.Errorf("commit: %w", err)
		return s.brokenErr()
	}
	return nil
}

// abortLocked rolls back the open write transaction after a failed apply, marks the store
// broken and panics: see ApplyBatch. txMu must be held.
func (s *Store) abortLocked(err error) {
	if s.wtx != nil {
		_ = s.wtx.Rollback()
		s.wtx, s.wtxEntries, s.wview = nil, 0, nil
	}
	s.ap.release()
	s.broken = err
	panic(fmt.Sprintf("fsm: cannot persist applied entries: %v", err))
}

// brokenErr is the error of every use of a broken store, nil if it is not broken. txMu
// must be held.
func (s *Store) brokenErr() error {
	if s.broken == nil {
		return nil
	}
	return fmt.Errorf("fsm: store unusable: applied entries were lost: %w", s.broken)
}

// commitOpen commits the open write transaction, panicking if that fails. For raft's FSM
// goroutine (Snapshot, Restore) and the flusher: a failed commit must stop the node as a
// failed apply does.
func (s *Store) commitOpen() {
	if err := s.commitLocked(); err != nil {
		panic(fmt.Sprintf("fsm: cannot persist applied entries: %v", err))
	}
}

// flush commits the open write transaction, panicking if that fails (see commitOpen).
func (s *Store) flush() error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	s.txMu.Lock()
	defer s.txMu.Unlock()
	s.commitOpen()
	return nil
}

// readCommitted commits the open write transaction and begins a read transaction on the
// file: one that sees every applied entry. A failed commit panics if mustCommit (see
// commitOpen), else it is returned. dbMu must be held (shared).
func (s *Store) readCommitted(mustCommit bool) (*bolt.Tx, error) {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	if mustCommit {
		s.commitOpen()
	} else if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return s.db.Begin(false)
}

// flusher commits a write transaction that has been open for Options.CommitInterval, so
// that the file catches up when applies stop. It sleeps while no transaction is open.
func (s *Store) flusher() {
	defer close(s.flushDone)
	if s.opts.CommitInterval < 0 {
		return // every batch commits: nothing is ever left open
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-s.closeCh:
			return
		case <-s.kick:
		}
		for wait := s.opts.CommitInterval; wait > 0; {
			t.Reset(wait)
			select {
			case <-s.closeCh:
				t.Stop()
				return
			case <-t.C:
			}
			wait = s.flushOld()
		}
	}
}

// flushOld commits the open write transaction if it is at least Options.CommitInterval
// old. Otherwise it returns how long until it will be; 0 if none is open.
func (s *Store) flushOld() time.Duration {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return 0
	}
	s.txMu.Lock()
	defer s.txMu.Unlock()
	if s.wtx == nil || s.broken != nil {
		return 0
	}
	if age := time.Since(s.wtxStart); age < s.opts.CommitInterval {
		return s.opts.CommitInterval - age
	}
	s.commitOpen()
	return 0
}
