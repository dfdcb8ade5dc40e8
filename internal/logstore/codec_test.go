package logstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// seal appends a valid checksum to a record body, so that tests reach the
// parser behind the CRC check.
func seal(body []byte) []byte {
	out := append([]byte{}, body...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(body, castagnoli))
}

func assertLogEqual(t testing.TB, got, want *raft.Log) {
	t.Helper()
	if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type {
		t.Fatalf("header: got (index %d, term %d, type %v), want (%d, %d, %v)",
			got.Index, got.Term, got.Type, want.Index, want.Term, want.Type)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("data: got %q, want %q", got.Data, want.Data)
	}
	if !bytes.Equal(got.Extensions, want.Extensions) {
		t.Fatalf("extensions: got %q, want %q", got.Extensions, want.Extensions)
	}
	if got.AppendedAt.IsZero() != want.AppendedAt.IsZero() || !got.AppendedAt.Equal(want.AppendedAt) {
		t.Fatalf("appended-at: got %v, want %v", got.AppendedAt, want.AppendedAt)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{0xab}, 1<<20)
	tests := []struct {
		name string
		log  raft.Log
	}{
		{"zero", raft.Log{}},
		{"command", raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("set x=1")}},
		{"extensions only", raft.Log{Index: 2, Term: 1, Type: raft.LogNoop, Extensions: []byte{0, 1, 2}}},
		{"data and extensions", raft.Log{Index: 3, Term: 2, Data: []byte("d"), Extensions: []byte("e")}},
		{"configuration", raft.Log{Index: 4, Term: 3, Type: raft.LogConfiguration, Data: []byte{1, 2, 3}}},
		{"appended at", raft.Log{Index: 5, Term: 3, AppendedAt: time.Unix(1_700_000_000, 123456789)}},
		{"appended at epoch", raft.Log{Index: 6, Term: 3, AppendedAt: time.Unix(0, 0)}},
		{"appended before epoch", raft.Log{Index: 7, Term: 3, AppendedAt: time.Unix(-1_000_000, 5)}},
		{"max integers", raft.Log{Index: math.MaxUint64, Term: math.MaxUint64, Type: 255}},
		{"1 MiB data", raft.Log{Index: 8, Term: 4, Data: big}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := appendLog([]byte("prefix"), &tt.log)[len("prefix"):]
			if len(rec) > maxRecordSize(&tt.log) {
				t.Fatalf("record of %d bytes exceeds maxRecordSize %d", len(rec), maxRecordSize(&tt.log))
			}
			got := raft.Log{Index: 99, Data: []byte("stale"), AppendedAt: time.Now()}
			if err := decodeLog(rec, &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			assertLogEqual(t, &got, &tt.log)
			if len(tt.log.Data) == 0 && got.Data != nil {
				t.Fatalf("empty data decoded as %#v, want nil", got.Data)
			}
			// The decoded payloads must not alias the record (bbolt's mmap)
			// nor each other.
			for i := range rec {
				rec[i] ^= 0xff
			}
			if !bytes.Equal(got.Data, tt.log.Data) || !bytes.Equal(got.Extensions, tt.log.Extensions) {
				t.Fatal("decoded payloads alias the record")
			}
			if len(got.Data) > 0 && len(got.Extensions) > 0 {
				_ = append(got.Data, 'x')
				if !bytes.Equal(got.Extensions, tt.log.Extensions) {
					t.Fatal("append to Data overwrote Extensions")
				}
			}
		})
	}
}

func TestCodecRejectsCorruptRecords(t *testing.T) {
	valid := appendLog(nil, &raft.Log{Index: 7, Term: 2, Data: []byte("hello"), Extensions: []byte("x"),
		AppendedAt: time.Unix(1_700_000_000, 0)})
	body := valid[:len(valid)-crcSize]
	withoutTime := appendLog(nil, &raft.Log{Index: 7, Term: 2})
	tests := []struct {
		name string
		rec  []byte
	}{
		{"nil", nil},
		{"one byte", []byte{recordV1}},
		{"shorter than minimum", valid[:minRecordSize-1]},
		{"bad checksum", append(append([]byte{}, body...), 0, 0, 0, 0)},
		{"unknown version", seal(append([]byte{2}, body[1:]...))},
		{"unknown flag", seal(append([]byte{recordV1, 0x80}, body[2:]...))},
		{"trailing byte", seal(append(append([]byte{}, body...), 0))},
		{"time flag without time", seal(append([]byte{recordV1, flagAppendedAt}, withoutTime[2:len(withoutTime)-crcSize]...))},
		{"data length past end", seal([]byte{recordV1, 0, 0, 1, 1, 50, 'a', 0})},
		{"data length overflows int", seal(binary.AppendUvarint([]byte{recordV1, 0, 0, 1, 1}, math.MaxUint64))},
		{"index varint overflow", seal([]byte{recordV1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 0, 0})},
		{"truncated varint", seal([]byte{recordV1, 0, 0, 1, 1, 0, 0x80})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l raft.Log
			if err := decodeLog(tt.rec, &l); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeLog(%x) = %v, want ErrCorrupt", tt.rec, err)
			}
		})
	}

	// CRC-32C detects every single-bit error and, here, every truncation.
	for i := range valid {
		for bit := range 8 {
			rec := append([]byte{}, valid...)
			rec[i] ^= 1 << bit
			var l raft.Log
			if err := decodeLog(rec, &l); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("bit %d of byte %d flipped: err = %v, want ErrCorrupt", bit, i, err)
			}
		}
	}
	for n := range len(valid) {
		var l raft.Log
		if err := decodeLog(valid[:n], &l); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrCorrupt", n, err)
		}
	}
}

// FuzzDecodeLog feeds arbitrary bytes to the decoder, both as a whole record
// and, with a valid checksum appended, as a body, so that the parser itself
// is explored. The decoder must never panic, must fail only with ErrCorrupt,
// and whatever it accepts must survive an encode/decode round trip.
func FuzzDecodeLog(f *testing.F) {
	for _, l := range []raft.Log{
		{},
		{Index: 1, Term: 1, Data: []byte("cmd")},
		{Index: 300, Term: 7, Type: raft.LogConfiguration, Data: []byte{1, 2}, Extensions: []byte{3}},
		{Index: math.MaxUint64, Term: 1, AppendedAt: time.Unix(1_700_000_000, 42)},
	} {
		rec := appendLog(nil, &l)
		f.Add(rec)
		f.Add(rec[:len(rec)-crcSize])
	}
	f.Add([]byte{})
	f.Add([]byte{recordV1, flagAppendedAt, 0, 0x80, 0x80})
	f.Add(binary.AppendUvarint([]byte{recordV1, 0, 0, 1, 1}, math.MaxUint64))

	f.Fuzz(func(t *testing.T, b []byte) {
		for _, rec := range [][]byte{b, seal(b)} {
			var l raft.Log
			err := decodeLog(rec, &l)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("decodeLog(%x) = %v, not ErrCorrupt", rec, err)
				}
				continue
			}
			var again raft.Log
			if err := decodeLog(appendLog(nil, &l), &again); err != nil {
				t.Fatalf("re-encoding of an accepted record does not decode: %v", err)
			}
			assertLogEqual(t, &again, &l)
		}
	})
}
