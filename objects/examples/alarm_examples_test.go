package examples

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/testutil"
	"github.com/duro-db/duro/objects"
)

// alarmGroup is syncGroup that also lets the runtime fire its alarms (objects.AlarmGroups).
type alarmGroup struct{ *syncGroup }

func (g alarmGroup) ServingGroups() []objects.Group { return []objects.Group{g.syncGroup} }

// newAlarmEnv is newEnv with the alarm examples registered, alarms fired, and the real
// clock (alarms wait on real timers).
func newAlarmEnv(t *testing.T) *env {
	t.Helper()
	st, err := fsm.Open(filepath.Join(t.TempDir(), "fsm.db"), fsm.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	reg := objects.NewRegistry()
	RegisterAlarmExamples(reg)
	rt := objects.NewRuntime(reg, alarmGroup{&syncGroup{store: st}}, objects.Options{AlarmPoll: 5 * time.Millisecond})
	t.Cleanup(func() {
		rt.Close()
		_ = st.Close()
	})
	return &env{t: t, rt: rt}
}

func TestSession(t *testing.T) {
	t.Parallel()
	e := newAlarmEnv(t)
	const ttl = 150 * time.Millisecond
	if err := e.call("Session", "s", "Get", "k", nil); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Get before Start: %v, want ErrNoSession", err)
	}
	var info SessionInfo
	e.must("Session", "s", "Start", SessionStartArgs{TTLms: ttl.Milliseconds()}, &info)
	e.must("Session", "s", "Put", SessionPutArgs{Key: "user", Value: "ada"}, &info)

	// Calls keep it alive past several TTLs.
	start := time.Now()
	var last time.Time // when the last renewing call started
	for time.Since(start) < 3*ttl {
		var v string
		last = time.Now()
		e.must("Session", "s", "Get", "user", &v)
		if v != "ada" {
			t.Fatalf("Get = %q while the session is renewed", v)
		}
		time.Sleep(ttl / 5) // the client's pace, well within the TTL
	}
	// Silence: it expires, and everything in it is gone.
	testutil.WaitFor(t, waitLimit, "the session to expire", func() bool {
		return errors.Is(e.call("Session", "s", "Info", nil, nil), ErrNoSession)
	})
	if gone := time.Since(last); gone < ttl {
		t.Errorf("expired %v after the last call, TTL %v", gone, ttl)
	}
	e.must("Session", "s", "Start", SessionStartArgs{TTLms: 60_000}, nil)
	var v string
	e.must("Session", "s", "Get", "user", &v)
	if v != "" {
		t.Errorf("a restarted session still has %q", v)
	}
}

func TestBatcher(t *testing.T) {
	t.Parallel()
	e := newAlarmEnv(t)
	e.must("Batcher", "b", "Configure", BatcherConfig{MaxItems: 3, FlushAfterMs: 100}, nil)
	// Full batch: flushed by the call that fills it.
	for _, it := range []string{"a", "b", "c"} {
		e.must("Batcher", "b", "Add", it, nil)
	}
	// Partial batch: flushed by the alarm.
	added := time.Now()
	e.must("Batcher", "b", "Add", "d", nil)
	e.must("Batcher", "b", "Add", "e", nil)
	var got []Batch
	testutil.WaitFor(t, waitLimit, "the timed flush", func() bool {
		e.must("Batcher", "b", "Batches", uint64(0), &got)
		return len(got) == 2
	})
	if len(got[0].Items) != 3 || got[0].ByAlarm || got[0].Seq != 1 {
		t.Errorf("first batch %+v, want a, b, c flushed by Add", got[0])
	}
	if g := got[1]; g.Seq != 2 || !g.ByAlarm || len(g.Items) != 2 || g.Items[0] != "d" || g.Items[1] != "e" {
		t.Errorf("second batch %+v, want d, e flushed by the alarm", g)
	}
	if wait := time.Unix(0, got[1].Flushed).Sub(added); wait < 100*time.Millisecond {
		t.Errorf("timed flush after %v, want >= 100ms", wait)
	}
	if err := e.call("Batcher", "b", "Configure", BatcherConfig{}, nil); err == nil {
		t.Error("Configure accepted zero thresholds")
	}
}

// waitLimit bounds every wait for a state in this package's tests (testutil.WaitFor).
const waitLimit = 10 * time.Second
