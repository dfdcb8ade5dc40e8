package failover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/duro-db/duro/bench/load"
)

// Fault is what a run does to the process leading the store.
type Fault string

// The faults a run can strike with.
const (
	// Kill SIGKILLs the process; it stays down for the rest of the run.
	Kill Fault = "kill"
	// Pause SIGSTOPs the process and SIGCONTs it at the end of the measured window. Its
	// sockets stay open: peers and clients see silence, not a closed connection.
	Pause Fault = "pause"
	// Partition cuts every link between the process and its peers, both ways, and heals
	// them at the end of the measured window. Clients still reach it.
	Partition Fault = "partition"
)

// Faults lists the faults ParseFault accepts.
var Faults = []Fault{Kill, Pause, Partition}

// ErrBadConfig is returned by Run and ParseFault for what they cannot run.
var ErrBadConfig = errors.New("failover: bad config")

// ParseFault returns the Fault named s.
func ParseFault(s string) (Fault, error) {
	if f := Fault(s); slices.Contains(Faults, f) {
		return f, nil
	}
	names := make([]string, len(Faults))
	for i, f := range Faults {
		names[i] = string(f)
	}
	return "", fmt.Errorf("%w: fault %q: want one of %s", ErrBadConfig, s, strings.Join(names, ", "))
}

// Target is the cluster a run strikes. Run calls Victim and then Strike once each, one
// after the other from one goroutine, at Config.At; and the undo that Strike returned
// once, at the end of the measured window (or as soon as the run is cancelled).
type Target interface {
	// Victim names the process to strike: the one leading the most raft groups at the
	// time of the call (for a store with one group, its leader). why says what it leads,
	// for the report.
	Victim(ctx context.Context) (id, why string, err error)
	// Strike applies f to the process Victim named. undo ends the fault; it is nil when
	// nothing does (a killed process stays down).
	Strike(ctx context.Context, f Fault, id string) (undo func() error, err error)
}

// Config describes a run.
type Config struct {
	// Load is the closed-loop run the fault falls in (Rate must be 0). Its
	// ProgressInterval, a second by default, is also the interval SlowBelow counts in.
	Load load.Config
	// Fault is struck At into the measured window, 0 <= At < Load.Duration.
	Fault Fault
	At    time.Duration
	// SlowBelow: an interval in which fewer calls than this were answered is slow.
	// Default 100.
	SlowBelow int
	// Log, if set, is told when the fault is struck and undone (one line each, from the
	// goroutine that strikes).
	Log func(string)
}

// Report is what a run measured. Its JSON encoding is the `--json` output of both
// `duro bench failover` and `etcdbench failover`; the field names are a stable
// interface for scripts.
type Report struct {
	System    string  `json:"system,omitempty"` // "duro" or "etcd", set by the caller
	Fault     Fault   `json:"fault"`
	Victim    string  `json:"victim"`
	VictimWhy string  `json:"victim_why,omitempty"`
	AtS       float64 `json:"at_s"`        // as configured
	StruckAtS float64 `json:"struck_at_s"` // seconds into the measured window, as it happened
	UndoneAtS float64 `json:"undone_at_s,omitempty"`
	// WorstMs is the longest call of the measured window, failed ones included.
	WorstMs float64 `json:"worst_ms"`
	// SlowIntervals counts the whole intervals of the window with fewer than SlowBelow
	// calls answered; Answered holds each interval's count, by the time calls returned.
	SlowIntervals int     `json:"slow_intervals"`
	SlowBelow     int     `json:"slow_below"`
	IntervalS     float64 `json:"interval_s"`
	Answered      []int64 `json:"answered"`
	Errors        int64   `json:"errors"`
	P99Ms         float64 `json:"p99_ms"`
	// Run is bench/load's result: throughput, latency percentiles and the timeline.
	Run *load.Result `json:"run"`
}

// Run drives op as cfg.Load says, strikes t with cfg.Fault at cfg.At, undoes the fault at
// the end of the measured window, and reports what the callers saw. If striking fails the
// run is stopped and the error returned; if ctx is cancelled Run returns what it measured
// so far and ctx's error. Either way the fault has been undone when Run returns.
func Run(ctx context.Context, cfg Config, t Target, op load.Op) (*Report, error) {
	if cfg.Load.ProgressInterval <= 0 {
		cfg.Load.ProgressInterval = time.Second
	}
	if cfg.SlowBelow <= 0 {
		cfg.SlowBelow = 100
	}
	switch {
	case cfg.Load.Rate != 0:
		return nil, fmt.Errorf("%w: a failover run is closed loop (rate 0), got rate %v", ErrBadConfig, cfg.Load.Rate)
	case cfg.At < 0 || cfg.At >= cfg.Load.Duration:
		return nil, fmt.Errorf("%w: the fault at %v falls outside the measured window of %v", ErrBadConfig, cfg.At, cfg.Load.Duration)
	}
	if _, err := ParseFault(string(cfg.Fault)); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	start := time.Now()
	w := newWatch(start.Add(cfg.Load.Warmup), cfg.Load.Duration, cfg.Load.ProgressInterval)
	watched := func(ctx context.Context, worker int) error {
		began := time.Now()
		err := op(ctx, worker)
		w.done(began, time.Now(), err)
		return err
	}
	rep := &Report{Fault: cfg.Fault, AtS: cfg.At.Seconds(), SlowBelow: cfg.SlowBelow, IntervalS: cfg.Load.ProgressInterval.Seconds()}
	struck := make(chan error, 1)
	go func() { struck <- strike(ctx, cancel, cfg, t, w, rep) }()
	res, err := load.Run(ctx, cfg.Load, watched)
	cancel() // the strike goroutine undoes the fault now if the window has not ended
	if serr := <-struck; serr != nil {
		return nil, serr
	}
	rep.Run = res
	if res != nil {
		rep.Errors, rep.P99Ms = res.Errors, res.Latency.P99Ms
	}
	rep.WorstMs, rep.Answered = w.result()
	for _, n := range rep.Answered {
		if n < int64(cfg.SlowBelow) {
			rep.SlowIntervals++
		}
	}
	return rep, err
}

// strike waits for the fault's time, strikes, waits for the end of the window (or ctx)
// and undoes. It fills in rep's fault fields; rep is not read until it returns. On an
// error it stops the run.
func strike(ctx context.Context, stop context.CancelFunc, cfg Config, t Target, w *watch, rep *Report) error {
	if !sleepUntil(ctx, w.measure.Add(cfg.At)) {
		return nil // cancelled before the fault: nothing to undo
	}
	id, why, err := t.Victim(ctx)
	if err != nil {
		stop()
		return fmt.Errorf("failover: finding the process to strike: %w", err)
	}
	rep.Victim, rep.VictimWhy = id, why
	rep.StruckAtS = time.Since(w.measure).Seconds()
	undo, err := t.Strike(ctx, cfg.Fault, id)
	if err != nil {
		stop()
		return fmt.Errorf("failover: %s of %s: %w", cfg.Fault, id, err)
	}
	logf(cfg, "%.2fs: %s of %s (%s)", rep.StruckAtS, cfg.Fault, id, why)
	sleepUntil(ctx, w.measure.Add(cfg.Load.Duration))
	if undo == nil {
		return nil
	}
	rep.UndoneAtS = time.Since(w.measure).Seconds()
	if err := undo(); err != nil {
		return fmt.Errorf("failover: undoing the %s of %s: %w", cfg.Fault, id, err)
	}
	logf(cfg, "%.2fs: %s of %s undone", rep.UndoneAtS, cfg.Fault, id)
	return nil
}

func logf(cfg Config, format string, args ...any) {
	if cfg.Log != nil {
		cfg.Log(fmt.Sprintf(format, args...))
	}
}

// sleepUntil waits until t or ctx ends and reports whether t came. The fault's time is a
// schedule, not a state to wait for.
func sleepUntil(ctx context.Context, t time.Time) bool {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// watch sees every call return: the longest call begun in the measured window, and the
// calls answered in each of its whole intervals, by return time.
type watch struct {
	measure, end time.Time
	interval     time.Duration

	mu       sync.Mutex
	worst    time.Duration
	answered []int64
}

func newWatch(measure time.Time, d, interval time.Duration) *watch {
	return &watch{
		measure: measure, end: measure.Add(d), interval: interval,
		answered: make([]int64, int(d/interval)),
	}
}

func (w *watch) done(began, returned time.Time, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !began.Before(w.measure) && began.Before(w.end) {
		w.worst = max(w.worst, returned.Sub(began))
	}
	if err != nil || returned.Before(w.measure) {
		return
	}
	if i := int(returned.Sub(w.measure) / w.interval); i < len(w.answered) {
		w.answered[i]++
	}
}

func (w *watch) result() (worstMs float64, answered []int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return float64(w.worst) / float64(time.Millisecond), slices.Clone(w.answered)
}
