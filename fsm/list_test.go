package fsm

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// listKeys is the key set every List case runs against; values are the keys upper-cased.
var listKeys = []string{"a", "ab", "abc", "abd", "ac", "b", "ba", "bb", "c", "\xff", "\xff\xff", "\xff\xffa"}

func listStore(t *testing.T) (*Store, []byte) {
	t.Helper()
	s := openTest(t, Options{})
	id := testID(1)
	var ops []Op
	for _, k := range listKeys {
		ops = append(ops, put(k, strings.ToUpper(k)))
	}
	applyOK(t, s, cmd(id, ops...))
	return s, id
}

func list(t *testing.T, s *Store, id []byte, o ListOptions) ([]string, error) {
	t.Helper()
	var got []string
	err := s.View(func(tx *Tx) error {
		return tx.List(id, o, func(k, v []byte) bool {
			if string(v) != strings.ToUpper(string(k)) {
				t.Errorf("key %q has value %q", k, v)
			}
			got = append(got, string(k))
			return true
		})
	})
	return got, err
}

func TestList(t *testing.T) {
	s, id := listStore(t)
	b := func(s string) []byte { return []byte(s) }
	tests := []struct {
		name string
		o    ListOptions
		want []string
	}{
		{"all", ListOptions{}, listKeys},
		{"reverse all", ListOptions{Reverse: true}, reversed(listKeys)},
		{"limit", ListOptions{Limit: 3}, []string{"a", "ab", "abc"}},
		{"reverse limit", ListOptions{Reverse: true, Limit: 2}, []string{"\xff\xffa", "\xff\xff"}},
		{"limit past end", ListOptions{Limit: 100}, listKeys},

		{"prefix", ListOptions{Prefix: b("ab")}, []string{"ab", "abc", "abd"}},
		{"prefix reverse", ListOptions{Prefix: b("ab"), Reverse: true}, []string{"abd", "abc", "ab"}},
		{"prefix no match", ListOptions{Prefix: b("abz")}, nil},
		{"prefix 0xff", ListOptions{Prefix: b("\xff")}, []string{"\xff", "\xff\xff", "\xff\xffa"}},
		{"prefix 0xff reverse", ListOptions{Prefix: b("\xff\xff"), Reverse: true}, []string{"\xff\xffa", "\xff\xff"}},
		{"prefix limit", ListOptions{Prefix: b("a"), Limit: 2}, []string{"a", "ab"}},
		{"prefix reverse limit", ListOptions{Prefix: b("a"), Reverse: true, Limit: 2}, []string{"ac", "abd"}},

		{"start", ListOptions{Start: b("b")}, []string{"b", "ba", "bb", "c", "\xff", "\xff\xff", "\xff\xffa"}},
		{"start between keys", ListOptions{Start: b("bab")}, []string{"bb", "c", "\xff", "\xff\xff", "\xff\xffa"}},
		{"start after all", ListOptions{Start: b("\xff\xff\xff")}, nil},
		{"start-after", ListOptions{StartAfter: b("b")}, []string{"ba", "bb", "c", "\xff", "\xff\xff", "\xff\xffa"}},
		{"start-after between keys", ListOptions{StartAfter: b("bab")}, []string{"bb", "c", "\xff", "\xff\xff", "\xff\xffa"}},
		{"end", ListOptions{End: b("ac")}, []string{"a", "ab", "abc", "abd"}},
		{"end between keys", ListOptions{End: b("abca")}, []string{"a", "ab", "abc"}},
		{"end before all", ListOptions{End: b("a")}, nil},
		{"end reverse", ListOptions{End: b("ac"), Reverse: true}, []string{"abd", "abc", "ab", "a"}},
		{"end past all reverse", ListOptions{End: b("\xff\xff\xff"), Reverse: true, Limit: 1}, []string{"\xff\xffa"}},

		{"start end", ListOptions{Start: b("ab"), End: b("b")}, []string{"ab", "abc", "abd", "ac"}},
		{"start end reverse", ListOptions{Start: b("ab"), End: b("b"), Reverse: true}, []string{"ac", "abd", "abc", "ab"}},
		{"start end reverse limit", ListOptions{Start: b("ab"), End: b("b"), Reverse: true, Limit: 3}, []string{"ac", "abd", "abc"}},
		{"start-after end", ListOptions{StartAfter: b("ab"), End: b("b")}, []string{"abc", "abd", "ac"}},
		{"start-after end reverse", ListOptions{StartAfter: b("ab"), End: b("b"), Reverse: true}, []string{"ac", "abd", "abc"}},
		{"start = end", ListOptions{Start: b("b"), End: b("b")}, nil},
		{"start > end", ListOptions{Start: b("c"), End: b("b")}, nil},
		{"start > end reverse", ListOptions{Start: b("c"), End: b("b"), Reverse: true}, nil},
		{"start-after just below end", ListOptions{StartAfter: b("ab"), End: b("abc")}, nil},

		{"prefix start inside", ListOptions{Prefix: b("a"), Start: b("abd")}, []string{"abd", "ac"}},
		{"prefix start before", ListOptions{Prefix: b("b"), Start: b("a")}, []string{"b", "ba", "bb"}},
		{"prefix start after", ListOptions{Prefix: b("a"), Start: b("b")}, nil},
		{"prefix start-after = prefix", ListOptions{Prefix: b("ab"), StartAfter: b("ab")}, []string{"abc", "abd"}},
		{"prefix start-after reverse", ListOptions{Prefix: b("ab"), StartAfter: b("ab"), Reverse: true}, []string{"abd", "abc"}},
		{"prefix end inside", ListOptions{Prefix: b("a"), End: b("abd")}, []string{"a", "ab", "abc"}},
		{"prefix end inside reverse", ListOptions{Prefix: b("a"), End: b("abd"), Reverse: true}, []string{"abc", "ab", "a"}},
		{"prefix end after", ListOptions{Prefix: b("ab"), End: b("z")}, []string{"ab", "abc", "abd"}},
		{"prefix end before", ListOptions{Prefix: b("b"), End: b("ab")}, nil},
		{"prefix start end reverse limit", ListOptions{Prefix: b("a"), Start: b("ab"), End: b("ac"), Reverse: true, Limit: 2}, []string{"abd", "abc"}},
		{"prefix start-after end", ListOptions{Prefix: b("\xff"), StartAfter: b("\xff"), End: b("\xff\xffa")}, []string{"\xff\xff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := list(t, s, id, tt.o)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("List(%+v) = %q, want %q", tt.o, got, tt.want)
			}
			if want := listModel(listKeys, tt.o); !slices.Equal(tt.want, want) {
				t.Fatalf("table disagrees with the model: %q vs %q", tt.want, want)
			}
		})
	}
}

func TestListErrorsAndEarlyStop(t *testing.T) {
	s, id := listStore(t)
	for _, o := range []ListOptions{
		{Start: []byte("a"), StartAfter: []byte("b")},
		{Limit: -1},
	} {
		if _, err := list(t, s, id, o); !errors.Is(err, ErrBadListOptions) {
			t.Errorf("List(%+v): %v, want ErrBadListOptions", o, err)
		}
	}
	for _, reverse := range []bool{false, true} {
		n := 0
		err := s.View(func(tx *Tx) error {
			return tx.List(id, ListOptions{Reverse: reverse}, func(k, v []byte) bool { n++; return n < 2 })
		})
		if err != nil || n != 2 {
			t.Errorf("reverse=%v: fn false stopped after %d keys (err %v), want 2", reverse, n, err)
		}
	}
	if got, err := list(t, s, testID(99), ListOptions{}); err != nil || got != nil {
		t.Errorf("List of a missing object = %q, %v", got, err)
	}
}

// randomListOptions picks every bound from bounds, a limit below maxLimit (0 = none), a
// direction, and either Start or StartAfter.
func randomListOptions(r *rand.Rand, bounds []string, maxLimit int) ListOptions {
	pick := func() []byte { return []byte(bounds[r.IntN(len(bounds))]) }
	o := ListOptions{Prefix: pick(), End: pick(), Reverse: r.IntN(2) == 0, Limit: r.IntN(maxLimit)}
	if r.IntN(2) == 0 {
		o.Start = pick()
	} else {
		o.StartAfter = pick()
	}
	return o
}

// TestListMatchesModel checks random option combinations against a brute-force model.
func TestListMatchesModel(t *testing.T) {
	s, id := listStore(t)
	bounds := []string{"", "a", "ab", "abb", "abc", "ac", "b", "bb", "bc", "c", "d", "\xff", "\xff\xff", "\xff\xffa", "\xff\xffb"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		o := randomListOptions(r, bounds, 5)
		got, err := list(t, s, id, o)
		if err != nil {
			t.Fatalf("List(%+v): %v", o, err)
		}
		if want := listModel(listKeys, o); !slices.Equal(got, want) {
			t.Fatalf("List(%+v) = %q, model says %q", o, got, want)
		}
	}
}

// listModel is List's specification: filter the sorted keys, order, limit.
func listModel(keys []string, o ListOptions) []string {
	var out []string
	for _, k := range keys {
		kb := []byte(k)
		if !bytes.HasPrefix(kb, o.Prefix) ||
			(len(o.Start) > 0 && bytes.Compare(kb, o.Start) < 0) ||
			(len(o.StartAfter) > 0 && bytes.Compare(kb, o.StartAfter) <= 0) ||
			(len(o.End) > 0 && bytes.Compare(kb, o.End) >= 0) {
			continue
		}
		out = append(out, k)
	}
	if o.Reverse {
		out = reversed(out)
	}
	if o.Limit > 0 && len(out) > o.Limit {
		out = out[:o.Limit]
	}
	return out
}

func reversed(s []string) []string {
	if s == nil {
		return nil
	}
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

// TestListNeighbours runs the model check on objects whose neighbours in the one objects
// tree hold the same keys: the first and last IDs there are, and one in between, so a
// range that leaks past its object's keys, either way, shows up as extra keys.
func TestListNeighbours(t *testing.T) {
	s := openTest(t, Options{})
	first, last := make([]byte, IDLen), bytes.Repeat([]byte{0xff}, IDLen)
	beforeLast := bytes.Clone(last)
	beforeLast[IDLen-1] = 0xfe
	ids := [][]byte{first, testID(0), testID(1), testID(2), beforeLast, last}
	for _, id := range ids {
		var ops []Op
		for _, k := range listKeys {
			ops = append(ops, put(k, strings.ToUpper(k)))
		}
		applyOK(t, s, cmd(id, ops...))
	}
	bounds := []string{"", "a", "ab", "abc", "b", "c", "d", "\xff", "\xff\xff", "\xff\xffb"}
	r := rand.New(rand.NewPCG(5, 6))
	for _, id := range ids {
		for range 500 {
			o := randomListOptions(r, bounds, 3)
			got, err := list(t, s, id, o)
			if err != nil {
				t.Fatalf("List(%x, %+v): %v", id, o, err)
			}
			if want := listModel(listKeys, o); !slices.Equal(got, want) {
				t.Fatalf("List(%x, %+v) = %q, model says %q", id, o, got, want)
			}
		}
	}
	// An object without keys lists nothing, though its neighbours have keys.
	if got, err := list(t, s, testID(3), ListOptions{Reverse: true}); err != nil || got != nil {
		t.Fatalf("List of an object without keys = %q, %v", got, err)
	}
}

// TestDeleteAllKeepsNeighbours: DeleteAll removes the object's keys, all of them and only
// them, and keeps its record.
func TestDeleteAllKeepsNeighbours(t *testing.T) {
	s := openTest(t, Options{})
	var ops []Op
	for _, k := range listKeys {
		ops = append(ops, put(k, strings.ToUpper(k)))
	}
	for n := byte(0); n < 3; n++ {
		applyOK(t, s, cmd(testID(n), ops...))
	}
	applyOK(t, s, cmd(testID(1), deleteAll()))
	for n := byte(0); n < 3; n++ {
		got, want := len(dump(t, s, testID(n))), len(listKeys)
		if n == 1 {
			want = 0
		}
		if got != want {
			t.Errorf("object %d has %d keys after DeleteAll of object 1, want %d", n, got, want)
		}
	}
	if v := readObject(t, s, testID(1)).version; v != 2 {
		t.Errorf("object 1 at version %d after DeleteAll, want 2", v)
	}
	checkShape(t, s)
}
