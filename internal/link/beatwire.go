package link

import (
	"encoding/binary"
	"errors"

	"github.com/duro-db/duro/internal/bounded"
)

// The heartbeat protocol (framing.ProtoBeat): the dialing node sends frames holding one
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
	// maxName bounds the leader ID and address, and a remote error message.
	maxName = 1024
)

// errBeatDecode wraps every decoding error of the heartbeat protocol.
var errBeatDecode = errors.New("link: bad heartbeat frame")

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

// beatHeader reads a heartbeat frame's version and round ID.
func beatHeader(r *bounded.Reader) uint64 {
	if v := r.Byte("version"); r.Err() == nil && v != beatVersion {
		r.Fail("version %d", v)
	}
	return r.Uvarint("round ID")
}

// decodeBeatRound decodes a round frame. The round's byte slices alias b.
func decodeBeatRound(b []byte) (*beatRound, error) {
	r := bounded.NewReader(b, errBeatDecode)
	round := &beatRound{id: beatHeader(&r)}
	round.leaderID = r.Bytes("leader ID", maxName)
	round.leaderAddr = r.Bytes("leader address", maxName)
	n := r.Count("count", 2, maxBeatGroups)
	if r.Err() == nil && (len(round.leaderID) == 0 || len(round.leaderAddr) == 0) {
		r.Fail("empty leader ID or address")
	}
	if r.Err() != nil {
		return nil, r.Err()
	}
	round.beats = make([]beat, n)
	for i := range round.beats {
		round.beats[i] = beat{group: r.Uvarint("group"), term: r.Uvarint("term")}
	}
	if err := r.End(); err != nil {
		return nil, err
	}
	return round, nil
}

// decodeBeatAcks decodes an acks frame.
func decodeBeatAcks(b []byte) (id uint64, acks []beatAck, err error) {
	r := bounded.NewReader(b, errBeatDecode)
	id = beatHeader(&r)
	n := r.Count("count", 3, maxBeatGroups)
	if r.Err() != nil {
		return 0, nil, r.Err()
	}
	acks = make([]beatAck, n)
	for i := range acks {
		acks[i] = beatAck{group: r.Uvarint("group"), term: r.Uvarint("term")}
		switch ok := r.Byte("ok"); ok {
		case 0:
		case 1:
			acks[i].ok = true
		default:
			r.Fail("ok byte %d", ok)
		}
	}
	if err := r.End(); err != nil {
		return 0, nil, err
	}
	return id, acks, nil
}
