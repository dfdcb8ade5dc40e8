package jepsen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Summary is summary.json: the run's settings, its verdict and the evidence behind it.
type Summary struct {
	Verdict  Verdict        `json:"verdict"`
	Seed     uint64         `json:"seed"`
	Options  Options        `json:"options"`
	Started  time.Time      `json:"started"`
	Duration time.Duration  `json:"duration"`
	Counts   map[string]int `json:"counts"` // "<workload> <status>" → operations
	Faults   []Fault        `json:"faults"`
	Objects  []ObjectResult `json:"objects"`
	Problems []string       `json:"problems,omitempty"` // about the run as a whole
}

// writeReport writes history.jsonl, summary.json and latency.svg into dir.
func writeReport(dir string, ops []Op, s *Summary) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	enc := json.NewEncoder(bw)
	for i := range ops {
		if err := enc.Encode(&ops[i]); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "summary.json"), append(b, '\n')); err != nil {
		return err
	}
	svg, err := os.Create(filepath.Join(dir, "latency.svg"))
	if err != nil {
		return err
	}
	if err := LatencySVG(svg, ops, s.Faults, s.Duration); err != nil {
		_ = svg.Close()
		return err
	}
	return svg.Close()
}

// faultColors shade each kind of fault in the latency plot.
var faultColors = map[string]string{
	"kill": "#f4a6a6", "pause": "#f7d08a", "partition": "#a6c8f4", "slow": "#c9b3f2", "reset": "#b8e0b0",
}

var statusColors = map[Status]string{StatusOK: "#1f77b4", StatusFail: "#d62728", StatusInfo: "#ff7f0e"}

// LatencySVG draws every operation's latency (log scale) against the time it was
// invoked, coloured by outcome, over the fault intervals shaded by kind.
func LatencySVG(w io.Writer, ops []Op, faults []Fault, total time.Duration) error {
	const (
		width, height           = 1200.0, 480.0
		left, right, top, bottm = 70.0, 160.0, 30.0, 50.0
	)
	pw, ph := width-left-right, height-top-bottm
	for _, op := range ops {
		total = max(total, op.Return)
	}
	if total <= 0 {
		total = time.Second
	}
	lo, hi := math.Log10(0.1), math.Log10(100_000.0) // ms
	x := func(d time.Duration) float64 { return left + pw*float64(d)/float64(total) }
	y := func(lat time.Duration) float64 {
		ms := math.Max(float64(lat)/float64(time.Millisecond), 0.1)
		v := (math.Log10(ms) - lo) / (hi - lo)
		return top + ph*(1-math.Min(math.Max(v, 0), 1))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	for _, f := range faults {
		end := f.End
		if end == 0 {
			end = total
		}
		c := faultColors[f.Kind]
		if c == "" {
			c = "#dddddd"
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.6"><title>%s</title></rect>`+"\n",
			x(f.Start), top, math.Max(x(end)-x(f.Start), 1), ph, c, html.EscapeString(f.Kind+": "+f.Detail))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#555">%s</text>`+"\n", x(f.Start)+2, top-4, html.EscapeString(f.Kind))
	}
	// Axes and grid.
	for e := -1; e <= 5; e++ {
		yy := y(time.Duration(math.Pow(10, float64(e)) * float64(time.Millisecond)))
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", left, left+pw, yy, yy)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, yy+4, msLabel(e))
	}
	step := niceStep(total)
	for t := time.Duration(0); t <= total; t += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", x(t), top+ph+16, t.Round(time.Second))
	}
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">time since start (operation invoked)</text>`+"\n", left+pw/2, height-12)
	fmt.Fprintf(&b, `<text transform="translate(16 %.0f) rotate(-90)" text-anchor="middle">latency (log)</text>`+"\n", top+ph/2)
	// Points, at most ~20000 so the file stays viewable: failures and unknowns always.
	every := max(1, len(ops)/20000)
	for i, op := range ops {
		if op.Status == StatusOK && i%every != 0 {
			continue
		}
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="1.6" fill="%s"/>`+"\n", x(op.Call), y(op.Latency()), statusColors[op.Status])
	}
	// Legend.
	ly := top + 10
	for _, s := range []Status{StatusOK, StatusFail, StatusInfo} {
		fmt.Fprintf(&b, `<circle cx="%.0f" cy="%.0f" r="4" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n", left+pw+16, ly, statusColors[s], left+pw+26, ly+4, s)
		ly += 18
	}
	kinds := make([]string, 0, len(faultColors))
	for k := range faultColors {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n", left+pw+11, ly-5, faultColors[k], left+pw+26, ly+4, k)
		ly += 18
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func msLabel(e int) string {
	switch {
	case e < 0:
		return "0.1ms"
	case e < 3:
		return fmt.Sprintf("%.0fms", math.Pow(10, float64(e)))
	}
	return fmt.Sprintf("%.0fs", math.Pow(10, float64(e-3)))
}

func niceStep(total time.Duration) time.Duration {
	for _, s := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute} {
		if total/s <= 12 {
			return s
		}
	}
	return 10 * time.Minute
}

// PrintSummary writes the one-screen summary, ending in the verdict.
func PrintSummary(w io.Writer, s *Summary, dir string) {
	nemeses := strings.Join(s.Options.Nemeses, ",")
	if nemeses == "" {
		nemeses = "none"
	}
	fmt.Fprintf(w, "\nduro jepsen: seed %d, %d nodes, %v, workloads %s, nemesis %s\n",
		s.Seed, s.Options.Nodes, s.Duration.Round(time.Second), strings.Join(s.Options.Workloads, ","), nemeses)
	keys := make([]string, 0, len(s.Counts))
	for k := range s.Counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "operations:")
	for _, k := range keys {
		fmt.Fprintf(w, "  %s %d", k, s.Counts[k])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "faults: %d", len(s.Faults))
	byKind := map[string]int{}
	for _, f := range s.Faults {
		byKind[f.Kind]++
	}
	for _, k := range Nemeses {
		if byKind[k] > 0 {
			fmt.Fprintf(w, "  %s %d", k, byKind[k])
		}
	}
	fmt.Fprintln(w)
	// The first few objects that are not valid, each with its first few problems: the
	// rest is in summary.json, so the verdict stays on one screen.
	const maxObjects, maxProblems = 3, 3
	shown, hidden := 0, 0
	for _, o := range s.Objects {
		if o.Verdict == Valid {
			continue
		}
		if shown == maxObjects {
			hidden++
			continue
		}
		shown++
		fmt.Fprintf(w, "  %s %s %s (%d ops)\n", o.Verdict, o.Workload, o.Object, o.Ops)
		for i, p := range o.Problems {
			if i == maxProblems {
				fmt.Fprintf(w, "    … %d more in summary.json\n", len(o.Problems)-maxProblems)
				break
			}
			fmt.Fprintf(w, "    - %s\n", p)
		}
		if o.Visualization != "" {
			fmt.Fprintf(w, "    see %s\n", filepath.Join(dir, o.Visualization))
		}
	}
	if hidden > 0 {
		fmt.Fprintf(w, "  … and %d more objects not valid, in summary.json\n", hidden)
	}
	for _, p := range s.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	valid, invalid, unknown := 0, 0, 0
	for _, o := range s.Objects {
		switch o.Verdict {
		case Valid:
			valid++
		case Invalid:
			invalid++
		default:
			unknown++
		}
	}
	fmt.Fprintf(w, "objects: %d valid, %d invalid, %d unknown\n", valid, invalid, unknown)
	fmt.Fprintf(w, "report: %s\n", dir)
	fmt.Fprintln(w, s.Verdict)
}
