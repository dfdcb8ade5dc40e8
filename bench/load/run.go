package load

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Op performs one operation. worker is the calling goroutine's index in [0, Callers), so
// an Op may keep per-worker state (a random source, a connection) without locking. An Op
// must return when ctx is cancelled.
type Op func(ctx context.Context, worker int) error

// Config describes a run.
type Config struct {
	// Workload names the run in its results.
	Workload string
	// Callers is how many goroutines issue operations (at least 1).
	Callers int
	// Rate is the total operations per second of an open-loop run; 0 means closed loop.
	Rate float64
	// Warmup runs operations without recording them: connections open, leaders are
	// learnt, objects activate.
	Warmup time.Duration
	// Duration is the measured window (must be positive).
	Duration time.Duration
	// Progress, if set, is called about once per ProgressInterval during the measured
	// window, from one goroutine, with the last interval's figures.
	Progress func(Sample)
	// ProgressInterval defaults to one second; it is also the timeline's resolution.
	ProgressInterval time.Duration
}

// ErrBadConfig is returned by Run for a Config it cannot run.
var ErrBadConfig = errors.New("load: bad config")

func (c *Config) check() error {
	switch {
	case c.Callers < 1:
		return fmt.Errorf("%w: callers %d < 1", ErrBadConfig, c.Callers)
	case c.Duration <= 0:
		return fmt.Errorf("%w: duration %v <= 0", ErrBadConfig, c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("%w: warmup %v < 0", ErrBadConfig, c.Warmup)
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("%w: rate %v", ErrBadConfig, c.Rate)
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = time.Second
	}
	return nil
}

// clock is time as the runner sees it; tests replace it to run schedules without waiting.
type clock interface {
	Now() time.Time
	// SleepUntil returns at t or when ctx is done, whichever is first.
	SleepUntil(ctx context.Context, t time.Time)
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) SleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// Run drives op as cfg says and returns what it measured. It returns early, with the
// figures so far and ctx's error, if ctx is cancelled.
func Run(ctx context.Context, cfg Config, op Op) (*Result, error) {
	return run(ctx, cfg, op, wallClock{})
}

// schedule hands out operations. In open loop the k-th operation is due at
// start + k/rate; in closed loop an operation is due when a caller asks for it.
type schedule struct {
	clk      clock
	start    time.Time
	interval time.Duration // 0: closed loop
	measure  time.Time     // first intended start that is recorded
	end      time.Time     // no operation is intended at or after end
	next     atomic.Int64
}

// intended returns the k-th operation's due time in open loop.
func (s *schedule) intended(k int64) time.Time {
	return s.start.Add(time.Duration(k) * s.interval)
}

// take returns the next operation's intended start, waiting for it in open loop, and
// false once the run is over.
func (s *schedule) take(ctx context.Context) (time.Time, bool) {
	if s.interval == 0 {
		now := s.clk.Now()
		return now, now.Before(s.end) && ctx.Err() == nil
	}
	due := s.intended(s.next.Add(1) - 1)
	if !due.Before(s.end) {
		return due, false
	}
	s.clk.SleepUntil(ctx, due)
	return due, ctx.Err() == nil
}

func run(ctx context.Context, cfg Config, op Op, clk clock) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	start := clk.Now()
	s := &schedule{clk: clk, start: start, measure: start.Add(cfg.Warmup)}
	s.end = s.measure.Add(cfg.Duration)
	if cfg.Rate > 0 {
		s.interval = time.Duration(float64(time.Second) / cfg.Rate)
		if s.interval <= 0 {
			return nil, fmt.Errorf("%w: rate %v is beyond nanosecond scheduling", ErrBadConfig, cfg.Rate)
		}
	}
	rec := newRecorder(s.measure, cfg.ProgressInterval)

	var wg sync.WaitGroup
	for w := range cfg.Callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				due, ok := s.take(ctx)
				if !ok {
					return
				}
				err := op(ctx, w)
				done := clk.Now()
				if due.Before(s.measure) {
					continue
				}
				if err != nil {
					if ctx.Err() != nil {
						return // cancelled: not the store's failure
					}
					rec.fail(err)
					continue
				}
				rec.record(due, done.Sub(due))
			}
		}()
	}

	pctx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if _, ok := clk.(wallClock); !ok {
			return // a fake clock has no ticker; the timeline is still built from records
		}
		// Tick from the opening of the measured window, so each line covers a whole interval.
		clk.SleepUntil(pctx, s.measure)
		t := time.NewTicker(cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if cfg.Progress != nil {
					if smp, ok := rec.progress(clk.Now()); ok {
						cfg.Progress(smp)
					}
				}
			case <-pctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	stopProgress()
	<-progressDone

	elapsed := cfg.Duration
	if now := clk.Now(); ctx.Err() != nil && now.Before(s.end) {
		elapsed = max(now.Sub(s.measure), 0)
	}
	res := rec.result(cfg, elapsed)
	return res, ctx.Err()
}
