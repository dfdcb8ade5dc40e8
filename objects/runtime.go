package objects

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duro-db/duro/internal/objid"
)

// Options configure a Runtime. The zero value is usable.
type Options struct {
	// IdleTimeout: an object with no call for this long is evicted from memory (its
	// in-memory state dropped; its storage stays). Default 60s.
	IdleTimeout time.Duration
	// MaxQueue bounds the calls one object holds at once, queued or in flight; more get
	// ErrOverloaded. Default 1000.
	MaxQueue int
	// Logger receives resets, panics and evictions. Default: discard.
	Logger *slog.Logger
	// Now is the clock for Context.Now, command log times, idleness and alarm times.
	// Default time.Now. Alarms wait on real timers for the differences it reports.
	Now func() time.Time

	// AlarmRetryDelay is the delay before the first retry of a failed alarm; each next
	// retry waits twice as long. Default 2s.
	AlarmRetryDelay time.Duration
	// AlarmLookahead is how far ahead of now the scheduler loads alarms from a group's
	// time index; it rescans every half of it. Default 5s.
	AlarmLookahead time.Duration
	// AlarmMaxLoaded bounds the alarms one group's scheduler holds in memory. Default
	// 10,000.
	AlarmMaxLoaded int
	// AlarmPoll is how often the runtime asks its AlarmGroups which groups it leads: a new
	// leader's alarms resume within it. Default 100ms. An AlarmGroups that is also a
	// ServingNotifier is asked at once on every change, and AlarmPoll is only a backstop.
	AlarmPoll time.Duration
}

// Defaults for Options.
const (
	DefaultIdleTimeout = 60 * time.Second
	DefaultMaxQueue    = 1000
)

// Request is one call of a method of an object, as it arrives from a client.
type Request struct {
	Class  string
	ID     objid.ID
	Name   string // the name the ID was minted from, if the caller addressed it by name
	Method string
	Args   []byte // the method's input, msgpack (or JSON when JSON is set)
	JSON   bool   // Args are JSON and the result is wanted as JSON
	// Client and Seq identify the request for exactly-once execution; the zero Client
	// means none. A retry must carry the same Client, Seq and Args. Ack tells that the
	// client has the answers of all its Seq < Ack, so their dedup entries may go.
	Client   [16]byte
	Seq, Ack uint64
	// FirstAttempt means the client sent no earlier attempt of (Client, Seq) anywhere,
	// so the dedup table cannot hold it and the executor does not look (a read
	// transaction per write call). Should a client lie, the state machine still refuses
	// the duplicate and the instance resets, as for any duplicate it did not know of.
	FirstAttempt bool
}

func (q *Request) hasClient() bool { return q.Client != [16]byte{} }

// Runtime runs the objects of the classes in a Registry on this node: it routes each call
// to its object's instance, activating it on first use, and executes it with the input
// and output gates described in the package documentation.
type Runtime struct {
	reg  *Registry
	loc  Locator
	opts Options
	log  *slog.Logger

	// ctx ends when Close starts: it bounds proposal submissions and ReadIndex calls.
	ctx    context.Context
	cancel context.CancelFunc

	shards [numShards]shard
	// execs counts running executors. Add happens under a shard lock while the
	// shard is open, so no Add can follow Close's Wait.
	execs     sync.WaitGroup
	closeOnce sync.Once
	stopSweep chan struct{}
	sweepDone chan struct{}
	sched     *scheduler // nil when the Locator is no AlarmGroups

	executing    atomic.Int64
	calls        atomic.Uint64
	resets       atomic.Uint64
	panics       atomic.Uint64
	overloads    atomic.Uint64
	evictions    atomic.Uint64
	inconsistent atomic.Uint64

	alarmsFired   atomic.Uint64
	alarmRetries  atomic.Uint64
	alarmsDropped atomic.Uint64
}

// numShards splits the instance table so concurrent calls to different objects rarely
// contend on one lock.
const numShards = 32

type shard struct {
	mu        sync.Mutex
	instances map[objid.ID]*instance
	closed    bool
}

// NewRuntime returns a Runtime serving the classes of reg, routing objects with loc.
// If loc also implements AlarmGroups, the runtime fires the alarms of the groups it
// serves. Close it to stop.
func NewRuntime(reg *Registry, loc Locator, opts Options) *Runtime {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = DefaultMaxQueue
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AlarmRetryDelay <= 0 {
		opts.AlarmRetryDelay = DefaultAlarmRetryDelay
	}
	if opts.AlarmLookahead <= 0 {
		opts.AlarmLookahead = DefaultAlarmLookahead
	}
	if opts.AlarmMaxLoaded <= 0 {
		opts.AlarmMaxLoaded = DefaultAlarmMaxLoaded
	}
	if opts.AlarmPoll <= 0 {
		opts.AlarmPoll = DefaultAlarmPoll
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runtime{
		reg:       reg,
		loc:       loc,
		opts:      opts,
		log:       opts.Logger,
		ctx:       ctx,
		cancel:    cancel,
		stopSweep: make(chan struct{}),
		sweepDone: make(chan struct{}),
	}
	for i := range r.shards {
		r.shards[i].instances = make(map[objid.ID]*instance)
	}
	go r.sweepLoop()
	if src, ok := loc.(AlarmGroups); ok {
		r.sched = newScheduler(r, src)
		go r.sched.run()
	}
	return r
}

// lookupInstance returns the object's instance if it is in memory.
func (r *Runtime) lookupInstance(id objid.ID) *instance {
	sh := &r.shards[id[1]%numShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.instances[id]
}

// Call runs req and returns the method's encoded result (msgpack, or JSON if req.JSON).
// If the object is idle, the calling goroutine runs its executor until the call is
// answered, which saves a goroutine and two hand-offs per call; it may meanwhile run the
// handlers of calls that queued behind this one.
//
// It returns only after the call's writes have committed (output gate), or, for a call
// that wrote nothing, after this node confirmed its leadership and every earlier write of
// the object committed. Errors: the sentinels and *HandlerError documented in errors.go,
// ctx's error if ctx ends first (the call may still complete), and the Locator's or the
// Group's errors unchanged (not-leader errors with their hints; for a write, an error from
// the Group means its outcome is unknown).
func (r *Runtime) Call(ctx context.Context, req Request) ([]byte, error) {
	r.calls.Add(1)
	cls := r.reg.lookup(req.Class)
	if cls == nil {
		return nil, fmt.Errorf("%w: %q%s", ErrNoSuchClass, req.Class, r.reg.classHint(req.Class))
	}
	m := cls.methods[req.Method]
	if m == nil {
		return nil, fmt.Errorf("%w: %s.%s%s", ErrNoSuchMethod, req.Class, req.Method, methodHint(cls, req.Method))
	}
	if err := req.ID.Check(req.Class); err != nil {
		return nil, err
	}
	if req.Name != "" && objid.FromName(req.Class, req.Name) != req.ID {
		return nil, fmt.Errorf("%w: name %q does not give ID %s", ErrInvalidID, req.Name, req.ID)
	}
	if err := checkClient(&req); err != nil {
		return nil, err
	}
	in, err := m.decode(req.Args, req.JSON)
	if err != nil {
		return nil, fmt.Errorf("%s.%s: %w", req.Class, req.Method, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g, err := r.loc.Locate(req.ID)
	if err != nil {
		return nil, err
	}
	req.Args = nil // decoded; do not keep the caller's buffer
	ev := &event{ctx: ctx, req: req, m: m, in: in, group: g, reply: make(chan outcome, 1)}
	exec, err := r.admit(cls, ev)
	if err != nil {
		return nil, err
	}
	if exec != nil {
		exec.run(ev)
	}
	select {
	case o := <-ev.reply:
		return o.result, o.err
	case <-ctx.Done():
		// The executor answers into the buffered reply and moves on; the call may still
		// run and commit.
		return nil, ctx.Err()
	}
}

func checkClient(q *Request) error {
	if !q.hasClient() {
		if q.Seq != 0 || q.Ack != 0 {
			return fmt.Errorf("%w: Seq or Ack without a Client", ErrBadRequest)
		}
		return nil
	}
	if q.Seq == 0 {
		return fmt.Errorf("%w: Seq must be > 0 with a Client", ErrBadRequest)
	}
	if q.Ack > q.Seq {
		return fmt.Errorf("%w: Ack %d > Seq %d", ErrBadRequest, q.Ack, q.Seq)
	}
	return nil
}

// admit queues ev on its object's instance, creating the instance if needed.
func (r *Runtime) admit(cls *class, ev *event) (*instance, error) {
	id := ev.req.ID
	sh := &r.shards[id[1]%numShards] // byte 1 is hash or random output: uniform
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.closed {
		return nil, ErrClosed
	}
	in := sh.instances[id]
	if in == nil {
		in = newInstance(r, id, cls)
		sh.instances[id] = in
	} else if in.cls != cls {
		// Only a deliberately crafted ID passes the checksum of two classes; two
		// instances for one storage would break the single-instance invariant.
		return nil, fmt.Errorf("%w: %s is in use by class %q", ErrWrongClass, id, in.cls.name)
	}
	inline, err := in.admit(ev)
	if !inline {
		in = nil
	}
	return in, err
}

// Close stops the runtime. Commands already submitted keep going and their callers get
// their outcomes; every other call — new, queued, still in its handler, or waiting for
// ReadIndex — gets ErrClosed and commits nothing. Close returns when every call has been
// answered. It is idempotent.
func (r *Runtime) Close() {
	r.closeOnce.Do(func() {
		if r.sched != nil {
			r.sched.close() // no new alarm events
		}
		for i := range r.shards {
			sh := &r.shards[i]
			sh.mu.Lock()
			sh.closed = true
			sh.mu.Unlock()
		}
		r.cancel()
		close(r.stopSweep)
		<-r.sweepDone
		r.execs.Wait()
		if r.sched != nil {
			r.sched.wait()
		}
	})
}

// Stats are counters of a Runtime, for metrics.
type Stats struct {
	Instances  int    // objects in memory
	Executing  int    // objects with a running executor (calls queued or in flight)
	Calls      uint64 // calls received
	Resets     uint64 // instance resets after a failed command or a leadership change
	Panics     uint64 // handler panics
	Overloaded uint64 // calls refused with ErrOverloaded
	Evictions  uint64 // idle instances evicted
	// Inconsistent counts commands applied after an earlier command of the same object
	// was rejected by the state machine: their writes assumed the rejected ones. It must
	// stay 0; see the limits in the package documentation.
	Inconsistent uint64

	AlarmsFired   uint64 // Alarm handler invocations
	AlarmRetries  uint64 // alarms rescheduled after their handler failed
	AlarmsDropped uint64 // alarms dropped after MaxAlarmRetries failed retries
	AlarmsLoaded  int    // alarms held in memory by the schedulers of this node's groups
}

// Stats returns the current counters.
func (r *Runtime) Stats() Stats {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		n += len(sh.instances)
		sh.mu.Unlock()
	}
	loaded := 0
	if r.sched != nil {
		loaded = r.sched.loaded()
	}
	return Stats{
		Instances:     n,
		Executing:     int(r.executing.Load()),
		Calls:         r.calls.Load(),
		Resets:        r.resets.Load(),
		Panics:        r.panics.Load(),
		Overloaded:    r.overloads.Load(),
		Evictions:     r.evictions.Load(),
		Inconsistent:  r.inconsistent.Load(),
		AlarmsFired:   r.alarmsFired.Load(),
		AlarmRetries:  r.alarmRetries.Load(),
		AlarmsDropped: r.alarmsDropped.Load(),
		AlarmsLoaded:  loaded,
	}
}

// sweepLoop evicts idle instances. An idle instance has no goroutine (its executor exits
// when it has nothing queued or in flight), so eviction only drops it from the table.
func (r *Runtime) sweepLoop() {
	defer close(r.sweepDone)
	t := time.NewTicker(max(r.opts.IdleTimeout/2, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-r.stopSweep:
			return
		case <-t.C:
			r.sweep(r.opts.Now())
		}
	}
}

func (r *Runtime) sweep(now time.Time) {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for id, in := range sh.instances {
			if in.idleSince(now) >= r.opts.IdleTimeout {
				delete(sh.instances, id)
				r.evictions.Add(1)
			}
		}
		sh.mu.Unlock()
	}
}

// notLeader is the error for a call that found its group without a ready leader here: the
// Locator's error (with its leader hint) when it has one.
func (r *Runtime) notLeader(id objid.ID) error {
	if _, err := r.loc.Locate(id); err != nil {
		return err
	}
	return fmt.Errorf("%w: the group has no ready leader on this node", ErrInstanceReset)
}
