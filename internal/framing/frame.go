package framing

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// MaxFrameSize is the largest payload a frame may carry. It bounds what one
// length prefix can make a node allocate. It is smaller than a PutMany of 128
// values at the 128 KiB value limit (fsm.MaxValueSize; 16 MiB), so the SDK
// protocol must cap a request's total size, not only each value's.
const MaxFrameSize = 4 << 20

// frameHeaderLen is the size of a frame's big-endian length prefix.
const frameHeaderLen = 4

// ErrFrameTooLarge is returned (wrapped) by WriteFrame for a payload larger
// than MaxFrameSize and by ReadFrame for a declared length larger than it.
// A reader that sees it cannot resynchronise and should close the stream.
var ErrFrameTooLarge = errors.New("framing: frame too large")

// WriteFrame writes payload as one frame: a 4-byte big-endian length, then
// the payload. Into a *bufio.Writer (what callers writing small frames to a
// connection should use) the prefix goes straight into the buffer, without an
// allocation; to other writers, prefix and payload are handed over as a
// vectored write where w supports it (a *net.TCPConn) and as two Writes
// otherwise.
func WriteFrame(w io.Writer, payload []byte) error {
	if len(payload) > MaxFrameSize {
		return fmt.Errorf("%w: %d bytes > %d", ErrFrameTooLarge, len(payload), MaxFrameSize)
	}
	if bw, ok := w.(*bufio.Writer); ok {
		hdr := binary.BigEndian.AppendUint32(bw.AvailableBuffer(), uint32(len(payload)))
		if _, err := bw.Write(hdr); err != nil {
			return fmt.Errorf("framing: write frame: %w", err)
		}
		if _, err := bw.Write(payload); err != nil {
			return fmt.Errorf("framing: write frame: %w", err)
		}
		return nil
	}
	var hdr [frameHeaderLen]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
	bufs := net.Buffers{hdr[:], payload}
	if _, err := bufs.WriteTo(w); err != nil {
		return fmt.Errorf("framing: write frame: %w", err)
	}
	return nil
}

// ReadFrame reads one frame from r and returns its payload. The payload is
// read into buf when cap(buf) is large enough, else into a new slice; either
// way it is only valid until buf is reused, and callers that loop should pass
// the previous result back as buf.
//
// The declared length is checked against MaxFrameSize before anything is
// allocated. ReadFrame returns io.EOF if r ends before the first byte (a clean
// end of stream), io.ErrUnexpectedEOF if it ends inside a frame, a wrapped
// ErrFrameTooLarge for an oversized declaration, and r's error otherwise.
func ReadFrame(r io.Reader, buf []byte) ([]byte, error) {
	// The prefix is read into buf's own storage when it fits, so a reused
	// buffer makes ReadFrame allocation-free.
	var prefix []byte
	if cap(buf) >= frameHeaderLen {
		prefix = buf[:frameHeaderLen]
	} else {
		prefix = make([]byte, frameHeaderLen)
	}
	if _, err := io.ReadFull(r, prefix); err != nil {
		return nil, err // io.EOF or io.ErrUnexpectedEOF as io.ReadFull defines them
	}
	n := binary.BigEndian.Uint32(prefix)
	if n > MaxFrameSize {
		return nil, fmt.Errorf("%w: declared %d bytes > %d", ErrFrameTooLarge, n, MaxFrameSize)
	}
	if uint32(cap(buf)) >= n {
		buf = buf[:n]
	} else {
		buf = make([]byte, n)
	}
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the prefix promised n > 0 more bytes
		}
		return nil, err
	}
	return buf, nil
}
