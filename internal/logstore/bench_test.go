package logstore

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkStoreLogs measures what group commit is for: many groups on one
// node, each with writers appending one entry at a time, fsync on, all in this
// store's one WAL. One op is one 256 B entry stored durably; ns/op is wall time
// per entry across all 64 writers, logs/s its inverse. The same benchmark
// against raft-boltdb/v2 (one file per group, the stock setup), both sides in
// one run, is the module in bench/logstore-vs-boltdb.
//
//	go test -run '^$' -bench BenchmarkStoreLogs -benchtime=2s -count=3 ./internal/logstore
func BenchmarkStoreLogs(b *testing.B) {
	for _, groups := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("groups=%d/store=logstore", groups), func(b *testing.B) {
			s := openStore(b, filepath.Join(b.TempDir(), "logs.db"), Options{})
			stores := make([]raft.LogStore, groups)
			for i := range stores {
				stores[i] = group(b, s, uint64(i))
			}
			benchStoreLogs(b, stores)
			b.ReportMetric(s.Stats().AvgBatchRequests, "logs/commit")
		})
	}
}

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

// BenchmarkLeaderStoreLogs measures what async appends are for: how long a
// raft leader's StoreLogs holds up its goroutine. One writer appends one
// 256 B entry per call, fsync on, as a leader with appends=sync (today's
// durable-on-return StoreLogs) or appends=async (SetAsyncAppends). ns/op,
// p50-ns, p99-ns and p999-ns are StoreLogs latency; durable-logs/s counts entries
// until the last is durable. The async writer keeps at most asyncWindow
// entries pending (waiting, off the clock, when it gets there), as a leader
// whose followers cannot keep up would be throttled by its clients.
//
//	go test -run '^$' -bench BenchmarkLeaderStoreLogs -benchtime=2s -count=3 ./internal/logstore
func BenchmarkLeaderStoreLogs(b *testing.B) {
	const asyncWindow = 8192
	for _, async := range []bool{false, true} {
		name := "appends=sync"
		if async {
			name = "appends=async"
		}
		b.Run(name, func(b *testing.B) {
			s := openStore(b, filepath.Join(b.TempDir(), "logs.db"), Options{})
			g := group(b, s, 1)
			if async {
				g.SetAsyncAppends(func() bool { return true })
			}
			ctx := context.Background()
			data := make([]byte, 256)
			latencies := make([]time.Duration, 0, b.N)
			start := time.Now()
			b.ResetTimer()
			for i := range b.N {
				index := uint64(i + 1)
				l := &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}
				t0 := time.Now()
				if err := g.StoreLog(l); err != nil {
					b.Fatal(err)
				}
				latencies = append(latencies, time.Since(t0))
				if index-g.DurableIndex() >= asyncWindow {
					b.StopTimer()
					if err := g.WaitDurable(ctx, index-asyncWindow/2); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			}
			b.StopTimer()
			if err := g.WaitDurable(ctx, uint64(b.N)); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			slices.Sort(latencies)
			b.ReportMetric(float64(latencies[len(latencies)/2]), "p50-ns")
			b.ReportMetric(float64(latencies[len(latencies)*99/100]), "p99-ns")
			b.ReportMetric(float64(latencies[len(latencies)*999/1000]), "p999-ns")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "durable-logs/s")
			b.ReportMetric(s.Stats().AvgBatchRequests, "logs/commit")
		})
	}
}
