package jepsen

// Alarms on real `duro server` processes: alarms that are due, and one
// being retried, when their group's leader is SIGKILLed are each delivered by the next
// leader; none is lost, none early. And the alarms workload's checker.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duro-db/duro/client"
	"github.com/duro-db/duro/internal/testutil"
	"github.com/duro-db/duro/objects/examples"
)

func TestCheckReminder(t *testing.T) {
	const at = 1_800_000_000_000
	sched := func(i int, failFirst int, ret int) Op {
		return op(i, "schedule", examples.ReminderSchedule{At: at, FailFirst: failFirst}, examples.ReminderState{}, 0, ret)
	}
	read := func(i int, ds ...examples.ReminderAttempt) Op {
		return op(i, "read", nil, examples.ReminderState{Schedule: examples.ReminderSchedule{At: at}, Attempts: ds}, 10, 11)
	}
	d := func(scheduled, fired int64, retries int) examples.ReminderAttempt {
		return examples.ReminderAttempt{Scheduled: scheduled, FiredAt: fired, RetryCount: retries}
	}
	tests := []struct {
		name    string
		ops     []Op
		problem string // "" = none
	}{
		{"delivered", []Op{sched(0, 0, 1), final(read(1, d(at, at+3, 0)))}, ""},
		{"delivered after retries", []Op{sched(0, 2, 1), final(read(1, d(at, at+6000, 2)))}, ""},
		{"delivered twice (at least once)", []Op{sched(0, 0, 1), final(read(1, d(at, at, 0), d(at, at+1, 0)))}, ""},
		{"lost", []Op{sched(0, 0, 1), final(read(1))}, "LOST"},
		{"early", []Op{sched(0, 0, 1), final(read(1, d(at, at-1, 0)))}, "EARLY"},
		{"early mid-run", []Op{sched(0, 0, 1), read(1, d(at, at-5, 0)), final(read(2, d(at, at-5, 0)))}, "EARLY"},
		{"retry count lost", []Op{sched(0, 2, 1), final(read(1, d(at, at+6000, 1)))}, "after 1 failures, want 2"},
		{"invented", []Op{sched(0, 0, 1), final(read(1, d(at, at, 0), d(at+7, at+7, 0)))}, "no one scheduled"},
		{"unknown schedule need not be delivered", []Op{sched(0, 0, -1), final(read(1))}, ""},
		{"unknown schedule may be delivered", []Op{sched(0, 0, -1), final(read(1, d(at, at, 0)))}, ""},
		{"no final read", []Op{sched(0, 0, 1)}, "no successful final read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(CheckReminder(tt.ops), "\n")
			if tt.problem == "" && got != "" {
				t.Fatalf("problems %q, want none", got)
			}
			if !strings.Contains(got, tt.problem) || tt.problem != "" && got == "" {
				t.Fatalf("problems %q, want one containing %q", got, tt.problem)
			}
		})
	}
}

// FuzzCheckReminder: a history file is read back from disk; whatever its operations hold,
// the checker reports problems and never panics.
func FuzzCheckReminder(f *testing.F) {
	f.Add([]byte(`{"at":1800000000000,"fail_first":2}`), []byte(`{"schedule":{"at":1800000000000},"attempts":[{"scheduled":1800000000000,"fired_at":1800000000001,"retry_count":2}]}`))
	f.Add([]byte(`{"at":-1}`), []byte(`{"attempts":null}`))
	f.Add([]byte(`[`), []byte(`7`))
	f.Fuzz(func(t *testing.T, in, out []byte) {
		ops := []Op{
			{Index: 0, F: "schedule", Input: in, Status: StatusOK},
			{Index: 1, F: "read", Output: out, Status: StatusOK},
			{Index: 2, F: "read", Output: out, Status: StatusOK, Final: true},
		}
		_ = CheckReminder(ops)
	})
}

// namesInGroup returns n Reminder names that live in the same data group as the first.
func namesInGroup(c *Cluster, prefix string, n int) (names []string, gid uint64) {
	for i := 0; len(names) < n; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		g := c.GroupOf("Reminder", name)
		if len(names) == 0 {
			gid = g
		}
		if g == gid {
			names = append(names, name)
		}
	}
	return names, gid
}

func TestAlarmsSurviveSIGKILL(t *testing.T) {
	const (
		reminders = 100
		failing   = 6 // of them, told to fail twice: retried at +2 s and +6 s
	)
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	names, gid := namesInGroup(c, "sigkill", reminders)
	cl := dial(t, ctx, c.Endpoints())

	// Due between 1 and 4 s from now; the failing ones among the first due, so that their
	// first retry is pending when the leader dies.
	start := time.Now()
	first := start.Add(time.Second)
	want := make([]examples.ReminderSchedule, reminders)
	var wg sync.WaitGroup
	errs := make(chan error, reminders)
	for i, name := range names {
		want[i] = examples.ReminderSchedule{At: first.Add(time.Duration(i) * 3 * time.Second / reminders).UnixMilli()}
		if i < failing {
			want[i].FailFirst = 2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := client.Call[examples.ReminderState](ctx, cl.Namespace("Reminder").GetByName(name), "Schedule", want[i])
			if err != nil {
				errs <- fmt.Errorf("Schedule %s: %w", name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// A slow machine may take longer than that to schedule them: those then fire at once,
	// which is allowed; the end of the test checks the kill still found work pending.
	t.Logf("scheduled %d reminders in %v", reminders, time.Since(start).Round(time.Millisecond))

	// 1.5 s after the first due time: about half are due or delivered, the failing ones
	// wait for their first retry (due 2 s after their first failure).
	killAt := first.Add(1500 * time.Millisecond)
	testutil.WaitFor(t, 10*time.Second, "the time to kill the leader", func() bool { return !time.Now().Before(killAt) })
	leader, err := c.Leader(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	t.Logf("SIGKILLed %s, leader of group %d, %v after the first due time", c.Nodes[leader].ID, gid, killed.Sub(first).Round(time.Millisecond))
	// Read through the survivors first: the restarted node has to catch up.
	reader := dial(t, ctx, []string{c.Nodes[(leader+1)%3].Addr, c.Nodes[(leader+2)%3].Addr})
	if err := c.Start(leader); err != nil {
		t.Fatal(err)
	}

	states := make([]examples.ReminderState, reminders)
	testutil.WaitFor(t, 30*time.Second, "an attempt on every reminder", func() bool {
		for i, name := range names {
			if len(states[i].Attempts) > 0 {
				continue
			}
			st, err := client.Call[examples.ReminderState](ctx, reader.Namespace("Reminder").GetByName(name), "Read", nil)
			if err != nil {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Logf("Read %s: %v (retried)", name, err)
				}
				return false
			}
			states[i] = st
			if len(st.Attempts) == 0 {
				return false
			}
		}
		return true
	})

	var afterKill, retriedAfterKill int
	var maxLate time.Duration // of the reminders told not to fail
	for i, st := range states {
		w := want[i]
		if st.Schedule != w {
			t.Errorf("%s: schedule %+v, want %+v", names[i], st.Schedule, w)
		}
		for _, a := range st.Attempts {
			fired := time.UnixMilli(a.FiredAt)
			if a.FiredAt < w.At {
				t.Errorf("%s: delivered %d ms EARLY (scheduled %d, fired %d)", names[i], w.At-a.FiredAt, w.At, a.FiredAt)
			}
			if a.RetryCount != w.FailFirst {
				t.Errorf("%s: delivered after %d failures, want %d: the retry count did not survive", names[i], a.RetryCount, w.FailFirst)
			}
			if late := time.Duration(a.FiredAt-w.At) * time.Millisecond; w.FailFirst == 0 && late > maxLate {
				maxLate = late
			}
			if fired.After(killed) {
				afterKill++
				if w.FailFirst > 0 {
					retriedAfterKill++
				}
			}
		}
	}
	t.Logf("%d reminders delivered, none early, none lost; %d delivered after the kill, %d of them after two failed deliveries; latest first-time delivery %v after its time",
		reminders, afterKill, retriedAfterKill, maxLate)
	if afterKill == 0 || retriedAfterKill == 0 {
		t.Errorf("the kill landed when nothing was pending (%d delivered after it, %d retried): the test proved nothing",
			afterKill, retriedAfterKill)
	}
}
