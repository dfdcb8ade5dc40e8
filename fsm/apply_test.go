package fsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"
)

// objectState is everything observable about one object.
type objectState struct {
	kvs      []kv
	version  uint64
	alarm    int64
	hasAlarm bool
}

func readObject(t *testing.T, s *Store, id []byte) objectState {
	t.Helper()
	st := objectState{kvs: dump(t, s, id)}
	if err := s.View(func(tx *Tx) error {
		st.version = tx.Version(id)
		st.alarm, st.hasAlarm = tx.Alarm(id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return st
}

// checkShape verifies the storage invariants: every object with keys has a record, and
// alarm records and alarm index entries are in one-to-one correspondence.
func checkShape(t *testing.T, s *Store) {
	t.Helper()
	err := s.View(func(tx *Tx) error {
		var record []byte
		c := tx.objects.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			id, key, err := splitObjectKey(k)
			if err != nil {
				return err
			}
			if key == nil {
				record = id
			} else if !bytes.Equal(id, record) {
				return fmt.Errorf("object %x has keys but no record", id)
			}
		}
		withAlarm := 0
		if err := tx.objects.ForEach(func(id, v []byte) error {
			if len(id) != IDLen {
				return nil // a key, not a record
			}
			m, err := decodeObjectMeta(v)
			if err != nil {
				return err
			}
			if !m.hasAlarm {
				return nil
			}
			withAlarm++
			var k [8 + IDLen]byte
			timeKey(k[:], m.alarm)
			copy(k[8:], id)
			if tx.alarms.Get(k[:]) == nil {
				return fmt.Errorf("object %x: alarm %d not indexed", id, m.alarm)
			}
			return nil
		}); err != nil {
			return err
		}
		if n := countKeys(tx.alarms); n != withAlarm {
			return fmt.Errorf("alarm index has %d entries, %d objects have alarms", n, withAlarm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOps(t *testing.T) {
	id := testID(1)
	tests := []struct {
		name string
		cmds [][]Op // one command per element, each in its own batch
		want objectState
	}{
		{"put", [][]Op{{put("a", "1")}},
			objectState{kvs: []kv{{"a", "1"}}, version: 1}},
		{"put overwrites", [][]Op{{put("a", "1")}, {put("a", "2")}},
			objectState{kvs: []kv{{"a", "2"}}, version: 2}},
		{"put many, sorted", [][]Op{{put("b", "2"), put("a", "1"), put("c", "3")}},
			objectState{kvs: []kv{{"a", "1"}, {"b", "2"}, {"c", "3"}}, version: 1}},
		{"empty value", [][]Op{{{Kind: OpPut, Key: []byte("e")}}},
			objectState{kvs: []kv{{"e", ""}}, version: 1}},
		{"delete", [][]Op{{put("a", "1"), put("b", "2")}, {del("a")}},
			objectState{kvs: []kv{{"b", "2"}}, version: 2}},
		{"delete missing key", [][]Op{{put("a", "1")}, {del("zz")}},
			objectState{kvs: []kv{{"a", "1"}}, version: 2}},
		{"delete on missing object", [][]Op{{del("a")}},
			objectState{version: 1}},
		{"delete last key", [][]Op{{put("a", "1")}, {del("a")}},
			objectState{version: 2}},
		{"put then delete in one command", [][]Op{{put("a", "1"), del("a")}},
			objectState{version: 1}},
		{"delete then put in one command", [][]Op{{put("a", "1")}, {del("a"), put("a", "2")}},
			objectState{kvs: []kv{{"a", "2"}}, version: 2}},
		{"ops in order", [][]Op{{put("a", "1"), put("a", "2"), put("a", "3")}},
			objectState{kvs: []kv{{"a", "3"}}, version: 1}},
		{"delete-all", [][]Op{{put("a", "1"), put("b", "2"), setAlarm(10)}, {deleteAll()}},
			objectState{version: 2}},
		{"delete-all then put", [][]Op{{put("a", "1")}, {deleteAll(), put("c", "3")}},
			objectState{kvs: []kv{{"c", "3"}}, version: 2}},
		{"delete-all then set-alarm", [][]Op{{setAlarm(5)}, {deleteAll(), setAlarm(7)}},
			objectState{version: 2, alarm: 7, hasAlarm: true}},
		{"delete-all on missing object", [][]Op{{deleteAll()}},
			objectState{version: 1}},
		{"set-alarm", [][]Op{{setAlarm(100)}},
			objectState{version: 1, alarm: 100, hasAlarm: true}},
		{"set-alarm replaces", [][]Op{{setAlarm(100)}, {setAlarm(50)}},
			objectState{version: 2, alarm: 50, hasAlarm: true}},
		{"set-alarm twice in one command", [][]Op{{setAlarm(100), setAlarm(200)}},
			objectState{version: 1, alarm: 200, hasAlarm: true}},
		{"set-alarm zero and negative", [][]Op{{setAlarm(0)}, {setAlarm(-3)}},
			objectState{version: 2, alarm: -3, hasAlarm: true}},
		{"delete-alarm", [][]Op{{setAlarm(100), put("a", "1")}, {deleteAlarm()}},
			objectState{kvs: []kv{{"a", "1"}}, version: 2}},
		{"delete-alarm when none", [][]Op{{deleteAlarm()}},
			objectState{version: 1}},
		{"no ops bumps version", [][]Op{{}, {}, {}},
			objectState{version: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, Options{})
			for _, ops := range tt.cmds {
				applyOK(t, s, cmd(id, ops...))
			}
			got := readObject(t, s, id)
			if !equalKVs(got.kvs, tt.want.kvs) || got.version != tt.want.version ||
				got.alarm != tt.want.alarm || got.hasAlarm != tt.want.hasAlarm {
				t.Fatalf("state %+v, want %+v", got, tt.want)
			}
			checkShape(t, s)
			// Another object is untouched.
			if other := readObject(t, s, testID(2)); len(other.kvs) != 0 || other.version != 0 || other.hasAlarm {
				t.Fatalf("other object changed: %+v", other)
			}
		})
	}
}

func TestGetEmptyValueExists(t *testing.T) {
	s := openTest(t, Options{})
	id := testID(1)
	applyOK(t, s, cmd(id, Op{Kind: OpPut, Key: []byte("e")}, put("f", "x")))
	err := s.View(func(tx *Tx) error {
		if v, ok := tx.Get(id, []byte("e")); !ok || len(v) != 0 {
			t.Errorf("Get(e) = %q, %v; want empty, true", v, ok)
		}
		if v, ok := tx.Get(id, []byte("f")); !ok || string(v) != "x" {
			t.Errorf("Get(f) = %q, %v", v, ok)
		}
		if _, ok := tx.Get(id, []byte("g")); ok {
			t.Error("Get(g) found a missing key")
		}
		if _, ok := tx.Get(testID(9), []byte("e")); ok {
			t.Error("Get on a missing object found a key")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAtomicity(t *testing.T) {
	id := testID(1)
	ops := make([]Op, 100)
	for i := range ops {
		ops[i] = put(fmt.Sprintf("k%03d", i), "v")
	}
	s := openTest(t, Options{})

	// The 100th put is invalid: the command is rejected whole, before and at apply.
	bad := cmd(id, append(append([]Op{}, ops[:99]...), Op{Kind: OpPut, Key: make([]byte, MaxKeySize+1)})...)
	if _, err := EncodeCommand(bad); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("EncodeCommand: %v, want ErrKeyTooLarge", err)
	}
	raw := encodeUnchecked(t, bad) // as a faulty or malicious proposer would
	res := applyData(t, s, raw)[0]
	if !errors.Is(res.Err, ErrKeyTooLarge) || !errors.Is(res.Err, ErrBadCommand) {
		t.Fatalf("Result.Err = %v, want ErrKeyTooLarge", res.Err)
	}
	if res.Index != 1 || s.AppliedIndex() != 1 {
		t.Fatalf("index %d, applied %d; want 1, 1", res.Index, s.AppliedIndex())
	}
	if got := readObject(t, s, id); len(got.kvs) != 0 || got.version != 0 {
		t.Fatalf("rejected command left %+v", got)
	}

	// The valid 100 puts apply whole.
	res = applyOK(t, s, cmd(id, ops...))
	if res.Version != 1 {
		t.Fatalf("version %d, want 1", res.Version)
	}
	if got := dump(t, s, id); len(got) != 100 {
		t.Fatalf("%d keys, want 100", len(got))
	}
}

// encodeUnchecked encodes c without validating it.
func encodeUnchecked(t *testing.T, c *Command) []byte {
	t.Helper()
	b, err := msgpack.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBatchMixesRejectedAndNonCommandEntries(t *testing.T) {
	s := openTest(t, Options{})
	id := testID(1)
	logs := []*raft.Log{
		{Index: 1, Type: raft.LogCommand, Data: mustEncode(t, cmd(id, put("a", "1")))},
		{Index: 2, Type: raft.LogConfiguration, Data: []byte("whatever")},
		{Index: 3, Type: raft.LogCommand, Data: []byte{0xc1}}, // not msgpack
		{Index: 4, Type: raft.LogCommand, Data: mustEncode(t, cmd(id, put("b", "2")))},
		{Index: 5, Type: raft.LogCommand, Data: mustEncode(t, &Command{Time: 9})}, // no-op
	}
	resps := s.ApplyBatch(logs)
	if len(resps) != len(logs) {
		t.Fatalf("%d responses for %d entries", len(resps), len(logs))
	}
	if r := resps[0].(*Result); r.Err != nil || r.Index != 1 || r.Version != 1 {
		t.Errorf("entry 1: %+v", r)
	}
	if resps[1] != nil {
		t.Errorf("configuration entry: response %v, want nil", resps[1])
	}
	if r := resps[2].(*Result); !errors.Is(r.Err, ErrBadCommand) || r.Index != 3 {
		t.Errorf("garbage entry: %+v", r)
	}
	if r := resps[3].(*Result); r.Err != nil || r.Version != 2 {
		t.Errorf("entry 4: %+v", r)
	}
	if r := resps[4].(*Result); r.Err != nil || r.Index != 5 || r.Version != 0 {
		t.Errorf("no-op entry: %+v", r)
	}
	if s.AppliedIndex() != 5 {
		t.Fatalf("applied %d, want 5", s.AppliedIndex())
	}
	if got := dump(t, s, id); !equalKVs(got, []kv{{"a", "1"}, {"b", "2"}}) {
		t.Fatalf("state %v", got)
	}
	// A batch of only non-command entries still advances the index, and persists it.
	s.ApplyBatch([]*raft.Log{{Index: 6, Type: raft.LogConfiguration}})
	if s.AppliedIndex() != 6 {
		t.Fatalf("applied %d, want 6", s.AppliedIndex())
	}
	if err := s.View(func(tx *Tx) error {
		if tx.AppliedIndex() != 6 {
			return fmt.Errorf("persisted applied %d", tx.AppliedIndex())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestReplaySkipsAppliedEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	id := testID(1)
	var data [][]byte
	for i := range 15 {
		data = append(data, mustEncode(t, cmd(id, put(fmt.Sprintf("k%02d", i), "v"))))
	}
	s.ApplyBatch(logOf(1, data[:10]...))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.AppliedIndex() != 10 {
		t.Fatalf("applied after reopen %d, want 10", s.AppliedIndex())
	}
	// Raft replays from 5: 5..10 are skipped, 11..15 apply.
	resps := s.ApplyBatch(append(logOf(5, data[4:10]...), &raft.Log{Index: 11, Type: raft.LogConfiguration}))
	resps = append(resps, s.ApplyBatch(logOf(12, data[11:15]...))...)
	for i, r := range resps[:6] {
		res := r.(*Result)
		if !errors.Is(res.Err, ErrAlreadyApplied) || res.Index != uint64(5+i) {
			t.Fatalf("replayed entry %d: %+v, want ErrAlreadyApplied", 5+i, res)
		}
	}
	if resps[6] != nil {
		t.Fatalf("configuration entry: %v", resps[6])
	}
	if r := resps[7].(*Result); r.Err != nil || r.Version != 11 {
		t.Fatalf("entry 12: %+v, want version 11 (10 before, none twice)", r)
	}
	if got := readObject(t, s, id); got.version != 14 || len(got.kvs) != 14 {
		t.Fatalf("version %d, %d keys; want 14, 14", got.version, len(got.kvs))
	}
	// Skipping everything writes nothing and does not move the index back.
	s.ApplyBatch(logOf(1, data[:3]...))
	if s.AppliedIndex() != 15 {
		t.Fatalf("applied %d, want 15", s.AppliedIndex())
	}
}

func TestObjectWithoutKeysKeepsOnlyVersion(t *testing.T) {
	s := openTest(t, Options{})
	id := testID(1)
	applyOK(t, s, cmd(id, put("a", "1"), put("b", "2"), setAlarm(9)))
	applyOK(t, s, cmd(id, del("a"), del("b"), deleteAlarm()))
	err := s.View(func(tx *Tx) error {
		if k, _ := tx.objects.Cursor().Seek(appendObjectKey(nil, id, []byte{0})); bytes.HasPrefix(k, id) {
			t.Errorf("key %q left behind", k[IDLen:])
		}
		if v := tx.objects.Get(id); len(v) != 8 {
			t.Errorf("object-meta record %x, want only the version", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, s)
}

func TestWaitApplied(t *testing.T) {
	s := openTest(t, Options{})
	id := testID(1)
	ctx := context.Background()

	if err := s.WaitApplied(ctx, 0); err != nil {
		t.Fatalf("WaitApplied(0): %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.WaitApplied(ctx, 3) }()
	applyOK(t, s, cmd(id)) // 1
	applyOK(t, s, cmd(id)) // 2
	select {
	case err := <-done:
		t.Fatalf("WaitApplied(3) returned %v at applied 2", err)
	default:
	}
	applyOK(t, s, cmd(id)) // 3
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WaitApplied(3): %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitApplied(3) not woken")
	}

	cctx, cancel := context.WithCancel(ctx)
	go func() { done <- s.WaitApplied(cctx, 100) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled WaitApplied: %v", err)
	}

	go func() { done <- s.WaitApplied(ctx, 100) }()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitApplied on close: %v", err)
	}
	if err := s.View(func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("View after Close: %v", err)
	}
}

func TestOpenRejectsForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	if err := writeForeignBolt(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{NoSync: true}); !errors.Is(err, ErrNotFSMFile) {
		t.Fatalf("Open of a foreign bbolt file: %v, want ErrNotFSMFile", err)
	}
}

// A command carrying Version applies only on top of the version it was computed from, so a
// pipelined command whose predecessor never committed cannot apply alone.
func TestVersionPrecondition(t *testing.T) {
	s := openTest(t, Options{})
	obj := testID(7)
	withVersion := func(v uint64, ops ...Op) *Command { c := cmd(obj, ops...); c.Version = v; return c }

	if r := applyOK(t, s, withVersion(1, put("a", "1"))); r.Version != 1 {
		t.Fatalf("version %d, want 1", r.Version)
	}
	// Skipping version 2 (as if its command was lost) is refused, and nothing is written.
	rs := applyCmds(t, s, withVersion(3, put("b", "2")))
	if !errors.Is(rs[0].Err, ErrVersionConflict) || errors.Is(rs[0].Err, ErrBadCommand) || rs[0].Version != 1 {
		t.Fatalf("gap: %+v", rs[0])
	}
	// Replaying version 1 is refused too.
	if rs := applyCmds(t, s, withVersion(1, put("c", "3"))); !errors.Is(rs[0].Err, ErrVersionConflict) {
		t.Fatalf("stale: %+v", rs[0])
	}
	if got := dump(t, s, obj); len(got) != 1 {
		t.Fatalf("object holds %v, want only a", got)
	}
	// The next version and an unchecked command both apply.
	applyOK(t, s, withVersion(2, put("b", "2")))
	if r := applyOK(t, s, cmd(obj, put("d", "4"))); r.Version != 3 {
		t.Fatalf("unchecked: version %d, want 3", r.Version)
	}
	c := withVersion(9)
	dec, err := DecodeCommand(mustEncode(t, c))
	if err != nil || dec.Version != 9 {
		t.Fatalf("version does not round-trip: %v %+v", err, dec)
	}
}
