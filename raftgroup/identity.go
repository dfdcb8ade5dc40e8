package raftgroup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// identityFile records which node and which cluster a data dir belongs to, so a node
// started with the wrong --data-dir, --id or cluster shape refuses to run instead of
// joining groups with someone else's log.
const identityFile = "duro-node.json"

type identity struct {
	NodeID    string    `json:"node_id"`
	ClusterID string    `json:"cluster_id"`
	Groups    int       `json:"groups"`
	Replicas  int       `json:"replicas"`
	Slots     int       `json:"slots"`
	Peers     []string  `json:"peer_ids"`
	Created   time.Time `json:"created"`
}

// checkIdentity creates the identity file of a new data dir, or verifies an existing one.
// It reports whether the data dir is new.
func checkIdentity(c Config, clusterID string) (fresh bool, err error) {
	if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
		return false, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(c.DataDir, identityFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		id := identity{NodeID: c.ID, ClusterID: clusterID, Groups: c.Groups, Replicas: c.Replicas,
			Slots: c.Slots, Created: time.Now().UTC()}
		for _, p := range c.Peers {
			id.Peers = append(id.Peers, p.ID)
		}
		b, _ := json.MarshalIndent(id, "", "  ")
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
			return false, fmt.Errorf("write %s: %w", tmp, err)
		}
		return true, os.Rename(tmp, path)
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	var id identity
	if err := json.Unmarshal(b, &id); err != nil {
		return false, fmt.Errorf("%w: %s is not a duro identity file: %v", ErrDataDir, path, err)
	}
	if id.NodeID != c.ID {
		return false, fmt.Errorf("%w: %s belongs to node %q, not %q", ErrDataDir, c.DataDir, id.NodeID, c.ID)
	}
	if id.ClusterID != clusterID {
		return false, fmt.Errorf("%w: %s belongs to cluster %s (peers %v, groups %d, replicas %d, slots %d); this node was started for cluster %s",
			ErrDataDir, c.DataDir, id.ClusterID, id.Peers, id.Groups, id.Replicas, id.Slots, clusterID)
	}
	return false, nil
}
