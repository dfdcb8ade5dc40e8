// Package workloads holds the duro workloads of `duro bench`: calls through the Go SDK to
// the example classes the stock binary serves (objects/examples).
//
// Every write is an ordinary call: replicated to a quorum and fsynced (unless the cluster
// runs with NoSync) before it is acknowledged, exactly what an application would get.
package workloads

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/duro-db/duro/bench/load"
	"github.com/duro-db/duro/client"
	"github.com/duro-db/duro/objects/examples"
)

// Names lists the workloads New accepts.
var Names = []string{"write", "read", "hot", "mix"}

// ErrUnknown is returned by New for a workload name not in Names.
var ErrUnknown = errors.New("workloads: unknown workload")

// Options shape a workload.
type Options struct {
	// Objects is how many Register objects write, read and mix spread over (uniformly at
	// random); default 10,000.
	Objects int
	// ValueSize is the length of each written value in bytes; default 256.
	ValueSize int
	// ReadPercent is the share of reads in mix; default 80.
	ReadPercent int
	// Seed makes the choice of objects reproducible; 0 is a fine seed.
	Seed uint64
}

// HotObject is the name of the one Counter the hot workload increments.
const HotObject = "bench-hot"

// New returns the operation of workload name for callers concurrent workers.
//
//   - write: Register.Put of a ValueSize-byte value on a random one of Objects registers.
//   - read:  Register.Get of a random register (a linearizable read).
//   - hot:   Counter.Add(1) on the one object HotObject: every call is serialised by that
//     object's input gate, so this measures one object's pipelined write rate.
//   - mix:   ReadPercent% read, the rest write.
func New(cl *client.Client, name string, callers int, o Options) (load.Op, error) {
	if !slices.Contains(Names, name) {
		return nil, fmt.Errorf("%w %q (want one of %s)", ErrUnknown, name, strings.Join(Names, ", "))
	}
	if o.Objects <= 0 {
		o.Objects = 10_000
	}
	if o.ValueSize <= 0 {
		o.ValueSize = 256
	}
	if o.ReadPercent <= 0 || o.ReadPercent > 100 {
		o.ReadPercent = 80
	}
	// Per-worker random sources: Op is called concurrently, one goroutine per worker.
	rnds := make([]*rand.Rand, callers)
	for i := range rnds {
		rnds[i] = rand.New(rand.NewPCG(o.Seed, uint64(i)))
	}
	regs := cl.Namespace("Register")
	stubs := make([]*client.Stub, o.Objects)
	for i := range stubs {
		stubs[i] = regs.GetByName(fmt.Sprintf("bench-%d", i))
	}
	put := examples.PutArgs{Value: strings.Repeat("v", o.ValueSize)}
	write := func(ctx context.Context, w int) error {
		return stubs[rnds[w].IntN(len(stubs))].Call(ctx, "Put", put, nil)
	}
	read := func(ctx context.Context, w int) error {
		return stubs[rnds[w].IntN(len(stubs))].Call(ctx, "Get", struct{}{}, nil)
	}
	switch name {
	case "write":
		return write, nil
	case "read":
		return read, nil
	case "hot":
		hot := cl.Namespace("Counter").GetByName(HotObject)
		return func(ctx context.Context, _ int) error {
			return hot.Call(ctx, "Add", int64(1), nil)
		}, nil
	default: // mix
		return func(ctx context.Context, w int) error {
			if rnds[w].IntN(100) < o.ReadPercent {
				return read(ctx, w)
			}
			return write(ctx, w)
		}, nil
	}
}
