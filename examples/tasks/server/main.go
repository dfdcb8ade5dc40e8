// Command server is a user's own duro node: a program that defines a class of durable
// object (TaskQueue, in taskqueue.go), registers it, and embeds the duro server with
// duro.Start. Every node of the cluster runs this same binary.
//
// One node of a cluster (run it three times, with -id n2 and n3 and their own addresses):
//
//	server -id n1 -listen 127.0.0.1:7201 -http 127.0.0.1:7281 -data-dir /tmp/tasks/n1 \
//	       -peers n1=127.0.0.1:7201,n2=127.0.0.1:7202,n3=127.0.0.1:7203
//
// Or a whole 3-node cluster in this one process, for development:
//
//	server -dev
//
// SIGINT or SIGTERM hands leadership over and stops cleanly (exit status 0).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/raftgroup"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks a mistake on the command line (exit status 2).
var errUsage = errors.New("usage")

// errReported is a command-line error the flag package has already printed.
type errReported struct{ err error }

func (e errReported) Error() string { return e.err.Error() }
func (e errReported) Unwrap() error { return e.err }

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := serve(ctx, args, stdout, stderr)
	var reported errReported
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &reported):
		return 2
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "server: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "server: %v\n", err)
		return 1
	}
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		id       = fs.String("id", "", "this node's ID, as named in -peers")
		listen   = fs.String("listen", "", "address for peers and clients (default: this node's address in -peers)")
		httpAddr = fs.String("http", "", "address of /livez, /readyz, /status and /metrics (empty: off)")
		peers    = fs.String("peers", "", "every node of the cluster, this one included: id=host:port,...")
		dataDir  = fs.String("data-dir", "", "where the node keeps its state (with -dev: default a temporary directory)")
		groups   = fs.Int("groups", 4, "data Raft groups (fixed when the cluster is created)")
		dev      = fs.Bool("dev", false, "run a 3-node cluster in this process")
		basePort = fs.Int("base-port", 7200, "with -dev: nodes listen on BASE+1..BASE+3, HTTP on BASE+81..BASE+83")
		logLevel = fs.String("log-level", "warn", "debug, info, warn or error")
	)
	if err := fs.Parse(args); err != nil {
		return errReported{err} // flag has printed the error and the usage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: -log-level: %v", errUsage, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if *groups < 1 {
		return fmt.Errorf("%w: -groups must be at least 1", errUsage)
	}

	var cfgs []duro.Config
	if *dev {
		if *basePort < 1 || *basePort+83 > 65535 {
			return fmt.Errorf("%w: -base-port %d out of range", errUsage, *basePort)
		}
		dir := *dataDir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "tasks-dev-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		}
		cfgs = devConfigs(dir, *basePort, *groups)
	} else {
		if *id == "" || *peers == "" || *dataDir == "" {
			return fmt.Errorf("%w: -id, -peers and -data-dir are required (or -dev)", errUsage)
		}
		ps, err := raftgroup.ParsePeers(*peers)
		if err != nil {
			return fmt.Errorf("%w: -peers: %v", errUsage, err)
		}
		cfgs = []duro.Config{{ID: *id, DataDir: *dataDir, Peers: ps, Groups: *groups, Listen: *listen, HTTP: *httpAddr}}
	}
	for i := range cfgs {
		cfgs[i].Logger = log
		// Registry is left nil: the node serves objects.DefaultRegistry, where this
		// program's init registered TaskQueue.
		if err := cfgs[i].Validate(); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}

	servers, err := startAll(ctx, cfgs)
	if err != nil {
		return err
	}
	defer stopAll(servers, log)

	// Wait for leaders, so that what is printed next can be used at once.
	readyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, s := range servers {
		if err := s.WaitReady(readyCtx); err != nil {
			return fmt.Errorf("waiting for the cluster to elect leaders: %w", err)
		}
	}
	addrs := make([]string, len(servers))
	for i, s := range servers {
		addrs[i] = s.Addr()
		fmt.Fprintf(stdout, "node %s serving TaskQueue at %s\n", cfgs[i].ID, s.Addr())
	}
	if *dev {
		fmt.Fprintf(stdout, "ready; try: go run ./examples/tasks/client -endpoints %s\n", strings.Join(addrs, ","))
	} else {
		fmt.Fprintln(stdout, "ready")
	}
	<-ctx.Done()
	return nil
}

// devConfigs lays out three nodes on loopback, as `duro dev` does.
func devConfigs(dir string, base, groups int) []duro.Config {
	var peers []duro.Peer
	for i := 1; i <= 3; i++ {
		peers = append(peers, duro.Peer{ID: "n" + strconv.Itoa(i), Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i))})
	}
	cfgs := make([]duro.Config, len(peers))
	for i, p := range peers {
		cfgs[i] = duro.Config{
			ID: p.ID, DataDir: filepath.Join(dir, p.ID), Peers: peers, Groups: groups,
			HTTP: net.JoinHostPort("127.0.0.1", strconv.Itoa(base+81+i)),
			// A new cluster's first elections are expected; do not report them.
			RaftLogLevel: slog.LevelError,
		}
	}
	return cfgs
}

// startAll starts the nodes concurrently (each waits for nothing from the others, but
// together they come up faster) and closes those that started if any failed.
func startAll(ctx context.Context, cfgs []duro.Config) ([]*duro.Server, error) {
	servers := make([]*duro.Server, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i], errs[i] = duro.Start(ctx, cfgs[i])
			if errs[i] != nil {
				errs[i] = fmt.Errorf("start node %s: %w", cfgs[i].ID, errs[i])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range servers {
			if s != nil {
				s.Close()
			}
		}
		return nil, err
	}
	return servers, nil
}

// stopAll stops the nodes. A lone node of a cluster shuts down gracefully, handing the
// groups it leads to replicas that keep running; the nodes of a -dev cluster all stop at
// once, so there is no one to hand over to and they simply close.
func stopAll(servers []*duro.Server, log *slog.Logger) {
	if len(servers) == 1 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := servers[0].Shutdown(ctx); err != nil {
			log.Warn("leadership handoff did not finish", "err", err)
		}
		return
	}
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() { defer wg.Done(); s.Close() }()
	}
	wg.Wait()
}
