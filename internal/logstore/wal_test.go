package logstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"

	"github.com/duro-db/duro/internal/vfs"
)

// smallSegments makes the WAL rotate every size bytes for the test.
func smallSegments(t testing.TB, size int64) {
	old := segmentSize
	segmentSize = size
	t.Cleanup(func() { segmentSize = old })
}

func walSegments(t testing.TB, path string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(path+walSuffix, "*"+segmentSuffix))
	mustOK(t, err)
	return names
}

// flipByte inverts one byte of a file.
func flipByte(t testing.TB, name string, off int64) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	mustOK(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	mustOK(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	mustOK(t, err)
}

// twoFramesAndABigOne stores entries 1 and 2 of group 1, then entry 3 with size bytes
// of data in a frame of its own, and closes the store; it returns the store's path,
// the segment, and where entry 3's frame starts.
func twoFramesAndABigOne(t testing.TB, size int) (path, seg string, frame int64) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "logs.db")
	s := openStore(t, path, Options{NoSync: true})
	g := group(t, s, 1)
	storeLogs(t, g, entries(1, 1, 2, 1))
	frame = s.wal.active().size // acknowledged: the writer is done with it
	big := entry(1, 3, 1)
	big.Data = bytes.Repeat([]byte{0xa5}, size)
	storeLogs(t, g, []*raft.Log{big})
	l, _ := g.idx.get(3)
	seg = l.seg.path
	closeStore(t, s)
	return path, seg, frame
}

// overwrite writes b at off in the file name, as damage or a torn write would.
func overwrite(t testing.TB, name string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	mustOK(t, err)
	_, err = f.WriteAt(b, off)
	mustOK(t, err)
	mustOK(t, f.Close())
}

// The index against a map: every put and delete keeps lookups, bounds and
// the segments' live counts exact.
func TestIndexMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	segs := []*segment{{seq: 1}, {seq: 2}, {seq: 3}}
	for round := range 200 {
		var x logIndex
		model := map[uint64]loc{}
		for range 60 {
			switch op := rng.IntN(10); {
			case op < 6: // a run of puts, mostly appends
				_, last := x.bounds()
				from := last + 1
				if rng.IntN(3) == 0 || last == 0 {
					from = 1 + rng.Uint64N(40)
				}
				for i := from; i < from+1+rng.Uint64N(5); i++ {
					l := loc{seg: segs[rng.IntN(len(segs))], off: int64(rng.IntN(1000)), n: uint32(1 + rng.IntN(9))}
					x.put(i, l)
					model[i] = l
				}
			default:
				from := 1 + rng.Uint64N(45)
				to := from + rng.Uint64N(10)
				x.deleteRange(from, to)
				for i := from; i <= to; i++ {
					delete(model, i)
				}
			}
			first, last := x.bounds()
			var wantFirst, wantLast uint64
			for i := range model {
				if wantFirst == 0 || i < wantFirst {
					wantFirst = i
				}
				wantLast = max(wantLast, i)
			}
			if first != wantFirst || last != wantLast {
				t.Fatalf("round %d: bounds [%d, %d], want [%d, %d]", round, first, last, wantFirst, wantLast)
			}
			for i := uint64(0); i <= 60; i++ {
				got, ok := x.get(i)
				want, wantOK := model[i]
				if ok != wantOK || got != want {
					t.Fatalf("round %d: get(%d) = %v %v, want %v %v", round, i, got, ok, want, wantOK)
				}
			}
			for k := 1; k < len(x.runs); k++ {
				if x.runs[k-1].last()+1 >= x.runs[k].first {
					t.Fatalf("round %d: runs %d and %d overlap or touch", round, k-1, k)
				}
			}
		}
		// Live counts: what the model references, nothing more.
		x.deleteRange(0, 1<<20)
		for _, s := range segs {
			if s.live != 0 || s.liveBytes != 0 {
				t.Fatalf("round %d: segment %d still counts %d records (%d bytes) after everything was deleted", round, s.seq, s.live, s.liveBytes)
			}
		}
	}
}

// A reopened store has exactly what was acknowledged, through rotations,
// truncations at both ends, and copying forward.
func TestWALReopenMatchesModel(t *testing.T) {
	smallSegments(t, 8<<10)
	path := filepath.Join(t.TempDir(), "logs.db")
	s := openStore(t, path, Options{NoSync: true})
	rng := rand.New(rand.NewPCG(3, 4))
	type entryKey struct{ g, i uint64 }
	terms := map[entryKey]uint64{}
	bounds := map[uint64][2]uint64{}
	// Payloads of up to 240 bytes fill the small segments.
	padded := func(id, i, term uint64) *raft.Log {
		l := entry(id, i, term)
		l.Data = append(l.Data, make([]byte, (i+term)%5*60)...)
		return l
	}
	check := func(s *Store) {
		t.Helper()
		for id := uint64(1); id <= 3; id++ {
			g := group(t, s, id)
			b := bounds[id]
			assertBounds(t, g, b[0], b[1])
			for i := b[0]; i <= b[1] && b[1] > 0; i++ {
				var got raft.Log
				mustOK(t, g.GetLog(i, &got))
				assertLogEqual(t, &got, padded(id, i, terms[entryKey{id, i}]))
			}
		}
	}
	for step := range 600 {
		id := uint64(1 + rng.IntN(3))
		if id == 3 && step > 50 {
			id = 2 // group 3 stops writing early, so it pins old segments
		}
		g := group(t, s, id)
		b := bounds[id]
		switch op := rng.IntN(10); {
		case op < 7: // append, sometimes over the tail with a new term
			from := b[1] + 1
			if b[1] > b[0] && rng.IntN(4) == 0 {
				// A new leader's entries conflict: raft truncates the
				// tail, then appends.
				from = b[1] - rng.Uint64N(min(3, b[1]-b[0]))
				mustDeleteRange(t, g, from, b[1])
			}
			term := uint64(step)
			to := from + rng.Uint64N(8)
			var logs []*raft.Log
			for i := from; i <= to; i++ {
				logs = append(logs, padded(id, i, term))
			}
			storeLogs(t, g, logs)
			for i := from; i <= to; i++ {
				terms[entryKey{id, i}] = term
			}
			if b[0] == 0 {
				b[0] = from
			}
			b[1] = to
		case op < 9 && b[1] > b[0]+20: // compact the head, as after a snapshot
			to := b[0] + rng.Uint64N(b[1]-b[0]-10)
			mustDeleteRange(t, g, b[0], to)
			b[0] = to + 1
		default:
			continue
		}
		bounds[id] = b
		if step%97 == 0 {
			closeStore(t, s)
			s = openStore(t, path, Options{NoSync: true})
			check(s)
		}
	}
	check(s)
	closeStore(t, s)
	check(openStore(t, path, Options{NoSync: true}))
}

// Old segments go: raft compacting one group's head frees them, and a group
// that stopped writing does not pin them, because its records are copied
// forward.
func TestWALReclaimsSpace(t *testing.T) {
	smallSegments(t, 16<<10)
	path := filepath.Join(t.TempDir(), "logs.db")
	s := openStore(t, path, Options{NoSync: true})
	idle, busy := group(t, s, 1), group(t, s, 2)
	storeLogs(t, idle, entries(1, 1, 5, 1))
	maxSegs := 0
	for i := uint64(1); i <= 3000; i++ {
		l := entry(2, i, 1)
		l.Data = append(l.Data, make([]byte, 200)...)
		mustOK(t, busy.StoreLog(l))
		if i > 50 {
			mustDeleteRange(t, busy, i-50, i-50)
		}
		maxSegs = max(maxSegs, len(walSegments(t, path)))
	}
	// ~650 KB written in 16 KB segments; what is live is ~12 KB.
	if n := len(walSegments(t, path)); n > 4 || maxSegs > 5 {
		t.Fatalf("%d segments at the end, %d at most; want at most 4 and 5", n, maxSegs)
	}
	for i := uint64(1); i <= 5; i++ {
		assertLog(t, idle, i, 1)
	}
	st := s.Stats()
	if st.CopiedLogs == 0 || st.Segments != uint64(len(walSegments(t, path))) {
		t.Fatalf("Stats: %d logs copied forward, %d segments; want some copied and %d segments",
			st.CopiedLogs, st.Segments, len(walSegments(t, path)))
	}
	closeStore(t, s)
	s = openStore(t, path, Options{NoSync: true})
	idle, busy = group(t, s, 1), group(t, s, 2)
	assertBounds(t, idle, 1, 5)
	assertBounds(t, busy, 2951, 3000)
	for i := uint64(1); i <= 5; i++ {
		assertLog(t, idle, i, 1)
	}
}

// With fsync on, segments after the first are made ahead as zero-filled
// spares; the spare never outlives the store, and one a crash left behind is
// removed at open. Logs written into spares replay like any others.
func TestWALSpareSegments(t *testing.T) {
	t.Run("direct", func(t *testing.T) { testWALSpareSegments(t, true) })
	t.Run("without O_DIRECT", func(t *testing.T) {
		old := openDirect
		openDirect = func(vfs.FS, string) (vfs.File, error) { return nil, errors.New("not supported") }
		t.Cleanup(func() { openDirect = old })
		testWALSpareSegments(t, false)
	})
}

func testWALSpareSegments(t *testing.T, direct bool) {
	smallSegments(t, 64<<10)
	path := filepath.Join(t.TempDir(), "logs.db")
	spare := filepath.Join(path+walSuffix, spareName)
	s := openStore(t, path, Options{})
	g := group(t, s, 1)
	const n = 1200 // ~280 KB: the first segment and four or five more
	padded := func(i uint64) *raft.Log {
		l := entry(1, i, 1)
		l.Data = append(l.Data, make([]byte, 200)...)
		return l
	}
	for i := uint64(1); i <= n; i++ {
		mustOK(t, g.StoreLog(padded(i)))
	}
	segs := s.wal.segs
	if len(segs) < 4 {
		t.Fatalf("%d segments, want at least 4", len(segs))
	}
	// Which segments come from spares depends on when the background writes
	// finish; the ones that do must be full-size zeros beyond their frames.
	zeroed := 0
	for _, seg := range segs {
		if !seg.zeroed {
			continue
		}
		zeroed++
		st, err := seg.f.Stat()
		mustOK(t, err)
		if st.Size() != segmentSize || !allZero(seg.f, seg.size, segmentSize) {
			t.Fatalf("segment %s from a spare: %d bytes, zeros after its frames %v", seg.path, st.Size(), allZero(seg.f, seg.size, segmentSize))
		}
	}
	if zeroed == 0 {
		t.Fatalf("no segment of %d was made from a spare", len(segs))
	}
	if a := s.wal.active(); direct && a.zeroed && a.direct == nil {
		t.Logf("the file system takes no direct writes: spares are written through the page cache")
	}
	for _, seg := range segs {
		if !direct && seg.direct != nil {
			t.Fatalf("segment %s written directly where O_DIRECT could not be opened", seg.path)
		}
	}
	// Read back through the page cache what direct writes put on disk.
	for i := uint64(n); i > n-200; i-- {
		var got raft.Log
		mustOK(t, g.GetLog(i, &got))
		assertLogEqual(t, &got, padded(i))
	}
	closeStore(t, s)
	if _, err := os.Stat(spare); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("spare after close: %v, want it gone", err)
	}

	mustOK(t, os.WriteFile(spare, []byte("half-made"), 0o600))
	s = openStore(t, path, Options{})
	defer closeStore(t, s)
	if _, err := os.Stat(spare); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("spare left by a crash after open: %v, want it removed", err)
	}
	g = group(t, s, 1)
	assertBounds(t, g, 1, n)
	for i := uint64(1); i <= n; i += 97 {
		var got raft.Log
		mustOK(t, g.GetLog(i, &got))
		assertLogEqual(t, &got, padded(i))
	}
}

// A spare that cannot be made (here a directory in its way; a full disk alike) leaves
// segments preallocated as before, and is tried again once per segment, not per commit.
func TestWALSpareFailureFallsBack(t *testing.T) {
	smallSegments(t, 64<<10)
	path := filepath.Join(t.TempDir(), "logs.db")
	s := openStore(t, path, Options{})
	mustOK(t, os.Mkdir(filepath.Join(path+walSuffix, spareName), 0o700))
	g := group(t, s, 1)
	const n = 600
	for i := uint64(1); i <= n; i++ {
		l := entry(1, i, 1)
		l.Data = append(l.Data, make([]byte, 200)...)
		mustOK(t, g.StoreLog(l))
	}
	segs := len(s.wal.segs)
	for _, seg := range s.wal.segs {
		if seg.zeroed {
			t.Fatalf("segment %s made from a spare that could not be made", seg.path)
		}
	}
	if tries := s.wal.spareTries; segs < 3 || tries > segs {
		t.Fatalf("%d spares tried over %d segments; want at most one per segment", tries, segs)
	}
	closeStore(t, s)
	s = openStore(t, path, Options{})
	assertBounds(t, group(t, s, 1), 1, n)
}

// A log that raft has not compacted is live: however many segments it fills,
// nothing is copied (copying would rewrite it forever and free nothing).
func TestWALDoesNotCopyLiveLogs(t *testing.T) {
	smallSegments(t, 16<<10)
	s := openStore(t, filepath.Join(t.TempDir(), "logs.db"), Options{NoSync: true})
	a, b := group(t, s, 1), group(t, s, 2)
	for i := uint64(1); i <= 1500; i++ {
		for _, g := range []*GroupStore{a, b} {
			l := entry(g.ID(), i, 1)
			l.Data = append(l.Data, make([]byte, 200)...)
			mustOK(t, g.StoreLog(l))
		}
	}
	if st := s.Stats(); st.CopiedLogs != 0 || st.Segments < 20 {
		t.Fatalf("Stats: %d logs copied forward over %d segments; want none copied over at least 20", st.CopiedLogs, st.Segments)
	}
}

// Bytes on disk are not trusted: corruption is ErrCorrupt, except a torn
// last frame, which was never acknowledged and is cut off.
func TestWALCorruption(t *testing.T) {
	// threeFrames writes entries 1, 2 and 3 of group 1 in three commits and
	// closes the store; it returns the segment and the frames' offsets.
	threeFrames := func(t *testing.T) (path, seg string, offs []int64) {
		path = filepath.Join(t.TempDir(), "logs.db")
		s := openStore(t, path, Options{NoSync: true})
		g := group(t, s, 1)
		for i := uint64(1); i <= 3; i++ {
			storeLogs(t, g, []*raft.Log{entry(1, i, 1)})
			l, _ := g.idx.get(i)
			offs = append(offs, l.off)
		}
		closeStore(t, s)
		segs := walSegments(t, path)
		if len(segs) != 1 {
			t.Fatalf("%d segments, want 1", len(segs))
		}
		return path, segs[0], offs
	}
	t.Run("record corrupted under a running store", func(t *testing.T) {
		path, _, _ := threeFrames(t)
		s := openStore(t, path, Options{NoSync: true})
		g := group(t, s, 1)
		l, _ := g.idx.get(2)
		flipByte(t, l.seg.path, l.off+int64(l.n)-5)
		var got raft.Log
		if err := g.GetLog(2, &got); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("GetLog(2) = %v, want ErrCorrupt", err)
		}
		assertLog(t, g, 1, 1)
		assertLog(t, g, 3, 1)
	})
	t.Run("bad frame before the last fails Open", func(t *testing.T) {
		path, seg, offs := threeFrames(t)
		flipByte(t, seg, offs[1])
		if s, err := Open(path, Options{NoSync: true}); !errors.Is(err, ErrCorrupt) {
			if err == nil {
				s.Close()
			}
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
	t.Run("torn last frame is cut off", func(t *testing.T) {
		path, seg, offs := threeFrames(t)
		flipByte(t, seg, offs[2])
		s := openStore(t, path, Options{NoSync: true})
		g := group(t, s, 1)
		assertBounds(t, g, 1, 2)
		storeLogs(t, g, entries(1, 3, 4, 2))
		closeStore(t, s)
		g = group(t, openStore(t, path, Options{NoSync: true}), 1)
		assertBounds(t, g, 1, 4)
		assertLog(t, g, 2, 1)
		assertLog(t, g, 4, 2)
	})
	t.Run("torn last frame whose first block was lost is cut off", func(t *testing.T) {
		// Entries 1-2, then a 12 KB entry 3 whose frame spans several
		// blocks; a power cut persisted its later blocks but not the
		// first, which holds the frame header.
		path, seg, frame := twoFramesAndABigOne(t, 12<<10)
		blockEnd := (frame/4096 + 1) * 4096
		overwrite(t, seg, frame, make([]byte, blockEnd-frame))

		s := openStore(t, path, Options{NoSync: true})
		g := group(t, s, 1)
		assertBounds(t, g, 1, 2)
		storeLogs(t, g, entries(1, 3, 4, 2))
		closeStore(t, s)
		g = group(t, openStore(t, path, Options{NoSync: true}), 1)
		assertBounds(t, g, 1, 4)
		assertLog(t, g, 2, 1)
		assertLog(t, g, 4, 2)
	})
	t.Run("torn last frame whose length is torn too is cut off", func(t *testing.T) {
		// The header straddles a sector boundary and its first byte, in the
		// sector before, did not land: the length reads shorter than the
		// frame, and the frame's own bytes follow the extent it claims.
		path, seg, frame := twoFramesAndABigOne(t, 1000)
		overwrite(t, seg, frame, []byte{0}) // the length's low byte

		g := group(t, openStore(t, path, Options{NoSync: true}), 1)
		assertBounds(t, g, 1, 2)
		assertLog(t, g, 2, 1)
	})
	t.Run("lost header before a whole later frame fails Open", func(t *testing.T) {
		// A zero header followed, within a torn frame's reach, by a whole
		// frame of the next batch: the commit after it was acknowledged, so
		// the zeros are damage, not a torn write, and nothing is cut.
		path := filepath.Join(t.TempDir(), "logs.db")
		s := openStore(t, path, Options{NoSync: true})
		g := group(t, s, 1)
		storeLogs(t, g, entries(1, 1, 1, 1))
		frame := s.wal.active().size
		storeLogs(t, g, entries(1, 2, 2, 1))
		storeLogs(t, g, entries(1, 3, 3, 1))
		l, _ := g.idx.get(3)
		seg := l.seg.path
		closeStore(t, s)
		overwrite(t, seg, frame, make([]byte, frameHeaderSize))
		if s, err := Open(path, Options{NoSync: true}); !errors.Is(err, ErrCorrupt) {
			if err == nil {
				s.Close()
			}
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
	t.Run("data far beyond an empty frame header fails Open", func(t *testing.T) {
		path, seg, offs := threeFrames(t)
		overwrite(t, seg, offs[2]+2*maxTornExtent, []byte{1})
		if s, err := Open(path, Options{NoSync: true}); !errors.Is(err, ErrCorrupt) {
			if err == nil {
				s.Close()
			}
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
	t.Run("bad segment header", func(t *testing.T) {
		path, seg, _ := threeFrames(t)
		flipByte(t, seg, 3)
		if s, err := Open(path, Options{NoSync: true}); !errors.Is(err, ErrCorrupt) {
			if err == nil {
				s.Close()
			}
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
	t.Run("unfinished last segment is removed", func(t *testing.T) {
		path, seg, _ := threeFrames(t)
		next := filepath.Join(filepath.Dir(seg), segmentName(2))
		mustOK(t, os.WriteFile(next, make([]byte, 4096), 0o600))
		g := group(t, openStore(t, path, Options{NoSync: true}), 1)
		assertBounds(t, g, 1, 3)
		if _, err := os.Stat(next); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("unfinished segment still there: %v", err)
		}
	})
	t.Run("missing segment", func(t *testing.T) {
		smallSegments(t, 4<<10)
		path := filepath.Join(t.TempDir(), "logs.db")
		s := openStore(t, path, Options{NoSync: true})
		g := group(t, s, 1)
		for i := uint64(1); i <= 100; i++ {
			l := entry(1, i, 1)
			l.Data = append(l.Data, make([]byte, 200)...)
			mustOK(t, g.StoreLog(l))
		}
		closeStore(t, s)
		segs := walSegments(t, path)
		if len(segs) < 3 {
			t.Fatalf("%d segments, want at least 3", len(segs))
		}
		mustOK(t, os.Remove(segs[1]))
		if s, err := Open(path, Options{NoSync: true}); !errors.Is(err, ErrCorrupt) {
			if err == nil {
				s.Close()
			}
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
}

// A format 1 file, with the logs in bbolt, opens with them moved to the WAL.
func TestMigrateFormat1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.db")
	db, err := bbolt.Open(path, 0o600, nil)
	mustOK(t, err)
	mustOK(t, db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket(metaBucket)
		if err != nil {
			return err
		}
		if err := meta.Put(formatKey, []byte{formatV1}); err != nil {
			return err
		}
		for id := uint64(1); id <= 2; id++ {
			name := groupBucketName(id)
			top, err := tx.CreateBucket(name[:])
			if err != nil {
				return err
			}
			logs, err := top.CreateBucket(logBucket)
			if err != nil {
				return err
			}
			for _, l := range entries(id, 10*id, 10*id+5, 3) {
				if err := logs.Put(indexKey(l.Index), appendLog(nil, l)); err != nil {
					return err
				}
			}
			stable, err := top.CreateBucket(stableBucket)
			if err != nil {
				return err
			}
			if err := stable.Put([]byte("CurrentTerm"), binary.BigEndian.AppendUint64(nil, 3)); err != nil {
				return err
			}
		}
		return nil
	}))
	mustOK(t, db.Close())

	for range 2 { // and again, once migrated
		s := openStore(t, path, Options{NoSync: true})
		for id := uint64(1); id <= 2; id++ {
			g := group(t, s, id)
			assertBounds(t, g, 10*id, 10*id+5)
			for i := 10 * id; i <= 10*id+5; i++ {
				assertLog(t, g, i, 3)
			}
			if term, err := g.GetUint64([]byte("CurrentTerm")); err != nil || term != 3 {
				t.Fatalf("group %d: CurrentTerm = %d, %v; want 3", id, term, err)
			}
		}
		closeStore(t, s)
	}
	db, err = bbolt.Open(path, 0o600, nil)
	mustOK(t, err)
	defer db.Close()
	mustOK(t, db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(metaBucket).Get(formatKey); len(v) != 1 || v[0] != formatVersion {
			return fmt.Errorf("format %x after migration, want %d", v, formatVersion)
		}
		name := groupBucketName(1)
		if tx.Bucket(name[:]).Bucket(logBucket) != nil {
			return errors.New("the log bucket is still in the file")
		}
		return nil
	}))
}

// Frames come from the disk: no body may make the parser panic.
func FuzzWALFrame(f *testing.F) {
	frame := (&wal{}).newFrame(nil)
	frame = appendStoreOp(frame, 1, 2)
	frame, _ = appendRecord(frame, appendLog(nil, entry(1, 1, 1)))
	frame, _ = appendRecord(frame, appendLog(nil, entry(1, 2, 1)))
	frame = appendDeleteOp(frame, 1, 1, 1)
	f.Add(frame[frameHeaderSize:])
	f.Add([]byte{})
	f.Add(make([]byte, batchSeqSize+1))
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) < batchSeqSize {
			return // readFrame never passes such a body on
		}
		idx := map[uint64]*logIndex{}
		_ = replayFrame(&segment{seq: 1}, segmentHeaderSize, body, idx)
	})
}

// A commit that aborts (a stable write fails) after scanning the oldest
// segment to copy its live records forward must not lose its place: the
// records it scanned are scanned again, and the segment still goes.
func TestWALReclaimsSpaceAfterAbortedCommit(t *testing.T) {
	smallSegments(t, 16<<10)
	path := filepath.Join(t.TempDir(), "logs.db")
	s := openStore(t, path, Options{NoSync: true})
	idle, busy, bad := group(t, s, 1), group(t, s, 2), group(t, s, 3)
	// In group 3's bucket "stable" is a plain value: its stable writes
	// abort their transaction.
	mustOK(t, s.db.Update(func(tx *bbolt.Tx) error {
		top, err := tx.CreateBucket(bad.name[:])
		if err != nil {
			return err
		}
		return top.Put(stableBucket, []byte("oops"))
	}))
	storeLogs(t, idle, entries(1, 1, 5, 1))
	// Each write is one commit; abortNext makes the next commit, the
	// first to copy forward, an aborted one. Acknowledged writes order
	// the writer's updates before these reads of its state.
	aborted := false
	abortNext := func() {
		if aborted || !s.wal.shouldCopy() {
			return
		}
		aborted = true
		if err := bad.Set([]byte("k"), []byte("v")); err == nil {
			t.Fatal("stable write into a corrupt bucket succeeded")
		}
		if n := s.Stats().CopiedLogs; n != 0 {
			t.Fatalf("%d logs copied before the aborted commit, want none", n)
		}
	}
	maxSegs := 0
	for i := uint64(1); i <= 3000; i++ {
		l := entry(2, i, 1)
		l.Data = append(l.Data, make([]byte, 200)...)
		mustOK(t, busy.StoreLog(l))
		abortNext()
		if i > 50 {
			mustDeleteRange(t, busy, i-50, i-50)
			abortNext()
		}
		maxSegs = max(maxSegs, len(walSegments(t, path)))
	}
	if !aborted {
		t.Fatal("the WAL never copied forward")
	}
	if n := len(walSegments(t, path)); n > 4 || maxSegs > 5 {
		t.Fatalf("%d segments at the end, %d at most; want at most 4 and 5", n, maxSegs)
	}
	for j := uint64(1); j <= 5; j++ {
		assertLog(t, idle, j, 1)
	}
}

// fullFS is the operating system's file system whose disk is full while full is set:
// preallocation fails with ENOSPC, as fallocate does.
type fullFS struct {
	vfs.FS
	full *atomic.Bool
}

func (f fullFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return fullFile{file, f.full}, nil
}

type fullFile struct {
	vfs.File
	full *atomic.Bool
}

func (f fullFile) Allocate(size int64) error {
	if f.full.Load() {
		return syscall.ENOSPC
	}
	return f.File.Allocate(size)
}

// A full disk that keeps the WAL from making its next segment fails the commit that
// needed it, and only that one: nothing of it was written, so the store goes on (a
// follower refuses appends instead of stopping), and writes resume once space is back.
func TestWALFullDiskFailsTheCommitNotTheStore(t *testing.T) {
	smallSegments(t, 16<<10)
	var full atomic.Bool
	path := filepath.Join(t.TempDir(), "logs.db")
	s := openStore(t, path, Options{NoSync: true, FS: fullFS{vfs.Default, &full},
		OnFailure: func(err error) { t.Errorf("the store failed: %v", err) }})
	g := group(t, s, 1)
	big := func(i uint64) *raft.Log {
		l := entry(1, i, 1)
		l.Data = append(l.Data, make([]byte, 3000)...)
		return l
	}
	i := uint64(1)
	for ; i <= 3; i++ {
		mustOK(t, g.StoreLog(big(i)))
	}
	full.Store(true)
	var err error
	for ; i < 20; i++ {
		if err = g.StoreLog(big(i)); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writes into a full disk: %v, want ENOSPC once the WAL must rotate", err)
	}
	if err := g.StoreLog(big(i)); !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrFailed) {
		t.Fatalf("write while still full = %v, want ENOSPC and the store not failed", err)
	}
	assertBounds(t, g, 1, i-1)
	full.Store(false)
	mustOK(t, g.StoreLog(big(i)))
	closeStore(t, s)
	g = group(t, openStore(t, path, Options{NoSync: true}), 1)
	assertBounds(t, g, 1, i)
	for j := uint64(1); j <= i; j++ {
		var l raft.Log
		if err := g.GetLog(j, &l); err != nil || !bytes.Equal(l.Data, big(j).Data) {
			t.Fatalf("entry %d after reopening: %v", j, err)
		}
	}
}
