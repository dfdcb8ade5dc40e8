package transport

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// listener is the in-process net.Listener behind a StreamLayer and the client
// listener: the Mux's handshake goroutines deliver connections to it, Accept
// takes them. It owns every connection it delivers or dials (live) so that
// Close can end them all.
type listener struct {
	addr net.Addr
	name string // for errors: "raft group 3", "client"

	// conns is unbuffered: a connection is either accepted or still held by
	// the handshake goroutine that delivers it, never stranded in a queue.
	conns chan *conn
	done  chan struct{} // closed by Close

	// onClose runs once, after done is closed; the Mux uses it to unregister.
	onClose func(*listener)

	mu     sync.Mutex
	closed bool
	err    error // returned by Accept and Dial once closed
	live   map[*conn]struct{}
}

func newListener(name string, addr net.Addr, onClose func(*listener)) *listener {
	return &listener{
		addr:    addr,
		name:    name,
		conns:   make(chan *conn),
		done:    make(chan struct{}),
		onClose: onClose,
		live:    make(map[*conn]struct{}),
	}
}

// newClosedListener returns a listener that is closed from the start, whose
// Accept and Dial fail with err.
func newClosedListener(name string, addr net.Addr, err error) *listener {
	l := newListener(name, addr, nil)
	l.closed, l.err, l.live = true, err, nil
	close(l.done)
	return l
}

// Accept waits for the next connection routed to this listener. After Close
// it returns an error that matches net.ErrClosed.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		// Close may have won the race with the handoff; it has already
		// closed c, and a listener must not return connections once closed.
		select {
		case <-l.done:
			return nil, l.closedErr()
		default:
			return c, nil
		}
	case <-l.done:
		return nil, l.closedErr()
	}
}

// Close stops routing connections here, unblocks Accept and closes every
// connection this listener owns. It is idempotent and always returns nil.
func (l *listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.err = fmt.Errorf("transport: %s listener: %w", l.name, net.ErrClosed)
	close(l.done)
	live := l.live
	l.live = nil
	l.mu.Unlock()

	if l.onClose != nil {
		l.onClose(l)
	}
	for c := range live {
		c.sever()
	}
	return nil
}

// Addr is the address given at creation (the advertise address for a
// StreamLayer).
func (l *listener) Addr() net.Addr { return l.addr }

func (l *listener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

func (l *listener) closedErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// adopt makes l the owner of c; it fails once l is closed.
func (l *listener) adopt(c *conn) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.err
	}
	l.live[c] = struct{}{}
	return nil
}

func (l *listener) forget(c *conn) {
	l.mu.Lock()
	delete(l.live, c)
	l.mu.Unlock()
}

// deliver hands raw (header consumed, prefix holding any bytes read past it)
// to Accept, waiting until deadline at most. On error raw is closed.
func (l *listener) deliver(raw net.Conn, prefix []byte, deadline time.Time) error {
	c := &conn{Conn: raw, prefix: prefix, owner: l}
	if err := l.adopt(c); err != nil {
		raw.Close()
		return err
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case l.conns <- c:
		return nil
	case <-l.done:
		return l.closedErr() // Close has closed c
	case <-t.C:
		c.Close()
		return fmt.Errorf("transport: %s listener did not accept in time", l.name)
	}
}

// conn is a connection handed out by a listener.
type conn struct {
	net.Conn

	// prefix holds bytes the header reader buffered past the header; they are
	// the start of the stream and are returned before anything else.
	prefix []byte

	owner *listener
	// severed is set when the owner closes the connection, so reads report a
	// clean io.EOF rather than "use of closed network connection".
	severed atomic.Bool
}

func (c *conn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	n, err := c.Conn.Read(p)
	if err != nil && c.severed.Load() {
		err = io.EOF
	}
	return n, err
}

// Close closes the connection and releases it from its owner.
func (c *conn) Close() error {
	c.owner.forget(c)
	return c.Conn.Close()
}

// sever closes the connection on behalf of its owner.
func (c *conn) sever() {
	c.severed.Store(true)
	c.Conn.Close()
}
