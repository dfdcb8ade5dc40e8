// Package metrics holds a node's Prometheus collectors. Each node has its own registry (a
// `duro dev` process runs three nodes), and every method is safe on a nil *Node so
// packages can record unconditionally.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/duro-db/duro/internal/buildinfo"
)

// Node is one node's collectors.
type Node struct {
	Registry *prometheus.Registry

	leaderChanges *prometheus.CounterVec
	proposals     *prometheus.CounterVec
	applySeconds  prometheus.Histogram
	applyEntries  prometheus.Histogram
	entryCommands prometheus.Histogram
	calls         *prometheus.CounterVec
	callSeconds   *prometheus.HistogramVec
	beatRounds    *prometheus.CounterVec
}

// New creates a node's registry with the Go runtime and process collectors, the build
// the node runs, and duro's own.
func New() *Node {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The usual *_build_info: a constant 1 whose labels say which build answers, so a
	// dashboard or an alert can tell which build each node runs (a cluster is upgraded
	// all at once, not node by node).
	b := buildinfo.Get()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "duro_build_info",
		Help:        "Always 1; the labels name the version, commit and Go version of the running build.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion},
	}, func() float64 { return 1 }))
	lat := prometheus.ExponentialBuckets(0.0001, 2, 16) // 100 µs .. 3.3 s
	m := &Node{
		Registry: reg,
		leaderChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duro_leader_changes_total", Help: "Times this node gained or lost the leadership of a group.",
		}, []string{"group"}),
		proposals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duro_proposals_total", Help: "Commands proposed by this node, by outcome (committed, failed).",
		}, []string{"group", "outcome"}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "duro_apply_duration_seconds", Help: "Time to apply one batch of committed entries to the state machine (one bbolt transaction).",
			Buckets: lat,
		}),
		applyEntries: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "duro_apply_batch_entries", Help: "Entries per applied batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		entryCommands: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "duro_proposal_batch_commands", Help: "Commands per log entry this node proposed (commands submitted together share one entry).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9),
		}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duro_calls_total", Help: "Object calls answered by this node, by class, method and outcome.",
		}, []string{"class", "method", "outcome"}),
		callSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "duro_call_duration_seconds", Help: "Latency of object calls answered by this node, commit included.",
			Buckets: lat,
		}, []string{"class"}),
		beatRounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duro_heartbeat_rounds_total", Help: "Heartbeat rounds (one per peer node for every group this node leads there) sent, by peer and outcome (ok, failed).",
		}, []string{"peer", "outcome"}),
	}
	reg.MustRegister(m.leaderChanges, m.proposals, m.applySeconds, m.applyEntries, m.entryCommands, m.calls, m.callSeconds, m.beatRounds)
	return m
}

func group(g uint64) string { return strconv.FormatUint(g, 10) }

// LeaderChanged counts a gain or loss of leadership of group g.
func (m *Node) LeaderChanged(g uint64) {
	if m != nil {
		m.leaderChanges.WithLabelValues(group(g)).Inc()
	}
}

// ProposedEntry records that this node handed raft one log entry of n commands.
func (m *Node) ProposedEntry(n int) {
	if m != nil {
		m.entryCommands.Observe(float64(n))
	}
}

// Proposed counts the outcome of one proposal to group g.
func (m *Node) Proposed(g uint64, committed bool) {
	if m == nil {
		return
	}
	outcome := "committed"
	if !committed {
		outcome = "failed"
	}
	m.proposals.WithLabelValues(group(g), outcome).Inc()
}

// HeartbeatRound counts one heartbeat round sent to peer.
func (m *Node) HeartbeatRound(peer string, ok bool) {
	if m == nil {
		return
	}
	outcome := "ok"
	if !ok {
		outcome = "failed"
	}
	m.beatRounds.WithLabelValues(peer, outcome).Inc()
}

// Applied records one batch applied to a state machine.
func (m *Node) Applied(entries int, d time.Duration) {
	if m != nil {
		m.applySeconds.Observe(d.Seconds())
		m.applyEntries.Observe(float64(entries))
	}
}

// Called records one answered call. outcome is "ok" or a short error class.
func (m *Node) Called(class, method, outcome string, d time.Duration) {
	if m != nil {
		m.calls.WithLabelValues(class, method, outcome).Inc()
		m.callSeconds.WithLabelValues(class).Observe(d.Seconds())
	}
}

// Register adds a collector (e.g. one reading raft state at scrape time).
func (m *Node) Register(c prometheus.Collector) {
	if m != nil {
		m.Registry.MustRegister(c)
	}
}
