package bounded

import (
	"encoding/binary"
	"errors"
	"testing"
)

var errKind = errors.New("bad message")

func TestReaderReadsWhatWasWritten(t *testing.T) {
	var b []byte
	b = append(b, 7)
	b = binary.AppendUvarint(b, 300)
	b = binary.AppendVarint(b, -5)
	b = binary.AppendUvarint(b, 3)
	b = append(b, "abc"...)
	b = binary.AppendUvarint(b, 2) // a count of two items of two bytes
	b = append(b, 1, 2, 3, 4)

	r := NewReader(b, errKind)
	if v := r.Byte("byte"); v != 7 {
		t.Errorf("Byte = %d", v)
	}
	if v := r.Uvarint("uvarint"); v != 300 {
		t.Errorf("Uvarint = %d", v)
	}
	if v := r.Varint("varint"); v != -5 {
		t.Errorf("Varint = %d", v)
	}
	s := r.Bytes("string", 3)
	if string(s) != "abc" || cap(s) != 3 {
		t.Errorf("Bytes = %q (cap %d)", s, cap(s))
	}
	if n := r.Count("items", 2, 10); n != 2 {
		t.Errorf("Count = %d", n)
	}
	if v := r.Take(4, "items"); len(v) != 4 || v[3] != 4 {
		t.Errorf("Take = %v", v)
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	if r.Offset() != len(b) || r.Len() != 0 {
		t.Fatalf("offset %d, len %d after reading %d bytes", r.Offset(), r.Len(), len(b))
	}
}

// Reading a well-formed message allocates nothing: the decoders on the apply path count on
// it.
func TestReaderDoesNotAllocate(t *testing.T) {
	b := binary.AppendUvarint([]byte{7}, 300)
	b = append(binary.AppendUvarint(b, 3), "abc"...)
	allocs := testing.AllocsPerRun(100, func() {
		r := NewReader(b, errKind)
		r.Byte("byte")
		r.Uvarint("uvarint")
		r.Bytes("string", 3)
		if r.End() != nil {
			t.Fatal(r.Err())
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message", allocs)
	}
}

func TestReaderRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		read func(r *Reader)
	}{
		{"empty byte", nil, func(r *Reader) { r.Byte("b") }},
		{"unterminated uvarint", []byte{0x80, 0x80}, func(r *Reader) { r.Uvarint("u") }},
		{"overlong uvarint", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, func(r *Reader) { r.Uvarint("u") }},
		{"unterminated varint", []byte{0x80}, func(r *Reader) { r.Varint("v") }},
		{"take beyond the end", []byte{1, 2}, func(r *Reader) { r.Take(3, "t") }},
		{"negative take", []byte{1, 2}, func(r *Reader) { r.Take(-1, "t") }},
		{"bytes beyond the end", []byte{5, 'a'}, func(r *Reader) { r.Bytes("s", 10) }},
		{"bytes above the bound", []byte{3, 'a', 'b', 'c'}, func(r *Reader) { r.Bytes("s", 2) }},
		{"huge length", binary.AppendUvarint(nil, 1<<63), func(r *Reader) { r.Bytes("s", 1<<30) }},
		{"count beyond the input", []byte{3, 0, 0, 0, 0, 0}, func(r *Reader) { r.Count("c", 2, 10) }},
		{"count above the bound", []byte{3, 0, 0, 0}, func(r *Reader) { r.Count("c", 1, 2) }},
		{"count that overflows", binary.AppendUvarint(nil, 1<<62), func(r *Reader) { r.Count("c", 8, 1<<63-1) }},
		{"trailing bytes", []byte{1, 2}, func(r *Reader) { r.Byte("b") }},
	} {
		r := NewReader(tc.b, errKind)
		tc.read(&r)
		if err := r.End(); !errors.Is(err, errKind) {
			t.Errorf("%s: err = %v, want one wrapping the reader's kind", tc.name, err)
		}
	}
}

// The first error sticks, and reads after it return zero values without moving.
func TestReaderErrorSticks(t *testing.T) {
	r := NewReader([]byte{0x80}, nil)
	r.Uvarint("first")
	first := r.Err()
	if first == nil {
		t.Fatal("no error for an unterminated uvarint")
	}
	if v := r.Byte("second"); v != 0 || r.Err() != first || r.Offset() != 0 {
		t.Fatalf("after the error: Byte = %d, err %v, offset %d", v, r.Err(), r.Offset())
	}
	r.Fail("third")
	if r.Err() != first {
		t.Fatalf("Fail replaced the first error: %v", r.Err())
	}
}

// FuzzReader reads the input with a program the input chooses: whatever the bytes, no
// read panics or passes the end, a returned slice stays inside the input with its capacity
// cut, a count fits the bytes left, and the first error sticks.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 0x80, 0x01, 3, 'a', 'b', 'c'}, []byte{0, 1, 2, 3, 4, 5})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, []byte{4, 4, 5})
	f.Fuzz(func(t *testing.T, b, prog []byte) {
		r := NewReader(b, errKind)
		var sticky error
		for _, op := range prog {
			before, left := r.Offset(), r.Len()
			switch op % 7 {
			case 0:
				r.Byte("byte")
			case 1:
				r.Uvarint("uvarint")
			case 2:
				r.Varint("varint")
			case 3:
				if v := r.Take(int(op/7), "take"); v != nil && (len(v) != int(op/7) || cap(v) != len(v)) {
					t.Fatalf("Take(%d) = %d bytes, cap %d", op/7, len(v), cap(v))
				}
			case 4:
				v := r.Bytes("bytes", int(op))
				if len(v) > int(op) || cap(v) != len(v) || len(v) > left {
					t.Fatalf("Bytes(max %d) = %d bytes, cap %d, of %d left", op, len(v), cap(v), left)
				}
			case 5:
				min := int(op%5) + 1
				if n := r.Count("count", min, 1<<16); n*min > r.Len() {
					t.Fatalf("Count(min %d) = %d with %d bytes left", min, n, r.Len())
				}
			case 6:
				r.End()
			}
			if r.Offset() < before || r.Offset() > len(b) || r.Len() != len(b)-r.Offset() {
				t.Fatalf("offset %d → %d of %d", before, r.Offset(), len(b))
			}
			if sticky != nil {
				if r.Err() != sticky {
					t.Fatalf("error %v replaced by %v", sticky, r.Err())
				}
				if r.Offset() != before {
					t.Fatal("a read moved after an error")
				}
			}
			if err := r.Err(); err != nil {
				if !errors.Is(err, errKind) {
					t.Fatalf("error %v does not wrap the kind", err)
				}
				sticky = err
			}
		}
	})
}
