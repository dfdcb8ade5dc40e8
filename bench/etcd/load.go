package main

import (
	"context"
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
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/duro-db/duro/bench/load"
)

// hotKey is the one key the hot workload increments.
const hotKey = "bench-hot"

// runLoad drives one workload, the etcd equivalent of `duro bench`'s:
//
//   - write: Put of a --value-size value on one of --keys keys (duro: Register.Put)
//   - seq:   write from one caller (duro: write with --callers 1)
//   - hot:   read-modify-write of ONE key with concurrency.NewSTM, default isolation
//     (serializable snapshot), retried on conflict by the STM (duro: Counter.Add)
//   - read:  linearizable Get of one of --keys keys (duro: Register.Get)
func runLoad(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	eps := fs.String("endpoints", "127.0.0.1:17401,127.0.0.1:17402,127.0.0.1:17403", "client endpoints, host:port,...")
	workload := fs.String("workload", "write", "write, seq, hot or read")
	callers := fs.Int("callers", 128, "concurrent callers (seq: always 1)")
	conns := fs.Int("conns", 16, "gRPC connections the callers share, as etcd's own benchmark tool does")
	rate := fs.Float64("rate", 0, "total ops/s (open loop); 0 for closed loop")
	dur := fs.Duration("time", 20*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 3*time.Second, "unmeasured run before")
	keys := fs.Int("keys", 10_000, "keys write and read spread over")
	valueSize := fs.Int("value-size", 256, "bytes per written value")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	plot := fs.String("plot", "", "also write latency over time to this SVG file")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	switch *workload {
	case "write", "seq", "hot", "read":
	default:
		fmt.Fprintf(stderr, "etcdbench load: unknown workload %q (write, seq, hot or read)\n", *workload)
		return errUsage
	}
	if *workload == "seq" {
		*callers, *conns = 1, 1
	}
	if *callers < 1 || *conns < 1 || *keys < 1 {
		fmt.Fprintln(stderr, "etcdbench load: --callers, --conns and --keys must be at least 1")
		return errUsage
	}
	*conns = min(*conns, *callers)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	clients := make([]*clientv3.Client, *conns)
	for i := range clients {
		c, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*eps, ","), DialTimeout: 10 * time.Second})
		if err != nil {
			return fmt.Errorf("connect to %s: %w", *eps, err)
		}
		defer c.Close()
		clients[i] = c
	}
	rnds := make([]*rand.Rand, *callers)
	for i := range rnds {
		rnds[i] = rand.New(rand.NewPCG(0, uint64(i)))
	}
	keyOf := func(w int) string { return "bench-" + strconv.Itoa(rnds[w].IntN(*keys)) }
	value := strings.Repeat("v", *valueSize)

	var op load.Op
	switch *workload {
	case "write", "seq":
		op = func(ctx context.Context, w int) error {
			_, err := clients[w%len(clients)].Put(ctx, keyOf(w), value)
			return err
		}
	case "read":
		op = func(ctx context.Context, w int) error {
			_, err := clients[w%len(clients)].Get(ctx, keyOf(w))
			return err
		}
	case "hot":
		op = func(ctx context.Context, w int) error {
			_, err := concurrency.NewSTM(clients[w%len(clients)], func(s concurrency.STM) error {
				n := 0
				if v := s.Get(hotKey); v != "" {
					var err error
					if n, err = strconv.Atoi(v); err != nil {
						return fmt.Errorf("%s holds %q, not a number", hotKey, v)
					}
				}
				s.Put(hotKey, strconv.Itoa(n+1))
				return nil
			}, concurrency.WithAbortContext(ctx))
			return err
		}
	default:
		panic("workload checked above: " + *workload)
	}
	cfg := load.Config{Workload: *workload, Callers: *callers, Rate: *rate, Warmup: *warmup, Duration: *dur}
	if !*quiet {
		cfg.Progress = load.ProgressPrinter(stderr, *workload)
	}
	res, err := load.Run(ctx, cfg, op)
	if err != nil {
		return err
	}
	res.System = "etcd"
	if *plot != "" {
		f, err := os.Create(*plot)
		if err != nil {
			return err
		}
		if err := res.WriteSVG(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if *asJSON {
		return res.WriteJSON(stdout)
	}
	return res.WriteTable(stdout)
}
