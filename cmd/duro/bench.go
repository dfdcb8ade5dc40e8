package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/duro-db/duro/bench/load"
	"github.com/duro-db/duro/bench/load/workloads"
	"github.com/duro-db/duro/client"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure what a cluster sustains, and at what latency",
		Description: "Drives a workload through the Go SDK and prints ops/s and latency percentiles\n" +
			"(p50/p90/p99/p99.9 from an HDR histogram). Closed loop by default (--callers\n" +
			"goroutines, each as fast as it gets answers); with --rate, open loop at that total\n" +
			"rate, latency measured from each call's intended start (no coordinated omission).\n\n" +
			"Workloads (objects of the example classes, named bench-0..bench-N):\n" +
			"  write  Register.Put of a --value-size value on one of --objects registers\n" +
			"  read   Register.Get of one of --objects registers\n" +
			"  hot    Counter.Add 1 on ONE object\n" +
			"  mix    --read-percent reads, the rest writes\n\n" +
			"Progress goes to stderr once a second; the result to stdout.\n\n" +
			"Examples:\n" +
			"  duro bench --workload write --callers 128 --time 20s\n" +
			"  duro bench --workload read --rate 5000 --json\n" +
			"  duro bench idle --pids 4242,4243,4244 --time 20s\n" +
			"  duro bench failover --fault kill --at 8s --time 20s",
		Flags: []cli.Flag{
			endpointsFlag(),
			&cli.StringFlag{Name: "workload", Aliases: []string{"w"}, Usage: strings.Join(workloads.Names, ", "), Value: "write"},
			&cli.IntFlag{Name: "callers", Aliases: []string{"c"}, Usage: "concurrent callers", Value: 128},
			&cli.Float64Flag{Name: "rate", Usage: "total calls per second (open loop); 0 for closed loop"},
			&cli.DurationFlag{Name: "time", Aliases: []string{"t"}, Usage: "measured duration", Value: 20 * time.Second},
			&cli.DurationFlag{Name: "warmup", Usage: "unmeasured run before, to connect and activate objects", Value: 3 * time.Second},
			&cli.IntFlag{Name: "objects", Usage: "objects write, read and mix spread over", Value: 10_000},
			&cli.IntFlag{Name: "value-size", Usage: "bytes per written value", Value: 256},
			&cli.IntFlag{Name: "read-percent", Usage: "share of reads in mix", Value: 80},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
			&cli.StringFlag{Name: "plot", Usage: "also write latency and throughput over time to `FILE.svg`"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress lines"},
		},
		Action: runBench,
		Subcommands: []*cli.Command{{
			Name:  "idle",
			Usage: "measure the CPU a set of processes uses over a window (% of one core, all together)",
			Description: "Reads each process's user+system CPU time from /proc at the start and end of the window.\n" +
				"Example: duro bench idle --pids $(pgrep -d, -f 'duro server') --time 20s",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "pids", Usage: "process IDs, `PID,...`", Required: true},
				&cli.DurationFlag{Name: "time", Aliases: []string{"t"}, Usage: "window", Value: 20 * time.Second},
				&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
			},
			Action: runBenchIdle,
		}, benchFailoverCommand()},
	}
}

func runBench(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageErr("bench takes no arguments, got %q (subcommands: idle, failover)", c.Args().First())
	}
	name := c.String("workload")
	cfg := load.Config{
		Workload: name,
		Callers:  c.Int("callers"),
		Rate:     c.Float64("rate"),
		Warmup:   c.Duration("warmup"),
		Duration: c.Duration("time"),
	}
	if cfg.Callers < 1 || cfg.Duration <= 0 || cfg.Warmup < 0 || cfg.Rate < 0 {
		return usageErr("--callers must be >= 1, --time > 0, --warmup and --rate >= 0")
	}
	if !slices.Contains(workloads.Names, name) {
		return usageErr("--workload %q: want one of %s", name, strings.Join(workloads.Names, ", "))
	}
	if !c.Bool("quiet") {
		cfg.Progress = load.ProgressPrinter(c.App.ErrWriter, name)
	}
	// Dialling is bounded; the run itself is bounded by --warmup + --time.
	dctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	cl, err := client.Dial(dctx, endpoints(c))
	cancel()
	if err != nil {
		return &exitError{code: exitRetryable, err: err} // it names each endpoint and why it failed
	}
	defer cl.Close()
	op, err := workloads.New(cl, name, cfg.Callers, workloads.Options{
		Objects: c.Int("objects"), ValueSize: c.Int("value-size"), ReadPercent: c.Int("read-percent"),
	})
	if err != nil {
		return usageErr("--workload: %v", err)
	}
	res, err := load.Run(c.Context, cfg, op)
	if err != nil {
		return err
	}
	res.System = "duro"
	if p := c.String("plot"); p != "" {
		if err := writeFile(p, res.WriteSVG); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		return res.WriteJSON(c.App.Writer)
	}
	return res.WriteTable(c.App.Writer)
}

func runBenchIdle(c *cli.Context) error {
	var pids []int
	for _, s := range strings.Split(c.String("pids"), ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := strconv.Atoi(s)
		if err != nil || p <= 0 {
			return usageErr("--pids: %q is not a process ID", s)
		}
		pids = append(pids, p)
	}
	if len(pids) == 0 {
		return usageErr("--pids: no process IDs")
	}
	res, err := load.MeasureIdle(c.Context, pids, c.Duration("time"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(c.App.Writer, "%d processes over %.1fs: %.2f%% of one core (each:", len(pids), res.Seconds, res.PercentOne)
	for _, p := range res.PerProcess {
		fmt.Fprintf(c.App.Writer, " %.2f%%", p)
	}
	fmt.Fprintln(c.App.Writer, ")")
	return nil
}

// writeFile creates path and lets write fill it, reporting the first error of either.
func writeFile(path string, write func(w io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
