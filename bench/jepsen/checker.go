package jepsen

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Verdict is the outcome of checking one object, or a whole run.
type Verdict string

// The verdicts. Unknown means the linearizability search ran out of time: no violation was
// found, none was ruled out.
const (
	Valid   Verdict = "VALID"
	Invalid Verdict = "INVALID"
	Unknown Verdict = "UNKNOWN"
)

// CheckTimeout bounds porcupine's search per object; the problem is NP-hard, and a
// history with many unknown outcomes can take long.
var CheckTimeout = 30 * time.Second

// ObjectResult is the verdict on one object with its evidence.
type ObjectResult struct {
	Workload string   `json:"workload"`
	Object   string   `json:"object"`
	Ops      int      `json:"ops"`
	Verdict  Verdict  `json:"verdict"`
	Linear   Verdict  `json:"linearizable,omitempty"` // porcupine's answer, if it was asked
	Problems []string `json:"problems,omitempty"`
	// Visualization is the porcupine HTML file, relative to the report directory.
	Visualization string `json:"visualization,omitempty"`
}

// settle sets Verdict from the linearizability answer and the problems found.
func (r ObjectResult) settle() ObjectResult {
	switch {
	case len(r.Problems) > 0 || r.Linear == Invalid:
		r.Verdict = Invalid
	case r.Linear == Unknown:
		r.Verdict = Unknown
	default:
		r.Verdict = Valid
	}
	return r
}

// linearModel adapts one workload's sequential specification to porcupine.
type linearModel struct {
	model porcupine.Model
	// input and output decode an Op; output returns nil for an unknown outcome.
	input  func(op Op) (any, error)
	output func(op Op) (any, error)
}

// checkLinearizable runs porcupine on one object's operations. Failed operations did not
// happen and are left out; so are reads that did not return. An operation with an unknown
// outcome never returns (porcupine's convention): its return time is past the end of the
// history, so it may take effect at any point after its call, or in effect never.
func checkLinearizable(workload, object string, ops []Op, m linearModel, dir string) ObjectResult {
	res := ObjectResult{Workload: workload, Object: object, Ops: len(ops)}
	var hist []porcupine.Operation
	for _, op := range ops {
		if op.Status == StatusFail {
			continue
		}
		in, err := m.input(op)
		if err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("op %d: %v", op.Index, err))
			continue
		}
		var out any
		ret := int64(math.MaxInt64)
		if op.Status == StatusOK {
			if out, err = m.output(op); err != nil {
				res.Problems = append(res.Problems, fmt.Sprintf("op %d: %v", op.Index, err))
				continue
			}
			ret = int64(op.Return)
		}
		hist = append(hist, porcupine.Operation{ClientId: op.Process, Input: in, Output: out,
			Call: int64(op.Call), Return: ret, Metadata: op.Index})
	}
	result, info := porcupine.CheckOperationsVerbose(m.model, hist, CheckTimeout)
	switch result {
	case porcupine.Ok:
		res.Linear = Valid
	case porcupine.Illegal:
		res.Linear = Invalid
		res.Problems = append(res.Problems, "not linearizable: "+counterExample(m.model, info))
	default:
		res.Linear = Unknown
	}
	if dir != "" && (res.Linear == Invalid || len(hist) <= 5000) {
		file := "linear-" + sanitize(object) + ".html"
		if err := porcupine.VisualizePath(m.model, info, filepath.Join(dir, file)); err == nil {
			res.Visualization = file
		} else {
			res.Problems = append(res.Problems, "visualisation failed: "+err.Error())
		}
	}
	return res.settle()
}

// counterExample describes where linearization got stuck: the longest prefix porcupine
// could linearize, and the operations that could not follow it.
func counterExample(m porcupine.Model, info porcupine.LinearizationInfo) string {
	parts := info.PartialLinearizationsOperations()
	var longest []porcupine.Operation
	for _, p := range parts {
		for _, lin := range p {
			if len(lin) > len(longest) {
				longest = lin
			}
		}
	}
	if len(longest) == 0 {
		return "no operation could be linearized first"
	}
	state := m.Init()
	for _, op := range longest {
		_, state = m.Step(state, op.Input, op.Output)
	}
	var tail []string
	for _, op := range longest[max(0, len(longest)-3):] {
		tail = append(tail, fmt.Sprintf("[op %v] %s", op.Metadata, m.DescribeOperation(op.Input, op.Output)))
	}
	return fmt.Sprintf("the longest linearizable prefix has %d operations, ending %s; state then %s, and no remaining operation can follow it",
		len(longest), strings.Join(tail, " → "), m.DescribeState(state))
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// regIn and regOut are the register model's porcupine values.
type regIn struct {
	F             string
	Value, Expect string
}

type regOut struct {
	Value string
	OK    bool
}

var registerModel = linearModel{
	model: porcupine.Model{
		Init: func() any { return "" },
		Step: func(state, input, output any) (bool, any) {
			s, in := state.(string), input.(regIn)
			out, known := output.(regOut)
			switch in.F {
			case "read":
				return !known || out.Value == s, s
			case "write":
				return true, in.Value
			case "cas":
				swapped := s == in.Expect
				if known && (out.OK != swapped || (!swapped && out.Value != s)) {
					return false, s
				}
				if swapped {
					return true, in.Value
				}
				return true, s
			}
			return false, s
		},
		DescribeOperation: func(input, output any) string {
			in := input.(regIn)
			out, known := output.(regOut)
			res := "?"
			switch {
			case !known:
			case in.F == "cas":
				res = fmt.Sprintf("%v (now %q)", out.OK, out.Value)
			default:
				res = fmt.Sprintf("%q", out.Value)
			}
			switch in.F {
			case "read":
				return "read() → " + res
			case "write":
				return fmt.Sprintf("write(%q) → %s", in.Value, res)
			}
			return fmt.Sprintf("cas(%q→%q) → %s", in.Expect, in.Value, res)
		},
		DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
	},
	input: func(op Op) (any, error) {
		var in RegisterInput
		if len(op.Input) > 0 {
			if err := json.Unmarshal(op.Input, &in); err != nil {
				return nil, err
			}
		}
		return regIn{F: op.F, Value: in.Value, Expect: in.Expect}, nil
	},
	output: func(op Op) (any, error) {
		var out RegisterOutput
		if err := json.Unmarshal(op.Output, &out); err != nil {
			return nil, err
		}
		return regOut(out), nil
	},
}

// ctrIn is the counter model's porcupine input; its output is the int64 value after the
// operation (Add returns the new value, Get the current one).
type ctrIn struct {
	F string
	N int64
}

var counterModel = linearModel{
	model: porcupine.Model{
		Init: func() any { return int64(0) },
		Step: func(state, input, output any) (bool, any) {
			s, in := state.(int64), input.(ctrIn)
			out, known := output.(int64)
			switch in.F {
			case "read":
				return !known || out == s, s
			case "add":
				return !known || out == s+in.N, s + in.N
			}
			return false, s
		},
		DescribeOperation: func(input, output any) string {
			in := input.(ctrIn)
			res := "?"
			if out, ok := output.(int64); ok {
				res = fmt.Sprint(out)
			}
			if in.F == "add" {
				return fmt.Sprintf("add(%d) → %s", in.N, res)
			}
			return "read() → " + res
		},
		DescribeState: func(state any) string { return fmt.Sprint(state) },
	},
	input: func(op Op) (any, error) {
		in := ctrIn{F: op.F}
		if op.F == "add" {
			if err := json.Unmarshal(op.Input, &in.N); err != nil {
				return nil, err
			}
		}
		return in, nil
	},
	output: func(op Op) (any, error) {
		var v int64
		err := json.Unmarshal(op.Output, &v)
		return v, err
	},
}

// writeFileAtomic writes b to path via a temporary file, so a report is never half
// written when the harness is interrupted.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
