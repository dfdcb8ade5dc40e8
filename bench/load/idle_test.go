package load

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		want time.Duration
		err  bool
	}{
		{"plain", "4242 (duro) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 25 0 0 20 0 12 0 100 1 1", 1750 * time.Millisecond, false},
		{"name with spaces and parens", "7 (a ) b) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0", 70 * time.Millisecond, false},
		{"no name", "7 duro S 1 2 3", 0, true},
		{"truncated", "7 (duro) S 1 7 7 0 -1 0 0 0 0 0 3", 0, true},
		{"not a number", "7 (duro) S 1 7 7 0 -1 0 0 0 0 0 x 4 0", 0, true},
		{"negative", "7 (duro) S 1 7 7 0 -1 0 0 0 0 0 -3 4 0", 0, true},
		{"absurd", "7 (duro) S 1 7 7 0 -1 0 0 0 0 0 99999999999999999 4 0", 0, true},
		{"empty", "", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tc.line))
			if tc.err {
				if !errors.Is(err, ErrBadStat) {
					t.Fatalf("ParseStat = %v, %v; want ErrBadStat", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseStat = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("4242 (duro) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 25 0 0 20 0 12 0 100 1 1"))
	f.Add([]byte("7 (a ) b) R 1 7 7 0 -1 0 0 0 0 0 3 4 0"))
	f.Add([]byte("7 (x"))
	f.Add([]byte(")))"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseStat(b)
		if err == nil && d < 0 {
			t.Fatalf("negative CPU time %v from %q", d, b)
		}
	})
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
