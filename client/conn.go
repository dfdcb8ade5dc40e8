package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/duro-db/duro/internal/framing"
	"github.com/duro-db/duro/internal/wire"
)

// attemptError is a failure to get an answer from a node. sent says whether the request
// may have reached the node: if so, the call may have taken effect.
type attemptError struct {
	addr string
	sent bool
	err  error
}

func (e *attemptError) Error() string {
	if e.sent {
		return fmt.Sprintf("node %s: no answer: %v", e.addr, e.err)
	}
	if msg := e.err.Error(); strings.Contains(msg, e.addr) {
		return msg // "dial tcp ADDR: ...": the node is named already
	}
	return fmt.Sprintf("node %s: %v", e.addr, e.err)
}

func (e *attemptError) Unwrap() error { return e.err }

// errConnLost is the cause of an attemptError when a connection broke.
var errConnLost = errors.New("connection lost")

// nodeConn is one multiplexed connection to a node. Calls register a stream ID, queue
// their request and wait for the response with that ID; a writer goroutine batches queued
// requests into as few writes as possible, a reader goroutine routes responses. When
// either fails the connection is dead for good: every waiter gets an attemptError, and
// the Client dials a new one on the next call.
type nodeConn struct {
	addr string
	nc   net.Conn
	log  *slog.Logger

	sendq chan []byte // encoded requests for the writer

	mu      sync.Mutex
	pending map[uint64]chan *wire.Response
	nextID  uint64
	err     error // why the connection died; set once, with done closed

	done chan struct{}
	wg   sync.WaitGroup
}

// dialNode connects to the node at addr and starts the connection's goroutines.
func dialNode(ctx context.Context, addr string, timeout time.Duration, log *slog.Logger) (*nodeConn, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := framing.Dial(dctx, addr, framing.ProtoClient, 0)
	if err != nil {
		return nil, err
	}
	if tcp, ok := nc.(*net.TCPConn); ok {
		_ = tcp.SetNoDelay(true)
	}
	c := &nodeConn{
		addr:    addr,
		nc:      nc,
		log:     log.With("node", addr),
		sendq:   make(chan []byte, 256),
		pending: make(map[uint64]chan *wire.Response),
		done:    make(chan struct{}),
	}
	c.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	return c, nil
}

// alive reports whether the connection can still carry requests.
func (c *nodeConn) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// fail kills the connection with err, once.
func (c *nodeConn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	close(c.done)
	c.mu.Unlock()
	_ = c.nc.Close()
	if !errors.Is(err, ErrClosed) {
		c.log.Debug("connection lost", "err", err)
	}
}

// close kills the connection and waits for its goroutines.
func (c *nodeConn) close() {
	c.fail(ErrClosed)
	c.wg.Wait()
}

// roundTrip sends req (setting its StreamID) and waits for the response, until ctx ends or
// timeout fires (nil: never). Errors are *attemptError, or a definite error when the request
// cannot be sent at all.
func (c *nodeConn) roundTrip(ctx context.Context, req *wire.Request, timeout <-chan time.Time) (*wire.Response, error) {
	ch := make(chan *wire.Response, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, &attemptError{addr: c.addr, err: err}
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()

	req.StreamID = id
	frame := wire.AppendRequest(make([]byte, 0, requestSizeHint(req)), req)
	if len(frame) > framing.MaxFrameSize {
		c.forget(id)
		return nil, fmt.Errorf("%w: request of %d bytes exceeds the frame limit of %d", ErrTooLarge, len(frame), framing.MaxFrameSize)
	}
	select {
	case c.sendq <- frame:
	case <-c.done:
		c.forget(id)
		return nil, &attemptError{addr: c.addr, err: errConnLost}
	case <-ctx.Done():
		c.forget(id)
		return nil, &attemptError{addr: c.addr, err: ctx.Err()}
	case <-timeout:
		c.forget(id)
		return nil, &attemptError{addr: c.addr, err: context.DeadlineExceeded}
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-c.done:
		select {
		case resp := <-ch: // answered just before the connection died
			return resp, nil
		default:
		}
		return nil, &attemptError{addr: c.addr, sent: true, err: errConnLost}
	case <-ctx.Done():
		c.forget(id)
		return nil, &attemptError{addr: c.addr, sent: true, err: ctx.Err()}
	case <-timeout:
		c.forget(id)
		return nil, &attemptError{addr: c.addr, sent: true, err: context.DeadlineExceeded}
	}
}

// requestSizeHint bounds the encoded size of req (everything but the strings and the
// arguments takes at most 112 bytes), so that encoding it allocates once instead of
// growing the frame step by step.
func requestSizeHint(req *wire.Request) int {
	c := &req.Call
	return 128 + len(c.Class) + len(c.Name) + len(c.Method) + len(c.Args)
}

func (c *nodeConn) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *nodeConn) writeLoop() {
	defer c.wg.Done()
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	for {
		var frame []byte
		select {
		case frame = <-c.sendq:
		case <-c.done:
			return
		}
		// Write everything already queued, then flush once: under load many calls share
		// one syscall. When the queue first runs dry, yield once before flushing, so that
		// callers already runnable can join this write (as gRPC's loopy writer does);
		// without it nearly every call was a write of its own.
		yielded := false
		for {
			if err := framing.WriteFrame(bw, frame); err != nil {
				c.fail(err)
				return
			}
			select {
			case frame = <-c.sendq:
				continue
			default:
			}
			if !yielded {
				yielded = true
				runtime.Gosched()
				select {
				case frame = <-c.sendq:
					continue
				default:
				}
			}
			break
		}
		if err := bw.Flush(); err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *nodeConn) readLoop() {
	defer c.wg.Done()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var buf []byte
	for {
		frame, err := framing.ReadFrame(br, buf)
		if err != nil {
			c.fail(fmt.Errorf("%w: %w", errConnLost, err))
			return
		}
		buf = frame
		resp, err := wire.DecodeResponse(frame)
		if err != nil {
			// A node that sends garbage cannot be trusted to keep stream IDs straight.
			c.fail(fmt.Errorf("%w: %w", errConnLost, err))
			return
		}
		c.mu.Lock()
		ch := c.pending[resp.StreamID]
		delete(c.pending, resp.StreamID)
		c.mu.Unlock()
		if ch != nil {
			ch <- resp // buffered; each stream is answered once
		}
	}
}
