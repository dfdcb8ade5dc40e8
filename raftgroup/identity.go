package raftgroup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/duro-db/duro/internal/vfs"
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
	if err := vfs.MkdirAllSynced(c.FS, c.DataDir, 0o755); err != nil {
		return false, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(c.DataDir, identityFile)
	b, err := vfs.ReadFile(c.FS, path)
	if errors.Is(err, fs.ErrNotExist) {
		id := identity{NodeID: c.ID, ClusterID: clusterID, Groups: c.Groups, Replicas: c.Replicas,
			Slots: c.Slots, Created: time.Now().UTC()}
		for _, p := range c.Peers {
			id.Peers = append(id.Peers, p.ID)
		}
		b, _ := json.MarshalIndent(id, "", "  ")
		// Durable before anything else is written: a power cut must not leave the
		// groups' state beside an identity file that is empty or gone.
		tmp := path + ".tmp"
		if err := vfs.WriteFileSynced(c.FS, tmp, append(b, '\n'), 0o644); err != nil {
			return false, withPath("write", tmp, err)
		}
		if err := c.FS.Rename(tmp, path); err != nil {
			return false, err
		}
		return true, c.FS.SyncDir(c.DataDir)
	}
	if err != nil {
		return false, withPath("read", path, err)
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

// withPath says what failed on which file, unless err (an *fs.PathError of the os) says
// it already: "read F: open F: not a directory" names the file twice.
func withPath(op, path string, err error) error {
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}
