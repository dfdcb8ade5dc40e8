package load

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
)

// Plot geometry, in SVG user units.
const (
	plotW, plotH       = 720, 260
	padL, padR         = 64, 16
	padT, padB         = 28, 36
	throughputPanelGap = 40
)

// WriteSVG plots r's timeline: latency (p50, p99, max, log scale) over time above
// throughput over time. It writes a self-contained SVG; nothing is drawn for an empty
// timeline but the axes and the title.
func (r *Result) WriteSVG(w io.Writer) error {
	bw := bufio.NewWriter(w)
	totalH := 2*plotH + throughputPanelGap
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", plotW, totalH)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := fmt.Sprintf("%s %s: %d callers, %.0f ops/s, p99 %.2f ms",
		r.System, r.Workload, r.Callers, r.OpsPerSec, r.Latency.P99Ms)
	fmt.Fprintf(bw, `<text x="%d" y="16" font-size="13">%s</text>`+"\n", padL, html.EscapeString(title))

	tMax := 1.0
	latMax, latMin, opsMax := 1.0, math.Inf(1), 1.0
	for _, p := range r.Timeline {
		tMax = max(tMax, p.T)
		latMax = max(latMax, p.MaxMs)
		opsMax = max(opsMax, p.OpsPerSec)
		if p.P50Ms > 0 {
			latMin = min(latMin, p.P50Ms)
		}
	}
	if math.IsInf(latMin, 1) {
		latMin = 0.1
	}
	// Log scale from the decade below the smallest p50 to the decade above the largest max.
	lo := math.Pow(10, math.Floor(math.Log10(latMin)))
	hi := math.Pow(10, math.Ceil(math.Log10(latMax)))
	if hi <= lo {
		hi = lo * 10
	}
	x := func(t float64) float64 { return padL + t/tMax*(plotW-padL-padR) }
	yLat := func(v float64) float64 {
		v = max(v, lo)
		f := (math.Log10(v) - math.Log10(lo)) / (math.Log10(hi) - math.Log10(lo))
		return float64(plotH-padB) - f*float64(plotH-padT-padB)
	}
	off := float64(plotH + throughputPanelGap)
	yOps := func(v float64) float64 {
		return off + float64(plotH-padB) - v/opsMax*float64(plotH-padT-padB)
	}

	// Axes and grid.
	axes := func(top float64, label string) {
		fmt.Fprintf(bw, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>`+"\n", padL, top+padT, padL, top+plotH-padB)
		fmt.Fprintf(bw, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>`+"\n", padL, top+plotH-padB, plotW-padR, top+plotH-padB)
		fmt.Fprintf(bw, `<text x="4" y="%.1f">%s</text>`+"\n", top+padT-8, label)
		for i := 0; i <= 4; i++ {
			t := tMax * float64(i) / 4
			fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" text-anchor="middle">%.0fs</text>`+"\n", x(t), top+plotH-padB+14, t)
		}
	}
	axes(0, "latency ms (log)")
	for v := lo; v <= hi*1.0001; v *= 10 {
		fmt.Fprintf(bw, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", padL, yLat(v), plotW-padR, yLat(v))
		fmt.Fprintf(bw, `<text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n", padL-4, yLat(v)+4, v)
	}
	axes(off, "ops/s")
	for i := 0; i <= 4; i++ {
		v := opsMax * float64(i) / 4
		fmt.Fprintf(bw, `<text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n", padL-4, yOps(v)+4, v)
	}

	line := func(color, name string, legendY int, val func(Point) float64, y func(float64) float64) {
		fmt.Fprintf(bw, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="`, color)
		for _, p := range r.Timeline {
			fmt.Fprintf(bw, "%.1f,%.1f ", x(p.T), y(val(p)))
		}
		fmt.Fprint(bw, `"/>`+"\n")
		fmt.Fprintf(bw, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", plotW-padR-60, legendY, color, name)
	}
	line("#1f77b4", "p50", padT+4, func(p Point) float64 { return p.P50Ms }, yLat)
	line("#d62728", "p99", padT+18, func(p Point) float64 { return p.P99Ms }, yLat)
	line("#7f7f7f", "max", padT+32, func(p Point) float64 { return p.MaxMs }, yLat)
	line("#2ca02c", "ops/s", int(off)+padT+4, func(p Point) float64 { return p.OpsPerSec }, yOps)
	fmt.Fprint(bw, "</svg>\n")
	return bw.Flush()
}
