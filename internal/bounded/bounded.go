// Package bounded reads the fields of one message held in memory (a frame from the network,
// a record from disk) without ever trusting what the bytes say about their own size.
//
// Invariants:
//   - No read goes past the end of the input, and no method panics, whatever the bytes.
//   - A declared length or count is checked against the bytes that remain (and against the
//     caller's own bound) before anything is sliced or allocated, so a few bytes can never
//     make a caller allocate much: Count refuses n items of min bytes each when fewer than
//     n·min bytes remain.
//   - The first error sticks: later reads return zero values and leave it in place, so a
//     decoder may read every field of a message and check Err once.
//   - What Take and Bytes return aliases the input, with its capacity cut to its length, so
//     an append to it can never overwrite the bytes that follow.
//
// The package decides no format: integers are encoding/binary's varints, and the rest is
// the caller's. A Reader is a value; it does not allocate until it fails.
package bounded

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Reader reads one message from the front of a byte slice. The zero Reader reads an empty
// message.
type Reader struct {
	b    []byte
	off  int
	err  error
	kind error
}

// NewReader returns a Reader of b whose errors wrap kind (when kind is not nil), so that
// callers can test them with errors.Is.
func NewReader(b []byte, kind error) Reader { return Reader{b: b, kind: kind} }

// Err returns the first error, or nil.
func (r *Reader) Err() error { return r.err }

// Len returns the number of bytes not yet read.
func (r *Reader) Len() int { return len(r.b) - r.off }

// Offset returns the number of bytes read so far: the offset of the next field.
func (r *Reader) Offset() int { return r.off }

// Fail records an error, formatted as fmt.Sprintf would, unless one is recorded already.
// Decoders use it for what only they can check (an unknown version, a bad flag).
func (r *Reader) Fail(format string, args ...any) {
	if r.err != nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if r.kind == nil {
		r.err = errors.New(msg)
	} else {
		r.err = fmt.Errorf("%w: %s", r.kind, msg)
	}
}

// Byte reads one byte.
func (r *Reader) Byte(what string) byte {
	if r.err != nil || r.off >= len(r.b) {
		r.truncated(what)
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

// Uvarint reads an unsigned varint (encoding/binary).
func (r *Reader) Uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.Fail("%s: bad uvarint at byte %d", what, r.off)
		return 0
	}
	r.off += n
	return v
}

// Varint reads a signed varint (encoding/binary).
func (r *Reader) Varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.Fail("%s: bad varint at byte %d", what, r.off)
		return 0
	}
	r.off += n
	return v
}

// Take returns the next n bytes, aliasing the input.
func (r *Reader) Take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.Fail("%s: %d bytes at byte %d overrun the %d left", what, n, r.off, len(r.b)-r.off)
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

// Bytes reads a byte string of at most max bytes, prefixed by its length as a uvarint. It
// aliases the input.
func (r *Reader) Bytes(what string, max int) []byte {
	n := r.Uvarint(what)
	if r.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(r.b)-r.off) {
		r.Fail("%s: %d bytes at byte %d (at most %d, %d left)", what, n, r.off, max, len(r.b)-r.off)
		return nil
	}
	return r.Take(int(n), what)
}

// Count reads a list length as a uvarint: at most max items, each of at least min bytes
// (min ≥ 1), so that the rest of the input can hold them.
func (r *Reader) Count(what string, min, max int) int {
	n := r.Uvarint(what)
	if r.err != nil {
		return 0
	}
	left := uint64(len(r.b) - r.off)
	if n > uint64(max) || n > left || n*uint64(min) > left {
		r.Fail("%s: %d items for %d bytes (at most %d)", what, n, left, max)
		return 0
	}
	return int(n)
}

// End reports the first error, or an error if any bytes remain unread.
func (r *Reader) End() error {
	if r.err == nil && r.off != len(r.b) {
		r.Fail("%d trailing bytes", len(r.b)-r.off)
	}
	return r.err
}

// truncated records that what was cut short, unless an error is recorded already.
func (r *Reader) truncated(what string) {
	if r.err == nil {
		r.Fail("%s: truncated at byte %d", what, r.off)
	}
}
