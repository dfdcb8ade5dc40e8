package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/internal/bounded"
)

// ErrCorrupt reports bytes read from the file that do not decode: a log
// record or key that is truncated, has trailing garbage, fails its checksum,
// or does not match the key it is stored under. It is always wrapped with the
// group and, where known, the log index.
var ErrCorrupt = errors.New("logstore: corrupt data")

// Log record layout, format version 1. All integers are unsigned varints
// (encoding/binary) except the timestamp (signed varint) and the checksum:
//
//	version   1 byte   recordV1
//	flags     1 byte   flagAppendedAt; other bits must be zero
//	type      1 byte   raft.LogType
//	index     uvarint
//	term      uvarint
//	len(data) uvarint, then data
//	len(ext)  uvarint, then extensions
//	appended  varint unix nanoseconds, present only if flagAppendedAt
//	crc       4 bytes  CRC-32C (Castagnoli), little endian, of everything above
//
// The flag keeps a zero AppendedAt (logs written by tests or by raft
// versions that predate the field) distinct from the Unix epoch. The checksum
// is there because bbolt does not checksum its pages: without it a flipped bit
// in a log's data would be handed to the FSM as a valid command.
const (
	recordV1       byte = 1
	flagAppendedAt byte = 1 << 0
	knownFlags          = flagAppendedAt

	crcSize = 4
	// minRecordSize is a record with zero index, term and empty payloads.
	minRecordSize = 3 + 1 + 1 + 1 + 1 + crcSize
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maxRecordSize bounds the encoded size of l, for preallocation.
func maxRecordSize(l *raft.Log) int {
	return 3 + 4*binary.MaxVarintLen64 + len(l.Data) + len(l.Extensions) + binary.MaxVarintLen64 + crcSize
}

// appendLog appends the encoding of l to dst and returns the extended slice.
func appendLog(dst []byte, l *raft.Log) []byte {
	start := len(dst)
	var flags byte
	if !l.AppendedAt.IsZero() {
		flags |= flagAppendedAt
	}
	dst = append(dst, recordV1, flags, byte(l.Type))
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	if flags&flagAppendedAt != 0 {
		dst = binary.AppendVarint(dst, l.AppendedAt.UnixNano())
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// decodeLog decodes one record into out, overwriting every field. Data and
// Extensions are copied out of b (which may be bbolt's mmap, valid only inside
// the transaction); an empty payload decodes as nil. Every malformed input
// yields an error wrapping ErrCorrupt; decodeLog never panics.
func decodeLog(b []byte, out *raft.Log) error {
	if len(b) < minRecordSize {
		return fmt.Errorf("%w: record of %d bytes is shorter than the minimum %d", ErrCorrupt, len(b), minRecordSize)
	}
	body, sum := b[:len(b)-crcSize], binary.LittleEndian.Uint32(b[len(b)-crcSize:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return fmt.Errorf("%w: checksum mismatch (stored %08x, computed %08x)", ErrCorrupt, sum, got)
	}
	return decodeBody(body, out)
}

// decodeBody parses a checksummed record body; split from decodeLog so that
// the fuzz target can reach the parser with arbitrary bodies.
func decodeBody(body []byte, out *raft.Log) error {
	if len(body) < minRecordSize-crcSize {
		return fmt.Errorf("%w: record body of %d bytes is too short", ErrCorrupt, len(body))
	}
	if body[0] != recordV1 {
		return fmt.Errorf("%w: unknown record version %d", ErrCorrupt, body[0])
	}
	flags := body[1]
	if flags&^knownFlags != 0 {
		return fmt.Errorf("%w: unknown record flags %#x", ErrCorrupt, flags)
	}
	r := bounded.NewReader(body, ErrCorrupt)
	r.Take(3, "header") // version, flags and type, checked above
	index := r.Uvarint("index")
	term := r.Uvarint("term")
	data := r.Bytes("data", len(body))
	ext := r.Bytes("extensions", len(body))
	var appended time.Time
	if flags&flagAppendedAt != 0 {
		appended = time.Unix(0, r.Varint("appended-at"))
	}
	if err := r.End(); err != nil {
		return err
	}

	*out = raft.Log{
		Index:      index,
		Term:       term,
		Type:       raft.LogType(body[2]),
		AppendedAt: appended,
	}
	// One allocation for both payloads; the three-index slices keep an append
	// to Data from overwriting Extensions.
	if n := len(data) + len(ext); n > 0 {
		buf := make([]byte, n)
		copy(buf, data)
		copy(buf[len(data):], ext)
		if len(data) > 0 {
			out.Data = buf[:len(data):len(data)]
		}
		if len(ext) > 0 {
			out.Extensions = buf[len(data):n:n]
		}
	}
	return nil
}

// Keys of the "log" bucket are 8-byte big-endian indexes, so bbolt's byte
// order is index order and a cursor's First/Last are the first/last index.
const indexKeySize = 8

func putIndexKey(dst []byte, index uint64) { binary.BigEndian.PutUint64(dst, index) }

func indexKey(index uint64) []byte {
	var k [indexKeySize]byte
	putIndexKey(k[:], index)
	return k[:]
}

// parseIndexKey decodes a key read from a log bucket.
func parseIndexKey(k []byte) (uint64, error) {
	if len(k) != indexKeySize {
		return 0, fmt.Errorf("%w: log key of %d bytes, want %d", ErrCorrupt, len(k), indexKeySize)
	}
	return binary.BigEndian.Uint64(k), nil
}
