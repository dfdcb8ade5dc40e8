package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/duro-db/duro/bench/failover"
	"github.com/duro-db/duro/bench/load"
)

// runFailover is the etcd half of `duro bench failover`: it starts its own 3-member
// cluster behind proxies, drives --callers Puts, and --at into the measured window
// strikes the leader.
func runFailover(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	faultName := fs.String("fault", string(failover.Kill), "kill, pause or partition")
	at := fs.Duration("at", 8*time.Second, "when to strike, into the measured window")
	dur := fs.Duration("time", 20*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 3*time.Second, "unmeasured run before")
	callers := fs.Int("callers", 16, "concurrent callers, closed loop")
	conns := fs.Int("conns", 1, "clients the callers share (duro's side: one SDK client)")
	keys := fs.Int("keys", 10_000, "keys the writes spread over")
	valueSize := fs.Int("value-size", 256, "bytes per written value")
	callTimeout := fs.Duration("call-timeout", 30*time.Second, "deadline of each call (duro's SDK default)")
	slowBelow := fs.Int("slow-below", 100, "a second with fewer calls answered than this is slow")
	base := fs.Int("base-port", 17500, "member i serves clients on BASE+i and peers on BASE+10+i")
	dir := fs.String("dir", "", "data directories and member logs (default: a temporary one, removed unless the run fails)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	plot := fs.String("plot", "", "also write latency over time to this SVG file")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	fault, err := failover.ParseFault(*faultName)
	if err != nil {
		fmt.Fprintf(stderr, "etcdbench failover: --fault: %v\n", err)
		return errUsage
	}
	if *callers < 1 || *conns < 1 || *keys < 1 || *slowBelow < 1 || *dur <= 0 || *at < 0 || *at >= *dur || *callTimeout <= 0 {
		fmt.Fprintln(stderr, "etcdbench failover: --callers, --conns, --keys and --slow-below must be at least 1, "+
			"--at must fall inside --time, --call-timeout > 0")
		return errUsage
	}
	*conns = min(*conns, *callers)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	progress := func(string) {}
	if !*quiet {
		progress = func(s string) { fmt.Fprintln(stderr, s) }
	}
	temp := *dir == ""
	if temp {
		if *dir, err = os.MkdirTemp("", "etcdbench-failover-"); err != nil {
			return err
		}
	}

	progress(fmt.Sprintf("starting 3 members in %s", *dir))
	c, err := startCluster(ctx, *dir, *base, true)
	if err != nil {
		return err
	}
	rep, err := etcdFailover(ctx, c, failover.Config{
		Load:      load.Config{Workload: "write", Callers: *callers, Warmup: *warmup, Duration: *dur},
		Fault:     fault,
		At:        *at,
		SlowBelow: *slowBelow,
	}, *conns, *keys, *valueSize, *callTimeout, *quiet, stderr)
	c.stop()
	if err != nil {
		return fmt.Errorf("%w (member logs in %s)", err, *dir)
	}
	if temp {
		_ = os.RemoveAll(*dir)
	}
	rep.System = "etcd"
	if *plot != "" && rep.Run != nil {
		f, err := os.Create(*plot)
		if err != nil {
			return err
		}
		if err := rep.Run.WriteSVG(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if *asJSON {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteTable(stdout)
}

func etcdFailover(ctx context.Context, c *cluster, cfg failover.Config, conns, keys, valueSize int,
	callTimeout time.Duration, quiet bool, stderr io.Writer) (*failover.Report, error) {
	clients := make([]*clientv3.Client, conns)
	for i := range clients {
		// The client's own log of retries is silenced: the run counts what reaches callers.
		cl, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", strings.Join(c.endpoints, ","), err)
		}
		defer cl.Close()
		clients[i] = cl
	}
	t := &etcdTarget{c: c, cli: clients[0]}
	if err := t.learnIDs(ctx); err != nil {
		return nil, err
	}
	rnds := make([]*rand.Rand, cfg.Load.Callers)
	for i := range rnds {
		rnds[i] = rand.New(rand.NewPCG(0, uint64(i)))
	}
	value := strings.Repeat("v", valueSize)
	op := func(ctx context.Context, w int) error {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		_, err := clients[w%len(clients)].Put(ctx, "bench-"+strconv.Itoa(rnds[w].IntN(keys)), value)
		return err
	}
	if !quiet {
		cfg.Load.Progress = load.ProgressPrinter(stderr, "write")
		cfg.Log = func(s string) { fmt.Fprintln(stderr, s) }
	}
	return failover.Run(ctx, cfg, t, op)
}

// etcdTarget is the cluster as a failover.Target: the victim is the leader of its one
// raft group.
type etcdTarget struct {
	c   *cluster
	cli *clientv3.Client
	ids []string // member IDs by index, as etcd writes them (hex)
}

// learnIDs asks each member its ID and tells its peer proxy.
func (t *etcdTarget) learnIDs(ctx context.Context) error {
	for i, ep := range t.c.endpoints {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := t.cli.Status(sctx, ep)
		cancel()
		if err != nil {
			return fmt.Errorf("status of member %d: %w", i+1, err)
		}
		id := strconv.FormatUint(st.Header.MemberId, 16)
		t.ids = append(t.ids, id)
		t.c.peers[i].setMember(id)
	}
	return nil
}

// Victim returns the leader that the member reporting the highest term names.
func (t *etcdTarget) Victim(ctx context.Context) (string, string, error) {
	var leader, term uint64
	var lastErr error
	for _, ep := range t.c.endpoints {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := t.cli.Status(sctx, ep)
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		if st.Leader != 0 && st.RaftTerm >= term {
			leader, term = st.Leader, st.RaftTerm
		}
	}
	if leader == 0 {
		return "", "", fmt.Errorf("no member names a leader (last error: %v)", lastErr)
	}
	id := strconv.FormatUint(leader, 16)
	for i, m := range t.ids {
		if m == id {
			return fmt.Sprintf("m%d", i+1), fmt.Sprintf("leader in term %d", term), nil
		}
	}
	return "", "", fmt.Errorf("the leader %s is not a member this run started", id)
}

func (t *etcdTarget) Strike(_ context.Context, f failover.Fault, name string) (func() error, error) {
	i, err := strconv.Atoi(strings.TrimPrefix(name, "m"))
	if err != nil || i < 1 || i > len(t.c.cmds) {
		return nil, fmt.Errorf("no member %q", name)
	}
	i--
	p := t.c.cmds[i].Process
	switch f {
	case failover.Kill:
		if err := p.Kill(); err != nil {
			return nil, err
		}
		<-t.c.exited[i]
		return nil, nil
	case failover.Pause:
		if err := p.Signal(syscall.SIGSTOP); err != nil {
			return nil, err
		}
		return func() error { return p.Signal(syscall.SIGCONT) }, nil
	case failover.Partition:
		t.c.part.isolate(t.ids[i])
		return func() error {
			t.c.part.isolate("")
			for _, pp := range t.c.peers {
				pp.healed()
			}
			return nil
		}, nil
	}
	return nil, errors.New("fault " + string(f) + " is not one of failover.Faults")
}
