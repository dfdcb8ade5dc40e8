package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/internal/buildinfo"
	"github.com/duro-db/duro/internal/diskspace"
	"github.com/duro-db/duro/objects"
	"github.com/duro-db/duro/objects/examples"
	"github.com/duro-db/duro/raftgroup"
)

func init() { examples.RegisterAll(objects.DefaultRegistry) }

// serverFlags are the node's settings. Each has a DURO_* environment variable and may come
// from a YAML file given with --config; precedence is flag > env > file > default.
func serverFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "YAML file with any of the flags below as keys (e.g. `id: n1`)", EnvVars: []string{"DURO_CONFIG"}},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "id", Usage: "this node's ID, as named in --peers", EnvVars: []string{"DURO_ID"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data-dir", Usage: "where this node keeps its Raft logs and object state", Value: "duro-data", EnvVars: []string{"DURO_DATA_DIR"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "listen", Usage: "address for peer and client traffic (one port for both; default: this node's address in --peers)", EnvVars: []string{"DURO_LISTEN"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "advertise", Usage: "address peers and clients dial (default: this node's address in --peers)", EnvVars: []string{"DURO_ADVERTISE"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "http", Usage: "address for /livez, /readyz, /metrics and /debug/pprof (empty: off)", Value: "127.0.0.1:7180", EnvVars: []string{"DURO_HTTP"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "peers", Usage: "every node of the cluster, this one included: `id=host:port,...`", EnvVars: []string{"DURO_PEERS"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "groups", Usage: "data Raft groups (fixed when the cluster is created)", Value: raftgroup.DefaultGroups, EnvVars: []string{"DURO_GROUPS"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "replicas", Usage: "replicas of each data group: 3 or 5 (fixed at creation)", Value: raftgroup.DefaultReplicas, EnvVars: []string{"DURO_REPLICAS"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "slots", Usage: "hash slots objects are spread over (fixed at creation)", Value: raftgroup.DefaultSlots, EnvVars: []string{"DURO_SLOTS"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "disk-reserve", Usage: "free space below which the node refuses writes (ErrNoSpace) while reads and deletes go on, e.g. 256MiB, 1GiB", Value: "256MiB", EnvVars: []string{"DURO_DISK_RESERVE"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "wal-segment-size", Usage: "size of the raft log's preallocated segment files (a node sets aside two); lower it on small disks", Value: "64MiB", EnvVars: []string{"DURO_WAL_SEGMENT_SIZE"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "idle-timeout", Usage: "evict an object instance from memory after this long without events", Value: 60 * time.Second, EnvVars: []string{"DURO_IDLE_TIMEOUT"}}),
		// Hidden: route this node's raft traffic to each peer through another address (the
		// Jepsen-style harness puts a proxy on every directed link this way).
		altsrc.NewStringFlag(&cli.StringFlag{Name: "dial-addrs", Hidden: true, Usage: "id=host:port,... to dial for each peer's raft traffic", EnvVars: []string{"DURO_DIAL_ADDRS"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info", EnvVars: []string{"DURO_LOG_LEVEL"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-format", Usage: "text or json", Value: "text", EnvVars: []string{"DURO_LOG_FORMAT"}}),
	}
}

func serverCommand() *cli.Command {
	flags := serverFlags()
	return &cli.Command{
		Name:  "server",
		Usage: "run one node of a cluster",
		Description: "Starts a node. Every node of a cluster gets the same --peers, --groups, --replicas and\n" +
			"--slots; the first start creates the cluster, later starts reopen --data-dir.\n\n" +
			"Example (three terminals, or see scripts/cluster.sh):\n" +
			"  duro server --id n1 --listen 127.0.0.1:7101 --http 127.0.0.1:7181 --data-dir /tmp/duro/n1 \\\n" +
			"              --peers n1=127.0.0.1:7101,n2=127.0.0.1:7102,n3=127.0.0.1:7103\n\n" +
			"SIGTERM or Ctrl-C hands leadership to other nodes and stops cleanly.",
		Flags: flags,
		Before: func(c *cli.Context) error {
			if c.String("config") == "" {
				return nil
			}
			return altsrc.InitInputSourceWithContext(flags, altsrc.NewYamlSourceFromFlagFunc("config"))(c)
		},
		Action: runServer,
	}
}

func runServer(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageErr("server takes no arguments, got %q (flags start with --)", c.Args().First())
	}
	log, err := newLogger(c.App.ErrWriter, c.String("log-level"), c.String("log-format"))
	if err != nil {
		return err
	}
	if c.String("id") == "" {
		return usageErr("--id is required (this node's ID, as named in --peers)")
	}
	if c.String("peers") == "" {
		return usageErr("--peers is required, e.g. --peers n1=127.0.0.1:7101,n2=127.0.0.1:7102,n3=127.0.0.1:7103")
	}
	// 0 would silently mean the default to duro.Config; on the command line it is a mistake.
	for _, f := range []string{"groups", "replicas", "slots"} {
		if c.Int(f) < 1 {
			return usageErr("--%s must be at least 1, got %d", f, c.Int(f))
		}
	}
	peers, err := raftgroup.ParsePeers(c.String("peers"))
	if err != nil {
		return usageErr("--peers: %v", err)
	}
	var dialAddrs map[string]string
	if v := c.String("dial-addrs"); v != "" {
		ds, err := raftgroup.ParsePeers(v)
		if err != nil {
			return usageErr("--dial-addrs: %v", err)
		}
		dialAddrs = map[string]string{}
		for _, d := range ds {
			dialAddrs[d.ID] = d.Addr
		}
	}
	reserve, err := diskspace.ParseBytes(c.String("disk-reserve"))
	if err != nil {
		return usageErr("--disk-reserve: %v", err)
	}
	segSize, err := diskspace.ParseBytes(c.String("wal-segment-size"))
	if err != nil || segSize < 1<<20 || segSize > 1<<30 {
		return usageErr("--wal-segment-size: want 1MiB to 1GiB, got %q", c.String("wal-segment-size"))
	}
	cfg := duro.Config{
		DiskReserve:    max(reserve, 1), // 0 would mean the default; "0" asks for no reserve
		WALSegmentSize: int64(segSize),
		ID:             c.String("id"),
		DataDir:        c.String("data-dir"),
		Peers:          peers,
		Groups:         c.Int("groups"),
		Replicas:       c.Int("replicas"),
		Slots:          c.Int("slots"),
		Listen:         c.String("listen"),
		Advertise:      c.String("advertise"),
		HTTP:           c.String("http"),
		DialAddrs:      dialAddrs,
		Logger:         log,
		Objects:        objects.Options{IdleTimeout: c.Duration("idle-timeout")},
	}
	if err := cfg.Validate(); err != nil {
		return usageErr("%v", err) // every field of cfg comes from the command line
	}
	if err := simulatePowerCut(&cfg, log); err != nil {
		return err
	}
	srv, err := duro.Start(c.Context, cfg)
	if err != nil {
		return err
	}
	b := buildinfo.Get()
	log.Info("duro node running", "id", cfg.ID, "listen", srv.Addr(), "http", srv.HTTPAddr(),
		"version", b.Version, "commit", b.Commit)
	<-c.Context.Done()
	log.Info("shutting down: handing off leadership")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
