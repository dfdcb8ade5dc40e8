// Package transport is a duro node's single TCP listener: it carries the Raft
// traffic of every group the node hosts, the node-to-node link and the client
// SDK protocol on one port.
//
// Every connection starts with a header (internal/framing) naming the protocol
// and, for Raft, the group. A Mux reads that header in a goroutine of its own,
// so a slow or hostile peer never stalls the accept loop, and hands the
// connection, header consumed, to the StreamLayer of that group or to the
// listener of its protocol. Past the header the bytes belong to the receiver:
// hashicorp/raft's NetworkTransport for Raft, length-prefixed frames
// (framing.WriteFrame/ReadFrame) for the SDK and the link.
//
// Invariants:
//   - A connection that does not present a valid header for a registered
//     receiver within Options.HeaderTimeout is closed, and nothing else is
//     affected: no other connection, group or the accept loop.
//   - Nothing read from the network causes a panic; malformed input is an
//     error that is logged at debug level and ends that connection only.
//   - Every connection a Mux has handed out (accepted or dialed) is owned by
//     exactly one StreamLayer or the client listener, and closing that owner
//     closes it. Mux.Close therefore leaves no connection or goroutine of this
//     package behind.
//   - Reads on a connection that its owner closed report io.EOF, so readers
//     such as raft's NetworkTransport end quietly instead of logging errors.
//
// Shutdown order: shut down each raft.Raft (which closes its transport and so
// its StreamLayer) before calling Mux.Close. Closing the Mux first is safe but
// makes each NetworkTransport log accept errors until it is closed.
package transport
