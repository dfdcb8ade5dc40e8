package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// fileApplied returns the applied index committed to the file: what a crash would leave.
func fileApplied(t testing.TB, s *Store) uint64 {
	t.Helper()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	var applied uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		applied, err = readApplied(tx.Bucket(bucketMeta))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return applied
}

// crashImage writes what the file holds now (its last commit) to a new path, as a crash
// of the process would leave it.
func crashImage(t testing.TB, s *Store) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crashed.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	s.dbMu.RLock()
	err = s.db.View(func(tx *bolt.Tx) error { _, err := tx.WriteTo(f); return err })
	s.dbMu.RUnlock()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDeferredCommitIsVisible(t *testing.T) {
	s := openTest(t, Options{CommitInterval: time.Hour})
	id := testID(1)
	applyOK(t, s, cmd(id, put("a", "1"), setAlarm(5)))
	applyOK(t, s, &Command{Object: id, Ops: []Op{put("b", "")}, Client: testClient(1), Seq: 1, Result: []byte("r1"), Time: 2})
	if got := s.AppliedIndex(); got != 2 {
		t.Fatalf("AppliedIndex %d, want 2", got)
	}
	if got := fileApplied(t, s); got != 0 {
		t.Fatalf("file applied %d before any commit, want 0", got)
	}
	// View sees every applied entry although none is committed.
	if got, want := dump(t, s, id), []kv{{"a", "1"}, {"b", ""}}; !equalKVs(got, want) {
		t.Fatalf("View sees %v, want %v", got, want)
	}
	err := s.View(func(tx *Tx) error {
		if v := tx.Version(id); v != 2 {
			return fmt.Errorf("version %d", v)
		}
		if at, ok := tx.Alarm(id); !ok || at != 5 {
			return fmt.Errorf("alarm %d %v", at, ok)
		}
		if r, ok := tx.Dedup(testClient(1), 1); !ok || string(r) != "r1" {
			return fmt.Errorf("dedup %q %v", r, ok)
		}
		if v, ok := tx.Get(id, []byte("b")); !ok || v == nil || len(v) != 0 {
			return fmt.Errorf("empty value %v %v", v, ok)
		}
		if tx.AppliedIndex() != 2 {
			return fmt.Errorf("Tx.AppliedIndex %d", tx.AppliedIndex())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, s)

	// Hash and Snapshot need the file: they commit.
	h1, applied := mustHash(t, s)
	if applied != 2 || fileApplied(t, s) != 2 {
		t.Fatalf("Hash at %d, file at %d, want 2", applied, fileApplied(t, s))
	}
	applyOK(t, s, cmd(id, del("a")))
	if fileApplied(t, s) != 2 {
		t.Fatalf("file applied %d, want 2", fileApplied(t, s))
	}
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if fileApplied(t, s) != 3 {
		t.Fatalf("after Snapshot the file is at %d, want 3", fileApplied(t, s))
	}
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	b := openTest(t, Options{})
	if err := restore(b, sink.Bytes()); err != nil {
		t.Fatal(err)
	}
	h2, _ := mustHash(t, s)
	if got, applied := mustHash(t, b); !bytes.Equal(got, h2) || applied != 3 || bytes.Equal(h1, h2) {
		t.Fatalf("restored snapshot at %d differs from the state it was taken of", applied)
	}
}

func TestCommitPolicy(t *testing.T) {
	t.Run("entries", func(t *testing.T) {
		s := openTest(t, Options{CommitInterval: time.Hour})
		s.commitEntries = 3
		applyOK(t, s, cmd(testID(1)))
		applyOK(t, s, cmd(testID(1)))
		if got := fileApplied(t, s); got != 0 {
			t.Fatalf("file at %d after 2 of 3 entries", got)
		}
		applyOK(t, s, cmd(testID(1)))
		if got := fileApplied(t, s); got != 3 {
			t.Fatalf("file at %d after 3 of 3 entries", got)
		}
	})
	t.Run("every batch", func(t *testing.T) {
		s := openTest(t, Options{CommitInterval: -1})
		for i := 1; i <= 3; i++ {
			applyOK(t, s, cmd(testID(1)))
			if got := fileApplied(t, s); got != uint64(i) {
				t.Fatalf("file at %d, applied %d", got, i)
			}
		}
	})
	t.Run("age", func(t *testing.T) {
		s := openTest(t, Options{CommitInterval: time.Hour})
		applyOK(t, s, cmd(testID(1)))
		s.txMu.Lock()
		s.wtxStart = s.wtxStart.Add(-time.Hour) // as if an hour of applies had gone by
		s.txMu.Unlock()
		if got := fileApplied(t, s); got != 0 {
			t.Fatalf("file at %d", got)
		}
		applyOK(t, s, cmd(testID(1)))
		if got := fileApplied(t, s); got != 2 {
			t.Fatalf("file at %d after an apply to an old transaction, want 2", got)
		}
	})
	t.Run("idle flush", func(t *testing.T) {
		s := openTest(t, Options{CommitInterval: 5 * time.Millisecond})
		for i := 1; i <= 3; i++ {
			applyOK(t, s, cmd(testID(1)))
			waitFile(t, s, uint64(i))
		}
		s.txMu.Lock()
		open := s.wtx != nil
		s.txMu.Unlock()
		if open {
			t.Fatal("a write transaction is open on an idle store")
		}
	})
}

// waitFile waits until the file holds applied index want, or fails.
func waitFile(t *testing.T, s *Store, want uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for fileApplied(t, s) != want {
		if time.Now().After(deadline) {
			t.Fatalf("file at %d, want %d: nothing commits the open transaction", fileApplied(t, s), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCloseCommitsOpenTransaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	opts := Options{NoSync: true, CommitInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	data := workload(t, 5, 50)
	applyInBatches(t, s, data, func() int { return 7 })
	want, _ := mustHash(t, s)
	applyOK(t, s, cmd(testID(2), put("last", "x"))) // left in the open transaction
	if fileApplied(t, s) != 50 {
		t.Fatalf("file at %d, want 50", fileApplied(t, s))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.flushDone:
	default:
		t.Fatal("the flusher outlives Close")
	}
	s, err = Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.AppliedIndex() != 51 {
		t.Fatalf("reopened at %d, want 51", s.AppliedIndex())
	}
	if got := dump(t, s, testID(2)); len(got) == 0 || got[len(got)-1] != (kv{"last", "x"}) {
		t.Fatalf("the entry left open at Close is lost: %v", got)
	}
	if got, _ := mustHash(t, s); bytes.Equal(got, want) {
		t.Fatal("state did not change with the last entry")
	}
}

// TestCrashReplaysUncommitted takes the file as a crash would leave it while entries are
// in the open transaction: it must hold a prefix of the log with its applied index, and a
// replay of the whole log (as raft does) must arrive at the state of the live store.
func TestCrashReplaysUncommitted(t *testing.T) {
	data := workload(t, 6, 300)
	opts := Options{DedupPerClient: 5, DedupTTL: 20 * time.Second, CommitInterval: time.Hour}
	s := openTest(t, opts)
	s.commitEntries = 64
	r := rand.New(rand.NewPCG(8, 9))
	applyInBatches(t, s, data, func() int { return 1 + r.IntN(9) })
	committed := fileApplied(t, s)
	if committed == 0 || committed == s.AppliedIndex() {
		t.Fatalf("file at %d, applied %d: want a commit and entries after it", committed, s.AppliedIndex())
	}
	img := crashImage(t, s)
	want, wantApplied := mustHash(t, s)

	opts.NoSync, opts.Logger = true, slog.New(slog.DiscardHandler)
	c, err := Open(img, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.AppliedIndex() != committed {
		t.Fatalf("crash image opens at %d, file was at %d", c.AppliedIndex(), committed)
	}
	// Raft replays from wherever it likes; entries at or below the applied index are skipped.
	resps := c.ApplyBatch(logOf(1, data...))
	for i, resp := range resps {
		res := resp.(*Result)
		if uint64(i+1) <= committed && !errors.Is(res.Err, ErrAlreadyApplied) {
			t.Fatalf("entry %d applied twice: %+v", i+1, res)
		}
	}
	got, gotApplied := mustHash(t, c)
	if !bytes.Equal(got, want) || gotApplied != wantApplied {
		t.Fatalf("replay after the crash ends at %d with another state than the store at %d", gotApplied, wantApplied)
	}
}

// TestDeterministicAcrossCommits applies one log with commits at different points: the
// state must not depend on them.
func TestDeterministicAcrossCommits(t *testing.T) {
	data := workload(t, 7, 400)
	var first []byte
	for i, run := range []struct {
		interval time.Duration
		entries  int
	}{
		{-1, 0},              // every batch
		{time.Hour, 3},       // every 3 entries or more
		{time.Hour, 1 << 30}, // only for Hash
	} {
		s := openTest(t, Options{DedupPerClient: 5, DedupTTL: 20 * time.Second, CommitInterval: run.interval})
		if run.entries > 0 {
			s.commitEntries = run.entries
		}
		r := rand.New(rand.NewPCG(1, uint64(i)))
		applyInBatches(t, s, data, func() int { return 1 + r.IntN(12) })
		checkShape(t, s)
		dedupCount(t, s)
		h, applied := mustHash(t, s)
		if applied != uint64(len(data)) {
			t.Fatalf("run %d: applied %d", i, applied)
		}
		if i == 0 {
			first = h
		} else if !bytes.Equal(h, first) {
			t.Fatalf("run %d: state differs with commit points", i)
		}
	}
}

// TestConcurrentViewsDuringApply runs Views, Hash and the flusher against applies (run it
// with -race): every View sees at least what AppliedIndex said before it began.
func TestConcurrentViewsDuringApply(t *testing.T) {
	s := openTest(t, Options{CommitInterval: 2 * time.Millisecond})
	id := testID(9)
	const n = 400
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 8)
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				before := s.AppliedIndex()
				err := s.View(func(tx *Tx) error {
					if v := tx.Version(id); v < before {
						return fmt.Errorf("version %d after AppliedIndex %d", v, before)
					}
					if tx.AppliedIndex() < before {
						return fmt.Errorf("view at %d after AppliedIndex %d", tx.AppliedIndex(), before)
					}
					return tx.List(id, ListOptions{Limit: 3}, func(k, v []byte) bool { return true })
				})
				if err == nil && g == 0 {
					_, _, err = s.Hash()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 1; i <= n; i++ {
		applyOK(t, s, cmd(id, put(fmt.Sprintf("k%03d", i%17), strings.Repeat("v", i))))
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFile(t, s, n)
}

// TestFailedApplyBreaksStore: an apply that cannot be written panics and rolls back the
// open transaction, with entries already acknowledged; the store then refuses everything,
// and reopening it falls back to the last commit, from which raft replays.
func TestFailedApplyBreaksStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	opts := Options{NoSync: true, CommitInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	applyOK(t, s, cmd(testID(1), put("a", "1")))
	if _, _, err := s.Hash(); err != nil { // commits entry 1
		t.Fatal(err)
	}
	applyOK(t, s, cmd(testID(1), put("b", "2"))) // acknowledged, not committed
	// Damage a record in the open transaction so that the next command cannot apply.
	s.txMu.Lock()
	err = s.wtx.Bucket(bucketDedup).Put(testClient(3), []byte("bad")) // a client's record
	s.txMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	bad := mustEncode(t, &Command{Object: testID(1), Client: testClient(3), Seq: 1, Time: 1})
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "cannot persist") {
				t.Fatalf("failed apply: recovered %v, want a panic", r)
			}
		}()
		s.ApplyBatch(logOf(3, bad))
	}()
	if err := s.View(func(*Tx) error { return nil }); err == nil {
		t.Fatal("View on a broken store succeeded")
	}
	if _, _, err := s.Hash(); err == nil {
		t.Fatal("Hash on a broken store succeeded")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("ApplyBatch on a broken store did not panic")
			}
		}()
		s.ApplyBatch(logOf(3, mustEncode(t, cmd(testID(1)))))
	}()
	if err := s.Close(); err == nil {
		t.Fatal("Close of a broken store reports nothing")
	}
	s, err = Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.AppliedIndex() != 1 {
		t.Fatalf("reopened at %d, want the last commit, 1", s.AppliedIndex())
	}
	resps := s.ApplyBatch([]*raft.Log{{Index: 2, Type: raft.LogCommand, Data: mustEncode(t, cmd(testID(1), put("b", "2")))}})
	if res := resps[0].(*Result); res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := dump(t, s, testID(1)); !equalKVs(got, []kv{{"a", "1"}, {"b", "2"}}) {
		t.Fatalf("after replay: %v", got)
	}
}
