package fsm

import (
	"encoding/binary"
	"fmt"

	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// A batch entry carries several encoded commands in one raft log entry, so that commands
// proposed together cost raft, the log store and the transport one entry instead of one
// each. It is a msgpack array of byte strings, each an EncodeCommand encoding; a single
// command is a msgpack map, so the first byte tells the two apart.
//
// Each command of a batch is applied (or rejected) on its own, in order, exactly as if it
// were an entry of its own at the batch's log index: its Result says so, and a command
// rejected for its version or its content does not stop the ones after it. Only a batch
// whose framing is malformed is rejected whole.
//
// Compatibility: a build without batches rejects a batch entry as a bad command while a
// build with them applies it, so every node of a cluster must run a build that knows them.

// MaxBatch is the most commands one batch entry may carry.
const MaxBatch = 1024

// ErrBadBatch means a batch entry's framing is malformed or breaks MaxBatch; none of its
// commands was (or will be) applied.
var ErrBadBatch = fmt.Errorf("%w: bad batch", ErrBadCommand)

// BatchResult is the response of a batch entry whose framing decoded (what
// ApplyFuture.Response() returns for it): one Result per command, in order. A batch entry
// that did not decode, or was already applied, gets a *Result with Err instead.
type BatchResult struct {
	Results []Result
}

// EncodeBatch frames already encoded commands (EncodeCommand's output) as one batch entry.
// It does not look inside them: a command that does not decode is rejected on its own when
// the batch is applied.
func EncodeBatch(cmds [][]byte) ([]byte, error) {
	if len(cmds) == 0 || len(cmds) > MaxBatch {
		return nil, fmt.Errorf("%w: %d commands, want 1..%d", ErrBadBatch, len(cmds), MaxBatch)
	}
	n := 5
	for _, c := range cmds {
		n += 5 + len(c)
	}
	b := make([]byte, 0, n)
	if len(cmds) <= 15 {
		b = append(b, msgpcode.FixedArrayLow|byte(len(cmds)))
	} else {
		b = append(b, msgpcode.Array16)
		b = binary.BigEndian.AppendUint16(b, uint16(len(cmds)))
	}
	for _, c := range cmds {
		switch {
		case len(c) <= 0xff:
			b = append(b, msgpcode.Bin8, byte(len(c)))
		case len(c) <= 0xffff:
			b = append(b, msgpcode.Bin16)
			b = binary.BigEndian.AppendUint16(b, uint16(len(c)))
		default:
			b = append(b, msgpcode.Bin32)
			b = binary.BigEndian.AppendUint32(b, uint32(len(c)))
		}
		b = append(b, c...)
	}
	return b, nil
}

// isBatch reports whether an entry's data is a batch (starts with an array header).
func isBatch(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	return msgpcode.IsFixedArray(b[0]) || b[0] == msgpcode.Array16 || b[0] == msgpcode.Array32
}

// splitBatch returns the encoded commands of a batch entry, aliasing b, appended to dst.
// Any malformed framing is an error wrapping ErrBadBatch.
func splitBatch(b []byte, dst [][]byte) ([][]byte, error) {
	d := newDecoder(b)
	n, err := d.arrayLen()
	if err != nil {
		return dst, fmt.Errorf("%w: %w", ErrBadBatch, err)
	}
	if n == 0 || n > MaxBatch {
		return dst, fmt.Errorf("%w: %d commands, want 1..%d", ErrBadBatch, n, MaxBatch)
	}
	for i := range n {
		c, err := d.bin()
		if err != nil {
			return dst, fmt.Errorf("%w: command %d: %w", ErrBadBatch, i, err)
		}
		dst = append(dst, c)
	}
	if d.remaining() != 0 {
		return dst, fmt.Errorf("%w: %d bytes after the last command", ErrBadBatch, d.remaining())
	}
	return dst, nil
}

// SplitBatch returns the encoded commands of a batch entry (aliasing b); for tools and
// tests. Any malformed framing is an error wrapping ErrBadBatch.
func SplitBatch(b []byte) ([][]byte, error) { return splitBatch(b, nil) }
