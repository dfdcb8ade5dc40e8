package fsm

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/duro-db/duro/internal/bounded"
)

// The decoder below reads exactly the msgpack shape of Command and Op. It is written out
// rather than left to msgpack.Unmarshal for three reasons:
//   - it runs on every applied entry, and slicing byte fields out of the log entry instead of
//     copying them makes decoding allocation-free (apart from the Ops slice, which the apply
//     path reuses);
//   - msgpack v5.4.1 sizes a decoded slice of structs by the length the input declares, so
//     a five-byte entry claiming 2^32 ops would allocate hundreds of gigabytes;
//   - it is strict: unknown or repeated fields, wrong types and trailing bytes are errors, so
//     one byte string has exactly one meaning on every replica.
//
// It accepts every integer width and nil for absent byte slices and arrays, as msgpack
// encoders may choose any of them.

// The bounds themselves (no read past the input, no length beyond what remains) are
// internal/bounded's; the decoder adds msgpack's codes and widths.
type decoder struct{ r bounded.Reader }

func newDecoder(b []byte) decoder { return decoder{r: bounded.NewReader(b, ErrBadCommand)} }

func errDecode(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadCommand, fmt.Sprintf(format, args...))
}

func (d *decoder) remaining() int { return d.r.Len() }

// at is the offset of the byte last read, for errors.
func (d *decoder) at() int { return d.r.Offset() - 1 }

func (d *decoder) code() (byte, error) {
	c := d.r.Byte("code")
	return c, d.r.Err()
}

// take returns the next n bytes, aliasing the input; its capacity is cut to n so that an
// append by the caller can never overwrite the bytes that follow.
func (d *decoder) take(n int) ([]byte, error) {
	s := d.r.Take(n, "length")
	return s, d.r.Err()
}

// length reads the big-endian length of width 1, 2 or 4 bytes that follows a code.
func (d *decoder) length(width int) (int, error) {
	s, err := d.take(width)
	if err != nil {
		return 0, err
	}
	switch width {
	case 1:
		return int(s[0]), nil
	case 2:
		return int(binary.BigEndian.Uint16(s)), nil
	default:
		n := binary.BigEndian.Uint32(s)
		if uint64(n) > uint64(math.MaxInt) {
			return 0, errDecode("length %d too large", n)
		}
		return int(n), nil
	}
}

// mapLen reads a map header.
func (d *decoder) mapLen() (int, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	var n int
	switch {
	case msgpcode.IsFixedMap(c):
		n = int(c & msgpcode.FixedMapMask)
	case c == msgpcode.Map16:
		n, err = d.length(2)
	case c == msgpcode.Map32:
		n, err = d.length(4)
	default:
		return 0, errDecode("want a map, got code 0x%02x at byte %d", c, d.at())
	}
	if err != nil {
		return 0, err
	}
	// Each entry takes at least two bytes: a cheap bound that stops absurd headers.
	if n > d.remaining()/2 {
		return 0, errDecode("map of %d entries overruns the input", n)
	}
	return n, nil
}

// arrayLen reads an array header; nil reads as an empty array.
func (d *decoder) arrayLen() (int, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	var n int
	switch {
	case c == msgpcode.Nil:
		return 0, nil
	case msgpcode.IsFixedArray(c):
		n = int(c & msgpcode.FixedArrayMask)
	case c == msgpcode.Array16:
		n, err = d.length(2)
	case c == msgpcode.Array32:
		n, err = d.length(4)
	default:
		return 0, errDecode("want an array, got code 0x%02x at byte %d", c, d.at())
	}
	if err != nil {
		return 0, err
	}
	if n > d.remaining() {
		return 0, errDecode("array of %d elements overruns the input", n)
	}
	return n, nil
}

// str reads a string (a field name), aliasing the input.
func (d *decoder) str() ([]byte, error) {
	c, err := d.code()
	if err != nil {
		return nil, err
	}
	var n int
	switch {
	case msgpcode.IsFixedString(c):
		n = int(c & msgpcode.FixedStrMask)
	case c == msgpcode.Str8:
		n, err = d.length(1)
	case c == msgpcode.Str16:
		n, err = d.length(2)
	case c == msgpcode.Str32:
		n, err = d.length(4)
	default:
		return nil, errDecode("want a field name, got code 0x%02x at byte %d", c, d.at())
	}
	if err != nil {
		return nil, err
	}
	return d.take(n)
}

// bin reads a byte string, aliasing the input; nil reads as a nil slice.
func (d *decoder) bin() ([]byte, error) {
	c, err := d.code()
	if err != nil {
		return nil, err
	}
	var n int
	switch c {
	case msgpcode.Nil:
		return nil, nil
	case msgpcode.Bin8:
		n, err = d.length(1)
	case msgpcode.Bin16:
		n, err = d.length(2)
	case msgpcode.Bin32:
		n, err = d.length(4)
	default:
		return nil, errDecode("want bytes, got code 0x%02x at byte %d", c, d.at())
	}
	if err != nil {
		return nil, err
	}
	return d.take(n)
}

// integer reads any msgpack integer as its sign and magnitude.
func (d *decoder) integer() (neg bool, mag uint64, err error) {
	c, err := d.code()
	if err != nil {
		return false, 0, err
	}
	if c <= msgpcode.PosFixedNumHigh {
		return false, uint64(c), nil
	}
	if c >= msgpcode.NegFixedNumLow {
		return true, uint64(-int64(int8(c))), nil
	}
	var width int
	signed := false
	switch c {
	case msgpcode.Uint8:
		width = 1
	case msgpcode.Uint16:
		width = 2
	case msgpcode.Uint32:
		width = 4
	case msgpcode.Uint64:
		width = 8
	case msgpcode.Int8:
		width, signed = 1, true
	case msgpcode.Int16:
		width, signed = 2, true
	case msgpcode.Int32:
		width, signed = 4, true
	case msgpcode.Int64:
		width, signed = 8, true
	default:
		return false, 0, errDecode("want an integer, got code 0x%02x at byte %d", c, d.at())
	}
	s, err := d.take(width)
	if err != nil {
		return false, 0, err
	}
	var u uint64
	for _, x := range s {
		u = u<<8 | uint64(x)
	}
	if !signed {
		return false, u, nil
	}
	// Sign-extend the two's-complement value of the given width.
	shift := 64 - 8*uint(width)
	v := int64(u<<shift) >> shift
	if v < 0 {
		return true, uint64(-(v + 1)) + 1, nil
	}
	return false, uint64(v), nil
}

func (d *decoder) unsigned(limit uint64) (uint64, error) {
	neg, mag, err := d.integer()
	if err != nil {
		return 0, err
	}
	if neg && mag != 0 {
		return 0, errDecode("negative value where unsigned expected")
	}
	if mag > limit {
		return 0, errDecode("value %d out of range", mag)
	}
	return mag, nil
}

func (d *decoder) signed() (int64, error) {
	neg, mag, err := d.integer()
	if err != nil {
		return 0, err
	}
	if !neg {
		if mag > math.MaxInt64 {
			return 0, errDecode("value %d out of int64 range", mag)
		}
		return int64(mag), nil
	}
	if mag > 1<<63 {
		return 0, errDecode("value -%d out of int64 range", mag)
	}
	return int64(-mag), nil // -(1<<63) wraps to MinInt64, as it should
}

// Field bits, to reject a field given twice.
const (
	fObject = 1 << iota
	fOps
	fClient
	fSeq
	fAck
	fResult
	fTime
	fVersion
)

// decodeCommand decodes b into c, reusing c.Ops' backing array. It does not validate.
func decodeCommand(b []byte, c *Command) error {
	ops := c.Ops[:0]
	*c = Command{}
	d := newDecoder(b)
	n, err := d.mapLen()
	if err != nil {
		return err
	}
	seen := 0
	for range n {
		name, err := d.str()
		if err != nil {
			return err
		}
		var bit int
		switch string(name) {
		case "o":
			bit = fObject
			c.Object, err = d.bin()
		case "p":
			bit = fOps
			ops, err = d.ops(ops)
			c.Ops = ops
		case "c":
			bit = fClient
			c.Client, err = d.bin()
		case "s":
			bit = fSeq
			c.Seq, err = d.unsigned(math.MaxUint64)
		case "a":
			bit = fAck
			c.Ack, err = d.unsigned(math.MaxUint64)
		case "r":
			bit = fResult
			c.Result, err = d.bin()
		case "t":
			bit = fTime
			c.Time, err = d.signed()
		case "v":
			bit = fVersion
			c.Version, err = d.unsigned(math.MaxUint64)
		default:
			return errDecode("unknown command field %q", name)
		}
		if err != nil {
			return err
		}
		if seen&bit != 0 {
			return errDecode("command field %q given twice", name)
		}
		seen |= bit
	}
	if d.remaining() != 0 {
		return errDecode("%d trailing bytes", d.remaining())
	}
	if len(c.Ops) == 0 {
		// Keep the reusable backing array out of the decoded value: an empty Ops is nil.
		c.Ops = nil
	}
	return nil
}

func (d *decoder) ops(ops []Op) ([]Op, error) {
	n, err := d.arrayLen()
	if err != nil {
		return nil, err
	}
	if n > MaxOps {
		return nil, fmt.Errorf("%w: %d > %d", ErrTooManyOps, n, MaxOps)
	}
	if cap(ops) < n {
		ops = make([]Op, n)
	}
	ops = ops[:n]
	for i := range ops {
		if err := d.op(&ops[i]); err != nil {
			return nil, fmt.Errorf("op %d: %w", i, err)
		}
	}
	return ops, nil
}

const (
	fKind = 1 << iota
	fKey
	fValue
	fAlarm
)

func (d *decoder) op(o *Op) error {
	*o = Op{}
	n, err := d.mapLen()
	if err != nil {
		return err
	}
	seen := 0
	for range n {
		name, err := d.str()
		if err != nil {
			return err
		}
		var bit int
		switch string(name) {
		case "k":
			bit = fKind
			var k uint64
			k, err = d.unsigned(math.MaxUint8)
			o.Kind = OpKind(k)
		case "y":
			bit = fKey
			o.Key, err = d.bin()
		case "v":
			bit = fValue
			o.Value, err = d.bin()
		case "a":
			bit = fAlarm
			o.Alarm, err = d.signed()
		default:
			return errDecode("unknown op field %q", name)
		}
		if err != nil {
			return err
		}
		if seen&bit != 0 {
			return errDecode("op field %q given twice", name)
		}
		seen |= bit
	}
	return nil
}
