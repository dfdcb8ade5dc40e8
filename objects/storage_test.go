package objects

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/objid"
)

var fnSeq atomic.Int64

// run executes fn as a call on object obj and returns its error (the call's result is
// discarded; fn reports through t and closures).
func (f *fixture) run(obj string, fn func(ctx *Context) (any, error)) error {
	name := fmt.Sprintf("fn%d", fnSeq.Add(1))
	f.fn(name, fn)
	_, err := f.do(obj, name)
	return err
}

// mustRun is run that fails the test on error.
func (f *fixture) mustRun(obj string, fn func(st *Storage) error) {
	f.t.Helper()
	if err := f.run(obj, func(ctx *Context) (any, error) { return nil, fn(ctx.Storage()) }); err != nil {
		f.t.Fatal(err)
	}
}

type tagged struct {
	Name  string            `json:"name"`
	Count int               `json:"count,omitempty"`
	Tags  []string          `json:"tags"`
	Attrs map[string]string `json:"attrs"`
	Skip  string            `json:"-"`
}

func TestStorageRoundTrip(t *testing.T) {
	f := newFixture(t, Options{})
	values := []struct {
		key string
		v   any
		out func() any // a pointer to decode into
	}{
		{"int", 42, func() any { return new(int) }},
		{"neg", int64(-7), func() any { return new(int64) }},
		{"float", 2.5, func() any { return new(float64) }},
		{"string", "héllo", func() any { return new(string) }},
		{"bytes", []byte{0, 1, 2, 255}, func() any { return new([]byte) }},
		{"bool", true, func() any { return new(bool) }},
		{"struct", tagged{Name: "n", Count: 3, Tags: []string{"a"}, Attrs: map[string]string{"k": "v"}},
			func() any { return new(tagged) }},
		{"slice", []int{3, 1, 2}, func() any { return new([]int) }},
		{"map", map[string]int{"a": 1}, func() any { return new(map[string]int) }},
		// msgpack decodes times in time.Local.
		{"time", time.Unix(1700000000, 5), func() any { return new(time.Time) }},
	}
	check := func(st *Storage, when string) error {
		for _, tv := range values {
			out := tv.out()
			ok, err := st.Get(tv.key, out)
			if err != nil || !ok {
				return fmt.Errorf("%s: Get(%s) = %v, %v", when, tv.key, ok, err)
			}
			if got := reflect.ValueOf(out).Elem().Interface(); !reflect.DeepEqual(got, tv.v) {
				return fmt.Errorf("%s: Get(%s) = %#v, want %#v", when, tv.key, got, tv.v)
			}
		}
		return nil
	}
	f.mustRun("x", func(st *Storage) error {
		for _, tv := range values {
			if err := st.Put(tv.key, tv.v); err != nil {
				return err
			}
		}
		return check(st, "same call")
	})
	f.mustRun("x", func(st *Storage) error { return check(st, "next call") })

	// The struct is stored with its json names, as a map: what other clients would see.
	raw, _ := committed[map[string]any](t, f.g, objid.FromName("T", "x"), "struct")
	if _, ok := raw["name"]; !ok || raw["Skip"] != nil || raw["-"] != nil {
		t.Fatalf("struct stored as %v, want json tag names", raw)
	}
	// Decoding ignores fields the type no longer has.
	f.mustRun("x", func(st *Storage) error {
		var narrow struct {
			Name string `json:"name"`
		}
		if ok, err := st.Get("struct", &narrow); !ok || err != nil || narrow.Name != "n" {
			return fmt.Errorf("narrow decode = %v, %v, %+v", ok, err, narrow)
		}
		var wrong int
		if _, err := st.Get("struct", &wrong); !errors.Is(err, ErrDecode) {
			return fmt.Errorf("decode into the wrong type = %v, want ErrDecode", err)
		}
		return nil
	})
}

func TestStorageMissingAndDelete(t *testing.T) {
	f := newFixture(t, Options{})
	id := objid.FromName("T", "x")
	f.mustRun("x", func(st *Storage) error {
		out := 99
		if ok, err := st.Get("nope", &out); ok || err != nil || out != 99 {
			return fmt.Errorf("Get(missing) = %v, %v, out %d; want false, nil, untouched", ok, err, out)
		}
		return st.Put("a", 1)
	})
	v := version(t, f.g, id)
	// Deleting an absent key writes nothing: the call stays read-only.
	f.mustRun("x", func(st *Storage) error {
		if existed, err := st.Delete("nope"); existed || err != nil {
			return fmt.Errorf("Delete(missing) = %v, %v", existed, err)
		}
		return nil
	})
	if version(t, f.g, id) != v {
		t.Fatal("deleting an absent key made a command")
	}
	f.mustRun("x", func(st *Storage) error {
		if existed, err := st.Delete("a"); !existed || err != nil {
			return fmt.Errorf("Delete(a) = %v, %v; want true", existed, err)
		}
		if existed, _ := st.Delete("a"); existed {
			return errors.New("second Delete(a) in the same call reported existed")
		}
		if ok, _ := st.Get("a", new(int)); ok {
			return errors.New("deleted key still visible")
		}
		return nil
	})
	if _, found := committed[int](t, f.g, id, "a"); found {
		t.Fatal("deleted key still committed")
	}
}

func keysN(prefix string, n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return ks
}

func TestStorageBatches(t *testing.T) {
	f := newFixture(t, Options{})
	id := objid.FromName("T", "x")
	ks := keysN("k", MaxBatchKeys)
	f.mustRun("x", func(st *Storage) error {
		m := make(map[string]int, len(ks))
		for i, k := range ks {
			m[k] = i
		}
		if err := PutManyAs(st, m); err != nil {
			return err
		}
		// 129 keys: refused, nothing buffered.
		over := map[string]any{}
		for _, k := range keysN("z", MaxBatchKeys+1) {
			over[k] = 1
		}
		if err := st.PutMany(over); !errors.Is(err, ErrTooManyKeys) {
			return fmt.Errorf("PutMany(129) = %v, want ErrTooManyKeys", err)
		}
		// One bad value among good ones: nothing buffered.
		if err := st.PutMany(map[string]any{"g1": 1, "g2": make([]byte, MaxValueSize)}); !errors.Is(err, ErrValueTooLarge) {
			return fmt.Errorf("PutMany(oversized value) = %v", err)
		}
		if err := st.PutMany(map[string]any{"g1": 1, "": 2}); !errors.Is(err, ErrInvalidKey) {
			return fmt.Errorf("PutMany(empty key) = %v", err)
		}
		got, err := st.GetMany(append(slices.Clone(ks[:MaxBatchKeys-3]), "z000", "g1", "nope"))
		if err != nil {
			return err
		}
		if len(got) != MaxBatchKeys-3 {
			return fmt.Errorf("GetMany found %d keys, want %d: a refused batch leaked", len(got), MaxBatchKeys-3)
		}
		if _, err := st.GetMany(keysN("k", MaxBatchKeys+1)); !errors.Is(err, ErrTooManyKeys) {
			return fmt.Errorf("GetMany(129) = %v", err)
		}
		return nil
	})
	got := map[string]int{}
	f.mustRun("x", func(st *Storage) error {
		m, err := GetManyAs[int](st, ks)
		got = m
		return err
	})
	if len(got) != MaxBatchKeys || got["k127"] != 127 {
		t.Fatalf("committed batch: %d keys, k127=%d", len(got), got["k127"])
	}
	f.mustRun("x", func(st *Storage) error {
		if _, err := st.DeleteMany(keysN("k", MaxBatchKeys+1)); !errors.Is(err, ErrTooManyKeys) {
			return fmt.Errorf("DeleteMany(129) = %v", err)
		}
		n, err := st.DeleteMany(append(ks[:10], ks[0], "nope"))
		if err != nil || n != 10 {
			return fmt.Errorf("DeleteMany = %d, %v; want 10 (duplicates and absent keys not counted)", n, err)
		}
		return nil
	})
	if _, found := committed[int](t, f.g, id, "k000"); found {
		t.Fatal("DeleteMany did not commit")
	}
	if _, found := committed[int](t, f.g, id, "k010"); !found {
		t.Fatal("DeleteMany deleted too much")
	}
}

func TestStorageLimits(t *testing.T) {
	f := newFixture(t, Options{})
	maxKey := strings.Repeat("k", MaxKeySize)
	longKey := maxKey + "k"
	// A []byte of n bytes encodes as bin32: 5 header bytes + n.
	maxVal := make([]byte, MaxValueSize-5)
	bigVal := make([]byte, MaxValueSize-4)
	tests := []struct {
		name string
		op   func(st *Storage) error
		want error
	}{
		{"put max key", func(st *Storage) error { return st.Put(maxKey, 1) }, nil},
		{"put long key", func(st *Storage) error { return st.Put(longKey, 1) }, ErrKeyTooLarge},
		{"put empty key", func(st *Storage) error { return st.Put("", 1) }, ErrInvalidKey},
		{"get long key", func(st *Storage) error { _, err := st.Get(longKey, new(int)); return err }, ErrKeyTooLarge},
		{"delete long key", func(st *Storage) error { _, err := st.Delete(longKey); return err }, ErrKeyTooLarge},
		{"getmany long key", func(st *Storage) error { _, err := st.GetMany([]string{"a", longKey}); return err }, ErrKeyTooLarge},
		{"deletemany empty key", func(st *Storage) error { _, err := st.DeleteMany([]string{""}); return err }, ErrInvalidKey},
		{"put max value", func(st *Storage) error { return st.Put("v", maxVal) }, nil},
		{"put big value", func(st *Storage) error { return st.Put("v2", bigVal) }, ErrValueTooLarge},
		{"unencodable value", func(st *Storage) error { return st.Put("c", make(chan int)) }, errAny},
		{"call too large", func(st *Storage) error {
			for i := 0; ; i++ {
				if err := st.Put(fmt.Sprint(i), maxVal); err != nil {
					if i*MaxValueSize < MaxCallBytes-MaxValueSize {
						return fmt.Errorf("refused after only %d values: %w", i, err)
					}
					return err
				}
			}
		}, ErrCallTooLarge},
		{"too many keys in one call", func(st *Storage) error {
			for i := 0; i < MaxCallKeys; i++ {
				if err := st.Put(fmt.Sprint(i), i); err != nil {
					return fmt.Errorf("key %d: %w", i, err)
				}
			}
			if err := st.Put("0", 5); err != nil { // a rewrite adds no key
				return fmt.Errorf("rewrite: %w", err)
			}
			return st.Put("one-more", 1)
		}, ErrTooManyKeys},
		{"both Start and StartAfter", func(st *Storage) error { _, err := st.List(ListOptions{Start: "a", StartAfter: "b"}); return err }, ErrBadListOptions},
		{"negative limit", func(st *Storage) error { _, err := st.List(ListOptions{Limit: -1}); return err }, ErrBadListOptions},
		{"zero alarm", func(st *Storage) error { return st.SetAlarm(time.Time{}) }, ErrInvalidAlarm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.run("lim-"+tt.name, func(ctx *Context) (any, error) { return nil, tt.op(ctx.Storage()) })
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("err = %v", err)
			case tt.want == errAny && err == nil:
				t.Fatal("no error")
			case tt.want != nil && tt.want != errAny && !errors.Is(err, tt.want):
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				// The call failed, so nothing of it was committed.
				id := objid.FromName("T", "lim-"+tt.name)
				if v := version(t, f.g, id); v != 0 {
					t.Fatalf("a failed call committed (version %d)", v)
				}
			}
		})
	}
}

var errAny = errors.New("any error")

func TestResultTooLarge(t *testing.T) {
	f := newFixture(t, Options{})
	big := strings.Repeat("r", fsm.MaxResultSize)
	f.fn("big", func(ctx *Context) (any, error) {
		return big, ctx.Storage().Put("a", 1)
	})
	req := withClient(f.req("x", "Do"), 1, 1)
	req.Args, _ = marshal("big")
	if _, err := f.rt.Call(t.Context(), req); !errors.Is(err, ErrResultTooLarge) {
		t.Fatalf("err = %v, want ErrResultTooLarge", err)
	}
	if _, found := committed[int](t, f.g, objid.FromName("T", "x"), "a"); found {
		t.Fatal("the call's write was committed")
	}
	// Without a Client nothing is stored, so the size does not matter here.
	if _, err := f.do("x", "big"); err != nil {
		t.Fatal(err)
	}
}

func TestStorageDeleteAllAndAlarm(t *testing.T) {
	f := newFixture(t, Options{})
	id := objid.FromName("T", "x")
	at := time.Unix(1_900_000_000, 0)
	f.mustRun("x", func(st *Storage) error {
		if err := st.PutMany(map[string]any{"a": 1, "b": 2}); err != nil {
			return err
		}
		return st.SetAlarm(at)
	})
	f.mustRun("x", func(st *Storage) error {
		if got, ok, err := st.GetAlarm(); !ok || err != nil || !got.Equal(at) {
			return fmt.Errorf("GetAlarm = %v, %v, %v", got, ok, err)
		}
		if err := st.DeleteAll(); err != nil {
			return err
		}
		if _, ok, _ := st.GetAlarm(); ok {
			return errors.New("alarm survived DeleteAll")
		}
		if ok, _ := st.Get("a", new(int)); ok {
			return errors.New("key survived DeleteAll")
		}
		if existed, _ := st.Delete("b"); existed {
			return errors.New("Delete after DeleteAll found the key")
		}
		return st.Put("c", 3)
	})
	var keys []string
	var hasAlarm bool
	_ = f.g.View(func(tx *fsm.Tx) error {
		_, hasAlarm = tx.Alarm(id[:])
		return tx.List(id[:], fsm.ListOptions{}, func(k, _ []byte) bool { keys = append(keys, string(k)); return true })
	})
	if hasAlarm || !slices.Equal(keys, []string{"c"}) {
		t.Fatalf("after DeleteAll+Put: keys %v, alarm %v; want [c], none", keys, hasAlarm)
	}

	// Set, then delete in a later call; DeleteAll then SetAlarm keeps the new alarm.
	f.mustRun("x", func(st *Storage) error { return st.SetAlarm(at) })
	f.mustRun("x", func(st *Storage) error {
		if _, ok, _ := st.GetAlarm(); !ok {
			return errors.New("alarm not committed")
		}
		return st.DeleteAlarm()
	})
	f.mustRun("x", func(st *Storage) error {
		if _, ok, _ := st.GetAlarm(); ok {
			return errors.New("alarm not deleted")
		}
		if err := st.DeleteAll(); err != nil {
			return err
		}
		return st.SetAlarm(at.Add(time.Second))
	})
	var alarm int64
	_ = f.g.View(func(tx *fsm.Tx) error { alarm, hasAlarm = tx.Alarm(id[:]); return nil })
	if !hasAlarm || alarm != at.Add(time.Second).UnixNano() {
		t.Fatalf("alarm = %v %d after DeleteAll+SetAlarm", hasAlarm, alarm)
	}
}

func TestStorageTransaction(t *testing.T) {
	f := newFixture(t, Options{})
	id := objid.FromName("T", "x")
	errRollback := errors.New("rollback")
	f.mustRun("x", func(st *Storage) error {
		if err := st.Put("outer", 1); err != nil {
			return err
		}
		// Committed transaction: its writes join the call's.
		if err := st.Transaction(func(st *Storage) error { return st.Put("t1", 1) }); err != nil {
			return err
		}
		// Failed transaction: its writes vanish, the error is returned.
		err := st.Transaction(func(st *Storage) error {
			if err := st.Put("t2", 1); err != nil {
				return err
			}
			if err := st.Put("outer", 2); err != nil {
				return err
			}
			if err := st.DeleteAll(); err != nil {
				return err
			}
			if ok, _ := st.Get("t1", new(int)); ok {
				return errors.New("DeleteAll inside a transaction did not hide t1")
			}
			return errRollback
		})
		if err != errRollback {
			return fmt.Errorf("Transaction = %v, want the fn's error", err)
		}
		// Panicking transaction: rolled back, panic propagates.
		func() {
			defer func() { _ = recover() }()
			_ = st.Transaction(func(st *Storage) error {
				_ = st.Put("t3", 1)
				panic("in tx")
			})
		}()
		// Nested: inner rolled back, outer committed.
		err = st.Transaction(func(st *Storage) error {
			_ = st.Put("t4", 1)
			_ = st.Transaction(func(st *Storage) error {
				_ = st.Put("t5", 1)
				_, _ = st.Delete("t4")
				return errRollback
			})
			return nil
		})
		if err != nil {
			return err
		}
		var outer int
		if _, err := st.Get("outer", &outer); err != nil || outer != 1 {
			return fmt.Errorf("outer = %d, %v; want 1", outer, err)
		}
		return nil
	})
	want := map[string]bool{"outer": true, "t1": true, "t2": false, "t3": false, "t4": true, "t5": false}
	for k, present := range want {
		if _, found := committed[int](t, f.g, id, k); found != present {
			t.Errorf("committed %s present = %v, want %v", k, found, present)
		}
	}
}

func TestStorageClosedAfterCall(t *testing.T) {
	f := newFixture(t, Options{})
	var kept *Storage
	f.mustRun("x", func(st *Storage) error { kept = st; return nil })
	if err := kept.Put("a", 1); !errors.Is(err, ErrStorageClosed) {
		t.Fatalf("Put after the call = %v, want ErrStorageClosed", err)
	}
	if _, err := kept.Get("a", new(int)); !errors.Is(err, ErrStorageClosed) {
		t.Fatalf("Get after the call = %v, want ErrStorageClosed", err)
	}
}

// --- List ---

// model is the reference for an object's storage: a plain map and alarm.
type model struct {
	kv       map[string]int
	alarm    int64
	hasAlarm bool
}

func (m model) clone() model {
	c := m
	c.kv = make(map[string]int, len(m.kv))
	for k, v := range m.kv {
		c.kv[k] = v
	}
	return c
}

// list is the specification of List (Cloudflare semantics), written independently of the
// implementation.
func (m model) list(o ListOptions) []Entry[int] {
	var out []Entry[int]
	for k, v := range m.kv {
		if o.Prefix != "" && !strings.HasPrefix(k, o.Prefix) {
			continue
		}
		if o.Start != "" && k < o.Start {
			continue
		}
		if o.StartAfter != "" && k <= o.StartAfter {
			continue
		}
		if o.End != "" && k >= o.End {
			continue
		}
		out = append(out, Entry[int]{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	if o.Reverse {
		slices.Reverse(out)
	}
	if o.Limit > 0 && len(out) > o.Limit {
		out = out[:o.Limit]
	}
	return out
}

var listKeys = []string{"a", "ab", "abc", "abd", "b", "ba", "b\xff", "b\xff\xff", "c", "\xff", "\xff\xfe", "\x00", "aa"}

func randKey(r *rand.Rand) string { return listKeys[r.Intn(len(listKeys))] }

func randBound(r *rand.Rand) string {
	switch r.Intn(4) {
	case 0:
		return ""
	case 1:
		return randKey(r)
	case 2:
		return randKey(r) + "\x00"
	default:
		return randKey(r)[:1]
	}
}

func randListOptions(r *rand.Rand) ListOptions {
	o := ListOptions{Prefix: randBound(r), End: randBound(r), Reverse: r.Intn(2) == 0}
	if r.Intn(2) == 0 {
		o.Start = randBound(r)
	} else {
		o.StartAfter = randBound(r)
	}
	if r.Intn(2) == 0 {
		o.Limit = 1 + r.Intn(4)
	}
	return o
}

func TestStorageListTable(t *testing.T) {
	f := newFixture(t, Options{})
	committedKeys := map[string]int{"a": 1, "ab": 2, "abc": 3, "b": 4, "b\xff": 5, "c": 6, "\xff": 7}
	f.mustRun("x", func(st *Storage) error { return PutManyAs(st, committedKeys) })
	tests := []struct {
		name string
		o    ListOptions
		want string // keys, comma separated
	}{
		{"all", ListOptions{}, "a,ab,abc,abd,b,ba,b\xff,\xff"},
		{"reverse", ListOptions{Reverse: true}, "\xff,b\xff,ba,b,abd,abc,ab,a"},
		{"prefix", ListOptions{Prefix: "ab"}, "ab,abc,abd"},
		{"prefix reverse limit", ListOptions{Prefix: "ab", Reverse: true, Limit: 2}, "abd,abc"},
		{"prefix ff", ListOptions{Prefix: "\xff"}, "\xff"},
		{"prefix b ff", ListOptions{Prefix: "b\xff"}, "b\xff"},
		{"start", ListOptions{Start: "ab"}, "ab,abc,abd,b,ba,b\xff,\xff"},
		{"start after", ListOptions{StartAfter: "ab"}, "abc,abd,b,ba,b\xff,\xff"},
		{"end", ListOptions{End: "b"}, "a,ab,abc,abd"},
		{"start end", ListOptions{Start: "ab", End: "b\xff"}, "ab,abc,abd,b,ba"},
		{"start end reverse", ListOptions{Start: "ab", End: "b\xff", Reverse: true}, "ba,b,abd,abc,ab"},
		{"start after end reverse limit", ListOptions{StartAfter: "ab", End: "ba", Reverse: true, Limit: 3}, "b,abd,abc"},
		{"prefix and start", ListOptions{Prefix: "ab", Start: "abd"}, "abd"},
		{"prefix and end", ListOptions{Prefix: "ab", End: "abc"}, "ab"},
		{"empty range", ListOptions{Start: "b", End: "b"}, ""},
		{"inverted range", ListOptions{Start: "c", End: "a"}, ""},
		{"limit", ListOptions{Limit: 3}, "a,ab,abc"},
		{"limit past a deleted key", ListOptions{Start: "b\xff", Limit: 2}, "b\xff,\xff"},
		{"reverse limit past a deleted key", ListOptions{End: "d", Reverse: true, Limit: 1}, "b\xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.mustRunRollback("x", func(st *Storage) error {
				// The call's own writes overlay the committed state: a new key, a
				// deleted one, a replaced one.
				if err := st.Put("abd", 8); err != nil {
					return err
				}
				if err := st.Put("ba", 9); err != nil {
					return err
				}
				if _, err := st.Delete("c"); err != nil {
					return err
				}
				if err := st.Put("b", 40); err != nil {
					return err
				}
				got, err := ListAs[int](st, tt.o)
				if err != nil {
					return err
				}
				keys := make([]string, len(got))
				for i, e := range got {
					keys[i] = e.Key
				}
				if s := strings.Join(keys, ","); s != tt.want {
					return fmt.Errorf("List(%+v) = %q, want %q", tt.o, s, tt.want)
				}
				for _, e := range got {
					if e.Key == "b" && e.Value != 40 {
						return fmt.Errorf("b = %d, want the overlay's 40", e.Value)
					}
				}
				return errRollbackCall // keep the committed state for the next case
			})
		})
	}
}

// errRollbackCall makes a test call fail so that none of its writes commit.
var errRollbackCall = errors.New("rollback call")

func (f *fixture) mustRunRollback(obj string, fn func(st *Storage) error) {
	f.t.Helper()
	err := f.run(obj, func(ctx *Context) (any, error) { return nil, fn(ctx.Storage()) })
	if !errors.Is(err, errRollbackCall) {
		f.t.Fatal(err)
	}
}

// TestStorageModel runs random calls — puts, deletes, DeleteAll, batches, transactions,
// alarms, handler errors and panics — from concurrent callers while commands are kept in
// flight, and checks every read and List (all option combinations) inside the handlers
// against a reference model, then the committed state against it.
func TestStorageModel(t *testing.T) {
	f := newFixture(t, Options{})
	id := objid.FromName("T", "m")
	r := rand.New(rand.NewSource(1))
	var mu sync.Mutex // guards shared and r (handlers are serial; this is for the race detector)
	shared := model{kv: map[string]int{}}
	var overlaid, checks atomic.Int64

	applyRand := rand.New(rand.NewSource(2))
	var applyMu sync.Mutex
	f.g.applyDelay = func() {
		applyMu.Lock()
		n := applyRand.Intn(20)
		applyMu.Unlock()
		for i := 0; i < n; i++ {
			runtime.Gosched()
		}
	}

	var failf func(format string, args ...any)
	var ops func(st *Storage, m *model, depth int)
	ops = func(st *Storage, m *model, depth int) {
		n := 1 + r.Intn(6)
		for i := 0; i < n; i++ {
			switch p := r.Intn(100); {
			case p < 25:
				k, v := randKey(r), r.Intn(1000)
				if err := st.Put(k, v); err != nil {
					failf("Put: %v", err)
				}
				m.kv[k] = v
			case p < 35:
				k := randKey(r)
				existed, err := st.Delete(k)
				_, want := m.kv[k]
				if err != nil || existed != want {
					failf("Delete(%q) = %v, %v; model %v", k, existed, err, want)
				}
				delete(m.kv, k)
			case p < 38:
				if err := st.DeleteAll(); err != nil {
					failf("DeleteAll: %v", err)
				}
				clear(m.kv)
				m.hasAlarm = false
			case p < 45:
				batch := map[string]int{}
				for j := r.Intn(4); j >= 0; j-- {
					batch[randKey(r)] = r.Intn(1000)
				}
				if err := PutManyAs(st, batch); err != nil {
					failf("PutMany: %v", err)
				}
				for k, v := range batch {
					m.kv[k] = v
				}
			case p < 52:
				keys := []string{randKey(r), randKey(r), randKey(r)}
				want := map[string]bool{}
				for _, k := range keys {
					if _, ok := m.kv[k]; ok {
						want[k] = true
					}
				}
				n, err := st.DeleteMany(keys)
				if err != nil || n != len(want) {
					failf("DeleteMany(%q) = %d, %v; model %d", keys, n, err, len(want))
				}
				for _, k := range keys {
					delete(m.kv, k)
				}
			case p < 60:
				k := randKey(r)
				v, ok, err := GetAs[int](st, k)
				want, wantOK := m.kv[k]
				if err != nil || ok != wantOK || v != want {
					failf("Get(%q) = %d, %v, %v; model %d, %v", k, v, ok, err, want, wantOK)
				}
				checks.Add(1)
			case p < 66:
				keys := []string{randKey(r), randKey(r), randKey(r)}
				got, err := GetManyAs[int](st, keys)
				want := map[string]int{}
				for _, k := range keys {
					if v, ok := m.kv[k]; ok {
						want[k] = v
					}
				}
				if err != nil || !reflect.DeepEqual(got, want) {
					failf("GetMany(%q) = %v, %v; model %v", keys, got, err, want)
				}
				checks.Add(1)
			case p < 85:
				o := randListOptions(r)
				got, err := ListAs[int](st, o)
				want := m.list(o)
				if err != nil || !(len(got) == 0 && len(want) == 0 || reflect.DeepEqual(got, want)) {
					failf("List(%+v) = %v, %v; model %v", o, got, err, want)
				}
				checks.Add(1)
			case p < 92:
				if depth > 1 {
					continue
				}
				inner := m.clone()
				commit := r.Intn(2) == 0
				err := st.Transaction(func(st *Storage) error {
					ops(st, &inner, depth+1)
					if !commit {
						return errRollbackCall
					}
					return nil
				})
				if commit && err == nil {
					*m = inner
				} else if commit || err != errRollbackCall {
					failf("Transaction = %v (commit %v)", err, commit)
				}
			case p < 95:
				at := int64(r.Intn(1000)) * 1e9
				if err := st.SetAlarm(time.Unix(0, at)); err != nil {
					failf("SetAlarm: %v", err)
				}
				m.alarm, m.hasAlarm = at, true
			case p < 97:
				if err := st.DeleteAlarm(); err != nil {
					failf("DeleteAlarm: %v", err)
				}
				m.hasAlarm = false
			default:
				at, ok, err := st.GetAlarm()
				if err != nil || ok != m.hasAlarm || ok && at.UnixNano() != m.alarm {
					failf("GetAlarm = %v, %v, %v; model %d, %v", at, ok, err, m.alarm, m.hasAlarm)
				}
				checks.Add(1)
			}
		}
	}
	failf = func(format string, args ...any) { t.Errorf(format, args...) }

	f.fn("step", func(ctx *Context) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		st := ctx.Storage()
		if st.inflight.hasWrites() {
			overlaid.Add(1)
		}
		m := shared.clone()
		ops(st, &m, 0)
		switch r.Intn(20) {
		case 0:
			return nil, errors.New("discard this call's writes")
		case 1:
			panic("discard this call's writes and the instance")
		}
		shared = m
		return nil, nil
	})

	const callers = 8
	calls := 150
	if raceEnabled {
		calls = 40
	}
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				_, err := f.do("m", "step")
				var he *HandlerError
				if err != nil && !errors.As(err, &he) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	f.checkNoOverlap()
	if overlaid.Load() < callers*int64(calls)/10 {
		t.Fatalf("only %d calls ran over in-flight commands: the test did not exercise overlays", overlaid.Load())
	}
	t.Logf("%d calls over in-flight commands, %d checks", overlaid.Load(), checks.Load())

	// The committed state is the model.
	got := model{kv: map[string]int{}}
	err := f.g.View(func(tx *fsm.Tx) error {
		got.alarm, got.hasAlarm = tx.Alarm(id[:])
		return tx.List(id[:], fsm.ListOptions{}, func(k, v []byte) bool {
			var n int
			if err := unmarshal(v, &n, false); err != nil {
				t.Error(err)
			}
			got.kv[string(k)] = n
			return true
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(got.kv, shared.kv) || got.hasAlarm != shared.hasAlarm || got.hasAlarm && got.alarm != shared.alarm {
		t.Fatalf("committed state %+v\nmodel %+v", got, shared)
	}
}

func TestLayerOps(t *testing.T) {
	l := newLayer()
	l.put("b", write{val: []byte{1}})
	l.put("a", write{del: true})
	l.alarm = alarmWrite{kind: alarmSet, at: 5}
	got := l.ops()
	want := []fsm.Op{
		{Kind: fsm.OpDelete, Key: []byte("a")},
		{Kind: fsm.OpPut, Key: []byte("b"), Value: []byte{1}},
		{Kind: fsm.OpSetAlarm, Alarm: 5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ops = %+v", got)
	}
	l.deleteAll()
	l.put("c", write{val: []byte{2}})
	l.put("d", write{del: true}) // under a DeleteAll: no op needed
	got = l.ops()
	want = []fsm.Op{{Kind: fsm.OpDeleteAll}, {Kind: fsm.OpPut, Key: []byte("c"), Value: []byte{2}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ops after DeleteAll = %+v", got)
	}
	if newLayer().ops() != nil {
		t.Fatal("an empty layer has ops")
	}
}

func TestInflightLayerRemoval(t *testing.T) {
	// Commands 1..3 in flight; removing them in order must leave exactly what later
	// commands wrote.
	c1, c2, c3 := newLayer(), newLayer(), newLayer()
	c1.put("a", write{val: []byte("1")})
	c1.put("b", write{val: []byte("1")})
	c2.deleteAll()
	c2.put("b", write{val: []byte("2")})
	c3.put("c", write{val: []byte("3")})
	c3.alarm = alarmWrite{kind: alarmSet, at: 9}
	in := newLayer()
	in.applyInflight(c1, 1)
	in.applyInflight(c2, 2)
	in.applyInflight(c3, 3)
	in.removeInflight(c1, 1)
	if _, ok := in.writes["a"]; ok || !in.cleared || !bytes.Equal(in.writes["b"].val, []byte("2")) {
		t.Fatalf("after removing 1: %+v", in)
	}
	in.removeInflight(c2, 2)
	if in.cleared || len(in.writes) != 1 {
		t.Fatalf("after removing 2: %+v", in)
	}
	in.removeInflight(c3, 3)
	if in.hasWrites() {
		t.Fatalf("after removing all: %+v", in)
	}
}
