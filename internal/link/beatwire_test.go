package link

import (
	"errors"
	"reflect"
	"testing"
)

func TestBeatWireRoundTrip(t *testing.T) {
	r := &beatRound{id: 7, leaderID: []byte("n1"), leaderAddr: []byte("127.0.0.1:7101"),
		beats: []beat{{group: 0, term: 3}, {group: 16, term: 1 << 40}}}
	got, err := decodeBeatRound(appendBeatRound(nil, r))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round: got %+v, want %+v", got, r)
	}
	acks := []beatAck{{group: 0, term: 3, ok: true}, {group: 16, term: 9}}
	id, gotAcks, err := decodeBeatAcks(appendBeatAcks(nil, 7, acks))
	if err != nil || id != 7 || !reflect.DeepEqual(gotAcks, acks) {
		t.Fatalf("acks: got %d %+v %v, want 7 %+v", id, gotAcks, err, acks)
	}
}

func TestBeatWireRejects(t *testing.T) {
	good := appendBeatRound(nil, &beatRound{id: 1, leaderID: []byte("n1"), leaderAddr: []byte("a:1"), beats: []beat{{1, 2}}})
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version", append([]byte{9}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"count beyond the frame", []byte{beatVersion, 1, 2, 'n', '1', 1, 'a', 0xff, 0xff, 0x03}},
		{"empty leader", []byte{beatVersion, 1, 0, 1, 'a', 0}},
		{"name too long", append([]byte{beatVersion, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}, make([]byte, 16)...)},
	} {
		if _, err := decodeBeatRound(tc.b); !errors.Is(err, errBeatDecode) {
			t.Errorf("%s: err = %v, want errBeatDecode", tc.name, err)
		}
	}
	if _, _, err := decodeBeatAcks([]byte{beatVersion, 1, 1, 1, 1, 2}); !errors.Is(err, errBeatDecode) {
		t.Errorf("ok byte 2: err = %v, want errBeatDecode", err)
	}
}

// The decoders read what peers send: they must never panic, and must never accept more
// items than the frame holds.
func FuzzDecodeBeatRound(f *testing.F) {
	f.Add(appendBeatRound(nil, &beatRound{id: 1, leaderID: []byte("n1"), leaderAddr: []byte("a:1"), beats: []beat{{1, 2}}}))
	f.Add([]byte{beatVersion, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeBeatRound(b)
		if err == nil && 2*len(r.beats) > len(b) {
			t.Fatalf("%d beats from %d bytes", len(r.beats), len(b))
		}
	})
}

func FuzzDecodeBeatAcks(f *testing.F) {
	f.Add(appendBeatAcks(nil, 3, []beatAck{{1, 2, true}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, acks, err := decodeBeatAcks(b)
		if err == nil && 3*len(acks) > len(b) {
			t.Fatalf("%d acks from %d bytes", len(acks), len(b))
		}
	})
}
