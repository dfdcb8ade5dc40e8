package logstore

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
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
	order  []*groupTx // the groups whose logs the current commit changes
	free   []*groupTx
	// durable collects the async requests a commit made durable, to be
	// recycled once they are out of their groups' pending lists.
	durable []*request

	frame []byte     // the WAL frame being built, header included
	pos   []int      // where each record of the batch's StoreLogs starts in frame
	sets  []*request // the batch's stable writes, for bbolt
	scan  []byte     // the copy-forward scan's buffer
	// rescan is where the copy-forward scan stood before this commit: a
	// commit that aborts puts the cursor back there, or the live records
	// it scanned would never be copied and their segment never removed.
	rescan int64
}

// groupTx is what one commit does to one group's log, to be applied to its
// index once the frame is durable.
type groupTx struct {
	g      *GroupStore
	copies []copied  // records copied forward, applied first
	ops    []groupOp // the batch's log writes, in order
	async  int       // async requests of the group in the batch
}

// groupOp is one log write: r, whose records (if a StoreLogs) start at
// w.pos[pos].
type groupOp struct {
	r   *request
	pos int
}

// copied is a record copied forward from the oldest segment to frame[pos:].
type copied struct {
	index uint64
	pos   int
	n     uint32
}

// commit writes batch: the log writes as one WAL frame, made durable with
// one fdatasync, the stable writes (rare: terms and votes) in one bbolt
// transaction. On success it applies the log writes to the groups' indexes
// and publishes their new bounds and durable indexes before returning, so a
// caller that sees its write acknowledged also sees it in FirstIndex and
// LastIndex.
func (w *writer) commit(batch []*request) error {
	s := w.s
	if err := s.failure(); err != nil {
		return err
	}
	defer w.reset()

	start := time.Now()
	w.frame = s.wal.newFrame(w.frame)
	if err := w.compact(); err != nil {
		return s.fail(err, len(batch))
	}
	logs, bytes := w.build(batch)
	var tx *bbolt.Tx
	if len(w.sets) > 0 {
		var err error
		if tx, err = s.db.Begin(true); err != nil {
			s.wal.cursor = w.rescan
			return fmt.Errorf("logstore: begin write transaction: %w", err)
		}
		if err := w.applySets(tx); err != nil {
			// Nothing reached the disk: fail this batch only, and
			// scan again the records its frame would have copied.
			_ = tx.Rollback()
			s.wal.cursor = w.rescan
			s.stats.failed.Add(1)
			s.log.Error("logstore: write transaction aborted", "path", s.path, "requests", len(batch), "error", err)
			return err
		}
	}
	commitStart := time.Now()
	seg, off, err := s.commitTx(w, tx, len(batch))
	if err != nil && errors.Is(err, errNewSegment) && errors.Is(err, syscall.ENOSPC) && !slices.ContainsFunc(batch, isAsync) {
		// The disk is full and the WAL could not rotate: nothing of this commit was
		// written, so it alone fails, and the store goes on (a follower on a full disk
		// refuses appends until space comes back, instead of stopping).
		s.wal.cursor = w.rescan
		s.stats.failed.Add(1)
		s.log.Error("logstore: no space for a new WAL segment; the commit failed, the store goes on",
			"path", s.path, "requests", len(batch), "error", err)
		return fmt.Errorf("logstore: commit: %w", err)
	}
	if err != nil {
		return s.fail(fmt.Errorf("logstore: commit: %w", err), len(batch))
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
	st.segments.Store(uint64(len(s.wal.segs)))
	for _, gt := range w.order {
		st.copied.Add(uint64(len(gt.copies)))
	}

	for _, gt := range w.order {
		w.durable = gt.g.committed(gt, seg, off, w.pos, w.durable)
	}
	return nil
}

// fail makes err the store's failure: whatever of the batch reached the
// disk, its durable state is unknown. It calls OnFailure: a store that
// refuses every write leaves its node a zombie, up but of no use to any
// group, so the node must stop and reopen it.
func (s *Store) fail(err error, requests int) error {
	s.stats.failed.Add(1)
	s.setFailed(err)
	s.failOnce.Do(func() {
		s.log.Error("logstore: commit failed; refusing further writes, the node must stop",
			"path", s.path, "requests", requests, "error", err)
		go s.onFailure(err) // not on the writer, as in asyncFailed
	})
	return err
}

// build appends the batch's log writes to the frame and collects its stable
// writes. It returns the number of log entries and of bytes written.
func (w *writer) build(batch []*request) (logs, bytes int) {
	for _, r := range batch {
		switch r.op {
		case opStoreLogs:
			gt := w.group(r.g)
			if r.async {
				gt.async++
			}
			gt.ops = append(gt.ops, groupOp{r: r, pos: len(w.pos)})
			w.frame = appendStoreOp(w.frame, r.g.id, len(r.ends))
			start := 0
			for _, end := range r.ends {
				var pos int
				w.frame, pos = appendRecord(w.frame, r.recs[start:end])
				w.pos = append(w.pos, pos)
				start = end
			}
			logs += len(r.ends)
			bytes += r.size()
		case opDeleteRange:
			gt := w.group(r.g)
			gt.ops = append(gt.ops, groupOp{r: r})
			w.frame = appendDeleteOp(w.frame, r.g.id, r.min, r.max)
		case opSet:
			w.sets = append(w.sets, r)
			bytes += r.size()
		default:
			panic(fmt.Sprintf("logstore: invariant violated: request with unknown op %d reached the writer", r.op))
		}
	}
	return logs, bytes
}

// compact removes the WAL's dead segments and, if the oldest should go,
// copies a budget's worth of its live records into the frame.
func (w *writer) compact() error {
	wal := w.s.wal
	if err := wal.dropDeadSegments(); err != nil {
		return err
	}
	w.rescan = wal.cursor
	if !wal.shouldCopy() {
		return nil
	}
	var err error
	w.scan, _, err = wal.scanOldest(w.scan, func(group, index uint64, l loc, rec []byte) {
		g := w.s.lookupGroup(group)
		if g == nil {
			return
		}
		// Only the writer changes an index: no lock needed to read it.
		if cur, ok := g.idx.get(index); !ok || cur != l {
			return // dead
		}
		gt := w.group(g)
		w.frame = appendStoreOp(w.frame, group, 1)
		var pos int
		w.frame, pos = appendRecord(w.frame, rec)
		gt.copies = append(gt.copies, copied{index: index, pos: pos, n: uint32(len(rec))})
	})
	return err
}

// applySets performs the batch's stable writes in tx.
func (w *writer) applySets(tx *bbolt.Tx) error {
	for _, r := range w.sets {
		top, err := tx.CreateBucketIfNotExists(r.g.name[:])
		var b *bbolt.Bucket
		if err == nil {
			b, err = top.CreateBucketIfNotExists(stableBucket)
		}
		if err == nil {
			err = b.Put(r.keys, r.recs)
		}
		if err != nil {
			return fmt.Errorf("logstore: group %d: put stable key: %w", r.g.id, err)
		}
	}
	return nil
}

// group returns the groupTx of g in the current commit.
func (w *writer) group(g *GroupStore) *groupTx {
	if gt := w.groups[g]; gt != nil {
		return gt
	}
	var gt *groupTx
	if n := len(w.free); n > 0 {
		gt, w.free = w.free[n-1], w.free[:n-1]
	} else {
		gt = new(groupTx)
	}
	gt.g = g
	w.groups[g] = gt
	w.order = append(w.order, gt)
	return gt
}

func (w *writer) reset() {
	clear(w.groups)
	for _, gt := range w.order {
		clear(gt.ops) // pin no request
		*gt = groupTx{copies: gt.copies[:0], ops: gt.ops[:0]}
		w.free = append(w.free, gt)
	}
	w.order = w.order[:0]
	w.pos = w.pos[:0]
	clear(w.sets)
	w.sets = w.sets[:0]
	if cap(w.frame) > 4*maxBatchBytes {
		w.frame = nil // a huge request's frame: do not keep it
	}
}

// commitTx makes the commit durable: the frame, if it holds anything, then
// tx, if not nil. It returns where the frame was written. Tests can make it
// fail through testHookCommit.
func (s *Store) commitTx(w *writer, tx *bbolt.Tx, batchRequests int) (*segment, int64, error) {
	if s.beforeCommit != nil {
		s.beforeCommit()
	}
	if s.testHookCommit != nil {
		if err := s.testHookCommit(batchRequests); err != nil {
			if tx != nil {
				_ = tx.Rollback()
			}
			return nil, 0, err
		}
	}
	var seg *segment
	var off int64
	if !frameEmpty(w.frame) {
		var err error
		if seg, off, err = s.wal.write(w.frame); err != nil {
			if tx != nil {
				_ = tx.Rollback()
			}
			return nil, 0, err
		}
	}
	if tx != nil {
		if err := tx.Commit(); err != nil {
			return nil, 0, err
		}
	}
	return seg, off, nil
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
	// Transactions is the number of group commits: one WAL frame and
	// one fdatasync each (and a bbolt commit if it holds stable writes).
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
	// CommitDuration is the total time spent making commits durable:
	// writing WAL frames and their fdatasyncs, and bbolt's commits of
	// stable writes.
	CommitDuration time.Duration
	// TransactionDuration is the total time from beginning each write
	// transaction to the end of its commit; minus CommitDuration, it is
	// the CPU cost of applying batches.
	TransactionDuration time.Duration
	// FailedTransactions counts write transactions rolled back or whose
	// commit failed.
	FailedTransactions uint64
	// Segments is the number of WAL segment files now.
	Segments uint64
	// CopiedLogs is the number of log records copied forward out of old
	// segments so that those could be removed.
	CopiedLogs uint64
}

type counters struct {
	transactions, requests, logs, bytes atomic.Uint64
	lastBatch, commitNanos, txNanos     atomic.Uint64
	failed, asyncRequests               atomic.Uint64
	segments, copied                    atomic.Uint64
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
		Segments:            c.segments.Load(),
		CopiedLogs:          c.copied.Load(),
	}
	if st.Transactions > 0 {
		st.AvgBatchRequests = float64(st.Requests) / float64(st.Transactions)
	}
	return st
}
