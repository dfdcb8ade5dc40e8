package objects

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/objid"
)

// This file is the per-object executor: the input gate, the pipeline of in-flight calls,
// the output gate and instance resets. doc.go states the invariants; the comments here say
// where each is kept.

// event is one admitted call.
type event struct {
	ctx      context.Context
	req      Request // Args cleared: decoded into in
	m        *method
	in       any
	group    Group        // the object's group when the call was routed
	alarm    bool         // an alarm firing (alarm.go), not a call: req has no method
	reply    chan outcome // buffered (1): answering never blocks on a caller that left
	answered bool         // executor only: answer panics on a second answer
}

type outcome struct {
	result []byte
	err    error
}

type reqKey struct {
	client [16]byte
	seq    uint64
}

// entry is a call (or Init) that ran and awaits its release: a write entry waits for its
// command's Proposal, a read entry for ReadIndex. Entries are released strictly in the
// order they ran.
type entry struct {
	gen       uint64   // the generation the entry ran in; a reset ends a generation
	ev        *event   // nil for Init's command
	followers []*event // retries of the same request that arrived meanwhile

	w   *layer // write entries: the call's writes (its command's ops); nil for reads
	seq uint64 // write entries: position in the in-flight layer

	result []byte // answered on success
	herr   error  // read entries: the handler's error, answered instead of result

	// done is closed when the outcome is known: for a write entry it is its proposal's
	// Done, and release takes res and err from the proposal; for a read entry, its
	// ReadIndex goroutine sets err and closes it.
	done <-chan struct{}
	prop Proposal
	res  *fsm.Result
	err  error
}

// instance is one object in memory. Its fields under mu are shared with callers and the
// sweeper; the rest belong to the executor goroutine — the one goroutine running run()
// while running is true: the caller that found the object idle, then any goroutine it
// hands over to. A later run() takes them over through mu (running is set and cleared
// under it), so they are never touched concurrently.
type instance struct {
	rt   *Runtime
	id   objid.ID
	cls  *class
	wake chan struct{} // (1) nudges the executor when a call is queued

	mu       sync.Mutex
	queue    []*event // admitted calls not yet executed, in arrival order
	admitted int      // calls admitted and not answered: queued, in the pipeline, or following
	running  bool     // an executor goroutine owns the fields below
	lastUsed time.Time

	// Generation state. A generation is a stretch of time during which the in-memory view
	// (obj, inflight) may be built on the writes of in-flight commands. It starts at bind,
	// with an empty pipeline and the committed state settled, and ends at hardReset.
	gen     uint64
	bound   bool   // a generation is running: group and term are set
	group   Group  // the group, and the term this node led it in, when the generation began
	term    uint64 //
	version uint64 // the object's committed version once every released command is applied
	// proposed is the version the newest submitted command of this generation produces;
	// each command carries it (fsm.Command.Version) so the state machine applies it only on
	// top of exactly the commands it was built on.
	proposed uint64

	obj      any      // the user's object; nil when not activated (Init not run)
	pipeline []*entry // ran and not released, in execution order; older generations first
	inflight *layer   // the writes of the current generation's write entries, in order
	byReq    map[reqKey]*entry
	dedup    dedupView // lookupDedup's state
	nextSeq  uint64
	// brokenGen is a generation that ended because the state machine applied one of its
	// commands differently from what the view assumed (rejected, duplicate, foreign
	// write); its later commands that still apply are counted as inconsistencies.
	brokenGen uint64
	// ambiguity caches ambiguousClass: 0 unknown, 1 no, 2 yes.
	ambiguity uint8
}

func newInstance(r *Runtime, id objid.ID, cls *class) *instance {
	return &instance{
		rt:       r,
		id:       id,
		cls:      cls,
		wake:     make(chan struct{}, 1),
		lastUsed: r.opts.Now(),
		gen:      1,
		inflight: newLayer(),
		byReq:    make(map[reqKey]*entry),
	}
}

// admit queues ev, or refuses it when the object holds MaxQueue calls. If no executor is
// running, the caller becomes it: admit reports exec and the caller must call run(ev).
// Called with the shard lock held (so Runtime.Close cannot pass execs.Wait before the Add
// below).
func (in *instance) admit(ev *event) (exec bool, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.admitted >= in.rt.opts.MaxQueue { // invariant 1's bound
		in.rt.overloads.Add(1)
		return false, fmt.Errorf("%w: %d calls queued or in flight on %s", ErrOverloaded, in.admitted, in.id)
	}
	in.admitted++
	in.queue = append(in.queue, ev)
	in.lastUsed = in.rt.opts.Now()
	if !in.running {
		in.running = true
		in.rt.execs.Add(1)
		return true, nil
	}
	select {
	case in.wake <- struct{}{}:
	default: // a nudge is already pending
	}
	return false, nil
}

// idleSince returns how long the instance has been idle, or 0 if it is busy.
func (in *instance) idleSince(now time.Time) time.Duration {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.running || in.admitted > 0 {
		return 0
	}
	return now.Sub(in.lastUsed)
}

// run is the executor. It runs while the object has calls queued or in flight and stops
// when it has none, so an idle object costs no goroutine.
//
// The caller whose call found the object idle runs it on its own goroutine (own is that
// call): most calls of a spread load then run, commit and are answered without a goroutine
// of their own or a hand-off between two. Once own is answered, or its caller gives up,
// run hands what is left to a new goroutine (own nil), which runs until the object idles.
func (in *instance) run(own *event) {
	if in.loop(own) {
		go in.run(nil) // ownership of the executor's fields passes with the go statement
		return
	}
	in.rt.execs.Done()
}

// loop executes and releases calls until the object has nothing left (then the executor
// has stopped: it returns false) or, for a caller's goroutine, until own is answered or
// its caller leaves while work remains (it returns true: hand off).
func (in *instance) loop(own *event) (handoff bool) {
	if own != nil {
		// A panic here is a broken invariant. On the caller's goroutine it would be caught
		// by the server's per-request recover and leave the object with an executor that
		// never runs; crash instead, as the executor's own goroutine would.
		defer func() {
			if p := recover(); p != nil {
				stack := debug.Stack() // the panicking executor's frames are still below
				go panic(fmt.Sprintf("%v [recovered from the executor]\n%s", p, stack))
				select {}
			}
		}()
	}
	in.rt.executing.Add(1)
	defer in.rt.executing.Add(-1)
	var left <-chan struct{}
	if own != nil {
		left = own.ctx.Done()
	}
	for {
		in.release()
		if own != nil && own.answered {
			return !in.stopIfIdle()
		}
		ev, exit := in.next()
		if exit {
			return false
		}
		if ev != nil {
			in.execute(ev)
			continue
		}
		// Nothing may run now: wait for the oldest entry or for a new call. The pipeline
		// is not empty here (next returns exit when queue and pipeline are both empty,
		// and an event unless the pipeline is draining).
		select {
		case <-in.pipeline[0].done:
		case <-in.wake:
		case <-left:
			return true
		}
	}
}

// next returns the next call to execute, nil if none may run now, or exit when the
// executor has nothing left to do (then it has given up ownership).
func (in *instance) next() (ev *event, exit bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopIfIdleLocked() {
		return nil, true
	}
	if len(in.queue) == 0 || in.draining() {
		return nil, false
	}
	ev = in.queue[0]
	in.queue[0] = nil
	in.queue = in.queue[1:]
	return ev, false
}

// stopIfIdle gives up ownership of the executor if the object has nothing queued or in
// flight, and reports whether it did.
func (in *instance) stopIfIdle() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.stopIfIdleLocked()
}

func (in *instance) stopIfIdleLocked() bool {
	if len(in.queue) != 0 || len(in.pipeline) != 0 {
		return false
	}
	in.running = false
	in.lastUsed = in.rt.opts.Now()
	return true
}

// draining reports whether entries of an ended generation are still in the pipeline. No
// call may run until they are released: one of their commands might still be applied,
// and a new generation must start from settled committed state.
func (in *instance) draining() bool {
	return len(in.pipeline) > 0 && in.pipeline[0].gen != in.gen
}

// requeue puts ev back at the head of the queue, to run after the pipeline drains.
func (in *instance) requeue(ev *event) {
	in.mu.Lock()
	in.queue = slices.Insert(in.queue, 0, ev)
	in.mu.Unlock()
}

// execute runs one call through the input gate (invariant 1): this is the only place user
// code runs, and it runs on the executor goroutine, so never two handlers of one object at
// once.
func (in *instance) execute(ev *event) {
	if in.rt.ctx.Err() != nil {
		in.answer(ev, nil, ErrClosed)
		return
	}
	if err := ev.ctx.Err(); err != nil {
		in.answer(ev, nil, err) // the caller left while the call was queued: do not run it
		return
	}

	// Leadership: a generation lives within one term of one group (invariant 6).
	term, ok := ev.group.LeaderTerm()
	if !ok {
		if in.bound {
			in.hardReset("this node no longer leads the group", nil)
		}
		in.answer(ev, nil, in.rt.notLeader(in.id))
		return
	}
	if in.bound && (ev.group != in.group || term != in.term) {
		in.hardReset("the group's leader term or the object's group changed", nil)
	}
	if !in.bound {
		if len(in.pipeline) > 0 {
			in.requeue(ev) // the ended generation's commands must settle first
			return
		}
		if err := in.bind(ev.group, term); err != nil {
			in.answer(ev, nil, err)
			return
		}
	}

	// Exactly-once (invariant 7): a request already in flight here is followed, not run
	// again; one already applied is answered from the dedup table. Entries of the current
	// generation are in byReq until released, and a released write is applied (visible to
	// View) before it is released, so one of the two always finds an earlier attempt. An
	// ended generation's entries have all settled before this one began (draining). A
	// first attempt has no earlier one to find in the table.
	if ev.req.hasClient() {
		k := reqKey{ev.req.Client, ev.req.Seq}
		if e := in.byReq[k]; e != nil {
			e.followers = append(e.followers, ev)
			return
		}
		if !ev.req.FirstAttempt {
			res, found, err := in.lookupDedup(k)
			if err != nil {
				in.answer(ev, nil, err)
				return
			}
			if found {
				in.answer(ev, res, nil)
				return
			}
		}
	}

	if ev.alarm {
		in.fireAlarm(ev)
		return
	}
	if err := in.activateErr(ev); err != nil {
		in.enqueueRead(ev, nil, err)
		return
	}
	in.invoke(ev)
}

// bind starts a generation in group g's term. The pipeline is empty, so nothing of this
// object is in flight and the committed state is what later reads build on.
func (in *instance) bind(g Group, term uint64) error {
	if len(in.pipeline) != 0 || len(in.inflight.writes) != 0 || in.inflight.cleared || in.inflight.alarm.kind != alarmNone {
		panic("objects: invariant violated: a generation began with commands in flight")
	}
	var v uint64
	if err := g.View(func(tx *fsm.Tx) error {
		v = tx.Version(in.id[:])
		return nil
	}); err != nil {
		return err
	}
	in.bound, in.group, in.term, in.version, in.proposed = true, g, term, v, v
	in.obj = nil
	return nil
}

func (in *instance) lookupDedup(k reqKey) ([]byte, bool, error) {
	d := &in.dedup
	if d.fn == nil {
		d.fn = d.view
	}
	d.k, d.res, d.found = k, nil, false
	err := in.group.View(d.fn)
	res, found := d.res, d.found
	d.res = nil
	return res, found, err
}

// dedupView is lookupDedup's View function with its argument and result, bound once per
// instance: a closure per lookup cost three allocations on every write call.
type dedupView struct {
	k     reqKey
	res   []byte
	found bool
	fn    func(tx *fsm.Tx) error // view, bound to this dedupView
}

func (d *dedupView) view(tx *fsm.Tx) error {
	if r, ok := tx.Dedup(d.k.client[:], d.k.seq); ok {
		d.res, d.found = bytes.Clone(r), true
	}
	return nil
}

// activateErr makes the user's object and runs its Init, unless it is active. On failure
// the object stays inactive, so the next event tries again, and the caller answers ev.
func (in *instance) activateErr(ev *event) error {
	if in.obj != nil {
		return nil
	}
	now := in.rt.opts.Now()
	st := newStorage(in.group, in.id[:], in.inflight)
	var obj any
	_, err := in.protect(ev, "activate", func() ([]byte, error) {
		obj = in.cls.newFn()
		if !in.cls.hasInit {
			return nil, nil
		}
		if err := obj.(Initer).Init(in.newContext(ev, st, now)); err != nil {
			return nil, &HandlerError{Message: "init: " + err.Error(), err: err}
		}
		return nil, nil
	})
	st.closed = true
	if err != nil {
		return err
	}
	if w := st.stack[0]; w.hasWrites() {
		if err := in.propose(nil, w, nil, now); err != nil {
			return err
		}
	}
	in.obj = obj
	return nil
}

// invoke runs the handler and sends its outcome into the pipeline.
func (in *instance) invoke(ev *event) {
	now := in.rt.opts.Now()
	st := newStorage(in.group, in.id[:], in.inflight)
	ctx := in.newContext(ev, st, now)
	result, err := in.protect(ev, ev.m.name, func() ([]byte, error) {
		out, err := ev.m.invoke(in.obj, ctx, ev.in)
		if err != nil {
			return nil, &HandlerError{Message: err.Error(), err: err}
		}
		b, err := encodeResult(out, ev.req.JSON)
		if err != nil {
			return nil, &HandlerError{Message: "encode result: " + err.Error(), err: err}
		}
		return b, nil
	})
	st.closed = true
	if err != nil {
		// The call's writes are discarded. Its error still goes through the output gate:
		// it may depend on what the handler read.
		in.enqueueRead(ev, nil, err)
		return
	}
	w := st.stack[0]
	if !w.hasWrites() {
		in.enqueueRead(ev, result, nil)
		return
	}
	if ev.req.hasClient() && len(result) > fsm.MaxResultSize {
		in.enqueueRead(ev, nil, fmt.Errorf("%w: %d bytes > %d", ErrResultTooLarge, len(result), fsm.MaxResultSize))
		return
	}
	if err := in.propose(ev, w, result, now); err != nil {
		in.enqueueRead(ev, nil, err)
	}
}

// protect runs user code, turning a panic into a *HandlerError. A panic drops the
// in-memory object (a soft reset: the pipeline and its writes stay valid, the next event
// activates a fresh object over them).
func (in *instance) protect(ev *event, what string, fn func() ([]byte, error)) (result []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			in.rt.panics.Add(1)
			in.rt.log.Error("objects: handler panicked; instance reset",
				"class", in.cls.name, "id", in.id.String(), "method", what,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			in.obj = nil
			result, err = nil, &HandlerError{Message: fmt.Sprintf("panic: %v", p), Panicked: true}
		}
	}()
	return fn()
}

func (in *instance) newContext(ev *event, st *Storage, now time.Time) *Context {
	return &Context{Context: ev.ctx, id: in.id, name: ev.req.Name, class: in.cls.name, now: now, st: st}
}

// propose turns a call's writes into one command (invariant 2), submits it and adds a
// write entry. Proposals are submitted here, on the executor goroutine, in execution
// order: Group's Order contract then puts them in the log in that order (invariant 3).
func (in *instance) propose(ev *event, w *layer, result []byte, now time.Time) error {
	if in.rt.ctx.Err() != nil {
		return ErrClosed // submit nothing once Close has begun, whatever the Group does with ctx
	}
	cmd := &fsm.Command{Object: in.id[:], Ops: w.ops(), Time: now.UnixNano(), Version: in.proposed + 1}
	if ev != nil && ev.req.hasClient() {
		cmd.Client = bytes.Clone(ev.req.Client[:])
		cmd.Seq, cmd.Ack, cmd.Result = ev.req.Seq, ev.req.Ack, result
	}
	if w.alarm.kind == alarmSet && in.ambiguousClass() {
		// The scheduler finds objects by ID alone; this one's ID passes another class's
		// checksum too, so the class goes with the alarm.
		w.put(alarmClassKey, write{val: encodeClass(in.cls.name)})
		cmd.Ops = w.ops()
	}
	// Storage checks every limit before buffering, so this only fails on a bug; checking
	// here keeps an invalid command out of the log, where its rejection would leave the
	// commands pipelined behind it applied on a state their handlers did not see.
	if err := cmd.Validate(); err != nil {
		return fmt.Errorf("objects: the call's command is invalid: %w", err)
	}
	in.nextSeq++
	in.proposed++
	e := &entry{gen: in.gen, ev: ev, w: w, seq: in.nextSeq, result: result}
	in.inflight.applyInflight(w, e.seq)
	if s := in.rt.sched; s != nil && (w.alarm.kind != alarmNone || w.cleared) {
		s.notify(in.group, in.id, w.alarm) // a cleared layer's alarm is alarmNone: removed
	}
	// The generation's term goes with the command: if the term ended since the handler
	// ran, the group refuses it rather than append it in a term where the commands it
	// was built on may be lost (Group's Term rule).
	e.prop = in.group.Submit(in.rt.ctx, in.term, cmd)
	e.done = e.prop.Done()
	in.push(e)
	return nil
}

// awaitReadIndex waits for a read entry's ReadIndex. It is a method (not a closure) so
// that starting it allocates nothing.
func (e *entry) awaitReadIndex(ctx context.Context, g Group, done chan struct{}) {
	e.err = g.ReadIndex(ctx)
	close(done)
}

// enqueueRead adds a read entry: a call that wrote nothing (or failed) is answered once
// ReadIndex confirms this node's leadership and every earlier entry is released.
func (in *instance) enqueueRead(ev *event, result []byte, herr error) {
	done := make(chan struct{})
	e := &entry{gen: in.gen, ev: ev, result: result, herr: herr, done: done}
	go e.awaitReadIndex(in.rt.ctx, in.group, done)
	in.push(e)
}

func (in *instance) push(e *entry) {
	if !in.bound || e.gen != in.gen {
		panic("objects: invariant violated: an entry was added outside a running generation")
	}
	in.pipeline = append(in.pipeline, e)
	if e.ev != nil && e.ev.req.hasClient() {
		in.byReq[reqKey{e.ev.req.Client, e.ev.req.Seq}] = e
	}
}

// release answers the completed entries at the head of the pipeline, in order: the output
// gate (invariant 4). An entry is answered only after every entry before it was released,
// so a reply never reveals a write that has not committed.
func (in *instance) release() {
	for len(in.pipeline) > 0 {
		e := in.pipeline[0]
		select {
		case <-e.done:
		default:
			return
		}
		in.pipeline[0] = nil
		in.pipeline = in.pipeline[1:]
		if e.prop != nil {
			e.res, e.err = e.prop.Wait() // done: returns at once
		}
		in.finish(e)
	}
}

// finish releases one completed entry at the head of the pipeline.
func (in *instance) finish(e *entry) {
	if e.gen != in.gen {
		// Answered with ErrInstanceReset when its generation ended; now its outcome is
		// known. Applied after an earlier command of its generation was rejected, its
		// writes were built on writes that never happened: Group's rules cannot prevent
		// that (see doc.go), so it is counted and logged loudly.
		if e.w != nil && e.err == nil && e.res != nil && e.res.Err == nil && !e.res.Duplicate && e.gen == in.brokenGen {
			in.rt.inconsistent.Add(1)
			in.rt.log.Error("objects: a command applied after an earlier command of its "+
				"generation was rejected; the object's state may not match what its handlers saw",
				"class", in.cls.name, "id", in.id.String(), "index", e.res.Index)
		}
		return
	}
	if e.ev != nil && e.ev.req.hasClient() {
		delete(in.byReq, reqKey{e.ev.req.Client, e.ev.req.Seq})
	}
	if e.w == nil { // read entry
		if e.err != nil {
			in.answerEntry(e, nil, in.groupErr(e.err))
		} else {
			in.answerEntry(e, e.result, e.herr)
		}
		return
	}
	switch {
	case e.err != nil:
		// Outcome unknown (or known failed): the caller gets the Group's error; what was
		// built on this command's writes is void.
		in.answerEntry(e, nil, in.groupErr(e.err))
		in.hardReset("a command failed", e.err)
	case e.res == nil:
		in.answerEntry(e, nil, fmt.Errorf("%w: the group returned no result", ErrInstanceReset))
		in.hardReset("a command returned no result", nil)
	case errors.Is(e.res.Err, fsm.ErrVersionConflict):
		// Built on a view that did not commit as seen (an earlier command was rejected, or
		// the object was written elsewhere): nothing applied, so the call may run again.
		in.answerEntry(e, nil, fmt.Errorf("%w: %w", ErrInstanceReset, e.res.Err))
		in.hardReset("a command was built on a view that did not commit", e.res.Err)
	case e.res.Err != nil:
		in.answerEntry(e, nil, fmt.Errorf("objects: the state machine rejected the command: %w", e.res.Err))
		in.brokenGen = e.gen
		in.hardReset("the state machine rejected a command", e.res.Err)
	case e.res.Duplicate:
		// The request was applied before, by an attempt this generation did not know of:
		// its first result is the answer, and this command's writes never happened.
		in.answerEntry(e, e.res.Result, nil)
		in.brokenGen = e.gen
		in.hardReset("a command was a duplicate", nil)
	case e.res.Version != in.version+1:
		// Someone else wrote the object between our commands: the view was wrong.
		in.answerEntry(e, nil, fmt.Errorf("%w: object version %d, expected %d", ErrInstanceReset, e.res.Version, in.version+1))
		in.brokenGen = e.gen
		in.hardReset("the object was written outside this instance", nil)
	default:
		// Applied: its overlay may go, and only now, after every earlier one went
		// (invariant 5).
		in.version++
		in.inflight.removeInflight(e.w, e.seq)
		in.answerEntry(e, e.result, nil)
	}
}

// hardReset ends the generation (invariant 6): the object and the in-flight view are
// dropped and every call still in the pipeline is answered ErrInstanceReset at once (its
// result was computed on writes that may not happen). The entries stay in the pipeline,
// answered, until their commands' outcomes are known; no call runs before (draining).
func (in *instance) hardReset(reason string, cause error) {
	old := in.gen
	in.gen++
	in.bound, in.group, in.term = false, nil, 0
	in.obj = nil
	in.inflight = newLayer()
	clear(in.byReq)
	err := fmt.Errorf("%w: %s", ErrInstanceReset, reason)
	n := 0
	for _, e := range in.pipeline {
		if e.gen == old {
			in.answerEntry(e, nil, err)
			n++
		}
	}
	in.rt.resets.Add(1)
	level := slog.LevelWarn
	if in.rt.ctx.Err() != nil {
		level = slog.LevelDebug // shutting down: every object with calls in flight resets
	}
	in.rt.log.Log(context.Background(), level, "objects: instance reset", "class", in.cls.name,
		"id", in.id.String(), "reason", reason, "cause", cause, "failed_calls", n)
}

func (in *instance) answerEntry(e *entry, result []byte, err error) {
	if e.ev != nil {
		in.answer(e.ev, result, err)
	}
	for _, f := range e.followers {
		in.answer(f, bytes.Clone(result), err) // each caller owns its result
	}
}

// groupErr returns err from the Group as the caller should see it: a failure caused by
// Close cancelling the runtime's context is ErrClosed, not the caller's cancellation.
func (in *instance) groupErr(err error) error {
	if in.rt.ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %v", ErrClosed, err)
	}
	return err
}

// answer delivers the outcome of a call. Every admitted call is answered exactly once.
func (in *instance) answer(ev *event, result []byte, err error) {
	if ev.answered {
		panic("objects: invariant violated: a call was answered twice")
	}
	ev.answered = true
	ev.reply <- outcome{result: result, err: err}
	in.mu.Lock()
	in.admitted--
	in.mu.Unlock()
}

func (l *layer) hasWrites() bool {
	return len(l.writes) > 0 || l.cleared || l.alarm.kind != alarmNone
}
