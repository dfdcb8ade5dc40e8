package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/duro-db/duro/objects"
)

// TaskQueue is a work queue with leases: producers Push tasks, workers Claim the oldest
// one for a while (the lease) and report it Done. A task whose lease runs out before Done
// goes to the next worker that claims, so a crashed worker delays its task but does not
// lose it.
//
// Each TaskQueue object is one queue; its name (or ID) tells queues apart. All state is in
// Storage, laid out so that the two questions Claim asks are answered by listing a prefix
// with Limit 1:
//
//	next                 the last ID handed out (IDs start at 1)
//	task/<id>            a Task, whatever its state
//	pending/<id>         a pending task, keyed in ID order: the oldest comes first
//	lease/<until>/<id>   a claimed task, keyed by lease expiry: the first to expire first
//
// <id> and <until> (unix milliseconds) are zero-padded to 20 digits so that byte order,
// which List follows, is numeric order.
type TaskQueue struct{}

// Task states.
const (
	StatePending = "pending"
	StateClaimed = "claimed"
	StateDone    = "done"
)

// Limits of TaskQueue.
const (
	MaxTitle        = 200 // bytes
	MaxPushMany     = 32  // titles in one PushMany: each writes 3 keys of one call's budget
	DefaultLease    = 30 * time.Second
	MaxLease        = time.Hour
	DefaultListSize = 100
	MaxListSize     = 1000
)

// Task is one unit of work.
type Task struct {
	ID     uint64 `json:"id"`
	Title  string `json:"title"`
	State  string `json:"state"`
	Worker string `json:"worker,omitempty"` // who claimed it last
	// LeaseUntil is when the current claim runs out, in unix milliseconds (claimed only).
	LeaseUntil int64 `json:"lease_until,omitempty"`
	// Claims counts how often the task was handed out: more than 1 after a lease ran out.
	Claims int `json:"claims"`
}

// PushArgs are the arguments of Push.
type PushArgs struct {
	Title string `json:"title"`
}

// PushManyArgs are the arguments of PushMany.
type PushManyArgs struct {
	Titles []string `json:"titles"`
}

// PushManyResult lists the tasks queued and the titles refused, with the reason.
type PushManyResult struct {
	Pushed   []Task            `json:"pushed"`
	Rejected map[string]string `json:"rejected,omitempty"`
}

// ClaimArgs are the arguments of Claim. LeaseMs 0 means DefaultLease.
type ClaimArgs struct {
	Worker  string `json:"worker"`
	LeaseMs int64  `json:"lease_ms"`
}

// ClaimResult holds the claimed task, or nil when there is nothing to do.
type ClaimResult struct {
	Task *Task `json:"task"`
}

// DoneArgs are the arguments of Done: the worker must be the task's current claimant.
type DoneArgs struct {
	ID     uint64 `json:"id"`
	Worker string `json:"worker"`
}

// ListArgs select tasks in ID order: those in State ("" for all), at most Limit.
type ListArgs struct {
	State string `json:"state"`
	Limit int    `json:"limit"`
}

// ListResult holds tasks in ID order.
type ListResult struct {
	Tasks []Task `json:"tasks"`
}

func idKey(prefix string, id uint64) string { return fmt.Sprintf("%s%020d", prefix, id) }

func leaseKey(until int64, id uint64) string { return fmt.Sprintf("lease/%020d/%020d", until, id) }

// keyNumber returns the number in field i of a key made by idKey or leaseKey (fields are
// separated by '/'; field 0 is the prefix's name).
func keyNumber(key string, i int) (uint64, error) {
	fields := strings.Split(key, "/")
	if i >= len(fields) {
		return 0, fmt.Errorf("corrupt index key %q", key)
	}
	n, err := strconv.ParseUint(fields[i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("corrupt index key %q: %w", key, err)
	}
	return n, nil
}

// Push queues a task.
func (*TaskQueue) Push(ctx *objects.Context, in PushArgs) (Task, error) {
	return push(ctx.Storage(), in.Title)
}

// PushMany queues several tasks, each all-or-nothing: a title that is refused leaves no
// trace (not even a used ID) and the others are still queued.
func (*TaskQueue) PushMany(ctx *objects.Context, in PushManyArgs) (PushManyResult, error) {
	if len(in.Titles) > MaxPushMany {
		return PushManyResult{}, fmt.Errorf("at most %d titles at once, got %d", MaxPushMany, len(in.Titles))
	}
	var out PushManyResult
	st := ctx.Storage()
	for _, title := range in.Titles {
		// push writes the counter before it validates; the Transaction undoes that write
		// when the title is refused, while the call as a whole still succeeds.
		var t Task
		err := st.Transaction(func(st *objects.Storage) error {
			var err error
			t, err = push(st, title)
			return err
		})
		if err != nil {
			if out.Rejected == nil {
				out.Rejected = map[string]string{}
			}
			out.Rejected[title] = err.Error()
			continue
		}
		out.Pushed = append(out.Pushed, t)
	}
	return out, nil
}

// push allocates the next ID and stores a pending task under it.
func push(st *objects.Storage, title string) (Task, error) {
	last, _, err := objects.GetAs[uint64](st, "next")
	if err != nil {
		return Task{}, err
	}
	t := Task{ID: last + 1, Title: title, State: StatePending}
	if err := st.Put("next", t.ID); err != nil {
		return Task{}, err
	}
	if err := checkTitle(title); err != nil {
		return Task{}, err
	}
	return t, st.PutMany(map[string]any{idKey("task/", t.ID): t, idKey("pending/", t.ID): t.ID})
}

func checkTitle(title string) error {
	switch {
	case strings.TrimSpace(title) == "":
		return errors.New("empty title")
	case len(title) > MaxTitle:
		return fmt.Errorf("title longer than %d bytes", MaxTitle)
	case !utf8.ValidString(title):
		return errors.New("title is not UTF-8")
	}
	return nil
}

// Claim hands the caller a task for the lease: the one whose lease ran out first, if any
// did, else the oldest pending one. The lease is judged by the clock of the node running
// the object (Context.Now), so it is only as accurate as the nodes' clocks agree.
func (*TaskQueue) Claim(ctx *objects.Context, in ClaimArgs) (ClaimResult, error) {
	if in.Worker == "" {
		return ClaimResult{}, errors.New("worker is required")
	}
	lease := time.Duration(in.LeaseMs) * time.Millisecond
	switch {
	case lease == 0:
		lease = DefaultLease
	case lease < 0 || lease > MaxLease:
		return ClaimResult{}, fmt.Errorf("lease_ms must be 0..%d", MaxLease.Milliseconds())
	}
	st := ctx.Storage()
	now := ctx.Now()

	var from string // the index key the task leaves
	expired, err := objects.ListAs[uint64](st, objects.ListOptions{Prefix: "lease/", Limit: 1})
	if err != nil {
		return ClaimResult{}, err
	}
	if len(expired) == 1 {
		until, err := keyNumber(expired[0].Key, 1)
		if err != nil {
			return ClaimResult{}, err
		}
		if int64(until) <= now.UnixMilli() {
			from = expired[0].Key
		}
	}
	if from == "" {
		pending, err := st.List(objects.ListOptions{Prefix: "pending/", Limit: 1})
		if err != nil {
			return ClaimResult{}, err
		}
		if len(pending) == 0 {
			return ClaimResult{}, nil
		}
		from = pending[0].Key
	}
	id, err := keyNumber(from, strings.Count(from, "/"))
	if err != nil {
		return ClaimResult{}, err
	}
	t, ok, err := objects.GetAs[Task](st, idKey("task/", id))
	if err != nil {
		return ClaimResult{}, err
	}
	if !ok {
		return ClaimResult{}, fmt.Errorf("index key %q names a missing task", from)
	}
	t.State, t.Worker, t.Claims = StateClaimed, in.Worker, t.Claims+1
	t.LeaseUntil = now.Add(lease).UnixMilli()
	if _, err := st.Delete(from); err != nil {
		return ClaimResult{}, err
	}
	err = st.PutMany(map[string]any{idKey("task/", id): t, leaseKey(t.LeaseUntil, id): id})
	return ClaimResult{Task: &t}, err
}

// Done marks a claimed task done. Only its claimant may, and only while nobody else has
// claimed it since; a lease that ran out but was not yet handed on still counts.
func (*TaskQueue) Done(ctx *objects.Context, in DoneArgs) (Task, error) {
	st := ctx.Storage()
	t, ok, err := objects.GetAs[Task](st, idKey("task/", in.ID))
	switch {
	case err != nil:
		return Task{}, err
	case !ok:
		return Task{}, fmt.Errorf("no task %d", in.ID)
	case t.State != StateClaimed:
		return Task{}, fmt.Errorf("task %d is %s", in.ID, t.State)
	case t.Worker != in.Worker:
		return Task{}, fmt.Errorf("task %d is claimed by %s", in.ID, t.Worker)
	}
	if _, err := st.Delete(leaseKey(t.LeaseUntil, t.ID)); err != nil {
		return Task{}, err
	}
	t.State, t.LeaseUntil = StateDone, 0
	return t, st.Put(idKey("task/", t.ID), t)
}

// List returns tasks in ID order.
func (*TaskQueue) List(ctx *objects.Context, in ListArgs) (ListResult, error) {
	switch in.State {
	case "", StatePending, StateClaimed, StateDone:
	default:
		return ListResult{}, fmt.Errorf("unknown state %q", in.State)
	}
	switch {
	case in.Limit < 0 || in.Limit > MaxListSize:
		return ListResult{}, fmt.Errorf("limit must be 0..%d", MaxListSize)
	case in.Limit == 0:
		in.Limit = DefaultListSize
	}
	out := ListResult{Tasks: []Task{}}
	// A page at a time, so a filtered listing does not read the whole queue at once.
	o := objects.ListOptions{Prefix: "task/", Limit: max(in.Limit, DefaultListSize)}
	for {
		page, err := objects.ListAs[Task](ctx.Storage(), o)
		if err != nil {
			return ListResult{}, err
		}
		for _, e := range page {
			if in.State == "" || e.Value.State == in.State {
				out.Tasks = append(out.Tasks, e.Value)
				if len(out.Tasks) == in.Limit {
					return out, nil
				}
			}
		}
		if len(page) < o.Limit {
			return out, nil
		}
		o.StartAfter = page[len(page)-1].Key
	}
}

// taskQueueMethods are the methods a TaskQueue answers.
func taskQueueMethods() []objects.MethodDef[TaskQueue] {
	return []objects.MethodDef[TaskQueue]{
		objects.Method("Push", (*TaskQueue).Push),
		objects.Method("PushMany", (*TaskQueue).PushMany),
		objects.Method("Claim", (*TaskQueue).Claim),
		objects.Method("Done", (*TaskQueue).Done),
		objects.Method("List", (*TaskQueue).List),
	}
}

// Registering in init makes the class part of the program, as it would be in a user's own
// binary: every node must serve the same classes.
func init() {
	objects.Register("TaskQueue", func() *TaskQueue { return new(TaskQueue) }, taskQueueMethods()...)
}
