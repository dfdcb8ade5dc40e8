package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// ErrMalformed is wrapped by every decoding error: the bytes are not a message of this
// protocol. A connection that carries one cannot be trusted to stay in sync and should
// be closed.
var ErrMalformed = errors.New("wire: malformed message")

// Field counts of each message array as this version writes them. Decoders require at
// least these many and skip any more; a call may have callFieldsMin (what the first
// version wrote), the fields after it read as zero.
const (
	requestFields  = 3
	callFields     = 11
	callFieldsMin  = 10
	responseFields = 4
	errorFields    = 5
	topologyFields = 4
	memberFields   = 2
)

// maxSkipDepth bounds the nesting of unknown trailing fields a decoder skips, so hostile
// input cannot recurse the decoder into a huge stack.
const maxSkipDepth = 8

// AppendRequest appends the encoding of r to dst and returns the extended slice.
func AppendRequest(dst []byte, r *Request) []byte {
	e := newEncoder(dst)
	e.arrayLen(requestFields)
	e.uint(r.StreamID)
	e.uint(uint64(r.Op))
	if r.Op == OpCall {
		c := &r.Call
		e.arrayLen(callFields)
		e.str(c.Class)
		e.bytes(c.ID[:])
		e.str(c.Name)
		e.str(c.Method)
		e.bytes(c.Args)
		e.boolean(c.JSON)
		if c.Client == ([ClientIDLen]byte{}) {
			e.nil()
		} else {
			e.bytes(c.Client[:])
		}
		e.uint(c.Seq)
		e.uint(c.Ack)
		e.uint(c.TimeoutMillis)
		e.boolean(c.FirstAttempt)
	} else {
		e.nil()
	}
	return e.finish()
}

// AppendResponse appends the encoding of r to dst and returns the extended slice.
// Leaders are written in group order, so equal responses encode to equal bytes.
func AppendResponse(dst []byte, r *Response) []byte {
	e := newEncoder(dst)
	e.arrayLen(responseFields)
	e.uint(r.StreamID)
	if r.Result == nil {
		e.nil()
	} else {
		e.bytes(r.Result)
	}
	if r.Err == nil {
		e.nil()
	} else {
		e.arrayLen(errorFields)
		e.uint(uint64(r.Err.Code))
		e.str(r.Err.Message)
		e.uint(r.Err.Group)
		e.str(r.Err.LeaderID)
		e.str(r.Err.LeaderAddr)
	}
	if t := r.Topology; t == nil {
		e.nil()
	} else {
		e.arrayLen(topologyFields)
		e.str(t.ClusterID)
		e.arrayLen(len(t.Slots))
		for _, g := range t.Slots {
			e.uint(g)
		}
		e.arrayLen(len(t.Members))
		for _, m := range t.Members {
			e.arrayLen(memberFields)
			e.str(m.ID)
			e.str(m.Addr)
		}
		groups := make([]uint64, 0, len(t.Leaders))
		for g := range t.Leaders {
			groups = append(groups, g)
		}
		sort.Slice(groups, func(i, j int) bool { return groups[i] < groups[j] })
		e.mapLen(len(groups))
		for _, g := range groups {
			e.uint(g)
			e.str(t.Leaders[g])
		}
	}
	return e.finish()
}

// DecodeRequest decodes one request. An error wraps ErrMalformed. A request with an Op
// this version does not know decodes successfully with its body skipped, so the caller
// can answer it with CodeBadRequest.
func DecodeRequest(b []byte) (*Request, error) {
	d := newDecoder(b)
	defer d.release()
	var r Request
	n, err := d.arrayLen(requestFields, "request")
	if err != nil {
		return nil, err
	}
	if r.StreamID, err = d.uint("stream ID"); err != nil {
		return nil, err
	}
	op, err := d.uint("op")
	if err != nil {
		return nil, err
	}
	if op > 0xff {
		return nil, malformed("op %d out of range", op)
	}
	r.Op = Op(op)
	if r.Op == OpCall {
		if err := d.call(&r.Call); err != nil {
			return nil, err
		}
	} else if err := d.skip(0); err != nil {
		return nil, err
	}
	if err := d.skipN(n-requestFields, 0); err != nil {
		return nil, err
	}
	return &r, d.end()
}

func (d *decoder) call(c *Call) error {
	n, err := d.arrayLen(callFieldsMin, "call")
	if err != nil {
		return err
	}
	if c.Class, err = d.str("class"); err != nil {
		return err
	}
	if err := d.fixed(c.ID[:], false, "object ID"); err != nil {
		return err
	}
	if c.Name, err = d.str("name"); err != nil {
		return err
	}
	if c.Method, err = d.str("method"); err != nil {
		return err
	}
	if c.Args, err = d.bytes("args"); err != nil {
		return err
	}
	if c.JSON, err = d.boolean("json"); err != nil {
		return err
	}
	if err := d.fixed(c.Client[:], true, "client ID"); err != nil {
		return err
	}
	if c.Seq, err = d.uint("seq"); err != nil {
		return err
	}
	if c.Ack, err = d.uint("ack"); err != nil {
		return err
	}
	if c.TimeoutMillis, err = d.uint("timeout"); err != nil {
		return err
	}
	if n == callFieldsMin {
		return nil
	}
	if c.FirstAttempt, err = d.boolean("first attempt"); err != nil {
		return err
	}
	return d.skipN(n-callFields, 0)
}

// DecodeResponse decodes one response. An error wraps ErrMalformed.
func DecodeResponse(b []byte) (*Response, error) {
	d := newDecoder(b)
	defer d.release()
	var r Response
	n, err := d.arrayLen(responseFields, "response")
	if err != nil {
		return nil, err
	}
	if r.StreamID, err = d.uint("stream ID"); err != nil {
		return nil, err
	}
	if r.Result, err = d.bytes("result"); err != nil {
		return nil, err
	}
	if none, err := d.isNil(); err != nil {
		return nil, err
	} else if !none {
		if r.Err, err = d.errorBody(); err != nil {
			return nil, err
		}
	}
	if none, err := d.isNil(); err != nil {
		return nil, err
	} else if !none {
		if r.Topology, err = d.topology(); err != nil {
			return nil, err
		}
	}
	if err := d.skipN(n-responseFields, 0); err != nil {
		return nil, err
	}
	return &r, d.end()
}

func (d *decoder) errorBody() (*Error, error) {
	n, err := d.arrayLen(errorFields, "error")
	if err != nil {
		return nil, err
	}
	var e Error
	code, err := d.uint("error code")
	if err != nil {
		return nil, err
	}
	if code > 0xffff {
		return nil, malformed("error code %d out of range", code)
	}
	e.Code = Code(code)
	if e.Message, err = d.str("error message"); err != nil {
		return nil, err
	}
	if e.Group, err = d.uint("error group"); err != nil {
		return nil, err
	}
	if e.LeaderID, err = d.str("leader ID"); err != nil {
		return nil, err
	}
	if e.LeaderAddr, err = d.str("leader address"); err != nil {
		return nil, err
	}
	return &e, d.skipN(n-errorFields, 0)
}

func (d *decoder) topology() (*Topology, error) {
	n, err := d.arrayLen(topologyFields, "topology")
	if err != nil {
		return nil, err
	}
	var t Topology
	if t.ClusterID, err = d.str("cluster ID"); err != nil {
		return nil, err
	}
	slots, err := d.arrayLen(0, "slots")
	if err != nil {
		return nil, err
	}
	t.Slots = make([]uint64, slots)
	for i := range t.Slots {
		if t.Slots[i], err = d.uint("slot"); err != nil {
			return nil, err
		}
	}
	members, err := d.arrayLen(0, "members")
	if err != nil {
		return nil, err
	}
	t.Members = make([]Member, members)
	for i := range t.Members {
		m := &t.Members[i]
		k, err := d.arrayLen(memberFields, "member")
		if err != nil {
			return nil, err
		}
		if m.ID, err = d.str("member ID"); err != nil {
			return nil, err
		}
		if m.Addr, err = d.str("member address"); err != nil {
			return nil, err
		}
		if err := d.skipN(k-memberFields, 0); err != nil {
			return nil, err
		}
	}
	leaders, err := d.mapLen("leaders")
	if err != nil {
		return nil, err
	}
	t.Leaders = make(map[uint64]string, leaders)
	for range leaders {
		g, err := d.uint("leader group")
		if err != nil {
			return nil, err
		}
		if _, dup := t.Leaders[g]; dup {
			return nil, malformed("group %d appears twice in leaders", g)
		}
		if t.Leaders[g], err = d.str("leader"); err != nil {
			return nil, err
		}
	}
	return &t, d.skipN(n-topologyFields, 0)
}

// encoder appends msgpack to a byte slice. Writing to memory cannot fail, so its methods
// return nothing; an error from msgpack would mean a broken invariant of this file.
// Encoders are pooled: one is used for every message each way.
type encoder struct {
	buf appender
	enc *msgpack.Encoder
}

type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) { a.b = append(a.b, p...); return len(p), nil }
func (a *appender) WriteByte(c byte) error      { a.b = append(a.b, c); return nil }

var encoders = sync.Pool{New: func() any {
	e := &encoder{enc: msgpack.NewEncoder(nil)}
	e.enc.Reset(&e.buf)
	return e
}}

func newEncoder(dst []byte) *encoder {
	e := encoders.Get().(*encoder)
	e.buf.b = dst
	return e
}

// finish returns the encoded bytes and puts e back in the pool.
func (e *encoder) finish() []byte {
	b := e.buf.b
	e.buf.b = nil
	encoders.Put(e)
	return b
}

func (e *encoder) check(err error) {
	if err != nil {
		panic(fmt.Sprintf("wire: msgpack encoding into memory failed (invariant: appending cannot fail): %v", err))
	}
}

func (e *encoder) arrayLen(n int) { e.check(e.enc.EncodeArrayLen(n)) }
func (e *encoder) mapLen(n int)   { e.check(e.enc.EncodeMapLen(n)) }
func (e *encoder) uint(v uint64)  { e.check(e.enc.EncodeUint(v)) }
func (e *encoder) str(s string)   { e.check(e.enc.EncodeString(s)) }
func (e *encoder) bytes(b []byte) { e.check(e.enc.EncodeBytes(b)) }
func (e *encoder) boolean(v bool) { e.check(e.enc.EncodeBool(v)) }
func (e *encoder) nil()           { e.check(e.enc.EncodeNil()) }

// decoder reads msgpack from a byte slice. It drives msgpack.Decoder for scalars but
// reads lengths itself and checks each against the bytes left, because msgpack allocates
// a declared length before reading it. Strings and byte strings are sliced out of the
// input (b) at the reader's position rather than read through the decoder, so each costs
// one copy, the one the decoded message owns. Decoders are pooled.
type decoder struct {
	b   []byte
	r   bytes.Reader
	dec *msgpack.Decoder
}

var decoders = sync.Pool{New: func() any {
	d := &decoder{dec: msgpack.NewDecoder(nil)}
	// A *bytes.Reader is an io.ByteScanner, so the msgpack decoder reads it directly,
	// without buffering ahead: d.r's position is always the decoder's.
	d.dec.Reset(&d.r)
	return d
}}

func newDecoder(b []byte) *decoder {
	d := decoders.Get().(*decoder)
	d.b = b
	d.r.Reset(b)
	return d
}

// release puts d back in the pool; it must not keep the input alive.
func (d *decoder) release() {
	d.b = nil
	d.r.Reset(nil)
	decoders.Put(d)
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func (d *decoder) fail(what string, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
}

// end rejects trailing bytes after the message: one frame holds one message.
func (d *decoder) end() error {
	if n := d.r.Len(); n > 0 {
		return malformed("%d trailing bytes", n)
	}
	return nil
}

// arrayLen reads an array header of at least min elements. Each element takes at least
// one byte, so a count above the bytes left is malformed and never allocated.
func (d *decoder) arrayLen(min int, what string) (int, error) {
	n, err := d.dec.DecodeArrayLen()
	if err != nil {
		return 0, d.fail(what, err)
	}
	if n < min {
		return 0, malformed("%s: %d fields, want at least %d", what, n, min)
	}
	if n > d.r.Len() {
		return 0, malformed("%s: %d elements in %d bytes", what, n, d.r.Len())
	}
	return n, nil
}

// mapLen reads a map header; each entry takes at least two bytes.
func (d *decoder) mapLen(what string) (int, error) {
	n, err := d.dec.DecodeMapLen()
	if err != nil {
		return 0, d.fail(what, err)
	}
	if n < 0 {
		return 0, nil
	}
	if n > d.r.Len()/2 {
		return 0, malformed("%s: %d entries in %d bytes", what, n, d.r.Len())
	}
	return n, nil
}

func (d *decoder) uint(what string) (uint64, error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return 0, d.fail(what, err)
	}
	// DecodeUint64 would also accept nil and wrap negative integers around; neither is
	// something an encoder of this protocol writes.
	switch {
	case c <= msgpcode.PosFixedNumHigh:
	case c == msgpcode.Uint8, c == msgpcode.Uint16, c == msgpcode.Uint32, c == msgpcode.Uint64:
	default:
		return 0, malformed("%s: not an unsigned integer (code %#x)", what, c)
	}
	v, err := d.dec.DecodeUint64()
	if err != nil {
		return 0, d.fail(what, err)
	}
	return v, nil
}

func (d *decoder) boolean(what string) (bool, error) {
	c, err := d.r.ReadByte()
	switch {
	case err != nil:
		return false, d.fail(what, err)
	case c == msgpcode.True:
		return true, nil
	case c == msgpcode.False:
		return false, nil
	}
	return false, malformed("%s: not a boolean (code %#x)", what, c)
}

func (d *decoder) isNil() (bool, error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return false, d.fail("field", err)
	}
	if c != msgpcode.Nil {
		return false, nil
	}
	_, _ = d.r.ReadByte()
	return true, nil
}

// raw reads a str or bin (or nil, reported as isNil) with its length checked against the
// input. The bytes alias the input: callers copy what they keep.
func (d *decoder) raw(what string) (b []byte, isNil bool, err error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return nil, false, d.fail(what, err)
	}
	if !msgpcode.IsFixedString(c) && c != msgpcode.Nil &&
		(c < msgpcode.Bin8 || c > msgpcode.Bin32) && (c < msgpcode.Str8 || c > msgpcode.Str32) {
		return nil, false, malformed("%s: not a string or bytes (code %#x)", what, c)
	}
	n, err := d.dec.DecodeBytesLen()
	if err != nil {
		return nil, false, d.fail(what, err)
	}
	if n < 0 {
		return nil, true, nil
	}
	if n > d.r.Len() {
		return nil, false, malformed("%s: %d bytes declared, %d left", what, n, d.r.Len())
	}
	off := len(d.b) - d.r.Len()
	_, _ = d.r.Seek(int64(n), io.SeekCurrent) // cannot fall short: checked above
	return d.b[off : off+n : off+n], false, nil
}

func (d *decoder) str(what string) (string, error) {
	b, _, err := d.raw(what)
	return string(b), err
}

// bytes reads a byte string into memory of its own; nil stays nil, empty stays empty.
func (d *decoder) bytes(what string) ([]byte, error) {
	b, isNil, err := d.raw(what)
	if err != nil || isNil {
		return nil, err
	}
	return append([]byte{}, b...), nil
}

// fixed reads exactly len(dst) bytes; nil is accepted (as zeros) only when optional.
func (d *decoder) fixed(dst []byte, optional bool, what string) error {
	b, isNil, err := d.raw(what)
	switch {
	case err != nil:
		return err
	case isNil && optional:
		clear(dst)
		return nil
	case len(b) != len(dst):
		return malformed("%s: %d bytes, want %d", what, len(b), len(dst))
	}
	copy(dst, b)
	return nil
}

func (d *decoder) skipN(n, depth int) error {
	for range n {
		if err := d.skip(depth); err != nil {
			return err
		}
	}
	return nil
}

// skip passes over one value of a field this version does not know, without
// allocating for it and without recursing deeper than maxSkipDepth.
func (d *decoder) skip(depth int) error {
	if depth > maxSkipDepth {
		return malformed("unknown field nested deeper than %d", maxSkipDepth)
	}
	c, err := d.dec.PeekCode()
	if err != nil {
		return d.fail("unknown field", err)
	}
	switch {
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err := d.arrayLen(0, "unknown field")
		if err != nil {
			return err
		}
		return d.skipN(n, depth+1)
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		n, err := d.mapLen("unknown field")
		if err != nil {
			return err
		}
		return d.skipN(2*n, depth+1)
	case msgpcode.IsFixedString(c) || c >= msgpcode.Bin8 && c <= msgpcode.Bin32 ||
		c >= msgpcode.Str8 && c <= msgpcode.Str32:
		n, err := d.dec.DecodeBytesLen()
		if err != nil {
			return d.fail("unknown field", err)
		}
		if n > d.r.Len() {
			return malformed("unknown field: %d bytes declared, %d left", n, d.r.Len())
		}
		_, _ = d.r.Seek(int64(n), io.SeekCurrent)
		return nil
	case c >= msgpcode.FixExt1 && c <= msgpcode.FixExt16 || c >= msgpcode.Ext8 && c <= msgpcode.Ext32:
		return malformed("unknown field: msgpack extension types are not used by this protocol")
	}
	// Scalars: fixed size, at most nine bytes.
	if err := d.dec.Skip(); err != nil {
		return d.fail("unknown field", err)
	}
	return nil
}
