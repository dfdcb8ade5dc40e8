package link

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/internal/bounded"
)

// The append protocol (framing.ProtoAppend): the dialing node sends request frames, the
// other answers each with a response frame carrying the same ID, in any order.
//
//	request:  version (1 byte) | kindRequest | ID (uvarint) | group (uvarint)
//	          | protocol version (uvarint) | sender ID (bytes) | sender address (bytes)
//	          | term | leader (bytes) | prev log entry | prev log term | leader commit
//	          | count (uvarint) | count × entry
//	entry:    index | term | type (1 byte) | data (bytes) | extensions (bytes)
//	          | appended-at flag (1 byte) [| appended-at (varint unix nanoseconds)]
//	response: version (1 byte) | kindResponse | ID | status (1 byte)
//	          status 0: protocol version | sender ID (bytes) | sender address (bytes)
//	                    | term | last log | flags (1 byte: 1 success, 2 no retry backoff)
//	          status 1: error message (bytes)
//
// Integers are uvarints; bytes are a uvarint length and the bytes. A request that would
// not fit in one frame (framing.MaxFrameSize) goes by raft's own transport instead.
//
// The leader field is where raft's deprecated AppendEntriesRequest.Leader travelled. Raft
// (v1.7) fills it and RPCHeader.Addr with the same bytes, and reads Addr, falling back to
// Leader only when Addr is empty; so the field now carries the sender's address and a
// decoded request keeps it only as that fallback. It stays in the frame, so the format
// (version 1) is unchanged and nodes of older and newer builds read each other's requests.
const (
	appendVersion byte = 1
	kindRequest   byte = 1
	kindResponse  byte = 2

	// maxAppendEntries bounds a request's entries; raft sends at most MaxAppendEntries.
	maxAppendEntries = 1 << 16
	// maxBlob bounds one byte string: a frame's worth.
	maxBlob = 4 << 20
	// minEntrySize is the smallest encoded entry, for the count check.
	minEntrySize = 6
)

// errAppendDecode wraps every decoding error of the append protocol.
var errAppendDecode = errors.New("link: bad append frame")

func appendBlob(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendRPCHeader(dst []byte, h *raft.RPCHeader) []byte {
	dst = binary.AppendUvarint(dst, uint64(max(h.ProtocolVersion, 0)))
	dst = appendBlob(dst, h.ID)
	return appendBlob(dst, h.Addr)
}

// appendRequestFrame appends the frame of request id of group gid.
func appendRequestFrame(dst []byte, id, gid uint64, a *raft.AppendEntriesRequest) []byte {
	dst = append(dst, appendVersion, kindRequest)
	dst = binary.AppendUvarint(dst, id)
	dst = binary.AppendUvarint(dst, gid)
	dst = appendRPCHeader(dst, &a.RPCHeader)
	dst = binary.AppendUvarint(dst, a.Term)
	dst = appendBlob(dst, a.RPCHeader.Addr) // the leader field: see above
	dst = binary.AppendUvarint(dst, a.PrevLogEntry)
	dst = binary.AppendUvarint(dst, a.PrevLogTerm)
	dst = binary.AppendUvarint(dst, a.LeaderCommitIndex)
	dst = binary.AppendUvarint(dst, uint64(len(a.Entries)))
	for _, e := range a.Entries {
		dst = binary.AppendUvarint(dst, e.Index)
		dst = binary.AppendUvarint(dst, e.Term)
		dst = append(dst, byte(e.Type))
		dst = appendBlob(dst, e.Data)
		dst = appendBlob(dst, e.Extensions)
		if e.AppendedAt.IsZero() {
			dst = append(dst, 0)
		} else {
			dst = append(dst, 1)
			dst = binary.AppendVarint(dst, e.AppendedAt.UnixNano())
		}
	}
	return dst
}

// appendResponseFrame appends the frame answering request id with resp, or with err.
func appendResponseFrame(dst []byte, id uint64, resp *raft.AppendEntriesResponse, err error) []byte {
	dst = append(dst, appendVersion, kindResponse)
	dst = binary.AppendUvarint(dst, id)
	if err != nil {
		dst = append(dst, 1)
		msg := err.Error()
		if len(msg) > maxName {
			msg = msg[:maxName]
		}
		return appendBlob(dst, []byte(msg))
	}
	dst = append(dst, 0)
	dst = appendRPCHeader(dst, &resp.RPCHeader)
	dst = binary.AppendUvarint(dst, resp.Term)
	dst = binary.AppendUvarint(dst, resp.LastLog)
	var flags byte
	if resp.Success {
		flags |= 1
	}
	if resp.NoRetryBackoff {
		flags |= 2
	}
	return append(dst, flags)
}

// appendReader decodes one frame of the append protocol.
type appendReader struct {
	bounded.Reader
	// owned: the reader reads its own copy of the frame, so what it returns may alias it
	// (see keep); otherwise the frame is the connection's reused buffer.
	owned bool
}

func (r *appendReader) rpcHeader() raft.RPCHeader {
	v := r.Uvarint("protocol version")
	if r.Err() == nil && v > uint64(raft.ProtocolVersionMax) {
		r.Fail("protocol version %d", v)
	}
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersion(v), ID: r.keep(r.Bytes("sender ID", maxName)), Addr: r.keep(r.Bytes("sender address", maxName))}
}

// keep returns b, a part of the frame, for the decoded message to hold: copied out of a
// reused frame, or as it is from the reader's own copy (its capacity already cut by the
// Reader, so nothing appends into its neighbour). Empty stays nil, as raft's own decoding
// leaves it.
func (r *appendReader) keep(b []byte) []byte {
	switch {
	case len(b) == 0:
		return nil
	case r.owned:
		return b
	default:
		return append([]byte(nil), b...)
	}
}

// head reads a frame's version, kind and ID, and requires the kind.
func (r *appendReader) head(want byte) (id uint64) {
	if v := r.Byte("version"); r.Err() == nil && v != appendVersion {
		r.Fail("version %d", v)
	}
	kind := r.Byte("kind")
	if r.Err() == nil && kind != kindRequest && kind != kindResponse {
		r.Fail("kind %d", kind)
	}
	if r.Err() == nil && kind != want {
		if want == kindRequest {
			r.Fail("kind %d, want a request", kind)
		} else {
			r.Fail("kind %d, want a response", kind)
		}
	}
	return r.Uvarint("ID")
}

// decodeAppendRequest decodes a request frame. Nothing in the result aliases b: the
// entries' data share one copy of the frame, one allocation instead of one per entry.
func decodeAppendRequest(b []byte) (id, gid uint64, a *raft.AppendEntriesRequest, err error) {
	r := appendReader{Reader: bounded.NewReader(bytes.Clone(b), errAppendDecode), owned: true}
	id = r.head(kindRequest)
	gid = r.Uvarint("group")
	a = &raft.AppendEntriesRequest{RPCHeader: r.rpcHeader()}
	a.Term = r.Uvarint("term")
	if leader := r.Bytes("leader", maxName); len(a.RPCHeader.Addr) == 0 {
		a.RPCHeader.Addr = r.keep(leader)
	}
	a.PrevLogEntry = r.Uvarint("prev log entry")
	a.PrevLogTerm = r.Uvarint("prev log term")
	a.LeaderCommitIndex = r.Uvarint("leader commit")
	n := r.Count("count", minEntrySize, maxAppendEntries)
	if r.Err() != nil {
		return 0, 0, nil, r.Err()
	}
	if n > 0 {
		logs := make([]raft.Log, n)
		a.Entries = make([]*raft.Log, n)
		for i := range logs {
			e := &logs[i]
			e.Index = r.Uvarint("index")
			e.Term = r.Uvarint("term")
			e.Type = raft.LogType(r.Byte("type"))
			e.Data = r.keep(r.Bytes("data", maxBlob))
			e.Extensions = r.keep(r.Bytes("extensions", maxBlob))
			switch f := r.Byte("appended-at flag"); f {
			case 0:
			case 1:
				if v := r.Varint("appended-at"); r.Err() == nil {
					e.AppendedAt = time.Unix(0, v)
				}
			default:
				r.Fail("appended-at flag %d", f)
			}
			a.Entries[i] = e
		}
	}
	if err := r.End(); err != nil {
		return 0, 0, nil, err
	}
	return id, gid, a, nil
}

// decodeAppendResponse decodes a response frame: the response, or the error the peer
// answered with (remote), or a decoding error (err).
func decodeAppendResponse(b []byte) (id uint64, resp *raft.AppendEntriesResponse, remote, err error) {
	r := appendReader{Reader: bounded.NewReader(b, errAppendDecode)}
	id = r.head(kindResponse)
	switch status := r.Byte("status"); {
	case r.Err() != nil:
	case status == 1:
		msg := string(r.Bytes("error", maxName))
		if err := r.End(); err != nil {
			return 0, nil, nil, err
		}
		return id, nil, errors.New(msg), nil
	case status != 0:
		r.Fail("status %d", status)
	}
	resp = &raft.AppendEntriesResponse{RPCHeader: r.rpcHeader()}
	resp.Term = r.Uvarint("term")
	resp.LastLog = r.Uvarint("last log")
	flags := r.Byte("flags")
	if r.Err() == nil && flags&^3 != 0 {
		r.Fail("flags %#x", flags)
	}
	resp.Success, resp.NoRetryBackoff = flags&1 != 0, flags&2 != 0
	if err := r.End(); err != nil {
		return 0, nil, nil, err
	}
	return id, resp, nil, nil
}
