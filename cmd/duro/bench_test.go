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
		{[]string{"bench", "failover", "--fault", "reboot"}, `"reboot"`},
		{[]string{"bench", "failover", "--at", "20s", "--time", "20s"}, "--at"},
		{[]string{"bench", "failover", "--callers", "0"}, "--callers"},
		{[]string{"bench", "failover", "--workload", "nope"}, `"nope"`},
		{[]string{"bench", "failover", "extra"}, `"extra"`},
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

// duro bench failover starts its own cluster of this binary, strikes the busiest leader
// and reports what the callers saw, as JSON for scripts.
func TestBenchFailover(t *testing.T) {
	if duroBin == "" {
		t.Skip("needs the duro binary (not built with -short)")
	}
	t.Parallel()
	dir := t.TempDir()
	r := runCLI(t, "bench", "failover", "--binary", duroBin, "--dir", dir, "--fault", "pause", "--groups", "2",
		"--callers", "4", "--objects", "50", "--warmup", "500ms", "--time", "3s", "--at", "1s", "--json", "--quiet")
	if r.code != exitOK {
		t.Fatalf("duro bench failover:\n%s", r)
	}
	var rep struct {
		System   string  `json:"system"`
		Fault    string  `json:"fault"`
		Victim   string  `json:"victim"`
		Undone   float64 `json:"undone_at_s"`
		Worst    float64 `json:"worst_ms"`
		Answered []int64 `json:"answered"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("--json output does not decode: %v\n%s", err, r.stdout)
	}
	if rep.System != "duro" || rep.Fault != "pause" || rep.Victim == "" || rep.Undone < 3 || rep.Worst <= 0 || len(rep.Answered) != 3 {
		t.Errorf("report %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(dir, "n1.log")); err != nil {
		t.Errorf("no node log in --dir: %v", err)
	}
}
