package logstorevsboltdb

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/duro-db/duro/internal/logstore"
)

// BenchmarkStoreLogs measures what group commit is for: many groups on one node, each
// with writers appending one entry at a time, fsync on. It runs duro's store (one WAL
// for all groups) against raft-boltdb/v2 (one file per group). One op is one 256 B
// entry stored durably; ns/op is wall time per entry across all 64 writers, logs/s its
// inverse. The logstore side is internal/logstore's BenchmarkStoreLogs, here beside
// its baseline.
func BenchmarkStoreLogs(b *testing.B) {
	for _, groups := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("groups=%d/store=logstore", groups), func(b *testing.B) {
			s, err := logstore.Open(filepath.Join(b.TempDir(), "logs.db"), logstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				if err := s.Close(); err != nil && !errors.Is(err, logstore.ErrClosed) {
					b.Error(err)
				}
			})
			stores := make([]raft.LogStore, groups)
			for i := range stores {
				g, err := s.Group(uint64(i))
				if err != nil {
					b.Fatal(err)
				}
				stores[i] = g
			}
			benchStoreLogs(b, stores)
			b.ReportMetric(s.Stats().AvgBatchRequests, "logs/commit")
		})
		b.Run(fmt.Sprintf("groups=%d/store=raft-boltdb", groups), func(b *testing.B) {
			dir := b.TempDir()
			stores := make([]raft.LogStore, groups)
			for i := range stores {
				bs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, fmt.Sprintf("group%d.db", i))})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = bs.Close() })
				stores[i] = bs
			}
			benchStoreLogs(b, stores)
		})
	}
}

// benchStoreLogs spreads b.N entries over 64 writers, each appending to one of stores
// (writer w to stores[w % len(stores)]) with consecutive indexes per store.
func benchStoreLogs(b *testing.B, stores []raft.LogStore) {
	const writers = 64
	data := make([]byte, 256)
	next := make([]atomic.Uint64, len(stores)) // last index handed out, per group
	var ops atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)

	b.ResetTimer()
	for w := range writers {
		store, index := stores[w%len(stores)], &next[w%len(stores)]
		wg.Go(func() {
			for ops.Add(1) <= int64(b.N) {
				l := &raft.Log{Index: index.Add(1), Term: 1, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}
				if err := store.StoreLog(l); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logs/s")
}
