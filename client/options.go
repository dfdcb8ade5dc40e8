package client

import (
	"log/slog"
	"time"
)

// Defaults of the Options.
const (
	DefaultDialTimeout     = 5 * time.Second
	DefaultCallTimeout     = 30 * time.Second
	DefaultAttemptTimeout  = 5 * time.Second
	DefaultMinRetryBackoff = 5 * time.Millisecond
	DefaultMaxRetryBackoff = 1 * time.Second
)

// Option configures a Client.
type Option func(*options)

type options struct {
	clientID    [16]byte
	hasID       bool
	minBackoff  time.Duration
	maxBackoff  time.Duration
	log         *slog.Logger
	dialTimeout time.Duration
	callTimeout time.Duration
	// attemptTimeout bounds one attempt at one node.
	attemptTimeout time.Duration
}

func defaultOptions() options {
	return options{
		minBackoff:     DefaultMinRetryBackoff,
		maxBackoff:     DefaultMaxRetryBackoff,
		log:            slog.New(slog.DiscardHandler),
		dialTimeout:    DefaultDialTimeout,
		callTimeout:    DefaultCallTimeout,
		attemptTimeout: DefaultAttemptTimeout,
	}
}

// WithClientID sets the 16-byte ID under which the cluster deduplicates this Client's
// calls. By default every Client gets a random one, which is what almost every program
// wants. Two Clients running at once must never share an ID. A Client given an ID numbers
// its calls from the current time, so a restarted process may reuse its ID as long as the
// clock does not step back.
func WithClientID(id [16]byte) Option {
	return func(o *options) { o.clientID, o.hasID = id, true }
}

// WithRetryBackoff sets the pause between retries: it starts at min and doubles up to
// max, each pause drawn at random from its upper half so clients do not retry in step.
func WithRetryBackoff(min, max time.Duration) Option {
	return func(o *options) {
		if min > 0 {
			o.minBackoff = min
		}
		if max >= o.minBackoff {
			o.maxBackoff = max
		}
	}
}

// WithLogger sets where the Client logs connection changes and retries (at debug level).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithDialTimeout bounds each connection attempt to a node.
func WithDialTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.dialTimeout = d
		}
	}
}

// WithCallTimeout sets how long a call may take, retries included, when its context has
// no deadline. Zero or less means no bound: such a call retries until it gets a definite
// answer or its context is cancelled.
func WithCallTimeout(d time.Duration) Option {
	return func(o *options) { o.callTimeout = d }
}

// WithAttemptTimeout bounds how long one attempt waits for one node's answer before the
// call is retried (with the same request ID, so it is still applied at most once). It
// keeps a paused or cut-off leader from holding calls until their deadline. Calls that
// legitimately take longer are not cut short: their retry joins the attempt still running
// on the node. Default DefaultAttemptTimeout.
func WithAttemptTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.attemptTimeout = d
		}
	}
}
