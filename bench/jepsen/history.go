package jepsen

import (
	"encoding/json"
	"sync"
	"time"
)

// Status is what the client learnt about an operation.
type Status string

// The outcomes of an operation, in Jepsen's words.
const (
	// StatusOK: the operation took effect (a read: it returned this value).
	StatusOK Status = "ok"
	// StatusFail: the operation definitely did not take effect.
	StatusFail Status = "fail"
	// StatusInfo: the outcome is unknown; the operation may take effect at any time after
	// it was invoked, even after the end of the history.
	StatusInfo Status = "info"
)

// Op is one operation of the history, as written to history.jsonl.
type Op struct {
	Index    int             `json:"index"`
	Process  int             `json:"process"` // the worker (one SDK client each)
	Workload string          `json:"workload"`
	Object   string          `json:"object"` // the object's name within its class
	F        string          `json:"f"`      // read, write, cas, add, transfer, ...
	Input    json.RawMessage `json:"input,omitempty"`
	Output   json.RawMessage `json:"output,omitempty"`
	Status   Status          `json:"status"`
	Error    string          `json:"error,omitempty"`
	Call     time.Duration   `json:"call"`   // since the start of the run
	Return   time.Duration   `json:"return"` // since the start of the run
	Final    bool            `json:"final,omitempty"`
}

// Latency is how long the client waited.
func (o *Op) Latency() time.Duration { return o.Return - o.Call }

// History collects operations from many workers. Its methods are safe for concurrent use.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewHistory starts a history whose times count from now.
func NewHistory() *History { return &History{start: time.Now()} }

// Since is the time elapsed since the history began.
func (h *History) Since() time.Duration { return time.Since(h.start) }

// Add records op, giving it the next index.
func (h *History) Add(op Op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.Index = len(h.ops)
	h.ops = append(h.ops, op)
}

// Ops returns a copy of the operations recorded so far.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the harness's own plain structs and numbers are marshalled.
		panic("jepsen: invariant violated: an operation's value does not marshal: " + err.Error())
	}
	return b
}
