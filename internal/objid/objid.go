package objid

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
)

// Len is the length of an ID in bytes; StringLen the length of its printed form.
const (
	Len       = 32
	StringLen = 2 * Len
)

// The kinds of ID, stored in byte 0.
const (
	KindName   byte = 1 // derived from a name by FromName
	KindUnique byte = 2 // random, from NewUnique
)

const (
	bodyEnd = 28 // bytes [0, bodyEnd) are covered by the checksum stored in [bodyEnd, Len)
)

// Errors returned by Parse and Check. Both are wrapped with detail; match with errors.Is.
var (
	// ErrInvalidID means the text or bytes cannot be an ID of any class: wrong length,
	// characters other than lowercase hex digits, or an unknown kind byte.
	ErrInvalidID = errors.New("invalid object ID")
	// ErrWrongClass means the ID is well formed but its checksum does not match the class:
	// it was minted for another class (or corrupted).
	ErrWrongClass = errors.New("object ID belongs to another class")
)

// ID identifies one durable object. The zero ID is not valid for any class.
type ID [Len]byte

// FromName returns the ID of the object called name in class. It is deterministic: the
// same class and name give the same ID on every node and client, forever.
func FromName(class, name string) ID {
	var buf [hashInputBuf]byte
	b := append(buf[:0], "duro-name"...)
	b = appendString(b, class)
	b = append(b, name...)
	sum := sha256.Sum256(b)

	var id ID
	id[0] = KindName
	copy(id[1:bodyEnd], sum[:])
	id.seal(class)
	return id
}

// NewUnique returns a new random ID for class, from crypto/rand (216 random bits).
func NewUnique(class string) ID {
	var id ID
	id[0] = KindUnique
	// crypto/rand.Read never returns an error (it crashes the program on failure).
	_, _ = rand.Read(id[1:bodyEnd])
	id.seal(class)
	return id
}

// Parse parses the 64-lowercase-hex-digit form of an ID of class. It returns an error
// wrapping ErrInvalidID for anything malformed, or ErrWrongClass when s is a well-formed
// ID minted for another class.
func Parse(class, s string) (ID, error) {
	var id ID
	if err := id.UnmarshalText([]byte(s)); err != nil {
		return ID{}, err
	}
	if err := id.Check(class); err != nil {
		return ID{}, err
	}
	return id, nil
}

// Check reports whether id is a well-formed ID of class: nil, or an error wrapping
// ErrInvalidID or ErrWrongClass. Use it on IDs that arrive as bytes.
func (id ID) Check(class string) error {
	if id[0] != KindName && id[0] != KindUnique {
		return fmt.Errorf("%w: unknown kind %d", ErrInvalidID, id[0])
	}
	want := checksum(class, id[:bodyEnd])
	if [Len - bodyEnd]byte(id[bodyEnd:]) != want {
		return fmt.Errorf("%w: %s is not an ID of class %q", ErrWrongClass, id, class)
	}
	return nil
}

// Kind returns KindName or KindUnique (or, for an ID that fails Check, anything).
func (id ID) Kind() byte { return id[0] }

// IsZero reports whether id is the zero value.
func (id ID) IsZero() bool { return id == ID{} }

// String returns the 64 lowercase hex digits of id.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Slot returns the slot of id among slots slots, uniform over [0, slots).
//
// Definition, fixed forever (clusters persist the slot of every object implicitly through
// their placement tables): let x be bytes 1..8 of id read as a big-endian uint64; the slot
// is floor(x × slots / 2⁶⁴), computed exactly with a 128-bit product. Bytes 1..8 are
// sha256 output (KindName) or crypto/rand output (KindUnique), so x is uniform and the
// slot's bias is below slots/2⁶⁴. Slot panics if slots ≤ 0: a cluster always has slots.
func (id ID) Slot(slots int) int {
	if slots <= 0 {
		panic(fmt.Sprintf("objid: Slot called with %d slots; the slot count must be positive", slots))
	}
	x := binary.BigEndian.Uint64(id[1:9])
	hi, _ := bits.Mul64(x, uint64(slots))
	return int(hi)
}

// seal writes the checksum of class over id[0:bodyEnd] into id[bodyEnd:].
func (id *ID) seal(class string) {
	sum := checksum(class, id[:bodyEnd])
	copy(id[bodyEnd:], sum[:])
}

func checksum(class string, body []byte) [Len - bodyEnd]byte {
	var buf [hashInputBuf]byte
	b := append(buf[:0], "duro-id"...)
	b = appendString(b, class)
	b = append(b, body...)
	sum := sha256.Sum256(b)
	return [Len - bodyEnd]byte(sum[:Len-bodyEnd])
}

// hashInputBuf is the stack buffer the hash inputs are built in: every ID is checked on
// each call, on the client and on the node, and typical class and object names fit, so
// hashing allocates nothing (longer inputs move to the heap, with the same result).
const hashInputBuf = 128

// appendString appends s length-prefixed, so ("ab", "c") and ("a", "bc") hash differently.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// MarshalText encodes id as its 64 hex digits, so IDs are strings in JSON and logs.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes 64 lowercase hex digits, so IDs stored in structs round-trip
// through JSON. It checks the format and kind only: it cannot know the class, so an ID
// from untrusted input must still pass Check (or come from Parse).
func (id *ID) UnmarshalText(b []byte) error {
	if len(b) != StringLen {
		return fmt.Errorf("%w: %d characters, want %d", ErrInvalidID, len(b), StringLen)
	}
	var v ID
	for i, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("%w: character %d is %q, want a lowercase hex digit", ErrInvalidID, i, c)
		}
	}
	if _, err := hex.Decode(v[:], b); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidID, err)
	}
	return v.setChecked(id)
}

// MarshalBinary returns the 32 bytes of id (msgpack stores IDs this way).
func (id ID) MarshalBinary() ([]byte, error) { return id[:], nil }

// UnmarshalBinary decodes 32 bytes, checking the format and kind only (see UnmarshalText).
func (id *ID) UnmarshalBinary(b []byte) error {
	if len(b) != Len {
		return fmt.Errorf("%w: %d bytes, want %d", ErrInvalidID, len(b), Len)
	}
	return ID(b).setChecked(id)
}

// setChecked stores v in *dst if its kind is valid.
func (v ID) setChecked(dst *ID) error {
	if v[0] != KindName && v[0] != KindUnique {
		return fmt.Errorf("%w: unknown kind %d", ErrInvalidID, v[0])
	}
	*dst = v
	return nil
}
