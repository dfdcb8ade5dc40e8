package raftgroup

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/fsm"
)

// Proposal batching.
//
// Every raft log entry costs the same fixed work however small its command: a log store
// record, an inflight record and a future in raft's main loop, a reflective msgpack encode
// per follower and a decode on each, a log cache slot, an apply call. Under load most of
// a node's commands are small writes of different objects arriving together, so Submit
// queues them and the group proposes what has queued as ONE entry (fsm.EncodeBatch), each
// command still applied, rejected and answered on its own.
//
// No timer decides a batch. A group keeps at most maxInflightEntries of its batch entries
// between raft.Apply and their answer, and a node at most entrySlotsFor of all its groups'
// entries; while that many are out, commands queue, and the next entry takes everything
// queued. A lone caller's command finds room and goes straight to raft as its own entry,
// so latency never waits for a batch to fill, and batches grow only as far as load
// outruns raft. (raft.Apply alone would not do: raft's
// apply channel takes hundreds of entries without blocking, so nothing would ever queue.)
// One proposer at a time keeps the log order the submission order, which Submit promises.
//
// An entry stops counting against the window once it has been out for entryHold, answered
// or not. Raft retries a failed replication only when a new entry arrives or every
// CommitTimeout (seconds), so a window that waited for a stuck entry would wait for that
// timer, and under connection resets it stalled a group for seconds (the Jepsen reset
// nemesis: TestSubmitKeepsProposingWhileAnEntryIsStuck). With the hold, a stuck group
// still appends an entry every entryHold, as it did before batching, and each one
// triggers replication.
type proposer struct {
	mu       sync.Mutex
	queue    []*Pending
	busy     bool // a goroutine is proposing; it will take what is queued
	inflight int  // entries handed to raft, neither answered nor out for entryHold yet
	// out holds the commands of every entry handed to raft and not yet answered, keyed by
	// the entry's first command: raft never answers a future still queued when it shuts
	// down, so shutdown settles these itself (failAll).
	out     map[*Pending][]*Pending
	stopped bool // failAll ran: nothing more is proposed
	// waitSlot: commands are queued and the group waits in the node's entrySlots; slot:
	// a slot was granted to the group and its next entry takes it.
	waitSlot, slot bool
}

// entrySlots bounds the batch entries a node has in flight across all the groups it leads.
// Every entry costs the same raft work however many commands it carries (see above), on
// the leader and on each follower, and with many groups a node's load splits into many
// small entries: under 128 callers writing over 10,000 objects, 16 groups averaged 3.3
// commands per entry and the cluster spent about 180 µs of CPU per command, 4 groups 115.
// With a node-wide bound, a group whose turn has not come queues its commands, and its
// next entry carries all of them (7 per entry in the same load with 2 slots). A lone
// caller finds a free slot and is not delayed. Slots go to waiting groups first come,
// first served, and an entry frees its slot when it is answered or out for entryHold.
type entrySlots struct {
	mu      sync.Mutex
	free    int
	waiting []*Group
}

// acquire takes a slot for g's next entry, or puts g in line and returns false; g is then
// granted one later. Called with g.prop.mu held.
func (s *entrySlots) acquire(g *Group) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free > 0 {
		s.free--
		return true
	}
	g.prop.waitSlot = true
	s.waiting = append(s.waiting, g)
	return false
}

// release returns a slot, handing it to the first waiting group if there is one.
func (s *entrySlots) release() {
	s.mu.Lock()
	if len(s.waiting) == 0 {
		s.free++
		s.mu.Unlock()
		return
	}
	g := s.waiting[0]
	s.waiting[0] = nil
	s.waiting = s.waiting[1:]
	s.mu.Unlock()
	g.grant()
}

// grant gives g the slot it waited for, and proposes what it has queued.
func (g *Group) grant() {
	p := &g.prop
	p.mu.Lock()
	p.waitSlot, p.slot = false, true
	if p.busy {
		p.mu.Unlock()
		return
	}
	p.busy = true
	p.mu.Unlock()
	g.proposeAll()
}

// Bounds of one batch entry, and of the entries in flight. A command larger than
// maxBatchBytes goes alone. Variables only so benchmarks can compare settings.
var (
	maxBatchCommands   = 256
	maxBatchBytes      = 1 << 20
	maxInflightEntries = 1
	entryHold          = 10 * time.Millisecond
	// nodeEntrySlots is entrySlots' bound; 0 means max(2, GOMAXPROCS) when the node starts.
	nodeEntrySlots = 0
)

// entrySlotsFor returns the node's bound on batch entries in flight. Entries beyond the
// cores that can work on them add no parallelism: every group's appends meet in the node's
// one log store and its one fsync stream anyway. Two keep that stream busy (one entry
// being written while the next fills).
func entrySlotsFor(gomaxprocs int) int {
	if nodeEntrySlots > 0 {
		return nodeEntrySlots
	}
	return max(2, gomaxprocs)
}

// Pending is one command handed to Submit, until its outcome is known.
type Pending struct {
	term    uint64
	data    []byte // fsm.EncodeCommand encoding
	settled atomic.Bool
	done    chan struct{}
	res     *fsm.Result // set before done is closed
	err     error
}

// settled returns a Pending whose outcome is err from the start.
func settled(err error) *Pending {
	x := &Pending{done: make(chan struct{})}
	x.settle(nil, err)
	return x
}

// Done is closed once the outcome is known, at the latest when the group shuts down;
// Wait then returns it at once. A caller can wait for many commands with one select.
func (x *Pending) Done() <-chan struct{} { return x.done }

// Wait blocks until Done is closed and returns the outcome, as Submit describes.
func (x *Pending) Wait() (*fsm.Result, error) {
	<-x.done
	return x.res, x.err
}

// settle sets the outcome and closes done. Only the first call counts: an entry answered
// by raft while shutdown fails it keeps whichever outcome came first (both are true: the
// one from shutdown says the outcome is unknown).
func (x *Pending) settle(res *fsm.Result, err error) {
	if !x.settled.CompareAndSwap(false, true) {
		return
	}
	x.res, x.err = res, err
	close(x.done)
}

// submit queues x; if no proposal is under way and there is room in flight, it proposes
// itself, and hands what queued meanwhile to a goroutine so that its caller (an object's
// executor) is not kept proposing other objects' commands.
func (g *Group) submit(x *Pending) {
	p := &g.prop
	p.mu.Lock()
	p.queue = append(p.queue, x)
	if p.busy || p.inflight >= maxInflightEntries || p.waitSlot {
		p.mu.Unlock()
		return
	}
	p.busy = true
	p.mu.Unlock()
	if g.proposeNext() {
		go g.proposeAll()
	}
}

func (g *Group) proposeAll() {
	for g.proposeNext() {
	}
}

// proposeNext proposes one batch from the head of the queue (the caller is the busy
// proposer) and reports whether it should go on: more is queued and there is room in
// flight. If not, the proposer is idle again.
func (g *Group) proposeNext() (more bool) {
	p := &g.prop
	p.mu.Lock()
	if len(p.queue) == 0 { // failAll emptied it while the group waited for a slot
		p.busy = false
		had := p.slot
		p.slot = false
		p.mu.Unlock()
		if had {
			g.node.slots.release()
		}
		return false
	}
	if !p.slot && !g.node.slots.acquire(g) {
		p.busy = false
		p.mu.Unlock()
		return false
	}
	p.slot = false
	n, size := 0, 0
	for n < len(p.queue) && n < maxBatchCommands {
		size += len(p.queue[n].data)
		if n > 0 && size > maxBatchBytes {
			break
		}
		n++
	}
	batch := p.queue[:n:n]
	if p.queue = p.queue[n:]; len(p.queue) == 0 {
		p.queue = nil
	}
	p.inflight++
	p.mu.Unlock()

	if !g.propose(batch) {
		g.entryDone()
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 || p.inflight >= maxInflightEntries {
		p.busy = false
		return false
	}
	return true
}

// entryDone frees the room of an answered entry, and starts proposing what queued
// meanwhile if nobody is.
func (g *Group) entryDone() {
	p := &g.prop
	p.mu.Lock()
	p.inflight--
	start := !p.busy && !p.waitSlot && len(p.queue) > 0
	if start {
		p.busy = true
	}
	p.mu.Unlock()
	g.node.slots.release() // first to a group that waited: this one goes behind it
	if start {
		g.proposeAll()
	}
}

// propose hands batch to raft as one entry, after dropping the commands whose term this
// replica no longer serves (they were never appended: NotLeaderError). It reports whether
// it did; deliver then calls entryDone once the entry is answered.
func (g *Group) propose(batch []*Pending) bool {
	term, ok := g.LeaderTerm()
	live := make([]*Pending, 0, len(batch))
	for _, x := range batch {
		if !ok || x.term != term {
			g.node.cfg.Metrics.Proposed(g.id, false)
			x.settle(nil, g.notLeader())
			continue
		}
		live = append(live, x)
	}
	if len(live) == 0 {
		return false
	}
	p := &g.prop
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		for _, x := range live {
			x.settle(nil, ErrClosed) // never handed to raft
		}
		return false
	}
	if p.out == nil {
		p.out = make(map[*Pending][]*Pending)
	}
	p.out[live[0]] = live
	p.mu.Unlock()
	data := live[0].data
	if len(live) > 1 {
		cmds := make([][]byte, len(live))
		for i, x := range live {
			cmds[i] = x.data
		}
		var err error
		if data, err = fsm.EncodeBatch(cmds); err != nil {
			panic(fmt.Sprintf("raftgroup: group %d: a batch within the bounds does not encode: %v", g.id, err))
		}
	}
	f := g.raft.Apply(data, 0)
	g.node.cfg.Metrics.ProposedEntry(len(live))
	go g.deliver(live, f)
	return true
}

// deliver waits for the entry of batch and answers each of its commands. Raft never answers
// a future still queued when it shuts down: the goroutine then stays, and the waiters
// return on the group's stop channel instead (see Submit).
func (g *Group) deliver(batch []*Pending, f raft.ApplyFuture) {
	var once sync.Once
	free := func() { once.Do(g.entryDone) }
	hold := time.AfterFunc(entryHold, free)
	defer func() {
		hold.Stop()
		free()
	}()
	err := f.Error()
	p := &g.prop
	p.mu.Lock()
	delete(p.out, batch[0])
	p.mu.Unlock()
	if err != nil {
		err = g.applyError(err)
		for _, x := range batch {
			g.node.cfg.Metrics.Proposed(g.id, false)
			x.settle(nil, err)
		}
		return
	}
	switch r := f.Response().(type) {
	case *fsm.BatchResult:
		if len(r.Results) != len(batch) {
			panic(fmt.Sprintf("raftgroup: group %d: a batch of %d commands got %d results", g.id, len(batch), len(r.Results)))
		}
		for i, x := range batch {
			g.node.cfg.Metrics.Proposed(g.id, true)
			x.settle(&r.Results[i], nil)
		}
	case *fsm.Result:
		// One command, or a batch refused whole (malformed, or replayed): the same
		// answer for each of its commands.
		for _, x := range batch {
			g.node.cfg.Metrics.Proposed(g.id, true)
			x.settle(r, nil)
		}
	default:
		panic(fmt.Sprintf("raftgroup: group %d: state machine returned %T (invariant: fsm.Store returns *fsm.Result or *fsm.BatchResult)", g.id, f.Response()))
	}
}

// failAll settles every command not answered yet, when the group shuts down: queued ones
// were never handed to raft (ErrClosed); those in an entry raft has may still commit
// (ErrUnknownOutcome). Nothing is proposed afterwards.
func (g *Group) failAll() {
	p := &g.prop
	p.mu.Lock()
	p.stopped = true
	queue, out := p.queue, p.out
	p.queue, p.out = nil, nil
	p.mu.Unlock()
	for _, x := range queue {
		x.settle(nil, ErrClosed)
	}
	unknown := fmt.Errorf("%w: %w", ErrUnknownOutcome, ErrClosed)
	for _, batch := range out {
		for _, x := range batch {
			x.settle(nil, unknown)
		}
	}
}
