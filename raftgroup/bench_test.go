package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/duro-db/duro/fsm"
)

func withSync() clusterOpt { return func(c *Config) { c.NoSync = false; c.Timing = Timing{} } }

// benchCommit measures commits/s of 1 KiB single-object commands on a 3-node in-process
// cluster with fsync on, from b.N calls of Group.Commit spread over the given groups by parallel callers.
func benchCommit(b *testing.B, groups []uint64, callers int) {
	c := newCluster(b, 3, withGroups(16), withSync())
	c.waitAllLeaders()
	var mu sync.Mutex
	leaders := map[uint64]*Group{}
	for _, gid := range groups {
		leaders[gid] = c.nodes[c.leader(gid)].Group(gid)
	}
	leaderOf := func(gid uint64, refresh bool) *Group {
		mu.Lock()
		defer mu.Unlock()
		if refresh {
			leaders[gid] = c.nodes[c.leader(gid)].Group(gid) // moved by the balancer
		}
		return leaders[gid]
	}
	value := make([]byte, 1024)
	var next atomic.Int64
	b.SetBytes(1024)
	b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		obj := randomID()
		for pb.Next() {
			i := next.Add(1)
			gid := groups[int(i)%len(groups)]
			cmd := &fsm.Command{Object: obj, Ops: []fsm.Op{{Kind: fsm.OpPut, Key: []byte(fmt.Sprint(i)), Value: value}}, Time: time.Now().UnixNano()}
			for {
				_, err := leaderOf(gid, false).Commit(context.Background(), cmd)
				if err == nil {
					break
				}
				if !errors.Is(err, ErrNotLeader) {
					b.Fatal(err)
				}
				leaderOf(gid, true)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}

// stateModes runs a benchmark with the state machines fsyncing every batch (the old way)
// and without (rebuilt from raft after a machine crash instead; see statefile.go).
func stateModes(b *testing.B, fn func(b *testing.B)) {
	for _, sync := range []bool{true, false} {
		name := "state=nosync"
		if sync {
			name = "state=fsync"
		}
		b.Run(name, func(b *testing.B) {
			alwaysSyncState = sync
			defer func() { alwaysSyncState = false }()
			fn(b)
		})
	}
}

// Baseline figures for the performance work: one group versus all 16 at once.
func BenchmarkCommitOneGroup(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			stateModes(b, func(b *testing.B) { benchCommit(b, []uint64{1}, callers) })
		})
	}
}

func BenchmarkCommitAllGroups(b *testing.B) {
	all := make([]uint64, 16)
	for i := range all {
		all[i] = uint64(i + 1)
	}
	for _, callers := range []int{16, 128} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			stateModes(b, func(b *testing.B) { benchCommit(b, all, callers) })
		})
	}
}

// BenchmarkIdle reports the CPU an idle 3-node cluster at the default group count uses, as a
// percentage of one core, and the goroutines it runs, for the default timing and for
// stretched idle timers. b.N is ignored: one 10 s sample each.
func BenchmarkIdle(b *testing.B) {
	slow := DefaultTiming()
	slow.CommitTimeout = time.Second
	for _, tc := range []struct {
		name   string
		timing Timing
	}{{"default", DefaultTiming()}, {"commit=1s", slow}} {
		b.Run(tc.name, func(b *testing.B) {
			c := newCluster(b, 3, withGroups(DefaultGroups), withSync(), withTiming(tc.timing))
			c.waitAllLeaders()
			time.Sleep(5 * time.Second) // let leadership balancing finish before sampling
			cpu := func() time.Duration {
				var ru syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
				return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			}
			b.ResetTimer()
			start, t0 := cpu(), time.Now()
			time.Sleep(10 * time.Second)
			used, wall := cpu()-start, time.Since(t0)
			b.StopTimer()
			b.ReportMetric(100*used.Seconds()/wall.Seconds(), "%cpu")
			b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
		})
	}
}

// BenchmarkSubmit compares proposal batching settings on the path object calls take
// (Submit, then wait): a 3-node in-process cluster, 16 groups, fsync on, 128 callers each
// writing 256 B to one of 10,000 objects. cpu-µs/op is the whole process's CPU (all three
// nodes) per committed command: less noisy than throughput on a shared machine.
func BenchmarkSubmit(b *testing.B) {
	for _, tc := range []struct {
		name            string
		batch, inflight int
	}{{"batch=off", 1, 1 << 30}, {"batch=on/inflight=1", 256, 1}, {"batch=on/inflight=2", 256, 2}, {"batch=on/inflight=4", 256, 4}} {
		b.Run(tc.name, func(b *testing.B) {
			defer func(bc, inf int) { maxBatchCommands, maxInflightEntries = bc, inf }(maxBatchCommands, maxInflightEntries)
			maxBatchCommands, maxInflightEntries = tc.batch, tc.inflight
			benchSubmit(b, 128)
		})
	}
}

// BenchmarkStateCommitInterval compares how often the state machines commit their open
// bbolt transaction, on BenchmarkSubmit's load.
func BenchmarkStateCommitInterval(b *testing.B) {
	for _, d := range []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, time.Second} {
		b.Run(fmt.Sprint("interval=", d), func(b *testing.B) {
			defer func(old time.Duration) { stateCommitInterval = old }(stateCommitInterval)
			stateCommitInterval = d
			benchSubmit(b, 128)
		})
	}
}

func benchSubmit(b *testing.B, callers int) {
	c := newCluster(b, 3, withGroups(16), withSync())
	c.waitAllLeaders()
	time.Sleep(3 * time.Second) // let leadership balancing finish
	objs := make([][]byte, 10_000)
	for i := range objs {
		objs[i] = randomID()
	}
	value := make([]byte, 256)
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var next atomic.Int64
	b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := cpu()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			gid := uint64(1 + i%16)
			obj := objs[int(i)%len(objs)]
			cmd := &fsm.Command{Object: obj, Ops: []fsm.Op{{Kind: fsm.OpPut, Key: []byte("k"), Value: value}}, Time: time.Now().UnixNano()}
			for {
				g := c.nodes[c.leader(gid)].Group(gid)
				term, ok := g.LeaderTerm()
				if !ok {
					continue
				}
				_, err := g.Submit(term, cmd).Wait()
				if err == nil {
					break
				}
				if !errors.Is(err, ErrNotLeader) {
					b.Fatal(err)
				}
			}
		}
	})
	used := cpu() - start
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/op")
}
