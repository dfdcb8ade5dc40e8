package objects

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/duro-db/duro/internal/objid"
)

// BenchmarkCall measures calls per second through the runtime with an in-memory group
// (a real fsm store without fsync, applying one entry per bbolt transaction): the
// runtime's own cost plus the state machine's, without replication.
func BenchmarkCall(b *testing.B) {
	cases := []struct {
		name    string
		objects int
		method  string
	}{
		{"write/one-object", 1, "Add"},
		{"write/1000-objects", 1000, "Add"},
		{"read/one-object", 1, "Get"},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			f := newFixture(b, Options{})
			reqs := make([]Request, bc.objects)
			args, _ := marshal(1)
			for i := range reqs {
				reqs[i] = f.req(fmt.Sprintf("obj-%d", i), bc.method)
				if bc.method == "Add" {
					reqs[i].Args = args
				}
				if _, err := f.rt.Call(context.Background(), reqs[i]); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.SetParallelism(32) // 64 concurrent callers on 2 cores
			b.ReportAllocs()
			b.ResetTimer()
			start := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := reqs[int(next.Add(1))%len(reqs)]
					if _, err := f.rt.Call(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
			b.ReportMetric(float64((processCPU()-start).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// BenchmarkRuntimeOnly isolates the runtime: the group acknowledges every command at once
// without applying it, so the cost measured is routing, the executor, msgpack and the
// output gate.
func BenchmarkRuntimeOnly(b *testing.B) {
	reg := NewRegistry()
	RegisterIn(reg, "C", func() *int { return new(int) },
		Method("Add", func(n *int, ctx *Context, d int) (int, error) {
			*n += d
			return *n, ctx.Storage().Put("n", *n)
		}))
	st, err := openStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	g := &instantGroup{store: st}
	rt := NewRuntime(reg, staticLocator{g}, Options{})
	b.Cleanup(rt.Close)
	args, _ := marshal(1)
	req := Request{Class: "C", ID: objid.FromName("C", "x"), Method: "Add", Args: args}
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	start := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rt.Call(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	b.ReportMetric(float64((processCPU()-start).Microseconds())/float64(b.N), "cpu-µs/op")
}

// processCPU is the user and system CPU time this process has used: the benchmarks leave
// the cores partly idle, so CPU per call says more about a change than ns/op.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCallWithClient is BenchmarkCall's write over 1000 objects with the client
// fields the SDK sends: each call is looked up in the dedup table before it runs, and its
// result is stored there.
func BenchmarkCallWithClient(b *testing.B) {
	f := newFixture(b, Options{})
	reqs := make([]Request, 1000)
	args, _ := marshal(1)
	var seq atomic.Uint64
	call := func(req Request) error {
		s := seq.Add(1)
		req = withClient(req, 1, s)
		req.Ack = 1
		if s > 4096 {
			req.Ack = s - 4096 // trails far behind the calls in flight
		}
		_, err := f.rt.Call(context.Background(), req)
		return err
	}
	for i := range reqs {
		reqs[i] = f.req(fmt.Sprintf("obj-%d", i), "Add")
		reqs[i].Args = args
		if err := call(reqs[i]); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	start := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := call(reqs[int(next.Add(1))%len(reqs)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64((processCPU()-start).Microseconds())/float64(b.N), "cpu-µs/op")
}
