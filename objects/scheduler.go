package objects

import (
	"container/heap"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/objid"
)

// AlarmGroups is implemented by a Locator whose node fires alarms. A Runtime whose Locator
// implements it runs a scheduler for every group the node serves as leader; without it,
// alarms are stored but never fired on this node.
type AlarmGroups interface {
	// ServingGroups returns the groups this node leads and serves now (LeaderTerm ok).
	// They must be the same Group values Locate returns for their objects. The runtime
	// calls it every AlarmPoll from one goroutine.
	ServingGroups() []Group
}

// ServingNotifier may be implemented by an AlarmGroups whose serving set can be watched.
// The scheduler then asks ServingGroups again as soon as ServingChanged delivers, and polls
// only every AlarmPoll as a backstop, so a new leader's alarms resume at once and an idle
// node does not wake ten times a second to find nothing changed.
type ServingNotifier interface {
	// ServingChanged delivers a value (changes may coalesce into one) after the set of
	// groups ServingGroups returns may have changed. The scheduler is its only receiver.
	ServingChanged() <-chan struct{}
}

// The scheduler decides when to fire; alarm.go does the firing on the object's executor,
// which re-checks everything against the object's view. So nothing here is needed for
// safety (an alarm never fires early, a deleted one never fires): the scheduler only has
// to make sure every due alarm is fired eventually, and soon.
//
// Memory is bounded: per group, only alarms due before a horizon (at most AlarmLookahead
// ahead) are in memory, at most AlarmMaxLoaded of them, found by scanning the replicated
// time index (fsm.Tx.DueAlarms). A million pending alarms cost index pages on disk, not a
// million timers. Every group has one goroutine and one timer, for its earliest alarm.
//
// Liveness rests on the scan: every alarm of the group due before the horizon is loaded
// (or being fired, or parked) when the scan ends, the notifications of the executor keep it
// so for alarms set later, and the horizon is re-scanned every AlarmLookahead/2 and
// whenever an alarm's firing ends, so an alarm that was missed (its firing failed, a
// notification raced a scan) is found again at the latest one rescan later.

// Defaults for the alarm options.
const (
	DefaultAlarmRetryDelay = 2 * time.Second
	DefaultAlarmLookahead  = 5 * time.Second
	DefaultAlarmMaxLoaded  = 10_000
	DefaultAlarmPoll       = 100 * time.Millisecond // without a ServingNotifier
)

const (
	// maxFiring bounds the alarm events of one group in the executors at once.
	maxFiring = 1024
	// refirePause delays a new attempt at an alarm whose event failed (not leader,
	// overloaded, instance reset): that is not the handler failing, so it is no retry,
	// but it must not spin.
	refirePause = 100 * time.Millisecond
)

// scheduler runs one groupAlarms per group this node serves.
type scheduler struct {
	rt  *Runtime
	src AlarmGroups

	mu     sync.Mutex
	groups map[Group]*groupAlarms

	stop  chan struct{}
	done  chan struct{}
	fires sync.WaitGroup // goroutines waiting for the answer of an alarm event
}

func newScheduler(rt *Runtime, src AlarmGroups) *scheduler {
	return &scheduler{rt: rt, src: src, groups: map[Group]*groupAlarms{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

func (s *scheduler) run() {
	defer close(s.done)
	t := time.NewTicker(s.rt.opts.AlarmPoll)
	defer t.Stop()
	var changed <-chan struct{} // nil, never ready, without a notifier
	if n, ok := s.src.(ServingNotifier); ok {
		changed = n.ServingChanged()
	}
	for {
		s.refresh()
		select {
		case <-changed:
		case <-s.stop:
			s.mu.Lock()
			for g, ga := range s.groups {
				ga.close()
				delete(s.groups, g)
			}
			s.mu.Unlock()
			return
		case <-t.C:
		}
	}
}

// close stops every group's scheduler and waits for the alarm events in flight. The
// Runtime's Close calls it first, before the executors answer everything ErrClosed.
func (s *scheduler) close() {
	close(s.stop)
	<-s.done
}

// wait waits for the goroutines of alarm events; called after the executors stopped.
func (s *scheduler) wait() { s.fires.Wait() }

// refresh starts a groupAlarms for every group this node now serves, and stops those of
// groups it no longer serves or serves in another term (a new term starts afresh: what a
// former term loaded may be stale).
func (s *scheduler) refresh() {
	want := map[Group]uint64{}
	for _, g := range s.src.ServingGroups() {
		if term, ok := g.LeaderTerm(); ok {
			want[g] = term
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for g, ga := range s.groups {
		if term, ok := want[g]; !ok || term != ga.term {
			ga.close()
			delete(s.groups, g)
		}
	}
	for g, term := range want {
		if s.groups[g] == nil {
			ga := newGroupAlarms(s, g, term)
			s.groups[g] = ga
			go ga.run()
		}
	}
}

// notify tells the group's scheduler that a command of the object, just proposed, sets
// (a.kind == alarmSet) or removes its alarm. Called on the executor goroutine; it never
// blocks on anything but a short lock.
func (s *scheduler) notify(g Group, id objid.ID, a alarmWrite) {
	s.mu.Lock()
	ga := s.groups[g]
	s.mu.Unlock()
	if ga != nil {
		ga.notify(id, a)
	}
}

// loaded returns how many alarms are held in memory, for Stats.
func (s *scheduler) loaded() int {
	s.mu.Lock()
	gs := make([]*groupAlarms, 0, len(s.groups))
	for _, ga := range s.groups {
		gs = append(gs, ga)
	}
	s.mu.Unlock()
	n := 0
	for _, ga := range gs {
		ga.mu.Lock()
		n += len(ga.loaded)
		ga.mu.Unlock()
	}
	return n
}

// groupAlarms schedules the alarms of one group for one term of this node's leadership.
type groupAlarms struct {
	s    *scheduler
	rt   *Runtime
	g    Group
	term uint64

	wake chan struct{} // (1)
	stop chan struct{}
	done chan struct{}

	mu sync.Mutex
	// loaded maps an object to the alarm time the scheduler will fire it for; queue
	// orders them (entries whose time no longer matches loaded are stale and skipped).
	loaded map[objid.ID]int64
	queue  alarmQueue
	firing map[objid.ID]int // alarm events in the executor, per object
	nfire  int
	// parked objects have an alarm no registered class can take; skipped this term.
	parked map[objid.ID]bool
	// horizon: every alarm due before it was loaded by the last scan or notified since.
	horizon   int64
	truncated bool  // the last scan stopped at AlarmMaxLoaded
	nextScan  int64 // periodic rescan time
	rescan    bool  // a firing ended: look at the index again soon
}

func newGroupAlarms(s *scheduler, g Group, term uint64) *groupAlarms {
	return &groupAlarms{
		s: s, rt: s.rt, g: g, term: term,
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		loaded: map[objid.ID]int64{},
		firing: map[objid.ID]int{},
		parked: map[objid.ID]bool{},
	}
}

func (ga *groupAlarms) close() {
	close(ga.stop)
	<-ga.done
}

func (ga *groupAlarms) nudge() {
	select {
	case ga.wake <- struct{}{}:
	default:
	}
}

func (ga *groupAlarms) run() {
	defer close(ga.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := ga.rt.opts.Now().UnixNano()
		if ga.needScan(now) {
			if err := ga.scan(now); err != nil {
				ga.rt.log.Warn("objects: cannot scan the alarm index", "group", ga.g, "err", err)
			}
		}
		ga.fireDue(now)
		timer.Reset(ga.sleep(ga.rt.opts.Now().UnixNano()))
		select {
		case <-ga.stop:
			return
		case <-ga.wake:
		case <-timer.C:
		}
	}
}

func (ga *groupAlarms) needScan(now int64) bool {
	ga.mu.Lock()
	defer ga.mu.Unlock()
	return ga.nextScan == 0 || now >= ga.nextScan || ga.rescan ||
		ga.truncated && len(ga.loaded) <= ga.rt.opts.AlarmMaxLoaded/2
}

// sleep returns how long to wait before the next thing to do: the earliest alarm, or
// the next scan.
func (ga *groupAlarms) sleep(now int64) time.Duration {
	ga.mu.Lock()
	defer ga.mu.Unlock()
	next := ga.nextScan
	if len(ga.queue) > 0 && ga.nfire < maxFiring && ga.queue[0].fireAt < next {
		next = ga.queue[0].fireAt
	}
	return max(time.Duration(next-now), 0)
}

// nextScanAt is when a group that scanned at now scans again: at the next multiple of
// lookahead/2 on the clock, not lookahead/2 from now, so that every group this node leads
// rescans in the same wakeup (wakeups are what an idle node's CPU is spent on). It is at
// most lookahead/2 away, so the scan's horizon (now+lookahead) covers the time until it.
func nextScanAt(now int64, lookahead time.Duration) int64 {
	step := max(int64(lookahead/2), 1)
	return (now/step + 1) * step
}

// scan loads the alarms due before now+AlarmLookahead from the group's committed index,
// up to AlarmMaxLoaded in memory.
func (ga *groupAlarms) scan(now int64) error {
	lookahead := ga.rt.opts.AlarmLookahead
	ga.mu.Lock()
	ga.rescan = false
	ga.nextScan = nextScanAt(now, lookahead)
	ga.mu.Unlock()

	type found struct {
		id objid.ID
		at int64
	}
	limit := ga.rt.opts.AlarmMaxLoaded
	var batch []found
	truncated := false
	before := now + int64(lookahead)
	// Skip decisions read the maps without the lock held across the View: a stale read
	// only loads an alarm twice (harmless) or skips one until the next scan.
	ga.mu.Lock()
	skip := make(map[objid.ID]bool, len(ga.firing)+len(ga.parked))
	for id := range ga.firing {
		skip[id] = true
	}
	for id := range ga.parked {
		skip[id] = true
	}
	room := limit - len(ga.loaded)
	ga.mu.Unlock()
	err := ga.g.View(func(tx *fsm.Tx) error {
		return tx.DueAlarms(before, func(obj []byte, at int64) bool {
			if len(obj) != objid.Len {
				return true // the index checks its key length; not an object of ours
			}
			id := objid.ID(obj)
			if skip[id] {
				return true
			}
			if len(batch) >= room {
				truncated = true
				return false
			}
			batch = append(batch, found{id, at})
			return true
		})
	})
	if err != nil {
		return err
	}

	ga.mu.Lock()
	defer ga.mu.Unlock()
	ga.horizon = before
	ga.truncated = truncated
	for _, f := range batch {
		ga.loadLocked(f.id, f.at, f.at)
	}
	if truncated && len(batch) > 0 {
		ga.horizon = batch[len(batch)-1].at
	}
	return nil
}

// loadLocked schedules the object's alarm at to fire at fireAt (>= at).
func (ga *groupAlarms) loadLocked(id objid.ID, at, fireAt int64) {
	if old, ok := ga.loaded[id]; ok && old == at {
		return
	}
	ga.loaded[id] = at
	heap.Push(&ga.queue, queued{fireAt: fireAt, at: at, id: id})
	if len(ga.queue) > 2*len(ga.loaded)+maxFiring {
		ga.compactLocked()
	}
}

// compactLocked drops stale queue entries.
func (ga *groupAlarms) compactLocked() {
	q := ga.queue[:0]
	for _, e := range ga.queue {
		if at, ok := ga.loaded[e.id]; ok && at == e.at {
			q = append(q, e)
		}
	}
	clear(ga.queue[len(q):])
	ga.queue = q
	heap.Init(&ga.queue)
}

func (ga *groupAlarms) notify(id objid.ID, a alarmWrite) {
	ga.mu.Lock()
	defer ga.mu.Unlock()
	delete(ga.parked, id)
	if a.kind != alarmSet {
		delete(ga.loaded, id)
		return
	}
	if a.at >= ga.horizon {
		delete(ga.loaded, id) // the scan that reaches its time loads it
		return
	}
	if _, ok := ga.loaded[id]; !ok && len(ga.loaded) >= ga.rt.opts.AlarmMaxLoaded {
		// No room: shrink the horizon so a later scan loads it.
		ga.horizon, ga.truncated = a.at, true
		return
	}
	ga.loadLocked(id, a.at, a.at)
	if ga.queue[0].id == id {
		ga.nudge()
	}
}

// fireDue sends an event for every loaded alarm due by now, as far as maxFiring allows.
func (ga *groupAlarms) fireDue(now int64) {
	type due struct {
		id objid.ID
		at int64
	}
	var fire []due
	ga.mu.Lock()
	for len(ga.queue) > 0 && ga.queue[0].fireAt <= now && ga.nfire < maxFiring {
		e := heap.Pop(&ga.queue).(queued)
		if at, ok := ga.loaded[e.id]; !ok || at != e.at {
			continue // stale
		}
		delete(ga.loaded, e.id)
		ga.firing[e.id]++
		ga.nfire++
		fire = append(fire, due{e.id, e.at})
	}
	ga.mu.Unlock()
	for _, d := range fire {
		ga.dispatch(d.id, d.at)
	}
}

// dispatch queues the alarm event of id on its executor.
func (ga *groupAlarms) dispatch(id objid.ID, at int64) {
	cls, err := ga.classOf(id)
	if err != nil {
		ga.rt.log.Error("objects: an alarm belongs to no registered class; not fired by this node",
			"group", ga.g, "id", id.String(), "at", time.Unix(0, at), "err", err)
		ga.mu.Lock()
		ga.parked[id] = true
		ga.mu.Unlock()
		ga.finish(id, nil, true)
		return
	}
	ev := &event{
		ctx:   ga.rt.ctx,
		req:   Request{Class: cls.name, ID: id},
		alarm: true,
		group: ga.g,
		reply: make(chan outcome, 1),
	}
	exec, err := ga.rt.admit(cls, ev)
	if err != nil {
		ga.finish(id, err, false)
		return
	}
	ga.s.fires.Add(1)
	go func() {
		defer ga.s.fires.Done()
		if exec != nil {
			exec.run(ev)
		}
		o := <-ev.reply
		ga.finish(id, o.err, false)
	}()
}

// finish ends one alarm event of id. If the object still has an alarm due before the
// horizon (the handler re-armed it, its retry was set, or the event failed), it is loaded
// again from the committed state, which by now contains whatever the event committed.
func (ga *groupAlarms) finish(id objid.ID, err error, parked bool) {
	var at int64
	var has bool
	if !parked {
		if verr := ga.g.View(func(tx *fsm.Tx) error {
			at, has = tx.Alarm(id[:])
			return nil
		}); verr != nil {
			has = false
			err = verr
		}
	}
	ga.mu.Lock()
	defer ga.mu.Unlock()
	if ga.firing[id]--; ga.firing[id] <= 0 {
		delete(ga.firing, id)
	}
	ga.nfire--
	ga.nudge()
	if err != nil && !errors.Is(err, errNoAlarmDue) {
		ga.rescan = true // a failed event may leave anything behind
	}
	if !has || at >= ga.horizon || ga.parked[id] {
		return
	}
	fireAt := at
	if err != nil {
		fireAt = max(at, ga.rt.opts.Now().Add(refirePause).UnixNano())
	}
	if _, ok := ga.loaded[id]; ok || len(ga.loaded) < ga.rt.opts.AlarmMaxLoaded {
		ga.loadLocked(id, at, fireAt)
	} else {
		ga.rescan = true
	}
}

// classOf finds the class of an object from its ID: the class of its instance if it is
// in memory, else the one registered class whose checksum the ID passes, else (for an
// ambiguous ID) the class stored with its alarm.
func (ga *groupAlarms) classOf(id objid.ID) (*class, error) {
	if in := ga.rt.lookupInstance(id); in != nil {
		return in.cls, nil
	}
	cs := ga.rt.reg.classesOf(id)
	switch len(cs) {
	case 1:
		return cs[0], nil
	case 0:
		return nil, fmt.Errorf("%w: no registered class has ID %s", ErrNoSuchClass, id)
	}
	var raw []byte
	if err := ga.g.View(func(tx *fsm.Tx) error {
		if v, ok := tx.Get(id[:], []byte(alarmClassKey)); ok {
			raw = append([]byte(nil), v...)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: ID %s passes the checksum of %d classes and names none", ErrNoSuchClass, id, len(cs))
	}
	name, err := decodeClass(raw)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if c.name == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: %q stored with the alarm of %s", ErrNoSuchClass, name, id)
}

// queued is one alarm in a group's queue.
type queued struct {
	fireAt int64 // when to fire; at, or later after a failed event
	at     int64 // the alarm time, as in loaded
	id     objid.ID
}

// alarmQueue is a min-heap of queued by fireAt (container/heap).
type alarmQueue []queued

func (q alarmQueue) Len() int           { return len(q) }
func (q alarmQueue) Less(i, j int) bool { return q[i].fireAt < q[j].fireAt }
func (q alarmQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *alarmQueue) Push(x any)        { *q = append(*q, x.(queued)) }
func (q *alarmQueue) Pop() any {
	old := *q
	n := len(old)
	x := old[n-1]
	*q = old[:n-1]
	return x
}
