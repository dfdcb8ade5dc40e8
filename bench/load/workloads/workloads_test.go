package workloads_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/bench/load"
	"github.com/duro-db/duro/bench/load/workloads"
	"github.com/duro-db/duro/client"
	"github.com/duro-db/duro/objects"
	"github.com/duro-db/duro/objects/examples"
	"github.com/duro-db/duro/transport"
)

// startCluster starts 3 in-process nodes serving the example classes and returns a client
// of them. NoSync: this is a smoke test of the harness, not a measurement.
func startCluster(t *testing.T) *client.Client {
	t.Helper()
	reg := objects.NewRegistry()
	examples.RegisterAll(reg)
	var muxes []*transport.Mux
	var peers []duro.Peer
	for i := range 3 {
		m, err := transport.Listen("127.0.0.1:0", transport.Options{})
		if err != nil {
			t.Fatal(err)
		}
		muxes = append(muxes, m)
		peers = append(peers, duro.Peer{ID: fmt.Sprintf("n%d", i+1), Addr: m.Addr().String()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var servers []*duro.Server
	for i := range 3 {
		s, err := duro.Start(ctx, duro.Config{
			ID: peers[i].ID, DataDir: t.TempDir(), Peers: peers, Groups: 2, Slots: 64,
			Timing: duro.Timing{
				HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
				LeaderLeaseTimeout: 150 * time.Millisecond, CommitTimeout: 20 * time.Millisecond,
			},
			NoSync: true, Logger: slog.New(slog.DiscardHandler), Mux: muxes[i], Registry: reg,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		servers = append(servers, s)
	}
	for _, s := range servers {
		if err := s.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := client.Dial(ctx, []string{peers[0].Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func TestShortClosedLoopRuns(t *testing.T) {
	cl := startCluster(t)
	for _, name := range workloads.Names {
		t.Run(name, func(t *testing.T) {
			op, err := workloads.New(cl, name, 16, workloads.Options{Objects: 100, ValueSize: 256})
			if err != nil {
				t.Fatal(err)
			}
			res, err := load.Run(context.Background(), load.Config{
				Workload: name, Callers: 16, Warmup: 200 * time.Millisecond, Duration: 700 * time.Millisecond,
			}, op)
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors != 0 || res.Ops == 0 || res.Latency.P50Ms <= 0 {
				t.Fatalf("%s: %d ops, %d errors %q, p50 %.2f ms", name, res.Ops, res.Errors, res.ErrorSample, res.Latency.P50Ms)
			}
		})
	}
	// Every hot call was one Counter.Add(1) that succeeded, so the counter counts them
	// (the warmup's calls included, hence at least).
	n, err := client.Call[int64](context.Background(), cl.Namespace("Counter").GetByName(workloads.HotObject), "Get", struct{}{})
	if err != nil || n == 0 {
		t.Fatalf("hot counter = %d, %v", n, err)
	}
}

func TestUnknownWorkload(t *testing.T) {
	if _, err := workloads.New(nil, "nope", 1, workloads.Options{}); !errors.Is(err, workloads.ErrUnknown) {
		t.Fatalf("err = %v, want ErrUnknown", err)
	}
}
