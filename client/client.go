package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/duro-db/duro/internal/objid"
	"github.com/duro-db/duro/internal/wire"
)

// ID identifies a durable object: 32 bytes, printed as 64 hex digits. Get one from a
// Namespace (IDFromName, NewUniqueID, IDFromString).
type ID = objid.ID

// minRefreshInterval spaces out topology refreshes, which calls trigger whenever a node
// is unreachable or knows no leader for a group.
const minRefreshInterval = 50 * time.Millisecond

// Client calls durable objects on one duro cluster. It is safe for concurrent use.
type Client struct {
	opts options
	id   [16]byte
	seqs seqTracker

	ctx    context.Context // cancelled by Close; bounds background work
	cancel context.CancelFunc
	bg     sync.WaitGroup

	mu          sync.Mutex
	closed      bool
	clusterID   string
	slots       []uint64          // slot → group
	members     map[string]string // node ID → address
	memberList  []string          // addresses, sorted, for picking a node at random
	leaders     map[uint64]string // group → node ID
	conns       map[string]*nodeConn
	dials       map[string]*dialCall
	lastRefresh time.Time
	refreshing  bool
}

// dialCall lets concurrent calls share one connection attempt to a node.
type dialCall struct {
	done chan struct{}
	conn *nodeConn
	err  error
}

// Dial connects to a duro cluster through any of endpoints (host:port of its nodes),
// trying each once, and learns the cluster's topology from the first that answers. The
// Client then talks to every node of the cluster as needed, not only to endpoints.
func Dial(ctx context.Context, endpoints []string, opts ...Option) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("duro: dial: no endpoints")
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{
		opts:    o,
		members: map[string]string{},
		leaders: map[uint64]string{},
		conns:   map[string]*nodeConn{},
		dials:   map[string]*dialCall{},
	}
	if o.hasID {
		c.id = o.clientID
		// Number calls from the clock, so a process that reuses its ID after a restart
		// does not reuse sequence numbers the cluster has results (or an ack floor) for.
		c.seqs.next = uint64(time.Now().UnixNano())
	} else {
		_, _ = rand.Read(c.id[:]) // crypto/rand.Read does not fail
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())

	var errs []error
	for _, i := range mrand.Perm(len(endpoints)) {
		addr := endpoints[i]
		if err := c.fetchTopology(ctx, addr); err != nil {
			errs = append(errs, err)
			continue
		}
		return c, nil
	}
	c.Close()
	return nil, fmt.Errorf("%w: dial: no endpoint answered: %w", ErrUnavailable, errors.Join(errs...))
}

// Close closes every connection. Calls in progress fail; later calls return ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := c.conns
	c.conns = map[string]*nodeConn{}
	c.mu.Unlock()
	c.cancel()
	for _, nc := range conns {
		nc.close()
	}
	c.bg.Wait()
	// A dial that was under way when Close began registers no connection (conn checks
	// closed), but one that finished in between could have: close stragglers.
	c.mu.Lock()
	conns = c.conns
	c.conns = map[string]*nodeConn{}
	c.mu.Unlock()
	for _, nc := range conns {
		nc.close()
	}
	return nil
}

// ClientID returns the ID under which the cluster deduplicates this Client's calls.
func (c *Client) ClientID() [16]byte { return c.id }

// conn returns a live connection to addr, dialling one if needed. Concurrent callers
// share one attempt.
func (c *Client) conn(ctx context.Context, addr string, deadline time.Time) (*nodeConn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if nc := c.conns[addr]; nc != nil {
		if nc.alive() {
			c.mu.Unlock()
			return nc, nil
		}
		delete(c.conns, addr)
		// Reap its goroutines off the caller's path.
		c.bg.Add(1)
		go func() { defer c.bg.Done(); nc.close() }()
	}
	d := c.dials[addr]
	if d == nil {
		d = &dialCall{done: make(chan struct{})}
		c.dials[addr] = d
		c.bg.Add(1)
		go func() {
			defer c.bg.Done()
			// The attempt belongs to every caller waiting on it, not to one caller's
			// context: it is bounded by the dial timeout and the Client's life.
			d.conn, d.err = dialNode(c.ctx, addr, c.opts.dialTimeout, c.opts.log)
			c.mu.Lock()
			delete(c.dials, addr)
			if d.err == nil {
				if c.closed {
					d.conn.close()
					d.conn, d.err = nil, ErrClosed
				} else {
					c.conns[addr] = d.conn
				}
			}
			c.mu.Unlock()
			close(d.done)
		}()
	}
	c.mu.Unlock()
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-d.done:
		if d.err != nil {
			return nil, &attemptError{addr: addr, err: d.err}
		}
		return d.conn, nil
	case <-ctx.Done():
		return nil, &attemptError{addr: addr, err: ctx.Err()}
	case <-expired:
		return nil, &attemptError{addr: addr, err: context.DeadlineExceeded}
	}
}

// fetchTopology asks the node at addr for the topology and adopts it.
func (c *Client) fetchTopology(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.dialTimeout)
	defer cancel()
	nc, err := c.conn(ctx, addr, time.Time{})
	if err != nil {
		return err
	}
	resp, err := nc.roundTrip(ctx, &wire.Request{Op: wire.OpTopology}, nil)
	if err != nil {
		return err
	}
	if resp.Err != nil {
		return fmt.Errorf("node %s: %w", addr, inner(remoteError(resp.Err)))
	}
	if resp.Topology == nil {
		return fmt.Errorf("node %s: %w: topology response without a topology", addr, inner(ErrInternal))
	}
	return c.adopt(resp.Topology, addr)
}

// adopt merges a node's view of the topology into the Client's.
func (c *Client) adopt(t *wire.Topology, from string) error {
	if len(t.Slots) == 0 {
		return fmt.Errorf("node %s: %w: topology has no slots", from, inner(ErrInternal))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.clusterID != "" && t.ClusterID != c.clusterID {
		return fmt.Errorf("node %s belongs to cluster %s, not %s", from, t.ClusterID, c.clusterID)
	}
	c.clusterID = t.ClusterID
	c.slots = t.Slots
	if len(t.Members) > 0 {
		c.members = make(map[string]string, len(t.Members))
		for _, m := range t.Members {
			c.members[m.ID] = m.Addr
		}
		c.rebuildMemberList()
	}
	for g, id := range t.Leaders {
		c.leaders[g] = id
	}
	c.lastRefresh = time.Now()
	return nil
}

func (c *Client) rebuildMemberList() {
	c.memberList = c.memberList[:0]
	for _, addr := range c.members {
		c.memberList = append(c.memberList, addr)
	}
	sort.Strings(c.memberList)
}

// route returns the object's group and the address to send its call to: the group's
// leader when known, else any node but avoid (which just failed or knew no leader).
func (c *Client) route(id ID, avoid string) (group uint64, addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	group = c.slots[id.Slot(len(c.slots))]
	if leader, ok := c.leaders[group]; ok {
		if addr = c.members[leader]; addr != "" && addr != avoid {
			return group, addr
		}
	}
	n := len(c.memberList)
	if n == 0 {
		return group, ""
	}
	start := mrand.IntN(n)
	for i := range n {
		if a := c.memberList[(start+i)%n]; a != avoid || n == 1 {
			return group, a
		}
	}
	return group, ""
}

// learnLeader records a node's hint that id (at addr) leads group.
func (c *Client) learnLeader(group uint64, id, addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leaders[group] = id
	if addr != "" && c.members[id] != addr {
		c.members[id] = addr
		c.rebuildMemberList()
	}
}

// forgetLeader drops the belief that the node at addr leads group.
func (c *Client) forgetLeader(group uint64, addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.leaders[group]; ok && c.members[id] == addr {
		delete(c.leaders, group)
	}
}

// nodeFailed drops every leadership the Client attributed to the node at addr, since it
// cannot be reached, so calls go to other nodes and learn the new leaders from them.
func (c *Client) nodeFailed(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for g, id := range c.leaders {
		if c.members[id] == addr {
			delete(c.leaders, g)
		}
	}
}

// refresh fetches the topology in the background from some node other than avoid, at
// most once per minRefreshInterval.
func (c *Client) refresh(avoid string) {
	c.mu.Lock()
	if c.closed || c.refreshing || time.Since(c.lastRefresh) < minRefreshInterval {
		c.mu.Unlock()
		return
	}
	c.refreshing = true
	addrs := append([]string(nil), c.memberList...)
	c.bg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.bg.Done()
		mrand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
		for _, a := range addrs {
			if a == avoid && len(addrs) > 1 {
				continue
			}
			err := c.fetchTopology(c.ctx, a)
			if err == nil {
				break
			}
			c.opts.log.Debug("topology refresh failed", "node", a, "err", err)
			if c.ctx.Err() != nil {
				break
			}
		}
		c.mu.Lock()
		c.refreshing = false
		c.lastRefresh = time.Now()
		c.mu.Unlock()
	}()
}
