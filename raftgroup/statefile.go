package raftgroup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// A group's state machine is rebuilt from raft (the latest snapshot, then the log) after
// any crash that could have torn it, so it need not fsync: the raft log, fsynced before
// anything is acknowledged, is what makes writes durable. Skipping the state machine's
// fsyncs removes a second fsync stream per group, the wall MEASUREMENTS.md describes.
//
// Which crashes can tear it: bbolt without fsync writes its pages and then its meta page;
// after a process crash (kill -9, panic, OOM) every completed write is in the kernel's page
// cache and reaches the disk, so the file is exactly its last commit. Only a crash of the
// machine itself (power, kernel) can leave the meta page on disk without the pages it
// points to. The marker below tells the two apart: written (and fsynced) with the kernel's
// boot ID when the state is opened, removed on a clean close. A marker from another boot
// means the machine went down with the state open: the state is discarded and rebuilt.
//
// Where the boot ID cannot be read, the state machine fsyncs as usual.
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

func bootID() []byte {
	if alwaysSyncState {
		return nil
	}
	b, err := os.ReadFile(bootIDPath)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	return bytes.TrimSpace(b)
}

// prepareState decides how a group's state file is opened. It returns whether the state
// machine may skip fsync, and removes a state file that a machine crash may have torn.
func prepareState(dir string) (noSync bool, rebuilt bool, err error) {
	boot := bootID()
	if boot == nil {
		return false, false, nil
	}
	marker := filepath.Join(dir, markerName)
	prev, err := os.ReadFile(marker)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, false, err
	case !bytes.Equal(bytes.TrimSpace(prev), boot):
		if err := os.Remove(filepath.Join(dir, "state.db")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, false, fmt.Errorf("discard state open across a machine restart: %w", err)
		}
		rebuilt = true
	}
	if err := writeSynced(marker, append(boot, '\n')); err != nil {
		return false, false, err
	}
	return true, rebuilt, nil
}

// closeState removes the marker after the state file was closed cleanly.
func closeState(dir string) {
	os.Remove(filepath.Join(dir, markerName))
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
