package fsm

import (
	"encoding/binary"
	"math"

	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// The encoder below writes exactly the bytes msgpack.Marshal with compact integers writes
// for a Command (a map of the non-empty fields, in struct order; TestEncodeMatchesLibrary
// and FuzzDecodeCommand hold it to that). It is written out because every proposal is
// encoded on the leader's hot path, where the reflective encoder was most of
// raftgroup.Group.Submit's CPU (field lookups, omitempty checks, an allocation per
// omitted-field list), and because the shape is fixed and small: decode.go reads the same.

// appendCommand appends the encoding of c, which must be valid, to dst.
func appendCommand(dst []byte, c *Command) []byte {
	n := 2 // "o" and "t" are always written
	for _, present := range [...]bool{len(c.Ops) > 0, len(c.Client) > 0, c.Seq != 0, c.Ack != 0, len(c.Result) > 0, c.Version != 0} {
		if present {
			n++
		}
	}
	dst = appendMapLen(dst, n)
	dst = appendBin(appendKey(dst, 'o'), c.Object)
	if len(c.Ops) > 0 {
		dst = appendArrayLen(appendKey(dst, 'p'), len(c.Ops))
		for i := range c.Ops {
			dst = appendOp(dst, &c.Ops[i])
		}
	}
	if len(c.Client) > 0 {
		dst = appendBin(appendKey(dst, 'c'), c.Client)
	}
	if c.Seq != 0 {
		dst = appendUint(appendKey(dst, 's'), c.Seq)
	}
	if c.Ack != 0 {
		dst = appendUint(appendKey(dst, 'a'), c.Ack)
	}
	if len(c.Result) > 0 {
		dst = appendBin(appendKey(dst, 'r'), c.Result)
	}
	dst = appendInt(appendKey(dst, 't'), c.Time)
	if c.Version != 0 {
		dst = appendUint(appendKey(dst, 'v'), c.Version)
	}
	return dst
}

func appendOp(dst []byte, o *Op) []byte {
	n := 1 // "k" is always written
	for _, present := range [...]bool{len(o.Key) > 0, len(o.Value) > 0, o.Alarm != 0} {
		if present {
			n++
		}
	}
	dst = appendMapLen(dst, n)
	dst = appendUint(appendKey(dst, 'k'), uint64(o.Kind))
	if len(o.Key) > 0 {
		dst = appendBin(appendKey(dst, 'y'), o.Key)
	}
	if len(o.Value) > 0 {
		dst = appendBin(appendKey(dst, 'v'), o.Value)
	}
	if o.Alarm != 0 {
		dst = appendInt(appendKey(dst, 'a'), o.Alarm)
	}
	return dst
}

// appendKey appends a one-letter field name (a fixstr).
func appendKey(dst []byte, name byte) []byte {
	return append(dst, msgpcode.FixedStrLow|1, name)
}

func appendMapLen(dst []byte, n int) []byte {
	// A Command has at most 8 fields and an Op 4: always a fixmap.
	return append(dst, msgpcode.FixedMapLow|byte(n))
}

func appendArrayLen(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, msgpcode.FixedArrayLow|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, msgpcode.Array16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, msgpcode.Array32), uint32(n))
}

// appendBin appends b as bin 8/16/32, or nil for a nil slice (as the library does).
func appendBin(dst, b []byte) []byte {
	switch {
	case b == nil:
		return append(dst, msgpcode.Nil)
	case len(b) < 256:
		dst = append(dst, msgpcode.Bin8, byte(len(b)))
	case len(b) <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, msgpcode.Bin16), uint16(len(b)))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, msgpcode.Bin32), uint32(len(b)))
	}
	return append(dst, b...)
}

// appendUint appends v in the fewest bytes (msgpack's compact integers).
func appendUint(dst []byte, v uint64) []byte {
	switch {
	case v <= math.MaxInt8:
		return append(dst, byte(v))
	case v <= math.MaxUint8:
		return append(dst, msgpcode.Uint8, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, msgpcode.Uint16), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, msgpcode.Uint32), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, msgpcode.Uint64), v)
}

// appendInt appends v in the fewest bytes; non-negative values as unsigned, as the
// library's compact integers do.
func appendInt(dst []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendUint(dst, uint64(v))
	case v >= int64(int8(msgpcode.NegFixedNumLow)):
		return append(dst, byte(v))
	case v >= math.MinInt8:
		return append(dst, msgpcode.Int8, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, msgpcode.Int16), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, msgpcode.Int32), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, msgpcode.Int64), uint64(v))
}
