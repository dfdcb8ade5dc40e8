package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// duro bench runs a workload end to end and prints a table, or JSON with --json, and
// writes the plot; its mistakes are usage errors found before dialling.
func TestBench(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3, 2)
	plot := filepath.Join(t.TempDir(), "p.svg")
	r := runCLI(t, "bench", "-e", c.endpoints, "--workload", "mix", "--callers", "4", "--objects", "20",
		"--warmup", "100ms", "--time", "1s", "--json", "--plot", plot, "--quiet")
	if r.code != exitOK {
		t.Fatalf("duro bench:\n%s", r)
	}
	var res struct {
		System   string  `json:"system"`
		Workload string  `json:"workload"`
		Ops      int64   `json:"ops"`
		Errors   int64   `json:"errors"`
		OpsPerS  float64 `json:"ops_per_sec"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("--json output does not decode: %v\n%s", err, r.stdout)
	}
	if res.System != "duro" || res.Workload != "mix" || res.Ops == 0 || res.Errors != 0 {
		t.Errorf("result %+v", res)
	}
	if b, err := os.ReadFile(plot); err != nil || !strings.HasPrefix(string(b), "<svg") {
		t.Errorf("plot: %v, %.40q", err, b)
	}

	r = runCLI(t, "bench", "-e", c.endpoints, "--workload", "hot", "--callers", "2", "--warmup", "0s", "--time", "1100ms")
	if r.code != exitOK || !strings.Contains(r.stdout, "p99.9") || !strings.Contains(r.stderr, "ops/s") {
		t.Errorf("duro bench (table, progress on stderr):\n%s", r)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	t.Parallel()
	nobody := freeAddr(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "-e", nobody, "--workload", "nope"}, `"nope"`},
		{[]string{"bench", "-e", nobody, "--callers", "0"}, "--callers"},
		{[]string{"bench", "-e", nobody, "extra"}, `"extra"`},
		{[]string{"bench", "idle", "--pids", "x"}, "--pids"},
		{[]string{"bench", "idle", "--pids", ","}, "--pids"},
	} {
		r := runCLI(t, tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("duro %s: want exit %d and %q\n%s", strings.Join(tc.args, " "), exitUsage, tc.want, r)
		}
	}
}

func TestBenchIdle(t *testing.T) {
	t.Parallel()
	r := runCLI(t, "bench", "idle", "--pids", strconv.Itoa(os.Getpid()), "--time", "100ms", "--json")
	var res struct {
		Percent *float64 `json:"percent_of_one_core"`
	}
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &res) != nil || res.Percent == nil {
		t.Fatalf("duro bench idle:\n%s", r)
	}
}
