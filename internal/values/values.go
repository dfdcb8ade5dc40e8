// Package values is the one encoder and decoder of user values (call arguments, results, stored
// values) shared by the node (objects) and the Go SDK (client): msgpack with compact
// integers, naming struct fields by their `json` tags, so that users write one set of
// tags for msgpack and JSON (the CLI). Both sides must encode alike; this package is
// where that is decided.
package values

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// StructTag is the struct tag msgpack reads field names from, encoding and decoding.
const StructTag = "json"

// Marshal encodes v. The encoder and its buffer are pooled; the one allocation left is
// the result, sized exactly.
func Marshal(v any) ([]byte, error) {
	m := marshalers.Get().(*marshaler)
	m.buf.Reset()
	if err := m.enc.Encode(v); err != nil {
		// Not put back: a user's encoder may have left it in any state.
		return nil, err
	}
	b := bytes.Clone(m.buf.Bytes())
	if m.buf.Cap() <= maxPooledBuffer {
		marshalers.Put(m)
	}
	return b, nil
}

type marshaler struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var marshalers = sync.Pool{New: func() any {
	m := &marshaler{enc: msgpack.NewEncoder(nil)}
	m.enc.Reset(&m.buf) // Reset clears the options: set them after it.
	m.enc.SetCustomStructTag(StructTag)
	m.enc.UseCompactInts(true)
	return m
}}

// maxPooledBuffer keeps the buffers of large values out of the pool.
const maxPooledBuffer = 64 << 10

// Unmarshal decodes the value at the start of b into out, rejecting struct fields out
// does not have if strict, and returns how many bytes of b follow the value (the caller
// decides whether that is an error). A panic inside the decoder (msgpack on hostile
// input, or a user's custom decoder) is returned as an error. The decoder is pooled.
func Unmarshal(b []byte, out any, strict bool) (rest int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder panicked: %v", p)
		}
	}()
	u := unmarshalers.Get().(*unmarshaler)
	u.r.Reset(b)
	u.dec.DisallowUnknownFields(strict)
	if err := u.dec.Decode(out); err != nil {
		return 0, err // not put back: the decoder may be in any state
	}
	rest = u.r.Len()
	u.r.Reset(nil)
	unmarshalers.Put(u)
	return rest, nil
}

type unmarshaler struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

var unmarshalers = sync.Pool{New: func() any {
	u := &unmarshaler{dec: msgpack.NewDecoder(nil)}
	u.dec.Reset(&u.r) // a *bytes.Reader is read directly, without buffering ahead
	u.dec.SetCustomStructTag(StructTag)
	return u
}}
