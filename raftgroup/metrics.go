package raftgroup

import (
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/metrics"
)

// timedFSM measures each batch raft applies to a group's state machine.
type timedFSM struct {
	*fsm.Store
	m *metrics.Node
}

func (t timedFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	start := time.Now()
	out := t.Store.ApplyBatch(logs)
	t.m.Applied(len(logs), time.Since(start))
	return out
}

// stateCollector reads every group's raft state when Prometheus scrapes, instead of
// keeping gauges up to date on every change.
type stateCollector struct{ n *Node }

var (
	descHasLeader = prometheus.NewDesc("duro_group_has_leader", "1 if this replica knows a leader of the group.", []string{"group"}, nil)
	descIsLeader  = prometheus.NewDesc("duro_group_is_leader", "1 if this node is the group's serving leader.", []string{"group"}, nil)
	descTerm      = prometheus.NewDesc("duro_group_term", "Current raft term of this replica.", []string{"group"}, nil)
	descCommit    = prometheus.NewDesc("duro_group_commit_index", "Commit index known to this replica.", []string{"group"}, nil)
	descApplied   = prometheus.NewDesc("duro_group_applied_index", "Last entry applied to this replica's state machine.", []string{"group"}, nil)
	descFsync     = prometheus.NewDesc("duro_log_commit_seconds_total", "Time spent committing (writing and fsyncing) the node's raft log.", nil, nil)
	descLogTx     = prometheus.NewDesc("duro_log_commits_total", "Raft log transactions committed; each is one fsync shared by all groups.", nil, nil)
	descLogReqs   = prometheus.NewDesc("duro_log_requests_total", "Raft log write requests committed (from all groups).", nil, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHasLeader, descIsLeader, descTerm, descCommit, descApplied, descFsync, descLogTx, descLogReqs} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, g := range c.n.Groups() {
		label := strconv.FormatUint(g.id, 10)
		id, _ := g.Leader()
		_, serving := g.LeaderTerm()
		ch <- prometheus.MustNewConstMetric(descHasLeader, prometheus.GaugeValue, b(id != ""), label)
		ch <- prometheus.MustNewConstMetric(descIsLeader, prometheus.GaugeValue, b(serving), label)
		ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(g.raft.CurrentTerm()), label)
		ch <- prometheus.MustNewConstMetric(descCommit, prometheus.GaugeValue, float64(g.raft.CommitIndex()), label)
		ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(g.state.AppliedIndex()), label)
	}
	st := c.n.logs.Stats()
	ch <- prometheus.MustNewConstMetric(descFsync, prometheus.CounterValue, st.CommitDuration.Seconds())
	ch <- prometheus.MustNewConstMetric(descLogTx, prometheus.CounterValue, float64(st.Transactions))
	ch <- prometheus.MustNewConstMetric(descLogReqs, prometheus.CounterValue, float64(st.Requests))
}
