package link

import (
	"errors"
	"log/slog"
	"net"
	"time"
)

// Config configures a node's link.
type Config struct {
	// ID is this node's ID and Advertise its address, which every round and request
	// names as the leader's.
	ID        string
	Advertise string
	// HeartbeatTimeout is the groups' raft HeartbeatTimeout: a round goes to each peer
	// every third of it, its acks answer raft's heartbeat calls for half of it, and it
	// bounds a dial and a round trip.
	HeartbeatTimeout time.Duration
	// LeaderHeartbeatTimeout is the HeartbeatTimeout a group's raft runs with while it
	// leads: a group whose raft has not asked for a heartbeat for half of it (raft's own
	// heartbeats come every fifth of it at most) has stopped leading and leaves the rounds.
	LeaderHeartbeatTimeout time.Duration
	// Resolve returns the address to dial for peer node id.
	Resolve func(id string) (string, error)
	// Beats and Appends accept the peers' ProtoBeat and ProtoAppend connections
	// (transport.Mux.BeatListener, AppendListener). The link closes them.
	Beats, Appends net.Listener
	// OnRound, if set, is told the outcome of every heartbeat round to a peer.
	OnRound func(peer string, ok bool)
	Logger  *slog.Logger
}

// Link is a node's link to its peer nodes. Its methods are safe for concurrent use.
type Link struct {
	cfg   Config
	log   *slog.Logger
	conns conns
	beats *beats
	apps  *appender
}

// ErrClosed is returned by calls on a link that is closed or closing.
var ErrClosed = errors.New("link: closed")

// New starts a node's link: it serves the peers' connections and ticks the heartbeat
// rounds until Close.
func New(cfg Config) *Link {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Link{cfg: cfg, log: cfg.Logger}
	l.conns.init(cfg.Resolve)
	l.beats = newBeats(l)
	l.apps = newAppender(l)
	return l
}

// Close stops every round, fails every waiting call, and closes every connection and both
// listeners. It returns once every goroutine of the link has ended.
func (l *Link) Close() {
	if !l.conns.close() {
		return
	}
	l.cfg.Beats.Close()
	l.cfg.Appends.Close()
	l.conns.wg.Wait()
}

// SetPump records (or with nil, removes) the channel that asks group gid, which this node
// leads, for heartbeats: it receives a value at each tick of the rounds, so that raft's
// heartbeat calls, and the contact times they refresh, fall on the ticks.
func (l *Link) SetPump(gid uint64, ch chan<- struct{}) { l.beats.setPump(gid, ch) }

// Confirm returns how many of peers accept this node as the leader of gid in term, as
// seen by rounds that started after Confirm was called (never a cached ack). It returns as
// soon as need peers have, or when every peer has answered, failed or timed out, or stop
// is closed.
func (l *Link) Confirm(gid, term uint64, peers []string, need int, stop <-chan struct{}) int {
	return l.beats.confirm(gid, term, peers, need, stop)
}

// Forget removes group gid from the link: its heartbeat handler, its pump and its
// consumer. Requests for it that arrive later are answered with an error.
func (l *Link) Forget(gid uint64) {
	l.beats.setHandler(gid, nil)
	l.beats.setPump(gid, nil)
	l.apps.setConsumer(gid, nil, nil)
}

// Stats counts what crossed the link since New.
type Stats struct {
	Rounds    uint64 // heartbeat rounds answered, to all peers
	Delivered uint64 // append requests handed to a group's raft on this node
}

// Stats returns the link's counters.
func (l *Link) Stats() Stats {
	return Stats{Rounds: l.beats.rounds.Load(), Delivered: l.apps.delivered.Load()}
}
