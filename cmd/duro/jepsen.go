package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/bench/jepsen"
)

func jepsenCommand() *cli.Command {
	return &cli.Command{
		Name:  "jepsen",
		Usage: "start a real cluster, hammer it while injecting faults, and check the history",
		Description: "Starts --nodes `duro server` processes on loopback (this binary), with a TCP proxy on\n" +
			"every link between them, runs the workloads through the Go SDK while the nemesis kills,\n" +
			"pauses, partitions and slows nodes, heals, reads everything back and checks the\n" +
			"history: linearizability per object (porcupine) and each workload's invariants.\n" +
			"Prints VALID or INVALID (exit code 1) and leaves a report in --out: history.jsonl,\n" +
			"summary.json, linear-*.html, latency.svg and every node's log.\n\n" +
			"Example:  duro jepsen --time 5m --nemesis all --workload register,counter,set,bank,alarms\n\n" +
			"--nemesis powercut cuts the power of nodes' machines, simulated: each node keeps its\n" +
			"data dir on a disk that loses or tears every write it was not told to sync, and\n" +
			"reboots from what that disk kept. It needs a duro built with -tags failpoints:\n" +
			"  go build -tags failpoints -o duro ./cmd/duro && ./duro jepsen --nemesis powercut,kill",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes", Usage: "cluster size: 3 or 5", Value: 3},
			&cli.DurationFlag{Name: "time", Usage: "how long to run the workload and the faults", Value: 60 * time.Second},
			&cli.Float64Flag{Name: "rate", Usage: "operations per second across all workers (0: as fast as they go)"},
			&cli.IntFlag{Name: "concurrency", Usage: "workers, each with its own SDK client", Value: 8},
			&cli.StringFlag{Name: "workload", Usage: "comma-separated: " + strings.Join(jepsen.Workloads, ", "), Value: "register,counter"},
			&cli.StringFlag{Name: "nemesis", Usage: "comma-separated: " + strings.Join(jepsen.Nemeses, ", ") + ", all (but powercut) or none", Value: "kill,partition,pause"},
			&cli.Uint64Flag{Name: "seed", Usage: "makes the schedule and every random choice reproducible (0: pick one)"},
			&cli.StringFlag{Name: "out", Usage: "report directory (default: jepsen-runs/<time>)"},
			&cli.IntFlag{Name: "keys", Usage: "objects per workload", Value: 8, Hidden: true},
			&cli.IntFlag{Name: "groups", Usage: "data groups", Value: 4, Hidden: true},
			&cli.DurationFlag{Name: "op-timeout", Usage: "after this an operation's outcome is unknown", Value: 5 * time.Second, Hidden: true},
			&cli.StringFlag{Name: "binary", Usage: "duro binary the nodes run (default: this one)", Hidden: true},
			// Hidden on purpose: this breaks the nodes, to show the checker catches it.
			&cli.StringFlag{Name: "unsafe", Usage: "break a guarantee on the nodes: ack-before-commit, stale-reads", Hidden: true},
		},
		Action: runJepsen,
	}
}

func runJepsen(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageErr("jepsen takes no arguments, got %q (flags start with --)", c.Args().First())
	}
	nemeses, err := jepsen.ParseNemeses(c.String("nemesis"))
	if err != nil {
		return usageErr("--nemesis: %v", err)
	}
	var workloads []string
	for _, w := range strings.Split(c.String("workload"), ",") {
		if w = strings.TrimSpace(w); w == "" {
			continue
		}
		if !slices.Contains(jepsen.Workloads, w) {
			return usageErr("--workload: unknown workload %q (%s)", w, strings.Join(jepsen.Workloads, ", "))
		}
		workloads = append(workloads, w)
	}
	if len(workloads) == 0 {
		return usageErr("--workload: name at least one of %s", strings.Join(jepsen.Workloads, ", "))
	}
	bin := c.String("binary")
	if bin == "" && !failpointsBuilt {
		switch {
		case slices.Contains(nemeses, "powercut"):
			return usageErr("--nemesis powercut: the nodes' disks are simulated, which takes a duro built with -tags failpoints:\n" +
				"  go build -tags failpoints -o duro ./cmd/duro && ./duro jepsen --nemesis powercut")
		case c.String("unsafe") != "":
			return usageErr("--unsafe: the fault switches are compiled in only with -tags failpoints:\n"+
				"  go build -tags failpoints -o duro ./cmd/duro && ./duro jepsen --unsafe %s", c.String("unsafe"))
		}
	}
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return fmt.Errorf("finding the duro binary for the nodes: %w (use --binary)", err)
		}
	}
	o := jepsen.Options{
		Binary:      bin,
		Nodes:       c.Int("nodes"),
		Time:        c.Duration("time"),
		Rate:        c.Float64("rate"),
		Concurrency: c.Int("concurrency"),
		Workloads:   workloads,
		Nemeses:     nemeses,
		Seed:        c.Uint64("seed"),
		Out:         c.String("out"),
		Keys:        c.Int("keys"),
		Groups:      c.Int("groups"),
		OpTimeout:   c.Duration("op-timeout"),
		Progress:    c.App.Writer,
	}
	if u := c.String("unsafe"); u != "" {
		o.Env = append(o.Env, duro.EnvUnsafe+"="+u)
	}
	if o.Nodes != 3 && o.Nodes != 5 {
		return usageErr("--nodes must be 3 or 5, got %d", o.Nodes)
	}
	s, err := jepsen.Run(c.Context, o)
	if s != nil {
		jepsen.PrintSummary(c.App.Writer, s, s.Options.Out)
	}
	if err != nil {
		return err
	}
	if s.Verdict == jepsen.Invalid {
		return &exitError{code: exitFailed, err: fmt.Errorf("INVALID: see %s", s.Options.Out)}
	}
	return nil
}
