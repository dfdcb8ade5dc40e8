package link

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func sampleAppend() *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{
		RPCHeader:         raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("n1"), Addr: []byte("127.0.0.1:7101")},
		Term:              7,
		PrevLogEntry:      41,
		PrevLogTerm:       6,
		LeaderCommitIndex: 40,
		Entries: []*raft.Log{
			{Index: 42, Term: 7, Type: raft.LogCommand, Data: []byte("put"), AppendedAt: time.Unix(1_700_000_000, 5)},
			{Index: 43, Term: 7, Type: raft.LogConfiguration, Data: bytes.Repeat([]byte{1}, 300), Extensions: []byte("ext")},
			{Index: 44, Term: 7, Type: raft.LogNoop},
		},
	}
}

func TestAppendWireRoundTrip(t *testing.T) {
	req := sampleAppend()
	frame := appendRequestFrame(nil, 9, 3, req)
	id, gid, got, err := decodeAppendRequest(frame)
	if err != nil || id != 9 || gid != 3 {
		t.Fatalf("decode request: id %d, group %d, %v", id, gid, err)
	}
	clear(frame) // the connection reuses its frame buffer: nothing decoded may alias it
	// Times compare by instant: the decoded ones carry no monotonic reading.
	for i := range got.Entries {
		if !got.Entries[i].AppendedAt.Equal(req.Entries[i].AppendedAt) {
			t.Fatalf("entry %d: appended at %v, want %v", i, got.Entries[i].AppendedAt, req.Entries[i].AppendedAt)
		}
		got.Entries[i].AppendedAt = req.Entries[i].AppendedAt
	}
	if !reflect.DeepEqual(got, req) {
		t.Fatalf("request: got %+v, want %+v", got, req)
	}

	resp := &raft.AppendEntriesResponse{RPCHeader: req.RPCHeader, Term: 7, LastLog: 44, Success: true, NoRetryBackoff: true}
	id, gotResp, remote, err := decodeAppendResponse(appendResponseFrame(nil, 9, resp, nil))
	if err != nil || remote != nil || id != 9 || !reflect.DeepEqual(gotResp, resp) {
		t.Fatalf("response: got %d %+v %v %v, want 9 %+v", id, gotResp, remote, err, resp)
	}
	id, _, remote, err = decodeAppendResponse(appendResponseFrame(nil, 10, nil, errors.New("group 3 is not running")))
	if err != nil || id != 10 || remote == nil || remote.Error() != "group 3 is not running" {
		t.Fatalf("error response: got %d %v %v", id, remote, err)
	}
}

// The leader field repeats the sender's address, which is where raft looks for the
// leader. A frame whose header has no address (a raft that filled only its deprecated
// Leader field) still names the leader, through that field.
func TestAppendWireLeaderAddress(t *testing.T) {
	frame := appendRequestFrame(nil, 1, 2, sampleAppend())
	leader := appendBlob(nil, []byte("127.0.0.1:7101"))
	if !bytes.Contains(frame, append(binary.AppendUvarint(nil, 7), leader...)) {
		t.Fatalf("the leader field after the term does not hold the sender's address: %x", frame)
	}

	old := []byte{appendVersion, kindRequest, 1, 2}
	old = binary.AppendUvarint(old, uint64(raft.ProtocolVersionMax))
	old = appendBlob(old, []byte("n1"))
	old = appendBlob(old, nil) // no address in the header
	old = binary.AppendUvarint(old, 7)
	old = append(old, leader...)
	old = append(old, 0, 0, 0, 0) // prev log entry, prev log term, leader commit, no entries
	_, _, got, err := decodeAppendRequest(old)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.RPCHeader.Addr) != "127.0.0.1:7101" {
		t.Fatalf("leader address %q, want the leader field's", got.RPCHeader.Addr)
	}
}

func TestAppendWireRejects(t *testing.T) {
	good := appendRequestFrame(nil, 1, 2, sampleAppend())
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version", append([]byte{9}, good[1:]...)},
		{"response kind", append([]byte{appendVersion, kindResponse}, good[2:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"count beyond the frame", []byte{appendVersion, kindRequest, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0x03}},
	} {
		if _, _, _, err := decodeAppendRequest(tc.b); !errors.Is(err, errAppendDecode) {
			t.Errorf("%s: err = %v, want errAppendDecode", tc.name, err)
		}
	}
	if _, _, _, err := decodeAppendResponse([]byte{appendVersion, kindResponse, 1, 7}); !errors.Is(err, errAppendDecode) {
		t.Errorf("status 7: err = %v, want errAppendDecode", err)
	}
}

// The decoders read what peers send: never a panic, never more entries than the frame
// can hold, and what decodes encodes back to the same frame.
func FuzzDecodeAppendRequest(f *testing.F) {
	f.Add(appendRequestFrame(nil, 1, 2, sampleAppend()))
	f.Add(appendRequestFrame(nil, 1, 2, &raft.AppendEntriesRequest{Term: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, gid, req, err := decodeAppendRequest(b)
		if err != nil {
			return
		}
		if minEntrySize*len(req.Entries) > len(b) {
			t.Fatalf("%d entries from %d bytes", len(req.Entries), len(b))
		}
		if again := appendRequestFrame(nil, id, gid, req); !bytes.Equal(again, b) {
			// Varints have one canonical encoding only when minimal; a longer
			// one decodes to the same value, so compare by decoding.
			id2, gid2, req2, err := decodeAppendRequest(again)
			if err != nil || id2 != id || gid2 != gid || len(req2.Entries) != len(req.Entries) {
				t.Fatalf("re-encoded frame decodes differently: %v", err)
			}
		}
	})
}

func FuzzDecodeAppendResponse(f *testing.F) {
	f.Add(appendResponseFrame(nil, 3, &raft.AppendEntriesResponse{Term: 2, LastLog: 9, Success: true}, nil))
	f.Add(appendResponseFrame(nil, 3, nil, errors.New("no")))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _, _ = decodeAppendResponse(b)
	})
}
