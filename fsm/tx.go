package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ErrBadListOptions means a ListOptions combination is not allowed.
var ErrBadListOptions = errors.New("fsm: bad list options")

// Tx is a read-only view of the applied state, valid only inside the function given to
// Store.View. Every slice it returns or passes to a callback points into the database
// file's memory map or into memory the open write transaction holds: it is valid only
// until that function returns and must not be modified. Copy what you keep.
type Tx struct {
	tx                    *bolt.Tx
	meta, objects, alarms *bolt.Bucket
	dedup                 *bolt.Bucket
}

func newTx(btx *bolt.Tx) (*Tx, error) {
	tx := &Tx{
		tx:      btx,
		meta:    btx.Bucket(bucketMeta),
		objects: btx.Bucket(bucketObjects),
		alarms:  btx.Bucket(bucketAlarms),
		dedup:   btx.Bucket(bucketDedup),
	}
	if tx.meta == nil || tx.objects == nil || tx.alarms == nil || tx.dedup == nil {
		return nil, fmt.Errorf("%w: missing bucket", ErrNotFSMFile)
	}
	return tx, nil
}

// AppliedIndex returns the applied index of the state this Tx sees.
func (tx *Tx) AppliedIndex() uint64 {
	v, _ := readApplied(tx.meta) // checked at open and restore; malformed reads as 0
	return v
}

// Get returns the value of key in object, and whether it exists.
func (tx *Tx) Get(object, key []byte) ([]byte, bool) {
	if len(object) != IDLen || len(key) == 0 {
		return nil, false
	}
	var buf [IDLen + 64]byte
	v := tx.objects.Get(appendObjectKey(buf[:0], object, key))
	// Values come from pages, where even an empty value is a non-nil slice, or from the
	// open transaction, which stores emptyValue for them.
	return v, v != nil
}

// Version returns the number of commands applied to object (0 if none ever was).
func (tx *Tx) Version(object []byte) uint64 {
	m, _ := tx.objectMeta(object)
	return m.version
}

// Alarm returns the object's alarm time (unix nanos), and whether it has one.
func (tx *Tx) Alarm(object []byte) (int64, bool) {
	m, _ := tx.objectMeta(object)
	return m.alarm, m.hasAlarm
}

// objectMeta reads the object's record; an unknown object, or a malformed record, reads
// as absent (records are checked as they are written).
func (tx *Tx) objectMeta(object []byte) (objectMeta, error) {
	if len(object) != IDLen {
		return objectMeta{}, nil
	}
	return decodeObjectMeta(tx.objects.Get(object))
}

// Dedup returns the stored result of the call (client, seq), if it is in the dedup table.
func (tx *Tx) Dedup(client []byte, seq uint64) (result []byte, ok bool) {
	if len(client) != ClientIDLen {
		return nil, false
	}
	var k [ClientIDLen + 8]byte
	copy(k[:], client)
	binary.BigEndian.PutUint64(k[ClientIDLen:], seq)
	v := tx.dedup.Get(k[:])
	if len(v) < 8 {
		return nil, false
	}
	return v[8:], true
}

// DueAlarms calls fn for every alarm set before the time before (unix nanos), in
// ascending time order (ties in object ID order), until fn returns false.
func (tx *Tx) DueAlarms(before int64, fn func(object []byte, at int64) bool) error {
	c := tx.alarms.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) != 8+IDLen {
			return fmt.Errorf("%w: alarm index key of %d bytes", ErrNotFSMFile, len(k))
		}
		at := timeFromKey(k)
		if at >= before {
			return nil
		}
		if !fn(k[8:], at) {
			return nil
		}
	}
	return nil
}

// ListOptions select the keys List visits, with the semantics of Cloudflare Durable
// Objects' storage.list(). A nil or empty field is unset.
type ListOptions struct {
	Prefix     []byte // only keys that begin with Prefix
	Start      []byte // only keys >= Start
	StartAfter []byte // only keys > StartAfter; not together with Start
	End        []byte // only keys < End
	// Reverse visits keys in descending order. The range is the same either way.
	Reverse bool
	// Limit stops after this many keys; 0 is unlimited.
	Limit int
}

// List calls fn for each key of object selected by o, in ascending (or with Reverse,
// descending) byte order, until fn returns false. An invalid o is an error wrapping
// ErrBadListOptions.
func (tx *Tx) List(object []byte, o ListOptions, fn func(key, value []byte) bool) error {
	if len(o.Start) > 0 && len(o.StartAfter) > 0 {
		return fmt.Errorf("%w: Start and StartAfter are exclusive", ErrBadListOptions)
	}
	if o.Limit < 0 {
		return fmt.Errorf("%w: negative Limit %d", ErrBadListOptions, o.Limit)
	}
	lo, loExcl, hi := o.bounds()
	if hi != nil && bytes.Compare(lo, hi) >= 0 {
		return nil // empty range
	}
	if len(object) != IDLen {
		return nil
	}
	// The object's keys are the bucket's keys object ‖ key (see bucketObjects); the
	// object's record, the key object itself, is not one of them.
	c := tx.objects.Cursor()
	own := func(k []byte) bool { return len(k) > IDLen && bytes.Equal(k[:IDLen], object) }
	n := 0
	// visit reports whether to go on.
	visit := func(k, v []byte) bool {
		if !fn(k, v) {
			return false
		}
		n++
		return o.Limit == 0 || n < o.Limit
	}
	if !o.Reverse {
		k, v := c.Seek(appendObjectKey(nil, object, lo))
		if len(k) == IDLen {
			k, v = c.Next() // the object's record
		}
		if loExcl && own(k) && bytes.Equal(k[IDLen:], lo) {
			k, v = c.Next()
		}
		for ; own(k) && (hi == nil || bytes.Compare(k[IDLen:], hi) < 0); k, v = c.Next() {
			if !visit(k[IDLen:], v) {
				return nil
			}
		}
		return nil
	}
	// Seek the first key past the range, then step back once.
	var past []byte
	if hi == nil {
		past = prefixEnd(object)
	} else {
		past = appendObjectKey(nil, object, hi)
	}
	var k, v []byte
	if past == nil {
		k, v = c.Last()
	} else if k, _ = c.Seek(past); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; own(k); k, v = c.Prev() {
		if cmp := bytes.Compare(k[IDLen:], lo); cmp < 0 || (cmp == 0 && loExcl) {
			return nil
		}
		if !visit(k[IDLen:], v) {
			return nil
		}
	}
	return nil
}

// bounds turns the options into one range: keys k with lo <= k (lo < k if loExcl) and,
// if hi != nil, k < hi.
func (o *ListOptions) bounds() (lo []byte, loExcl bool, hi []byte) {
	// The lower bound is the greatest of Start, StartAfter and Prefix; on a tie the
	// exclusive StartAfter is the stricter.
	lo = o.Prefix
	if len(o.Start) > 0 && bytes.Compare(o.Start, lo) > 0 {
		lo = o.Start
	}
	if len(o.StartAfter) > 0 && bytes.Compare(o.StartAfter, lo) >= 0 {
		lo, loExcl = o.StartAfter, true
	}
	// The upper bound is the least of End and the first key past every key with Prefix.
	if len(o.End) > 0 {
		hi = o.End
	}
	if pe := prefixEnd(o.Prefix); pe != nil && (hi == nil || bytes.Compare(pe, hi) < 0) {
		hi = pe
	}
	return lo, loExcl, hi
}

// prefixEnd returns the least key greater than every key beginning with p, or nil when
// there is none (p empty or all 0xff).
func prefixEnd(p []byte) []byte {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != 0xff {
			end := make([]byte, i+1)
			copy(end, p)
			end[i]++
			return end
		}
	}
	return nil
}
