package raftgroup

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/logstore"
	"github.com/duro-db/duro/internal/vfs"
	"github.com/duro-db/duro/internal/vfs/crashfs"
)

var (
	powercutSeeds = flag.Int("powercut.seeds", 0, "seeds of TestPowerCut to run (default 2000, 1000 with -short, 100 under the race detector)")
	powercutSeed  = flag.Uint64("powercut.seed", 0, "run TestPowerCut with this seed only")
)

// TestPowerCut runs a node's storage (the log store and two groups' state machines, with
// their markers and snapshots, as openGroup wires them) on a simulated disk, under a
// random workload of appends, truncations, commits to the state machines, snapshots with
// log compaction, stable writes and clean stops; the WAL rotates segments, makes spares
// and copies records forward. Power fails during a random operation, losing or tearing
// whatever was not synced (crashfs). Then the node's storage is opened again as after a
// reboot, and:
//   - it opens;
//   - each group's log and stable state are what the last acknowledged write left, or
//     what the write in flight at the cut would have made them;
//   - each state machine, brought forward as raft would (its file if trusted, else the
//     latest snapshot; then the log), equals a state machine that applied the same
//     committed entries without a crash.
//
// A failing seed is replayed with -powercut.seed; goroutines (spares, the state
// machine's flusher) may interleave differently, so a replay may need a few runs.
func TestPowerCut(t *testing.T) {
	seeds := *powercutSeeds
	switch {
	case seeds != 0:
	case raceEnabled:
		seeds = 100 // the race detector makes each seed ten times slower
	case testing.Short():
		seeds = 1000
	default:
		seeds = 2000
	}
	first := uint64(1)
	if *powercutSeed != 0 {
		first, seeds = *powercutSeed, 1
	}
	// The simulated disk never syncs the real one, but bbolt does, on its own files: a
	// memory file system keeps those syncs free where there is one.
	base := t.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "duro-powercut-"); err == nil {
		base = d
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	var (
		mu     sync.Mutex
		failed []string
		next   = first
	)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				mu.Lock()
				seed := next
				next++
				stop := seed >= first+uint64(seeds) || len(failed) >= 3
				mu.Unlock()
				if stop {
					return
				}
				dir := filepath.Join(base, strconv.FormatUint(seed, 10))
				err := runPowerCut(dir, seed)
				_ = os.RemoveAll(dir)
				if err != nil {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("seed %d (replay: go test ./raftgroup -run TestPowerCut -powercut.seed %d): %v", seed, seed, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, f := range failed {
		t.Error(f)
	}
	t.Logf("%d seeds from %d", seeds, first)
}

const (
	pcGroups      = 2
	pcSegmentSize = 32 << 10
	pcTrailing    = 8
)

// pcGroup is the model of one group: what its log and stable state must be.
type pcGroup struct {
	id       uint64
	log      map[uint64][]byte // index -> data
	first    uint64            // 0: empty
	last     uint64
	term     uint64 // the stable CurrentTerm
	commit   uint64 // entries up to here are applied to the state machine
	snapshot uint64 // index of the latest durable snapshot
	// applied holds every entry ever committed, compacted ones included; committed
	// entries never change, so clones share it.
	applied map[uint64][]byte
}

func (g *pcGroup) clone() *pcGroup {
	c := *g
	c.log = make(map[uint64][]byte, len(g.log))
	for k, v := range g.log {
		c.log[k] = v
	}
	return &c
}

// pcNode is the storage of a node as openGroup wires it.
type pcNode struct {
	dir    string
	cfg    Config
	logs   *logstore.Store
	states map[uint64]*fsm.Store
}

func pcGroupDir(dir string, gid uint64) string {
	return filepath.Join(dir, "groups", strconv.FormatUint(gid, 10))
}

func openPCNode(dir string, fsys vfs.FS, boot string, commitInterval int64) (*pcNode, error) {
	cfg := Config{FS: fsys, BootID: boot}
	n := &pcNode{dir: dir, cfg: cfg, states: map[uint64]*fsm.Store{}}
	var err error
	n.logs, err = logstore.Open(filepath.Join(dir, "raft-log.db"), logstore.Options{
		FS: fsys, SegmentSize: pcSegmentSize, OnFailure: func(error) {},
	})
	if err != nil {
		return nil, fmt.Errorf("open log store: %w", err)
	}
	for gid := uint64(1); gid <= pcGroups; gid++ {
		gdir := pcGroupDir(dir, gid)
		if err := vfs.MkdirAllSynced(fsys, gdir, 0o755); err != nil {
			n.close()
			return nil, err
		}
		noSync, _, err := prepareState(cfg, gdir)
		if err != nil {
			n.close()
			return nil, fmt.Errorf("prepare state: %w", err)
		}
		st, err := fsm.Open(filepath.Join(gdir, "state.db"), fsm.Options{
			NoSync: noSync, FS: fsys, InitialMmapSize: 1 << 20,
			CommitInterval: time.Duration(commitInterval), Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			n.close()
			return nil, fmt.Errorf("open state of group %d: %w", gid, err)
		}
		n.states[gid] = st
	}
	return n, nil
}

// close stops the node cleanly: each state closed (and synced) before its marker goes,
// as Group.shutdown does.
func (n *pcNode) close() error {
	var errs []error
	for gid, st := range n.states {
		if err := st.Close(); err != nil {
			errs = append(errs, err)
		} else {
			closeState(n.cfg.FS, pcGroupDir(n.dir, gid))
		}
	}
	if n.logs != nil {
		errs = append(errs, n.logs.Close())
	}
	return errors.Join(errs...)
}

// pcEntry makes the data of entry index of a group: a command writing one key, sometimes
// large enough that its WAL frame spans several blocks.
func pcEntry(rng *rand.Rand, gid, index, term uint64) []byte {
	obj := make([]byte, fsm.IDLen)
	obj[0], obj[1] = byte(gid), byte(rng.IntN(4))
	size := 16 + rng.IntN(200)
	if rng.IntN(8) == 0 {
		size = 5000 + rng.IntN(8000)
	}
	val := bytes.Repeat([]byte{byte(index), byte(term)}, size/2)
	data, err := fsm.EncodeCommand(&fsm.Command{Object: obj, Time: int64(index),
		Ops: []fsm.Op{{Kind: fsm.OpPut, Key: []byte(fmt.Sprintf("k%d", rng.IntN(16))), Value: val}}})
	if err != nil {
		panic(err)
	}
	return data
}

func pcLogs(gid uint64, from uint64, data [][]byte, term uint64) []*raft.Log {
	logs := make([]*raft.Log, len(data))
	for i, d := range data {
		logs[i] = &raft.Log{Index: from + uint64(i), Term: term, Type: raft.LogCommand, Data: d}
	}
	return logs
}

// runPowerCut runs one seed in dir and returns what it found wrong.
func runPowerCut(dir string, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	root := filepath.Join(dir, "disk")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	disk, err := crashfs.New(root, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		return err
	}
	image := filepath.Join(dir, "image")
	disk.CutAtOp(1+rng.IntN(400), image)
	commitInterval := int64(-1) // commit every batch
	if rng.IntN(2) == 0 {
		commitInterval = int64(time.Millisecond) * int64(1+rng.IntN(20))
	}

	models := map[uint64]*pcGroup{}
	for gid := uint64(1); gid <= pcGroups; gid++ {
		models[gid] = &pcGroup{id: gid, log: map[uint64][]byte{}, applied: map[uint64][]byte{}}
	}
	// inflight is the model after the operation in progress, if it is one whose
	// outcome a cut leaves unknown.
	var inflight *pcGroup
	node, err := openPCNode(root, disk, "boot-1", commitInterval)
	if err != nil && !isDone(disk.Done()) {
		return fmt.Errorf("first open: %w", err)
	}
	term := uint64(1)
	for step := 0; node != nil && step < 200 && !isDone(disk.Done()); step++ {
		g := models[1+uint64(rng.IntN(pcGroups))]
		ls, err := node.logs.Group(g.id)
		if err != nil {
			return err
		}
		st := node.states[g.id]
		next := g.clone()
		inflight = next
		switch op := rng.IntN(100); {
		case op < 45: // append
			n := 1 + rng.IntN(4)
			from := g.last + 1
			data := make([][]byte, n)
			for i := range data {
				data[i] = pcEntry(rng, g.id, from+uint64(i), term)
				next.log[from+uint64(i)] = data[i]
			}
			next.last = from + uint64(n) - 1
			if next.first == 0 {
				next.first = from
			}
			err = ls.StoreLogs(pcLogs(g.id, from, data, term))
		case op < 55 && g.last > g.commit: // truncate what is not committed, as a follower does
			from := g.commit + 1 + uint64(rng.IntN(int(g.last-g.commit)))
			for i := from; i <= g.last; i++ {
				delete(next.log, i)
			}
			next.last = from - 1
			if next.last < next.first {
				next.first, next.last = 0, 0
			}
			term++
			err = ls.DeleteRange(from, g.last)
		case op < 80 && g.last > g.commit: // commit and apply, as raft does
			to := g.commit + 1 + uint64(rng.IntN(int(g.last-g.commit)))
			var batch []*raft.Log
			for i := g.commit + 1; i <= to; i++ {
				batch = append(batch, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: g.log[i]})
				g.applied[i] = g.log[i]
			}
			st.ApplyBatch(batch)
			next.commit = to
			inflight = nil // nothing written through the disk here
		case op < 88 && g.commit > g.snapshot: // snapshot, then compact the log behind it
			index, err2 := pcSnapshot(disk, pcGroupDir(root, g.id), st)
			if err2 != nil {
				err = err2
				break
			}
			g.snapshot, next.snapshot = index, index
			if index > pcTrailing && g.first != 0 && index-pcTrailing >= g.first {
				upto := index - pcTrailing
				for i := g.first; i <= upto; i++ {
					delete(next.log, i)
				}
				next.first = upto + 1
				err = ls.DeleteRange(g.first, upto)
			}
		case op < 94: // a stable write, as an election makes
			next.term = g.term + 1
			err = ls.SetUint64([]byte("CurrentTerm"), next.term)
		case op < 97: // a clean stop and start, on the same boot
			inflight = nil
			if err = node.close(); err == nil {
				node, err = openPCNode(root, disk, "boot-1", commitInterval)
			}
			if err != nil {
				node = nil
			}
		default:
			inflight = nil
			continue
		}
		if err != nil && !isDone(disk.Done()) {
			return fmt.Errorf("step %d: %w", step, err)
		}
		if isDone(disk.Done()) {
			// Failed by the cut (some libraries wrap its error with %s), or
			// returned after it: bbolt's writes do not go through the simulated
			// disk, so a stable write can still succeed after the power is off.
			// Either way it is in flight, not acknowledged.
			break
		}
		models[g.id] = next
		inflight = nil
	}
	if _, err := disk.Cut(image); err != nil {
		return fmt.Errorf("write the image: %w", err)
	}
	if node != nil {
		_ = node.close() // fails: the power is off
	}

	// The reboot.
	after, err := openPCNode(image, vfs.Default, "boot-2", -1)
	if err != nil {
		return fmt.Errorf("reopen after the power cut: %w", err)
	}
	defer after.close()
	for gid := uint64(1); gid <= pcGroups; gid++ {
		m := models[gid]
		alt := m
		if inflight != nil && inflight.id == gid {
			alt = inflight
		}
		if err := checkPCGroup(after, m, alt); err != nil {
			return fmt.Errorf("group %d: %w", gid, err)
		}
	}
	return nil
}

// pcSnapshot persists st's snapshot as raft's file snapshot store does (data synced, then
// the directory renamed into place and its parent synced) and returns its index.
func pcSnapshot(fsys vfs.FS, gdir string, st *fsm.Store) (uint64, error) {
	snap, err := st.Snapshot()
	if err != nil {
		return 0, err
	}
	defer snap.Release()
	index := st.AppliedIndex()
	snaps := filepath.Join(gdir, "snapshots")
	if err := vfs.MkdirAllSynced(fsys, snaps, 0o755); err != nil {
		return 0, err
	}
	tmp := filepath.Join(snaps, fmt.Sprintf("%020d.tmp", index))
	if err := fsys.MkdirAll(tmp, 0o755); err != nil {
		return 0, err
	}
	f, err := fsys.OpenFile(filepath.Join(tmp, "state.bin"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	sink := &pcSink{Writer: vfs.NewWriter(f)}
	err = snap.Persist(sink)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.SyncDir(tmp)
	}
	if err == nil {
		err = fsys.Rename(filepath.Join(tmp, "state.bin"), filepath.Join(snaps, fmt.Sprintf("%020d.bin", index)))
	}
	if err == nil {
		err = fsys.SyncDir(snaps)
	}
	return index, err
}

type pcSink struct{ io.Writer }

func (s *pcSink) Close() error  { return nil }
func (s *pcSink) ID() string    { return "" }
func (s *pcSink) Cancel() error { return nil }

// latestPCSnapshot returns the newest whole snapshot of a group and its index.
func latestPCSnapshot(gdir string) (string, uint64) {
	entries, _ := os.ReadDir(filepath.Join(gdir, "snapshots"))
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".bin") {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return "", 0
	}
	sort.Strings(names)
	name := names[len(names)-1]
	index, _ := strconv.ParseUint(strings.TrimSuffix(name, ".bin"), 10, 64)
	return filepath.Join(gdir, "snapshots", name), index
}

// checkPCGroup checks a group after the reboot against its model after the last
// acknowledged operation (m) or after the one in flight at the cut (alt).
func checkPCGroup(n *pcNode, m, alt *pcGroup) error {
	ls, err := n.logs.Group(m.id)
	if err != nil {
		return err
	}
	var errs []string
	matched := false
	for _, want := range []*pcGroup{m, alt} {
		if err := matchLog(ls, want); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		matched = true
		break
	}
	if !matched {
		return fmt.Errorf("log matches neither the acknowledged state nor the one in flight: %s", strings.Join(errs, "; "))
	}
	term, err := ls.GetUint64([]byte("CurrentTerm"))
	if err != nil && !errors.Is(err, logstore.ErrKeyNotFound) {
		return err
	}
	if term != m.term && term != alt.term {
		return fmt.Errorf("CurrentTerm %d, want %d (or %d)", term, m.term, alt.term)
	}

	// Bring the state machine forward as raft would: from its file if that was kept,
	// else from the latest snapshot, then the committed entries of the log.
	st := n.states[m.id]
	gdir := pcGroupDir(n.dir, m.id)
	if path, index := latestPCSnapshot(gdir); index > st.AppliedIndex() {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		if err := st.Restore(f); err != nil {
			return fmt.Errorf("restore snapshot %d: %w", index, err)
		}
	}
	applied := st.AppliedIndex()
	if applied > m.commit {
		return fmt.Errorf("state machine at %d, past the last entry applied (%d)", applied, m.commit)
	}
	first, _ := ls.FirstIndex()
	if applied < m.commit && first > applied+1 {
		return fmt.Errorf("state machine at %d, log from %d: entries between are lost", applied, first)
	}
	var batch []*raft.Log
	for i := applied + 1; i <= m.commit; i++ {
		var l raft.Log
		if err := ls.GetLog(i, &l); err != nil {
			return fmt.Errorf("committed entry %d: %w", i, err)
		}
		batch = append(batch, &l)
	}
	if len(batch) > 0 {
		st.ApplyBatch(batch)
	}
	got, _, err := st.Hash()
	if err != nil {
		return err
	}
	want, err := referenceHash(m)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("state machine (from %d, replayed to %d) differs from one that applied the same entries without a crash", applied, m.commit)
	}
	return nil
}

// matchLog checks that ls holds exactly want's log.
func matchLog(ls *logstore.GroupStore, want *pcGroup) error {
	first, _ := ls.FirstIndex()
	last, _ := ls.LastIndex()
	if first != want.first || last != want.last {
		return fmt.Errorf("log [%d, %d], want [%d, %d]", first, last, want.first, want.last)
	}
	for i := first; i != 0 && i <= last; i++ {
		var l raft.Log
		if err := ls.GetLog(i, &l); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if !bytes.Equal(l.Data, want.log[i]) {
			return fmt.Errorf("entry %d holds other data", i)
		}
	}
	return nil
}

// referenceHash is the hash of a state machine that applied m's committed entries with
// no crash.
func referenceHash(m *pcGroup) ([]byte, error) {
	dir, err := os.MkdirTemp("", "duro-powercut-ref")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	st, err := fsm.Open(filepath.Join(dir, "state.db"), fsm.Options{NoSync: true, InitialMmapSize: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var batch []*raft.Log
	for i := uint64(1); i <= m.commit; i++ {
		data, ok := m.applied[i]
		if !ok {
			return nil, fmt.Errorf("model lost committed entry %d", i)
		}
		batch = append(batch, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: data})
	}
	if len(batch) > 0 {
		st.ApplyBatch(batch)
	}
	h, _, err := st.Hash()
	return h, err
}
