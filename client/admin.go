package client

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/duro-db/duro/internal/wire"
)

// Member is one node of the cluster.
type Member struct {
	ID   string
	Addr string
}

// Members returns the cluster's nodes as last learned, ordered by ID.
func (c *Client) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Member, 0, len(c.members))
	for id, addr := range c.members {
		out = append(out, Member{ID: id, Addr: addr})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ClusterID returns the ID of the cluster the Client is connected to.
func (c *Client) ClusterID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clusterID
}

// NodeStatus asks the node at addr for its own view of its Raft groups and returns it as
// JSON (the shape of duro.NodeStatus). It is meant for operator tools such as
// `duro status`; it is not retried.
func (c *Client) NodeStatus(ctx context.Context, addr string) ([]byte, error) {
	nc, err := c.conn(ctx, addr, time.Time{})
	if err != nil {
		return nil, err
	}
	resp, err := nc.roundTrip(ctx, &wire.Request{Op: wire.OpStatus}, nil)
	if err != nil {
		return nil, err
	}
	if resp.Err != nil {
		return nil, fmt.Errorf("node %s: %w", addr, inner(remoteError(resp.Err)))
	}
	return resp.Result, nil
}
