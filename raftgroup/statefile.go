package raftgroup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/duro-db/duro/internal/vfs"
)

// A group's state machine is rebuilt from raft (the latest snapshot, then the log) after
// any crash that could have torn it, so it need not fsync: the raft log, fsynced before
// anything is acknowledged, is what makes writes durable. Skipping the state machine's
// fsyncs removes a second fsync stream per group (PERFORMANCE.md has the measurement).
//
// Which crashes can tear it: bbolt without fsync writes its pages and then its meta page;
// after a process crash (kill -9, panic, OOM) every completed write is in the kernel's page
// cache and reaches the disk, so the file is exactly its last commit. Only a crash of the
// machine itself (power, kernel) can leave the meta page on disk without the pages it
// points to. The marker below tells the two apart: written (and fsynced) with the kernel's
// boot ID when the state is opened, removed on a clean close. A marker from another boot
// means the machine went down with the state open: the state is discarded and rebuilt.
//
// A clean close syncs the state file (fsm.Store.Close does, even without fsync) before
// the marker goes, so a file without a marker is whole on disk. Where the boot ID cannot
// be read, the state machine fsyncs as usual.
const (
	bootIDPath = "/proc/sys/kernel/random/boot_id"
	markerName = "state.open"
)

// alwaysSyncState makes every state machine fsync, as before this scheme: benchmarks set it
// to measure the difference side by side.
var alwaysSyncState = false

// stateCommitInterval is fsm.Options.CommitInterval for every replica: how long applied
// entries stay in the state machine's open bbolt transaction (a crash loses them from the
// file, and raft replays them). BenchmarkStateCommitInterval, 4 runs each: 100 ms
// 6.3-7.7k commits/s at 194-237 CPU-µs per command, 1 s 7.8-8.6k at 165-183. A variable
// only so benchmarks can compare intervals.
var stateCommitInterval = time.Second

// bootID returns the boot ID that marks a state file open: Config.BootID if set, else the
// kernel's; nil when the state machine must fsync instead.
func bootID(cfg Config) []byte {
	if alwaysSyncState {
		return nil
	}
	if cfg.BootID != "" {
		return []byte(cfg.BootID)
	}
	b, err := os.ReadFile(bootIDPath)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	return bytes.TrimSpace(b)
}

// prepareState decides how a group's state file is opened. It returns whether the state
// machine may skip fsync, and removes a state file that a machine crash may have torn.
func prepareState(cfg Config, dir string) (noSync bool, rebuilt bool, err error) {
	boot := bootID(cfg)
	if boot == nil {
		return false, false, nil
	}
	fsys := cfg.FS
	marker := filepath.Join(dir, markerName)
	prev, err := vfs.ReadFile(fsys, marker)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, false, err
	case !bytes.Equal(bytes.TrimSpace(prev), boot):
		if err := fsys.Remove(filepath.Join(dir, "state.db")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, false, fmt.Errorf("discard state open across a machine restart: %w", err)
		}
		rebuilt = true
	}
	if err := vfs.WriteFileSynced(fsys, marker, append(boot, '\n'), 0o644); err != nil {
		return false, false, err
	}
	return true, rebuilt, nil
}

// closeState removes the marker after the state file was closed cleanly (and so synced).
// The removal need not be durable: a marker that comes back after a machine crash only
// makes the next start rebuild a state it could have trusted.
func closeState(fsys vfs.FS, dir string) {
	_ = fsys.Remove(filepath.Join(dir, markerName))
}
