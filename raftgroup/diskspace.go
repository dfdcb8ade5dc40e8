package raftgroup

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/diskspace"
	"github.com/duro-db/duro/internal/logstore"
)

// A node watches the free space of its data dir's file system against Config.DiskReserve
// (internal/diskspace). Below it, Submit and Commit refuse every command that stores
// something (a put, an alarm) with diskspace.ErrNoSpace, before it reaches the log; reads,
// read-only calls, deletes, log compaction, snapshots and elections go on, and so does
// replication of what is already in the logs: the reserve is the room they run in. When
// space comes back, writes resume by themselves.
//
// At start, a new data dir must have room for the WAL's two preallocated segments plus
// the reserve, or the node refuses to start and says how much it needs. An existing one
// starts whatever it has: refusing would only turn a full disk into an outage of reads
// too; below the reserve it starts refusing writes.

// walFiles is the space the WAL sets aside on a new data dir: the active segment and the
// spare made ahead of it.
func (c Config) walFiles() uint64 {
	seg := c.WALSegmentSize
	if seg <= 0 {
		seg = logstore.DefaultSegmentSize
	}
	return 2 * uint64(seg)
}

// watchDisk measures the data dir's free space, refuses a new data dir that cannot hold
// the WAL's files and the reserve, and starts the monitor.
func (n *Node) watchDisk(fresh bool) error {
	reserve := n.cfg.DiskReserve
	m, err := diskspace.New(n.cfg.DataDir, reserve, 0, n.log)
	if err != nil {
		return err
	}
	if fresh && !n.cfg.NoSync {
		need := reserve + n.cfg.walFiles()
		if free := m.Free(); free < need {
			// Leave no half-made data dir behind: the next start is then a fresh one too.
			_ = os.Remove(filepath.Join(n.cfg.DataDir, identityFile))
			return fmt.Errorf("%w: %s has %s free; a new node needs %s: its WAL's two preallocated segments (2 × %s, --wal-segment-size) and its reserve (%s, --disk-reserve). Free space, or lower them",
				diskspace.ErrNoSpace, n.cfg.DataDir, diskspace.Bytes(free), diskspace.Bytes(need),
				diskspace.Bytes(n.cfg.walFiles()/2), diskspace.Bytes(reserve))
		}
	}
	if m.Low() {
		n.log.Error("starting with the disk below its reserve: writes are refused until space is freed",
			"free", diskspace.Bytes(m.Free()), "reserve", diskspace.Bytes(reserve))
	}
	m.Start()
	n.disk = m
	return nil
}

// Disk returns the monitor of the node's free disk space.
func (n *Node) Disk() *diskspace.Monitor { return n.disk }

// spaceFor returns diskspace.ErrNoSpace if the disk is below its reserve and cmd would
// store something; deletes and commands that store nothing pass, so an operator can make
// room from inside the system.
func (n *Node) spaceFor(cmd *fsm.Command) error {
	if n.disk == nil || !n.disk.Low() || !storesData(cmd) {
		return nil
	}
	return n.disk.Err()
}

func storesData(cmd *fsm.Command) bool {
	for _, op := range cmd.Ops {
		if op.Kind == fsm.OpPut || op.Kind == fsm.OpSetAlarm {
			return true
		}
	}
	return false
}
