package link

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/internal/framing"
)

// Replication on one connection per peer node.
//
// hashicorp/raft's NetworkTransport sends each group's AppendEntries on that group's own
// connections, encoded with go-msgpack's reflection, one write and one flush per request
// and per response. A loaded profile put it at 16% of a node's CPU (8.6% sending on
// leaders, 7.9% receiving on followers, a third of that in decoding). Here the requests
// of every group a node leads to one peer node share one connection (ProtoAppend), are
// encoded by hand (appendwire.go), and go out together when several are queued; the
// follower hands each to its group's raft through the transport's consumer channel,
// exactly as NetworkTransport would, and answers when raft has.
//
// Only non-heartbeat AppendEntries go this way (heartbeats ride the coalesced rounds,
// beats.go); votes, snapshots and TimeoutNow stay on NetworkTransport, as does a request
// too large for one frame. Raft sends one AppendEntries at a time per follower and group
// (no pipelining), so the follower may handle requests of different groups concurrently
// without reordering any group's.
type appender struct {
	l       *Link
	timeout time.Duration // bounds a dial, a write, and the wait for a response
	idle    time.Duration // an accepted connection silent this long is closed

	mu        sync.Mutex
	peers     map[string]*appendPeer
	consumers map[uint64]appendConsumer

	delivered atomic.Uint64 // requests handed to a group's raft
}

// appendConsumer is where a group's raft takes its RPCs, and the group's shutdown.
type appendConsumer struct {
	ch   chan<- raft.RPC
	stop <-chan struct{}
}

var errAppendTimeout = errors.New("link: append entries: no response in time")

func newAppender(l *Link) *appender {
	a := &appender{
		l:         l,
		timeout:   10 * time.Second, // raft's own transport's I/O timeout
		idle:      10 * l.cfg.HeartbeatTimeout,
		peers:     map[string]*appendPeer{},
		consumers: map[uint64]appendConsumer{},
	}
	l.conns.serve(l.cfg.Appends, a.serve)
	return a
}

// setConsumer registers (or with a nil ch, removes) group gid's raft consumer channel.
func (a *appender) setConsumer(gid uint64, ch chan<- raft.RPC, stop <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ch == nil {
		delete(a.consumers, gid)
	} else {
		a.consumers[gid] = appendConsumer{ch: ch, stop: stop}
	}
}

func (a *appender) consumer(gid uint64) (appendConsumer, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.consumers[gid]
	return c, ok
}

// appendConn is one ProtoAppend connection: a writer goroutine that sends queued frames,
// flushing once the queue is empty, and, for the dialing side, the requests awaiting
// their responses.
type appendConn struct {
	c    net.Conn
	out  chan []byte
	dead chan struct{} // closed when the connection is done for
	once sync.Once
	err  error // why; set before dead is closed

	mu      sync.Mutex
	pending map[uint64]chan appendResult
}

type appendResult struct {
	resp *raft.AppendEntriesResponse
	err  error
}

func newAppendConn(c net.Conn) *appendConn {
	return &appendConn{c: c, out: make(chan []byte, 256), dead: make(chan struct{}), pending: map[uint64]chan appendResult{}}
}

// fail marks the connection dead with err, closes it and fails every pending request.
func (ac *appendConn) fail(err error) {
	ac.once.Do(func() {
		ac.err = err
		close(ac.dead)
		ac.c.Close()
		ac.mu.Lock()
		for id, ch := range ac.pending {
			ch <- appendResult{err: err}
			delete(ac.pending, id)
		}
		ac.mu.Unlock()
	})
}

// send queues frame for the writer, which owns it from then on.
func (ac *appendConn) send(frame []byte) error {
	select {
	case ac.out <- frame:
		return nil
	case <-ac.dead:
		return ac.err
	}
}

// writeLoop writes queued frames, flushing when none is left.
func (ac *appendConn) writeLoop(timeout time.Duration) {
	bw := bufio.NewWriterSize(ac.c, 64<<10)
	for {
		var frame []byte
		select {
		case frame = <-ac.out:
		case <-ac.dead:
			return
		}
		if err := ac.c.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
			ac.fail(err)
			return
		}
		for frame != nil {
			if err := framing.WriteFrame(bw, frame); err != nil {
				ac.fail(fmt.Errorf("link: append connection: write: %w", err))
				return
			}
			putFrame(frame)
			select {
			case frame = <-ac.out:
			default:
				frame = nil
			}
		}
		if err := bw.Flush(); err != nil {
			ac.fail(fmt.Errorf("link: append connection: write: %w", err))
			return
		}
	}
}

// Frame buffers are recycled; a large one is dropped rather than pinned.
var framePool = sync.Pool{New: func() any { return new([]byte) }}

func getFrame() []byte { return (*framePool.Get().(*[]byte))[:0] }

func putFrame(b []byte) {
	if cap(b) > 64<<10 {
		return
	}
	framePool.Put(&b)
}

// appendPeer is the dialing side toward one peer node.
type appendPeer struct {
	a  *appender
	id string

	mu     sync.Mutex
	conn   *appendConn // nil or dead: dial on next use
	nextID uint64
}

func (a *appender) peer(id string) (*appendPeer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if isDone(a.l.conns.stop) {
		return nil, ErrClosed
	}
	p := a.peers[id]
	if p == nil {
		p = &appendPeer{a: a, id: id}
		a.peers[id] = p
	}
	return p, nil
}

// appendEntries sends req for group gid to peer id and waits for raft's answer there.
func (a *appender) appendEntries(id string, gid uint64, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse, stop <-chan struct{}) error {
	p, err := a.peer(id)
	if err != nil {
		return err
	}
	ac, rid, ch, err := p.register()
	if err != nil {
		return err
	}
	if err := ac.send(appendRequestFrame(getFrame(), rid, gid, req)); err != nil {
		ac.unregister(rid)
		return err
	}
	t := time.NewTimer(a.timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return r.err
		}
		*resp = *r.resp
		return nil
	case <-t.C:
		// The peer is stuck or the link is: start over on a new connection, as
		// raft's transport does after an I/O timeout.
		ac.fail(errAppendTimeout)
		return errAppendTimeout
	case <-stop:
		ac.unregister(rid)
		return raft.ErrTransportShutdown
	case <-a.l.conns.stop:
		return ErrClosed
	}
}

// register returns the live connection, dialing if needed, with a new request ID and the
// channel its response will come on.
func (p *appendPeer) register() (*appendConn, uint64, chan appendResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || isDone(p.conn.dead) {
		ac, err := p.dial()
		if err != nil {
			return nil, 0, nil, err
		}
		p.conn = ac
	}
	p.nextID++
	ch := make(chan appendResult, 1)
	ac := p.conn
	ac.mu.Lock()
	defer ac.mu.Unlock()
	if isDone(ac.dead) {
		return nil, 0, nil, ac.err
	}
	ac.pending[p.nextID] = ch
	return ac, p.nextID, ch, nil
}

func (ac *appendConn) unregister(id uint64) {
	ac.mu.Lock()
	delete(ac.pending, id)
	ac.mu.Unlock()
}

// dial opens a connection to the peer, with its writer and its response reader.
func (p *appendPeer) dial() (*appendConn, error) {
	m := &p.a.l.conns
	c, err := m.dial(p.id, framing.ProtoAppend, p.a.timeout)
	if err != nil {
		return nil, err
	}
	ac := newAppendConn(c)
	if !m.start(func() { ac.writeLoop(p.a.timeout) }, func() { defer m.release(c); ac.readResponses() }) {
		ac.fail(ErrClosed)
		return nil, ErrClosed
	}
	return ac, nil
}

// readResponses hands each response to its request until the connection fails.
func (ac *appendConn) readResponses() {
	br := bufio.NewReaderSize(ac.c, 64<<10)
	var buf []byte
	for {
		frame, err := framing.ReadFrame(br, buf)
		if err != nil {
			ac.fail(fmt.Errorf("link: append connection: read: %w", err))
			return
		}
		buf = frame
		id, resp, remote, err := decodeAppendResponse(frame)
		if err != nil {
			ac.fail(err)
			return
		}
		ac.mu.Lock()
		ch := ac.pending[id]
		delete(ac.pending, id)
		ac.mu.Unlock()
		if ch != nil { // else its caller gave up
			ch <- appendResult{resp: resp, err: remote}
		}
	}
}

// serve reads the requests of a peer that leads groups this node follows, and hands each
// to its group's raft on a goroutine of its own, so that a group whose raft is busy holds
// up no other.
func (a *appender) serve(c net.Conn) {
	ac := newAppendConn(c)
	m := &a.l.conns
	if !m.start(func() { ac.writeLoop(a.timeout) }) {
		ac.fail(ErrClosed)
		return
	}
	br := bufio.NewReaderSize(ac.c, 64<<10)
	var buf []byte
	for {
		if err := ac.c.SetReadDeadline(time.Now().Add(a.idle)); err != nil {
			ac.fail(err)
			return
		}
		frame, err := framing.ReadFrame(br, buf)
		if err != nil {
			ac.fail(err)
			return
		}
		buf = frame
		id, gid, req, err := decodeAppendRequest(frame)
		if err != nil {
			a.l.log.Debug("dropping an append connection", "remote", ac.c.RemoteAddr().String(), "err", err)
			ac.fail(err)
			return
		}
		if !m.start(func() {
			resp, err := a.deliver(gid, req, ac.dead)
			_ = ac.send(appendResponseFrame(getFrame(), id, resp, err))
		}) {
			ac.fail(ErrClosed)
			return
		}
	}
}

// deliver hands req to group gid's raft and returns its answer.
func (a *appender) deliver(gid uint64, req *raft.AppendEntriesRequest, dead <-chan struct{}) (*raft.AppendEntriesResponse, error) {
	c, ok := a.consumer(gid)
	if !ok {
		return nil, fmt.Errorf("link: group %d is not running on this node", gid)
	}
	respCh := make(chan raft.RPCResponse, 1)
	select {
	case c.ch <- raft.RPC{Command: req, RespChan: respCh}:
		a.delivered.Add(1)
	case <-c.stop:
		return nil, raft.ErrTransportShutdown
	case <-dead:
		return nil, ErrClosed
	case <-a.l.conns.stop:
		return nil, ErrClosed
	}
	select {
	case r := <-respCh:
		if r.Error != nil {
			return nil, r.Error
		}
		resp, ok := r.Response.(*raft.AppendEntriesResponse)
		if !ok {
			return nil, fmt.Errorf("link: group %d answered append entries with %T", gid, r.Response)
		}
		return resp, nil
	case <-c.stop:
		return nil, raft.ErrTransportShutdown
	case <-a.l.conns.stop:
		return nil, ErrClosed
	}
}
