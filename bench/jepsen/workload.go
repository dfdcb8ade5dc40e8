package jepsen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/duro-db/duro/client"
	"github.com/duro-db/duro/objects/examples"
)

// Workload is one kind of traffic and the rules its history must keep.
//
// Step and Final are called from many workers at once, each with its own Worker; Check
// is called once, after every worker has stopped, with the operations of this workload
// in index order.
type Workload interface {
	Name() string
	// Step performs one operation chosen with w.Rng and records it.
	Step(ctx context.Context, w *Worker)
	// Final reads every object of the workload once, after the faults are healed.
	Final(ctx context.Context, w *Worker)
	// Check judges the history, one result per object, and may write evidence (e.g. a
	// porcupine visualisation) under dir ("" writes nothing).
	Check(ops []Op, dir string) []ObjectResult
}

// Worker is one client process of the run: its own SDK client (so its own client ID and
// sequence numbers), its own random stream, and the history it records into.
type Worker struct {
	ID        int
	Client    *client.Client
	Rng       *rand.Rand
	History   *History
	OpTimeout time.Duration

	seq   int64             // for unique values
	local map[string]string // register: the last value this worker knows per object
}

// NewWorker returns a worker with its random stream derived from seed.
func NewWorker(id int, cl *client.Client, seed uint64, h *History, opTimeout time.Duration) *Worker {
	return &Worker{ID: id, Client: cl, Rng: rand.New(rand.NewPCG(seed, uint64(id)+1)), History: h,
		OpTimeout: opTimeout, local: map[string]string{}}
}

// do runs call as one operation and records it. Reads pass isRead so that an unknown
// outcome is recorded as a failure: a read that returned nothing has no effect to model.
func (w *Worker) do(ctx context.Context, workload, object, f string, input any, isRead, final bool,
	call func(ctx context.Context) (any, error)) Op {
	cctx, cancel := context.WithTimeout(ctx, w.OpTimeout)
	defer cancel()
	op := Op{Process: w.ID, Workload: workload, Object: object, F: f, Final: final, Call: w.History.Since()}
	if input != nil {
		op.Input = mustJSON(input)
	}
	out, err := call(cctx)
	op.Return = w.History.Since()
	switch {
	case err == nil:
		op.Status = StatusOK
		op.Output = mustJSON(out)
	case errors.Is(err, client.ErrUnknownOutcome) && !isRead:
		op.Status, op.Error = StatusInfo, err.Error()
	default:
		op.Status, op.Error = StatusFail, err.Error()
	}
	w.History.Add(op)
	return op
}

func (w *Worker) unique() string {
	w.seq++
	return fmt.Sprintf("%d-%d", w.ID, w.seq)
}

// NewWorkload returns the workload called name, spread over keys objects of a class
// (names prefixed by prefix so runs never share objects).
func NewWorkload(name, prefix string, keys int) (Workload, error) {
	if keys <= 0 {
		keys = 1
	}
	switch name {
	case "register":
		return &registerWorkload{prefix: prefix, keys: keys}, nil
	case "counter":
		return &counterWorkload{prefix: prefix, keys: keys}, nil
	case "set":
		return &setWorkload{prefix: prefix, keys: keys}, nil
	case "bank":
		return &bankWorkload{prefix: prefix, keys: keys}, nil
	case "alarms":
		return &alarmsWorkload{prefix: prefix}, nil // a fresh object per reminder: keys unused
	}
	return nil, fmt.Errorf("jepsen: unknown workload %q (register, counter, set, bank, alarms)", name)
}

// Workloads lists the names NewWorkload accepts.
var Workloads = []string{"register", "counter", "set", "bank", "alarms"}

func objectName(prefix, kind string, k int) string { return fmt.Sprintf("%s%s-%d", prefix, kind, k) }

func byObject(ops []Op) (names []string, groups map[string][]Op) {
	groups = map[string][]Op{}
	for _, op := range ops {
		if _, ok := groups[op.Object]; !ok {
			names = append(names, op.Object)
		}
		groups[op.Object] = append(groups[op.Object], op)
	}
	slices.Sort(names)
	return names, groups
}

// ---- register: read / write / compare-and-set, checked for linearizability ----

type registerWorkload struct {
	prefix string
	keys   int
}

func (*registerWorkload) Name() string { return "register" }

// RegisterInput is a register operation's input as recorded.
type RegisterInput struct {
	Value  string `json:"value,omitempty"`
	Expect string `json:"expect,omitempty"`
}

// RegisterOutput is a register operation's output as recorded.
type RegisterOutput struct {
	Value string `json:"value"`
	OK    bool   `json:"ok,omitempty"` // cas: swapped
}

func (r *registerWorkload) Step(ctx context.Context, w *Worker) {
	name := objectName(r.prefix, "register", w.Rng.IntN(r.keys))
	stub := w.Client.Namespace("Register").GetByName(name)
	switch p := w.Rng.IntN(10); {
	case p < 5:
		w.do(ctx, "register", name, "read", nil, true, false, func(ctx context.Context) (any, error) {
			v, err := client.Call[examples.RegisterValue](ctx, stub, "Get", nil)
			if err == nil {
				w.local[name] = v.Value
			}
			return RegisterOutput{Value: v.Value}, err
		})
	case p < 8:
		in := RegisterInput{Value: w.unique()}
		w.do(ctx, "register", name, "write", in, false, false, func(ctx context.Context) (any, error) {
			v, err := client.Call[examples.RegisterValue](ctx, stub, "Put", examples.PutArgs{Value: in.Value})
			if err == nil {
				w.local[name] = v.Value
			}
			return RegisterOutput{Value: v.Value}, err
		})
	default:
		in := RegisterInput{Expect: w.local[name], Value: w.unique()}
		w.do(ctx, "register", name, "cas", in, false, false, func(ctx context.Context) (any, error) {
			v, err := client.Call[examples.CASResult](ctx, stub, "CompareAndSet", examples.CASArgs{Expect: in.Expect, Value: in.Value})
			if err == nil {
				w.local[name] = v.Current
			}
			return RegisterOutput{Value: v.Current, OK: v.OK}, err
		})
	}
}

func (r *registerWorkload) Final(ctx context.Context, w *Worker) {
	for k := range r.keys {
		name := objectName(r.prefix, "register", k)
		stub := w.Client.Namespace("Register").GetByName(name)
		w.do(ctx, "register", name, "read", nil, true, true, func(ctx context.Context) (any, error) {
			v, err := client.Call[examples.RegisterValue](ctx, stub, "Get", nil)
			return RegisterOutput{Value: v.Value}, err
		})
	}
}

func (r *registerWorkload) Check(ops []Op, dir string) []ObjectResult {
	names, groups := byObject(ops)
	var out []ObjectResult
	for _, name := range names {
		out = append(out, checkLinearizable("register", name, groups[name], registerModel, dir))
	}
	return out
}

// ---- counter: increments and reads; exactly-once bounds and linearizability ----

type counterWorkload struct {
	prefix string
	keys   int
}

func (*counterWorkload) Name() string { return "counter" }

func (c *counterWorkload) Step(ctx context.Context, w *Worker) {
	name := objectName(c.prefix, "counter", w.Rng.IntN(c.keys))
	stub := w.Client.Namespace("Counter").GetByName(name)
	if w.Rng.IntN(10) < 2 {
		w.do(ctx, "counter", name, "read", nil, true, false, func(ctx context.Context) (any, error) {
			return client.Call[int64](ctx, stub, "Get", nil)
		})
		return
	}
	w.do(ctx, "counter", name, "add", 1, false, false, func(ctx context.Context) (any, error) {
		return client.Call[int64](ctx, stub, "Add", 1)
	})
}

func (c *counterWorkload) Final(ctx context.Context, w *Worker) {
	for k := range c.keys {
		name := objectName(c.prefix, "counter", k)
		stub := w.Client.Namespace("Counter").GetByName(name)
		w.do(ctx, "counter", name, "read", nil, true, true, func(ctx context.Context) (any, error) {
			return client.Call[int64](ctx, stub, "Get", nil)
		})
	}
}

func (c *counterWorkload) Check(ops []Op, dir string) []ObjectResult {
	names, groups := byObject(ops)
	var out []ObjectResult
	for _, name := range names {
		ops := groups[name]
		res := checkLinearizable("counter", name, ops, counterModel, dir)
		res.Problems = append(res.Problems, CheckCounter(ops)...)
		out = append(out, res.settle())
	}
	return out
}

// CheckCounter checks a counter's increments of 1 against its reads: every read lies
// between the increments acknowledged before it began and those attempted before it
// ended, and the final read (after the heal) counts every acknowledged increment and no
// more than were attempted. Nothing acknowledged is lost; nothing is applied twice.
func CheckCounter(ops []Op) []string {
	var problems []string
	var adds []Op
	for _, op := range ops {
		if op.F == "add" && op.Status != StatusFail {
			adds = append(adds, op)
		}
	}
	okTotal, infoTotal := 0, 0
	for _, a := range adds {
		if a.Status == StatusOK {
			okTotal++
		} else {
			infoTotal++
		}
	}
	sawFinal := false
	for _, op := range ops {
		if op.F != "read" || op.Status != StatusOK {
			continue
		}
		var v int64
		if err := json.Unmarshal(op.Output, &v); err != nil {
			problems = append(problems, fmt.Sprintf("op %d: undecodable read %s", op.Index, op.Output))
			continue
		}
		lo, hi := 0, 0
		for _, a := range adds {
			if a.Status == StatusOK && a.Return < op.Call {
				lo++
			}
			if a.Call < op.Return {
				hi++
			}
		}
		if v < int64(lo) || v > int64(hi) {
			problems = append(problems, fmt.Sprintf("op %d: read %d at %v, want between %d (acknowledged before) and %d (attempted before)",
				op.Index, v, op.Call, lo, hi))
		}
		if op.Final {
			sawFinal = true
			if v < int64(okTotal) {
				problems = append(problems, fmt.Sprintf("final read %d < %d acknowledged increments: %d acknowledged increments lost", v, okTotal, int64(okTotal)-v))
			}
			if v > int64(okTotal+infoTotal) {
				problems = append(problems, fmt.Sprintf("final read %d > %d attempted increments: applied more than once", v, okTotal+infoTotal))
			}
		}
	}
	if !sawFinal && okTotal > 0 {
		problems = append(problems, "no successful final read: cannot show acknowledged increments survived")
	}
	return problems
}

// ---- set: unique adds; nothing acknowledged may be lost, nothing invented ----

type setWorkload struct {
	prefix string
	keys   int
}

func (*setWorkload) Name() string { return "set" }

func (s *setWorkload) Step(ctx context.Context, w *Worker) {
	name := objectName(s.prefix, "set", w.Rng.IntN(s.keys))
	stub := w.Client.Namespace("Set").GetByName(name)
	if w.Rng.IntN(10) < 1 {
		w.do(ctx, "set", name, "read", nil, true, false, func(ctx context.Context) (any, error) {
			return client.Call[[]int64](ctx, stub, "Read", nil)
		})
		return
	}
	w.seq++
	e := int64(w.ID)<<32 | w.seq
	w.do(ctx, "set", name, "add", e, false, false, func(ctx context.Context) (any, error) {
		_, err := client.Call[struct{}](ctx, stub, "Add", e)
		return e, err
	})
}

func (s *setWorkload) Final(ctx context.Context, w *Worker) {
	for k := range s.keys {
		name := objectName(s.prefix, "set", k)
		stub := w.Client.Namespace("Set").GetByName(name)
		w.do(ctx, "set", name, "read", nil, true, true, func(ctx context.Context) (any, error) {
			return client.Call[[]int64](ctx, stub, "Read", nil)
		})
	}
}

func (s *setWorkload) Check(ops []Op, _ string) []ObjectResult {
	names, groups := byObject(ops)
	var out []ObjectResult
	for _, name := range names {
		res := ObjectResult{Workload: "set", Object: name, Ops: len(groups[name])}
		res.Problems = CheckSet(groups[name])
		out = append(out, res.settle())
	}
	return out
}

// CheckSet checks a grow-only set: a read holds only elements someone tried to add, and
// every element whose add was acknowledged before the read began (nothing acknowledged
// is lost, and reads are not stale). The final read must exist when anything was added.
func CheckSet(ops []Op) []string {
	var problems []string
	type add struct {
		op Op
		e  int64
	}
	attempted := map[int64]add{}
	for _, op := range ops {
		if op.F == "add" && op.Status != StatusFail {
			var e int64
			_ = json.Unmarshal(op.Input, &e)
			attempted[e] = add{op, e}
		}
	}
	sawFinal := false
	for _, op := range ops {
		if op.F != "read" || op.Status != StatusOK {
			continue
		}
		var got []int64
		if err := json.Unmarshal(op.Output, &got); err != nil {
			problems = append(problems, fmt.Sprintf("op %d: undecodable read", op.Index))
			continue
		}
		have := map[int64]bool{}
		for _, e := range got {
			have[e] = true
			if _, ok := attempted[e]; !ok {
				problems = append(problems, fmt.Sprintf("op %d: read element %d that no one added", op.Index, e))
			}
		}
		var lost []string
		for e, a := range attempted {
			if a.op.Status == StatusOK && a.op.Return < op.Call && !have[e] {
				lost = append(lost, fmt.Sprintf("%d (op %d)", e, a.op.Index))
			}
		}
		if len(lost) > 0 {
			slices.Sort(lost)
			what := "stale read"
			if op.Final {
				what = "final read: acknowledged adds lost"
			}
			problems = append(problems, fmt.Sprintf("op %d: %s: missing %d acknowledged elements: %s", op.Index, what, len(lost), abbrev(lost, 5)))
		}
		sawFinal = sawFinal || op.Final
	}
	if !sawFinal && len(attempted) > 0 {
		problems = append(problems, "no successful final read: cannot show acknowledged adds survived")
	}
	return problems
}

func abbrev(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:n], ", ") + fmt.Sprintf(", … (%d more)", len(s)-n)
}

// ---- bank: transfers inside one object; the total never changes ----

type bankWorkload struct {
	prefix string
	keys   int
}

func (*bankWorkload) Name() string { return "bank" }

func (b *bankWorkload) Step(ctx context.Context, w *Worker) {
	name := objectName(b.prefix, "bank", w.Rng.IntN(b.keys))
	stub := w.Client.Namespace("Bank").GetByName(name)
	if w.Rng.IntN(10) < 3 {
		w.do(ctx, "bank", name, "read", nil, true, false, func(ctx context.Context) (any, error) {
			return client.Call[[]int64](ctx, stub, "Read", nil)
		})
		return
	}
	from := w.Rng.IntN(examples.BankAccounts)
	to := (from + 1 + w.Rng.IntN(examples.BankAccounts-1)) % examples.BankAccounts
	in := examples.TransferArgs{From: from, To: to, Amount: 1 + w.Rng.Int64N(20)}
	w.do(ctx, "bank", name, "transfer", in, false, false, func(ctx context.Context) (any, error) {
		return client.Call[examples.TransferResult](ctx, stub, "Transfer", in)
	})
}

func (b *bankWorkload) Final(ctx context.Context, w *Worker) {
	for k := range b.keys {
		name := objectName(b.prefix, "bank", k)
		stub := w.Client.Namespace("Bank").GetByName(name)
		w.do(ctx, "bank", name, "read", nil, true, true, func(ctx context.Context) (any, error) {
			return client.Call[[]int64](ctx, stub, "Read", nil)
		})
	}
}

func (b *bankWorkload) Check(ops []Op, _ string) []ObjectResult {
	names, groups := byObject(ops)
	var out []ObjectResult
	for _, name := range names {
		res := ObjectResult{Workload: "bank", Object: name, Ops: len(groups[name])}
		res.Problems = CheckBank(groups[name])
		out = append(out, res.settle())
	}
	return out
}

// CheckBank checks that every read of a bank sees the initial total and no negative
// balance: a transfer is all or nothing and never overdraws.
func CheckBank(ops []Op) []string {
	const total = examples.BankAccounts * examples.BankInitialBalance
	var problems []string
	for _, op := range ops {
		if op.F != "read" || op.Status != StatusOK {
			continue
		}
		var bal []int64
		if err := json.Unmarshal(op.Output, &bal); err != nil {
			problems = append(problems, fmt.Sprintf("op %d: undecodable read", op.Index))
			continue
		}
		var sum int64
		for a, v := range bal {
			sum += v
			if v < 0 {
				problems = append(problems, fmt.Sprintf("op %d: account %d is negative (%d)", op.Index, a, v))
			}
		}
		if sum != total {
			problems = append(problems, fmt.Sprintf("op %d: balances %v sum to %d, want %d", op.Index, bal, sum, total))
		}
	}
	return problems
}
