package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The bbolt file holds these top-level buckets. All integers are big-endian so that byte
// order is numeric order; times go through timeKey so that negative times sort first.
var (
	// bucketMeta holds keyFormat, keyApplied and keyClock.
	bucketMeta = []byte("meta")
	// bucketObjects holds one nested bucket per object ID with that object's keys.
	// A nested bucket exists only while the object has at least one key.
	bucketObjects = []byte("objects")
	// bucketObjectMeta maps object ID → version (8 bytes) [‖ alarm time (8 bytes)]. An
	// object's record exists from its first command on and is never removed.
	bucketObjectMeta = []byte("object-meta")
	// bucketAlarms is the alarm time index: timeKey(at) ‖ object ID → empty.
	bucketAlarms = []byte("alarms")
	// bucketDedup maps client ‖ seq → timeKey(log time) ‖ stored result.
	bucketDedup = []byte("dedup")
	// bucketDedupExpiry is the dedup time index: timeKey(log time) ‖ client ‖ seq → empty.
	bucketDedupExpiry = []byte("dedup-expiry")
	// bucketDedupClients maps client → entry count (8 bytes) ‖ ack floor (8 bytes).
	bucketDedupClients = []byte("dedup-clients")
	// bucketDedupPending holds the clients whose dedup entries still need pruning (below
	// the ack floor or over the per-client bound) after a command ran out of budget.
	bucketDedupPending = []byte("dedup-pending")

	allBuckets = [][]byte{
		bucketMeta, bucketObjects, bucketObjectMeta, bucketAlarms,
		bucketDedup, bucketDedupExpiry, bucketDedupClients, bucketDedupPending,
	}

	keyFormat  = []byte("format")
	keyApplied = []byte("applied")
	keyClock   = []byte("clock")

	// formatV1 marks a duro fsm file; a different layout gets a new marker.
	formatV1 = []byte("duro-fsm/1")
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

// objectMeta is the decoded object-meta record.
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
	return objectMeta{}, errCorrupt("object-meta", len(v))
}

func (m objectMeta) appendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, m.version)
	if m.hasAlarm {
		dst = binary.BigEndian.AppendUint64(dst, uint64(m.alarm))
	}
	return dst
}

// clientRecord is the decoded dedup-clients record.
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
	return clientRecord{}, errCorrupt("dedup-clients", len(v))
}

func (r clientRecord) appendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, r.count)
	return binary.BigEndian.AppendUint64(dst, r.floor)
}

// initFile creates the layout in an empty file, or checks the layout of an existing one.
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
		return tx.Bucket(bucketMeta).Put(keyFormat, formatV1)
	}
	return checkLayout(tx)
}

// checkLayout verifies the format marker, that every bucket exists and that the metadata
// records are well-formed.
func checkLayout(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return fmt.Errorf("%w: no %q bucket", ErrNotFSMFile, bucketMeta)
	}
	if f := meta.Get(keyFormat); string(f) != string(formatV1) {
		return fmt.Errorf("%w: format %q, want %q", ErrNotFSMFile, f, formatV1)
	}
	for _, name := range allBuckets {
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
