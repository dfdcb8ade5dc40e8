package examples

import (
	"errors"
	"fmt"
	"time"

	"github.com/duro-db/duro/objects"
)

// Reminder delivers one reminder at a time the user chose, at least once and never early,
// whichever node leads the object when it is due. Delivery stands in for a webhook call:
// Schedule's FailFirst makes the first deliveries fail, as a flaky endpoint would, so the
// runtime's retries (AlarmRetryDelay, doubling) can be seen at work. The Jepsen harness's
// alarms workload and the alarm fault tests are built on it.
//
// Only a delivery that succeeds is recorded: a failed Alarm writes nothing (the Alarmer
// contract), so the record of a failure is the RetryCount of the delivery that followed.
type Reminder struct{}

// ReminderSchedule are the arguments of Reminder.Schedule and what it records.
type ReminderSchedule struct {
	At int64 `json:"at"` // unix milliseconds; a time in the past is delivered at once
	// FailFirst makes the first FailFirst deliveries fail (0..objects.MaxAlarmRetries).
	FailFirst int `json:"fail_first,omitempty"`
}

// ReminderAttempt is one successful delivery.
type ReminderAttempt struct {
	Scheduled  int64 `json:"scheduled"`   // the At of the schedule it delivered, unix ms
	FiredAt    int64 `json:"fired_at"`    // the delivering node's Context.Now, unix ms
	RetryCount int   `json:"retry_count"` // failed deliveries before this one
}

// ReminderState is what Reminder.Read returns.
type ReminderState struct {
	Schedule ReminderSchedule  `json:"schedule"` // the latest schedule; zero if never scheduled
	Pending  bool              `json:"pending"`  // Schedule's reminder is not delivered yet
	Attempts []ReminderAttempt `json:"attempts"` // successful deliveries, oldest first
}

// MaxReminderAttempts bounds the deliveries a Reminder keeps; older ones are dropped.
const MaxReminderAttempts = 64

// ErrDeliveryFailed is what a delivery told to fail (FailFirst) returns.
var ErrDeliveryFailed = errors.New("reminder: delivery failed")

// Reminder's storage: one key, "state", a ReminderState, so that a pending reminder costs
// one small key beside its alarm.
const reminderState = "state"

// Schedule sets the reminder, replacing one still pending (whose delivery then never
// happens), and returns the state after it.
func (*Reminder) Schedule(ctx *objects.Context, in ReminderSchedule) (ReminderState, error) {
	if in.FailFirst < 0 || in.FailFirst > objects.MaxAlarmRetries {
		// More failures than retries would drop the reminder undelivered.
		return ReminderState{}, fmt.Errorf("fail_first must be 0..%d", objects.MaxAlarmRetries)
	}
	st, _, err := objects.GetAs[ReminderState](ctx.Storage(), reminderState)
	if err != nil {
		return ReminderState{}, err
	}
	st.Schedule, st.Pending = in, true
	if err := ctx.Storage().Put(reminderState, st); err != nil {
		return ReminderState{}, err
	}
	return st, ctx.Storage().SetAlarm(time.UnixMilli(in.At))
}

// Read returns the schedule and the deliveries.
func (*Reminder) Read(ctx *objects.Context, _ struct{}) (ReminderState, error) {
	st, _, err := objects.GetAs[ReminderState](ctx.Storage(), reminderState)
	return st, err
}

// Alarm delivers the reminder: it fails while info.RetryCount < FailFirst, and otherwise
// records the delivery.
func (*Reminder) Alarm(ctx *objects.Context, info objects.AlarmInfo) error {
	st, ok, err := objects.GetAs[ReminderState](ctx.Storage(), reminderState)
	if err != nil {
		return err
	}
	if !ok || !st.Pending {
		return nil // nothing to deliver; the alarm is cleared
	}
	if info.RetryCount < st.Schedule.FailFirst {
		return fmt.Errorf("%w: attempt %d of the %d told to fail", ErrDeliveryFailed, info.RetryCount+1, st.Schedule.FailFirst)
	}
	st.Pending = false
	st.Attempts = append(st.Attempts, ReminderAttempt{
		Scheduled: st.Schedule.At, FiredAt: ctx.Now().UnixMilli(), RetryCount: info.RetryCount,
	})
	if n := len(st.Attempts); n > MaxReminderAttempts {
		st.Attempts = st.Attempts[n-MaxReminderAttempts:]
	}
	return ctx.Storage().Put(reminderState, st)
}

func registerReminder(r *objects.Registry) {
	objects.RegisterIn(r, "Reminder", func() *Reminder { return new(Reminder) },
		objects.Method("Schedule", (*Reminder).Schedule),
		objects.Method("Read", (*Reminder).Read),
	)
}
