package jepsen

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// op builds a history entry; times are in milliseconds; ret < 0 means unknown outcome.
func op(i int, f string, in, out any, call, ret int) Op {
	o := Op{Index: i, Process: i, F: f, Call: time.Duration(call) * time.Millisecond, Status: StatusOK}
	if in != nil {
		o.Input = mustJSON(in)
	}
	if ret < 0 {
		o.Status, o.Return = StatusInfo, time.Duration(call+1)*time.Millisecond
	} else {
		o.Return = time.Duration(ret) * time.Millisecond
		o.Output = mustJSON(out)
	}
	return o
}

func final(o Op) Op { o.Final = true; return o }

func TestRegisterLinearizability(t *testing.T) {
	w := func(v string) RegisterInput { return RegisterInput{Value: v} }
	r := func(v string) RegisterOutput { return RegisterOutput{Value: v} }
	tests := []struct {
		name string
		ops  []Op
		want Verdict
	}{
		{"sequential", []Op{op(0, "write", w("a"), r("a"), 0, 1), op(1, "read", nil, r("a"), 2, 3)}, Valid},
		{"stale read", []Op{op(0, "write", w("a"), r("a"), 0, 1), op(1, "write", w("b"), r("b"), 2, 3), op(2, "read", nil, r("a"), 4, 5)}, Invalid},
		{"concurrent read may see either", []Op{op(0, "write", w("a"), r("a"), 0, 10), op(1, "read", nil, r(""), 2, 3), op(2, "read", nil, r("a"), 4, 5)}, Valid},
		{"unknown write may apply later", []Op{op(0, "write", w("a"), nil, 0, -1), op(1, "read", nil, r(""), 5, 6), op(2, "read", nil, r("a"), 7, 8)}, Valid},
		{"unknown write cannot unapply", []Op{op(0, "write", w("a"), nil, 0, -1), op(1, "read", nil, r("a"), 5, 6), op(2, "read", nil, r(""), 7, 8)}, Invalid},
		{"cas", []Op{op(0, "write", w("a"), r("a"), 0, 1), op(1, "cas", RegisterInput{Expect: "a", Value: "b"}, RegisterOutput{Value: "b", OK: true}, 2, 3), op(2, "read", nil, r("b"), 4, 5)}, Valid},
		{"cas lies", []Op{op(0, "write", w("a"), r("a"), 0, 1), op(1, "cas", RegisterInput{Expect: "a", Value: "b"}, RegisterOutput{Value: "a", OK: false}, 2, 3)}, Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := checkLinearizable("register", "r", tt.ops, registerModel, t.TempDir())
			if res.Verdict != tt.want {
				t.Fatalf("verdict %s, want %s; problems %v", res.Verdict, tt.want, res.Problems)
			}
			if tt.want == Invalid && (res.Visualization == "" || !strings.Contains(strings.Join(res.Problems, " "), "not linearizable")) {
				t.Fatalf("invalid without evidence: %+v", res)
			}
		})
	}
}

func TestCheckCounter(t *testing.T) {
	tests := []struct {
		name    string
		ops     []Op
		problem string // "" = none
	}{
		{"exact", []Op{op(0, "add", 1, 1, 0, 1), op(1, "add", 1, 2, 2, 3), final(op(2, "read", nil, 2, 4, 5))}, ""},
		{"unknown may count", []Op{op(0, "add", 1, 1, 0, 1), op(1, "add", 1, nil, 2, -1), final(op(2, "read", nil, 2, 4, 5))}, ""},
		{"lost increment", []Op{op(0, "add", 1, 1, 0, 1), op(1, "add", 1, 2, 2, 3), final(op(2, "read", nil, 1, 4, 5))}, "lost"},
		{"applied twice", []Op{op(0, "add", 1, 1, 0, 1), final(op(1, "read", nil, 2, 4, 5))}, "more than once"},
		{"no final read", []Op{op(0, "add", 1, 1, 0, 1)}, "no successful final read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(CheckCounter(tt.ops), "; ")
			if (tt.problem == "") != (got == "") || !strings.Contains(got, tt.problem) {
				t.Fatalf("problems %q, want one mentioning %q", got, tt.problem)
			}
		})
	}
}

func TestCheckSetAndBank(t *testing.T) {
	tests := []struct {
		name    string
		check   func([]Op) []string
		ops     []Op
		problem string
	}{
		{"set complete", CheckSet, []Op{op(0, "add", 7, 7, 0, 1), final(op(1, "read", nil, []int64{7}, 2, 3))}, ""},
		{"set lost", CheckSet, []Op{op(0, "add", 7, 7, 0, 1), final(op(1, "read", nil, []int64{}, 2, 3))}, "lost"},
		{"set invented", CheckSet, []Op{final(op(0, "read", nil, []int64{9}, 2, 3))}, "no one added"},
		{"bank conserved", CheckBank, []Op{op(0, "read", nil, []int64{100, 100, 100, 100, 50, 150, 100, 100}, 0, 1)}, ""},
		{"bank leaks", CheckBank, []Op{op(0, "read", nil, []int64{100, 100, 100, 100, 50, 100, 100, 100}, 0, 1)}, "sum to"},
		{"bank overdrawn", CheckBank, []Op{op(0, "read", nil, []int64{-10, 110, 100, 100, 100, 100, 100, 100}, 0, 1)}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(tt.check(tt.ops), "; ")
			if (tt.problem == "") != (got == "") || !strings.Contains(got, tt.problem) {
				t.Fatalf("problems %q, want one mentioning %q", got, tt.problem)
			}
		})
	}
}

// FuzzCheckers feeds the checkers outputs as a node might garble them: they report
// problems, never panic. (Operation outputs are the bytes a node sent, re-encoded.)
func FuzzCheckers(f *testing.F) {
	f.Add([]byte(`{"value":"a"}`), []byte(`3`))
	f.Add([]byte(`[1,2,3]`), []byte(`null`))
	f.Add([]byte(`{`), []byte(`"x"`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		for _, raw := range [][]byte{a, b} {
			if !json.Valid(raw) {
				return // Outputs are always re-encoded JSON
			}
		}
		ops := []Op{
			{Index: 0, F: "add", Input: json.RawMessage(`1`), Output: a, Status: StatusOK, Return: 1},
			{Index: 1, F: "read", Output: b, Status: StatusOK, Call: 2, Return: 3, Final: true},
			{Index: 2, F: "write", Input: a, Output: b, Status: StatusOK, Call: 4, Return: 5},
		}
		_ = CheckCounter(ops)
		_ = CheckSet(ops)
		_ = CheckBank(ops)
		_ = checkLinearizable("register", "r", ops, registerModel, "")
		_ = checkLinearizable("counter", "c", ops, counterModel, "")
	})
}
