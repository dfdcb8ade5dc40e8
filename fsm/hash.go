package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"

	bolt "go.etcd.io/bbolt"
)

// Hash returns a SHA-256 digest of the whole replicated state — every object's keys,
// values, version and alarm, the alarm index, the dedup table with its bookkeeping, and
// the log clock — and the applied index it was taken at. Replicas at the same applied index
// must have equal digests; anything else is divergence.
//
// The digest covers logical content in key order, not bbolt's page layout, so a restored
// copy hashes like its original. The applied index is left out of the digest (it is
// returned beside it) because entries the state machine never sees, such as raft's
// barriers, move it on some replicas and not others without changing any state.
//
// Hash commits the open write transaction, then reads everything on a read transaction of
// its own (applies go on meanwhile): use it in tests and audits, not on a hot path.
func (s *Store) Hash() (digest []byte, applied uint64, err error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return nil, 0, ErrClosed
	}
	btx, err := s.readCommitted(false)
	if err != nil {
		return nil, 0, fmt.Errorf("fsm: hash: %w", err)
	}
	defer func() { _ = btx.Rollback() }()
	tx, err := newTx(btx)
	if err != nil {
		return nil, 0, err
	}
	w := hashWriter{h: sha256.New()}
	for _, name := range allBuckets {
		w.record('B', name)
		skip := []byte(nil)
		if bytes.Equal(name, bucketMeta) {
			skip = keyApplied
		}
		w.bucket(tx.tx.Bucket(name), skip)
	}
	return w.h.Sum(nil), tx.AppliedIndex(), nil
}

// hashWriter feeds an unambiguous encoding of bucket contents to h: every item is a tag
// and length-prefixed fields, so no two different states produce the same stream.
type hashWriter struct {
	h   hash.Hash
	buf [1 + binary.MaxVarintLen64]byte
}

func (w *hashWriter) record(tag byte, fields ...[]byte) {
	w.buf[0] = tag
	w.h.Write(w.buf[:1])
	for _, f := range fields {
		n := binary.PutUvarint(w.buf[:], uint64(len(f)))
		w.h.Write(w.buf[:n])
		w.h.Write(f)
	}
}

// bucket hashes b's entries in key order, descending into nested buckets; the key skip
// is left out.
func (w *hashWriter) bucket(b *bolt.Bucket, skip []byte) {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if skip != nil && bytes.Equal(k, skip) {
			continue
		}
		if v == nil { // a nested bucket: an object's keys
			w.record('N', k)
			w.bucket(b.Bucket(k), nil)
			w.record('E')
			continue
		}
		w.record('K', k, v)
	}
}
