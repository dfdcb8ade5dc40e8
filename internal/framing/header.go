package framing

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Protocol markers, the sixth byte of a connection header. Zero is never
// valid (it is what an all-zero buffer would send) and 5..255 are reserved
// for future protocols; ReadHeader (and so a Mux) rejects them with
// ErrUnknownProto.
const (
	// ProtoRaft is followed by the group ID; the rest of the stream is
	// hashicorp/raft's NetworkTransport protocol for that group.
	ProtoRaft byte = 1
	// ProtoClient is the duro SDK protocol: length-prefixed frames (see
	// WriteFrame and ReadFrame). It carries no group ID.
	ProtoClient byte = 2
	// ProtoBeat is the node-to-node heartbeat protocol: frames (WriteFrame,
	// ReadFrame) carrying one heartbeat round for every group the dialing node
	// leads. It carries no group ID.
	ProtoBeat byte = 3
	// ProtoAppend is node-to-node log replication: frames (WriteFrame,
	// ReadFrame) carrying raft AppendEntries requests of any group the
	// dialing node leads, and their responses, multiplexed by request ID.
	// It carries no group ID in the header.
	ProtoAppend byte = 4
)

const (
	// HeaderVersion is the only header version this package writes and accepts.
	HeaderVersion byte = 1

	// MaxGroupID is the largest group ID a header may carry. Bounding it keeps
	// the header short (at most MaxHeaderLen bytes) and lets a reader reject an
	// absurd ID after at most five bytes.
	MaxGroupID uint64 = 1<<32 - 1

	// MaxHeaderLen is the longest possible header: magic, version, protocol
	// and a group ID of at most MaxGroupID as a uvarint.
	MaxHeaderLen = len(headerMagic) + 1 + 1 + binary.MaxVarintLen32
)

// headerMagic opens every connection. It lets a node reject at once a stray
// HTTP request, a port scanner or a peer speaking another protocol.
const headerMagic = "DURO"

// Errors returned by ReadHeader (and WriteHeader for invalid arguments).
// They are wrapped with detail; test with errors.Is.
var (
	// ErrBadMagic: the connection does not start with "DURO".
	ErrBadMagic = errors.New("framing: bad header magic")
	// ErrBadVersion: the header version is not HeaderVersion.
	ErrBadVersion = errors.New("framing: unsupported header version")
	// ErrUnknownProto: the protocol byte is not ProtoRaft, ProtoClient, ProtoBeat or ProtoAppend.
	ErrUnknownProto = errors.New("framing: unknown protocol")
	// ErrBadGroup: the group ID overflows, exceeds MaxGroupID, is not in
	// minimal uvarint form, or is given for a protocol that carries none.
	ErrBadGroup = errors.New("framing: bad group ID")
)

// AppendHeader appends the header for proto (and group, for ProtoRaft) to dst.
//
// Layout: magic "DURO" (4 bytes) | version (1 byte) | proto (1 byte) |
// group (uvarint, ProtoRaft only). group must be 0 for other protocols.
func AppendHeader(dst []byte, proto byte, group uint64) ([]byte, error) {
	switch proto {
	case ProtoRaft:
		if group > MaxGroupID {
			return dst, fmt.Errorf("%w: %d > %d", ErrBadGroup, group, MaxGroupID)
		}
	case ProtoClient, ProtoBeat, ProtoAppend:
		if group != 0 {
			return dst, fmt.Errorf("%w: protocol %d carries no group, got %d", ErrBadGroup, proto, group)
		}
	default:
		return dst, fmt.Errorf("%w: %d", ErrUnknownProto, proto)
	}
	dst = append(dst, headerMagic...)
	dst = append(dst, HeaderVersion, proto)
	if proto == ProtoRaft {
		dst = binary.AppendUvarint(dst, group)
	}
	return dst, nil
}

// WriteHeader writes the header for proto and group to w in a single Write,
// so that it travels in one segment. See AppendHeader for the layout.
func WriteHeader(w io.Writer, proto byte, group uint64) error {
	var buf [MaxHeaderLen]byte
	b, err := AppendHeader(buf[:0], proto, group)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("framing: write header: %w", err)
	}
	return nil
}

// ReadHeader reads one header from r and returns its protocol and group (0
// for protocols without one). It reads exactly the header's bytes, never
// more, so the rest of the stream is left in r.
//
// It returns io.EOF if r ends before the first byte, io.ErrUnexpectedEOF if it
// ends inside the header, one of ErrBadMagic, ErrBadVersion, ErrUnknownProto,
// ErrBadGroup (wrapped) for a malformed header, and r's own error otherwise.
// It stops reading at the first byte that makes the header invalid.
func ReadHeader(r io.ByteReader) (proto byte, group uint64, err error) {
	var fixed [len(headerMagic) + 2]byte
	for i := range fixed {
		b, err := r.ReadByte()
		if err != nil {
			return 0, 0, truncated(err, i)
		}
		fixed[i] = b
	}
	if string(fixed[:len(headerMagic)]) != headerMagic {
		return 0, 0, fmt.Errorf("%w: %q", ErrBadMagic, fixed[:len(headerMagic)])
	}
	if v := fixed[len(headerMagic)]; v != HeaderVersion {
		return 0, 0, fmt.Errorf("%w: %d", ErrBadVersion, v)
	}
	proto = fixed[len(headerMagic)+1]
	switch proto {
	case ProtoClient, ProtoBeat, ProtoAppend:
		return proto, 0, nil
	case ProtoRaft:
		group, err := readGroup(r)
		if err != nil {
			return 0, 0, err
		}
		return proto, group, nil
	default:
		return 0, 0, fmt.Errorf("%w: %d", ErrUnknownProto, proto)
	}
}

// readGroup decodes a uvarint no larger than MaxGroupID in minimal form.
// Unlike binary.ReadUvarint it gives up as soon as the value is out of range,
// and it rejects padded encodings so that every ID has exactly one header.
func readGroup(r io.ByteReader) (uint64, error) {
	var v uint64
	for i := 0; i < binary.MaxVarintLen32; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, truncated(err, 1) // the fixed part was read: any end is unexpected
		}
		v |= uint64(b&0x7f) << (7 * i)
		if v > MaxGroupID {
			return 0, fmt.Errorf("%w: exceeds %d", ErrBadGroup, MaxGroupID)
		}
		if b < 0x80 {
			if b == 0 && i > 0 {
				return 0, fmt.Errorf("%w: non-minimal uvarint", ErrBadGroup)
			}
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: uvarint longer than %d bytes", ErrBadGroup, binary.MaxVarintLen32)
}

// truncated maps an io.EOF after n bytes of a header to io.EOF (nothing was
// sent) or io.ErrUnexpectedEOF (the peer stopped mid-header).
func truncated(err error, n int) error {
	if err == io.EOF && n > 0 {
		return io.ErrUnexpectedEOF
	}
	return err
}
