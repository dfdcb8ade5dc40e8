package diskspace

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestLowWithMargin(t *testing.T) {
	var free atomic.Uint64
	free.Store(1000 << 20)
	m, err := New(t.TempDir(), 100<<20, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.usage = func(string) (uint64, uint64, error) { return free.Load(), 2000 << 20, nil }
	var changes []bool
	m.OnChange(func(low bool) { changes = append(changes, low) })
	steps := []struct {
		free uint64
		low  bool
	}{
		{1000 << 20, false},
		{101 << 20, false},
		{99 << 20, true},  // below the reserve
		{105 << 20, true}, // above it, but within the margin (10 MiB)
		{109 << 20, true},
		{110 << 20, false}, // reserve + margin
		{50 << 20, true},
	}
	for i, s := range steps {
		free.Store(s.free)
		if err := m.measure(); err != nil {
			t.Fatal(err)
		}
		if m.Low() != s.low {
			t.Fatalf("step %d: free %s: Low = %v, want %v", i, Bytes(s.free), m.Low(), s.low)
		}
		if err := m.Err(); (err != nil) != s.low || (err != nil && !errors.Is(err, ErrNoSpace)) {
			t.Fatalf("step %d: Err = %v", i, err)
		}
	}
	if want := []bool{true, false, true}; len(changes) != len(want) || changes[0] != want[0] || changes[1] != want[1] || changes[2] != want[2] {
		t.Fatalf("OnChange saw %v, want %v", changes, want)
	}
}

func TestCheckMeasuresSoon(t *testing.T) {
	m, err := New(t.TempDir(), 1, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	m.usage = func(string) (uint64, uint64, error) { calls.Add(1); return 1 << 30, 2 << 30, nil }
	m.Start()
	defer m.Stop()
	m.Check()
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Check did not measure")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestUsageOfARealDirectory(t *testing.T) {
	free, total, err := Usage(t.TempDir())
	if err != nil || total == 0 || free > total {
		t.Fatalf("Usage = %d free of %d, %v", free, total, err)
	}
	if _, _, err := Usage("/no/such/dir"); err == nil {
		t.Fatal("Usage of a missing directory succeeded")
	}
}

func TestParseBytes(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want uint64
		bad  bool
	}{
		{"4096", 4096, false}, {"256MiB", 256 << 20, false}, {"256M", 256 << 20, false},
		{"1GiB", 1 << 30, false}, {"1.5G", 3 << 29, false}, {"0", 0, false},
		{"12 parsecs", 0, true}, {"MiB", 0, true}, {"-1M", 0, true},
	} {
		got, err := ParseBytes(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v", tt.in, got, err)
		}
	}
	if s := Bytes(256 << 20); s != "256.0 MiB" {
		t.Errorf("Bytes(256 MiB) = %q", s)
	}
}
