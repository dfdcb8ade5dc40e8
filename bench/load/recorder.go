package load

import (
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds, in microseconds. The top is generous because an open-loop run
// against a stalled store charges every queued operation the whole stall.
const (
	minLatencyUS = 1
	maxLatencyUS = int64(10 * time.Minute / time.Microsecond)
	sigFigures   = 3 // 0.1% resolution: p99.9 of a 1 ms distribution is exact to 1 µs
	// The per-interval histograms of the timeline need less resolution and there are
	// many of them.
	timelineSigFigures = 2
	maxErrorSamples    = 5
)

// recorder collects latencies from every caller. One mutex is enough: at the rates a
// 2-core machine sustains (tens of thousands per second) it is never the bottleneck, and
// it keeps the progress view consistent with the totals.
type recorder struct {
	measure  time.Time
	interval time.Duration

	mu        sync.Mutex
	total     *hdr.Histogram
	buckets   []*hdr.Histogram // by intended start, one per interval
	errs      int64
	errSample []string
	// progress state: what has been reported so far
	lastCount int64
	lastErrs  int64
	lastAt    time.Time
}

func newRecorder(measure time.Time, interval time.Duration) *recorder {
	return &recorder{
		measure:  measure,
		interval: interval,
		total:    hdr.New(minLatencyUS, maxLatencyUS, sigFigures),
		lastAt:   measure,
	}
}

// micros converts a latency to histogram units, clamped into the histogram's range so a
// record never fails (an over-range latency is reported as the maximum).
func micros(d time.Duration) int64 {
	us := int64(d / time.Microsecond)
	return min(max(us, minLatencyUS), maxLatencyUS)
}

func (r *recorder) record(due time.Time, lat time.Duration) {
	us := micros(lat)
	i := int(due.Sub(r.measure) / r.interval)
	r.mu.Lock()
	defer r.mu.Unlock()
	// RecordValue fails only outside the range, which micros rules out.
	_ = r.total.RecordValue(us)
	for len(r.buckets) <= i {
		r.buckets = append(r.buckets, hdr.New(minLatencyUS, maxLatencyUS, timelineSigFigures))
	}
	_ = r.buckets[i].RecordValue(us)
}

func (r *recorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs++
	if len(r.errSample) < maxErrorSamples {
		r.errSample = append(r.errSample, err.Error())
	}
}

// progress returns the figures since the previous call; false before the measured
// window opens.
func (r *recorder) progress(now time.Time) (Sample, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !now.After(r.measure) {
		return Sample{}, false
	}
	n := r.total.TotalCount()
	dt := now.Sub(r.lastAt).Seconds()
	s := Sample{
		Elapsed:   now.Sub(r.measure),
		Ops:       n - r.lastCount,
		Errors:    r.errs - r.lastErrs,
		P99SoFar:  usToDuration(r.total.ValueAtQuantile(99)),
		TotalOps:  n,
		OpsPerSec: float64(n-r.lastCount) / max(dt, 1e-9),
	}
	r.lastCount, r.lastErrs, r.lastAt = n, r.errs, now
	return s, true
}

func (r *recorder) result(cfg Config, elapsed time.Duration) *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{
		Workload:    cfg.Workload,
		Callers:     cfg.Callers,
		Rate:        cfg.Rate,
		Seconds:     elapsed.Seconds(),
		Ops:         r.total.TotalCount(),
		Errors:      r.errs,
		ErrorSample: append([]string(nil), r.errSample...),
		Latency:     summarize(r.total),
	}
	if elapsed > 0 {
		res.OpsPerSec = float64(res.Ops) / elapsed.Seconds()
	}
	// Only whole intervals inside the window: a last bucket of 0.2 s would plot a dip.
	whole := int(elapsed / r.interval)
	for i, h := range r.buckets {
		if i >= whole {
			break
		}
		res.Timeline = append(res.Timeline, Point{
			T:         (time.Duration(i+1) * r.interval).Seconds(),
			OpsPerSec: float64(h.TotalCount()) / r.interval.Seconds(),
			P50Ms:     ms(usToDuration(h.ValueAtQuantile(50))),
			P99Ms:     ms(usToDuration(h.ValueAtQuantile(99))),
			MaxMs:     ms(usToDuration(h.Max())),
		})
	}
	return res
}

func summarize(h *hdr.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		MinMs:  ms(usToDuration(h.Min())),
		MeanMs: h.Mean() / 1e3,
		P50Ms:  ms(usToDuration(h.ValueAtQuantile(50))),
		P90Ms:  ms(usToDuration(h.ValueAtQuantile(90))),
		P99Ms:  ms(usToDuration(h.ValueAtQuantile(99))),
		P999Ms: ms(usToDuration(h.ValueAtQuantile(99.9))),
		MaxMs:  ms(usToDuration(h.Max())),
	}
}

func usToDuration(us int64) time.Duration { return time.Duration(us) * time.Microsecond }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
