package load

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is virtual time: sleeping jumps to the wake-up time, and an Op "takes" time
// by advancing the clock. With one caller a run is then exact and instantaneous.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) SleepUntil(_ context.Context, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// stallingOp takes 1 ms, except the stallAt-th call, which takes stall.
func stallingOp(clk *fakeClock, stallAt int, stall time.Duration) (Op, *int) {
	n := 0
	return func(context.Context, int) error {
		d := time.Millisecond
		if n == stallAt {
			d = stall
		}
		n++
		clk.advance(d)
		return nil
	}, &n
}

// expectOpenLoop simulates a single caller serving a fixed-rate schedule: operation k is
// due at k*interval, starts when due or when the previous one ends, and its latency runs
// from when it was due.
func expectOpenLoop(n int, interval time.Duration, service func(k int) time.Duration) []time.Duration {
	var lats []time.Duration
	var end time.Duration
	for k := range n {
		due := time.Duration(k) * interval
		end = max(end, due) + service(k)
		lats = append(lats, end-due)
	}
	slices.Sort(lats)
	return lats
}

func near(got, want float64) bool { return math.Abs(got-want) <= 0.01*want+0.002 }

func TestStallIsChargedToEveryScheduledOpInOpenLoop(t *testing.T) {
	const stallAt, stall = 10, 200 * time.Millisecond
	service := func(k int) time.Duration {
		if k == stallAt {
			return stall
		}
		return time.Millisecond
	}
	open := expectOpenLoop(100, 10*time.Millisecond, service)
	for _, tc := range []struct {
		name    string
		rate    float64
		wantOps int64
		wantP99 time.Duration
		wantMax time.Duration
	}{
		// 100 ops due over 1 s; the ops due during the 200 ms stall queue behind it and are
		// charged their wait: p99 is the 99th of the simulated latencies (191 ms).
		{"open loop", 100, 100, open[98], stall},
		// Closed loop waits out the stall and records one slow op among ~800 fast ones:
		// the coordinated omission open loop exists to avoid.
		{"closed loop", 0, 10 + 1 + 790, time.Millisecond, stall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			op, _ := stallingOp(clk, stallAt, stall)
			res, err := run(context.Background(), Config{Workload: "w", Callers: 1, Rate: tc.rate, Duration: time.Second}, op, clk)
			if err != nil {
				t.Fatal(err)
			}
			if res.Ops != tc.wantOps {
				t.Errorf("ops = %d, want %d", res.Ops, tc.wantOps)
			}
			if !near(res.Latency.P99Ms, ms(tc.wantP99)) {
				t.Errorf("p99 = %.3f ms, want %.3f ms", res.Latency.P99Ms, ms(tc.wantP99))
			}
			if !near(res.Latency.MaxMs, ms(tc.wantMax)) {
				t.Errorf("max = %.3f ms, want %.3f ms", res.Latency.MaxMs, ms(tc.wantMax))
			}
			if !near(res.OpsPerSec, float64(tc.wantOps)) {
				t.Errorf("ops/s = %.1f, want %d", res.OpsPerSec, tc.wantOps)
			}
		})
	}
}

func TestOpenLoopLatencyIsFromIntendedStart(t *testing.T) {
	// Every op takes 15 ms but one is due every 10 ms: a single caller falls 5 ms further
	// behind with each op, and the latencies must show the growing queue.
	clk := newFakeClock()
	op := func(context.Context, int) error { clk.advance(15 * time.Millisecond); return nil }
	res, err := run(context.Background(), Config{Callers: 1, Rate: 100, Duration: 200 * time.Millisecond}, op, clk)
	if err != nil {
		t.Fatal(err)
	}
	want := expectOpenLoop(20, 10*time.Millisecond, func(int) time.Duration { return 15 * time.Millisecond })
	if res.Ops != 20 {
		t.Fatalf("ops = %d, want 20", res.Ops)
	}
	if !near(res.Latency.MaxMs, ms(want[19])) || !near(res.Latency.MinMs, 15) {
		t.Errorf("latency min %.2f max %.2f ms, want 15 and %.2f", res.Latency.MinMs, res.Latency.MaxMs, ms(want[19]))
	}
	if want[19] != 15*time.Millisecond+19*5*time.Millisecond {
		t.Fatalf("simulation broken: last latency %v", want[19])
	}
}

func TestWarmupIsNotRecorded(t *testing.T) {
	for _, rate := range []float64{0, 100} {
		clk := newFakeClock()
		op, calls := stallingOp(clk, 5, time.Second) // the stall falls in the warmup
		res, err := run(context.Background(), Config{Callers: 1, Rate: rate, Warmup: 500 * time.Millisecond, Duration: time.Second}, op, clk)
		if err != nil {
			t.Fatal(err)
		}
		if res.Latency.MaxMs >= 1000 && rate == 0 {
			t.Errorf("rate %v: the warmup's stall was recorded (max %.1f ms)", rate, res.Latency.MaxMs)
		}
		if int64(*calls) <= res.Ops {
			t.Errorf("rate %v: %d calls, %d recorded: warmup calls were recorded", rate, *calls, res.Ops)
		}
		if rate > 0 && res.Ops != 100 {
			t.Errorf("open loop: %d ops recorded, want the 100 due in the window", res.Ops)
		}
	}
}

func TestTimelineHasOneWholePointPerInterval(t *testing.T) {
	clk := newFakeClock()
	op := func(context.Context, int) error { clk.advance(time.Millisecond); return nil }
	res, err := run(context.Background(), Config{Callers: 1, Rate: 100, Duration: 3500 * time.Millisecond}, op, clk)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Timeline) != 3 {
		t.Fatalf("timeline has %d points, want 3 (the last half interval is left out)", len(res.Timeline))
	}
	for i, p := range res.Timeline {
		if p.T != float64(i+1) || !near(p.OpsPerSec, 100) || !near(p.P99Ms, 1) {
			t.Errorf("point %d = %+v, want t=%d, 100 ops/s, p99 1 ms", i, p, i+1)
		}
	}
}

func TestErrorsAreCountedNotTimed(t *testing.T) {
	clk := newFakeClock()
	n := 0
	boom := errors.New("boom")
	op := func(context.Context, int) error {
		n++
		if n%2 == 0 {
			clk.advance(time.Second) // a slow failure must not show in the latencies
			return boom
		}
		clk.advance(time.Millisecond)
		return nil
	}
	// Closed loop: in open loop the slow failures would (rightly) delay the ops behind them.
	res, err := run(context.Background(), Config{Callers: 1, Duration: 10 * time.Second}, op, clk)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 10 || res.Ops != 10 {
		t.Errorf("ops %d errors %d, want 10 and 10", res.Ops, res.Errors)
	}
	if len(res.ErrorSample) != maxErrorSamples || res.ErrorSample[0] != "boom" {
		t.Errorf("error sample %q", res.ErrorSample)
	}
	if res.Latency.MaxMs > 2 {
		t.Errorf("max latency %.1f ms includes failed ops", res.Latency.MaxMs)
	}
}

func TestConfigIsChecked(t *testing.T) {
	op := func(context.Context, int) error { return nil }
	for _, cfg := range []Config{
		{Callers: 0, Duration: time.Second},
		{Callers: 1},
		{Callers: 1, Duration: time.Second, Warmup: -1},
		{Callers: 1, Duration: time.Second, Rate: -1},
		{Callers: 1, Duration: time.Second, Rate: math.Inf(1)},
		{Callers: 1, Duration: time.Second, Rate: 1e12},
	} {
		if _, err := Run(context.Background(), cfg, op); !errors.Is(err, ErrBadConfig) {
			t.Errorf("Run(%+v) = %v, want ErrBadConfig", cfg, err)
		}
	}
}

func TestRunManyCallersWallClock(t *testing.T) {
	// A real, short, concurrent run: the race detector's view of the recorder and the
	// progress reporting.
	var mu sync.Mutex
	var samples []Sample
	cfg := Config{
		Callers: 8, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond,
		ProgressInterval: 50 * time.Millisecond,
		Progress:         func(s Sample) { mu.Lock(); samples = append(samples, s); mu.Unlock() },
	}
	op := func(ctx context.Context, _ int) error {
		select {
		case <-time.After(time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	res, err := Run(context.Background(), cfg, op)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || res.Errors != 0 || res.Latency.P50Ms < 1 {
		t.Errorf("result %+v", res)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(samples) == 0 {
		t.Fatal("no progress samples")
	}
	var sum int64
	for _, s := range samples {
		sum += s.Ops
	}
	if sum > res.Ops {
		t.Errorf("progress counted %d ops, more than the %d recorded", sum, res.Ops)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	var mu sync.Mutex
	op := func(ctx context.Context, _ int) error {
		mu.Lock()
		n++
		if n == 100 {
			cancel()
		}
		mu.Unlock()
		return ctx.Err()
	}
	res, err := Run(ctx, Config{Callers: 4, Duration: time.Hour}, op)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if res == nil || res.Errors != 0 || res.Seconds >= 3600 {
		t.Errorf("result %+v: want the figures so far, no errors for cancelled calls", res)
	}
}
