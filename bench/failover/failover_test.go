package failover

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duro-db/duro/bench/load"
)

// fakeStore answers every call in about a millisecond, except while it is struck: a
// killed leader stalls calls for failover, a paused one until it is resumed.
type fakeStore struct {
	failover time.Duration

	mu                   sync.Mutex
	victimed             int
	struck               []Fault
	undone               int
	stall                chan struct{} // closed when calls may go on; nil while healthy
	victimErr, strikeErr error
}

func (s *fakeStore) Victim(context.Context) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.victimed++
	return "n2", "leads 2 of 3 groups", s.victimErr
}

func (s *fakeStore) Strike(_ context.Context, f Fault, id string) (func() error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.strikeErr != nil {
		return nil, s.strikeErr
	}
	if id != "n2" {
		panic("struck " + id + ", not the victim named")
	}
	s.struck = append(s.struck, f)
	stall := make(chan struct{})
	s.stall = stall
	if f == Kill {
		time.AfterFunc(s.failover, func() { close(stall) })
		return nil, nil
	}
	return func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.undone++
		close(stall)
		return nil
	}, nil
}

func (s *fakeStore) op(ctx context.Context, _ int) error {
	s.mu.Lock()
	stall := s.stall
	s.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	time.Sleep(time.Millisecond)
	return nil
}

// A 1 s window in 50 ms intervals with the fault at 300 ms.
func testConfig(f Fault) Config {
	return Config{
		Load: load.Config{Workload: "fake", Callers: 4, Warmup: 50 * time.Millisecond, Duration: time.Second,
			ProgressInterval: 50 * time.Millisecond},
		Fault: f, At: 300 * time.Millisecond, SlowBelow: 5,
	}
}

// A kill stalls every caller for the failover: the worst call is about that long, the
// intervals it covers are slow and no other is, and nothing is undone.
func TestKill(t *testing.T) {
	s := &fakeStore{failover: 250 * time.Millisecond}
	rep, err := Run(context.Background(), testConfig(Kill), s, s.op)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", rep)
	if rep.Victim != "n2" || rep.Fault != Kill || s.undone != 0 || len(s.struck) != 1 {
		t.Errorf("victim %q, fault %q, undone %d times, struck %v", rep.Victim, rep.Fault, s.undone, s.struck)
	}
	if rep.StruckAtS < 0.3 || rep.StruckAtS > 0.5 {
		t.Errorf("struck at %.3fs, want 0.3s", rep.StruckAtS)
	}
	if rep.WorstMs < 250 || rep.WorstMs > 600 {
		t.Errorf("worst call %.1f ms, want the 250 ms failover", rep.WorstMs)
	}
	// 250 ms stalls at least 4 whole 50 ms intervals and touches at most 6.
	if len(rep.Answered) != 20 || rep.SlowIntervals < 4 || rep.SlowIntervals > 6 {
		t.Errorf("%d slow intervals of %d, answered %v; want 4 to 6 of 20", rep.SlowIntervals, len(rep.Answered), rep.Answered)
	}
	if rep.Errors != 0 || rep.Run == nil || rep.Run.Ops == 0 || rep.P99Ms != rep.Run.Latency.P99Ms {
		t.Errorf("errors %d, run %+v", rep.Errors, rep.Run)
	}
}

// A pause is undone at the end of the window, and the calls it held are answered after
// that: the worst call spans the rest of the window, and every interval after the fault
// is slow.
func TestPauseUndoneAtTheEnd(t *testing.T) {
	s := &fakeStore{}
	rep, err := Run(context.Background(), testConfig(Pause), s, s.op)
	if err != nil {
		t.Fatal(err)
	}
	if s.undone != 1 || rep.UndoneAtS < 1 {
		t.Errorf("undone %d times, at %.3fs; want once, at the end of the 1 s window", s.undone, rep.UndoneAtS)
	}
	if held := 1000 * (rep.UndoneAtS - rep.StruckAtS); rep.WorstMs < held-50 {
		t.Errorf("worst call %.1f ms, want the %.0f ms from the fault to the end", rep.WorstMs, held)
	}
	// The intervals wholly after the fault, and at most the one it fell in.
	after := int((1 - rep.StruckAtS) / 0.05)
	if rep.SlowIntervals < after || rep.SlowIntervals > after+1 {
		t.Errorf("%d slow intervals, answered %v; want the %d after the fault at %.3fs", rep.SlowIntervals, rep.Answered, after, rep.StruckAtS)
	}
	if rep.Errors != 0 {
		t.Errorf("%d errors: calls held by the pause must be answered, not failed", rep.Errors)
	}
}

// A run cancelled while the fault lasts still undoes it before returning.
func TestCancelledRunUndoes(t *testing.T) {
	s := &fakeStore{}
	ctx, cancel := context.WithCancel(context.Background())
	cfg := testConfig(Partition)
	// Cancel once struck: poll for the state, with a deadline.
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			s.mu.Lock()
			n := len(s.struck)
			s.mu.Unlock()
			if n > 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := Run(ctx, cfg, s, s.op)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if len(s.struck) != 1 || s.undone != 1 {
		t.Errorf("struck %v, undone %d times; want the partition struck and undone", s.struck, s.undone)
	}
}

// A fault that cannot be struck stops the run with the error.
func TestStrikeErrors(t *testing.T) {
	boom := errors.New("boom")
	for _, s := range []*fakeStore{{victimErr: boom}, {strikeErr: boom}} {
		start := time.Now()
		_, err := Run(context.Background(), testConfig(Kill), s, s.op)
		if !errors.Is(err, boom) {
			t.Errorf("Run = %v, want boom", err)
		}
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Errorf("the run went on for %v after the fault failed", d)
		}
	}
}

func TestBadConfig(t *testing.T) {
	s := &fakeStore{}
	for _, mod := range []func(*Config){
		func(c *Config) { c.Fault = "reboot" },
		func(c *Config) { c.At = c.Load.Duration },
		func(c *Config) { c.At = -time.Second },
		func(c *Config) { c.Load.Rate = 100 },
	} {
		cfg := testConfig(Kill)
		mod(&cfg)
		if _, err := Run(context.Background(), cfg, s, s.op); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: Run = %v, want ErrBadConfig", cfg, err)
		}
	}
	if s.victimed != 0 {
		t.Error("a bad config struck the store")
	}
	for _, f := range Faults {
		if got, err := ParseFault(string(f)); got != f || err != nil {
			t.Errorf("ParseFault(%q) = %q, %v", f, got, err)
		}
	}
}

// The JSON field names are what scripts/failover.sh reads; the table names the figures.
func TestReportEncodes(t *testing.T) {
	rep := &Report{System: "duro", Fault: Kill, Victim: "n2", VictimWhy: "leads 7 of 17 groups", StruckAtS: 8,
		WorstMs: 3500, SlowIntervals: 3, SlowBelow: 100, IntervalS: 1, Answered: []int64{2000, 5, 0, 0, 1900},
		Errors: 0, P99Ms: 12.5, Run: &load.Result{Callers: 16, Seconds: 5}}
	var js strings.Builder
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(js.String()), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"system", "fault", "victim", "victim_why", "struck_at_s", "worst_ms", "slow_intervals", "errors", "p99_ms", "answered", "run"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON has no %q: %s", k, js.String())
		}
	}
	var tab strings.Builder
	if err := rep.WriteTable(&tab); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"duro failover: kill of n2 (leads 7 of 17 groups) at 8.00s", "worst call     3500.0 ms", "slow seconds   3 of 5", "errors         0", "p99            12.50 ms"} {
		if !strings.Contains(tab.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tab.String())
		}
	}
}
