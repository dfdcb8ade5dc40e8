package jepsen

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duro-db/duro"
)

func testRunOptions(t *testing.T, d time.Duration, nemeses ...string) Options {
	t.Helper()
	var progress strings.Builder
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("progress:\n%s", progress.String())
		}
	})
	return Options{
		Binary:      duroBinary,
		Nodes:       3,
		Time:        d,
		Concurrency: 6,
		Workloads:   []string{"register", "counter"},
		Nemeses:     nemeses,
		Seed:        42,
		Out:         t.TempDir(),
		Keys:        4,
		OpTimeout:   3 * time.Second,
		Quiet:       [2]time.Duration{time.Second, 2 * time.Second},
		Active:      [2]time.Duration{2 * time.Second, 4 * time.Second},
		Progress:    &progress,
	}
}

// The CI run: 3 nodes under kills, partitions and pauses, register and counter
// workloads. A correct duro must come out VALID, with a complete report.
func TestShortRunIsValid(t *testing.T) {
	o := testRunOptions(t, 20*time.Second, "kill", "partition", "pause")
	s, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	PrintSummary(&sb, s, o.Out)
	t.Log(sb.String())
	if s.Verdict == Invalid {
		t.Fatalf("verdict %s on a correct build", s.Verdict)
	}
	if len(s.Faults) == 0 {
		t.Fatal("no fault was injected")
	}
	if s.Counts["register ok"] == 0 || s.Counts["counter ok"] == 0 {
		t.Fatalf("too few successful operations: %v", s.Counts)
	}
	for _, f := range []string{"history.jsonl", "summary.json", "latency.svg", "nodes/n1.log"} {
		if _, err := os.Stat(filepath.Join(o.Out, f)); err != nil {
			t.Errorf("report lacks %s: %v", f, err)
		}
	}
}

// Power cuts: nodes' machines lose power (their disks simulated: whatever was not synced
// is lost or torn), one, a minority or all at once, and reboot from what their disks
// kept. Nothing acknowledged may be lost, and histories stay linearizable.
func TestPowerCutRunIsValid(t *testing.T) {
	o := testRunOptions(t, 16*time.Second, "powercut")
	o.Seed = 11 // its schedule cuts the power of every node at once, among others
	s, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	PrintSummary(&sb, s, o.Out)
	t.Log(sb.String())
	if s.Verdict != Valid {
		t.Fatalf("verdict %s after power cuts", s.Verdict)
	}
	if s.Counts["register ok"] == 0 || s.Counts["counter ok"] == 0 {
		t.Fatalf("too few successful operations: %v", s.Counts)
	}
	// The cuts happened and the nodes came back from what their disks kept: a state
	// machine open at the cut is rebuilt, as after a machine crash.
	cuts, rebuilt := 0, false
	for _, f := range s.Faults {
		if f.Kind == "powercut" {
			cuts++
		}
	}
	logs, _ := filepath.Glob(filepath.Join(o.Out, "nodes", "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		rebuilt = rebuilt || strings.Contains(string(b), "the machine restarted while this group's state was open")
	}
	if cuts == 0 || !rebuilt {
		t.Fatalf("%d power cuts, a state rebuilt after one: %v", cuts, rebuilt)
	}
}

// Against a build that acknowledges writes before they commit,
// isolating leaders loses acknowledged writes, and the harness says INVALID with a
// counter-example naming the operations.
func TestCatchesAckBeforeCommit(t *testing.T) {
	o := testRunOptions(t, 8*time.Second, "partition")
	o.Env = []string{duro.EnvUnsafe + "=ack-before-commit"}
	s, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	PrintSummary(&sb, s, o.Out)
	t.Log(sb.String())
	if s.Verdict != Invalid {
		t.Fatalf("verdict %s against a build that acknowledges before commit, want INVALID", s.Verdict)
	}
	// The counter-example must be readable: porcupine's verdict with the operations that
	// could not be linearized, and its HTML rendering.
	for _, obj := range s.Objects {
		if obj.Verdict != Invalid || obj.Workload != "register" {
			continue
		}
		if !strings.Contains(strings.Join(obj.Problems, "\n"), "not linearizable: the longest linearizable prefix") {
			t.Errorf("%s: problems %q lack porcupine's counter-example", obj.Object, obj.Problems)
		}
		if _, err := os.Stat(filepath.Join(o.Out, obj.Visualization)); obj.Visualization == "" || err != nil {
			t.Errorf("%s: no visualisation (%q, %v)", obj.Object, obj.Visualization, err)
		}
		return
	}
	t.Fatal("no register object was found invalid")
}
