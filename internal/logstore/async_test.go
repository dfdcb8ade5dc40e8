package logstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/duro-db/duro/internal/testutil"
)

// commitStepper holds every commit of the writer until the test lets it
// finish, with the outcome the test chooses, so that a test can observe a
// store while requests are queued or mid-commit. Its cleanup lets any commit
// still to come through, so that Close can drain the queue.
type commitStepper struct {
	entered chan int   // the batch size of each commit reaching the hook
	outcome chan error // what that commit is to return
	freed   chan struct{}
}

func stepCommits(t testing.TB, s *Store) *commitStepper {
	cs := &commitStepper{entered: make(chan int), outcome: make(chan error), freed: make(chan struct{})}
	s.testHookCommit = func(n int) error {
		select {
		case cs.entered <- n:
		case <-cs.freed:
			return nil
		}
		select {
		case err := <-cs.outcome:
			return err
		case <-cs.freed:
			return nil
		}
	}
	t.Cleanup(func() { close(cs.freed) })
	return cs
}

// next waits for the writer to reach its next commit and checks its size.
func (cs *commitStepper) next(t testing.TB, wantRequests int) {
	t.Helper()
	select {
	case n := <-cs.entered:
		if n != wantRequests {
			t.Fatalf("commit of %d requests, want %d", n, wantRequests)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for a commit")
	}
}

// finish lets the commit held by next complete with err.
func (cs *commitStepper) finish(err error) { cs.outcome <- err }

func alwaysLeader() bool { return true }

func assertDurable(t testing.TB, g *GroupStore, want uint64) {
	t.Helper()
	if got := g.DurableIndex(); got != want {
		t.Fatalf("group %d: DurableIndex = %d, want %d", g.ID(), got, want)
	}
}

// fileLog reads index from the committed log, bypassing pending appends;
// nil if it is not there.
func fileLog(g *GroupStore, index uint64) (*raft.Log, error) {
	l := new(raft.Log)
	switch err := g.committedLog(index, l); err {
	case nil:
		return l, nil
	case raft.ErrLogNotFound:
		return nil, nil
	default:
		return nil, err
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestAsyncAppendVisibleBeforeCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.db")
	s := openStore(t, path, Options{NoSync: true})
	g := group(t, s, 1)
	g.SetAsyncAppends(alwaysLeader)
	cs := stepCommits(t, s)

	// Every field the file keeps, including the unusual ones.
	variety := func() []*raft.Log {
		logs := entries(1, 1, 5, 1)
		logs[1].Type, logs[1].Extensions = raft.LogConfiguration, []byte("ext")
		logs[2].AppendedAt = time.Time{}
		logs[3].Data = nil
		return logs
	}
	want, logs := variety(), variety()
	storeLogs(t, g, logs)
	// Returned with the commit held: StoreLogs did not wait for it.
	cs.next(t, 1)
	logs[0].Data[0] = 'X' // the store holds a copy

	assertBounds(t, g, 1, 5)
	for _, w := range want {
		var got raft.Log
		mustOK(t, g.GetLog(w.Index, &got))
		assertLogEqual(t, &got, w)
		if l, err := fileLog(g, w.Index); l != nil || err != nil {
			t.Fatalf("log %d is in the file before its commit: %v, %v", w.Index, l, err)
		}
	}
	assertNoLog(t, g, 6)
	assertDurable(t, g, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := g.WaitDurable(ctx, 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitDurable before the commit = %v, want a deadline error", err)
	}
	mustOK(t, g.WaitDurable(context.Background(), 0))
	changed := g.DurableChanged()
	waited := make(chan error, 1)
	go func() { waited <- g.WaitDurable(context.Background(), 5) }()

	cs.finish(nil)
	mustOK(t, <-waited)
	if !isClosed(changed) {
		t.Fatal("DurableChanged channel still open after DurableIndex advanced")
	}
	assertDurable(t, g, 5)
	assertBounds(t, g, 1, 5)
	g.mu.RLock()
	if len(g.pending) != 0 {
		t.Fatalf("%d requests still pending after their commit", len(g.pending))
	}
	g.mu.RUnlock()
	for _, w := range want {
		l, err := fileLog(g, w.Index)
		if l == nil || err != nil {
			t.Fatalf("log %d not in the file after its commit: %v", w.Index, err)
		}
		assertLogEqual(t, l, w)
	}
	if st := s.Stats(); st.AsyncRequests != 1 || st.Requests != 1 {
		t.Fatalf("stats %+v, want 1 request, async", st)
	}

	closeStore(t, s)
	if err := g.WaitDurable(context.Background(), 6); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitDurable past the end after Close = %v, want ErrClosed", err)
	}
	mustOK(t, g.WaitDurable(context.Background(), 5))
	s = openStore(t, path, Options{NoSync: true})
	g = group(t, s, 1)
	assertBounds(t, g, 1, 5)
	for _, w := range want {
		var got raft.Log
		mustOK(t, g.GetLog(w.Index, &got))
		assertLogEqual(t, &got, w)
	}
}

// A deposed leader: its async appends are still pending when raft, now a
// follower, truncates them and stores the new leader's entries, and it may
// be re-elected and append again before any of that has committed.
func TestAsyncAppendThenTruncateAndReplace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.db")
	s := openStore(t, path, Options{NoSync: true})
	g := group(t, s, 1)
	var leader atomic.Bool
	g.SetAsyncAppends(leader.Load)
	storeLogs(t, g, entries(1, 1, 3, 1)) // as a follower: synchronous
	assertDurable(t, g, 3)
	cs := stepCommits(t, s)

	leader.Store(true)
	storeLogs(t, g, entries(1, 4, 10, 2))
	cs.next(t, 1) // commit A holds 4..10
	assertBounds(t, g, 1, 10)
	assertLog(t, g, 9, 2)
	assertDurable(t, g, 3)

	leader.Store(false)
	deleted, replaced := make(chan error, 1), make(chan error, 1)
	go func() { deleted <- g.DeleteRange(7, 10) }()
	testutil.WaitFor(t, waitLimit, "DeleteRange to queue", func() bool { return queueLen(s) == 1 })
	go func() { replaced <- g.StoreLogs(entries(1, 7, 8, 3)) }()
	testutil.WaitFor(t, waitLimit, "StoreLogs to queue", func() bool { return queueLen(s) == 2 })
	// Synchronous writes take effect when they commit.
	assertBounds(t, g, 1, 10)
	assertLog(t, g, 7, 2)
	assertLog(t, g, 10, 2)

	cs.finish(nil)
	cs.next(t, 2) // commit B: DeleteRange, StoreLogs
	assertDurable(t, g, 10)
	assertBounds(t, g, 1, 10)

	// Re-elected: an async append queued behind commit B, over the
	// entries B truncates and then some.
	leader.Store(true)
	storeLogs(t, g, entries(1, 9, 11, 4))
	assertBounds(t, g, 1, 11)
	assertLog(t, g, 7, 2) // B has not committed
	assertLog(t, g, 9, 4)
	assertLog(t, g, 11, 4)
	assertDurable(t, g, 8) // 9 and 10 are on disk, but hidden by pending entries

	cs.finish(nil)
	mustOK(t, <-deleted)
	mustOK(t, <-replaced)
	// B's entries are durable when it returns, the async ones behind it not.
	assertBounds(t, g, 1, 11)
	assertDurable(t, g, 8)
	for index, term := range map[uint64]uint64{3: 1, 6: 2, 7: 3, 8: 3, 9: 4, 11: 4} {
		assertLog(t, g, index, term)
	}
	if l, _ := fileLog(g, 10); l != nil {
		t.Fatalf("log 10 survived its DeleteRange in the file: %+v", l)
	}

	cs.next(t, 1)
	cs.finish(nil)
	mustOK(t, g.WaitDurable(context.Background(), 11))
	assertDurable(t, g, 11)

	check := func(g *GroupStore) {
		t.Helper()
		assertBounds(t, g, 1, 11)
		for index := uint64(1); index <= 11; index++ {
			term := uint64(1)
			switch {
			case index >= 9:
				term = 4
			case index >= 7:
				term = 3
			case index >= 4:
				term = 2
			}
			assertLog(t, g, index, term)
		}
	}
	check(g)
	closeStore(t, s)
	check(group(t, openStore(t, path, Options{NoSync: true}), 1))
}

// A synchronous StoreLogs queued behind async appends returns once they,
// too, are durable; a DeleteRange that removes pending entries in a later
// commit hides them only when it commits.
func TestAsyncAppendsMixedWithSyncWrites(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "logs.db"), Options{NoSync: true})
	g := group(t, s, 1)
	var leader atomic.Bool
	g.SetAsyncAppends(leader.Load)
	cs := stepCommits(t, s)

	leader.Store(true)
	storeLogs(t, g, entries(1, 1, 5, 1))
	cs.next(t, 1)
	storeLogs(t, g, entries(1, 6, 8, 1))
	leader.Store(false)
	stored := make(chan error, 1)
	go func() { stored <- g.StoreLogs(entries(1, 9, 10, 2)) }()
	testutil.WaitFor(t, waitLimit, "StoreLogs to queue", func() bool { return queueLen(s) == 2 })
	assertBounds(t, g, 1, 8)
	assertDurable(t, g, 0)

	cs.finish(nil)
	cs.next(t, 2)
	assertDurable(t, g, 5)
	cs.finish(nil)
	mustOK(t, <-stored)
	assertDurable(t, g, 10) // published before the write was acknowledged
	assertBounds(t, g, 1, 10)

	// Compaction (raft's snapshot goroutine) queued behind pending appends.
	leader.Store(true)
	storeLogs(t, g, entries(1, 11, 12, 2))
	cs.next(t, 1)
	compacted := make(chan error, 1)
	go func() { compacted <- g.DeleteRange(1, 11) }()
	testutil.WaitFor(t, waitLimit, "DeleteRange to queue", func() bool { return queueLen(s) == 1 })
	assertBounds(t, g, 1, 12)
	cs.finish(nil)
	cs.next(t, 1)
	cs.finish(nil)
	mustOK(t, <-compacted)
	assertBounds(t, g, 12, 12)
	assertDurable(t, g, 12)
	assertNoLog(t, g, 11)
}

func TestAsyncAppendCommitFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.db")
	var calls atomic.Int32
	hooked := make(chan error, 1)
	s := openStore(t, path, Options{NoSync: true, OnFailure: func(err error) {
		calls.Add(1)
		hooked <- err
	}})
	g := group(t, s, 1)
	g.SetAsyncAppends(alwaysLeader)
	storeLogs(t, g, entries(1, 1, 2, 1))
	mustOK(t, g.WaitDurable(context.Background(), 2)) // before the hook is set
	cs := stepCommits(t, s)

	storeLogs(t, g, entries(1, 3, 5, 1))
	cs.next(t, 1)
	storeLogs(t, g, entries(1, 6, 7, 1)) // queued behind: fails without a commit
	waiting := make(chan error, 1)
	go func() { waiting <- g.WaitDurable(context.Background(), 5) }()
	cs.finish(errInjected)

	if err := <-hooked; !errors.Is(err, errInjected) {
		t.Fatalf("OnFailure got %v, want the commit error", err)
	}
	if err := <-waiting; !errors.Is(err, ErrFailed) || !errors.Is(err, errInjected) {
		t.Fatalf("WaitDurable across a failed commit = %v, want ErrFailed with the cause", err)
	}
	testutil.WaitFor(t, waitLimit, "the queue to drain", func() bool { return queueLen(s) == 0 })
	// What raft was told is still what the store shows; none of it durable.
	assertBounds(t, g, 1, 7)
	assertLog(t, g, 5, 1)
	assertDurable(t, g, 2)
	mustOK(t, g.WaitDurable(context.Background(), 2))
	if err := g.WaitDurable(context.Background(), 3); !errors.Is(err, ErrFailed) {
		t.Fatalf("WaitDurable after the failure = %v, want ErrFailed", err)
	}
	if !isClosed(g.DurableChanged()) {
		t.Fatal("DurableChanged after the failure is not closed")
	}
	if err := g.StoreLogs(entries(1, 8, 8, 1)); !errors.Is(err, ErrFailed) {
		t.Fatalf("async StoreLogs after the failure = %v, want ErrFailed", err)
	}
	if err := g.DeleteRange(1, 1); !errors.Is(err, ErrFailed) {
		t.Fatalf("DeleteRange after the failure = %v, want ErrFailed", err)
	}
	closeStore(t, s) // the writer has seen the second batch fail too
	if n := calls.Load(); n != 1 {
		t.Fatalf("OnFailure called %d times, want once", n)
	}

	g = group(t, openStore(t, path, Options{NoSync: true}), 1)
	assertBounds(t, g, 1, 2)
	assertDurable(t, g, 2)
}

// An aborted transaction loses async appends as surely as a failed commit.
func TestAsyncAppendAbortedTransaction(t *testing.T) {
	hooked := make(chan error, 1)
	s := openStore(t, filepath.Join(t.TempDir(), "logs.db"), Options{NoSync: true, OnFailure: func(err error) { hooked <- err }})
	bad, good := group(t, s, 7), group(t, s, 8)
	// Corrupt the layout: in group 7's bucket, "stable" is a plain value,
	// so a stable write aborts the transaction, and the async append
	// queued with it is lost.
	mustOK(t, s.db.Update(func(tx *bbolt.Tx) error {
		top, err := tx.CreateBucket(bad.name[:])
		if err != nil {
			return err
		}
		return top.Put(stableBucket, []byte("oops"))
	}))
	cg := installGate(s, 0)
	first := holdWriter(t, cg, good)
	setErr := make(chan error, 1)
	go func() { setErr <- bad.Set([]byte("k"), []byte("v")) }()
	testutil.WaitFor(t, waitLimit, "the stable write to queue", func() bool { return queueLen(s) == 1 })
	bad.SetAsyncAppends(alwaysLeader)
	mustOK(t, bad.StoreLog(entry(7, 1, 1)))
	close(cg.release)
	mustOK(t, <-first)
	if err := <-setErr; !errors.Is(err, berrors.ErrIncompatibleValue) {
		t.Fatalf("stable write in the aborted transaction returned %v, want ErrIncompatibleValue", err)
	}
	if err := <-hooked; !errors.Is(err, berrors.ErrIncompatibleValue) {
		t.Fatalf("OnFailure got %v, want the transaction's error", err)
	}
	if err := good.StoreLog(entry(8, 2, 1)); !errors.Is(err, ErrFailed) {
		t.Fatalf("write after lost async appends = %v, want ErrFailed", err)
	}
}

func TestAsyncFailureDefaultPanics(t *testing.T) {
	defer func() {
		msg, _ := recover().(string)
		if !strings.Contains(msg, "OnFailure") || !strings.Contains(msg, errInjected.Error()) {
			t.Fatalf("panic %q does not name the hook and the cause", msg)
		}
	}()
	panicOnFailure(errInjected)
	t.Fatal("no panic")
}

func TestAsyncAppendsOff(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "logs.db"), Options{NoSync: true})
	g := group(t, s, 1)
	g.SetAsyncAppends(func() bool { return false })
	storeLogs(t, g, entries(1, 1, 2, 1))
	g.SetAsyncAppends(alwaysLeader)
	g.SetAsyncAppends(nil)
	storeLogs(t, g, entries(1, 3, 4, 1))
	// Index 0 is not a raft index: stored synchronously even on a leader.
	g.SetAsyncAppends(alwaysLeader)
	storeLogs(t, g, entries(1, 0, 0, 1))
	if st := s.Stats(); st.AsyncRequests != 0 || st.Requests != 3 {
		t.Fatalf("stats %+v, want 3 synchronous requests", st)
	}
	assertDurable(t, g, 4)
}

// Raft-like writers on many groups, each appending asynchronously as a
// leader and sometimes deposed (truncate, then synchronous appends) or
// compacting, with readers on every group, under the race detector. After
// each step the writer checks that the entries at or below DurableIndex are
// in the file as last written.
func TestAsyncAppendsConcurrentGroups(t *testing.T) {
	const (
		groups = 4
		rounds = 150
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	path := filepath.Join(t.TempDir(), "logs.db")
	s := openStore(t, path, Options{NoSync: true})

	models := make([]map[uint64]uint64, groups) // index -> term, per group
	errs := make(chan error, 2*groups+8)
	stop := make(chan struct{})
	var writers, readers sync.WaitGroup
	for gid := range uint64(groups) {
		g := group(t, s, gid)
		models[gid] = make(map[uint64]uint64)
		rng := rand.New(rand.NewPCG(seed, gid))
		writers.Go(func() { errs <- raftLikeWriter(g, models[gid], rng, rounds) })
		readers.Go(func() { errs <- readLoop(g, stop, rand.New(rand.NewPCG(seed, gid+100))) })
	}
	// And several leaders' worth of async appends into one group at once.
	const shared, sharedWriters, perWriter = 1000, 4, 50
	gs := group(t, s, shared)
	gs.SetAsyncAppends(alwaysLeader)
	var next atomic.Uint64
	for range sharedWriters {
		writers.Go(func() {
			for range perWriter {
				if err := gs.StoreLog(entry(shared, next.Add(1), 1)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	check := func(s *Store) {
		t.Helper()
		for gid := range uint64(groups) {
			g := group(t, s, gid)
			first, last := uint64(0), uint64(0)
			for index := range models[gid] {
				if first == 0 || index < first {
					first = index
				}
				last = max(last, index)
			}
			mustOK(t, g.WaitDurable(context.Background(), last))
			assertBounds(t, g, first, last)
			assertDurable(t, g, last)
			for index := first; index <= last; index++ {
				assertLog(t, g, index, models[gid][index])
			}
		}
		g := group(t, s, shared)
		mustOK(t, g.WaitDurable(context.Background(), sharedWriters*perWriter))
		assertBounds(t, g, 1, sharedWriters*perWriter)
	}
	check(s)
	st := s.Stats()
	t.Logf("%d requests (%d async) in %d transactions", st.Requests, st.AsyncRequests, st.Transactions)
	if st.AsyncRequests == 0 {
		t.Fatal("no async appends")
	}
	closeStore(t, s)
	check(openStore(t, path, Options{NoSync: true}))
}

func raftLikeWriter(g *GroupStore, model map[uint64]uint64, rng *rand.Rand, rounds int) error {
	var leader atomic.Bool
	g.SetAsyncAppends(leader.Load)
	first, last, term := uint64(1), uint64(0), uint64(1)
	store := func(n, term uint64) error {
		if err := g.StoreLogs(entries(g.ID(), last+1, last+n, term)); err != nil {
			return err
		}
		for i := last + 1; i <= last+n; i++ {
			model[i] = term
		}
		last += n
		return nil
	}
	for range rounds {
		switch rng.IntN(10) {
		case 0: // deposed: truncate a tail, maybe pending, then follow
			leader.Store(false)
			term++
			if last >= first {
				cut := last - rng.Uint64N(min(last-first+1, 6))
				if err := g.DeleteRange(cut, last); err != nil {
					return err
				}
				for i := cut; i <= last; i++ {
					delete(model, i)
				}
				last = cut - 1
			}
			if err := store(1+rng.Uint64N(3), term); err != nil {
				return err
			}
			// A synchronous write returns after everything before it.
			if d := g.DurableIndex(); d != last {
				return fmt.Errorf("group %d: DurableIndex %d after a synchronous append up to %d", g.ID(), d, last)
			}
		case 1: // compact a durable prefix
			if d := g.DurableIndex(); d > first+3 {
				if err := g.DeleteRange(first, first+2); err != nil {
					return err
				}
				for i := first; i < first+3; i++ {
					delete(model, i)
				}
				first += 3
			}
		default:
			leader.Store(true)
			if err := store(1+rng.Uint64N(4), term); err != nil {
				return err
			}
			var l raft.Log
			if li, _ := g.LastIndex(); li != last {
				return fmt.Errorf("group %d: LastIndex %d right after an append up to %d", g.ID(), li, last)
			}
			if err := g.GetLog(last, &l); err != nil || l.Term != term {
				return fmt.Errorf("group %d: GetLog(%d) right after the append = term %d, %v", g.ID(), last, l.Term, err)
			}
		}
		if err := checkDurableInFile(g, model, first, last); err != nil {
			return err
		}
	}
	leader.Store(false)
	return nil
}

// checkDurableInFile checks the entries just below DurableIndex against the
// file. Only the caller writes to g, so nothing at or below DurableIndex can
// change under the check.
func checkDurableInFile(g *GroupStore, model map[uint64]uint64, first, last uint64) error {
	d := g.DurableIndex()
	if d > last {
		return fmt.Errorf("group %d: DurableIndex %d beyond the last index %d", g.ID(), d, last)
	}
	for i := max(first, d-min(d, 3)); i <= d && i >= first; i++ {
		l, err := fileLog(g, i)
		if err != nil {
			return err
		}
		if l == nil || l.Term != model[i] {
			return fmt.Errorf("group %d: DurableIndex %d, but the file holds %+v at %d, want term %d", g.ID(), d, l, i, model[i])
		}
	}
	return nil
}

// readLoop reads g the way raft's replication does, concurrently with its
// writer, until stop is closed.
func readLoop(g *GroupStore, stop <-chan struct{}, rng *rand.Rand) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		first, _ := g.FirstIndex()
		last, _ := g.LastIndex()
		if last < first || last == 0 {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		index := first + rng.Uint64N(last-first+1)
		var l raft.Log
		switch err := g.GetLog(index, &l); {
		case err == raft.ErrLogNotFound: // compacted or truncated meanwhile
		case err != nil:
			return err
		case l.Index != index || !strings.HasPrefix(string(l.Data), fmt.Sprintf("g%d/i%d/", g.ID(), index)):
			return fmt.Errorf("group %d: GetLog(%d) returned %+v", g.ID(), index, l)
		}
		if rng.IntN(8) == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			err := g.WaitDurable(ctx, index)
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
		}
	}
}

// The view's bounds and DurableIndex combine the file and pending appends,
// whatever their relative positions; they are exact again after the commit.
func TestAsyncAppendBounds(t *testing.T) {
	tests := []struct {
		name                 string
		file, pending        [][2]uint64 // index ranges, stored in order
		first, last, durable uint64
		// durable once the first pending range has committed and the
		// others are held in the next commit
		later uint64
	}{
		{"nothing committed", nil, [][2]uint64{{3, 4}}, 3, 4, 0, 0},
		{"appended", [][2]uint64{{1, 5}}, [][2]uint64{{6, 8}}, 1, 8, 5, 0},
		{"below the file", [][2]uint64{{10, 12}}, [][2]uint64{{5, 6}}, 5, 12, 4, 0},
		{"overwriting the file", [][2]uint64{{1, 10}}, [][2]uint64{{4, 5}}, 1, 10, 3, 0},
		{"after a gap", [][2]uint64{{1, 3}}, [][2]uint64{{10, 12}}, 1, 12, 3, 0},
		{"not ascending", [][2]uint64{{1, 3}}, [][2]uint64{{7, 8}, {10, 11}, {5, 6}}, 1, 11, 3, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, filepath.Join(t.TempDir(), "logs.db"), Options{NoSync: true})
			g := group(t, s, 1)
			var leader atomic.Bool
			g.SetAsyncAppends(leader.Load)
			for _, r := range tt.file {
				storeLogs(t, g, entries(1, r[0], r[1], 1))
			}
			cs := stepCommits(t, s)
			leader.Store(true)
			for i, r := range tt.pending {
				storeLogs(t, g, entries(1, r[0], r[1], 2))
				if i == 0 {
					cs.next(t, 1)
				}
			}
			assertBounds(t, g, tt.first, tt.last)
			assertDurable(t, g, tt.durable)
			for _, r := range tt.pending {
				assertLog(t, g, r[0], 2)
				assertLog(t, g, r[1], 2)
			}
			cs.finish(nil)
			if len(tt.pending) > 1 {
				cs.next(t, len(tt.pending)-1)
				assertBounds(t, g, tt.first, tt.last)
				assertDurable(t, g, tt.later)
				cs.finish(nil)
			}
			mustOK(t, g.WaitDurable(context.Background(), tt.last))
			assertBounds(t, g, tt.first, tt.last)
			assertDurable(t, g, tt.last)
		})
	}
}

// Within one StoreLogs call, indexes need not be consecutive, and the last
// entry for an index wins, in memory as in the file.
func TestAsyncAppendSparseRequest(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "logs.db"), Options{NoSync: true})
	g := group(t, s, 1)
	g.SetAsyncAppends(alwaysLeader)
	cs := stepCommits(t, s)
	storeLogs(t, g, []*raft.Log{entry(1, 9, 1), entry(1, 7, 1), entry(1, 7, 2), entry(1, 12, 3)})
	cs.next(t, 1)
	check := func() {
		t.Helper()
		assertBounds(t, g, 7, 12)
		assertLog(t, g, 7, 2)
		assertLog(t, g, 9, 1)
		assertLog(t, g, 12, 3)
		assertNoLog(t, g, 8)
		assertNoLog(t, g, 10)
	}
	check()
	assertDurable(t, g, 0)
	cs.finish(nil)
	mustOK(t, g.WaitDurable(context.Background(), 12))
	check()
}
