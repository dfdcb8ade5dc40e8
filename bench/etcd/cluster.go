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
	"go.uber.org/zap"
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
	c, err := startCluster(ctx, *dir, *base, false)
	if err != nil {
		return err
	}
	defer c.stop()
	pids := make([]string, len(c.cmds))
	for i, cmd := range c.cmds {
		pids[i] = strconv.Itoa(cmd.Process.Pid)
	}
	fmt.Fprintf(stdout, "endpoints %s\npids %s\n", strings.Join(c.endpoints, ","), strings.Join(pids, ","))
	<-ctx.Done()
	return nil
}

// cluster is 3 member processes, each under its own `etcdbench member`.
type cluster struct {
	dir       string
	cmds      []*exec.Cmd
	exited    []chan struct{} // closed when cmds[i] has been waited for
	endpoints []string        // what clients dial: the members, or their client proxies
	// With proxies: every connection to a member, client or peer, passes one of them.
	part    *partition
	proxies []*proxy
	peers   []*proxy // peers[i] is in front of member i's peer port
}

// startCluster starts the members with their data under dir and waits until the cluster
// answers a linearizable read. With proxied, each member advertises a proxy of this
// process in front of its peer port and one in front of its client port, so c.part can
// cut a member off from its peers.
func startCluster(ctx context.Context, dir string, base int, proxied bool) (_ *cluster, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	clientURLs, peerURLs := make([]string, members), make([]string, members)
	var initial []string
	for i := 1; i <= members; i++ {
		cu, pu := memberURLs(base, i)
		clientURLs[i-1], peerURLs[i-1] = cu, pu
		if proxied {
			if c.part == nil {
				c.part = &partition{}
			}
			pp, err := newProxy(strings.TrimPrefix(pu, "http://"), c.part)
			if err != nil {
				return nil, err
			}
			cp, err := newProxy(strings.TrimPrefix(cu, "http://"), nil)
			if err != nil {
				pp.close()
				return nil, err
			}
			c.proxies = append(c.proxies, pp, cp)
			c.peers = append(c.peers, pp)
			clientURLs[i-1], peerURLs[i-1] = "http://"+cp.addr(), "http://"+pp.addr()
		}
		initial = append(initial, fmt.Sprintf("m%d=%s", i, peerURLs[i-1]))
		c.endpoints = append(c.endpoints, strings.TrimPrefix(clientURLs[i-1], "http://"))
	}
	for i := 1; i <= members; i++ {
		listenClient, listenPeer := memberURLs(base, i)
		name := fmt.Sprintf("m%d", i)
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(self, "member", "--name", name, "--dir", filepath.Join(dir, name),
			"--client-url", listenClient, "--peer-url", listenPeer,
			"--advertise-client-url", clientURLs[i-1], "--advertise-peer-url", peerURLs[i-1],
			"--initial-cluster", strings.Join(initial, ","))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, fmt.Errorf("start member %s: %w", name, err)
		}
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			logf.Close()
			close(exited)
		}()
		c.cmds = append(c.cmds, cmd)
		c.exited = append(c.exited, exited)
	}
	if err := waitReady(ctx, c.endpoints, 60*time.Second); err != nil {
		return nil, fmt.Errorf("%w (member logs in %s)", err, dir)
	}
	return c, nil
}

// stop ends every member still running (SIGCONT first, in case it is paused; SIGTERM;
// SIGKILL after 10 s) and then the proxies.
func (c *cluster) stop() {
	for i, cmd := range c.cmds {
		select {
		case <-c.exited[i]:
			continue
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	for i, cmd := range c.cmds {
		select {
		case <-c.exited[i]:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-c.exited[i]
		}
	}
	for _, p := range c.proxies {
		p.close()
	}
}

// waitReady polls until a linearizable read succeeds, i.e. a leader is elected and a
// quorum answers.
func waitReady(ctx context.Context, endpoints []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Retries while members start are expected; the client's log of them is silenced.
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: timeout, Logger: zap.NewNop()})
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
	advClient := fs.String("advertise-client-url", "", "URL clients are told (default: --client-url)")
	advPeer := fs.String("advertise-peer-url", "", "URL peers are told (default: --peer-url)")
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
	acu, apu := cu, pu
	if *advClient != "" {
		if acu, err = url.Parse(*advClient); err != nil {
			return err
		}
	}
	if *advPeer != "" {
		if apu, err = url.Parse(*advPeer); err != nil {
			return err
		}
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*acu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*apu}
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
