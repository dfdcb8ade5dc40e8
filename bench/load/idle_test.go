package load

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// statLine is a whole /proc/<pid>/stat line of pid 7, as Linux 6 writes it, with the
// given command name and CPU times (fields 14 and 15, utime and stime, in 10 ms ticks).
func statLine(name, utime, stime string) string {
	return "7 (" + name + ") S 1 7 7 0 -1 4194560 1234 0 0 0 " + utime + " " + stime +
		" 0 0 20 0 12 0 81917 3133440 394 18446744073709551615 94890649276416 94890649296297" +
		" 140736203591632 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 94890649312304 94890649313920" +
		" 94891377721344 140736203598335 140736203598355 140736203598355 140736203599851 0"
}

// ProcessCPU reads a stat file the way the kernel writes it: utime plus stime, after a
// command name that may hold spaces and parentheses. Each case is a stat file of pid 7 in
// a proc tree of its own.
func TestProcessCPUReadsStat(t *testing.T) {
	for _, tc := range []struct {
		name string
		stat string // "" is no process 7 at all
		want time.Duration
		err  bool
	}{
		{"plain", statLine("duro", "150", "25"), 1750 * time.Millisecond, false},
		{"name with spaces and parens", statLine("a ) b", "3", "4"), 70 * time.Millisecond, false},
		{"no name", strings.Replace(statLine("duro", "3", "4"), "(duro)", "duro", 1), 0, true},
		{"truncated", statLine("duro", "3", "4")[:40], 0, true},
		{"not a number", statLine("duro", "x", "4"), 0, true},
		{"negative", statLine("duro", "-3", "4"), 0, true},
		{"absurd", statLine("duro", "99999999999999999", "4"), 0, true},
		{"no such process", "", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.stat != "" {
				if err := os.Mkdir(filepath.Join(root, "7"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, "7", "stat"), []byte(tc.stat+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := processCPU(root, 7)
			if tc.err {
				if err == nil {
					t.Fatalf("processCPU = %v, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("processCPU = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestMeasureIdleOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	// Burn CPU during the window so the measurement has something to see.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
		}
	}()
	res, err := MeasureIdle(context.Background(), []int{os.Getpid()}, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.PercentOne <= 10 || len(res.PerProcess) != 1 {
		t.Errorf("a spinning goroutine measured as %+v, want well above 10%% of a core", res)
	}
	if _, err := MeasureIdle(context.Background(), nil, time.Millisecond); !errors.Is(err, ErrBadConfig) {
		t.Errorf("no pids: err = %v, want ErrBadConfig", err)
	}
	if _, err := MeasureIdle(context.Background(), []int{1 << 30}, time.Millisecond); err == nil {
		t.Error("a pid that does not exist was measured")
	}
}
