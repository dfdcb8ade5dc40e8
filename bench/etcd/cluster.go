package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// errUsage means the flag package has already printed what was wrong.
var errUsage = errors.New("usage")

const members = 3

// memberURLs are member i's client and peer URLs (i from 1) on loopback.
func memberURLs(base, i int) (client, peer string) {
	return fmt.Sprintf("http://127.0.0.1:%d", base+i), fmt.Sprintf("http://127.0.0.1:%d", base+10+i)
}

// runCluster starts one child process per member, waits until the cluster answers a
// linearizable read, prints its endpoints and the members' pids, and stops the members
// (SIGTERM, then waits) when it is itself signalled.
func runCluster(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "data directory (default: a temporary one, removed on exit)")
	base := fs.Int("base-port", 17400, "member i serves clients on BASE+i and peers on BASE+10+i")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *dir == "" {
		d, err := os.MkdirTemp("", "etcdbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var initial, endpoints []string
	for i := 1; i <= members; i++ {
		c, p := memberURLs(*base, i)
		initial = append(initial, fmt.Sprintf("m%d=%s", i, p))
		endpoints = append(endpoints, strings.TrimPrefix(c, "http://"))
	}
	var cmds []*exec.Cmd
	defer func() {
		for _, c := range cmds {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range cmds {
			_ = c.Wait()
		}
	}()
	for i := 1; i <= members; i++ {
		c, p := memberURLs(*base, i)
		name := fmt.Sprintf("m%d", i)
		logf, err := os.Create(filepath.Join(*dir, name+".log"))
		if err != nil {
			return err
		}
		defer logf.Close()
		cmd := exec.Command(self, "member", "--name", name, "--dir", filepath.Join(*dir, name),
			"--client-url", c, "--peer-url", p, "--initial-cluster", strings.Join(initial, ","))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start member %s: %w", name, err)
		}
		cmds = append(cmds, cmd)
	}
	if err := waitReady(ctx, endpoints, 60*time.Second); err != nil {
		return fmt.Errorf("%w (member logs in %s)", err, *dir)
	}
	pids := make([]string, len(cmds))
	for i, c := range cmds {
		pids[i] = strconv.Itoa(c.Process.Pid)
	}
	fmt.Fprintf(stdout, "endpoints %s\npids %s\n", strings.Join(endpoints, ","), strings.Join(pids, ","))
	<-ctx.Done()
	return nil
}

// waitReady polls until a linearizable read succeeds, i.e. a leader is elected and a
// quorum answers.
func waitReady(ctx context.Context, endpoints []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: timeout})
	if err != nil {
		return err
	}
	defer cli.Close()
	for {
		actx, acancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Get(actx, "ready")
		acancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd cluster not ready: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// runMember runs one etcd member in this process until SIGTERM or SIGINT.
func runMember(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("member", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "member name")
	dir := fs.String("dir", "", "data directory")
	clientURL := fs.String("client-url", "", "URL for clients")
	peerURL := fs.String("peer-url", "", "URL for peers")
	initial := fs.String("initial-cluster", "", "name=peer-url,...")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cu, err := url.Parse(*clientURL)
	if err != nil {
		return err
	}
	pu, err := url.Parse(*peerURL)
	if err != nil {
		return err
	}
	cfg := embed.NewConfig()
	cfg.Name = *name
	cfg.Dir = *dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = *initial
	cfg.InitialClusterToken = "etcdbench"
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.LogLevel = "error"
	cfg.UnsafeNoFsync = false // every commit fsynced: the comparison is with durable writes
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		return err
	}
}
