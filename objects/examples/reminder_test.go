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

// newReminderEnv is newAlarmEnv with every example class and a short retry delay, so
// failing deliveries are retried within the test's time.
func newReminderEnv(t *testing.T, retry time.Duration) *env {
	t.Helper()
	st, err := fsm.Open(filepath.Join(t.TempDir(), "fsm.db"), fsm.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	reg := objects.NewRegistry()
	RegisterAll(reg)
	rt := objects.NewRuntime(reg, alarmGroup{&syncGroup{store: st}},
		objects.Options{AlarmPoll: 5 * time.Millisecond, AlarmRetryDelay: retry})
	t.Cleanup(func() {
		rt.Close()
		_ = st.Close()
	})
	return &env{t: t, rt: rt}
}

func TestReminderDelivery(t *testing.T) {
	t.Parallel()
	const retry = 20 * time.Millisecond
	e := newReminderEnv(t, retry)
	tests := []struct {
		name      string
		in        time.Duration // At, from now
		failFirst int
	}{
		{"on time", 100 * time.Millisecond, 0},
		{"in the past", -time.Second, 0},
		{"one failure", 50 * time.Millisecond, 1},
		{"two failures", 50 * time.Millisecond, 2},
	}
	for _, tt := range tests {
		at := time.Now().Add(tt.in).UnixMilli()
		var st ReminderState
		e.must("Reminder", tt.name, "Schedule", ReminderSchedule{At: at, FailFirst: tt.failFirst}, &st)
		if !st.Pending || st.Schedule.At != at || len(st.Attempts) != 0 {
			t.Fatalf("%s: Schedule returned %+v", tt.name, st)
		}
	}
	for _, tt := range tests {
		var st ReminderState
		testutil.WaitFor(t, waitLimit, tt.name+" delivered", func() bool {
			e.must("Reminder", tt.name, "Read", nil, &st)
			return !st.Pending
		})
		if len(st.Attempts) != 1 {
			t.Fatalf("%s: %d deliveries, want 1: %+v", tt.name, len(st.Attempts), st)
		}
		a := st.Attempts[0]
		if a.Scheduled != st.Schedule.At || a.RetryCount != tt.failFirst {
			t.Errorf("%s: delivery %+v, want Scheduled %d and RetryCount %d", tt.name, a, st.Schedule.At, tt.failFirst)
		}
		// Retry n waits retry·2^(n-1) after the failure before it.
		minLate := int64(0)
		for n := 1; n <= tt.failFirst; n++ {
			minLate += (retry << (n - 1)).Milliseconds()
		}
		if late := a.FiredAt - a.Scheduled; late < minLate {
			t.Errorf("%s: delivered %d ms after its time, want >= %d ms (never early, retries after their delay)", tt.name, late, minLate)
		}
	}
}

func TestReminderReschedule(t *testing.T) {
	t.Parallel()
	e := newReminderEnv(t, 0)
	far := time.Now().Add(time.Hour).UnixMilli()
	e.must("Reminder", "r", "Schedule", ReminderSchedule{At: far}, nil)
	soon := time.Now().Add(20 * time.Millisecond).UnixMilli()
	e.must("Reminder", "r", "Schedule", ReminderSchedule{At: soon}, nil)
	var st ReminderState
	testutil.WaitFor(t, waitLimit, "the replacing reminder", func() bool {
		e.must("Reminder", "r", "Read", nil, &st)
		return !st.Pending
	})
	if len(st.Attempts) != 1 || st.Attempts[0].Scheduled != soon {
		t.Fatalf("deliveries %+v, want one of the replacing schedule (%d)", st.Attempts, soon)
	}

	var he *objects.HandlerError
	for _, ff := range []int{-1, objects.MaxAlarmRetries + 1} {
		if err := e.call("Reminder", "r", "Schedule", ReminderSchedule{At: soon, FailFirst: ff}, nil); !errors.As(err, &he) {
			t.Errorf("FailFirst %d: %v, want a HandlerError", ff, err)
		}
	}
}
