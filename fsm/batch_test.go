package fsm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// Each command of a batch applies on its own, as if it were its own entry: a rejected one
// (bad content, wrong version) leaves the others applied, in order.
func TestBatchAppliesEachCommandOnItsOwn(t *testing.T) {
	s := openTest(t, Options{})
	a, b := testID(1), testID(2)
	cmds := [][]byte{
		mustEncode(t, &Command{Object: a, Ops: []Op{put("k", "1")}, Time: 1, Version: 1}),
		[]byte{0x80 | 0x0f}, // a map header and nothing else: does not decode
		mustEncode(t, &Command{Object: b, Ops: []Op{put("k", "x")}, Time: 2, Version: 5}),
		mustEncode(t, &Command{Object: a, Ops: []Op{put("k", "2")}, Time: 3, Version: 2}),
	}
	data, err := EncodeBatch(cmds)
	if err != nil {
		t.Fatal(err)
	}
	resp := s.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
	br, ok := resp.(*BatchResult)
	if !ok {
		t.Fatalf("response %T, want *BatchResult", resp)
	}
	if len(br.Results) != 4 {
		t.Fatalf("%d results, want 4", len(br.Results))
	}
	for i, r := range br.Results {
		if r.Index != 1 {
			t.Errorf("result %d: index %d, want the batch's 1", i, r.Index)
		}
	}
	if br.Results[0].Err != nil || br.Results[0].Version != 1 {
		t.Errorf("first: %+v", br.Results[0])
	}
	if !errors.Is(br.Results[1].Err, ErrBadCommand) {
		t.Errorf("undecodable command: err %v, want ErrBadCommand", br.Results[1].Err)
	}
	if !errors.Is(br.Results[2].Err, ErrVersionConflict) {
		t.Errorf("wrong version: err %v, want ErrVersionConflict", br.Results[2].Err)
	}
	if br.Results[3].Err != nil || br.Results[3].Version != 2 {
		t.Errorf("last: %+v", br.Results[3])
	}
	if got := dump(t, s, a); len(got) != 1 || got[0] != (kv{"k", "2"}) {
		t.Errorf("a holds %v, want k=2", got)
	}
	if got := dump(t, s, b); len(got) != 0 {
		t.Errorf("the rejected command of b was applied: %v", got)
	}
	if s.AppliedIndex() != 1 {
		t.Errorf("applied index %d, want 1", s.AppliedIndex())
	}
	// A replay of the entry applies nothing again.
	resp = s.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
	if r, ok := resp.(*Result); !ok || !errors.Is(r.Err, ErrAlreadyApplied) {
		t.Errorf("replay: %#v, want *Result with ErrAlreadyApplied", resp)
	}
}

// A batch whose framing is malformed is rejected whole, with a typed error, and the entry
// still advances the applied index.
func TestMalformedBatchIsRejectedWhole(t *testing.T) {
	s := openTest(t, Options{})
	good := mustEncode(t, cmd(testID(1), put("k", "v")))
	data, err := EncodeBatch([][]byte{good, good})
	if err != nil {
		t.Fatal(err)
	}
	for i, bad := range [][]byte{
		data[:len(data)-1],             // truncated
		append(bytes.Clone(data), 0),   // trailing byte
		{0x90},                         // empty batch
		{0x92, 0xc4, 0x01, 0x80, 0x01}, // second element not bytes
	} {
		resp := s.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: bad})
		r, ok := resp.(*Result)
		if !ok || !errors.Is(r.Err, ErrBadBatch) || !errors.Is(r.Err, ErrBadCommand) {
			t.Errorf("case %d: %#v, want *Result with ErrBadBatch", i, resp)
		}
		if s.AppliedIndex() != uint64(i+1) {
			t.Errorf("case %d: applied index %d", i, s.AppliedIndex())
		}
	}
	if got := dump(t, s, testID(1)); len(got) != 0 {
		t.Errorf("a command of a malformed batch was applied: %v", got)
	}
	if _, err := EncodeBatch(nil); !errors.Is(err, ErrBadBatch) {
		t.Errorf("EncodeBatch(nil): %v", err)
	}
}

func FuzzSplitBatch(f *testing.F) {
	good, _ := EncodeCommand(cmd(testID(1), put("k", "v")))
	for _, n := range []int{1, 2, 16, 300} {
		cmds := make([][]byte, n)
		for i := range cmds {
			cmds[i] = good
		}
		b, _ := EncodeBatch(cmds)
		f.Add(b)
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		cmds, err := SplitBatch(b)
		if err != nil {
			if !errors.Is(err, ErrBadBatch) {
				t.Fatalf("error %v does not wrap ErrBadBatch", err)
			}
			return
		}
		again, err := EncodeBatch(cmds)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := SplitBatch(again)
		if err != nil || len(back) != len(cmds) {
			t.Fatalf("round trip: %d commands, %v", len(back), err)
		}
		for i := range cmds {
			if !bytes.Equal(back[i], cmds[i]) {
				t.Fatalf("command %d differs after a round trip", i)
			}
		}
	})
}
