package fsm

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

func clientCmd(obj, client []byte, seq, ack uint64, result string, ops ...Op) *Command {
	c := cmd(obj, ops...)
	c.Client, c.Seq, c.Ack, c.Result = client, seq, ack, []byte(result)
	return c
}

func dedupLookup(t *testing.T, s *Store, client []byte, seq uint64) (string, bool) {
	t.Helper()
	var res string
	var ok bool
	if err := s.View(func(tx *Tx) error {
		var r []byte
		r, ok = tx.Dedup(client, seq)
		res = string(r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return res, ok
}

// dedupCount returns the number of dedup entries, checking the bookkeeping agrees.
func dedupCount(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.View(func(tx *Tx) error {
		var sum uint64
		err := tx.dedup.ForEach(func(k, v []byte) error {
			_, _, record, err := splitDedupKey(k)
			if err != nil || !record {
				n++
				return err
			}
			rec, err := decodeClientRecord(v)
			sum += rec.count
			return err
		})
		if e := countKeys(tx.tx.Bucket(bucketDedupExpiry)); e != n {
			return fmt.Errorf("%d dedup entries, %d expiry entries", n, e)
		}
		if err == nil && sum != uint64(n) {
			err = fmt.Errorf("client counts sum to %d, %d entries", sum, n)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDedupDuplicate(t *testing.T) {
	s := openTest(t, Options{})
	id, cl := testID(1), testClient(1)

	first := applyOK(t, s, clientCmd(id, cl, 1, 0, "r1", put("a", "1")))
	if first.Duplicate || first.Version != 1 || string(first.Result) != "r1" {
		t.Fatalf("first apply: %+v", first)
	}
	// A retry, even with other ops and another result, returns the first result.
	dup := applyOK(t, s, clientCmd(id, cl, 1, 0, "other", put("a", "2"), put("b", "x")))
	if !dup.Duplicate || dup.Version != 1 || string(dup.Result) != "r1" || dup.Index != 2 {
		t.Fatalf("duplicate: %+v", dup)
	}
	if got := readObject(t, s, id); !equalKVs(got.kvs, []kv{{"a", "1"}}) || got.version != 1 {
		t.Fatalf("duplicate applied: %+v", got)
	}
	// Another client with the same seq, and the same client with the next seq, apply.
	if r := applyOK(t, s, clientCmd(id, testClient(2), 1, 0, "r", put("c", "3"))); r.Duplicate || r.Version != 2 {
		t.Fatalf("other client: %+v", r)
	}
	if r := applyOK(t, s, clientCmd(id, cl, 2, 1, "r2")); r.Duplicate || r.Version != 3 {
		t.Fatalf("next seq: %+v", r)
	}
	// An empty result is stored and returned as such.
	applyOK(t, s, clientCmd(id, cl, 3, 1, ""))
	if r := applyOK(t, s, clientCmd(id, cl, 3, 1, "x")); !r.Duplicate || len(r.Result) != 0 {
		t.Fatalf("empty-result duplicate: %+v", r)
	}
}

func TestDedupAck(t *testing.T) {
	s := openTest(t, Options{})
	id, cl := testID(1), testClient(1)
	for seq := uint64(1); seq <= 5; seq++ {
		applyOK(t, s, clientCmd(id, cl, seq, 0, fmt.Sprint("r", seq)))
	}
	applyOK(t, s, clientCmd(id, cl, 6, 4, "r6"))
	for seq := uint64(1); seq <= 6; seq++ {
		_, ok := dedupLookup(t, s, cl, seq)
		if want := seq >= 4; ok != want {
			t.Errorf("after Ack 4: entry %d present = %v, want %v", seq, ok, want)
		}
	}
	if n := dedupCount(t, s); n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}
	// A late retry below the ack floor is refused, not applied again.
	r := applyCmds(t, s, clientCmd(id, cl, 2, 0, "late", put("late", "x")))[0]
	if !errors.Is(r.Err, ErrStaleSequence) || errors.Is(r.Err, ErrBadCommand) {
		t.Fatalf("late retry: %+v, want ErrStaleSequence", r)
	}
	if got := readObject(t, s, id); len(got.kvs) != 0 || got.version != 6 {
		t.Fatalf("late retry applied: %+v", got)
	}
	// At or above the floor, a retry is still a duplicate.
	if r := applyOK(t, s, clientCmd(id, cl, 4, 0, "x")); !r.Duplicate || string(r.Result) != "r4" {
		t.Fatalf("retry of 4: %+v", r)
	}
}

// TestDedupPruneBudget checks that pruning is spread over commands: an Ack covering many
// entries removes at most dedupGCPerCommand per applied command, and the rest follows.
func TestDedupPruneBudget(t *testing.T) {
	s := openTest(t, Options{})
	id, cl := testID(1), testClient(1)
	const n = 20
	for seq := uint64(1); seq <= n; seq++ {
		applyOK(t, s, clientCmd(id, cl, seq, 0, "r"))
	}
	applyOK(t, s, clientCmd(id, cl, n+1, n+1, "r"))
	if got, want := dedupCount(t, s), n+1-dedupGCPerCommand; got != want {
		t.Fatalf("after the ack: %d entries, want %d", got, want)
	}
	// Entries below the floor not yet pruned still answer as duplicates; pruned ones are
	// refused as stale. Either way nothing is applied twice.
	if r := applyCmds(t, s, clientCmd(id, cl, 1, 0, "x"))[0]; !errors.Is(r.Err, ErrStaleSequence) {
		t.Fatalf("pruned seq: %+v", r)
	}
	if r := applyCmds(t, s, clientCmd(id, cl, n, 0, "x"))[0]; !r.Duplicate {
		t.Fatalf("unpruned seq below the floor: %+v", r)
	}
	// Commands of other writers carry the pruning on.
	for i := 0; dedupCount(t, s) > 1; i++ {
		if i > n {
			t.Fatal("pruning does not finish")
		}
		before := dedupCount(t, s)
		applyOK(t, s, cmd(testID(2)))
		if pruned := before - dedupCount(t, s); pruned > dedupGCPerCommand || pruned == 0 {
			t.Fatalf("one command pruned %d entries", pruned)
		}
	}
	if _, ok := dedupLookup(t, s, cl, n+1); !ok {
		t.Fatal("the acking command's own entry was pruned")
	}
	if err := s.View(func(tx *Tx) error {
		if k, _ := tx.tx.Bucket(bucketDedupPending).Cursor().First(); k != nil {
			return fmt.Errorf("client %x still pending", k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestDedupPerClientBound(t *testing.T) {
	s := openTest(t, Options{DedupPerClient: 3})
	id, cl := testID(1), testClient(1)
	for seq := uint64(1); seq <= 6; seq++ {
		applyOK(t, s, clientCmd(id, cl, seq, 0, "r"))
	}
	for seq := uint64(1); seq <= 6; seq++ {
		if _, ok := dedupLookup(t, s, cl, seq); ok != (seq >= 4) {
			t.Errorf("entry %d present = %v", seq, ok)
		}
	}
	// The bound is not an acknowledgement: a dropped seq may still be in flight, so it
	// is applied (the window was too small for it), not refused.
	if r := applyOK(t, s, clientCmd(id, cl, 1, 0, "again")); r.Duplicate {
		t.Fatalf("seq dropped by the bound: %+v", r)
	}
	if n := dedupCount(t, s); n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}
}

func TestDedupTTL(t *testing.T) {
	const sec = int64(time.Second)
	s := openTest(t, Options{DedupTTL: 10 * time.Second})
	id, a, b := testID(1), testClient(1), testClient(2)
	at := func(c *Command, ts int64) *Command { c.Time = ts; return c }

	applyOK(t, s, at(clientCmd(id, a, 1, 0, "a1"), 100*sec))
	applyOK(t, s, at(clientCmd(id, a, 2, 0, "a2"), 105*sec))
	applyOK(t, s, at(clientCmd(id, b, 1, 0, "b1"), 109*sec))
	// At 111 s, a1 (100 s) is older than 10 s; a2 (105 s) is not.
	applyOK(t, s, at(cmd(id), 111*sec))
	if _, ok := dedupLookup(t, s, a, 1); ok {
		t.Error("a1 did not expire")
	}
	if _, ok := dedupLookup(t, s, a, 2); !ok {
		t.Error("a2 expired early")
	}
	// A proposer with a slow clock does not move log time back: a2 stays until log time
	// passes 115 s, whatever the entry's own Time says.
	applyOK(t, s, at(cmd(id), 50*sec))
	if _, ok := dedupLookup(t, s, a, 2); !ok {
		t.Error("a2 expired on a clock going backwards")
	}
	applyOK(t, s, at(cmd(id), 116*sec))
	if _, ok := dedupLookup(t, s, a, 2); ok {
		t.Error("a2 did not expire")
	}
	// Client a has no entries left: its record is gone too. b's is not.
	if err := s.View(func(tx *Tx) error {
		clients := tx.dedup // a client's record is under its ID
		if clients.Get(a) != nil {
			return errors.New("record of a client without entries kept")
		}
		if clients.Get(b) == nil {
			return errors.New("record of b lost")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Once expired, a retry is applied again: the dedup window is DedupTTL.
	if r := applyOK(t, s, at(clientCmd(id, a, 1, 0, "again"), 117*sec)); r.Duplicate {
		t.Fatalf("retry after expiry: %+v", r)
	}
	if n := dedupCount(t, s); n != 2 {
		t.Fatalf("%d entries, want 2 (b1, the new a1)", n)
	}
}

// workload returns n encoded commands over a few objects and clients, with retries, acks,
// alarms, deletes and a moving clock, deterministic in seed.
func workload(t testing.TB, seed uint64, n int) [][]byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	type clientState struct{ next, ack uint64 }
	clients := make([]clientState, 4)
	now := int64(1000 * time.Second)
	var out [][]byte
	for range n {
		now += r.Int64N(int64(2 * time.Second))
		c := cmd(testID(byte(r.IntN(6))))
		c.Time = now - r.Int64N(int64(3*time.Second)) // clocks disagree a little
		for range r.IntN(4) {
			k := fmt.Sprintf("k%d", r.IntN(8))
			switch r.IntN(10) {
			case 0:
				c.Ops = append(c.Ops, del(k))
			case 1:
				c.Ops = append(c.Ops, setAlarm(now+r.Int64N(int64(time.Minute))))
			case 2:
				c.Ops = append(c.Ops, deleteAlarm())
			case 3:
				if r.IntN(4) == 0 {
					c.Ops = append(c.Ops, deleteAll())
				}
			default:
				c.Ops = append(c.Ops, put(k, fmt.Sprint(r.IntN(1000))))
			}
		}
		if i := r.IntN(len(clients) + 1); i < len(clients) {
			cs := &clients[i]
			c.Client = testClient(byte(i))
			if cs.next > 1 && r.IntN(5) == 0 {
				c.Seq = 1 + r.Uint64N(cs.next) // a retry, maybe a late one below the ack
			} else {
				cs.next++
				c.Seq = cs.next
			}
			if r.IntN(3) == 0 && cs.next > cs.ack+1 {
				cs.ack += r.Uint64N(cs.next - cs.ack)
			}
			c.Ack = min(cs.ack, c.Seq)
			c.Result = fmt.Appendf(nil, "result %d", c.Seq)
		}
		out = append(out, mustEncode(t, c))
	}
	return out
}

// applyInBatches applies data from index 1 in batches of the sizes sizes(i) gives.
func applyInBatches(t testing.TB, s *Store, data [][]byte, size func() int) []*Result {
	t.Helper()
	var out []*Result
	for i := 0; i < len(data); {
		n := min(size(), len(data)-i)
		out = append(out, applyData(t, s, data[i:i+n]...)...)
		i += n
	}
	return out
}

// TestDeterministicAcrossBatching applies one log cut into batches three ways; results
// and state must not depend on the cut.
func TestDeterministicAcrossBatching(t *testing.T) {
	data := workload(t, 1, 600)
	opts := Options{DedupPerClient: 5, DedupTTL: 20 * time.Second}
	r := rand.New(rand.NewPCG(3, 4))
	runs := []func() int{
		func() int { return 1 },
		func() int { return 1 + r.IntN(40) },
		func() int { return len(data) },
	}
	var first []*Result
	var firstHash []byte
	for i, size := range runs {
		s := openTest(t, opts)
		res := applyInBatches(t, s, data, size)
		h, applied := mustHash(t, s)
		if applied != uint64(len(data)) {
			t.Fatalf("run %d: applied %d", i, applied)
		}
		checkShape(t, s)
		dedupCount(t, s)
		if i == 0 {
			first, firstHash = res, h
			dups, stale := 0, 0
			for _, r := range res {
				if r.Duplicate {
					dups++
				}
				if errors.Is(r.Err, ErrStaleSequence) {
					stale++
				}
			}
			if dups == 0 || stale == 0 {
				t.Fatalf("workload produced %d duplicates, %d stale retries", dups, stale)
			}
			continue
		}
		for j := range res {
			a, b := first[j], res[j]
			if a.Version != b.Version || a.Duplicate != b.Duplicate || string(a.Result) != string(b.Result) ||
				(a.Err == nil) != (b.Err == nil) {
				t.Fatalf("run %d, entry %d: %+v vs %+v", i, j+1, b, a)
			}
		}
		if string(h) != string(firstHash) {
			t.Fatalf("run %d: state differs with batching", i)
		}
	}
}
