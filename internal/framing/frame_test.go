package framing

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"small", 300},
		{"max", MaxFrameSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := bytes.Repeat([]byte{0xa5}, tt.size)
			var buf bytes.Buffer
			if err := WriteFrame(&buf, payload); err != nil {
				t.Fatalf("WriteFrame: %v", err)
			}
			if buf.Len() != frameHeaderLen+tt.size {
				t.Fatalf("frame is %d bytes, want %d", buf.Len(), frameHeaderLen+tt.size)
			}
			buf.WriteString("next")
			got, err := ReadFrame(&buf, nil)
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("ReadFrame returned %d bytes, want %d", len(got), len(payload))
			}
			if rest := buf.String(); rest != "next" {
				t.Fatalf("ReadFrame left %q, want %q", rest, "next")
			}
		})
	}
}

func TestReadFrameSequenceReusesBuffer(t *testing.T) {
	var stream bytes.Buffer
	msgs := []string{"alpha", "", "a somewhat longer message", "z"}
	for _, m := range msgs {
		if err := WriteFrame(&stream, []byte(m)); err != nil {
			t.Fatalf("WriteFrame: %v", err)
		}
	}
	buf := make([]byte, 0, 64)
	for i, want := range msgs {
		got, err := ReadFrame(&stream, buf)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if string(got) != want {
			t.Fatalf("frame %d = %q, want %q", i, got, want)
		}
		if cap(got) > 0 && &got[:1][0] != &buf[:1][0] {
			t.Fatalf("frame %d did not reuse the buffer", i)
		}
	}
	if _, err := ReadFrame(&stream, buf); err != io.EOF {
		t.Fatalf("ReadFrame at end of stream = %v, want io.EOF", err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	prefix := func(n uint32) string {
		return string(binary.BigEndian.AppendUint32(nil, n))
	}
	tests := []struct {
		name  string
		input string
		want  error
	}{
		{"empty stream", "", io.EOF},
		{"truncated prefix", "\x00\x00", io.ErrUnexpectedEOF},
		{"truncated payload", prefix(10) + "abc", io.ErrUnexpectedEOF},
		{"prefix only", prefix(10), io.ErrUnexpectedEOF},
		{"one over max", prefix(MaxFrameSize + 1), ErrFrameTooLarge},
		{"max uint32", prefix(^uint32(0)), ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader([]byte(tt.input)), nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadFrame error = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestReadFrameRejectsBeforeAllocating checks that an oversized declared
// length is refused without reading the payload or allocating for it.
func TestReadFrameRejectsBeforeAllocating(t *testing.T) {
	hdr := binary.BigEndian.AppendUint32(nil, ^uint32(0))
	r := &strictReader{data: hdr}
	buf := make([]byte, 0, 16)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 100
	for range runs {
		r.data, r.overread = hdr, false
		if _, err := ReadFrame(r, buf); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("ReadFrame error = %v, want ErrFrameTooLarge", err)
		}
		if r.overread {
			t.Fatal("ReadFrame read past the length prefix of an oversized frame")
		}
	}
	runtime.ReadMemStats(&after)
	// Only the error value may be allocated: far below one frame.
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 1024 {
		t.Fatalf("ReadFrame allocated %d bytes per rejected frame", perRun)
	}
}

// strictReader serves data and records any attempt to read beyond it.
type strictReader struct {
	data     []byte
	overread bool
}

func (r *strictReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		r.overread = true
		return 0, io.EOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestWriteFrameRejectsOversized(t *testing.T) {
	var buf bytes.Buffer
	err := WriteFrame(&buf, make([]byte, MaxFrameSize+1))
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("WriteFrame error = %v, want ErrFrameTooLarge", err)
	}
	if buf.Len() != 0 {
		t.Fatalf("WriteFrame wrote %d bytes despite the error", buf.Len())
	}
}

func FuzzReadFrame(f *testing.F) {
	for _, seed := range [][]byte{
		nil,
		{0, 0, 0, 0},
		{0, 0, 0, 3, 'a', 'b', 'c'},
		{0, 0, 0, 3, 'a'},
		{0, 0},
		{0, 0x40, 0, 0},          // exactly MaxFrameSize, truncated
		{0, 0x40, 0, 1},          // one over
		{0xff, 0xff, 0xff, 0xff}, // max uint32
		{0, 0, 0, 1, 'x', 0, 0, 0, 0},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		payload, err := ReadFrame(r, nil)
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) && len(data)-r.Len() != frameHeaderLen {
				t.Fatalf("oversized frame rejected after reading %d bytes", len(data)-r.Len())
			}
			return
		}
		consumed := data[:len(data)-r.Len()]
		var buf bytes.Buffer
		if err := WriteFrame(&buf, payload); err != nil {
			t.Fatalf("WriteFrame of a parsed frame: %v", err)
		}
		if !bytes.Equal(buf.Bytes(), consumed) {
			t.Fatalf("re-encoded %x, consumed %x", buf.Bytes(), consumed)
		}
	})
}

// TestWriteFrameBuffered covers the bufio path, including prefixes that straddle a full
// buffer.
func TestWriteFrameBuffered(t *testing.T) {
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 16) // bufio's minimum: most prefixes land near its end
	sizes := []int{0, 1, 3, 9, 11, 12, 13, 15, 16, 17, 40, 300, 2}
	for i, n := range sizes {
		if err := WriteFrame(bw, bytes.Repeat([]byte{byte(i)}, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	var buf []byte
	for i, n := range sizes {
		got, err := ReadFrame(&out, buf)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, bytes.Repeat([]byte{byte(i)}, n)) {
			t.Fatalf("frame %d: got %x, want %d bytes of %02x", i, got, n, i)
		}
		buf = got
	}
	if out.Len() != 0 {
		t.Fatalf("%d bytes left over", out.Len())
	}
	if err := WriteFrame(bw, make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized frame: %v, want ErrFrameTooLarge", err)
	}
}

// BenchmarkWriteFrame is one small frame into a connection's bufio.Writer, as the SDK
// writers do per message.
func BenchmarkWriteFrame(b *testing.B) {
	bw := bufio.NewWriterSize(io.Discard, 64<<10)
	payload := make([]byte, 40)
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteFrame(bw, payload); err != nil {
			b.Fatal(err)
		}
	}
}
