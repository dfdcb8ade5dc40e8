package logstore

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/duro-db/duro/internal/testutil"
)

func queueLen(s *Store) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// commitGate makes the writer's commits observable and controllable: it
// records each batch's size, and holds the first commit until release is
// called, so that a test can queue requests behind it deterministically.
type commitGate struct {
	mu      sync.Mutex
	batches []int
	failAt  int // 1-based commit number to fail, 0 for none
	entered chan struct{}
	release chan struct{}
}

var errInjected = errors.New("injected commit failure")

func installGate(s *Store, failAt int) *commitGate {
	cg := &commitGate{failAt: failAt, entered: make(chan struct{}), release: make(chan struct{})}
	s.testHookCommit = func(n int) error {
		cg.mu.Lock()
		cg.batches = append(cg.batches, n)
		nth := len(cg.batches)
		cg.mu.Unlock()
		if nth == 1 {
			close(cg.entered)
			<-cg.release
		}
		if nth == cg.failAt {
			return errInjected
		}
		return nil
	}
	return cg
}

func (cg *commitGate) sizes() []int {
	cg.mu.Lock()
	defer cg.mu.Unlock()
	return append([]int{}, cg.batches...)
}

// holdWriter starts one write and returns once the writer is blocked in its
// commit, with the write's result to come on the returned channel.
func holdWriter(t testing.TB, cg *commitGate, g *GroupStore) <-chan error {
	t.Helper()
	first := make(chan error, 1)
	go func() { first <- g.StoreLog(entry(g.ID(), 1, 1)) }()
	<-cg.entered
	return first
}

func TestGroupCommitBatchesQueuedWrites(t *testing.T) {
	tests := []struct {
		name     string
		writers  int
		dataSize int
		want     []int // batch sizes after the held first one
	}{
		{"all queued writes in one transaction", 50, 16, []int{50}},
		{"request cap", maxBatchRequests + 100, 16, []int{maxBatchRequests, 100}},
		{"byte cap", 3, 3 << 20, []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, filepath.Join(t.TempDir(), "logs.db"), Options{NoSync: true})
			cg := installGate(s, 0)
			first := holdWriter(t, cg, group(t, s, 0))

			var wg sync.WaitGroup
			errs := make(chan error, tt.writers)
			for i := range tt.writers {
				g := group(t, s, uint64(1+i%8))
				wg.Go(func() {
					errs <- g.StoreLog(&raft.Log{Index: uint64(i + 1), Term: 1, Data: make([]byte, tt.dataSize)})
				})
			}
			testutil.WaitFor(t, waitLimit, "writes to queue", func() bool { return queueLen(s) == tt.writers })
			close(cg.release)
			wg.Wait()
			close(errs)
			mustOK(t, <-first)
			for err := range errs {
				mustOK(t, err)
			}

			got := cg.sizes()
			want := append([]int{1}, tt.want...)
			if len(got) != len(want) {
				t.Fatalf("batch sizes %v, want %v", got, want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("batch sizes %v, want %v", got, want)
				}
			}
			st := s.Stats()
			if st.Transactions != uint64(len(want)) || st.Requests != uint64(tt.writers+1) ||
				st.LastBatchRequests != uint64(want[len(want)-1]) || st.Logs != uint64(tt.writers+1) {
				t.Fatalf("stats %+v do not match batches %v", st, want)
			}
			// Every write is readable, in whichever group it went to.
			for i := range tt.writers {
				var l raft.Log
				mustOK(t, group(t, s, uint64(1+i%8)).GetLog(uint64(i+1), &l))
			}
		})
	}
}

func TestConcurrentWritersManyGroups(t *testing.T) {
	const (
		writers   = 32
		groups    = 4
		perWriter = 25
	)
	// fsync on: commits take long enough for writes to queue behind them,
	// which is the situation group commit exists for.
	s := openStore(t, filepath.Join(t.TempDir(), "logs.db"), Options{})
	var next [groups]atomic.Uint64 // last index reserved, per group

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		g := group(t, s, uint64(w%groups))
		wg.Go(func() {
			for i := range perWriter {
				n := uint64(1 + (w+i)%3)
				last := next[g.ID()].Add(n)
				if err := g.StoreLogs(entries(g.ID(), last-n+1, last, 1)); err != nil {
					errs <- err
					return
				}
				// Read-your-writes: the bounds cover an acknowledged write
				// and the entry at LastIndex is readable.
				li, _ := g.LastIndex()
				var l raft.Log
				if err := g.GetLog(li, &l); li < last || err != nil {
					errs <- errors.Join(errors.New("acknowledged write not visible"), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var total uint64
	for id := range uint64(groups) {
		g := group(t, s, id)
		last := next[id].Load()
		total += last
		assertBounds(t, g, 1, last)
		for index := uint64(1); index <= last; index++ {
			assertLog(t, g, index, 1)
		}
	}
	st := s.Stats()
	if st.Requests != writers*perWriter || st.Logs != total {
		t.Fatalf("stats %+v, want %d requests and %d logs", st, writers*perWriter, total)
	}
	if st.AvgBatchRequests <= 1 || st.Transactions >= st.Requests {
		t.Fatalf("no group commit: %d requests in %d transactions", st.Requests, st.Transactions)
	}
	if st.CommitDuration <= 0 || st.TransactionDuration < st.CommitDuration || st.BytesWritten == 0 {
		t.Fatalf("implausible stats %+v", st)
	}
	t.Logf("%d requests in %d transactions (%.1f per commit), commit time %v",
		st.Requests, st.Transactions, st.AvgBatchRequests, st.CommitDuration)
}

func TestCommitFailureFailsBatchAndStopsWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.db")
	var calls atomic.Int32
	hooked := make(chan error, 1)
	s := openStore(t, path, Options{NoSync: true, OnFailure: func(err error) {
		calls.Add(1)
		hooked <- err
	}})
	cg := installGate(s, 2) // the held first commit succeeds, the next fails
	g := group(t, s, 0)
	first := holdWriter(t, cg, g)

	// Queue writes of several kinds and groups behind it: they share the
	// failing transaction.
	const n = 10
	errs := make(chan error, n)
	for i := range n {
		gi := group(t, s, uint64(1+i%3))
		go func() {
			switch i % 3 {
			case 0:
				errs <- gi.StoreLogs(entries(gi.ID(), 1, 5, 1))
			case 1:
				errs <- gi.SetUint64([]byte("CurrentTerm"), 9)
			default:
				errs <- gi.DeleteRange(1, 1)
			}
		}()
	}
	testutil.WaitFor(t, waitLimit, "writes to queue", func() bool { return queueLen(s) == n })
	close(cg.release)
	mustOK(t, <-first)
	for range n {
		if err := <-errs; !errors.Is(err, errInjected) {
			t.Fatalf("write in the failed transaction returned %v, want the commit error", err)
		}
	}

	// The node is told to stop: with its log store failed it would only
	// look alive, while every group's appends and votes failed.
	select {
	case err := <-hooked:
		if !errors.Is(err, errInjected) {
			t.Fatalf("OnFailure got %v, want the commit error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("OnFailure not called after a failed commit")
	}

	// The store refuses writes, but still serves reads.
	if err := g.StoreLog(entry(0, 2, 1)); !errors.Is(err, ErrFailed) || !errors.Is(err, errInjected) {
		t.Fatalf("write after a failed commit = %v, want ErrFailed joined with the cause", err)
	}
	assertLog(t, g, 1, 1)
	g1 := group(t, s, 1)
	assertBounds(t, g1, 0, 0)
	if _, err := g1.GetUint64([]byte("CurrentTerm")); err != ErrKeyNotFound {
		t.Fatalf("write of the failed transaction is visible: %v", err)
	}
	if st := s.Stats(); st.Transactions != 1 || st.FailedTransactions != 1 {
		t.Fatalf("stats %+v, want 1 committed and 1 failed transaction", st)
	}
	closeStore(t, s)
	if n := calls.Load(); n != 1 {
		t.Fatalf("OnFailure called %d times, want once", n)
	}

	// Reopening clears the failure; only the committed write is there.
	s = openStore(t, path, Options{NoSync: true})
	g = group(t, s, 0)
	assertBounds(t, g, 1, 1)
	assertBounds(t, group(t, s, 1), 0, 0)
	storeLogs(t, g, entries(0, 2, 3, 1))
	assertBounds(t, g, 1, 3)
}

func TestAbortedTransactionDoesNotStopWrites(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "logs.db"), Options{NoSync: true})
	bad, good := group(t, s, 7), group(t, s, 8)
	// Corrupt the layout: in group 7's bucket, "stable" is a plain value,
	// so the writer cannot create the stable bucket.
	mustOK(t, s.db.Update(func(tx *bbolt.Tx) error {
		top, err := tx.CreateBucket(bad.name[:])
		if err != nil {
			return err
		}
		return top.Put(stableBucket, []byte("oops"))
	}))

	cg := installGate(s, 0)
	first := holdWriter(t, cg, good)
	errs := make(chan error, 2)
	go func() { errs <- bad.Set([]byte("k"), []byte("v")) }()
	go func() { errs <- good.StoreLog(entry(8, 2, 1)) }()
	testutil.WaitFor(t, waitLimit, "writes to queue", func() bool { return queueLen(s) == 2 })
	close(cg.release)
	mustOK(t, <-first)
	for range 2 {
		if err := <-errs; !errors.Is(err, berrors.ErrIncompatibleValue) {
			t.Fatalf("write in the aborted transaction returned %v, want ErrIncompatibleValue", err)
		}
	}
	// Nothing was committed, so the store keeps accepting writes.
	storeLogs(t, good, entries(8, 2, 3, 1))
	assertBounds(t, good, 1, 3)
}

func TestOpenErrors(t *testing.T) {
	t.Run("unsupported format", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "logs.db")
		closeStore(t, openStore(t, path, Options{NoSync: true}))
		db, err := bbolt.Open(path, 0o600, nil)
		mustOK(t, err)
		mustOK(t, db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(metaBucket).Put(formatKey, []byte{99}) }))
		mustOK(t, db.Close())
		if _, err := Open(path, Options{}); !errors.Is(err, ErrUnsupportedFormat) {
			t.Fatalf("Open = %v, want ErrUnsupportedFormat", err)
		}
	})
	t.Run("not a bbolt file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "logs.db")
		mustOK(t, os.WriteFile(path, []byte("this is not a database"), 0o600))
		if s, err := Open(path, Options{}); err == nil {
			s.Close()
			t.Fatal("Open of a garbage file succeeded")
		}
	})
	t.Run("locked by another opener", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "logs.db")
		openStore(t, path, Options{NoSync: true})
		if s, err := Open(path, Options{}); !errors.Is(err, berrors.ErrTimeout) {
			if err == nil {
				s.Close()
			}
			t.Fatalf("second Open = %v, want a lock timeout", err)
		}
	})
}

// Close commits what is already queued before it returns.
func TestCloseDrainsQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.db")
	s := openStore(t, path, Options{NoSync: true})
	cg := installGate(s, 0)
	g := group(t, s, 1)
	first := holdWriter(t, cg, g)

	const n = 20
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- g.StoreLog(entry(1, uint64(i+2), 1)) }()
	}
	testutil.WaitFor(t, waitLimit, "writes to queue", func() bool { return queueLen(s) == n })
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	testutil.WaitFor(t, waitLimit, "Close to start", s.closed.Load)
	if err := g.StoreLog(entry(1, 100, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("write during Close = %v, want ErrClosed", err)
	}
	close(cg.release)
	mustOK(t, <-closed)
	mustOK(t, <-first)
	for range n {
		mustOK(t, <-errs)
	}

	s = openStore(t, path, Options{NoSync: true})
	g = group(t, s, 1)
	assertBounds(t, g, 1, n+1)
	for index := uint64(1); index <= n+1; index++ {
		assertLog(t, g, index, 1)
	}
}

// waitLimit bounds every wait for a state in this package's tests (testutil.WaitFor).
const waitLimit = 30 * time.Second
