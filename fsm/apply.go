package fsm

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// Errors carried in Result.Err.
var (
	// ErrAlreadyApplied is the Result.Err of a command entry at or below the stored
	// applied index: it was applied before (this is a replay) and is skipped.
	ErrAlreadyApplied = errors.New("fsm: entry already applied")
	// ErrStaleSequence is the Result.Err of a command whose Seq is below an Ack the same
	// client sent earlier, and whose dedup entry is already pruned: the client has received
	// that call's answer, so this is a late copy of a retry and is not applied again. It
	// does not wrap ErrBadCommand.
	ErrStaleSequence = errors.New("fsm: sequence number already acknowledged")
	// ErrVersionConflict is the Result.Err of a command whose Version does not follow the
	// object's version: it was computed on state that never committed. Nothing is applied.
	// It does not wrap ErrBadCommand.
	ErrVersionConflict = errors.New("fsm: object version conflict")
)

// Result is the response of every applied command entry: what ApplyFuture.Response()
// returns, as *Result (or, for a batch entry that decoded, *BatchResult holding one Result
// per command). Entries that are not commands get a nil response.
type Result struct {
	Index uint64 // log index of the entry
	// Version is the object's version after this entry: the number of commands ever
	// applied to it. A duplicate does not bump it.
	Version uint64
	// Duplicate means (Client, Seq) was applied before: Ops were NOT applied again and
	// Result holds the first call's result.
	Duplicate bool
	// Result is the command's Result (aliasing the log entry's Data), or a copy of the
	// stored one for a duplicate.
	Result []byte
	// Err means nothing of the entry was applied, for the same reason on every replica:
	// an error wrapping ErrBadCommand (malformed or invalid), ErrStaleSequence or
	// ErrAlreadyApplied.
	Err error
}

// dedupGCPerCommand bounds the dedup entries one applied command may delete (pruning
// below the ack floor, over the per-client bound, and expired ones). Each command adds at
// most one entry, so pruning outpaces growth fourfold and the backlog stays bounded.
//
// The budget is per command, not per batch, because batch boundaries differ between
// replicas and between a first run and a replay: anything that depended on them would
// make replicas diverge.
const dedupGCPerCommand = 4

// emptyValue is stored for empty values and index entries. bbolt keeps a reference to
// the value until commit, and a nil value would read back as "absent".
var emptyValue = []byte{}

// Apply applies one log entry; see ApplyBatch.
func (s *Store) Apply(l *raft.Log) any {
	return s.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in the open bbolt write transaction (beginning one
// if none is open), together with the new applied index, and makes them visible to View.
// The transaction commits once it is Options.CommitInterval old or holds many entries,
// and whenever the file itself is needed (Snapshot, Restore, Hash, Close); a flusher
// commits it when applies stop. The file thus always holds a prefix of the log with its
// applied index: after a crash, raft replays the rest.
//
// Entries at or below the applied index are skipped (a replay): a command gets a *Result
// with Err ErrAlreadyApplied, anything else nil. Other entries that are not commands
// (configuration changes) advance the index and get nil. A command that fails to decode
// or validate gets a *Result with Err and writes nothing, and the rest of the batch still
// applies.
//
// A failure to write panics: raft has handed these entries over and cannot be told to
// retry, and carrying on would acknowledge state that is not there. The open transaction,
// with earlier acknowledged entries, is rolled back, so the store is left broken: View
// errs and ApplyBatch panics until it is reopened and raft replays the log.
func (s *Store) ApplyBatch(logs []*raft.Log) []any {
	resps := make([]any, len(logs))
	if len(logs) == 0 {
		return resps
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		panic("fsm: cannot persist applied entries: store is closed (close raft before the store)")
	}
	s.txMu.Lock()
	defer s.txMu.Unlock()
	if err := s.brokenErr(); err != nil {
		panic(fmt.Sprintf("fsm: cannot persist applied entries: %v", err))
	}
	a := &s.ap
	defer a.end()

	results := make([]Result, len(logs)) // one allocation for the batch's responses
	start := s.applied.Load()
	applied := start
	began := false
	for i, l := range logs {
		if l.Index <= applied {
			if l.Type == raft.LogCommand {
				results[i] = Result{Index: l.Index, Err: ErrAlreadyApplied}
				resps[i] = &results[i]
			}
			continue
		}
		if !began {
			a.begin(s.beginLocked())
			began = true
		}
		applied = l.Index
		s.wtxEntries++
		if l.Type != raft.LogCommand {
			continue
		}
		if isBatch(l.Data) {
			resps[i] = a.applyBatch(l, &results[i])
			continue
		}
		if err := a.apply(l.Index, l.Data, &results[i]); err != nil {
			s.abortLocked(fmt.Errorf("index %d: %w", l.Index, err))
		}
		resps[i] = &results[i]
	}
	if !began {
		return resps
	}
	if err := a.finish(applied); err != nil {
		s.abortLocked(fmt.Errorf("entries %d..%d: %w", start+1, applied, err))
	}
	if s.commitDue() {
		s.commitOpen()
	}
	s.setApplied(applied)
	return resps
}

// applier holds what one batch needs, reused from batch to batch so the apply path
// allocates little. Used under Store.txMu.
type applier struct {
	store *Store
	// clock is the log clock: the highest Time of the commands applied so far (duplicates,
	// rejected and no-op commands do not count). Dedup expiry uses it rather than each
	// entry's own Time so that a proposer whose clock is behind its predecessor's cannot
	// move time backwards.
	clock      int64
	batchClock int64 // clock at the start of the batch, to know whether to persist it

	tx                               *bolt.Tx // the transaction the buckets below are of
	meta, alarms                     *bolt.Bucket
	objects                          tree
	dedup, dedupExpiry, dedupPending tree

	cmd       Command  // decoded entry; its slices alias the log entry's Data
	ops       []Op     // backing array of cmd.Ops, kept across entries and batches
	batch     [][]byte // backing array of a batch entry's commands, cleared after use
	arena     arena
	dedupKey  [ClientIDLen + 8]byte
	expiryKey [8 + ClientIDLen + 8]byte
	alarmKey  [8 + IDLen]byte
	objectKey []byte // scratch for object ID ‖ key (bbolt copies the keys it keeps)
	client    [ClientIDLen]byte
	scan      clientScan
}

// begin readies the applier for a batch in tx. The buckets and their cursors last as
// long as tx: a new batch in the same transaction reuses them.
func (a *applier) begin(tx *bolt.Tx) {
	a.batchClock = a.clock
	if a.tx == tx {
		return
	}
	a.tx = tx
	a.meta = tx.Bucket(bucketMeta)
	a.alarms = tx.Bucket(bucketAlarms)
	if a.meta == nil || a.alarms == nil {
		panic("fsm: layout checked at open has lost a bucket")
	}
	a.objects = newTree(tx, bucketObjects)
	a.dedup = newTree(tx, bucketDedup)
	a.dedupExpiry = newTree(tx, bucketDedupExpiry)
	a.dedupPending = newTree(tx, bucketDedupPending)
}

// tree is a bucket of the open write transaction with one cursor kept for the applier's
// lookups and deletions: bbolt's Bucket.Get and Delete begin a cursor of their own each
// time, and grow its stack by appends as they descend (about a tenth of the apply's CPU
// went to that). Get and Delete below do the same through the kept cursor, whose stack
// stays; a Seek repositions it whatever was written since.
type tree struct {
	*bolt.Bucket
	cur *bolt.Cursor
}

func newTree(tx *bolt.Tx, name []byte) tree {
	b := tx.Bucket(name)
	if b == nil {
		panic("fsm: layout checked at open has lost a bucket")
	}
	return tree{b, b.Cursor()}
}

// Get is Bucket.Get.
func (t tree) Get(key []byte) []byte {
	k, v := t.cur.Seek(key)
	if !bytes.Equal(k, key) {
		return nil
	}
	return v
}

// Delete is Bucket.Delete.
func (t tree) Delete(key []byte) error {
	k, _ := t.cur.Seek(key)
	if !bytes.Equal(k, key) {
		return nil
	}
	return t.cur.Delete()
}

// end drops the batch's references: the scratch command must not keep the batch's log
// entries alive (the open transaction may: values it was given alias them until commit).
func (a *applier) end() {
	clear(a.ops[:cap(a.ops)])
	a.cmd = Command{}
}

// release drops the buckets and recycles the arena once the write transaction that holds
// them has committed or rolled back.
func (a *applier) release() {
	a.tx, a.meta, a.alarms, a.objects = nil, nil, nil, tree{}
	a.dedup, a.dedupExpiry, a.dedupPending = tree{}, tree{}, tree{}
	a.arena.reset()
}

// finish records the batch's applied index and log clock.
func (a *applier) finish(applied uint64) error {
	v := a.arena.alloc(8)
	putUint64(v, applied)
	if err := a.meta.Put(keyApplied, v); err != nil {
		return err
	}
	if a.clock != a.batchClock {
		v := a.arena.alloc(8)
		putUint64(v, uint64(a.clock))
		if err := a.meta.Put(keyClock, v); err != nil {
			return err
		}
	}
	return nil
}

// applyBatch applies the commands of a batch entry one by one (see batch.go) and returns
// the entry's response: a *BatchResult, or res with Err if the framing is malformed.
func (a *applier) applyBatch(l *raft.Log, res *Result) any {
	cmds, err := splitBatch(l.Data, a.batch[:0])
	a.batch = cmds[:0]
	defer clear(cmds)
	if err != nil {
		res.Index, res.Err = l.Index, err
		a.store.log.Debug("fsm: rejected batch", "index", l.Index, "err", err)
		return res
	}
	br := &BatchResult{Results: make([]Result, len(cmds))}
	for k, data := range cmds {
		if err := a.apply(l.Index, data, &br.Results[k]); err != nil {
			a.store.abortLocked(fmt.Errorf("index %d, command %d of its batch: %w", l.Index, k, err))
		}
	}
	return br
}

// apply applies one command (an entry of its own, or one of a batch) at log index, filling
// res. A returned error means the transaction cannot be committed; a deterministic
// rejection is res.Err instead.
func (a *applier) apply(index uint64, data []byte, res *Result) error {
	res.Index = index
	c := &a.cmd
	c.Ops = a.ops[:0]
	err := decodeCommand(data, c)
	if cap(c.Ops) > cap(a.ops) {
		a.ops = c.Ops[:0]
	}
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		res.Err = err
		a.store.log.Debug("fsm: rejected command", "index", index, "err", err)
		return nil
	}
	if c.isNoop() {
		return nil
	}

	sc := &a.scan
	if len(c.Client) != 0 {
		stored, dup, err := a.scanClient(c.Client, c.Seq, sc)
		if err != nil {
			return err
		}
		if dup {
			m, err := a.loadObjectMeta(c.Object)
			if err != nil {
				return err
			}
			res.Duplicate = true
			res.Version = m.version
			res.Result = bytes.Clone(stored)
			return nil
		}
		if c.Seq < sc.rec.floor {
			res.Err = fmt.Errorf("%w: seq %d, client acknowledged every seq below %d", ErrStaleSequence, c.Seq, sc.rec.floor)
			return nil
		}
	}

	m, err := a.loadObjectMeta(c.Object)
	if err != nil {
		return err
	}
	if c.Version != 0 && c.Version != m.version+1 {
		res.Err = fmt.Errorf("%w: command makes version %d, object is at %d", ErrVersionConflict, c.Version, m.version)
		res.Version = m.version
		return nil
	}
	if err := a.applyOps(c, &m); err != nil {
		return err
	}
	m.version++
	if err := a.objects.Put(c.Object, m.appendTo(a.arena.alloc(16)[:0])); err != nil {
		return err
	}
	a.clock = max(a.clock, c.Time)

	budget := dedupGCPerCommand
	if len(c.Client) != 0 {
		if err := a.recordDedup(c, sc, &budget); err != nil {
			return err
		}
	}
	if err := a.collectDedup(&budget); err != nil {
		return err
	}
	res.Version = m.version
	res.Result = c.Result
	return nil
}

func (a *applier) loadObjectMeta(id []byte) (objectMeta, error) {
	return decodeObjectMeta(a.objects.Get(id))
}

// applyOps applies c's ops to the object's keys and m's alarm, then brings the alarm
// index in line with the alarm's final state.
func (a *applier) applyOps(c *Command, m *objectMeta) error {
	id := c.Object
	before := *m
	var err error
	for i := range c.Ops {
		op := &c.Ops[i]
		switch op.Kind {
		case OpPut:
			v := op.Value
			if v == nil {
				v = emptyValue
			}
			err = a.objects.Put(a.makeObjectKey(id, op.Key), v)
		case OpDelete:
			err = a.objects.Delete(a.makeObjectKey(id, op.Key))
		case OpDeleteAll:
			err = a.deleteKeys(id)
			m.hasAlarm, m.alarm = false, 0
		case OpSetAlarm:
			m.hasAlarm, m.alarm = true, op.Alarm
		case OpDeleteAlarm:
			m.hasAlarm, m.alarm = false, 0
		default:
			panic(fmt.Sprintf("fsm: validated command has op kind %d", op.Kind))
		}
		if err != nil {
			return fmt.Errorf("op %d (%v): %w", i, op.Kind, err)
		}
	}
	if before.hasAlarm == m.hasAlarm && before.alarm == m.alarm {
		return nil
	}
	if before.hasAlarm {
		if err := a.alarms.Delete(a.makeAlarmKey(before.alarm, id)); err != nil {
			return err
		}
	}
	if m.hasAlarm {
		return a.alarms.Put(a.makeAlarmKey(m.alarm, id), emptyValue)
	}
	return nil
}

// deleteKeys deletes every key of the object, keeping its record.
func (a *applier) deleteKeys(id []byte) error {
	c := a.objects.Cursor()
	for {
		// A fresh Seek per key: where Cursor.Delete leaves the cursor is not specified.
		k, _ := c.Seek(id)
		if len(k) == IDLen && bytes.Equal(k, id) {
			k, _ = c.Next()
		}
		if len(k) <= IDLen || !bytes.Equal(k[:IDLen], id) {
			return nil
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
}

func (a *applier) makeObjectKey(id, key []byte) []byte {
	a.objectKey = appendObjectKey(a.objectKey[:0], id, key)
	return a.objectKey
}

func (a *applier) makeDedupKey(client []byte, seq uint64) []byte {
	k := a.dedupKey[:]
	copy(k, client)
	putUint64(k[ClientIDLen:], seq)
	return k
}

// makeExpiryKey builds the dedup-expiry key from the stored time (already a timeKey).
func (a *applier) makeExpiryKey(tk, client []byte, seq uint64) []byte {
	k := a.expiryKey[:]
	copy(k, tk[:8])
	copy(k[8:], client)
	putUint64(k[8+ClientIDLen:], seq)
	return k
}

func (a *applier) makeAlarmKey(at int64, id []byte) []byte {
	k := a.alarmKey[:]
	timeKey(k, at)
	copy(k[8:], id)
	return k
}

// arena hands out byte slices for values written in the open write transaction. bbolt keeps
// a reference to each value until commit, so values cannot share one reused buffer, but
// they can share chunks that are recycled once the transaction is over.
type arena struct{ buf []byte }

const arenaChunk = 64 << 10

func (ar *arena) alloc(n int) []byte {
	if n > arenaChunk/4 {
		return make([]byte, n)
	}
	if cap(ar.buf)-len(ar.buf) < n {
		// Slices already handed out keep the old chunk alive until commit.
		ar.buf = make([]byte, 0, arenaChunk)
	}
	l := len(ar.buf)
	ar.buf = ar.buf[:l+n]
	return ar.buf[l : l+n : l+n]
}

// reset recycles the current chunk; only once no transaction references it.
func (ar *arena) reset() { ar.buf = ar.buf[:0] }
