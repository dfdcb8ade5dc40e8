package logstore

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// openStore opens a store at path and closes it when the test ends, unless
// the test closed it already.
func openStore(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func closeStore(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func group(t testing.TB, s *Store, id uint64) *GroupStore {
	t.Helper()
	g, err := s.Group(id)
	if err != nil {
		t.Fatalf("Group(%d): %v", id, err)
	}
	return g
}

// entry builds a log whose payload identifies its group, index and term, so
// that reads can tell entries of different groups and terms apart.
func entry(groupID, index, term uint64) *raft.Log {
	return &raft.Log{
		Index:      index,
		Term:       term,
		Type:       raft.LogCommand,
		Data:       fmt.Appendf(nil, "g%d/i%d/t%d", groupID, index, term),
		AppendedAt: time.Unix(1_700_000_000, int64(index)),
	}
}

func entries(groupID, from, to, term uint64) []*raft.Log {
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, entry(groupID, i, term))
		if i == math.MaxUint64 {
			break
		}
	}
	return logs
}

func storeLogs(t testing.TB, g *GroupStore, logs []*raft.Log) {
	t.Helper()
	if err := g.StoreLogs(logs); err != nil {
		t.Fatalf("group %d: StoreLogs: %v", g.ID(), err)
	}
}

func mustDeleteRange(t testing.TB, g *GroupStore, min, max uint64) {
	t.Helper()
	if err := g.DeleteRange(min, max); err != nil {
		t.Fatalf("group %d: DeleteRange(%d, %d): %v", g.ID(), min, max, err)
	}
}

func assertBounds(t testing.TB, g *GroupStore, first, last uint64) {
	t.Helper()
	f, err := g.FirstIndex()
	if err != nil {
		t.Fatalf("group %d: FirstIndex: %v", g.ID(), err)
	}
	l, err := g.LastIndex()
	if err != nil {
		t.Fatalf("group %d: LastIndex: %v", g.ID(), err)
	}
	if f != first || l != last {
		t.Fatalf("group %d: bounds [%d, %d], want [%d, %d]", g.ID(), f, l, first, last)
	}
}

// assertLog checks that index holds the entry(g, index, term).
func assertLog(t testing.TB, g *GroupStore, index, term uint64) {
	t.Helper()
	var got raft.Log
	if err := g.GetLog(index, &got); err != nil {
		t.Fatalf("group %d: GetLog(%d): %v", g.ID(), index, err)
	}
	assertLogEqual(t, &got, entry(g.ID(), index, term))
}

func assertNoLog(t testing.TB, g *GroupStore, index uint64) {
	t.Helper()
	var got raft.Log
	if err := g.GetLog(index, &got); err != raft.ErrLogNotFound {
		t.Fatalf("group %d: GetLog(%d) = %v, want raft.ErrLogNotFound", g.ID(), index, err)
	}
}

func TestLogStore(t *testing.T) {
	const id = 3
	tests := []struct {
		name        string
		ops         func(t *testing.T, g *GroupStore)
		first, last uint64
		present     map[uint64]uint64 // index -> term
		absent      []uint64
	}{
		{
			name:   "empty",
			ops:    func(*testing.T, *GroupStore) {},
			absent: []uint64{0, 1, math.MaxUint64},
		},
		{
			name:  "store one",
			ops:   func(t *testing.T, g *GroupStore) { storeLogs(t, g, entries(id, 5, 5, 1)) },
			first: 5, last: 5,
			present: map[uint64]uint64{5: 1},
			absent:  []uint64{4, 6},
		},
		{
			name:  "store log singular",
			ops:   func(t *testing.T, g *GroupStore) { mustOK(t, g.StoreLog(entry(id, 1, 1))) },
			first: 1, last: 1,
			present: map[uint64]uint64{1: 1},
		},
		{
			name:  "store many",
			ops:   func(t *testing.T, g *GroupStore) { storeLogs(t, g, entries(id, 1, 10, 1)) },
			first: 1, last: 10,
			present: map[uint64]uint64{1: 1, 5: 1, 10: 1},
			absent:  []uint64{0, 11},
		},
		{
			name:  "store empty batch",
			ops:   func(t *testing.T, g *GroupStore) { storeLogs(t, g, nil) },
			first: 0, last: 0,
		},
		{
			name: "appends across calls",
			ops: func(t *testing.T, g *GroupStore) {
				storeLogs(t, g, entries(id, 1, 3, 1))
				storeLogs(t, g, entries(id, 4, 6, 2))
			},
			first: 1, last: 6,
			present: map[uint64]uint64{3: 1, 4: 2, 6: 2},
		},
		{
			name: "compaction deletes a prefix",
			ops: func(t *testing.T, g *GroupStore) {
				storeLogs(t, g, entries(id, 1, 10, 1))
				mustDeleteRange(t, g, 1, 4)
			},
			first: 5, last: 10,
			present: map[uint64]uint64{5: 1, 10: 1},
			absent:  []uint64{1, 2, 3, 4},
		},
		{
			name: "conflict truncates a suffix",
			ops: func(t *testing.T, g *GroupStore) {
				storeLogs(t, g, entries(id, 1, 10, 1))
				mustDeleteRange(t, g, 7, 10)
			},
			first: 1, last: 6,
			present: map[uint64]uint64{1: 1, 6: 1},
			absent:  []uint64{7, 8, 9, 10},
		},
		{
			name: "truncate then append a new term",
			ops: func(t *testing.T, g *GroupStore) {
				storeLogs(t, g, entries(id, 1, 10, 1))
				mustDeleteRange(t, g, 7, 10)
				storeLogs(t, g, entries(id, 7, 8, 2))
			},
			first: 1, last: 8,
			present: map[uint64]uint64{6: 1, 7: 2, 8: 2},
			absent:  []uint64{9, 10},
		},
		{
			name: "prefix and suffix",
			ops: func(t *testing.T, g *GroupStore) {
				storeLogs(t, g, entries(id, 1, 20, 1))
				mustDeleteRange(t, g, 1, 5)
				mustDeleteRange(t, g, 15, 20)
			},
			first: 6, last: 14,
			present: map[uint64]uint64{6: 1, 14: 1},
			absent:  []uint64{5, 15},
		},
		{
			name: "delete a middle range",
			ops: func(t *testing.T, g *GroupStore) {
				storeLogs(t, g, entries(id, 1, 10, 1))
				mustDeleteRange(t, g, 4, 6)
			},
			first: 1, last: 10,
			present: map[uint64]uint64{3: 1, 7: 1},
			absent:  []uint64{4, 5, 6},
		},
		{
			name: "delete everything, full uint64 range",
			ops: func(t *testing.T, g *GroupStore) {
				storeLogs(t, g, entries(id, 1, 10, 1))
				storeLogs(t, g, entries(id, math.MaxUint64, math.MaxUint64, 1))
				mustDeleteRange(t, g, 0, math.MaxUint64)
			},
			absent: []uint64{1, 10, math.MaxUint64},
		},
		{
			name: "delete up to the maximum index",
			ops: func(t *testing.T, g *GroupStore) {
				storeLogs(t, g, entries(id, math.MaxUint64-2, math.MaxUint64, 1))
				mustDeleteRange(t, g, math.MaxUint64-1, math.MaxUint64)
			},
			first: math.MaxUint64 - 2, last: math.MaxUint64 - 2,
			present: map[uint64]uint64{math.MaxUint64 - 2: 1},
			absent:  []uint64{math.MaxUint64 - 1, math.MaxUint64},
		},
		{
			name: "delete a range with no entries",
			ops: func(t *testing.T, g *GroupStore) {
				storeLogs(t, g, entries(id, 1, 10, 1))
				mustDeleteRange(t, g, 20, 30)
			},
			first: 1, last: 10,
		},
		{
			name: "delete with min greater than max is a no-op",
			ops: func(t *testing.T, g *GroupStore) {
				storeLogs(t, g, entries(id, 1, 10, 1))
				mustDeleteRange(t, g, 8, 3)
			},
			first: 1, last: 10,
			present: map[uint64]uint64{3: 1, 8: 1},
		},
		{
			name:   "delete on a group never written",
			ops:    func(t *testing.T, g *GroupStore) { mustDeleteRange(t, g, 1, 100) },
			absent: []uint64{1},
		},
		{
			name: "gap after snapshot install",
			ops: func(t *testing.T, g *GroupStore) {
				storeLogs(t, g, entries(id, 1, 3, 1))
				storeLogs(t, g, entries(id, 100, 102, 2))
			},
			first: 1, last: 102,
			present: map[uint64]uint64{3: 1, 100: 2},
			absent:  []uint64{4, 50, 99},
		},
		{
			name: "overwrite an index",
			ops: func(t *testing.T, g *GroupStore) {
				storeLogs(t, g, entries(id, 1, 5, 1))
				storeLogs(t, g, entries(id, 5, 5, 2))
			},
			first: 1, last: 5,
			present: map[uint64]uint64{4: 1, 5: 2},
		},
		{
			name: "nil log stores nothing",
			ops: func(t *testing.T, g *GroupStore) {
				logs := entries(id, 1, 3, 1)
				logs[1] = nil
				if err := g.StoreLogs(logs); err == nil {
					t.Fatal("StoreLogs with a nil log succeeded")
				}
			},
			absent: []uint64{1, 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "logs.db")
			check := func(g *GroupStore) {
				t.Helper()
				assertBounds(t, g, tt.first, tt.last)
				for index, term := range tt.present {
					assertLog(t, g, index, term)
				}
				for _, index := range tt.absent {
					assertNoLog(t, g, index)
				}
			}
			s := openStore(t, path, Options{NoSync: true})
			g := group(t, s, id)
			tt.ops(t, g)
			check(g)
			closeStore(t, s)

			// Everything must survive a reopen, bounds included.
			s = openStore(t, path, Options{NoSync: true})
			check(group(t, s, id))
		})
	}
}

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestStableStore(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "logs.db"), Options{NoSync: true})
	g := group(t, s, 1)

	// Before anything is written, raft must see a fresh store.
	if ok, err := raft.HasExistingState(g, g, raft.NewInmemSnapshotStore()); err != nil || ok {
		t.Fatalf("HasExistingState on an empty store = %v, %v; want false, nil", ok, err)
	}

	tests := []struct {
		name string
		key  []byte
		sets [][]byte // values set in order; the last one must be read back
	}{
		{"string key", []byte("CurrentTerm"), [][]byte{[]byte("a")}},
		{"overwrite", []byte("LastVoteCand"), [][]byte{[]byte("node-1"), []byte("node-2")}},
		{"empty value", []byte("empty"), [][]byte{{}}},
		{"nil value", []byte("nil"), [][]byte{nil}},
		{"binary key", []byte{0, 0xff, 0}, [][]byte{{1, 2, 3}}},
		{"max key size", bytes.Repeat([]byte{'k'}, bbolt.MaxKeySize), [][]byte{[]byte("v")}},
		{"large value", []byte("large"), [][]byte{bytes.Repeat([]byte{'v'}, 1<<20)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, v := range tt.sets {
				mustOK(t, g.Set(tt.key, v))
			}
			got, err := g.Get(tt.key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			want := tt.sets[len(tt.sets)-1]
			if got == nil || !bytes.Equal(got, want) {
				t.Fatalf("Get = %q (nil: %t), want %q", got, got == nil, want)
			}
		})
	}

	uints := []struct {
		key []byte
		v   uint64
	}{
		{[]byte("CurrentTerm"), 0},
		{[]byte("LastVoteTerm"), 7},
		{[]byte("max"), math.MaxUint64},
	}
	for _, u := range uints {
		mustOK(t, g.SetUint64(u.key, u.v))
		if got, err := g.GetUint64(u.key); err != nil || got != u.v {
			t.Fatalf("GetUint64(%s) = %d, %v; want %d", u.key, got, err, u.v)
		}
	}

	// Missing keys: hashicorp/raft compares err.Error() with "not found".
	if v, err := g.Get([]byte("missing")); v != nil || err == nil || err.Error() != "not found" || !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Get(missing) = %q, %v; want nil, %q", v, err, "not found")
	}
	if v, err := g.GetUint64([]byte("missing")); v != 0 || err == nil || err.Error() != "not found" {
		t.Fatalf("GetUint64(missing) = %d, %v; want 0, %q", v, err, "not found")
	}
	other := group(t, s, 2)
	if _, err := other.Get([]byte("CurrentTerm")); err != ErrKeyNotFound {
		t.Fatalf("another group sees this group's key: %v", err)
	}

	// A value that is not 8 bytes is not a uint64.
	if _, err := g.GetUint64([]byte("large")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetUint64 of a 1 MiB value = %v, want ErrCorrupt", err)
	}

	// Keys bbolt cannot store fail before reaching the writer.
	if err := g.Set(nil, []byte("v")); !errors.Is(err, berrors.ErrKeyRequired) {
		t.Fatalf("Set(empty key) = %v, want ErrKeyRequired", err)
	}
	if err := g.Set(make([]byte, bbolt.MaxKeySize+1), nil); !errors.Is(err, berrors.ErrKeyTooLarge) {
		t.Fatalf("Set(huge key) = %v, want ErrKeyTooLarge", err)
	}

	if ok, err := raft.HasExistingState(g, g, raft.NewInmemSnapshotStore()); err != nil || ok {
		// CurrentTerm is 0: still no existing state.
		t.Fatalf("HasExistingState with CurrentTerm 0 = %v, %v; want false, nil", ok, err)
	}
	mustOK(t, g.SetUint64([]byte("CurrentTerm"), 3))
	if ok, err := raft.HasExistingState(g, g, raft.NewInmemSnapshotStore()); err != nil || !ok {
		t.Fatalf("HasExistingState with CurrentTerm 3 = %v, %v; want true, nil", ok, err)
	}

	// Reopen: stable state is durable.
	path := s.Path()
	closeStore(t, s)
	s = openStore(t, path, Options{NoSync: true})
	g = group(t, s, 1)
	if got, err := g.GetUint64([]byte("LastVoteTerm")); err != nil || got != 7 {
		t.Fatalf("after reopen GetUint64(LastVoteTerm) = %d, %v; want 7", got, err)
	}
	if got, err := g.Get([]byte("LastVoteCand")); err != nil || string(got) != "node-2" {
		t.Fatalf("after reopen Get(LastVoteCand) = %q, %v; want node-2", got, err)
	}
}

func TestGroupsAreIsolated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.db")
	ids := []uint64{0, 1, 2, 1000, math.MaxUint64}
	s := openStore(t, path, Options{NoSync: true})
	for i, id := range ids {
		g := group(t, s, id)
		// Overlapping index ranges, different per group.
		storeLogs(t, g, entries(id, uint64(i+1), uint64(10*(i+1)), id%7+1))
		mustOK(t, g.SetUint64([]byte("CurrentTerm"), id))
	}
	// Compact one group and truncate another; the rest must not notice.
	mustDeleteRange(t, group(t, s, 1), 1, 5)
	mustDeleteRange(t, group(t, s, 1000), 25, 40)

	check := func(s *Store) {
		t.Helper()
		for i, id := range ids {
			g := group(t, s, id)
			first, last := uint64(i+1), uint64(10*(i+1))
			switch id {
			case 1:
				first = 6
			case 1000:
				last = 24
			}
			assertBounds(t, g, first, last)
			for index := first; index <= last; index++ {
				assertLog(t, g, index, id%7+1)
			}
			assertNoLog(t, g, last+1)
			if got, err := g.GetUint64([]byte("CurrentTerm")); err != nil || got != id {
				t.Fatalf("group %d: CurrentTerm = %d, %v", id, got, err)
			}
		}
	}
	check(s)
	closeStore(t, s)
	check(openStore(t, path, Options{NoSync: true}))
}

func TestGroupReturnsSameStore(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "logs.db"), Options{NoSync: true})
	a, b := group(t, s, 9), group(t, s, 9)
	if a != b {
		t.Fatal("Group returned two different stores for one ID")
	}
	if a == group(t, s, 10) {
		t.Fatal("Group returned the same store for two IDs")
	}
}

func TestClosed(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "a", "b", "logs.db"), Options{NoSync: true})
	g := group(t, s, 1)
	storeLogs(t, g, entries(1, 1, 2, 1))
	closeStore(t, s)

	var l raft.Log
	_, errFirst := g.FirstIndex()
	_, errLast := g.LastIndex()
	_, errGet := g.Get([]byte("k"))
	_, errGetU := g.GetUint64([]byte("k"))
	_, errGroup := s.Group(1)
	for name, err := range map[string]error{
		"Close":       s.Close(),
		"Group":       errGroup,
		"FirstIndex":  errFirst,
		"LastIndex":   errLast,
		"GetLog":      g.GetLog(1, &l),
		"StoreLog":    g.StoreLog(entry(1, 3, 1)),
		"StoreLogs":   g.StoreLogs(nil),
		"DeleteRange": g.DeleteRange(1, 1),
		"Set":         g.Set([]byte("k"), nil),
		"SetUint64":   g.SetUint64([]byte("k"), 1),
		"Get":         errGet,
		"GetUint64":   errGetU,
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}
