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
)

// ErrClosed is returned by the methods of a closed Store.
var ErrClosed = errors.New("fsm: store closed")

// Defaults for Options.
const (
	DefaultDedupTTL        = time.Hour
	DefaultDedupPerClient  = 4096
	DefaultInitialMmapSize = 1 << 30
	openTimeout            = 10 * time.Second
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
	// Logger receives the store's few events (open, restore). Default slog.Default().
	Logger *slog.Logger
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
	if o.Logger == nil {
		o.Logger = slog.Default()
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

	applied atomic.Uint64
	closed  atomic.Bool

	// waitMu guards waitCh, which is closed (and cleared) whenever applied changes; it is
	// made only when someone waits, so an apply with no waiters allocates nothing.
	waitMu  sync.Mutex
	waitCh  chan struct{}
	closeCh chan struct{}

	// ap is the apply scratch state, reused by every batch on the FSM goroutine.
	ap applier
}

var (
	_ raft.FSM         = (*Store)(nil)
	_ raft.BatchingFSM = (*Store)(nil)
)

// Open opens or creates the store at path. A file that exists must be a duro fsm file.
func Open(path string, opts Options) (*Store, error) {
	opts.withDefaults()
	removeRestoreLeftovers(path, opts.Logger)
	db, err := openDB(path, &opts)
	if err != nil {
		return nil, err
	}
	s := &Store{
		path:    path,
		opts:    opts,
		log:     opts.Logger,
		db:      db,
		closeCh: make(chan struct{}),
	}
	s.ap.store = s
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
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
func removeRestoreLeftovers(path string, log *slog.Logger) {
	dir, prefix := filepath.Dir(path), filepath.Base(path)+restoreTempSuffix
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // Open reports the real problem
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		f := filepath.Join(dir, e.Name())
		if err := os.Remove(f); err != nil {
			log.Warn("fsm: cannot remove restore leftover", "file", f, "err", err)
		}
	}
}

// Close closes the store. Raft must be shut down first: an Apply after Close panics. Close
// waits for open View calls and snapshots (until their Release). Waiters in WaitApplied
// return ErrClosed. Closing twice is a no-op.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.closeCh)
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// AppliedIndex returns the index of the last entry applied and persisted. It is loaded at
// Open and never counts an entry whose transaction has not committed.
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
// (and every earlier one) is committed to disk and visible to View; or ctx's error; or
// ErrClosed.
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

// View runs fn with a read-only transaction on the committed state. fn sees one consistent
// snapshot; it must not call other Store methods (a concurrent Restore would deadlock it).
// Slices handed out by the Tx are valid only until fn returns.
func (s *Store) View(fn func(tx *Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.db.View(func(btx *bolt.Tx) error {
		tx, err := newTx(btx)
		if err != nil {
			return err
		}
		return fn(tx)
	})
}
