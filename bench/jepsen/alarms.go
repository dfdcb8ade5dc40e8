package jepsen

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/duro-db/duro/client"
	"github.com/duro-db/duro/objects"
	"github.com/duro-db/duro/objects/examples"
)

// ---- alarms: reminders scheduled a little ahead; each delivered, none early ----

// alarmsWorkload schedules Reminders (objects/examples) on fresh objects, each due
// 0.2–2 s ahead, one in alarmsFailEvery told to fail its first one or two deliveries,
// so faults land on alarms that are due, being fired, and being retried. The rules
// (CheckReminder): every acknowledged schedule is delivered at least once, by the end;
// no delivery is before its time; nothing is delivered that was not scheduled.
//
// The nodes' clocks are the machine's, so "before its time" compares the delivering
// node's Context.Now with the At the worker chose, in the same clock.
type alarmsWorkload struct {
	prefix string
}

const (
	// A reminder is due alarmsLeadMin plus up to alarmsLeadSpan from when it is scheduled.
	alarmsLeadMin, alarmsLeadSpan = 200 * time.Millisecond, 1800 * time.Millisecond
	// alarmsFailEvery: one schedule in this many has FailFirst 1 or 2.
	alarmsFailEvery = 8
	// alarmsFinalWait bounds how long Final waits for one reminder past its last retry.
	alarmsFinalWait = 30 * time.Second
	// alarmsFinalParallel is how many final reads run at once: a run schedules thousands
	// of reminders, each on its own object.
	alarmsFinalParallel = 32
)

func (*alarmsWorkload) Name() string { return "alarms" }

// retryBudget is the least time the runtime takes to reach the delivery that succeeds
// after failFirst failures, with the nodes' default retry delay (doubling).
func retryBudget(failFirst int) time.Duration {
	return objects.DefaultAlarmRetryDelay * time.Duration(1<<failFirst-1)
}

func (a *alarmsWorkload) Step(ctx context.Context, w *Worker) {
	if w.seq > 0 && w.Rng.IntN(10) < 2 {
		// Read back one of this worker's reminders: a delivery seen mid-run must be on
		// time as well.
		name := fmt.Sprintf("%sreminder-%d-%d", a.prefix, w.ID, 1+w.Rng.Int64N(w.seq))
		a.read(ctx, w, name, false, nil)
		return
	}
	name := a.prefix + "reminder-" + w.unique()
	in := examples.ReminderSchedule{At: time.Now().Add(alarmsLeadMin + time.Duration(w.Rng.Int64N(int64(alarmsLeadSpan)))).UnixMilli()}
	if w.Rng.IntN(alarmsFailEvery) == 0 {
		in.FailFirst = 1 + w.Rng.IntN(2)
	}
	stub := w.Client.Namespace("Reminder").GetByName(name)
	w.do(ctx, "alarms", name, "schedule", in, false, false, func(ctx context.Context) (any, error) {
		return client.Call[examples.ReminderState](ctx, stub, "Schedule", in)
	})
}

// read reads a reminder once, or, given the schedule it waits for, polls until that
// schedule is delivered or the operation's timeout is about to pass: a final read must
// not judge a reminder whose retries are still due.
func (a *alarmsWorkload) read(ctx context.Context, w *Worker, name string, final bool, wait *examples.ReminderSchedule) Op {
	stub := w.Client.Namespace("Reminder").GetByName(name)
	return w.do(ctx, "alarms", name, "read", nil, true, final, func(ctx context.Context) (any, error) {
		deadline, _ := ctx.Deadline()
		for {
			st, err := client.Call[examples.ReminderState](ctx, stub, "Read", nil)
			if err != nil || wait == nil || st.Schedule.At != wait.At || !st.Pending ||
				time.Until(deadline) < time.Second {
				return st, err
			}
			t := time.NewTimer(50 * time.Millisecond) // polling interval
			select {
			case <-ctx.Done():
				t.Stop()
				return st, nil
			case <-t.C:
			}
		}
	})
}

// Final waits until every schedule the history holds is due and past its retries, then
// reads each reminder until it is delivered (or alarmsFinalWait passes).
func (a *alarmsWorkload) Final(ctx context.Context, w *Worker) {
	type sched struct {
		name string
		in   examples.ReminderSchedule
	}
	var all []sched
	var last time.Time
	for _, op := range w.History.Ops() {
		if op.Workload != "alarms" || op.F != "schedule" || op.Status == StatusFail {
			continue
		}
		var in examples.ReminderSchedule
		if err := json.Unmarshal(op.Input, &in); err != nil {
			continue // Check reports it
		}
		all = append(all, sched{op.Object, in})
		if due := time.UnixMilli(in.At).Add(retryBudget(in.FailFirst)); due.After(last) {
			last = due
		}
	}
	if wait := time.Until(last); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	timeout := w.OpTimeout
	w.OpTimeout = alarmsFinalWait
	defer func() { w.OpTimeout = timeout }()
	work := make(chan sched)
	var wg sync.WaitGroup
	for range alarmsFinalParallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				a.read(ctx, w, s.name, true, &s.in)
			}
		}()
	}
	for _, s := range all {
		work <- s
	}
	close(work)
	wg.Wait()
}

func (a *alarmsWorkload) Check(ops []Op, _ string) []ObjectResult {
	names, groups := byObject(ops)
	var out []ObjectResult
	for _, name := range names {
		res := ObjectResult{Workload: "alarms", Object: name, Ops: len(groups[name])}
		res.Problems = CheckReminder(groups[name])
		out = append(out, res.settle())
	}
	return out
}

// CheckReminder checks one Reminder's history: no read shows a delivery before its time
// or of a time no one scheduled, and the final read shows a delivery of an acknowledged
// schedule, after exactly FailFirst failures (the retry count survives leader changes).
func CheckReminder(ops []Op) []string {
	var problems []string
	scheduled := map[int64]Op{} // At → the schedule op (ok or unknown)
	for _, op := range ops {
		if op.F != "schedule" || op.Status == StatusFail {
			continue
		}
		var in examples.ReminderSchedule
		if err := json.Unmarshal(op.Input, &in); err != nil {
			problems = append(problems, fmt.Sprintf("op %d: undecodable schedule %s", op.Index, op.Input))
			continue
		}
		scheduled[in.At] = op
	}
	sawFinal := false
	for _, op := range ops {
		if op.F != "read" || op.Status != StatusOK {
			continue
		}
		var st examples.ReminderState
		if err := json.Unmarshal(op.Output, &st); err != nil {
			problems = append(problems, fmt.Sprintf("op %d: undecodable read %s", op.Index, op.Output))
			continue
		}
		for _, at := range st.Attempts {
			if _, ok := scheduled[at.Scheduled]; !ok {
				problems = append(problems, fmt.Sprintf("op %d: delivery of a reminder at %s that no one scheduled", op.Index, ms(at.Scheduled)))
			}
			if at.FiredAt < at.Scheduled {
				problems = append(problems, fmt.Sprintf("op %d: delivered EARLY: scheduled %s, fired %s (%d ms early)",
					op.Index, ms(at.Scheduled), ms(at.FiredAt), at.Scheduled-at.FiredAt))
			}
		}
		if !op.Final {
			continue
		}
		sawFinal = true
		for at, s := range scheduled {
			if s.Status != StatusOK {
				continue // may never have happened
			}
			var in examples.ReminderSchedule
			_ = json.Unmarshal(s.Input, &in)
			found := false
			for _, d := range st.Attempts {
				if d.Scheduled != at {
					continue
				}
				found = true
				if d.RetryCount != in.FailFirst {
					problems = append(problems, fmt.Sprintf("final read: the reminder at %s was delivered after %d failures, want %d (fail_first)",
						ms(at), d.RetryCount, in.FailFirst))
				}
			}
			if !found {
				problems = append(problems, fmt.Sprintf("final read (op %d, %v after the run began): acknowledged reminder at %s (op %d) LOST: never delivered (pending %v)",
					op.Index, op.Return.Round(time.Millisecond), ms(at), s.Index, st.Pending))
			}
		}
	}
	if !sawFinal && len(scheduled) > 0 {
		problems = append(problems, "no successful final read: cannot show the reminders were delivered")
	}
	return problems
}

// ms formats unix milliseconds for a problem report.
func ms(t int64) string { return time.UnixMilli(t).UTC().Format("15:04:05.000") }
