package link

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/internal/framing"
)

// Coalesced heartbeats.
//
// Stock hashicorp/raft sends every follower of every group a heartbeat RPC every
// HeartbeatTimeout/10..HeartbeatTimeout/5, each a round trip on the group's own connection
// with a msgpack encode and decode and four syscalls. With tens of groups per node that is
// most of an idle node's CPU (measured: 12-14% of a core for an idle 3-node cluster with 16
// groups, nearly all in heartbeats). Here a node sends each peer node ONE round per
// interval, listing every group it leads that has that peer as a follower; the peer hands
// each entry to the group's raft heartbeat handler (the same fast path NetworkTransport
// uses) and answers with one frame of acks.
//
// Raft's own heartbeat goroutines still run: the group's Transport answers their heartbeat
// calls from the peer's latest round, when it is at most `fresh` old, and otherwise makes
// them wait for the next round. So raft sees the same facts (the follower accepted this
// term, at most `fresh` ago) and keeps its failure detection and leader lease.
//
// An idle node's CPU is its wakeups: each costs thread switches in the kernel and the Go
// scheduler, however little it then does. So every periodic thing falls on one tick per
// interval, a multiple of it on the wall clock (ticker): the rounds to every peer, and,
// since peers' clocks agree to well within an interval, the rounds from them. At the same
// tick each group this node leads asks its raft for heartbeats (through the pump it set
// with SetPump; raftgroup calls VerifyLeader, whose only effect it wants is to wake raft's
// heartbeat goroutines), which the latest round answers. The contact times those calls
// refresh then fall on ticks too, and so do raft's leader-lease checks, which it schedules
// a lease after the oldest contact. Raft's own heartbeat timer, LeaderHeartbeatTimeout/10
// or more, is longer than the interval, so it fires only if the ticks stop.
//
// Linearizable reads must not use an answer that may predate them. Confirm therefore waits
// for rounds that START after it was called (never a cached answer), the same guarantee
// raft's VerifyLeader gives, and concurrent reads of every group share those rounds.
type beats struct {
	l          *Link
	interval   time.Duration // between rounds to one peer
	fresh      time.Duration // how long a round's ack answers raft's heartbeat calls
	expire     time.Duration // a group raft stopped heartbeating for this long leaves the rounds
	timeout    time.Duration // bounds a dial and a round trip
	idle       time.Duration // an accepted connection silent this long is closed
	leaderID   []byte
	leaderAddr []byte

	rounds atomic.Uint64 // rounds answered, all peers

	mu       sync.Mutex
	peers    map[string]*beatPeer
	handlers map[uint64]func(raft.RPC)
	pumps    map[uint64]chan<- struct{} // groups this node leads: ask for heartbeats each tick
}

func newBeats(l *Link) *beats {
	hb := l.cfg.HeartbeatTimeout
	b := &beats{
		l:          l,
		interval:   hb / 3,
		fresh:      hb / 2,
		expire:     l.cfg.LeaderHeartbeatTimeout / 2, // raft's leader heartbeats come every fifth of it at most
		timeout:    hb,
		idle:       10 * hb,
		leaderID:   []byte(l.cfg.ID),
		leaderAddr: []byte(l.cfg.Advertise),
		peers:      map[string]*beatPeer{},
		handlers:   map[uint64]func(raft.RPC){},
		pumps:      map[uint64]chan<- struct{}{},
	}
	l.conns.serve(l.cfg.Beats, b.serve)
	l.conns.start(b.ticker)
	return b
}

// ticker starts the periodic round to every peer, and asks every group this node leads
// for heartbeats, at the same instants: multiples of interval on the wall clock.
func (b *beats) ticker() {
	t := time.NewTimer(untilTick(time.Now(), b.interval))
	defer t.Stop()
	for {
		select {
		case <-b.l.conns.stop:
			return
		case <-t.C:
		}
		b.mu.Lock()
		for _, p := range b.peers {
			select {
			case p.tick <- struct{}{}:
			default: // still in the last round
			}
		}
		for _, ch := range b.pumps {
			select {
			case ch <- struct{}{}:
			default: // still asking
			}
		}
		b.mu.Unlock()
		t.Reset(untilTick(time.Now(), b.interval))
	}
}

// untilTick is the time from now to the next multiple of interval on the wall clock.
func untilTick(now time.Time, interval time.Duration) time.Duration {
	return interval - time.Duration(now.UnixNano()%int64(interval))
}

// setHandler records (or with nil, removes) the heartbeat handler of a group's raft.
func (b *beats) setHandler(gid uint64, h func(raft.RPC)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h == nil {
		delete(b.handlers, gid)
	} else {
		b.handlers[gid] = h
	}
}

// setPump records (or with nil, removes) the channel that asks group gid, which this node
// leads, for heartbeats each tick.
func (b *beats) setPump(gid uint64, ch chan<- struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ch == nil {
		delete(b.pumps, gid)
	} else {
		b.pumps[gid] = ch
	}
}

// peer returns the round sender for node id, starting it on first use.
func (b *beats) peer(id string) (*beatPeer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[id]
	if p == nil {
		p = &beatPeer{b: b, id: id, tick: make(chan struct{}, 1), kick: make(chan struct{}, 1), entries: map[uint64]*beatEntry{}}
		if !b.l.conns.start(p.run) {
			return nil, ErrClosed
		}
		b.peers[id] = p
	}
	return p, nil
}

// heartbeat answers one of raft's heartbeat calls for group gid, term, to peer id.
func (b *beats) heartbeat(id string, gid, term uint64, stop <-chan struct{}) (beatAck, error) {
	p, err := b.peer(id)
	if err != nil {
		return beatAck{}, err
	}
	now := time.Now()
	p.mu.Lock()
	e := p.entry(gid, term, now)
	if !e.ackAt.IsZero() && now.Sub(e.ackAt) < b.fresh {
		a := e.ack
		p.mu.Unlock()
		return a, nil
	}
	w := p.wait(e)
	p.mu.Unlock()
	return p.await(w, e, gid, term, stop)
}

// confirm implements Link.Confirm.
func (b *beats) confirm(gid, term uint64, peers []string, need int, stop <-chan struct{}) int {
	if need <= 0 {
		return 0
	}
	res := make(chan bool, len(peers))
	now := time.Now()
	for _, id := range peers {
		p, err := b.peer(id)
		if err != nil {
			res <- false
			continue
		}
		p.mu.Lock()
		e := p.entry(gid, term, now)
		w := p.wait(e)
		p.mu.Unlock()
		go func() {
			a, err := p.await(w, e, gid, term, stop)
			res <- err == nil && a.ok
		}()
	}
	acks := 0
	for range peers {
		if <-res {
			acks++
			if acks >= need {
				return acks
			}
		}
	}
	return acks
}

// beatPeer sends the rounds of this node to one peer node.
type beatPeer struct {
	b    *beats
	id   string
	tick chan struct{} // capacity 1: the periodic round is due (beats.ticker)
	kick chan struct{} // capacity 1: a round is wanted now

	mu      sync.Mutex
	entries map[uint64]*beatEntry
	next    *beatWait // resolved by the next round to start; nil if nobody waits

	// Owned by run.
	conn    net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	roundID uint64
	out     []byte
	in      []byte
	list    []beat
}

// beatEntry is one group this node leads with the peer as a follower.
type beatEntry struct {
	term    uint64
	wanted  time.Time // last heartbeat call or confirmation
	waiting int       // calls waiting for a round; the entry does not expire meanwhile
	ack     beatAck   // the latest ack for term
	ackAt   time.Time // when the round that brought ack started; zero if none for term
}

// beatWait is the outcome of one round, for the calls that wait on it.
type beatWait struct {
	done chan struct{}
	sent map[uint64]sentAck // set before done is closed; nil if the round failed
	err  error
}

type sentAck struct {
	term uint64 // the term the round carried for the group
	ack  beatAck
}

// entry returns the group's entry, (re)set to term, marked wanted at now. p.mu is held.
func (p *beatPeer) entry(gid, term uint64, now time.Time) *beatEntry {
	e := p.entries[gid]
	if e == nil {
		e = &beatEntry{}
		p.entries[gid] = e
	}
	if e.term != term {
		*e = beatEntry{term: term, waiting: e.waiting}
	}
	e.wanted = now
	return e
}

// wait registers a call on the next round to start and asks for it now. p.mu is held.
func (p *beatPeer) wait(e *beatEntry) *beatWait {
	if p.next == nil {
		p.next = &beatWait{done: make(chan struct{})}
	}
	e.waiting++
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return p.next
}

func (p *beatPeer) await(w *beatWait, e *beatEntry, gid, term uint64, stop <-chan struct{}) (beatAck, error) {
	defer func() {
		p.mu.Lock()
		e.waiting--
		p.mu.Unlock()
	}()
	t := time.NewTimer(p.b.timeout)
	defer t.Stop()
	select {
	case <-w.done:
	case <-stop:
		return beatAck{}, ErrClosed
	case <-p.b.l.conns.stop:
		return beatAck{}, ErrClosed
	case <-t.C:
		return beatAck{}, fmt.Errorf("link: heartbeat to %s: no round within %v", p.id, p.b.timeout)
	}
	if w.err != nil {
		return beatAck{}, w.err
	}
	s, ok := w.sent[gid]
	if !ok || s.term != term {
		return beatAck{}, fmt.Errorf("link: heartbeat to %s: group %d term %d not in the round", p.id, gid, term)
	}
	return s.ack, nil
}

func (p *beatPeer) run() {
	for {
		select {
		case <-p.b.l.conns.stop:
			p.closeConn()
			return
		case <-p.tick:
		case <-p.kick:
		}
		p.round()
	}
}

// round sends one round with every live entry and publishes its acks.
func (p *beatPeer) round() {
	start := time.Now()
	p.mu.Lock()
	p.list = p.list[:0]
	for gid, e := range p.entries {
		if e.waiting == 0 && start.Sub(e.wanted) > p.b.expire {
			delete(p.entries, gid) // raft stopped heartbeating: no longer the leader
			continue
		}
		p.list = append(p.list, beat{group: gid, term: e.term})
	}
	w := p.next
	p.next = nil
	p.mu.Unlock()
	if len(p.list) == 0 {
		if w != nil {
			close(w.done) // nothing to send: every waiter finds its group missing
		}
		return
	}

	acks, err := p.exchange(p.list)
	if err == nil {
		p.b.rounds.Add(1)
	}
	if on := p.b.l.cfg.OnRound; on != nil {
		on(p.id, err == nil)
	}
	var sent map[uint64]sentAck
	if err == nil && w != nil {
		sent = make(map[uint64]sentAck, len(acks))
	}
	p.mu.Lock()
	for i, a := range acks {
		term := p.list[i].term
		if e := p.entries[a.group]; e != nil && e.term == term {
			e.ack, e.ackAt = a, start
		}
		if sent != nil {
			sent[a.group] = sentAck{term: term, ack: a}
		}
	}
	p.mu.Unlock()
	if w != nil {
		w.sent, w.err = sent, err
		close(w.done)
	}
}

// exchange sends one round and reads its acks, dialing first if needed. On any error the
// connection is dropped, to be redialed by the next round.
func (p *beatPeer) exchange(list []beat) ([]beatAck, error) {
	acks, err := p.tryExchange(list)
	if err != nil {
		p.closeConn()
		return nil, fmt.Errorf("link: heartbeat round to %s: %w", p.id, err)
	}
	return acks, nil
}

func (p *beatPeer) tryExchange(list []beat) ([]beatAck, error) {
	if p.conn == nil {
		c, err := p.b.l.conns.dial(p.id, framing.ProtoBeat, p.b.timeout)
		if err != nil {
			return nil, err
		}
		p.conn, p.br, p.bw = c, bufio.NewReader(c), bufio.NewWriter(c)
	}
	p.roundID++
	p.out = appendBeatRound(p.out[:0], &beatRound{id: p.roundID, leaderID: p.b.leaderID, leaderAddr: p.b.leaderAddr, beats: list})
	if err := p.conn.SetDeadline(time.Now().Add(p.b.timeout)); err != nil {
		return nil, err
	}
	if err := framing.WriteFrame(p.bw, p.out); err != nil {
		return nil, err
	}
	if err := p.bw.Flush(); err != nil {
		return nil, err
	}
	frame, err := framing.ReadFrame(p.br, p.in)
	if err != nil {
		return nil, err
	}
	p.in = frame
	id, acks, err := decodeBeatAcks(frame)
	if err != nil {
		return nil, err
	}
	if id != p.roundID || len(acks) != len(list) {
		return nil, fmt.Errorf("%w: acks for round %d with %d groups, sent round %d with %d", errBeatDecode, id, len(acks), p.roundID, len(list))
	}
	for i := range acks {
		if acks[i].group != list[i].group {
			return nil, fmt.Errorf("%w: ack %d is for group %d, sent %d", errBeatDecode, i, acks[i].group, list[i].group)
		}
	}
	return acks, nil
}

func (p *beatPeer) closeConn() {
	if p.conn == nil {
		return
	}
	p.b.l.conns.release(p.conn)
	p.conn, p.br, p.bw = nil, nil, nil
}

// serve answers the rounds of a peer that leads groups this node follows.
func (b *beats) serve(c net.Conn) {
	br, bw := bufio.NewReader(c), bufio.NewWriter(c)
	var in, out []byte
	for {
		if err := c.SetReadDeadline(time.Now().Add(b.idle)); err != nil {
			return
		}
		frame, err := framing.ReadFrame(br, in)
		if err != nil {
			return
		}
		in = frame
		round, err := decodeBeatRound(frame)
		if err != nil {
			b.l.log.Debug("dropping a heartbeat connection", "remote", c.RemoteAddr().String(), "err", err)
			return
		}
		out = appendBeatAcks(out[:0], round.id, b.handle(round))
		if err := c.SetWriteDeadline(time.Now().Add(b.timeout)); err != nil {
			return
		}
		if err := framing.WriteFrame(bw, out); err != nil {
			return
		}
		if err := bw.Flush(); err != nil {
			return
		}
	}
}

// handle delivers each beat of a round to its group's raft, as the heartbeat RPC raft's
// own transport would have delivered.
func (b *beats) handle(r *beatRound) []beatAck {
	id, addr := string(r.leaderID), []byte(string(r.leaderAddr)) // copies: the frame is reused
	acks := make([]beatAck, len(r.beats))
	resp := make(chan raft.RPCResponse, 1)
	for i, bt := range r.beats {
		acks[i].group = bt.group
		b.mu.Lock()
		h := b.handlers[bt.group]
		b.mu.Unlock()
		if h == nil || bt.term == 0 {
			continue // a group this node does not host (or not yet): no ack
		}
		h(raft.RPC{
			Command: &raft.AppendEntriesRequest{
				RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: addr},
				Term:      bt.term,
			},
			RespChan: resp,
		})
		// raft answers a heartbeat before its handler returns, except once it is shut down.
		select {
		case rr := <-resp:
			if ar, ok := rr.Response.(*raft.AppendEntriesResponse); ok && rr.Error == nil {
				acks[i].term, acks[i].ok = ar.Term, ar.Success
			}
		default:
		}
	}
	return acks
}
