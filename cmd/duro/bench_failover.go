package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/duro-db/duro/bench/failover"
	"github.com/duro-db/duro/bench/jepsen"
	"github.com/duro-db/duro/bench/load"
	"github.com/duro-db/duro/bench/load/workloads"
	"github.com/duro-db/duro/client"
	"github.com/duro-db/duro/raftgroup"
)

func benchFailoverCommand() *cli.Command {
	var faults []string
	for _, f := range failover.Faults {
		faults = append(faults, string(f))
	}
	return &cli.Command{
		Name:  "failover",
		Usage: "measure how long callers wait when the busiest leader dies, stops or is cut off",
		Description: "Starts its own 3-process cluster on loopback (this binary, fsync on, a TCP proxy of\n" +
			"this process on every link), drives --callers through the Go SDK with its defaults,\n" +
			"and --at into the measured window strikes the node that leads the most raft groups\n" +
			"(the meta group included):\n" +
			"  kill       SIGKILL; it stays down\n" +
			"  pause      SIGSTOP, SIGCONT at the end of the window\n" +
			"  partition  every link to and from its peers cut both ways, healed at the end;\n" +
			"             clients still reach it\n" +
			"Reports the worst call (failed ones included), the whole seconds with fewer than\n" +
			"--slow-below calls answered, the errors callers saw, and the p99 of the window.\n\n" +
			"Example:  duro bench failover --fault kill --at 8s --time 20s",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "fault", Usage: strings.Join(faults, ", "), Value: string(failover.Kill)},
			&cli.DurationFlag{Name: "at", Usage: "when to strike, into the measured window", Value: 8 * time.Second},
			&cli.DurationFlag{Name: "time", Aliases: []string{"t"}, Usage: "measured duration", Value: 20 * time.Second},
			&cli.DurationFlag{Name: "warmup", Usage: "unmeasured run before, to connect and activate objects", Value: 3 * time.Second},
			&cli.IntFlag{Name: "callers", Aliases: []string{"c"}, Usage: "concurrent callers, closed loop", Value: 16},
			&cli.StringFlag{Name: "workload", Aliases: []string{"w"}, Usage: strings.Join(workloads.Names, ", "), Value: "write"},
			&cli.IntFlag{Name: "objects", Usage: "objects write, read and mix spread over", Value: 10_000},
			&cli.IntFlag{Name: "value-size", Usage: "bytes per written value", Value: 256},
			&cli.IntFlag{Name: "groups", Usage: "data groups of the cluster", Value: raftgroup.DefaultGroups},
			&cli.IntFlag{Name: "slow-below", Usage: "a second with fewer calls answered than this is slow", Value: 100},
			&cli.StringFlag{Name: "dir", Usage: "data dirs and node logs (default: a temporary directory, removed unless the run fails)"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
			&cli.StringFlag{Name: "plot", Usage: "also write latency and throughput over time to `FILE.svg`"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress lines"},
			&cli.StringFlag{Name: "binary", Usage: "duro binary the nodes run (default: this one)", Hidden: true},
		},
		Action: runBenchFailover,
	}
}

func runBenchFailover(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageErr("bench failover takes no arguments, got %q", c.Args().First())
	}
	fault, err := failover.ParseFault(c.String("fault"))
	if err != nil {
		return usageErr("--fault: %v", err)
	}
	name := c.String("workload")
	if !slices.Contains(workloads.Names, name) {
		return usageErr("--workload %q: want one of %s", name, strings.Join(workloads.Names, ", "))
	}
	cfg := failover.Config{
		Load: load.Config{
			Workload: name,
			Callers:  c.Int("callers"),
			Warmup:   c.Duration("warmup"),
			Duration: c.Duration("time"),
		},
		Fault:     fault,
		At:        c.Duration("at"),
		SlowBelow: c.Int("slow-below"),
	}
	if cfg.Load.Callers < 1 || cfg.Load.Duration <= 0 || cfg.Load.Warmup < 0 || c.Int("groups") < 1 || cfg.SlowBelow < 1 {
		return usageErr("--callers, --groups and --slow-below must be >= 1, --time > 0, --warmup >= 0")
	}
	if cfg.At < 0 || cfg.At >= cfg.Load.Duration {
		return usageErr("--at %v must fall inside the measured --time %v", cfg.At, cfg.Load.Duration)
	}
	bin := c.String("binary")
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return fmt.Errorf("finding the duro binary for the nodes: %w (use --binary)", err)
		}
	}
	dir := c.String("dir")
	if dir == "" {
		if dir, err = os.MkdirTemp("", "duro-failover-"); err != nil {
			return err
		}
	}
	progress := func(s string) {}
	if !c.Bool("quiet") {
		cfg.Load.Progress = load.ProgressPrinter(c.App.ErrWriter, name)
		progress = func(s string) { fmt.Fprintln(c.App.ErrWriter, s) }
		cfg.Log = progress
	}

	rep, err := benchFailover(c.Context, cfg, bin, dir, c.Int("groups"), workloads.Options{
		Objects: c.Int("objects"), ValueSize: c.Int("value-size"),
	}, progress)
	if err != nil {
		return fmt.Errorf("%w (node logs in %s)", err, dir)
	}
	if c.String("dir") == "" {
		_ = os.RemoveAll(dir)
	}
	rep.System = "duro"
	if p := c.String("plot"); p != "" && rep.Run != nil {
		if err := writeFile(p, rep.Run.WriteSVG); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		return rep.WriteJSON(c.App.Writer)
	}
	return rep.WriteTable(c.App.Writer)
}

// benchFailover starts a 3-node cluster of bin under dir, runs cfg against it and stops it.
func benchFailover(ctx context.Context, cfg failover.Config, bin, dir string, groups int, o workloads.Options, progress func(string)) (*failover.Report, error) {
	progress(fmt.Sprintf("starting 3 nodes, %d groups, in %s", groups, dir))
	cl, err := jepsen.StartCluster(ctx, jepsen.ClusterConfig{Binary: bin, Dir: dir, Nodes: 3, Groups: groups, Seed: 1})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = cl.WaitReady(rctx)
	cancel()
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	sdk, err := client.Dial(dctx, cl.Endpoints())
	cancel()
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(cl.Endpoints(), ","), err)
	}
	defer sdk.Close()
	op, err := workloads.New(sdk, cfg.Load.Workload, cfg.Load.Callers, o)
	if err != nil {
		return nil, err
	}
	return failover.Run(ctx, cfg, cl.FailoverTarget(), op)
}
