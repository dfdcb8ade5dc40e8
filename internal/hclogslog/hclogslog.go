// Package hclogslog routes hashicorp's hclog (used by hashicorp/raft) into log/slog, so a
// node has one logging pipeline with structured fields.
//
// Raft is chatty: routine events of every group at Info, and an Error per group for every
// failed heartbeat to a dead peer (tens a second with many groups). The adapter keeps
// hclog's levels, lets the caller raise the floor for raft alone, and lets through at most
// one record with the same message per logger every RepeatWindow, counting the rest
// ("suppressed" on the next one that passes). Raft's errors about a connection or
// transport this node itself closed, which every shutdown produces, are logged at Debug.
package hclogslog

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// New returns an hclog.Logger that writes to l. Records below min are dropped before any
// formatting work is done.
func New(l *slog.Logger, name string, min slog.Level) hclog.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	a := &adapter{l: l, name: name, min: min, rep: &repeats{seen: map[string]*repeat{}}}
	if name != "" {
		a.l = l.With("logger", name)
	}
	return a
}

type adapter struct {
	l       *slog.Logger
	name    string
	min     slog.Level
	implied []any
	rep     *repeats // shared by the loggers derived from one New
}

// RepeatWindow is how long records with the same message are held back after one passes.
const RepeatWindow = 10 * time.Second

type repeat struct {
	last       time.Time
	suppressed int
}

type repeats struct {
	mu   sync.Mutex
	seen map[string]*repeat
}

// admit reports whether a record with msg may pass now, and how many were held back since
// the last one that did.
func (r *repeats) admit(msg string, now time.Time) (ok bool, suppressed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.seen[msg]
	if e == nil {
		if len(r.seen) > 1024 { // messages are constants; this only bounds a surprise
			r.seen = map[string]*repeat{}
		}
		r.seen[msg] = &repeat{last: now}
		return true, 0
	}
	if now.Sub(e.last) < RepeatWindow {
		e.suppressed++
		return false, 0
	}
	suppressed, e.suppressed, e.last = e.suppressed, 0, now
	return true, suppressed
}

var _ hclog.Logger = (*adapter)(nil)

func toSlog(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Info, hclog.NoLevel, hclog.DefaultLevel:
		return slog.LevelInfo
	case hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (a *adapter) enabled(l slog.Level) bool {
	return l >= a.min && a.l.Enabled(context.Background(), l)
}

func (a *adapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	l := toSlog(level)
	if l > slog.LevelDebug && closedByUs(args) {
		l = slog.LevelDebug
	}
	if !a.enabled(l) {
		return
	}
	ok, suppressed := a.rep.admit(msg, time.Now())
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	a.l.Log(context.Background(), l, msg, args...)
}

// closedByUs reports whether the record's error is about a connection or transport this
// node closed: nothing an operator can act on, and every shutdown logs a few per group.
func closedByUs(args []any) bool {
	for _, v := range args {
		if err, ok := v.(error); ok && (errors.Is(err, net.ErrClosed) || errors.Is(err, raft.ErrTransportShutdown)) {
			return true
		}
	}
	return false
}

func (a *adapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *adapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *adapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *adapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *adapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *adapter) IsTrace() bool { return a.enabled(toSlog(hclog.Trace)) }
func (a *adapter) IsDebug() bool { return a.enabled(slog.LevelDebug) }
func (a *adapter) IsInfo() bool  { return a.enabled(slog.LevelInfo) }
func (a *adapter) IsWarn() bool  { return a.enabled(slog.LevelWarn) }
func (a *adapter) IsError() bool { return a.enabled(slog.LevelError) }

func (a *adapter) ImpliedArgs() []any { return a.implied }

func (a *adapter) With(args ...any) hclog.Logger {
	c := *a
	c.l = a.l.With(args...)
	c.implied = append(append([]any(nil), a.implied...), args...)
	return &c
}

func (a *adapter) Name() string { return a.name }

func (a *adapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	c := *a
	c.name = name
	c.l = a.l.With("logger", name)
	return &c
}

func (a *adapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	c.l = a.l.With("logger", name)
	return &c
}

// SetLevel is accepted for interface compatibility; the slog handler owns the level.
func (a *adapter) SetLevel(hclog.Level) {}

func (a *adapter) GetLevel() hclog.Level {
	switch {
	case a.IsTrace():
		return hclog.Trace
	case a.IsDebug():
		return hclog.Debug
	case a.IsInfo():
		return hclog.Info
	case a.IsWarn():
		return hclog.Warn
	default:
		return hclog.Error
	}
}

func (a *adapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(a.l.Handler(), slog.LevelInfo)
}

func (a *adapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return a.StandardLogger(nil).Writer()
}
