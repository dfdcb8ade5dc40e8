package link

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/duro-db/duro/internal/framing"
)

// conns is the link's connection manager: it dials peers, accepts their connections, and
// owns every open connection of both protocols and every goroutine of the link, so that
// close ends them all.
type conns struct {
	resolve func(id string) (string, error)

	mu     sync.Mutex
	closed bool
	open   map[net.Conn]struct{}
	stop   chan struct{} // closed by close
	wg     sync.WaitGroup
}

func (m *conns) init(resolve func(string) (string, error)) {
	m.resolve = resolve
	m.open = map[net.Conn]struct{}{}
	m.stop = make(chan struct{})
}

// close marks the link closing and closes every open connection; false if it already was.
func (m *conns) close() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.closed = true
	close(m.stop)
	for c := range m.open {
		c.Close()
	}
	return true
}

// start runs each of fns on a goroutine of the link, unless it is closing (false).
func (m *conns) start(fns ...func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.run(fns)
	return true
}

// adopt records c as open, so that close closes it, and runs each of fns on a goroutine
// of the link; while closing, it closes c instead and returns false.
func (m *conns) adopt(c net.Conn, fns ...func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		c.Close()
		return false
	}
	m.open[c] = struct{}{}
	m.run(fns)
	return true
}

// run starts fns; m.mu is held and the link is not closing.
func (m *conns) run(fns []func()) {
	m.wg.Add(len(fns))
	for _, f := range fns {
		go func() {
			defer m.wg.Done()
			f()
		}()
	}
}

// release closes c and forgets it.
func (m *conns) release(c net.Conn) {
	m.mu.Lock()
	delete(m.open, c)
	m.mu.Unlock()
	c.Close()
}

// dial connects to peer node id for proto within timeout, and adopts the connection.
func (m *conns) dial(id string, proto byte, timeout time.Duration) (net.Conn, error) {
	addr, err := m.resolve(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := framing.Dial(ctx, addr, proto, 0)
	if err != nil {
		return nil, err
	}
	if !m.adopt(c) {
		return nil, ErrClosed
	}
	return c, nil
}

// serve accepts the connections of ln until it closes, and runs serve on each, on a
// goroutine of its own; the connection is released when serve returns.
func (m *conns) serve(ln net.Listener, serve func(net.Conn)) {
	m.start(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // the listener closes with the link or the Mux
			}
			if !m.adopt(c, func() { defer m.release(c); serve(c) }) {
				return
			}
		}
	})
}

// isDone reports whether c is closed.
func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
