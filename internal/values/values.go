// Package values is the one encoder of user values (call arguments, results, stored
// values) shared by the node (objects) and the Go SDK (client): msgpack with compact
// integers, naming struct fields by their `json` tags, so that users write one set of
// tags for msgpack and JSON (the CLI). Both sides must encode alike; this package is
// where that is decided.
package values

import (
	"bytes"
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
