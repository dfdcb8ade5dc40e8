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
	if err := w.state(tx.tx); err != nil {
		return nil, 0, err
	}
	return w.h.Sum(nil), tx.AppliedIndex(), nil
}

// state hashes the state as format 1 laid it out (see migrate.go), bucket by bucket, so
// that a digest does not depend on the file's format: a migrated file hashes as it did.
func (w *hashWriter) state(tx *bolt.Tx) error {
	// The format marker is hashed as format 1's, so that replicas of either format
	// compare (during an upgrade), and a file compares with its migrated copy.
	w.record('B', bucketMeta)
	c := tx.Bucket(bucketMeta).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		switch {
		case bytes.Equal(k, keyApplied):
		case bytes.Equal(k, keyFormat):
			w.record('K', k, formatV1)
		default:
			w.record('K', k, v)
		}
	}

	// Format 1 kept each object's keys in a nested bucket, then the records in a bucket
	// of their own.
	objects := tx.Bucket(bucketObjects)
	w.record('B', bucketObjects)
	var open []byte
	c = objects.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		id, key, err := splitObjectKey(k)
		if err != nil {
			return err
		}
		if key == nil {
			continue
		}
		if open != nil && !bytes.Equal(open, id) {
			w.record('E')
			open = nil
		}
		if open == nil {
			open = id
			w.record('N', id)
		}
		w.record('K', key, v)
	}
	if open != nil {
		w.record('E')
	}
	w.record('B', v1BucketObjectMeta)
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) == IDLen {
			w.record('K', k, v)
		}
	}

	w.record('B', bucketAlarms)
	w.bucket(tx.Bucket(bucketAlarms))

	// Format 1 kept the clients' records apart from the entries.
	dedup := tx.Bucket(bucketDedup)
	if err := w.dedup(dedup, bucketDedup, false); err != nil {
		return err
	}
	w.record('B', bucketDedupExpiry)
	w.bucket(tx.Bucket(bucketDedupExpiry))
	if err := w.dedup(dedup, v1BucketDedupClients, true); err != nil {
		return err
	}
	w.record('B', bucketDedupPending)
	w.bucket(tx.Bucket(bucketDedupPending))
	return nil
}

// dedup hashes, under the name of a format-1 bucket, either the clients' records or the
// entries of bucketDedup.
func (w *hashWriter) dedup(b *bolt.Bucket, name []byte, records bool) error {
	w.record('B', name)
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		_, _, record, err := splitDedupKey(k)
		if err != nil {
			return err
		}
		if record == records {
			w.record('K', k, v)
		}
	}
	return nil
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

// bucket hashes b's entries in key order, descending into nested buckets (format 2 has
// none).
func (w *hashWriter) bucket(b *bolt.Bucket) {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil { // a nested bucket: an object's keys
			w.record('N', k)
			w.bucket(b.Bucket(k))
			w.record('E')
			continue
		}
		w.record('K', k, v)
	}
}
