package duro

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/duro-db/duro/internal/framing"
	"github.com/duro-db/duro/internal/objid"
	"github.com/duro-db/duro/internal/wire"
	"github.com/duro-db/duro/objects"
)

// responseOverhead is more than the bytes a response adds around its result, so a
// result that passes the check below always fits a frame.
const responseOverhead = 64

// sdkConn serves one SDK connection: a reader loop, worker goroutines that serve one
// request at a time (at most sem's capacity of requests at once), and a writer loop that
// owns the write side.
type sdkConn struct {
	s   *Server
	nc  net.Conn
	log *slog.Logger

	// ctx ends when the connection does; requests in progress see it.
	ctx    context.Context
	cancel context.CancelFunc

	sem      chan struct{}       // one token per request in progress
	work     chan *wire.Request  // to an idle worker (unbuffered)
	out      chan *wire.Response // to the writer
	handlers sync.WaitGroup
	writer   chan struct{} // closed when the writer exits

	closeOnce sync.Once
}

func newSDKConn(s *Server, nc net.Conn) *sdkConn {
	ctx, cancel := context.WithCancel(context.Background())
	return &sdkConn{
		s:      s,
		nc:     nc,
		log:    s.log.With("client", nc.RemoteAddr().String()),
		ctx:    ctx,
		cancel: cancel,
		sem:    make(chan struct{}, s.cfg.MaxInflightPerConn),
		// Handlers hold a token while they send, so at most cap(sem) responses wait
		// here, plus the Overloaded ones the reader sends itself.
		out:    make(chan *wire.Response, s.cfg.MaxInflightPerConn),
		work:   make(chan *wire.Request),
		writer: make(chan struct{}),
	}
}

// close ends the connection: the reader and writer stop, requests in progress see their
// context cancelled.
func (c *sdkConn) close() {
	c.closeOnce.Do(func() {
		c.cancel()
		_ = c.nc.Close()
	})
}

// serve runs the connection until it ends, then waits for its requests to finish.
func (c *sdkConn) serve() {
	go c.writeLoop()
	err := c.readLoop()
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), c.ctx.Err() != nil:
	default:
		c.log.Debug("closing SDK connection", "err", err)
	}
	c.close()
	c.handlers.Wait()
	<-c.writer
}

func (c *sdkConn) readLoop() error {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var buf []byte
	for {
		frame, err := framing.ReadFrame(br, buf)
		if err != nil {
			return err
		}
		buf = frame // decoded requests own their memory: the buffer can be reused
		req, err := wire.DecodeRequest(frame)
		if err != nil {
			// The stream cannot be trusted past a frame that is not a request.
			return err
		}
		select {
		case c.sem <- struct{}{}:
			select {
			case c.work <- req:
			default:
				c.handlers.Add(1)
				go c.worker(req)
			}
		default:
			c.send(&wire.Response{StreamID: req.StreamID, Err: &wire.Error{
				Code:    wire.CodeOverloaded,
				Message: fmt.Sprintf("more than %d requests in progress on this connection", cap(c.sem)),
			}})
		}
	}
}

// workerIdle is how long a worker waits for another request before it exits.
const workerIdle = 5 * time.Second

// worker serves req, then whatever the reader hands it, until it has waited workerIdle
// for one or the connection ends. Reusing goroutines matters because a request goes deep:
// it runs its object's handler, reads the store and often drives the object's executor,
// and a new goroutine would grow its stack (copying it) several times on the way down,
// on every request.
func (c *sdkConn) worker(req *wire.Request) {
	defer c.handlers.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		c.handle(req)
		idle.Reset(workerIdle)
		select {
		case req = <-c.work:
		case <-idle.C:
			return
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *sdkConn) handle(req *wire.Request) {
	defer func() { <-c.sem }()
	defer func() {
		// The runtime contains handler panics; this catches bugs of the node's own, which
		// must not take the node down with every other client.
		if p := recover(); p != nil {
			c.log.Error("panic serving a request", "panic", p, "stack", string(debug.Stack()))
			c.send(&wire.Response{StreamID: req.StreamID, Err: &wire.Error{Code: wire.CodeInternal, Message: "internal error"}})
		}
	}()
	c.send(c.s.answer(c.ctx, req))
}

func (c *sdkConn) send(resp *wire.Response) {
	select {
	case c.out <- resp:
	case <-c.ctx.Done():
	}
}

func (c *sdkConn) writeLoop() {
	defer close(c.writer)
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	var buf []byte
	for {
		var resp *wire.Response
		select {
		case resp = <-c.out:
		case <-c.ctx.Done():
			return
		}
		// Write every response already waiting, then flush once. When the queue first runs
		// dry, yield once before flushing: the handlers of calls released by the same
		// commit are usually runnable and about to send, and a response that joins this
		// write saves a syscall here and a read on the client (without the yield, nearly
		// every response was a write of its own). gRPC's loopy writer does the same. No
		// timer: an idle connection's lone response waits only for the yield.
		yielded := false
		for {
			buf = wire.AppendResponse(buf[:0], resp)
			if err := framing.WriteFrame(bw, buf); err != nil {
				c.log.Debug("SDK write failed", "err", err)
				c.close()
				return
			}
			select {
			case resp = <-c.out:
				continue
			default:
			}
			if !yielded {
				yielded = true
				runtime.Gosched()
				select {
				case resp = <-c.out:
					continue
				default:
				}
			}
			break
		}
		if err := bw.Flush(); err != nil {
			c.log.Debug("SDK write failed", "err", err)
			c.close()
			return
		}
	}
}

// answer computes the response to one request.
func (s *Server) answer(ctx context.Context, req *wire.Request) *wire.Response {
	resp := &wire.Response{StreamID: req.StreamID}
	switch req.Op {
	case wire.OpTopology:
		resp.Topology = s.topology()
	case wire.OpStatus:
		b, err := json.Marshal(s.Status())
		if err != nil {
			resp.Err = &wire.Error{Code: wire.CodeInternal, Message: err.Error()}
			break
		}
		resp.Result = b
	case wire.OpCall:
		start := time.Now()
		res, err := s.call(ctx, &req.Call)
		if err != nil {
			resp.Err = s.wireError(err)
			class, method := s.callLabels(&req.Call)
			s.metrics.Called(class, method, strings.ReplaceAll(resp.Err.Code.String(), " ", "_"), time.Since(start))
			break
		}
		s.metrics.Called(req.Call.Class, req.Call.Method, "ok", time.Since(start))
		if len(res) > framing.MaxFrameSize-responseOverhead {
			resp.Err = &wire.Error{Code: wire.CodeTooLarge, Message: fmt.Sprintf("result of %d bytes exceeds the frame limit", len(res))}
			break
		}
		if res == nil {
			res = []byte{}
		}
		resp.Result = res
	default:
		resp.Err = &wire.Error{Code: wire.CodeBadRequest, Message: fmt.Sprintf("unsupported operation %s", req.Op)}
	}
	return resp
}

func (s *Server) call(ctx context.Context, c *wire.Call) ([]byte, error) {
	timeout := s.cfg.CallTimeout
	if ms := c.TimeoutMillis; ms > 0 {
		timeout = MaxCallTimeout
		if ms < uint64(MaxCallTimeout.Milliseconds()) {
			timeout = time.Duration(ms) * time.Millisecond
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return s.rt.Call(ctx, objects.Request{
		Class:  c.Class,
		ID:     objid.ID(c.ID),
		Name:   c.Name,
		Method: c.Method,
		Args:   c.Args,
		JSON:   c.JSON,
		Client: c.Client,
		Seq:    c.Seq,
		Ack:    c.Ack,

		FirstAttempt: c.FirstAttempt,
	})
}

// callLabels keeps metric labels bounded on the error path: a class or method the registry
// does not know (anything a client made up) is counted as "unknown".
func (s *Server) callLabels(c *wire.Call) (class, method string) {
	methods := s.cfg.Registry.Methods(c.Class)
	if methods == nil {
		return "unknown", "unknown"
	}
	if !slices.Contains(methods, c.Method) {
		return c.Class, "unknown"
	}
	return c.Class, c.Method
}
