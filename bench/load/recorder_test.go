package load

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestPercentilesOfAKnownDistribution(t *testing.T) {
	// 1..10,000 µs once each: the q-th percentile is q% of 10 ms, to HDR's 0.1%.
	start := time.Unix(0, 0)
	r := newRecorder(start, time.Second)
	for i := 1; i <= 10_000; i++ {
		r.record(start, time.Duration(i)*time.Microsecond)
	}
	got := r.result(Config{Workload: "known"}, time.Second).Latency
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"min", got.MinMs, 0.001},
		{"p50", got.P50Ms, 5},
		{"p90", got.P90Ms, 9},
		{"p99", got.P99Ms, 9.9},
		{"p99.9", got.P999Ms, 9.99},
		{"max", got.MaxMs, 10},
		{"mean", got.MeanMs, 5.0005},
	} {
		if tc.got < tc.want*0.999-0.0005 || tc.got > tc.want*1.001+0.0005 {
			t.Errorf("%s = %.4f ms, want %.4f ms ± 0.1%%", tc.name, tc.got, tc.want)
		}
	}
}

func TestLatenciesOutsideTheHistogramAreClamped(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want int64
	}{
		{0, minLatencyUS},
		{-time.Second, minLatencyUS},
		{500 * time.Nanosecond, minLatencyUS},
		{1500 * time.Microsecond, 1500},
		{time.Hour, maxLatencyUS},
	} {
		if got := micros(tc.in); got != tc.want {
			t.Errorf("micros(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestResultEncodings(t *testing.T) {
	r := &Result{System: "duro", Workload: "write", Callers: 128, Seconds: 2, Ops: 4, OpsPerSec: 2,
		Latency:  Latency{P50Ms: 1, P99Ms: 5, MaxMs: 7},
		Timeline: []Point{{T: 1, OpsPerSec: 2, P50Ms: 1, P99Ms: 5, MaxMs: 7}, {T: 2, OpsPerSec: 2, P50Ms: 0.5, P99Ms: 3, MaxMs: 3}}}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"system", "workload", "callers", "ops_per_sec", "latency", "timeline"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, js.String())
		}
	}
	var tbl strings.Builder
	if err := r.WriteTable(&tbl); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tbl.String(), "p99.9") || !strings.Contains(tbl.String(), "2 ops/s") {
		t.Errorf("table:\n%s", tbl.String())
	}
	for _, res := range []*Result{r, {Workload: "empty"}} {
		var svg bytes.Buffer
		if err := res.WriteSVG(&svg); err != nil {
			t.Fatal(err)
		}
		checkXML(t, svg.Bytes())
	}
}

// checkXML fails t unless b is well-formed XML.
func checkXML(t *testing.T, b []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed: %v\n%s", err, b)
		}
	}
}
