package raftgroup

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

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
	descLogTx     = prometheus.NewDesc("duro_log_commits_total", "Raft log group commits; each is one WAL write and fdatasync shared by all groups.", nil, nil)
	descSegments  = prometheus.NewDesc("duro_log_wal_segments", "WAL segment files of the node's raft log (64 MiB each, preallocated).", nil, nil)
	descCopied    = prometheus.NewDesc("duro_log_wal_copied_total", "Raft log records copied forward out of old WAL segments so that those could be removed.", nil, nil)
	descDiskFree  = prometheus.NewDesc("duro_disk_free_bytes", "Free space of the file system holding the node's data dir.", nil, nil)
	descDiskRsv   = prometheus.NewDesc("duro_disk_reserve_bytes", "Free space below which the node refuses writes (--disk-reserve).", nil, nil)
	descDiskLow   = prometheus.NewDesc("duro_disk_writes_refused", "1 while the disk is below its reserve and calls that store something get ErrNoSpace.", nil, nil)
	descLogReqs   = prometheus.NewDesc("duro_log_requests_total", "Raft log write requests committed (from all groups).", nil, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHasLeader, descIsLeader, descTerm, descCommit, descApplied, descFsync, descLogTx, descLogReqs, descSegments, descCopied, descDiskFree, descDiskRsv, descDiskLow} {
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
	ch <- prometheus.MustNewConstMetric(descSegments, prometheus.GaugeValue, float64(st.Segments))
	ch <- prometheus.MustNewConstMetric(descCopied, prometheus.CounterValue, float64(st.CopiedLogs))
	if d := c.n.disk; d != nil {
		ch <- prometheus.MustNewConstMetric(descDiskFree, prometheus.GaugeValue, float64(d.Free()))
		ch <- prometheus.MustNewConstMetric(descDiskRsv, prometheus.GaugeValue, float64(d.Reserve()))
		ch <- prometheus.MustNewConstMetric(descDiskLow, prometheus.GaugeValue, b(d.Low()))
	}
}
