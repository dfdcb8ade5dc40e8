package duro

import (
	"github.com/hashicorp/raft"
)

// NodeStatus is one node's view of itself and its groups: what `duro status` tabulates.
type NodeStatus struct {
	ID        string        `json:"id"`
	Addr      string        `json:"addr"`
	HTTP      string        `json:"http,omitempty"`
	ClusterID string        `json:"cluster_id"`
	Ready     bool          `json:"ready"`
	NotReady  string        `json:"not_ready,omitempty"`
	Disk      DiskStatus    `json:"disk"`
	Groups    []GroupStatus `json:"groups"`
}

// DiskStatus is the free space of the node's data dir against its reserve. While Low, the
// node refuses calls that store something (ErrNoSpace); reads and deletes go on.
type DiskStatus struct {
	Free    uint64 `json:"free_bytes"`
	Total   uint64 `json:"total_bytes"`
	Reserve uint64 `json:"reserve_bytes"`
	Low     bool   `json:"low"`
}

// GroupStatus is one replica's state.
type GroupStatus struct {
	ID       uint64   `json:"id"`
	Role     string   `json:"role"` // leader, follower, candidate, shutdown
	Serving  bool     `json:"serving"`
	Leader   string   `json:"leader"`
	Term     uint64   `json:"term"`
	Commit   uint64   `json:"commit_index"`
	Applied  uint64   `json:"applied_index"` // last entry raft has handed to the state machine
	LastLog  uint64   `json:"last_log_index"`
	Replicas []string `json:"replicas"`
}

// Status reports this node's state.
func (s *Server) Status() NodeStatus {
	st := NodeStatus{ID: s.cfg.ID, Addr: s.cfg.Advertise, HTTP: s.HTTPAddr(), ClusterID: s.clusterID}
	if err := s.ready(); err != nil {
		st.NotReady = err.Error()
	} else {
		st.Ready = true
	}
	if d := s.node.Disk(); d != nil {
		st.Disk = DiskStatus{Free: d.Free(), Total: d.Total(), Reserve: d.Reserve(), Low: d.Low()}
	}
	replicas := s.node.Placement().Replicas
	for _, g := range s.node.Groups() {
		r := g.Raft()
		leader, _ := g.Leader()
		_, serving := g.LeaderTerm()
		role := "follower"
		switch r.State() {
		case raft.Leader:
			role = "leader"
		case raft.Candidate:
			role = "candidate"
		case raft.Shutdown:
			role = "shutdown"
		}
		st.Groups = append(st.Groups, GroupStatus{
			ID: g.ID(), Role: role, Serving: serving, Leader: leader, Term: r.CurrentTerm(),
			Commit: r.CommitIndex(), Applied: r.AppliedIndex(), LastLog: r.LastIndex(),
			Replicas: replicas[g.ID()],
		})
	}
	return st
}
