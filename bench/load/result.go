package load

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Result is what a run measured. Its JSON encoding is the `--json` output of both
// `duro bench` and `etcdbench load`; the field names are a stable interface for scripts.
type Result struct {
	System      string   `json:"system,omitempty"` // "duro" or "etcd", set by the caller
	Workload    string   `json:"workload"`
	Callers     int      `json:"callers"`
	Rate        float64  `json:"rate"` // intended ops/s; 0 for closed loop
	Seconds     float64  `json:"seconds"`
	Ops         int64    `json:"ops"`
	Errors      int64    `json:"errors"`
	ErrorSample []string `json:"error_sample,omitempty"`
	OpsPerSec   float64  `json:"ops_per_sec"`
	Latency     Latency  `json:"latency"`
	Timeline    []Point  `json:"timeline,omitempty"`
}

// Latency summarises successful operations, in milliseconds. In open loop each is
// measured from the operation's intended start.
type Latency struct {
	MinMs  float64 `json:"min_ms"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Point is one interval of the timeline: operations intended to start in (T-interval, T].
type Point struct {
	T         float64 `json:"t"` // seconds into the measured window
	OpsPerSec float64 `json:"ops_per_sec"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
}

// Sample is one progress report.
type Sample struct {
	Elapsed   time.Duration // since the measured window opened
	Ops       int64         // completed since the last sample
	Errors    int64         // failed since the last sample
	OpsPerSec float64       // over the last interval
	TotalOps  int64
	P99SoFar  time.Duration // over the whole window so far
}

// ProgressPrinter returns a Config.Progress that writes one line per sample to w.
func ProgressPrinter(w io.Writer, workload string) func(Sample) {
	return func(s Sample) {
		fmt.Fprintf(w, "%s %5.1fs  %9.0f ops/s  p99 so far %8.2f ms  errors %d\n",
			workload, s.Elapsed.Seconds(), s.OpsPerSec, ms(s.P99SoFar), s.Errors)
	}
}

// WriteTable writes r as a short human-readable table.
func (r *Result) WriteTable(w io.Writer) error {
	mode := "closed loop"
	if r.Rate > 0 {
		mode = fmt.Sprintf("open loop at %.0f ops/s (latency from intended start)", r.Rate)
	}
	sys := r.System
	if sys != "" {
		sys += " "
	}
	_, err := fmt.Fprintf(w,
		"%s%s: %d callers, %s, %.1fs\n"+
			"  ops        %d (%d errors)\n"+
			"  throughput %.0f ops/s\n"+
			"  latency ms min %.2f  mean %.2f  p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
		sys, r.Workload, r.Callers, mode, r.Seconds, r.Ops, r.Errors, r.OpsPerSec,
		r.Latency.MinMs, r.Latency.MeanMs, r.Latency.P50Ms, r.Latency.P90Ms,
		r.Latency.P99Ms, r.Latency.P999Ms, r.Latency.MaxMs)
	if err != nil {
		return err
	}
	for _, e := range r.ErrorSample {
		if _, err := fmt.Fprintf(w, "  error: %s\n", e); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON writes r as one indented JSON document.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
