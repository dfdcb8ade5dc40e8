package examples

import (
	"errors"
	"time"

	"github.com/duro-db/duro/objects"
)

// Session is a piece of state that lives as long as it is used: every call renews its
// time to live, and when a TTL passes without a call its alarm deletes all of it. The
// expiry is replicated, so it happens even if the node that served the last call dies.
type Session struct{}

// SessionStartArgs are the arguments of Session.Start.
type SessionStartArgs struct {
	TTLms int64 `json:"ttl_ms"` // time to live after each call, in milliseconds, > 0
}

// SessionPutArgs are the arguments of Session.Put.
type SessionPutArgs struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// SessionInfo describes a live session.
type SessionInfo struct {
	Expires int64 `json:"expires"` // unix nanos; each call moves it
}

// ErrNoSession: the session was never started, or it expired.
var ErrNoSession = errors.New("no such session (never started, or expired)")

// Session's storage: "ttl" (nanoseconds) marks a live session; "data/<key>" its values.
const sessionData = "data/"

// Start starts the session (or restarts it with a new TTL, keeping its data).
func (*Session) Start(ctx *objects.Context, in SessionStartArgs) (SessionInfo, error) {
	if in.TTLms <= 0 {
		return SessionInfo{}, errors.New("ttl_ms must be > 0")
	}
	ttl := time.Duration(in.TTLms) * time.Millisecond
	if err := ctx.Storage().Put("ttl", int64(ttl)); err != nil {
		return SessionInfo{}, err
	}
	return renew(ctx, ttl)
}

// Put sets a value in the session and renews it.
func (*Session) Put(ctx *objects.Context, in SessionPutArgs) (SessionInfo, error) {
	ttl, err := liveTTL(ctx)
	if err != nil {
		return SessionInfo{}, err
	}
	if in.Key == "" {
		return SessionInfo{}, errors.New("empty key")
	}
	if err := ctx.Storage().Put(sessionData+in.Key, in.Value); err != nil {
		return SessionInfo{}, err
	}
	return renew(ctx, ttl)
}

// Get returns a value of the session ("" if unset) and renews it.
func (*Session) Get(ctx *objects.Context, key string) (string, error) {
	ttl, err := liveTTL(ctx)
	if err != nil {
		return "", err
	}
	v, _, err := objects.GetAs[string](ctx.Storage(), sessionData+key)
	if err != nil {
		return "", err
	}
	_, err = renew(ctx, ttl)
	return v, err
}

// Info reports when the session expires, without renewing it.
func (*Session) Info(ctx *objects.Context, _ struct{}) (SessionInfo, error) {
	if _, err := liveTTL(ctx); err != nil {
		return SessionInfo{}, err
	}
	at, _, err := ctx.Storage().GetAlarm()
	return SessionInfo{Expires: at.UnixNano()}, err
}

// End deletes the session at once.
func (*Session) End(ctx *objects.Context, _ struct{}) (bool, error) {
	if _, err := liveTTL(ctx); err != nil {
		return false, err
	}
	return true, ctx.Storage().DeleteAll() // keys and alarm
}

// Alarm expires the session: no call renewed it within its TTL (a call replaces the
// alarm, so this runs only after a TTL of silence).
func (*Session) Alarm(ctx *objects.Context, _ objects.AlarmInfo) error {
	return ctx.Storage().DeleteAll()
}

func liveTTL(ctx *objects.Context) (time.Duration, error) {
	ttl, ok, err := objects.GetAs[int64](ctx.Storage(), "ttl")
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, ErrNoSession
	}
	return time.Duration(ttl), nil
}

func renew(ctx *objects.Context, ttl time.Duration) (SessionInfo, error) {
	exp := ctx.Now().Add(ttl)
	return SessionInfo{Expires: exp.UnixNano()}, ctx.Storage().SetAlarm(exp)
}

func registerSession(r *objects.Registry) {
	objects.RegisterIn(r, "Session", func() *Session { return new(Session) },
		objects.Method("Start", (*Session).Start),
		objects.Method("Put", (*Session).Put),
		objects.Method("Get", (*Session).Get),
		objects.Method("Info", (*Session).Info),
		objects.Method("End", (*Session).End),
	)
}

// RegisterAlarmExamples registers the example classes built on alarms: Session and
// Batcher.
func RegisterAlarmExamples(r *objects.Registry) {
	registerSession(r)
	registerBatcher(r)
}
