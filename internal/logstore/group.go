package logstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrKeyNotFound is returned by GroupStore.Get and GetUint64 for a key that
// was never set. Its message is exactly "not found", never wrapped:
// hashicorp/raft recognises a missing stable key by comparing err.Error()
// with that string (the convention of raft-boltdb), at startup for
// CurrentTerm and on every vote for LastVoteTerm/LastVoteCand.
var ErrKeyNotFound = errors.New("not found")

// GroupStore is the log and stable store of one Raft group inside a Store.
// It implements raft.LogStore and raft.StableStore and is safe for
// concurrent use. Writes block until committed and fsynced (unless
// Options.NoSync) together with whatever other groups queued meanwhile,
// except StoreLogs on a leader once SetAsyncAppends is set (see async.go).
type GroupStore struct {
	s    *Store
	id   uint64
	name [groupBucketNameSize]byte

	// leader is the SetAsyncAppends predicate, nil when unset.
	leader atomic.Pointer[func() bool]

	// mu guards the fields below it. The writer takes it after each
	// commit; StoreLogs takes it for an async append; reads take it
	// shared.
	mu sync.RWMutex
	// idx locates the committed log in the WAL. Only the writer changes
	// it (and so may read it without mu); a reader holds mu shared while
	// it reads a record, which keeps the record's segment from going.
	idx *logIndex
	// diskFirst and diskLast are idx's bounds (0 when empty).
	diskFirst, diskLast uint64
	// pending holds the async StoreLogs requests not committed yet, in
	// queue order; pendLo and pendHi bound their indexes. ascending says
	// each request's indexes follow the previous one's, as a leader's do,
	// so that the bounds are those of the first and last request.
	pending        []*request
	pendLo, pendHi uint64
	ascending      bool
	// changed, if not nil, is closed at the next change of durable.
	changed chan struct{}

	// The view that lock-free readers load, recomputed under mu whenever
	// one of its inputs changes (publishLocked): first and last bound the
	// committed log together with the pending appends (0 when empty),
	// durable is DurableIndex, npending is len(pending).
	first, last, durable atomic.Uint64
	npending             atomic.Int64
}

var (
	_ raft.LogStore    = (*GroupStore)(nil)
	_ raft.StableStore = (*GroupStore)(nil)
)

// ID returns the group's ID.
func (g *GroupStore) ID() uint64 { return g.id }

// FirstIndex returns the first index in the log, 0 if it is empty.
func (g *GroupStore) FirstIndex() (uint64, error) {
	if g.s.closed.Load() {
		return 0, ErrClosed
	}
	return g.first.Load(), nil
}

// LastIndex returns the last index in the log, 0 if it is empty.
func (g *GroupStore) LastIndex() (uint64, error) {
	if g.s.closed.Load() {
		return 0, ErrClosed
	}
	return g.last.Load(), nil
}

// GetLog reads the entry at index into log. It returns raft.ErrLogNotFound,
// unwrapped, if there is none. Pending async appends are read from memory.
func (g *GroupStore) GetLog(index uint64, log *raft.Log) error {
	if g.npending.Load() > 0 {
		if g.s.closed.Load() {
			return ErrClosed
		}
		if found, err := g.pendingLog(index, log); found {
			return err
		}
	}
	// Not pending now, so the index has whatever this read may return: a
	// request leaves the pending list only after its commit.
	return g.committedLog(index, log)
}

// committedLog reads index from the committed log, ignoring pending async
// appends.
func (g *GroupStore) committedLog(index uint64, log *raft.Log) error {
	if g.s.closed.Load() {
		return ErrClosed
	}
	g.mu.RLock()
	l, ok := g.idx.get(index)
	if !ok {
		g.mu.RUnlock()
		return raft.ErrLogNotFound
	}
	rec := make([]byte, l.n)
	_, err := l.seg.f.ReadAt(rec, l.off)
	g.mu.RUnlock()
	if err != nil {
		if g.s.closed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("logstore: group %d: log %d: read WAL: %w", g.id, index, err)
	}
	if err := decodeLog(rec, log); err != nil {
		return fmt.Errorf("logstore: group %d: log %d: %w", g.id, index, err)
	}
	if log.Index != index {
		return fmt.Errorf("logstore: group %d: log %d: %w: record holds index %d", g.id, index, ErrCorrupt, log.Index)
	}
	return nil
}

// StoreLog stores one entry; see StoreLogs.
func (g *GroupStore) StoreLog(log *raft.Log) error {
	return g.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores entries, replacing any at the same indexes. It is atomic
// (all or none are stored) and durable when it returns nil. Indexes need not
// follow the current last index: raft leaves a gap after installing a
// snapshot.
//
// If SetAsyncAppends is set and reports leadership, StoreLogs instead
// queues the entries and returns without waiting for their commit: they are
// visible to GetLog, FirstIndex and LastIndex at once and durable once
// DurableIndex reaches them.
func (g *GroupStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		if g.s.closed.Load() {
			return ErrClosed
		}
		return nil
	}
	r := getRequest(g, opStoreLogs)
	size := 0
	for i, l := range logs {
		if l == nil {
			putRequest(r)
			return fmt.Errorf("logstore: group %d: StoreLogs: nil log at position %d", g.id, i)
		}
		size += maxRecordSize(l)
	}
	r.keys = slices.Grow(r.keys, len(logs)*indexKeySize)
	r.recs = slices.Grow(r.recs, size)
	for _, l := range logs {
		r.keys = binary.BigEndian.AppendUint64(r.keys, l.Index)
		start := len(r.recs)
		r.recs = appendLog(r.recs, l)
		if len(r.recs)-start > bbolt.MaxValueSize {
			putRequest(r)
			return fmt.Errorf("logstore: group %d: log %d: %w", g.id, l.Index, berrors.ErrValueTooLarge)
		}
		r.ends = append(r.ends, len(r.recs))
	}
	if g.appendAsync() {
		return g.storeAsync(r)
	}
	return g.s.submit(r)
}

// DeleteRange deletes the entries with indexes in [min, max]. Raft uses it
// at both ends of the log: at the head to compact after a snapshot and at the
// tail to truncate entries that conflict with a new leader's. Deleting
// indexes that do not exist is not an error.
func (g *GroupStore) DeleteRange(min, max uint64) error {
	if min > max {
		if g.s.closed.Load() {
			return ErrClosed
		}
		return nil
	}
	r := getRequest(g, opDeleteRange)
	r.min, r.max = min, max
	return g.s.submit(r)
}

// Set stores val under key, durably when it returns nil.
func (g *GroupStore) Set(key, val []byte) error {
	switch {
	case len(key) == 0:
		return fmt.Errorf("logstore: group %d: Set: %w", g.id, berrors.ErrKeyRequired)
	case len(key) > bbolt.MaxKeySize:
		return fmt.Errorf("logstore: group %d: Set: key of %d bytes: %w", g.id, len(key), berrors.ErrKeyTooLarge)
	case int64(len(val)) > bbolt.MaxValueSize:
		return fmt.Errorf("logstore: group %d: Set: value of %d bytes: %w", g.id, len(val), berrors.ErrValueTooLarge)
	}
	r := getRequest(g, opSet)
	r.keys = append(r.keys, key...)
	r.recs = append(r.recs, val...)
	return g.s.submit(r)
}

// Get returns a copy of the value stored under key, or ErrKeyNotFound. A
// value set to an empty slice reads back as a non-nil empty slice.
func (g *GroupStore) Get(key []byte) ([]byte, error) {
	var val []byte
	found := false
	err := g.s.view(func(tx *bbolt.Tx) error {
		var b *bbolt.Bucket
		if top := tx.Bucket(g.name[:]); top != nil {
			b = top.Bucket(stableBucket)
		}
		if b == nil {
			return nil
		}
		// A cursor rather than b.Get: Get's nil result does not tell a
		// missing key from an empty value.
		k, v := b.Cursor().Seek(key)
		if k != nil && bytes.Equal(k, key) {
			found = true
			val = append([]byte{}, v...)
		}
		return nil
	})
	if err == ErrClosed {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("logstore: group %d: get stable key: %w", g.id, err)
	}
	if !found {
		return nil, ErrKeyNotFound
	}
	return val, nil
}

// SetUint64 stores v under key as 8 big-endian bytes.
func (g *GroupStore) SetUint64(key []byte, v uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return g.Set(key, b[:])
}

// GetUint64 returns the value stored by SetUint64 under key, or 0 and
// ErrKeyNotFound.
func (g *GroupStore) GetUint64(key []byte) (uint64, error) {
	v, err := g.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("logstore: group %d: stable key %q: %w: uint64 value of %d bytes", g.id, key, ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
