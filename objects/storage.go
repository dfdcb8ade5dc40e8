package objects

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/duro-db/duro/fsm"
)

// Limits of Storage. A breach is a typed error returned before anything is buffered.
const (
	// MaxKeySize is the longest key, in bytes (Cloudflare's limit).
	MaxKeySize = fsm.MaxKeySize
	// MaxValueSize is the largest value after msgpack encoding, in bytes (Cloudflare's).
	MaxValueSize = fsm.MaxValueSize
	// MaxBatchKeys is the most keys one GetMany, PutMany or DeleteMany may name.
	MaxBatchKeys = 128
	// MaxCallKeys is the most keys one call may write: its command carries one op per key,
	// plus a DeleteAll and an alarm op.
	MaxCallKeys = fsm.MaxOps - 2
	// MaxCallBytes bounds the keys and values one call may write: they travel as one Raft
	// entry, and a huge entry stalls every other object of the group.
	MaxCallBytes = 8 << 20
	// MaxArgsSize bounds a call's encoded arguments.
	MaxArgsSize = 4 << 20
)

// Storage is an object's transactional key-value storage, as seen by one call. Keys are
// strings ordered by their bytes; values are any Go values, stored as msgpack (struct fields
// named by `json` tags).
//
// Reads see the committed state, overlaid with the writes of the object's earlier calls
// that are still being committed, and with this call's own writes. Writes are buffered and
// become one atomic command when the handler returns successfully; if it returns an error or
// panics, none of them happen. Every method is for the handler's goroutine only, and only
// until the handler returns (later use gives ErrStorageClosed).
type Storage struct {
	group    Group
	object   []byte
	inflight *layer   // the object's in-flight commands; only read here
	stack    []*layer // stack[0] holds the call's writes; each open Transaction adds one
	closed   bool

	// The call's layer and the stack's first slot live here, so a call's Storage is one
	// allocation. The layer outlives the call in its command's entry, keeping this alive.
	base   layer
	stack0 [1]*layer
}

func newStorage(g Group, object []byte, inflight *layer) *Storage {
	s := &Storage{group: g, object: object, inflight: inflight, base: layer{writes: make(map[string]write)}}
	s.stack0[0] = &s.base
	s.stack = s.stack0[:]
	return s
}

// Value is a stored value, still encoded. Decode it into a Go value with Decode.
type Value struct{ raw []byte }

// Decode decodes the value into out, which must be a pointer. Fields out does not have are
// ignored (so a type may drop a field without making old values unreadable).
func (v Value) Decode(out any) error {
	if err := unmarshal(v.raw, out, false); err != nil {
		return fmt.Errorf("%w into %T: %v", ErrDecode, out, err)
	}
	return nil
}

// Entry is one key and its value, as List returns them.
type Entry[V any] struct {
	Key   string
	Value V
}

// ListOptions select the keys List returns, with Cloudflare Durable Objects' list()
// semantics. An empty string or zero is unset.
type ListOptions struct {
	Prefix     string // only keys that begin with Prefix
	Start      string // only keys >= Start
	StartAfter string // only keys > StartAfter; not together with Start
	End        string // only keys < End
	Reverse    bool   // descending order; the range is the same
	Limit      int    // at most this many entries; 0 is unlimited
}

// Get decodes the value of key into out (a pointer) and reports whether key exists. When
// it does not, out is untouched.
func (s *Storage) Get(key string, out any) (bool, error) {
	if err := s.usable(); err != nil {
		return false, err
	}
	if err := checkKey(key); err != nil {
		return false, err
	}
	raw, ok, err := s.get(key)
	if err != nil || !ok {
		return false, err
	}
	if err := (Value{raw}).Decode(out); err != nil {
		return true, fmt.Errorf("key %q: %w", key, err)
	}
	return true, nil
}

// GetMany returns the values of the keys that exist, at most MaxBatchKeys of them.
func (s *Storage) GetMany(keys []string) (map[string]Value, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if err := checkBatch(keys); err != nil {
		return nil, err
	}
	out := make(map[string]Value, len(keys))
	var fromBase []string
	for _, k := range keys {
		if w, ok := s.lookup(k); ok {
			if !w.del {
				out[k] = Value{w.val}
			}
			continue
		}
		fromBase = append(fromBase, k)
	}
	if len(fromBase) == 0 {
		return out, nil
	}
	err := s.group.View(func(tx *fsm.Tx) error {
		for _, k := range fromBase {
			if v, ok := tx.Get(s.object, []byte(k)); ok {
				out[k] = Value{bytes.Clone(v)}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Put sets key to value, encoded with msgpack.
func (s *Storage) Put(key string, value any) error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	b, err := encodeValue(key, value)
	if err != nil {
		return err
	}
	if err := s.reserve([]string{key}, len(key)+len(b)); err != nil {
		return err
	}
	s.top().put(key, write{val: b})
	return nil
}

// PutMany sets every key of entries (at most MaxBatchKeys) to its value. Either all are
// buffered or, on any error, none.
func (s *Storage) PutMany(entries map[string]any) error {
	if err := s.usable(); err != nil {
		return err
	}
	if len(entries) > MaxBatchKeys {
		return fmt.Errorf("%w: %d keys in one batch > %d", ErrTooManyKeys, len(entries), MaxBatchKeys)
	}
	encoded := make(map[string][]byte, len(entries))
	keys := make([]string, 0, len(entries))
	size := 0
	for k, v := range entries {
		if err := checkKey(k); err != nil {
			return err
		}
		b, err := encodeValue(k, v)
		if err != nil {
			return err
		}
		encoded[k] = b
		keys = append(keys, k)
		size += len(k) + len(b)
	}
	if err := s.reserve(keys, size); err != nil {
		return err
	}
	top := s.top()
	for k, b := range encoded {
		top.put(k, write{val: b})
	}
	return nil
}

// Delete removes key and reports whether it existed.
func (s *Storage) Delete(key string) (bool, error) {
	if err := s.usable(); err != nil {
		return false, err
	}
	if err := checkKey(key); err != nil {
		return false, err
	}
	_, existed, err := s.get(key)
	if err != nil || !existed {
		// Deleting an absent key changes nothing: buffering no write keeps the call
		// read-only if that was all it did.
		return false, err
	}
	if err := s.reserve([]string{key}, len(key)); err != nil {
		return false, err
	}
	s.top().put(key, write{del: true})
	return true, nil
}

// DeleteMany removes the keys (at most MaxBatchKeys) and returns how many existed.
func (s *Storage) DeleteMany(keys []string) (int, error) {
	if err := s.usable(); err != nil {
		return 0, err
	}
	if err := checkBatch(keys); err != nil {
		return 0, err
	}
	existing := make([]string, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	var fromBase []string
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		if w, ok := s.lookup(k); ok {
			if !w.del {
				existing = append(existing, k)
			}
			continue
		}
		fromBase = append(fromBase, k)
	}
	if len(fromBase) > 0 {
		err := s.group.View(func(tx *fsm.Tx) error {
			for _, k := range fromBase {
				if _, ok := tx.Get(s.object, []byte(k)); ok {
					existing = append(existing, k)
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	size := 0
	for _, k := range existing {
		size += len(k)
	}
	if err := s.reserve(existing, size); err != nil {
		return 0, err
	}
	top := s.top()
	for _, k := range existing {
		top.put(k, write{del: true})
	}
	return len(existing), nil
}

// DeleteAll removes every key and the alarm.
func (s *Storage) DeleteAll() error {
	if err := s.usable(); err != nil {
		return err
	}
	s.top().deleteAll()
	return nil
}

// List returns the entries selected by o, in ascending key order (descending with
// o.Reverse), values still encoded.
func (s *Storage) List(o ListOptions) ([]Entry[Value], error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if o.Start != "" && o.StartAfter != "" {
		return nil, fmt.Errorf("%w: Start and StartAfter are exclusive", ErrBadListOptions)
	}
	if o.Limit < 0 {
		return nil, fmt.Errorf("%w: negative Limit %d", ErrBadListOptions, o.Limit)
	}

	// The newest write of every selected key above the committed state, and whether the
	// committed state shows through at all (not under a DeleteAll).
	over := make(map[string]write)
	baseVisible := true
	for l := range s.layers() {
		for k, w := range l.writes {
			if _, shadowed := over[k]; !shadowed && inRange(k, &o) && !isReserved(k) {
				over[k] = w
			}
		}
		if l.cleared {
			baseVisible = false
			break
		}
	}
	keys := make([]string, 0, len(over))
	for k := range over {
		keys = append(keys, k)
	}
	// before reports whether key a comes before key b in the listing order.
	before := func(a, b string) bool { return a < b }
	if o.Reverse {
		before = func(a, b string) bool { return a > b }
	}
	slices.SortFunc(keys, func(a, b string) int {
		if o.Reverse {
			return strings.Compare(b, a)
		}
		return strings.Compare(a, b)
	})

	var out []Entry[Value]
	full := func() bool { return o.Limit > 0 && len(out) >= o.Limit }
	next := 0 // keys[next] is the first overlay key not yet emitted or skipped
	// emitOverlay emits keys[next] unless it is a deletion.
	emitOverlay := func() {
		w := over[keys[next]]
		if !w.del {
			out = append(out, Entry[Value]{Key: keys[next], Value: Value{w.val}})
		}
		next++
	}
	if baseVisible {
		err := s.group.View(func(tx *fsm.Tx) error {
			return tx.List(s.object, o.fsmOptions(), func(k, v []byte) bool {
				key := string(k)
				if isReserved(key) {
					return true // the runtime's keys are not the user's
				}
				for next < len(keys) && before(keys[next], key) && !full() {
					emitOverlay()
				}
				if full() {
					return false
				}
				if next < len(keys) && keys[next] == key {
					emitOverlay() // the overlay's write of key replaces the committed one
				} else {
					out = append(out, Entry[Value]{Key: key, Value: Value{bytes.Clone(v)}})
				}
				return !full()
			})
		})
		if err != nil {
			return nil, err
		}
	}
	for next < len(keys) && !full() {
		emitOverlay()
	}
	return out, nil
}

func (o *ListOptions) fsmOptions() fsm.ListOptions {
	b := func(s string) []byte {
		if s == "" {
			return nil
		}
		return []byte(s)
	}
	// No Limit: overlay deletions may hide committed keys, so the caller stops the walk.
	return fsm.ListOptions{Prefix: b(o.Prefix), Start: b(o.Start), StartAfter: b(o.StartAfter), End: b(o.End), Reverse: o.Reverse}
}

// Transaction runs fn with this Storage; if fn returns an error or panics, every write fn
// made is rolled back (the panic then continues), otherwise they join the call's writes.
// Transactions nest. The call as a whole is atomic anyway; Transaction adds rollback of
// part of it.
func (s *Storage) Transaction(fn func(s *Storage) error) error {
	if err := s.usable(); err != nil {
		return err
	}
	tx := newLayer()
	s.stack = append(s.stack, tx)
	depth := len(s.stack)
	committed := false
	defer func() {
		if len(s.stack) != depth || s.stack[depth-1] != tx {
			panic("objects: invariant violated: transaction layers are not nested")
		}
		s.stack = s.stack[:depth-1]
		if committed {
			s.top().merge(tx)
		}
	}()
	if err := fn(s); err != nil {
		return err
	}
	committed = true
	return nil
}

// The range of times an alarm can hold: unix nanoseconds in an int64.
var (
	minAlarm = time.Unix(0, math.MinInt64)
	maxAlarm = time.Unix(0, math.MaxInt64)
)

// SetAlarm sets the object's alarm to at, replacing any (and ending the retries of a
// failing one). When at comes, the class's Alarm handler runs (see Alarmer); a time in the
// past fires as soon as possible. An object has at most one alarm.
func (s *Storage) SetAlarm(at time.Time) error {
	if err := s.usable(); err != nil {
		return err
	}
	if at.Before(minAlarm) || at.After(maxAlarm) {
		return fmt.Errorf("%w: %v", ErrInvalidAlarm, at)
	}
	if err := s.endRetries(); err != nil {
		return err
	}
	s.top().alarm = alarmWrite{kind: alarmSet, at: at.UnixNano()}
	return nil
}

// GetAlarm returns the object's alarm time, and whether it has one.
func (s *Storage) GetAlarm() (time.Time, bool, error) {
	if err := s.usable(); err != nil {
		return time.Time{}, false, err
	}
	for l := range s.layers() {
		switch l.alarm.kind {
		case alarmSet:
			return time.Unix(0, l.alarm.at), true, nil
		case alarmDelete:
			return time.Time{}, false, nil
		}
		if l.cleared {
			return time.Time{}, false, nil
		}
	}
	var at int64
	var ok bool
	err := s.group.View(func(tx *fsm.Tx) error {
		at, ok = tx.Alarm(s.object)
		return nil
	})
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	return time.Unix(0, at), true, nil
}

// DeleteAlarm removes the object's alarm, if any.
func (s *Storage) DeleteAlarm() error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := s.endRetries(); err != nil {
		return err
	}
	s.top().alarm = alarmWrite{kind: alarmDelete}
	return nil
}

// endRetries buffers the removal of the alarm's retry count, if it has one: a replaced or
// deleted alarm is no longer being retried, and the next one starts at RetryCount 0.
func (s *Storage) endRetries() error {
	_, retrying, err := s.get(alarmRetryKey)
	if err != nil || !retrying {
		return err
	}
	s.top().put(alarmRetryKey, write{del: true})
	return nil
}

// GetAs returns the value of key decoded as a V, and whether key exists.
func GetAs[V any](s *Storage, key string) (V, bool, error) {
	var v V
	ok, err := s.Get(key, &v)
	return v, ok, err
}

// GetManyAs returns the values of the keys that exist, decoded as V.
func GetManyAs[V any](s *Storage, keys []string) (map[string]V, error) {
	raw, err := s.GetMany(keys)
	if err != nil {
		return nil, err
	}
	out := make(map[string]V, len(raw))
	for k, r := range raw {
		var v V
		if err := r.Decode(&v); err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

// PutManyAs is PutMany for a map of one value type.
func PutManyAs[V any](s *Storage, entries map[string]V) error {
	m := make(map[string]any, len(entries))
	for k, v := range entries {
		m[k] = v
	}
	return s.PutMany(m)
}

// ListAs is List with the values decoded as V.
func ListAs[V any](s *Storage, o ListOptions) ([]Entry[V], error) {
	raw, err := s.List(o)
	if err != nil {
		return nil, err
	}
	out := make([]Entry[V], len(raw))
	for i, e := range raw {
		out[i].Key = e.Key
		if err := e.Value.Decode(&out[i].Value); err != nil {
			return nil, fmt.Errorf("key %q: %w", e.Key, err)
		}
	}
	return out, nil
}

// --- internals ---

func (s *Storage) usable() error {
	if s.closed {
		return ErrStorageClosed
	}
	return nil
}

func (s *Storage) top() *layer { return s.stack[len(s.stack)-1] }

// layers yields the layers above the committed state, newest first.
func (s *Storage) layers() func(yield func(*layer) bool) {
	return func(yield func(*layer) bool) {
		for i := len(s.stack) - 1; i >= 0; i-- {
			if !yield(s.stack[i]) {
				return
			}
		}
		yield(s.inflight)
	}
}

// lookup returns the newest write of key above the committed state, if any layer decides
// it (a DeleteAll decides every key: deleted).
func (s *Storage) lookup(key string) (write, bool) {
	for l := range s.layers() {
		if w, ok := l.writes[key]; ok {
			return w, true
		}
		if l.cleared {
			return write{del: true}, true
		}
	}
	return write{}, false
}

// get returns the encoded value of key in the object's view.
func (s *Storage) get(key string) ([]byte, bool, error) {
	if w, ok := s.lookup(key); ok {
		return w.val, !w.del, nil
	}
	var val []byte
	var found bool
	err := s.group.View(func(tx *fsm.Tx) error {
		if v, ok := tx.Get(s.object, []byte(key)); ok {
			// Copied inside View: the slice points into bbolt's memory map. Decoded
			// outside, so user decoding code never runs inside a read transaction.
			val, found = bytes.Clone(v), true
		}
		return nil
	})
	return val, found, err
}

// reserve checks that writing keys with size more bytes keeps the call within MaxCallKeys
// and MaxCallBytes. Writes in the top layer that keys replace are not counted twice;
// writes in lower Transaction layers are (an over-estimate of at most a nesting's worth).
func (s *Storage) reserve(keys []string, size int) error {
	top := s.top()
	nKeys, nBytes := 0, size
	for _, l := range s.stack {
		nKeys += len(l.writes)
		nBytes += l.size
	}
	for _, k := range keys {
		if old, ok := top.writes[k]; ok {
			nBytes -= len(k) + len(old.val)
		} else {
			nKeys++
		}
	}
	if nKeys > MaxCallKeys {
		return fmt.Errorf("%w: one call may write at most %d keys", ErrTooManyKeys, MaxCallKeys)
	}
	if nBytes > MaxCallBytes {
		return fmt.Errorf("%w: %d bytes > %d", ErrCallTooLarge, nBytes, MaxCallBytes)
	}
	return nil
}

func checkKey(k string) error {
	if k == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if len(k) > MaxKeySize {
		return fmt.Errorf("%w: %d bytes > %d", ErrKeyTooLarge, len(k), MaxKeySize)
	}
	if isReserved(k) {
		return fmt.Errorf("%w: keys beginning with %q are reserved", ErrInvalidKey, reservedPrefix)
	}
	return nil
}

func checkBatch(keys []string) error {
	if len(keys) > MaxBatchKeys {
		return fmt.Errorf("%w: %d keys in one batch > %d", ErrTooManyKeys, len(keys), MaxBatchKeys)
	}
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	return nil
}

func encodeValue(key string, v any) ([]byte, error) {
	b, err := marshal(v)
	if err != nil {
		return nil, fmt.Errorf("objects: encode value of key %q: %w", key, err)
	}
	if len(b) > MaxValueSize {
		return nil, fmt.Errorf("%w: key %q: %d bytes encoded > %d", ErrValueTooLarge, key, len(b), MaxValueSize)
	}
	return b, nil
}
