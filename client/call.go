package client

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/duro-db/duro/internal/objid"
	"github.com/duro-db/duro/internal/values"
	"github.com/duro-db/duro/internal/wire"
)

// maxRedirects is how many leader hints in a row a call follows at once before it pauses:
// hints can chase each other while a group elects a leader.
const maxRedirects = 3

// Namespace is one class of objects on the cluster.
type Namespace struct {
	c     *Client
	class string
}

// Namespace returns the Namespace of class.
func (c *Client) Namespace(class string) *Namespace { return &Namespace{c: c, class: class} }

// Class returns the Namespace's class name.
func (n *Namespace) Class() string { return n.class }

// IDFromName returns the ID of the object called name. The same class and name give the
// same ID everywhere, forever.
func (n *Namespace) IDFromName(name string) ID { return objid.FromName(n.class, name) }

// NewUniqueID returns a new random ID of this class.
func (n *Namespace) NewUniqueID() ID { return objid.NewUnique(n.class) }

// IDFromString parses the 64-hex-digit form of an ID of this class. The error wraps
// ErrInvalidID, or ErrWrongClass for an ID minted for another class.
func (n *Namespace) IDFromString(s string) (ID, error) { return objid.Parse(n.class, s) }

// Get returns a stub of the object id.
func (n *Namespace) Get(id ID) *Stub { return &Stub{ns: n, id: id} }

// GetByName returns a stub of the object called name. The name travels with each call,
// so the object sees it (objects.Context.Name).
func (n *Namespace) GetByName(name string) *Stub {
	return &Stub{ns: n, id: n.IDFromName(name), name: name}
}

// Stub calls the methods of one object.
type Stub struct {
	ns   *Namespace
	id   ID
	name string
}

// ID returns the object's ID.
func (s *Stub) ID() ID { return s.id }

// Call calls method with the argument in (nil for none) and decodes the result into out
// (a pointer; nil to discard it). See the package documentation for retries; the call
// is bounded by ctx, or by the Client's call timeout if ctx has no deadline.
func (s *Stub) Call(ctx context.Context, method string, in, out any) error {
	var args []byte
	if in != nil {
		var err error
		if args, err = marshal(in); err != nil {
			return fmt.Errorf("%w: encoding the argument %T: %v", ErrBadArgument, in, err)
		}
	}
	res, err := s.invoke(ctx, method, args, false)
	if err != nil {
		return err
	}
	if out == nil || len(res) == 0 {
		return nil
	}
	if err := unmarshal(res, out); err != nil {
		return fmt.Errorf("%w: the call succeeded but its result does not decode into %T: %v", ErrBadArgument, out, err)
	}
	return nil
}

// Call calls method of the object behind s with the argument in and returns the result
// as an Out.
func Call[Out any](ctx context.Context, s *Stub, method string, in any) (Out, error) {
	var out Out
	err := s.Call(ctx, method, in, &out)
	return out, err
}

// CallJSON calls method with JSON arguments (empty for none) and returns the JSON
// result. The node converts, so JSON works with every method; it is meant for tools such
// as the duro CLI.
func (s *Stub) CallJSON(ctx context.Context, method string, jsonArgs []byte) ([]byte, error) {
	return s.invoke(ctx, method, jsonArgs, true)
}

// invoke runs the call loop: route, send, and retry whatever is safe to retry until a
// definite answer or the deadline.
func (s *Stub) invoke(ctx context.Context, method string, args []byte, isJSON bool) ([]byte, error) {
	c := s.ns.c
	if err := s.id.Check(s.ns.class); err != nil {
		return nil, err // ErrInvalidID or ErrWrongClass, without a round trip
	}
	// The call's deadline is ctx's, or callTimeout from now, kept here rather than in a
	// derived context: a context.WithTimeout per call and another per attempt were 12% of
	// a loaded client's CPU (a timer and a registration with the shared parent each).
	deadline, ok := ctx.Deadline()
	if !ok && c.opts.callTimeout > 0 {
		deadline = time.Now().Add(c.opts.callTimeout)
	}
	// done reports why the call must stop: ctx ended, or its deadline passed.
	done := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return context.DeadlineExceeded
		}
		return nil
	}
	// within bounds d by what is left of the call.
	within := func(d time.Duration) time.Duration {
		if deadline.IsZero() {
			return d
		}
		return max(min(d, time.Until(deadline)), 0)
	}
	seq := c.seqs.begin()
	defer c.seqs.end(seq)
	req := wire.Request{Op: wire.OpCall, Call: wire.Call{
		Class:  s.ns.class,
		ID:     s.id,
		Name:   s.name,
		Method: method,
		Args:   args,
		JSON:   isJSON,
		Client: c.id,
		Seq:    seq,

		FirstAttempt: true,
	}}

	var (
		maybeApplied bool  // some attempt may have taken effect
		lastErr      error // why the last attempt failed
		avoid        string
		redirects    int
		backoff      = c.opts.minBackoff
	)
	pause := func() bool {
		d := backoff/2 + mrand.N(backoff/2+1)
		backoff = min(2*backoff, c.opts.maxBackoff)
		t := time.NewTimer(within(d))
		defer t.Stop()
		select {
		case <-t.C:
			return done() == nil
		case <-ctx.Done():
			return false
		}
	}
	for {
		if done() != nil {
			break
		}
		group, addr := c.route(s.id, avoid)
		if addr == "" {
			lastErr = fmt.Errorf("%w: no known node", ErrUnavailable)
			if !pause() {
				break
			}
			continue
		}
		nc, err := c.conn(ctx, addr, deadline)
		if err == nil {
			req.Call.Ack = c.seqs.ack()
			req.Call.TimeoutMillis = timeoutMillis(deadline)
			var resp *wire.Response
			// Each attempt has its own timeout, so a node that stops answering (paused,
			// cut off, overloaded) costs one attempt, not the whole call: the retry goes
			// elsewhere, or joins the same attempt on the node if it is still running it.
			t := getTimer(within(c.opts.attemptTimeout))
			resp, err = nc.roundTrip(ctx, &req, t.C)
			putTimer(t)
			req.Call.FirstAttempt = false // whatever happened, it may have reached the node
			if err == nil {
				if resp.Err == nil {
					return resp.Result, nil
				}
				e := resp.Err
				lastErr = remoteError(e)
				switch classify(e) {
				case retryNo:
					return nil, lastErr
				case retryNow:
					c.learnLeader(group, e.LeaderID, e.LeaderAddr)
					avoid = ""
					if redirects++; redirects <= maxRedirects {
						c.opts.log.Debug("following leader hint", "group", group, "from", addr, "to", e.LeaderAddr)
						continue
					}
				case retryUnknown:
					maybeApplied = true
				case retryElsewhere:
					c.forgetLeader(group, addr)
					avoid = addr
					c.refresh(addr)
				}
				c.opts.log.Debug("retrying call", "class", s.ns.class, "method", method, "seq", seq, "node", addr, "err", lastErr)
				if !pause() {
					break
				}
				redirects = 0
				continue
			}
		}
		var ae *attemptError
		if !errors.As(err, &ae) {
			return nil, err // definite: the request cannot be sent at all
		}
		if ae.sent {
			maybeApplied = true
		}
		lastErr = err
		if done() != nil {
			break
		}
		c.opts.log.Debug("node unreachable; retrying call", "class", s.ns.class, "method", method, "seq", seq, "node", addr, "err", err)
		c.nodeFailed(addr)
		avoid = addr
		c.refresh(addr)
		if !pause() {
			break
		}
		redirects = 0
	}
	why := done()
	if why == nil { // not reached: the loop ends only once done says why
		why = context.DeadlineExceeded
	}
	if maybeApplied {
		// The last error is often an unknown outcome too: say "outcome unknown" once.
		last := strings.TrimPrefix(fmt.Sprint(inner(lastErr)), strings.TrimPrefix(ErrUnknownOutcome.Error(), "duro: ")+": ")
		return nil, fmt.Errorf("%w: %s.%s: %w (last error: %s)", ErrUnknownOutcome, s.ns.class, method, why, last)
	}
	if lastErr == nil {
		return nil, fmt.Errorf("duro: %s.%s: %w", s.ns.class, method, why)
	}
	return nil, fmt.Errorf("duro: %s.%s: %w; last error: %w", s.ns.class, method, why, inner(lastErr))
}

// inner is err as a part of another error of the SDK, whose text starts with "duro: "
// already: without its own.
func inner(err error) error {
	if err == nil || !strings.HasPrefix(err.Error(), "duro: ") {
		return err
	}
	return &innerError{err}
}

type innerError struct{ err error }

func (e *innerError) Error() string { return strings.TrimPrefix(e.err.Error(), "duro: ") }
func (e *innerError) Unwrap() error { return e.err }

// timeoutMillis is what is left until deadline (none if zero), for the node to give up in
// time.
func timeoutMillis(deadline time.Time) uint64 {
	if deadline.IsZero() {
		return 0
	}
	return uint64(max(time.Until(deadline).Milliseconds(), 1))
}

// timers recycles the attempts' timers: since Go 1.23 a stopped timer delivers nothing
// stale, so a reset one is as good as new.
var timers sync.Pool

func getTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	t.Stop()
	timers.Put(t)
}

// marshal and unmarshal use the encoding the node uses for arguments and results
// (internal/values).
func marshal(v any) ([]byte, error) { return values.Marshal(v) }

func unmarshal(b []byte, out any) error {
	_, err := values.Unmarshal(b, out, false)
	return err
}
