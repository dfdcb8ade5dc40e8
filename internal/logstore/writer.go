package logstore

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

// Group commit. Writers of every group append a request to Store.queue and
// block on its done channel; one goroutine (run) takes whatever is queued, up
// to the caps below, applies it in one bbolt write transaction, commits (one
// round of fsyncs), and answers every request with the commit's outcome.
// There is no timer: a lone request commits at once, and batches form from
// the requests that queue up while the previous commit is in its fsyncs, so
// the batch size tracks the load.
const (
	// The caps bound the latency one huge batch can add to the requests
	// behind it and the memory bbolt holds in dirty pages. Both are far above
	// what a commit's worth of raft traffic usually queues.
	maxBatchRequests = 1024
	maxBatchBytes    = 4 << 20
)

type opKind uint8

const (
	opStoreLogs opKind = iota + 1
	opDeleteRange
	opSet
)

// request is one write waiting for the writer. The caller fills it, submits
// it, and owns it again once it has received from done.
type request struct {
	g  *GroupStore
	op opKind
	// opStoreLogs: keys holds the 8-byte index keys back to back, recs the
	// encoded records back to back, ends[i] the end of record i in recs.
	// opSet: keys is the stable key and recs the value.
	// Both are copies: bbolt keeps references to them until the commit.
	keys []byte
	recs []byte
	ends []int
	// opDeleteRange: the inclusive range.
	min, max uint64

	// async marks a StoreLogs whose caller did not wait (see async.go):
	// nobody receives from done, and the request stays in its group's
	// pending list, serving reads, until the writer has committed it.
	// lo and hi are its smallest and largest index; dense says its keys
	// are lo, lo+1, ..., hi in order, so that a read can index them.
	async  bool
	lo, hi uint64
	dense  bool

	done chan error // buffered(1): the writer never blocks on a caller
}

func (r *request) size() int { return len(r.keys) + len(r.recs) }

func isAsync(r *request) bool { return r.async }

// Requests are recycled so that a write costs no allocation beyond its
// encoding growth; large buffers are dropped rather than pinned in the pool.
const maxPooledBuffer = 64 << 10

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan error, 1)} }}

func getRequest(g *GroupStore, op opKind) *request {
	r := requestPool.Get().(*request)
	r.g, r.op = g, op
	return r
}

func putRequest(r *request) {
	r.g, r.op, r.min, r.max = nil, 0, 0, 0
	r.async, r.lo, r.hi, r.dense = false, 0, 0, false
	r.keys, r.recs, r.ends = trim(r.keys), trim(r.recs), r.ends[:0]
	if cap(r.ends) > maxPooledBuffer/8 {
		r.ends = nil
	}
	requestPool.Put(r)
}

func trim(b []byte) []byte {
	if cap(b) > maxPooledBuffer {
		return nil
	}
	return b[:0]
}

// submit queues r and waits until the transaction holding it has committed
// or failed. It consumes r.
func (s *Store) submit(r *request) error {
	if err := s.enqueue(r); err != nil {
		putRequest(r)
		return err
	}
	err := <-r.done
	putRequest(r)
	return err
}

// enqueue appends r to the write queue, unless the store is closing or has
// failed. On error the caller still owns r.
func (s *Store) enqueue(r *request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return ErrClosed
	}
	if s.failed != nil {
		return fmt.Errorf("%w: %w", ErrFailed, s.failed)
	}
	s.queue = append(s.queue, r)
	s.cond.Signal()
	return nil
}

// run is the writer goroutine: the only code that opens write transactions.
// It exits once Close has been called and the queue is drained.
func (s *Store) run() {
	defer close(s.writerDone)
	w := writer{s: s, groups: make(map[*GroupStore]*groupTx)}
	var batch []*request
	for {
		batch = s.next(batch[:0])
		if len(batch) == 0 {
			return
		}
		err := w.commit(batch)
		if err != nil && slices.ContainsFunc(batch, isAsync) {
			// Before answering anyone, so that the store already
			// refuses the writes that answers may prompt.
			s.asyncFailed(err)
		}
		for _, r := range batch {
			// An async request has no one waiting. After a success
			// it is recycled below; after a failure it stays pending
			// for good (see asyncFailed).
			if !r.async {
				r.done <- err
			}
		}
		// Only now: the loop above still reads them. They are out of
		// every pending list, so no reader can reach them either.
		for _, r := range w.durable {
			putRequest(r)
		}
		clear(w.durable)
		w.durable = w.durable[:0]
		clear(batch) // do not pin requests the callers have recycled
	}
}

// next waits for work and moves up to a batch's worth of requests, in
// arrival order, from the queue to batch. It returns an empty batch only when
// the store is closing and nothing is left.
func (s *Store) next(batch []*request) []*request {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) == 0 && !s.closing {
		s.cond.Wait()
	}
	n, size := 0, 0
	for n < len(s.queue) && n < maxBatchRequests {
		sz := s.queue[n].size()
		if n > 0 && size+sz > maxBatchBytes {
			break
		}
		size += sz
		n++
	}
	batch = append(batch, s.queue[:n]...)
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	return batch
}

// writer is the state of the writer goroutine, reused across batches.
type writer struct {
	s      *Store
	groups map[*GroupStore]*groupTx
	order  []*groupTx // the groups touched by the current transaction
	free   []*groupTx
	// durable collects the async requests a commit made durable, to be
	// recycled once they are out of their groups' pending lists.
	durable []*request
}

// groupTx caches one group's buckets for the length of a transaction.
type groupTx struct {
	g           *GroupStore
	log, stable *bbolt.Bucket
	logTouched  bool
	first, last uint64 // computed after the batch is applied
	async       int    // async requests of the group in the batch
}

// commit applies batch in one write transaction and commits it. On success
// it publishes the new first/last indexes of the groups whose logs changed,
// and their new durable indexes, before returning, so a caller that sees its
// write acknowledged also sees it in FirstIndex/LastIndex.
func (w *writer) commit(batch []*request) error {
	s := w.s
	if err := s.failure(); err != nil {
		return err
	}
	defer w.reset()

	start := time.Now()
	tx, err := s.db.Begin(true)
	if err != nil {
		return fmt.Errorf("logstore: begin write transaction: %w", err)
	}
	logs, bytes, err := w.apply(tx, batch)
	if err != nil {
		// Nothing reached the file: fail this batch only.
		_ = tx.Rollback()
		s.stats.failed.Add(1)
		s.log.Error("logstore: write transaction aborted", "path", s.path, "requests", len(batch), "error", err)
		return err
	}
	commitStart := time.Now()
	if err := s.commitTx(tx, len(batch)); err != nil {
		s.stats.failed.Add(1)
		err = fmt.Errorf("logstore: commit: %w", err)
		s.setFailed(err)
		s.log.Error("logstore: commit failed; refusing further writes until reopened",
			"path", s.path, "requests", len(batch), "error", err)
		return err
	}
	end := time.Now()

	// Counted before published: whoever sees a write durable sees it in
	// Stats too.
	async := 0
	for _, gt := range w.order {
		async += gt.async
	}
	st := &s.stats
	st.asyncRequests.Add(uint64(async))
	st.transactions.Add(1)
	st.requests.Add(uint64(len(batch)))
	st.logs.Add(uint64(logs))
	st.bytes.Add(uint64(bytes))
	st.lastBatch.Store(uint64(len(batch)))
	st.commitNanos.Add(uint64(end.Sub(commitStart)))
	st.txNanos.Add(uint64(end.Sub(start)))

	for _, gt := range w.order {
		if gt.logTouched {
			w.durable = gt.g.committed(gt, w.durable)
		}
	}
	return nil
}

// apply performs every request of batch, in order, inside tx and computes
// the new log bounds of the groups it touched. It returns the number of log
// entries and of key and value bytes written.
func (w *writer) apply(tx *bbolt.Tx, batch []*request) (logs, bytes int, err error) {
	for _, r := range batch {
		switch r.op {
		case opStoreLogs:
			gt, err := w.group(tx, r.g, true)
			if err != nil {
				return 0, 0, err
			}
			gt.logTouched = true
			if r.async {
				gt.async++
			}
			start := 0
			for i, end := range r.ends {
				k := r.keys[i*indexKeySize : (i+1)*indexKeySize]
				if err := gt.log.Put(k, r.recs[start:end]); err != nil {
					return 0, 0, fmt.Errorf("logstore: group %d: put log: %w", r.g.id, err)
				}
				start = end
			}
			logs += len(r.ends)
			bytes += r.size()
		case opDeleteRange:
			gt, err := w.group(tx, r.g, false)
			if err != nil {
				return 0, 0, err
			}
			if gt == nil {
				continue // nothing was ever written: nothing to delete
			}
			gt.logTouched = true
			if err := deleteRange(gt.log, r.min, r.max); err != nil {
				return 0, 0, fmt.Errorf("logstore: group %d: delete logs [%d, %d]: %w", r.g.id, r.min, r.max, err)
			}
		case opSet:
			gt, err := w.group(tx, r.g, true)
			if err != nil {
				return 0, 0, err
			}
			if err := gt.stable.Put(r.keys, r.recs); err != nil {
				return 0, 0, fmt.Errorf("logstore: group %d: put stable key: %w", r.g.id, err)
			}
			bytes += r.size()
		default:
			panic(fmt.Sprintf("logstore: invariant violated: request with unknown op %d reached the writer", r.op))
		}
	}
	for _, gt := range w.order {
		if !gt.logTouched {
			continue
		}
		if gt.first, gt.last, err = logBounds(gt.log); err != nil {
			return 0, 0, fmt.Errorf("logstore: group %d: %w", gt.g.id, err)
		}
	}
	return logs, bytes, nil
}

// group returns g's buckets in tx, creating them if create is set. Without
// create it returns nil for a group that has never been written.
func (w *writer) group(tx *bbolt.Tx, g *GroupStore, create bool) (*groupTx, error) {
	if gt := w.groups[g]; gt != nil {
		if create && gt.stable == nil {
			var err error
			if gt.log, gt.stable, err = createGroupBuckets(tx, g); err != nil {
				return nil, err
			}
		}
		return gt, nil
	}
	var log, stable *bbolt.Bucket
	if top := tx.Bucket(g.name[:]); top != nil {
		log, stable = top.Bucket(logBucket), top.Bucket(stableBucket)
	}
	if create && (log == nil || stable == nil) {
		var err error
		if log, stable, err = createGroupBuckets(tx, g); err != nil {
			return nil, err
		}
	}
	if log == nil {
		return nil, nil
	}
	// Raft appends at increasing indexes, so log pages only ever split at
	// their right edge; filling them to 90% instead of bbolt's 50% halves
	// the file. Not persisted by bbolt, so set per transaction.
	log.FillPercent = 0.9

	var gt *groupTx
	if n := len(w.free); n > 0 {
		gt, w.free = w.free[n-1], w.free[:n-1]
	} else {
		gt = new(groupTx)
	}
	*gt = groupTx{g: g, log: log, stable: stable}
	w.groups[g] = gt
	w.order = append(w.order, gt)
	return gt, nil
}

func createGroupBuckets(tx *bbolt.Tx, g *GroupStore) (log, stable *bbolt.Bucket, err error) {
	top, err := tx.CreateBucketIfNotExists(g.name[:])
	if err == nil {
		log, err = top.CreateBucketIfNotExists(logBucket)
	}
	if err == nil {
		stable, err = top.CreateBucketIfNotExists(stableBucket)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("logstore: group %d: create buckets: %w", g.id, err)
	}
	return log, stable, nil
}

func (w *writer) reset() {
	clear(w.groups)
	for _, gt := range w.order {
		*gt = groupTx{}
		w.free = append(w.free, gt)
	}
	w.order = w.order[:0]
}

// deleteRange deletes the keys of [min, max] from a log bucket.
func deleteRange(b *bbolt.Bucket, min, max uint64) error {
	if min > max {
		return nil
	}
	c := b.Cursor()
	key := indexKey(min)
	// Re-seek after each delete instead of calling Next: a bbolt cursor's
	// position after Delete is not specified to be the following key.
	for k, _ := c.Seek(key); k != nil; k, _ = c.Seek(key) {
		index, err := parseIndexKey(k)
		if err != nil {
			return err
		}
		if index > max {
			return nil
		}
		if err := c.Delete(); err != nil {
			return err
		}
		if index == max {
			return nil // and index+1 could overflow
		}
		putIndexKey(key, index+1)
	}
	return nil
}

// commitTx commits tx; tests can make it fail through testHookCommit.
func (s *Store) commitTx(tx *bbolt.Tx, batchRequests int) error {
	if s.beforeCommit != nil {
		s.beforeCommit()
	}
	if s.testHookCommit != nil {
		if err := s.testHookCommit(batchRequests); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

func (s *Store) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return fmt.Errorf("%w: %w", ErrFailed, s.failed)
	}
	return nil
}

// setFailed makes err the store's failure, unless it has one already, and
// wakes the callers of WaitDurable: nothing becomes durable any more.
func (s *Store) setFailed(err error) {
	s.mu.Lock()
	if s.failed == nil {
		s.failed = err
	}
	s.mu.Unlock()
	s.halt()
}

// Stats is a snapshot of the store's write counters, all cumulative since
// Open except LastBatchRequests.
type Stats struct {
	// Transactions is the number of write transactions committed: one
	// round of fsyncs each.
	Transactions uint64
	// Requests is the number of writes (StoreLog, StoreLogs, DeleteRange,
	// Set, SetUint64) committed, across all groups.
	Requests uint64
	// AsyncRequests is how many of Requests were StoreLogs calls that
	// returned without waiting for their commit (SetAsyncAppends).
	AsyncRequests uint64
	// Logs is the number of log entries committed.
	Logs uint64
	// BytesWritten is the size of the keys and values written by
	// StoreLogs and Set, before bbolt's page overhead.
	BytesWritten uint64
	// LastBatchRequests is the number of requests in the latest committed
	// transaction.
	LastBatchRequests uint64
	// AvgBatchRequests is Requests / Transactions: the group-commit factor.
	AvgBatchRequests float64
	// CommitDuration is the total time spent in bbolt's Commit: writing
	// pages and the two fsyncs (data, then meta page).
	CommitDuration time.Duration
	// TransactionDuration is the total time from beginning each write
	// transaction to the end of its commit; minus CommitDuration, it is
	// the CPU cost of applying batches.
	TransactionDuration time.Duration
	// FailedTransactions counts write transactions rolled back or whose
	// commit failed.
	FailedTransactions uint64
}

type counters struct {
	transactions, requests, logs, bytes atomic.Uint64
	lastBatch, commitNanos, txNanos     atomic.Uint64
	failed, asyncRequests               atomic.Uint64
}

// Stats returns the current counters. It is cheap (a few atomic loads) and
// safe to call at any time, also after Close.
func (s *Store) Stats() Stats {
	c := &s.stats
	st := Stats{
		Transactions:        c.transactions.Load(),
		Requests:            c.requests.Load(),
		AsyncRequests:       c.asyncRequests.Load(),
		Logs:                c.logs.Load(),
		BytesWritten:        c.bytes.Load(),
		LastBatchRequests:   c.lastBatch.Load(),
		CommitDuration:      time.Duration(c.commitNanos.Load()),
		TransactionDuration: time.Duration(c.txNanos.Load()),
		FailedTransactions:  c.failed.Load(),
	}
	if st.Transactions > 0 {
		st.AvgBatchRequests = float64(st.Requests) / float64(st.Transactions)
	}
	return st
}
