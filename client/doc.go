// Package client is the Go SDK of duro: it calls methods of durable objects on a duro
// cluster.
//
//	c, err := client.Dial(ctx, []string{"10.0.0.1:7000", "10.0.0.2:7000"})
//	counters := c.Namespace("Counter")
//	n, err := client.Call[int64](ctx, counters.GetByName("visits"), "Add", 1)
//
// The client learns the cluster's topology (slot → group, group → leader, node addresses)
// from any node, hashes each object ID to its slot, and sends the call to the leader of
// the slot's group over one multiplexed connection per node.
//
// Retries and exactly-once: a call gets a (client ID, sequence number) pair once, and
// keeps it on every retry. The node stores the result of each writing call under that
// pair in replicated state, so a retry after a lost reply returns the first result instead
// of running the method again. The client therefore retries on its own, with exponential
// backoff and jitter, whenever that is safe: a node that is not the leader (following its
// hint), a lost connection, a call whose outcome the node could not tell, an object
// instance reset, a node that is unavailable. It stops at a definite answer or at the
// context's deadline. A call that may have taken effect but whose outcome the client never
// learnt before the deadline fails with ErrUnknownOutcome.
//
// Arguments and results are encoded as msgpack using `json` struct tags, as the server
// decodes them, so one set of tags serves msgpack and JSON.
//
// A Client is safe for concurrent use; Namespaces and Stubs are cheap values.
package client
