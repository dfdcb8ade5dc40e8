package fsm

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The shape of the runtime's write load on one raft group of a node (10,000 objects over
// 16 groups, 128 callers writing 256 B values): each entry is one Register.Put, that is one
// 256 B put on a random one of ~600 existing objects with the next object version, a
// result of about the value's size stored for deduplication, for one of 128 clients whose
// Seq increases by one per call and whose Ack acknowledges every earlier call (so each
// entry also prunes the client's previous dedup entry).
const (
	rtObjects  = 10_000 / 16
	rtClients  = 128
	rtValue    = 256
	rtResult   = 270 // the JSON of RegisterValue{256 B string}
	rtKey      = "value"
	rtTimeBase = int64(1_700_000_000_000_000_000)
	rtTimeStep = int64(50_000) // 50 µs of log time per entry: no dedup entry expires
)

// rtLoad generates the runtime-shaped entries, one object version and one client Seq at a
// time, deterministically.
type rtLoad struct {
	r       *rand.Rand
	value   []byte
	result  []byte
	version []uint64 // per object
	seq     []uint64 // per client
	index   uint64
	n       int
}

func newRTLoad() *rtLoad {
	l := &rtLoad{
		r:       rand.New(rand.NewPCG(7, 11)),
		value:   make([]byte, rtValue),
		result:  make([]byte, rtResult),
		version: make([]uint64, rtObjects),
		seq:     make([]uint64, rtClients),
	}
	for i := range l.value {
		l.value[i] = byte(l.r.IntN(256))
	}
	copy(l.result, l.value)
	return l
}

func rtObjectID(i int) []byte {
	id := make([]byte, IDLen)
	id[0] = 0xd0
	binary.BigEndian.PutUint32(id[IDLen-4:], uint32(i))
	return id
}

func rtClientID(i int) []byte {
	c := make([]byte, ClientIDLen)
	c[0] = 0xc1
	binary.BigEndian.PutUint32(c[ClientIDLen-4:], uint32(i))
	return c
}

// entry makes the next entry, writing object obj (random if obj < 0).
func (l *rtLoad) entry(tb testing.TB, obj int) *raft.Log {
	if obj < 0 {
		obj = l.r.IntN(rtObjects)
	}
	client := l.n % rtClients
	l.n++
	l.seq[client]++
	l.version[obj]++
	l.index++
	c := &Command{
		Object:  rtObjectID(obj),
		Ops:     []Op{{Kind: OpPut, Key: []byte(rtKey), Value: l.value}},
		Client:  rtClientID(client),
		Seq:     l.seq[client],
		Ack:     l.seq[client],
		Result:  l.result,
		Time:    rtTimeBase + int64(l.index)*rtTimeStep,
		Version: l.version[obj],
	}
	return &raft.Log{Index: l.index, Term: 1, Type: raft.LogCommand, Data: mustEncode(tb, c)}
}

// openRT opens a store holding every object once (and one dedup entry per client), as the
// runtime's store is after warm-up, and returns it with the load that continues from there.
func openRT(b *testing.B, opts Options) (*Store, *rtLoad) {
	b.Helper()
	opts.NoSync, opts.Logger = true, slog.New(slog.DiscardHandler)
	s, err := Open(filepath.Join(b.TempDir(), "state.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	l := newRTLoad()
	var batch []*raft.Log
	for i := range rtObjects {
		batch = append(batch, l.entry(b, i))
		if len(batch) == 64 || i == rtObjects-1 {
			checkRT(b, s.ApplyBatch(batch))
			batch = batch[:0]
		}
	}
	return s, l
}

func checkRT(b *testing.B, resps []any) {
	for _, resp := range resps {
		if res := resp.(*Result); res.Err != nil || res.Duplicate {
			b.Fatalf("entry %d: err %v, duplicate %v", res.Index, res.Err, res.Duplicate)
		}
	}
}

// rtRead is what the runtime reads per call before it proposes: the dedup lookup of the
// call, and the object's version when it binds.
func rtRead(s *Store, l *raft.Log) error {
	return s.View(func(tx *Tx) error {
		// The entry's object and client are cheap to find again from its encoding, but a
		// decode would cost more than the read; read a fixed client and object instead.
		_, _ = tx.Dedup(rtClientID(int(l.Index)%rtClients), l.Index)
		_ = tx.Version(rtObjectID(int(l.Index) % rtObjects))
		return nil
	})
}

// BenchmarkApplyRuntime applies runtime-shaped entries (see rtLoad) to a warm store, fsync
// off as in production, in raft batches of 1, 4 and 16 entries. One op is one entry. With
// /reads, each entry is preceded by one View (a dedup lookup and a version read), as each
// call of the runtime is.
//
//	go test -run XXX -bench ApplyRuntime -benchtime 20000x -count 5 ./fsm
func BenchmarkApplyRuntime(b *testing.B) {
	for _, reads := range []bool{false, true} {
		for _, batch := range []int{1, 4, 16} {
			name := fmt.Sprintf("batch=%d", batch)
			if reads {
				name += "/reads"
			}
			b.Run(name, func(b *testing.B) {
				s, l := openRT(b, Options{})
				logs := make([]*raft.Log, b.N)
				for i := range logs {
					logs[i] = l.entry(b, -1)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < len(logs); i += batch {
					part := logs[i:min(i+batch, len(logs))]
					if reads {
						for _, e := range part {
							if err := rtRead(s, e); err != nil {
								b.Fatal(err)
							}
						}
					}
					checkRT(b, s.ApplyBatch(part))
				}
				b.StopTimer()
				if s.AppliedIndex() != l.index {
					b.Fatalf("applied %d, want %d", s.AppliedIndex(), l.index)
				}
			})
		}
	}
}

// BenchmarkViewDuringApply measures View (the runtime's per-call read) from parallel
// goroutines while another goroutine applies runtime-shaped batches of 4 as fast as it
// can. It reports ns per View and the entries applied per second meanwhile.
//
//	go test -run XXX -bench ViewDuringApply -benchtime 200000x -count 5 ./fsm
func BenchmarkViewDuringApply(b *testing.B) {
	s, l := openRT(b, Options{})
	const batch = 4
	logs := make([]*raft.Log, 200_000)
	for i := range logs {
		logs[i] = l.entry(b, -1)
	}
	var stop atomic.Bool
	var applied int
	var applyTime time.Duration
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		for ; applied < len(logs) && !stop.Load(); applied += batch {
			s.ApplyBatch(logs[applied:min(applied+batch, len(logs))])
		}
		applyTime = time.Since(start)
	}()
	b.RunParallel(func(pb *testing.PB) {
		r := &raft.Log{}
		for i := uint64(1); pb.Next(); i++ {
			r.Index = i
			if err := rtRead(s, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
	stop.Store(true)
	b.StopTimer()
	wg.Wait()
	if applied >= len(logs) {
		b.Log("the applier ran out of entries: its rate covers only part of the run")
	}
	b.ReportMetric(float64(applied)/applyTime.Seconds(), "entries/s")
}

// BenchmarkCommitEvery applies runtime-shaped entries one per batch (as raft hands them
// over at a few hundred entries per second and group) and commits the write transaction
// after every n entries, whatever the time: the cost per entry as a function of how many
// entries a commit interval gathers. It reports ns per entry, and the mean time of an
// ApplyBatch that commits as commit-µs (what a View or an apply may wait behind).
//
//	go test -run XXX -bench CommitEvery -benchtime 20000x -count 5 ./fsm
func BenchmarkCommitEvery(b *testing.B) {
	for _, n := range []int{1, 2, 4, 8, 16, 32, 64, 256} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s, l := openRT(b, Options{CommitInterval: time.Hour}) // only the entry count commits
			s.commitEntries = n
			if err := s.flush(); err != nil {
				b.Fatal(err)
			}
			logs := make([]*raft.Log, b.N)
			for i := range logs {
				logs[i] = l.entry(b, -1)
			}
			var commitTime time.Duration
			commits := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := range logs {
				t := time.Now()
				checkRT(b, s.ApplyBatch(logs[i:i+1]))
				if (i+1)%n == 0 {
					commitTime += time.Since(t)
					commits++
				}
			}
			b.StopTimer()
			if commits > 0 {
				b.ReportMetric(float64(commitTime.Microseconds())/float64(commits), "commit-µs")
			}
		})
	}
}

// BenchmarkViewOpenTx is the View every write call makes before it runs (its dedup
// lookup) while applied entries wait in the open write transaction, as they do on a busy
// node.
func BenchmarkViewOpenTx(b *testing.B) {
	s, l := openRT(b, Options{CommitInterval: time.Hour})
	checkRT(b, s.ApplyBatch([]*raft.Log{l.entry(b, 0)})) // leaves the write transaction open
	client := make([]byte, ClientIDLen)
	b.ReportAllocs()
	for i := uint64(1); b.Loop(); i++ {
		if err := s.View(func(tx *Tx) error {
			_, _ = tx.Dedup(client, i)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
