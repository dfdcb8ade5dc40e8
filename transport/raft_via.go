package transport

import (
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// NewRaftTransportVia is NewRaftTransport as duro's nodes use it, with two differences:
//
//   - The address raft dials for each peer comes from addrs (raft's
//     ServerAddressProvider) instead of the group's configuration. A test harness uses it
//     to route every directed link between two nodes through a proxy of its own.
//   - No AppendEntries pipelining (MaxRPCsInFlight 1). hashicorp/raft v1.7.2 (as v1.7.3)
//     can hang Shutdown forever when a pipeline's response reader exits while its sender
//     waits for a slot (seen in this project's tests), and raft's maintainers measured
//     pipelining as no gain once entries are batched (hashicorp/raft#541).
func NewRaftTransportVia(layer *StreamLayer, maxPool int, timeout time.Duration, logger hclog.Logger, addrs raft.ServerAddressProvider) *raft.NetworkTransport {
	if logger == nil {
		logger = hclog.Default().Named("raft-net")
	}
	config := raftTransportConfig(maxPool, timeout, logger.With("group", layer.group))
	config.Stream = layer
	config.ServerAddressProvider = addrs
	config.MaxRPCsInFlight = 1
	return raft.NewNetworkTransportWithConfig(config)
}
