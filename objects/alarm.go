package objects

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/duro-db/duro/internal/objid"
)

// This file is what an alarm firing does on the object's executor: the due check, the
// handler, and the one command that clears, re-arms or retries the alarm. scheduler.go
// decides when to fire.

// Alarmer is implemented by object types that handle their alarm. Alarm runs on the
// object's executor like a call (never concurrently with the object's calls, Init or
// another Alarm), once the alarm set with Storage.SetAlarm is due.
//
// If Alarm returns nil, its writes commit in one command together with the clearing of
// the alarm, unless it set a new alarm (Storage.SetAlarm), which then stays. If it returns
// an error or panics, its writes are discarded and the alarm is retried after
// AlarmRetryDelay, doubling each time, at most MaxAlarmRetries times; then it is dropped
// (and logged). While Alarm runs, Storage.GetAlarm reports no alarm until it sets one.
//
// Delivery is at least once: a leader that dies after running the handler and before its
// command commits leaves the alarm set, and the next leader fires it again (with the same
// RetryCount). An alarm never fires before its time by the firing node's clock.
type Alarmer interface {
	Alarm(ctx *Context, info AlarmInfo) error
}

// AlarmInfo describes one firing of an alarm.
type AlarmInfo struct {
	// RetryCount is how many earlier firings of this alarm failed (returned an error or
	// panicked): 0 on the first attempt, up to MaxAlarmRetries.
	RetryCount int
	// IsRetry is RetryCount > 0.
	IsRetry bool
	// Scheduled is the time the alarm was set for (for a retry: the retry's time).
	Scheduled time.Time
}

// MaxAlarmRetries is how many times a failing alarm is retried before it is dropped.
const MaxAlarmRetries = 6

// Reserved storage keys. Keys beginning with reservedPrefix belong to the runtime: user
// code cannot read, write or list them (ErrInvalidKey), and DeleteAll removes them with
// everything else. They are ordinary replicated keys, so what they record survives a
// change of leader.
const (
	reservedPrefix = "\x00duro/"
	// alarmRetryKey holds the RetryCount of the next firing of the object's alarm while
	// it is being retried: one byte, a msgpack positive fixint 1..MaxAlarmRetries.
	alarmRetryKey = reservedPrefix + "alarm-retry"
	// alarmClassKey holds the class name (msgpack string) of an object whose ID passes
	// the checksum of more than one registered class. Written with the object's alarm
	// only then, so the scheduler, which finds objects by ID alone, can tell the class.
	alarmClassKey = reservedPrefix + "alarm-class"
)

func isReserved(key string) bool { return strings.HasPrefix(key, reservedPrefix) }

// errNoAlarmDue is how an alarm event that found nothing due is answered: the alarm was
// deleted, moved later, or already fired since the scheduler loaded it.
var errNoAlarmDue = errors.New("objects: no alarm due")

// encodeRetry and decodeRetry are the format of alarmRetryKey.
func encodeRetry(n int) []byte {
	if n < 1 || n > MaxAlarmRetries {
		panic(fmt.Sprintf("objects: invariant violated: alarm retry count %d outside 1..%d", n, MaxAlarmRetries))
	}
	return []byte{byte(n)}
}

// decodeRetry reads a stored retry count. The bytes come from disk: anything malformed is
// an error, never a panic.
func decodeRetry(b []byte) (int, error) {
	if len(b) != 1 || b[0] < 1 || b[0] > MaxAlarmRetries {
		return 0, fmt.Errorf("%w: alarm retry count %x", ErrDecode, b)
	}
	return int(b[0]), nil
}

// encodeClass and decodeClass are the format of alarmClassKey.
func encodeClass(name string) []byte {
	b, err := marshal(name)
	if err != nil {
		panic(fmt.Sprintf("objects: msgpack cannot encode a string: %v", err))
	}
	return b
}

func decodeClass(b []byte) (string, error) {
	var s string
	if err := unmarshal(b, &s, false); err != nil {
		return "", fmt.Errorf("%w: alarm class: %v", ErrDecode, err)
	}
	return s, nil
}

// retryDelay is the delay before retry n (1-based): AlarmRetryDelay·2^(n-1).
func (r *Runtime) retryDelay(n int) time.Duration {
	return r.opts.AlarmRetryDelay << (n - 1)
}

// fireAlarm runs an alarm event on the executor (invariant 1: it is one more event
// through the input gate). Its command carries the handler's writes and the alarm's
// clearing (or its retry), all or nothing (invariant 2).
func (in *instance) fireAlarm(ev *event) {
	now := in.rt.opts.Now()
	st := newStorage(in.group, in.id[:], in.inflight)
	defer func() { st.closed = true }()

	// The view decides, not what the scheduler loaded: the alarm may have been moved,
	// deleted or fired since. The command's Time is now, so the log also records that it
	// did not fire early.
	at, ok, err := st.GetAlarm()
	if err != nil {
		in.enqueueRead(ev, nil, err)
		return
	}
	if !ok || at.UnixNano() > now.UnixNano() {
		in.enqueueRead(ev, nil, errNoAlarmDue)
		return
	}
	retries := 0
	raw, hasRetry, err := st.get(alarmRetryKey)
	if err != nil {
		in.enqueueRead(ev, nil, err)
		return
	}
	if hasRetry {
		if retries, err = decodeRetry(raw); err != nil {
			in.rt.log.Error("objects: unreadable alarm retry count; treated as a first attempt",
				"class", in.cls.name, "id", in.id.String(), "err", err)
			retries = 0
		}
	}

	// Clearing first: the handler sees no alarm, and whatever it sets replaces this.
	w := st.stack[0]
	w.alarm = alarmWrite{kind: alarmDelete}
	if hasRetry {
		w.put(alarmRetryKey, write{del: true})
	}
	if !in.cls.hasAlarm {
		in.rt.log.Warn("objects: alarm fired on a class without an Alarm handler; dropped",
			"class", in.cls.name, "id", in.id.String())
		in.proposeAlarm(ev, w, now)
		return
	}

	herr := in.activateErr(ev)
	if herr == nil {
		in.rt.alarmsFired.Add(1)
		info := AlarmInfo{RetryCount: retries, IsRetry: retries > 0, Scheduled: at}
		ctx := in.newContext(ev, st, now)
		_, herr = in.protect(ev, "Alarm", func() ([]byte, error) {
			if err := in.obj.(Alarmer).Alarm(ctx, info); err != nil {
				return nil, &HandlerError{Message: err.Error(), err: err}
			}
			return nil, nil
		})
	}
	if herr == nil {
		in.proposeAlarm(ev, w, now)
		return
	}

	// Failed: the handler's writes are discarded, and one command records the retry, so
	// that a new leader resumes it with the right RetryCount.
	r := newLayer()
	if retries >= MaxAlarmRetries {
		in.rt.alarmsDropped.Add(1)
		in.rt.log.Error("objects: alarm failed after the last retry; dropped",
			"class", in.cls.name, "id", in.id.String(), "retries", retries, "err", herr)
		r.alarm = alarmWrite{kind: alarmDelete}
		if hasRetry {
			r.put(alarmRetryKey, write{del: true})
		}
	} else {
		next := retries + 1
		delay := in.rt.retryDelay(next)
		in.rt.alarmRetries.Add(1)
		in.rt.log.Warn("objects: alarm failed; will retry",
			"class", in.cls.name, "id", in.id.String(), "retry", next, "in", delay, "err", herr)
		r.alarm = alarmWrite{kind: alarmSet, at: now.Add(delay).UnixNano()}
		r.put(alarmRetryKey, write{val: encodeRetry(next)})
	}
	in.proposeAlarm(ev, r, now)
}

func (in *instance) proposeAlarm(ev *event, w *layer, now time.Time) {
	if err := in.propose(ev, w, nil, now); err != nil {
		in.enqueueRead(ev, nil, err)
	}
}

// ambiguousClass reports whether the object's ID passes the checksum of another
// registered class as well as its own; computed once per instance.
func (in *instance) ambiguousClass() bool {
	if in.ambiguity == 0 {
		in.ambiguity = 1
		if len(in.rt.reg.classesOf(in.id)) > 1 {
			in.ambiguity = 2
		}
	}
	return in.ambiguity == 2
}

// classesOf returns the registered classes whose checksum id passes. One class is the
// rule; two happen with probability about 2⁻³² per other class, since the checksum is 32
// bits of a hash of (class, ID body).
func (r *Registry) classesOf(id objid.ID) []*class {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*class
	for _, c := range r.classes {
		if id.Check(c.name) == nil {
			out = append(out, c)
		}
	}
	return out
}
