package jepsen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/internal/objid"
	"github.com/duro-db/duro/internal/ports"
	"github.com/duro-db/duro/raftgroup"
)

// ClusterConfig describes a cluster of real `duro server` processes on loopback.
type ClusterConfig struct {
	Binary string // the duro binary the nodes run
	Dir    string // data dirs and logs go under it
	Nodes  int    // 3 or 5
	Groups int    // data groups; 0 means 4 (few groups start fast and keep each one busy)
	// Env is added to every node's environment (e.g. duro.EnvUnsafe+"=ack-before-commit").
	Env []string
	// Seed seeds the proxies' jitter and loss.
	Seed uint64
	// PowerCut keeps every node's data dir on a simulated disk that PowerCut can cut
	// the power of. The nodes must run a duro built with -tags failpoints.
	PowerCut bool
}

// NodeState is what the harness last did to a node's process.
type NodeState int

// The states of a node's process.
const (
	NodeStopped NodeState = iota // never started, killed, or exited
	NodeRunning
	NodePaused // SIGSTOPped
)

func (s NodeState) String() string {
	return [...]string{"stopped", "running", "paused"}[s]
}

// Node is one `duro server` process and the proxy clients reach it through.
type Node struct {
	ID      string
	Index   int    // 0-based position in the cluster
	Listen  string // where the process listens (peers reach it only through proxies)
	HTTP    string // operator endpoints
	Addr    string // canonical address: the client proxy; what --peers and the SDK use
	DataDir string
	LogPath string

	client *Proxy // Addr → Listen, for SDK traffic
	boot   int    // machine boots so far, under ClusterConfig.PowerCut

	mu     sync.Mutex
	state  NodeState
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// State returns what the harness last did to the node.
func (n *Node) State() NodeState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

// Cluster is a running set of nodes with a TCP proxy on every directed link between them,
// so partitions, one-way cuts and slow links need no root. Node i dials node j's raft
// traffic through links[i][j] (duro server's --dial-addrs); SDK clients reach node j
// through its client proxy, whose address is the one every node's --peers names.
//
// Its methods are safe for concurrent use.
type Cluster struct {
	cfg   ClusterConfig
	Nodes []*Node
	links [][]*Proxy // links[i][j]: node i → node j; nil on the diagonal
	http  *http.Client
}

// StartCluster creates the proxies and starts every node. It does not wait for leaders:
// see WaitReady.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if cfg.Nodes != 3 && cfg.Nodes != 5 {
		return nil, fmt.Errorf("jepsen: %d nodes: want 3 or 5", cfg.Nodes)
	}
	if cfg.Groups <= 0 {
		cfg.Groups = 4
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, http: &http.Client{Timeout: 2 * time.Second}}
	// Below the ephemeral ports, where neither the proxies (which bind port 0) nor any
	// connection's source port can land before the nodes bind them.
	addrs, err := ports.Free(2 * cfg.Nodes)
	if err != nil {
		return nil, err
	}
	for i := range cfg.Nodes {
		n := &Node{
			ID:      fmt.Sprintf("n%d", i+1),
			Index:   i,
			Listen:  addrs[2*i],
			HTTP:    addrs[2*i+1],
			DataDir: filepath.Join(cfg.Dir, fmt.Sprintf("n%d", i+1)),
			LogPath: filepath.Join(cfg.Dir, fmt.Sprintf("n%d.log", i+1)),
		}
		p, err := NewProxy("127.0.0.1:0", n.Listen, cfg.Seed+uint64(i))
		if err != nil {
			c.Close()
			return nil, err
		}
		n.client, n.Addr = p, p.Addr()
		c.Nodes = append(c.Nodes, n)
	}
	c.links = make([][]*Proxy, cfg.Nodes)
	for i := range cfg.Nodes {
		c.links[i] = make([]*Proxy, cfg.Nodes)
		for j := range cfg.Nodes {
			if i == j {
				continue
			}
			p, err := NewProxy("127.0.0.1:0", c.Nodes[j].Listen, cfg.Seed+uint64(100+10*i+j))
			if err != nil {
				c.Close()
				return nil, err
			}
			c.links[i][j] = p
		}
	}
	for _, n := range c.Nodes {
		if err := c.Start(n.Index); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, ctx.Err()
}

// Endpoints returns the client addresses of every node, for client.Dial.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

func (c *Cluster) args(n *Node) []string {
	var peers, dials []string
	for _, m := range c.Nodes {
		peers = append(peers, m.ID+"="+m.Addr)
		if m != n {
			dials = append(dials, m.ID+"="+c.links[n.Index][m.Index].Addr())
		}
	}
	return []string{"server",
		"--id", n.ID,
		"--listen", n.Listen,
		"--http", n.HTTP,
		"--data-dir", n.DataDir,
		"--peers", strings.Join(peers, ","),
		"--dial-addrs", strings.Join(dials, ","),
		"--groups", fmt.Sprint(c.cfg.Groups),
		"--log-level", "info",
	}
}

// Start starts node i's process if it is not running (after a kill, this is the restart).
func (c *Cluster) Start(i int) error {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != NodeStopped {
		return nil
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== jepsen: starting %s at %s\n", n.ID, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.cfg.Binary, c.args(n)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), c.cfg.Env...)
	if c.cfg.PowerCut {
		// Each simulated reboot is a new boot: the node must tell a state file
		// left open by a machine crash from one left by a process crash.
		cmd.Env = append(cmd.Env, fmt.Sprintf("DURO_POWERCUT=%s-boot-%d", n.ID, n.boot))
	}
	cmd.SysProcAttr = nodeProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("jepsen: starting %s: %w", n.ID, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.state = cmd, exited, NodeRunning
	go func() {
		_ = cmd.Wait() // how it ended is in its log
		_ = logf.Close()
		n.mu.Lock()
		if n.cmd == cmd {
			n.state = NodeStopped
		}
		n.mu.Unlock()
		close(exited)
	}()
	return nil
}

// Kill SIGKILLs node i and waits until the process is gone. Killing a stopped node is a
// no-op.
func (c *Cluster) Kill(i int) error {
	n := c.Nodes[i]
	n.mu.Lock()
	if n.state == NodeStopped {
		n.mu.Unlock()
		return nil
	}
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	_ = cmd.Process.Kill()
	<-exited
	return nil
}

// PowerCut cuts the power of node i's machine, simulated: whatever its disk had not been
// told to sync is lost or torn (see internal/vfs/crashfs), and the process dies at once.
// The data dir is then what the disk kept; Start boots the node again. Cutting a stopped
// node is a no-op. The cluster must have been started with ClusterConfig.PowerCut.
func (c *Cluster) PowerCut(i int) error {
	if !c.cfg.PowerCut {
		return errors.New("jepsen: PowerCut on a cluster started without ClusterConfig.PowerCut")
	}
	n := c.Nodes[i]
	n.mu.Lock()
	if n.state == NodeStopped {
		n.mu.Unlock()
		return nil
	}
	cmd, exited, paused := n.cmd, n.exited, n.state == NodePaused
	n.mu.Unlock()
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = cmd.Process.Signal(syscall.SIGUSR2)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("jepsen: %s did not cut its power within 30s; killed", n.ID)
	}
	image := filepath.Clean(n.DataDir) + ".image"
	if _, err := os.Stat(image); err != nil {
		return fmt.Errorf("jepsen: %s: no image after the power cut (see its log): %w", n.ID, err)
	}
	if err := os.RemoveAll(n.DataDir); err != nil {
		return err
	}
	if err := os.Rename(image, n.DataDir); err != nil {
		return err
	}
	n.mu.Lock()
	n.boot++
	n.mu.Unlock()
	return nil
}

// Exited returns a channel closed when node i's current process ends (at once if none
// runs): how a test sees a node die of a failpoint.
func (c *Cluster) Exited(i int) <-chan struct{} {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exited == nil {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return n.exited
}

// Pause SIGSTOPs node i; Resume SIGCONTs it.
func (c *Cluster) Pause(i int) error  { return c.signal(i, syscall.SIGSTOP, NodeRunning, NodePaused) }
func (c *Cluster) Resume(i int) error { return c.signal(i, syscall.SIGCONT, NodePaused, NodeRunning) }

func (c *Cluster) signal(i int, sig syscall.Signal, from, to NodeState) error {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != from {
		return nil
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("jepsen: %s %s: %w", sig, n.ID, err)
	}
	n.state = to
	return nil
}

// Link returns the proxy carrying node from's raft traffic to node to.
func (c *Cluster) Link(from, to int) *Proxy { return c.links[from][to] }

// ClientProxy returns the proxy SDK clients reach node i through.
func (c *Cluster) ClientProxy(i int) *Proxy { return c.Nodes[i].client }

// Cut drops the bytes node from sends to node to (one way): the requests on from's own
// connections to to and the responses on to's connections to from.
func (c *Cluster) Cut(from, to int, cut bool) {
	p := c.links[from][to]
	up, down := p.Links()
	up.Cut = cut
	p.SetLinks(up, down)
	q := c.links[to][from]
	up, down = q.Links()
	down.Cut = cut
	q.SetLinks(up, down)
}

// Slow sets the delay, jitter and loss of every raft link.
func (c *Cluster) Slow(l Link) {
	for i := range c.links {
		for _, p := range c.links[i] {
			if p != nil {
				up, down := p.Links()
				u, d := l, l
				u.Cut, d.Cut = up.Cut, down.Cut // a partition in force stays
				p.SetLinks(u, d)
			}
		}
	}
}

// Heal removes every link fault and resumes paused nodes; it restarts no process.
func (c *Cluster) Heal() error {
	for i := range c.links {
		for _, p := range c.links[i] {
			if p != nil {
				p.SetLinks(Link{}, Link{})
			}
		}
	}
	for _, n := range c.Nodes {
		n.client.SetLinks(Link{}, Link{})
		if err := c.Resume(n.Index); err != nil {
			return err
		}
	}
	return nil
}

// ResetConnections closes every open connection through every proxy, raft and client
// alike: what a flapping network does to TCP.
func (c *Cluster) ResetConnections() {
	for _, n := range c.Nodes {
		n.client.Reset()
	}
	for i := range c.links {
		for _, p := range c.links[i] {
			if p != nil {
				p.Reset()
			}
		}
	}
}

// Status fetches node i's own view of its groups from its HTTP endpoint.
func (c *Cluster) Status(ctx context.Context, i int) (*duro.NodeStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Nodes[i].HTTP+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jepsen: %s /status: %s", c.Nodes[i].ID, resp.Status)
	}
	var st duro.NodeStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("jepsen: %s /status: %w", c.Nodes[i].ID, err)
	}
	return &st, nil
}

// GroupOf returns the data group holding the object of class named name: the
// placement every node computes at bootstrap (raftgroup.Plan), which this cluster never
// changes.
func (c *Cluster) GroupOf(class, name string) uint64 {
	cfg := raftgroup.Config{Groups: c.cfg.Groups}
	for _, n := range c.Nodes {
		cfg.Peers = append(cfg.Peers, raftgroup.Peer{ID: n.ID, Addr: n.Addr})
	}
	p := raftgroup.Plan(cfg)
	return p.Slots[objid.FromName(class, name).Slot(len(p.Slots))]
}

// ErrNoLeader is returned by Leader when no running node claims to serve the group.
var ErrNoLeader = errors.New("jepsen: no serving leader")

// Leader returns the index of the node serving group gid in the highest term any running
// node reports.
func (c *Cluster) Leader(ctx context.Context, gid uint64) (int, error) {
	best, bestTerm := -1, uint64(0)
	for _, n := range c.Nodes {
		if n.State() != NodeRunning {
			continue
		}
		st, err := c.Status(ctx, n.Index)
		if err != nil {
			continue
		}
		for _, g := range st.Groups {
			if g.ID == gid && g.Role == "leader" && g.Serving && g.Term >= bestTerm {
				best, bestTerm = n.Index, g.Term
			}
		}
	}
	if best < 0 {
		return -1, fmt.Errorf("%w for group %d", ErrNoLeader, gid)
	}
	return best, nil
}

// WaitReady polls until every running node reports ready (each of its groups has a
// leader) or ctx ends.
func (c *Cluster) WaitReady(ctx context.Context) error {
	for {
		ready := true
		var why string
		for _, n := range c.Nodes {
			if n.State() != NodeRunning {
				continue
			}
			st, err := c.Status(ctx, n.Index)
			if err != nil || !st.Ready {
				ready = false
				if err != nil {
					why = fmt.Sprintf("%s: %v", n.ID, err)
				} else {
					why = fmt.Sprintf("%s: %s", n.ID, st.NotReady)
				}
				break
			}
		}
		if ready {
			return nil
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("jepsen: cluster not ready (%s): %w", why, ctx.Err())
		case <-t.C:
		}
	}
}

// Close kills every node and stops every proxy. Data dirs and logs stay.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		_ = c.Kill(n.Index)
	}
	for _, n := range c.Nodes {
		if n.client != nil {
			_ = n.client.Close()
		}
	}
	for i := range c.links {
		for _, p := range c.links[i] {
			if p != nil {
				_ = p.Close()
			}
		}
	}
}
