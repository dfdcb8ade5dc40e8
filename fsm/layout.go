package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The bbolt file holds these top-level buckets (format 2). All integers are big-endian so
// that byte order is numeric order; times go through timeKey so that negative times sort
// first.
var (
	// bucketMeta holds keyFormat, keyApplied and keyClock.
	bucketMeta = []byte("meta")
	// bucketObjects holds every object, flat: object ID (IDLen bytes) → the object's
	// record, version (8 bytes) [‖ alarm time (8 bytes)]; and object ID ‖ key → value for
	// each of its keys. IDs have one length and keys are not empty, so the record sorts
	// first and the object's keys follow it, contiguous and in key order. The record
	// exists from the object's first command on and is never removed.
	bucketObjects = []byte("objects")
	// bucketAlarms is the alarm time index: timeKey(at) ‖ object ID → empty.
	bucketAlarms = []byte("alarms")
	// bucketDedup holds the dedup table by client: client (ClientIDLen bytes) → its
	// record, entry count (8 bytes) ‖ ack floor (8 bytes); and client ‖ seq → timeKey(log
	// time) ‖ stored result for each entry. The record sorts just before the client's
	// entries, lowest Seq first, so one cursor reads both.
	bucketDedup = []byte("dedup")
	// bucketDedupExpiry is the dedup time index: timeKey(log time) ‖ client ‖ seq → empty.
	bucketDedupExpiry = []byte("dedup-expiry")
	// bucketDedupPending holds the clients whose dedup entries still need pruning (below
	// the ack floor or over the per-client bound) after a command ran out of budget.
	bucketDedupPending = []byte("dedup-pending")

	allBuckets = [][]byte{
		bucketMeta, bucketObjects, bucketAlarms,
		bucketDedup, bucketDedupExpiry, bucketDedupPending,
	}

	keyFormat  = []byte("format")
	keyApplied = []byte("applied")
	keyClock   = []byte("clock")

	// formatV2 marks a duro fsm file of the layout above; a different layout gets a new
	// marker. formatV1 files (migrate.go) are migrated when opened or restored.
	formatV2 = []byte("duro-fsm/2")
)

// ErrNotFSMFile means a file (at Open, or a snapshot given to Restore) is not a valid duro
// fsm file of a layout this version understands.
var ErrNotFSMFile = errors.New("fsm: not a valid duro fsm file")

// errCorrupt reports a record of the wrong shape read from the file.
func errCorrupt(what string, n int) error {
	return fmt.Errorf("%w: %s record of %d bytes", ErrNotFSMFile, what, n)
}

// timeKey encodes t so that bytewise order is numeric order: flipping the sign bit maps
// MinInt64..MaxInt64 onto 0..MaxUint64.
func timeKey(dst []byte, t int64) {
	binary.BigEndian.PutUint64(dst, uint64(t)^(1<<63))
}

func timeFromKey(src []byte) int64 {
	return int64(binary.BigEndian.Uint64(src) ^ (1 << 63))
}

// objectMeta is the decoded record of an object (its ID alone as the key in bucketObjects).
type objectMeta struct {
	version  uint64
	alarm    int64
	hasAlarm bool
}

func decodeObjectMeta(v []byte) (objectMeta, error) {
	switch len(v) {
	case 0:
		return objectMeta{}, nil
	case 8:
		return objectMeta{version: binary.BigEndian.Uint64(v)}, nil
	case 16:
		return objectMeta{
			version:  binary.BigEndian.Uint64(v),
			alarm:    int64(binary.BigEndian.Uint64(v[8:])),
			hasAlarm: true,
		}, nil
	}
	return objectMeta{}, errCorrupt("object", len(v))
}

func (m objectMeta) appendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, m.version)
	if m.hasAlarm {
		dst = binary.BigEndian.AppendUint64(dst, uint64(m.alarm))
	}
	return dst
}

// clientRecord is the decoded record of a client in bucketDedup.
type clientRecord struct {
	count uint64 // entries of the client in bucketDedup
	floor uint64 // highest Ack seen: every Seq below it has been answered
}

func decodeClientRecord(v []byte) (clientRecord, error) {
	switch len(v) {
	case 0:
		return clientRecord{}, nil
	case 16:
		return clientRecord{count: binary.BigEndian.Uint64(v), floor: binary.BigEndian.Uint64(v[8:])}, nil
	}
	return clientRecord{}, errCorrupt("dedup client", len(v))
}

func (r clientRecord) appendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, r.count)
	return binary.BigEndian.AppendUint64(dst, r.floor)
}

// errCorruptKey reports a key of the wrong shape read from the file.
func errCorruptKey(what string, n int) error {
	return fmt.Errorf("%w: %s key of %d bytes", ErrNotFSMFile, what, n)
}

// appendObjectKey appends the bucketObjects key of the object's key to dst.
func appendObjectKey(dst, id, key []byte) []byte {
	return append(append(dst, id...), key...)
}

// splitObjectKey splits a bucketObjects key into the object ID and the object's key,
// which is nil for the object's record.
func splitObjectKey(k []byte) (id, key []byte, err error) {
	if len(k) < IDLen {
		return nil, nil, errCorruptKey("objects", len(k))
	}
	if len(k) == IDLen {
		return k, nil, nil
	}
	return k[:IDLen], k[IDLen:], nil
}

// splitDedupKey splits a bucketDedup key into the client and, for an entry, its Seq;
// record reports the client's record.
func splitDedupKey(k []byte) (client []byte, seq uint64, record bool, err error) {
	switch len(k) {
	case ClientIDLen:
		return k, 0, true, nil
	case ClientIDLen + 8:
		return k[:ClientIDLen], binary.BigEndian.Uint64(k[ClientIDLen:]), false, nil
	}
	return nil, 0, false, errCorruptKey("dedup", len(k))
}

// initFile creates the layout in an empty file, or checks the layout of an existing one,
// migrating a format-1 file first.
func initFile(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return fmt.Errorf("%w: no %q bucket", ErrNotFSMFile, bucketMeta)
		}
		for _, name := range allBuckets {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, formatV2)
	}
	if string(meta.Get(keyFormat)) == string(formatV1) {
		if err := checkLayout(tx); err != nil {
			return err
		}
		if err := migrateV1(tx); err != nil {
			return fmt.Errorf("migrating from format 1: %w", err)
		}
	}
	return checkLayout(tx)
}

// checkLayout verifies the format marker (format 2, or format 1 which Open migrates),
// that every bucket of that format exists and that the metadata records are well-formed.
func checkLayout(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return fmt.Errorf("%w: no %q bucket", ErrNotFSMFile, bucketMeta)
	}
	var buckets [][]byte
	switch f := meta.Get(keyFormat); string(f) {
	case string(formatV2):
		buckets = allBuckets
	case string(formatV1):
		buckets = v1Buckets
	default:
		return fmt.Errorf("%w: format %q, want %q", ErrNotFSMFile, f, formatV2)
	}
	for _, name := range buckets {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: no %q bucket", ErrNotFSMFile, name)
		}
	}
	if _, err := readApplied(meta); err != nil {
		return err
	}
	_, err := readClock(meta)
	return err
}

func readApplied(meta *bolt.Bucket) (uint64, error) {
	v := meta.Get(keyApplied)
	switch len(v) {
	case 0:
		return 0, nil
	case 8:
		return binary.BigEndian.Uint64(v), nil
	}
	return 0, errCorrupt("applied index", len(v))
}

func readClock(meta *bolt.Bucket) (int64, error) {
	v := meta.Get(keyClock)
	switch len(v) {
	case 0:
		return 0, nil
	case 8:
		return int64(binary.BigEndian.Uint64(v)), nil
	}
	return 0, errCorrupt("log clock", len(v))
}

func putUint64(dst []byte, v uint64) { binary.BigEndian.PutUint64(dst, v) }
