package raftgroup

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/link"
	"github.com/duro-db/duro/internal/logstore"
	"github.com/duro-db/duro/internal/metrics"
)

// groupFSM is what raft applies to: the group's state machine, behind two duties.
//
// It applies an entry only once the entry is durable in this node's raft log. A leader's
// log store acknowledges appends before their fsync (logstore.SetAsyncAppends) so that
// the leader's fsync runs while the entries travel to the followers, instead of before;
// raft then counts the leader's own copy toward a commit before it is on disk. Holding
// back the apply (and so every reply and every read, which come from applied state) until
// the local copy is durable, and never advertising a commit index beyond it to followers
// (durableCommitTransport), makes every entry anyone can observe durable on a majority, as if the
// leader had fsynced first. On followers appends are synchronous and the wait is free.
//
// And it measures each batch for the node's metrics.
type groupFSM struct {
	*fsm.Store
	logs *logstore.GroupStore
	m    *metrics.Node
}

func (f groupFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	if len(logs) > 0 {
		last := logs[len(logs)-1].Index
		if err := f.logs.WaitDurable(context.Background(), last); err != nil {
			// The log store failed or closed under raft: continuing would expose entries
			// that may not be on disk. The store's failure hook stops the node.
			panic(fmt.Sprintf("raftgroup: group %d: entries up to %d never became durable: %v", f.logs.ID(), last, err))
		}
	}
	start := time.Now()
	out := f.Store.ApplyBatch(logs)
	f.m.Applied(len(logs), time.Since(start))
	return out
}

// durableCommitTransport is a group's transport (internal/link) with the commit index it
// tells followers clamped to what is durable in this node's log: a leader acknowledges its
// own appends before their fsync (see groupFSM), and a follower must not apply an entry
// that a crash of the leader could still take back. Heartbeats carry no commit index.
type durableCommitTransport struct {
	*link.Transport
	logs *logstore.GroupStore
}

func (t durableCommitTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if !link.IsHeartbeat(args) {
		if d := t.logs.DurableIndex(); args.LeaderCommitIndex > d {
			clamped := *args
			clamped.LeaderCommitIndex = d
			args = &clamped
		}
	}
	return t.Transport.AppendEntries(id, target, args, resp)
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
	descLogTx     = prometheus.NewDesc("duro_log_commits_total", "Raft log group commits; each is one WAL write and fdatasync shared by all groups.", nil, nil)
	descSegments  = prometheus.NewDesc("duro_log_wal_segments", "WAL segment files of the node's raft log (64 MiB each, preallocated).", nil, nil)
	descCopied    = prometheus.NewDesc("duro_log_wal_copied_total", "Raft log records copied forward out of old WAL segments so that those could be removed.", nil, nil)
	descLogReqs   = prometheus.NewDesc("duro_log_requests_total", "Raft log write requests committed (from all groups).", nil, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHasLeader, descIsLeader, descTerm, descCommit, descApplied, descFsync, descLogTx, descLogReqs, descSegments, descCopied} {
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
}
