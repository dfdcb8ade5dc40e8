package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/client"
	"github.com/duro-db/duro/raftgroup"
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run a complete 3-node cluster in this process, for development",
		Description: "Starts three nodes on loopback (client/peer ports BASE+1..BASE+3, HTTP ports\n" +
			"BASE+81..BASE+83), makes one call to show it works, prints the endpoints and a\n" +
			"ready-to-paste `duro call`, and runs until Ctrl-C. Data is temporary unless\n" +
			"--data-dir is given, in which case a restart finds it again.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "base-port", Usage: "nodes listen on BASE+1..BASE+3", Value: 7100, EnvVars: []string{"DURO_BASE_PORT"}},
			&cli.StringFlag{Name: "data-dir", Usage: "keep data here (default: a temporary directory removed on exit)", EnvVars: []string{"DURO_DATA_DIR"}},
			&cli.IntFlag{Name: "groups", Usage: "data Raft groups", Value: raftgroup.DefaultGroups},
			&cli.BoolFlag{Name: "once", Usage: "stop after the first call succeeds (a smoke test)"},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "warn"},
		},
		Action: runDev,
	}
}

func runDev(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageErr("dev takes no arguments, got %q", c.Args().First())
	}
	log, err := newLogger(c.App.ErrWriter, c.String("log-level"), "text")
	if err != nil {
		return err
	}
	base := c.Int("base-port")
	if base < 1 || base+83 > 65535 {
		return usageErr("--base-port %d out of range", base)
	}
	dir := c.String("data-dir")
	if dir == "" {
		dir, err = os.MkdirTemp("", "duro-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	var peers []raftgroup.Peer
	for i := 1; i <= 3; i++ {
		peers = append(peers, raftgroup.Peer{ID: "n" + strconv.Itoa(i), Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i))})
	}
	// Raft's own records (first elections, peers closing at Ctrl-C) are noise in a dev
	// cluster; they show with --log-level debug.
	raftLevel := slog.LevelError + 4
	if c.String("log-level") == "debug" {
		raftLevel = slog.LevelDebug
	}
	start := time.Now()
	out := c.App.Writer
	fmt.Fprintf(out, "duro dev: starting 3 nodes (data in %s)\n", dir)
	servers := make([]*duro.Server, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i], errs[i] = duro.Start(c.Context, duro.Config{
				ID: peers[i].ID, DataDir: filepath.Join(dir, peers[i].ID), Peers: peers,
				Groups: c.Int("groups"), Listen: peers[i].Addr,
				HTTP:   net.JoinHostPort("127.0.0.1", strconv.Itoa(base+80+i+1)),
				Logger: log, RaftLogLevel: raftLevel,
			})
		}()
	}
	wg.Wait()
	stopAll := func() {
		fmt.Fprintln(out, "duro dev: stopping")
		var wg sync.WaitGroup
		for _, s := range servers {
			if s != nil {
				wg.Add(1)
				go func() { defer wg.Done(); s.Close() }()
			}
		}
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			stopAll()
			return err
		}
	}
	defer stopAll()

	eps := make([]string, len(peers))
	for i, p := range peers {
		eps[i] = p.Addr
	}
	// One real call through the SDK shows the cluster works end to end.
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, eps)
	if err != nil {
		return doing("connect to the dev cluster", err)
	}
	res, err := cl.Namespace("Counter").GetByName("hello").CallJSON(ctx, "Add", []byte("1"))
	cl.Close()
	if err != nil {
		return doing("first call to the dev cluster", err)
	}
	fmt.Fprintf(out, "duro dev: cluster ready in %.1fs\n\n", time.Since(start).Seconds())
	for i, s := range servers {
		fmt.Fprintf(out, "  %s  %s  http://%s\n", peers[i].ID, s.Addr(), s.HTTPAddr())
	}
	fmt.Fprintf(out, "\nCalled Counter \"hello\" Add 1 -> %s\n\n", res)
	if c.Bool("once") {
		return nil
	}
	epFlag := ""
	if base != 7100 {
		epFlag = fmt.Sprintf(" --endpoints %s,%s,%s", eps[0], eps[1], eps[2])
	}
	fmt.Fprintf(out, "Try, from another terminal:\n  duro call%s Counter hello Add 41\n  duro status%s\n\nCtrl-C stops the cluster.\n", epFlag, epFlag)
	<-c.Context.Done()
	return nil
}
