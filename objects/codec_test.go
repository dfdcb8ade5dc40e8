package objects

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

type fuzzArgs struct {
	A int              `json:"a"`
	S string           `json:"s"`
	B []byte           `json:"b"`
	M map[string]int   `json:"m"`
	L []fuzzArgs       `json:"l"`
	P *fuzzArgs        `json:"p"`
	T time.Time        `json:"t"`
	F float64          `json:"f"`
	X any              `json:"x"`
	U uint8            `json:"u"`
	N map[int][]string `json:"n"`
}

// FuzzDecodeArgs feeds network bytes to the argument decoder (both formats) and to the
// stored-value decoder: they must never panic, and every failure must be typed.
func FuzzDecodeArgs(f *testing.F) {
	full, _ := marshal(fuzzArgs{A: 1, S: "s", B: []byte{1}, M: map[string]int{"k": 2},
		L: []fuzzArgs{{A: 3}}, P: &fuzzArgs{S: "p"}, T: time.Unix(5, 6), F: 1.5, X: []any{"x", 1}, U: 7,
		N: map[int][]string{1: {"a"}}})
	f.Add(full, false)
	f.Add([]byte(`{"a":1,"s":"x","l":[{"a":2}],"x":{"y":[1,2]}}`), true)
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, false) // array32 claiming 4G elements
	f.Add([]byte{0xdf, 0x7f, 0xff, 0xff, 0xff}, false) // map32 claiming 2G entries
	f.Add([]byte{0xc6, 0xff, 0xff, 0xff, 0xff}, false) // bin32 claiming 4 GiB
	f.Add([]byte{0x81, 0xa1, 'q', 0x01}, false)        // unknown field
	f.Add([]byte(`[`), true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, b []byte, isJSON bool) {
		var in fuzzArgs
		err := decodeArgs(b, isJSON, &in)
		if err != nil {
			if !errors.Is(err, ErrBadArgument) {
				t.Fatalf("untyped error: %v", err)
			}
		} else if !isJSON {
			// What decodes re-encodes and decodes to the same value.
			b2, err := marshal(in)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			var again fuzzArgs
			if err := decodeArgs(b2, false, &again); err != nil {
				t.Fatalf("decode of re-encoded args: %v", err)
			}
			if !reflect.DeepEqual(normalize(in), normalize(again)) {
				t.Fatalf("round trip changed the value:\n%#v\n%#v", in, again)
			}
		}
		var v any
		if err := (Value{b}).Decode(&v); err != nil && !errors.Is(err, ErrDecode) {
			t.Fatalf("untyped Value.Decode error: %v", err)
		}
	})
}

// normalize clears what does not round-trip bit for bit but is the same value: time
// locations and NaN floats.
func normalize(a fuzzArgs) fuzzArgs {
	a.T = a.T.UTC()
	if a.F != a.F {
		a.F = 0
	}
	a.X = nil
	for i := range a.L {
		a.L[i] = normalize(a.L[i])
	}
	if a.P != nil {
		p := normalize(*a.P)
		a.P = &p
	}
	return a
}

func TestDecodeArgsFormats(t *testing.T) {
	tests := []struct {
		name   string
		b      []byte
		isJSON bool
		want   fuzzArgs
		err    bool
	}{
		{"empty is zero", nil, false, fuzzArgs{}, false},
		{"json", []byte(`{"a":2,"s":"x"}`), true, fuzzArgs{A: 2, S: "x"}, false},
		{"json trailing", []byte(`{"a":2} {}`), true, fuzzArgs{}, true},
		{"json unknown", []byte(`{"zz":2}`), true, fuzzArgs{}, true},
		{"json wrong type", []byte(`{"a":"2"}`), true, fuzzArgs{}, true},
		{"msgpack", mustMarshal(t, map[string]any{"a": 3, "l": []any{map[string]any{"s": "x"}}}), false,
			fuzzArgs{A: 3, L: []fuzzArgs{{S: "x"}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got fuzzArgs
			err := decodeArgs(tt.b, tt.isJSON, &got)
			if tt.err {
				if !errors.Is(err, ErrBadArgument) {
					t.Fatalf("err = %v, want ErrBadArgument", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v", got, err)
			}
		})
	}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckMsgpack(t *testing.T) {
	nested := func(depth int) []byte {
		b := make([]byte, depth+1)
		for i := 0; i < depth; i++ {
			b[i] = 0x91 // fixarray of one element
		}
		b[depth] = 0x01
		return b
	}
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"int", []byte{0x05}, true},
		{"empty", nil, false},
		{"trailing", []byte{0x05, 0x05}, false},
		{"array32 of 4G", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, false},
		{"map32 of 2G", []byte{0xdf, 0x7f, 0xff, 0xff, 0xff}, false},
		{"map16 too long", []byte{0xde, 0x00, 0x02, 0x01, 0x01}, false},
		{"bin32 of 4GiB", []byte{0xc6, 0xff, 0xff, 0xff, 0xff}, false},
		{"str8 truncated", []byte{0xd9, 0x03, 'a'}, false},
		{"ext8", []byte{0xc7, 0x01, 0x05, 0xaa}, true},
		{"fixext16", append([]byte{0xd8, 0x01}, make([]byte, 16)...), true},
		{"fixext16 short", append([]byte{0xd8, 0x01}, make([]byte, 15)...), false},
		{"uint64", []byte{0xcf, 0, 0, 0, 0, 0, 0, 0, 1}, true},
		{"int16 short", []byte{0xd1, 0}, false},
		{"reserved code", []byte{0xc1}, false},
		{"empty containers", []byte{0x92, 0x90, 0x80}, true},
		{"depth at limit", nested(maxDepth), true},
		{"too deep", nested(maxDepth + 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkMsgpack(tt.b); (err == nil) != tt.ok {
				t.Fatalf("checkMsgpack(% x) = %v, want ok=%v", tt.b, err, tt.ok)
			}
		})
	}
	// Everything the encoder produces passes.
	full := mustMarshal(t, fuzzArgs{A: -1 << 40, S: strings.Repeat("s", 70000), B: make([]byte, 300),
		M: map[string]int{"k": 1 << 20}, L: make([]fuzzArgs, 20), T: time.Unix(1<<33, 1), F: 1.25, X: float32(2), U: 255})
	if err := checkMsgpack(full); err != nil {
		t.Fatalf("encoder output rejected: %v", err)
	}
}
