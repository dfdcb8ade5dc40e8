package framing

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		proto byte
		group uint64
		want  []byte
	}{
		{"raft group 0", ProtoRaft, 0, []byte("DURO\x01\x01\x00")},
		{"raft group 1", ProtoRaft, 1, []byte("DURO\x01\x01\x01")},
		{"raft group 127", ProtoRaft, 127, []byte("DURO\x01\x01\x7f")},
		{"raft group 128", ProtoRaft, 128, []byte("DURO\x01\x01\x80\x01")},
		{"raft max group", ProtoRaft, MaxGroupID, []byte("DURO\x01\x01\xff\xff\xff\xff\x0f")},
		{"client", ProtoClient, 0, []byte("DURO\x01\x02")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteHeader(&buf, tt.proto, tt.group); err != nil {
				t.Fatalf("WriteHeader: %v", err)
			}
			if !bytes.Equal(buf.Bytes(), tt.want) {
				t.Fatalf("WriteHeader wrote %q, want %q", buf.Bytes(), tt.want)
			}
			// Trailing bytes belong to the protocol and must be left unread.
			buf.WriteString("rest")
			proto, group, err := ReadHeader(&buf)
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			if proto != tt.proto || group != tt.group {
				t.Fatalf("ReadHeader = (%d, %d), want (%d, %d)", proto, group, tt.proto, tt.group)
			}
			if rest := buf.String(); rest != "rest" {
				t.Fatalf("ReadHeader left %q, want %q", rest, "rest")
			}
		})
	}
}

func TestReadHeaderErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  error
	}{
		{"empty", "", io.EOF},
		{"truncated magic", "DU", io.ErrUnexpectedEOF},
		{"truncated before proto", "DURO\x01", io.ErrUnexpectedEOF},
		{"truncated before group", "DURO\x01\x01", io.ErrUnexpectedEOF},
		{"truncated inside group", "DURO\x01\x01\x80", io.ErrUnexpectedEOF},
		{"bad magic", "DUR0\x01\x01\x01", ErrBadMagic},
		{"http request", "GET / HTTP/1.1\r\n", ErrBadMagic},
		{"version 0", "DURO\x00\x01\x01", ErrBadVersion},
		{"version 2", "DURO\x02\x01\x01", ErrBadVersion},
		{"proto 0", "DURO\x01\x00", ErrUnknownProto},
		{"proto 5", "DURO\x01\x05", ErrUnknownProto},
		{"proto 255", "DURO\x01\xff", ErrUnknownProto},
		{"group above max", "DURO\x01\x01\x80\x80\x80\x80\x10", ErrBadGroup},
		{"group uvarint overflow", "DURO\x01\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", ErrBadGroup},
		{"group non-minimal", "DURO\x01\x01\x81\x00", ErrBadGroup},
		{"group six bytes", "DURO\x01\x01\x80\x80\x80\x80\x80\x00", ErrBadGroup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadHeader(bytes.NewReader([]byte(tt.input)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadHeader(%q) error = %v, want %v", tt.input, err, tt.want)
			}
		})
	}
}

// TestReadHeaderStopsEarly checks that a reader facing an endless stream of
// garbage gives up after a bounded number of bytes.
func TestReadHeaderStopsEarly(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		fill   byte
	}{
		{"bad magic", "", 'x'},
		{"endless group", "DURO\x01\x01", 0xff},
		{"endless zero continuation", "DURO\x01\x01\x80", 0x80},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &countingReader{prefix: []byte(tt.prefix), fill: tt.fill}
			if _, _, err := ReadHeader(r); err == nil {
				t.Fatal("ReadHeader accepted garbage")
			}
			if r.n > MaxHeaderLen {
				t.Fatalf("ReadHeader read %d bytes, more than MaxHeaderLen %d", r.n, MaxHeaderLen)
			}
		})
	}
}

// countingReader yields prefix, then fill forever, counting bytes read.
type countingReader struct {
	prefix []byte
	fill   byte
	n      int
}

func (r *countingReader) ReadByte() (byte, error) {
	r.n++
	if len(r.prefix) > 0 {
		b := r.prefix[0]
		r.prefix = r.prefix[1:]
		return b, nil
	}
	return r.fill, nil
}

func TestWriteHeaderRejectsBadArguments(t *testing.T) {
	tests := []struct {
		name  string
		proto byte
		group uint64
		want  error
	}{
		{"proto 0", 0, 0, ErrUnknownProto},
		{"proto 5", 5, 0, ErrUnknownProto},
		{"group above max", ProtoRaft, MaxGroupID + 1, ErrBadGroup},
		{"client with group", ProtoClient, 7, ErrBadGroup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WriteHeader(&buf, tt.proto, tt.group)
			if !errors.Is(err, tt.want) {
				t.Fatalf("WriteHeader error = %v, want %v", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Fatalf("WriteHeader wrote %d bytes despite the error", buf.Len())
			}
		})
	}
}

func FuzzReadHeader(f *testing.F) {
	for _, seed := range []string{
		"", "DURO", "DURO\x01\x01\x00", "DURO\x01\x01\x80\x01", "DURO\x01\x02",
		"DURO\x01\x01\xff\xff\xff\xff\x0f", "DURO\x01\x01\xff\xff\xff\xff\x10",
		"DURO\x01\x01\x81\x00", "DURO\x02\x01\x01", "DURO\x01\x03", "GET / HTTP/1.1\r\n",
		"DURO\x01\x01\x05raft-bytes",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		proto, group, err := ReadHeader(r)
		consumed := len(data) - r.Len()
		if consumed > MaxHeaderLen {
			t.Fatalf("consumed %d bytes, more than MaxHeaderLen", consumed)
		}
		if err != nil {
			return
		}
		// A header that parses has exactly one encoding: writing it back
		// reproduces the bytes consumed.
		var buf bytes.Buffer
		if err := WriteHeader(&buf, proto, group); err != nil {
			t.Fatalf("WriteHeader(%d, %d) of a parsed header: %v", proto, group, err)
		}
		if !bytes.Equal(buf.Bytes(), data[:consumed]) {
			t.Fatalf("re-encoded %q, consumed %q", buf.Bytes(), data[:consumed])
		}
	})
}
