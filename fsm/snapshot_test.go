package fsm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// persist takes a snapshot of s and returns its bytes.
func persist(t *testing.T, s *Store) []byte {
	t.Helper()
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

func restore(s *Store, b []byte) error {
	return s.Restore(io.NopCloser(bytes.NewReader(b)))
}

func TestSnapshotRestore(t *testing.T) {
	data := workload(t, 2, 400)
	opts := Options{DedupPerClient: 5, DedupTTL: 20 * time.Second}
	a := openTest(t, opts)
	applyInBatches(t, a, data[:300], func() int { return 16 })
	snapBytes := persist(t, a)

	// b has state of its own, which the restore must replace entirely.
	b := openTest(t, opts)
	applyOK(t, b, cmd(testID(200), put("stale", "x"), setAlarm(1)))
	applyOK(t, b, cmd(testID(200)))
	if err := restore(b, snapBytes); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	ha, appliedA := mustHash(t, a)
	hb, appliedB := mustHash(t, b)
	if !bytes.Equal(ha, hb) || appliedA != appliedB || b.AppliedIndex() != 300 {
		t.Fatalf("restored: applied %d (store says %d), want %d; hashes equal: %v",
			appliedB, b.AppliedIndex(), appliedA, bytes.Equal(ha, hb))
	}
	if got := readObject(t, b, testID(200)); got.version != 0 || len(got.kvs) != 0 || got.hasAlarm {
		t.Fatalf("restore kept old state: %+v", got)
	}
	// Both go on identically: dedup table, log clock and all came across.
	ra := applyInBatches(t, a, data[300:], func() int { return 16 })
	rb := applyInBatches(t, b, data[300:], func() int { return 5 })
	for i := range ra {
		if ra[i].Version != rb[i].Version || ra[i].Duplicate != rb[i].Duplicate {
			t.Fatalf("entry %d: %+v vs %+v", 301+i, ra[i], rb[i])
		}
	}
	ha, _ = mustHash(t, a)
	hb, _ = mustHash(t, b)
	if !bytes.Equal(ha, hb) {
		t.Fatal("states diverge after restore")
	}
}

// pipeSink is a raft.SnapshotSink writing into a pipe, so the test controls when Persist
// makes progress.
type pipeSink struct{ *io.PipeWriter }

func (pipeSink) ID() string { return "pipe" }
func (p pipeSink) Cancel() error {
	return p.CloseWithError(errors.New("cancelled"))
}

func TestSnapshotPersistDuringApply(t *testing.T) {
	data := workload(t, 3, 500)
	a := openTest(t, Options{})
	applyInBatches(t, a, data[:200], func() int { return 10 })
	want, wantApplied := mustHash(t, a)

	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	persisted := make(chan error, 1)
	go func() { persisted <- snap.Persist(pipeSink{pw}) }()

	// Read the first bytes, so Persist is under way, then apply while it is blocked.
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, pr, 4096); err != nil {
		t.Fatal(err)
	}
	applyInBatches(t, a, data[200:], func() int { return 10 })
	if _, err := io.Copy(&buf, pr); err != nil {
		t.Fatal(err)
	}
	if err := <-persisted; err != nil {
		t.Fatalf("Persist: %v", err)
	}
	snap.Release()

	b := openTest(t, Options{})
	if err := restore(b, buf.Bytes()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	got, gotApplied := mustHash(t, b)
	if !bytes.Equal(got, want) || gotApplied != wantApplied {
		t.Fatalf("snapshot taken at %d restored at %d; hashes equal: %v", wantApplied, gotApplied, bytes.Equal(got, want))
	}
	if a.AppliedIndex() != 500 {
		t.Fatalf("applies during Persist: applied %d, want 500", a.AppliedIndex())
	}
}

// withTrailer appends a valid snapshot trailer to a bare database file.
func withTrailer(file []byte) []byte {
	sum := sha256.Sum256(file)
	b := append(bytes.Clone(file), sum[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(file)))
	return append(b, snapshotMagic...)
}

func TestRestoreRejectsBadSnapshot(t *testing.T) {
	s := openTest(t, Options{})
	applyOK(t, s, cmd(testID(1), put("a", "1")))
	good := persist(t, s)
	file := good[:len(good)-trailerLen]
	if !bytes.Equal(withTrailer(file), good) {
		t.Fatal("withTrailer does not match Persist")
	}
	before, _ := mustHash(t, s)

	foreignPath := filepath.Join(t.TempDir(), "foreign.db")
	if err := writeForeignBolt(foreignPath); err != nil {
		t.Fatal(err)
	}
	foreign, err := os.ReadFile(foreignPath)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, offs ...int) []byte {
		b = bytes.Clone(b)
		for _, o := range offs {
			b[o] ^= 0xff
		}
		return b
	}
	wrongLength := bytes.Clone(good)
	binary.BigEndian.PutUint64(wrongLength[len(good)-trailerLen+sha256.Size:], uint64(len(file)+1))

	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"garbage", bytes.Repeat([]byte("duro"), 4096)},
		{"no trailer", file},
		{"truncated stream", good[:len(good)/2]},
		{"one byte flipped", flip(good, len(file)/2)},
		{"trailer length wrong", wrongLength},
		{"trailer magic wrong", flip(good, len(good)-1)},
		// Damage the sender's own file could carry, under a valid digest:
		{"truncated file", withTrailer(file[:len(file)-4096])},
		{"corrupt meta pages", withTrailer(flip(file, 16, 4096+16))},
		{"root page zeroed", withTrailer(append(append(bytes.Clone(file[:2*4096]), make([]byte, 4096)...), file[3*4096:]...))},
		{"foreign bbolt file", withTrailer(foreign)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := restore(s, tt.b); !errors.Is(err, ErrNotFSMFile) {
				t.Fatalf("Restore: %v, want ErrNotFSMFile", err)
			}
			if after, _ := mustHash(t, s); !bytes.Equal(after, before) {
				t.Fatal("a rejected snapshot changed the state")
			}
			applyOK(t, s, cmd(testID(2))) // the store is still usable
			before, _ = mustHash(t, s)
			leftovers, _ := filepath.Glob(s.path + restoreTempSuffix + "*")
			if len(leftovers) != 0 {
				t.Fatalf("temporary files left: %v", leftovers)
			}
		})
	}
}

// TestRestoreWhileReading runs View and WaitApplied callers across restores.
func TestRestoreWhileReading(t *testing.T) {
	src := openTest(t, Options{})
	applyInBatches(t, src, workload(t, 4, 100), func() int { return 100 })
	snapBytes := persist(t, src)

	s := openTest(t, Options{})
	applyOK(t, s, cmd(testID(1), put("a", "1")))
	waited := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		waited <- s.WaitApplied(ctx, 50) // only a restore gets it there
	}()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.View(func(tx *Tx) error {
					return tx.List(testID(1), ListOptions{}, func(k, v []byte) bool { return true })
				}); err != nil {
					t.Errorf("View during restore: %v", err)
					return
				}
				if _, _, err := s.Hash(); err != nil {
					t.Errorf("Hash during restore: %v", err)
					return
				}
			}
		}()
	}
	for range 5 {
		if err := restore(s, snapBytes); err != nil {
			t.Fatalf("Restore: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	if err := <-waited; err != nil {
		t.Fatalf("WaitApplied across restore: %v", err)
	}
	if s.AppliedIndex() != 100 {
		t.Fatalf("applied %d, want 100", s.AppliedIndex())
	}
}

func TestSnapshotReleaseAndClose(t *testing.T) {
	s := openTest(t, Options{})
	applyOK(t, s, cmd(testID(1), put("a", "1")))
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	snap.Release()
	snap.Release() // raft may release twice in error paths; harmless
	var sink bufSink
	if err := snap.Persist(&sink); err == nil || !sink.cancelled {
		t.Fatalf("Persist after Release: %v, cancelled %v", err, sink.cancelled)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Snapshot after Close: %v", err)
	}
	if err := restore(s, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Restore after Close: %v", err)
	}
}

func TestOpenRemovesRestoreLeftovers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	leftover := path + restoreTempSuffix + "12345"
	if err := os.WriteFile(leftover, []byte("half a snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("leftover still there: %v", err)
	}
}

func TestHash(t *testing.T) {
	id := testID(1)
	base := []*Command{
		cmd(id, put("a", "1"), put("b", "2"), setAlarm(10)),
		clientCmd(id, testClient(1), 1, 0, "r", put("c", "3")),
	}
	with := func(extra ...*Command) []*Command { return append(append([]*Command{}, base...), extra...) }
	alt := func(f func(c []*Command)) []*Command {
		cs := []*Command{
			cmd(id, put("a", "1"), put("b", "2"), setAlarm(10)),
			clientCmd(id, testClient(1), 1, 0, "r", put("c", "3")),
		}
		f(cs)
		return cs
	}
	tests := []struct {
		name string
		cmds []*Command
		same bool
	}{
		{"identical", with(), true},
		{"same state, other batching", with(), true},
		{"value", alt(func(c []*Command) { c[0].Ops[0].Value = []byte("x") }), false},
		{"key", alt(func(c []*Command) { c[0].Ops[0].Key = []byte("z") }), false},
		{"alarm", alt(func(c []*Command) { c[0].Ops[2].Alarm = 11 }), false},
		{"version", with(cmd(id)), false},
		{"other object's version", with(cmd(testID(2))), false},
		{"dedup result", alt(func(c []*Command) { c[1].Result = []byte("s") }), false},
		{"dedup seq", alt(func(c []*Command) { c[1].Seq = 2 }), false},
		{"no dedup", alt(func(c []*Command) { c[1].Client, c[1].Seq, c[1].Result = nil, 0, nil }), false},
		{"log clock", alt(func(c []*Command) { c[1].Time = 2 }), false},
	}
	s0 := openTest(t, Options{})
	applyCmds(t, s0, base...)
	want, _ := mustHash(t, s0)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, Options{})
			if i == 1 {
				for _, c := range tt.cmds {
					applyCmds(t, s, c)
				}
			} else {
				applyCmds(t, s, tt.cmds...)
			}
			got, _ := mustHash(t, s)
			if bytes.Equal(got, want) != tt.same {
				t.Fatalf("hash equal = %v, want %v", !tt.same, tt.same)
			}
		})
	}

	// Entries the state machine only counts move the applied index, not the digest.
	s0.ApplyBatch([]*raft.Log{{Index: s0.AppliedIndex() + 1, Type: raft.LogConfiguration}})
	got, applied := mustHash(t, s0)
	if !bytes.Equal(got, want) || applied != 3 {
		t.Fatalf("after a configuration entry: equal %v, applied %d", bytes.Equal(got, want), applied)
	}
}

// FuzzRestore feeds mutated snapshots to Restore: whatever the bytes, it must return an
// error or leave a usable store, never crash.
func FuzzRestore(f *testing.F) {
	src, err := Open(filepath.Join(f.TempDir(), "src.db"), Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	for i, data := range workload(f, 5, 50) {
		src.ApplyBatch(logOf(uint64(i+1), data))
	}
	snap, err := src.Snapshot()
	if err != nil {
		f.Fatal(err)
	}
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		f.Fatal(err)
	}
	snap.Release()
	src.Close()
	good := sink.Bytes()
	f.Add(good)
	// A format-1 snapshot, which Restore migrates.
	format1, err := os.ReadFile(filepath.Join("testdata", "format1.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(withTrailer(format1))
	for _, off := range []int{2 * 4096, 2*4096 + 16, 3*4096 + 20, len(good) - 4096 + 30} {
		b := bytes.Clone(good)
		for i := off; i < off+8 && i < len(b); i++ {
			b[i] ^= 0x5a
		}
		f.Add(b)
	}
	s, err := Open(filepath.Join(f.TempDir(), "dst.db"), Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := restore(s, b); err != nil {
			if !errors.Is(err, ErrNotFSMFile) {
				t.Fatalf("Restore: %v, want ErrNotFSMFile", err)
			}
			return
		}
		if _, _, err := s.Hash(); err != nil {
			t.Fatalf("Hash after a successful restore: %v", err)
		}
	})
}

// TestTrailerWriterSplits feeds a snapshot to Restore's trailer check in writes of every
// size, including ones that end inside the trailer.
func TestTrailerWriterSplits(t *testing.T) {
	s := openTest(t, Options{})
	applyOK(t, s, cmd(testID(1), put("a", "1")))
	good := persist(t, s)
	for _, size := range []int{1, 7, trailerLen - 1, trailerLen, trailerLen + 1, 4096, len(good) - 1, len(good)} {
		var file bytes.Buffer
		tw := &trailerWriter{w: &file, h: sha256.New()}
		for rest := good; len(rest) > 0; {
			n := min(size, len(rest))
			if w, err := tw.Write(rest[:n]); err != nil || w != n {
				t.Fatalf("size %d: Write = %d, %v", size, w, err)
			}
			rest = rest[n:]
		}
		if err := tw.check(); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(file.Bytes(), good[:len(good)-trailerLen]) {
			t.Fatalf("size %d: file bytes differ", size)
		}
	}
}
