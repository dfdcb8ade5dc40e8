package raftgroup

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The heartbeat protocol (transport.ProtoBeat): the dialing node sends frames holding one
// round each, the other node answers every round with one frame, in order.
//
//	round: version (1 byte) | round ID (uvarint) | leader ID (uvarint length, bytes)
//	       | leader address (uvarint length, bytes) | count (uvarint)
//	       | count × (group (uvarint), term (uvarint))
//	acks:  version (1 byte) | round ID (uvarint) | count (uvarint)
//	       | count × (group (uvarint), term (uvarint), ok (1 byte: 0 or 1))
//
// The acks list the round's groups in the round's order.
const beatVersion byte = 1

const (
	// maxBeatGroups bounds the groups of one round (and so the work a frame can ask for).
	maxBeatGroups = 1 << 16
	// maxBeatName bounds the leader ID and address.
	maxBeatName = 1024
)

// errBeatDecode wraps every decoding error of the heartbeat protocol.
var errBeatDecode = errors.New("raftgroup: bad heartbeat frame")

type beatRound struct {
	id         uint64
	leaderID   []byte
	leaderAddr []byte
	beats      []beat
}

type beat struct {
	group uint64
	term  uint64
}

type beatAck struct {
	group uint64
	term  uint64 // the follower's term after handling the beat
	ok    bool   // the follower accepts the sender as the group's leader in that term
}

func appendBeatRound(dst []byte, r *beatRound) []byte {
	dst = append(dst, beatVersion)
	dst = binary.AppendUvarint(dst, r.id)
	dst = binary.AppendUvarint(dst, uint64(len(r.leaderID)))
	dst = append(dst, r.leaderID...)
	dst = binary.AppendUvarint(dst, uint64(len(r.leaderAddr)))
	dst = append(dst, r.leaderAddr...)
	dst = binary.AppendUvarint(dst, uint64(len(r.beats)))
	for _, b := range r.beats {
		dst = binary.AppendUvarint(dst, b.group)
		dst = binary.AppendUvarint(dst, b.term)
	}
	return dst
}

func appendBeatAcks(dst []byte, id uint64, acks []beatAck) []byte {
	dst = append(dst, beatVersion)
	dst = binary.AppendUvarint(dst, id)
	dst = binary.AppendUvarint(dst, uint64(len(acks)))
	for _, a := range acks {
		dst = binary.AppendUvarint(dst, a.group)
		dst = binary.AppendUvarint(dst, a.term)
		ok := byte(0)
		if a.ok {
			ok = 1
		}
		dst = append(dst, ok)
	}
	return dst
}

// beatReader decodes one frame of the heartbeat protocol, or of the append protocol
// (appendwire.go); the first error sticks, wrapping kind (errBeatDecode if nil).
type beatReader struct {
	b    []byte
	err  error
	kind error
	// owned: b is the decoder's own copy of the frame, so what it returns may alias it
	// (see keep); otherwise the frame is the connection's reused buffer.
	owned bool
}

func (r *beatReader) fail(format string, args ...any) {
	if r.err == nil {
		kind := r.kind
		if kind == nil {
			kind = errBeatDecode
		}
		r.err = fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))
	}
}

func (r *beatReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("%s: bad uvarint", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *beatReader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("%s: truncated", what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *beatReader) bytes(what string) []byte { return r.blob(what, maxBeatName) }

// blob reads a length-prefixed byte string of at most max bytes; it aliases the frame.
func (r *beatReader) blob(what string, max int) []byte {
	n := r.uvarint(what + " length")
	if r.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(r.b)) {
		r.fail("%s: %d bytes", what, n)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// count reads a list length, refusing one the rest of the frame cannot hold (each item
// takes at least min bytes), so a tiny frame cannot make the reader allocate much.
func (r *beatReader) count(min int) int { return r.countUpTo(min, maxBeatGroups) }

func (r *beatReader) countUpTo(min, max int) int {
	n := r.uvarint("count")
	if r.err != nil {
		return 0
	}
	if n > uint64(max) || n*uint64(min) > uint64(len(r.b)) {
		r.fail("count %d for %d bytes", n, len(r.b))
		return 0
	}
	return int(n)
}

func (r *beatReader) header() uint64 {
	if v := r.byte("version"); r.err == nil && v != beatVersion {
		r.fail("version %d", v)
	}
	return r.uvarint("round ID")
}

func (r *beatReader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

// decodeBeatRound decodes a round frame. The round's byte slices alias b.
func decodeBeatRound(b []byte) (*beatRound, error) {
	r := beatReader{b: b}
	round := &beatRound{id: r.header()}
	round.leaderID = r.bytes("leader ID")
	round.leaderAddr = r.bytes("leader address")
	n := r.count(2)
	if r.err == nil && (len(round.leaderID) == 0 || len(round.leaderAddr) == 0) {
		r.fail("empty leader ID or address")
	}
	if r.err != nil {
		return nil, r.err
	}
	round.beats = make([]beat, n)
	for i := range round.beats {
		round.beats[i] = beat{group: r.uvarint("group"), term: r.uvarint("term")}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return round, nil
}

// decodeBeatAcks decodes an acks frame.
func decodeBeatAcks(b []byte) (id uint64, acks []beatAck, err error) {
	r := beatReader{b: b}
	id = r.header()
	n := r.count(3)
	if r.err != nil {
		return 0, nil, r.err
	}
	acks = make([]beatAck, n)
	for i := range acks {
		acks[i] = beatAck{group: r.uvarint("group"), term: r.uvarint("term")}
		switch ok := r.byte("ok"); ok {
		case 0:
		case 1:
			acks[i].ok = true
		default:
			r.fail("ok byte %d", ok)
		}
	}
	if err := r.end(); err != nil {
		return 0, nil, err
	}
	return id, acks, nil
}
