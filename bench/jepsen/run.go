package jepsen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duro-db/duro/client"
)

// Options configure a run.
type Options struct {
	Binary      string        `json:"-"` // the duro binary the nodes run
	Nodes       int           `json:"nodes"`
	Time        time.Duration `json:"time"`        // how long the workload and the faults run
	Rate        float64       `json:"rate"`        // operations per second, all workers together; 0 = unlimited
	Concurrency int           `json:"concurrency"` // workers, one SDK client each
	Workloads   []string      `json:"workloads"`
	Nemeses     []string      `json:"nemeses"`
	Seed        uint64        `json:"seed"` // 0 picks one; the summary records it
	Out         string        `json:"out"`  // report directory
	Keys        int           `json:"keys"` // objects per workload; 0 = 8
	Groups      int           `json:"groups"`
	// OpTimeout bounds one operation; when it passes the outcome is unknown. 0 = 5s.
	OpTimeout time.Duration `json:"op_timeout"`
	// Quiet and Active bound the random lengths of the nemesis's phases; zero values mean
	// 2–5 s quiet and 3–8 s of fault.
	Quiet, Active [2]time.Duration `json:"-"`
	// Env is added to every node's environment: e.g. duro.EnvUnsafe+"=ack-before-commit"
	// to check that the harness catches a broken guarantee.
	Env []string `json:"env,omitempty"`
	// Progress receives a line every few seconds and one per fault; nil is silent.
	Progress io.Writer `json:"-"`
}

func (o *Options) defaults() {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Time == 0 {
		o.Time = 30 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if len(o.Workloads) == 0 {
		o.Workloads = []string{"register", "counter"}
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64() >> 1 // positive as an int64 too: easy to paste back
	}
	if o.Keys <= 0 {
		o.Keys = 8
	}
	if o.Groups <= 0 {
		o.Groups = 4
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 5 * time.Second
	}
	if o.Quiet == [2]time.Duration{} {
		o.Quiet = [2]time.Duration{2 * time.Second, 5 * time.Second}
	}
	if o.Active == [2]time.Duration{} {
		o.Active = [2]time.Duration{3 * time.Second, 8 * time.Second}
	}
	if o.Out == "" {
		o.Out = filepath.Join("jepsen-runs", time.Now().Format("20060102-150405"))
	}
}

// Run starts a cluster, runs the workloads against it while the nemesis injects faults,
// heals, reads every object once more, checks the history and writes the report into
// o.Out. The error is for a run that could not be carried out (no binary, a cluster that
// never became ready); a run that found a violation returns a Summary whose Verdict is
// Invalid and a nil error.
func Run(ctx context.Context, o Options) (*Summary, error) {
	o.defaults()
	if o.Binary == "" {
		return nil, errors.New("jepsen: Options.Binary is required")
	}
	var wls []Workload
	prefix := fmt.Sprintf("j%d-", o.Seed)
	for _, name := range o.Workloads {
		wl, err := NewWorkload(name, prefix, o.Keys)
		if err != nil {
			return nil, err
		}
		wls = append(wls, wl)
	}
	var progressMu sync.Mutex // the nemesis, the ticker and Run all report
	progress := func(format string, args ...any) {
		if o.Progress != nil {
			progressMu.Lock()
			defer progressMu.Unlock()
			fmt.Fprintf(o.Progress, format+"\n", args...)
		}
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	progress("duro jepsen: seed %d (rerun with --seed %d); report in %s", o.Seed, o.Seed, o.Out)

	started := time.Now()
	c, err := StartCluster(ctx, ClusterConfig{Binary: o.Binary, Dir: filepath.Join(o.Out, "nodes"),
		Nodes: o.Nodes, Groups: o.Groups, Env: o.Env, Seed: o.Seed, PowerCut: slices.Contains(o.Nemeses, "powercut")})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	readyCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = c.WaitReady(readyCtx)
	cancel()
	if err != nil {
		return nil, err
	}
	progress("cluster of %d nodes ready in %v", o.Nodes, time.Since(started).Round(time.Millisecond))

	h := NewHistory()
	workers := make([]*Worker, o.Concurrency)
	for i := range workers {
		cl, err := client.Dial(ctx, c.Endpoints(), client.WithRetryBackoff(5*time.Millisecond, 250*time.Millisecond))
		if err != nil {
			return nil, fmt.Errorf("jepsen: connecting worker %d: %w", i, err)
		}
		defer cl.Close()
		workers[i] = NewWorker(i, cl, o.Seed, h, o.OpTimeout)
	}

	// The workload and the nemesis run for o.Time; operations in flight then finish.
	runCtx, stopRun := context.WithTimeout(ctx, o.Time)
	defer stopRun()
	nem := &Nemesis{Cluster: c, Kinds: o.Nemeses, Rng: rand.New(rand.NewPCG(o.Seed, 0x6e656d)),
		Quiet: o.Quiet, Active: o.Active, Since: h.Since, Groups: o.Groups,
		Log: func(s string) { progress("%7.1fs  %s", h.Since().Seconds(), s) }}
	var faults []Fault
	nemDone := make(chan struct{})
	go func() { defer close(nemDone); faults = nem.Run(runCtx) }()

	var issued atomic.Int64
	var wg sync.WaitGroup
	for i, w := range workers {
		wl := wls[i%len(wls)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tick *time.Ticker
			if o.Rate > 0 {
				tick = time.NewTicker(time.Duration(float64(o.Concurrency) / o.Rate * float64(time.Second)))
				defer tick.Stop()
			}
			for runCtx.Err() == nil {
				// Operations run on ctx, not runCtx: the end of the run must not turn
				// the operations in flight into unknown outcomes.
				wl.Step(ctx, w)
				issued.Add(1)
				if tick != nil {
					select {
					case <-tick.C:
					case <-runCtx.Done():
					}
				}
			}
		}()
	}
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				ok, fail, info := countStatus(h.Ops())
				progress("%7.1fs  ops %d: ok %d, fail %d, unknown %d", h.Since().Seconds(), ok+fail+info, ok, fail, info)
			case <-runCtx.Done():
				return
			}
		}
	}()
	wg.Wait()
	<-nemDone
	<-progressDone
	if err := ctx.Err(); err != nil {
		// Interrupted: the nemesis has healed, but what follows would judge a run cut
		// short by the operator; say so rather than give a verdict.
		_ = writeReport(o.Out, h.Ops(), &Summary{Seed: o.Seed, Options: o, Started: started,
			Duration: h.Since(), Faults: faults, Verdict: Unknown, Problems: []string{"interrupted"}})
		return nil, fmt.Errorf("jepsen: run interrupted (partial history in %s): %w", o.Out, err)
	}

	// Heal everything, restart what was killed, and read every object once more: only then
	// can "nothing acknowledged was lost" be judged.
	var problems []string
	if err := c.Heal(); err != nil {
		problems = append(problems, "heal: "+err.Error())
	}
	for _, n := range c.Nodes {
		if err := c.Start(n.Index); err != nil {
			problems = append(problems, err.Error())
		}
	}
	readyCtx, cancel = context.WithTimeout(ctx, 60*time.Second)
	if err := c.WaitReady(readyCtx); err != nil {
		problems = append(problems, "after the final heal: "+err.Error())
	}
	cancel()
	progress("%7.1fs  healed; final reads", h.Since().Seconds())
	for i, wl := range wls {
		w := workers[i%len(workers)]
		w.OpTimeout = 30 * time.Second
		wl.Final(ctx, w)
	}
	total := h.Since()
	ops := h.Ops()

	s := &Summary{Seed: o.Seed, Options: o, Started: started, Duration: total, Counts: map[string]int{},
		Faults: faults, Problems: problems}
	for _, op := range ops {
		s.Counts[op.Workload+" "+string(op.Status)]++
	}
	progress("checking %d operations", len(ops))
	for _, wl := range wls {
		var mine []Op
		for _, op := range ops {
			if op.Workload == wl.Name() {
				mine = append(mine, op)
			}
		}
		s.Objects = append(s.Objects, wl.Check(mine, o.Out)...)
	}
	s.Verdict = Valid
	if len(problems) > 0 {
		s.Verdict = Invalid
	}
	for _, r := range s.Objects {
		switch {
		case r.Verdict == Invalid:
			s.Verdict = Invalid
		case r.Verdict == Unknown && s.Verdict == Valid:
			s.Verdict = Unknown
		}
	}
	if err := writeReport(o.Out, ops, s); err != nil {
		return s, fmt.Errorf("jepsen: writing the report: %w", err)
	}
	return s, nil
}

func countStatus(ops []Op) (ok, fail, info int) {
	for _, op := range ops {
		switch op.Status {
		case StatusOK:
			ok++
		case StatusFail:
			fail++
		default:
			info++
		}
	}
	return ok, fail, info
}
