package duro_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/duro-db/duro/client"
)

// BenchmarkCall measures counter increments through the Go client against a 3-node
// in-process cluster (NoSync: no fsync, so this is the CPU and protocol cost, not the
// disk's), from parallel goroutines, on one object (serialised by its input gate, so
// pipelining is what helps) and spread over many objects. cpu-µs/op is the whole
// process's CPU (client and three nodes) per call: the benchmark does not saturate both
// cores, so it says more about a change than ns/op does.
func BenchmarkCall(b *testing.B) {
	for _, bc := range []struct {
		name    string
		objects int
	}{
		{"one-object", 1},
		{"many-objects", 1024},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := newCluster(b, 3)
			cl := c.dial(c.addrs)
			ns := cl.Namespace("Counter")
			stubs := make([]*client.Stub, bc.objects)
			for i := range stubs {
				stubs[i] = ns.GetByName(fmt.Sprintf("bench-%d", i))
			}
			ctx := context.Background()
			// Warm up: learn leaders, open connections, activate every object.
			var wg sync.WaitGroup
			for i := range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := i; j < len(stubs); j += 32 {
						if err := stubs[j].Call(ctx, "Add", 1, nil); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			var next atomic.Int64
			b.SetParallelism(32)
			b.ReportAllocs()
			b.ResetTimer()
			start := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s := stubs[int(next.Add(1))%len(stubs)]
					if err := s.Call(ctx, "Add", 1, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((processCPU()-start).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
