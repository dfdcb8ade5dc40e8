package failover

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteTable writes r as a few human-readable lines.
func (r *Report) WriteTable(w io.Writer) error {
	sys := r.System
	if sys != "" {
		sys += " "
	}
	callers, secs := 0, 0.0
	if r.Run != nil {
		callers, secs = r.Run.Callers, r.Run.Seconds
	}
	victim := r.Victim
	if r.VictimWhy != "" {
		victim += " (" + r.VictimWhy + ")"
	}
	undone := "stays down"
	if r.UndoneAtS > 0 {
		undone = fmt.Sprintf("undone at %.2fs", r.UndoneAtS)
	}
	slow := fmt.Sprintf("slow intervals %d of %d (fewer than %d calls answered in %gs)", r.SlowIntervals, len(r.Answered), r.SlowBelow, r.IntervalS)
	if r.IntervalS == 1 {
		slow = fmt.Sprintf("slow seconds   %d of %d (fewer than %d calls answered)", r.SlowIntervals, len(r.Answered), r.SlowBelow)
	}
	answered := make([]string, len(r.Answered))
	for i, n := range r.Answered {
		answered[i] = fmt.Sprint(n)
	}
	_, err := fmt.Fprintf(w,
		"%sfailover: %s of %s at %.2fs of %.0fs, %s; %d callers\n"+
			"  worst call     %.1f ms (failed calls included)\n"+
			"  %s\n"+
			"  errors         %d\n"+
			"  p99            %.2f ms\n"+
			"  answered       %s (per interval, by when calls returned)\n",
		sys, r.Fault, victim, r.StruckAtS, secs, undone, callers,
		r.WorstMs, slow,
		r.Errors, r.P99Ms, strings.Join(answered, " "))
	if err != nil {
		return err
	}
	if r.Run != nil {
		for _, e := range r.Run.ErrorSample {
			if _, err := fmt.Fprintf(w, "  error: %s\n", e); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteJSON writes r as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
