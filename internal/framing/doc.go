// Package framing is what every connection to a duro node carries before and around its
// protocol's messages: the header that opens it (magic, version, protocol, and for raft a
// group) and the length-prefixed frames of the protocols that use them (the SDK's, and the
// node-to-node heartbeats and appends). Dial opens such a connection.
//
// It is a leaf: it imports nothing of duro's and no consensus library, so the client SDK
// can speak to a node without linking the server (client's TestClientDoesNotLinkRaft keeps
// it so). transport.Mux reads the header on the node's side.
//
// Invariants:
//   - Every (protocol, group) has exactly one header: group IDs are bounded (MaxGroupID)
//     and must be minimal uvarints, so a reader gives up after at most MaxHeaderLen bytes.
//   - A frame's declared length is checked against MaxFrameSize before anything is
//     allocated; a reader that gets ErrFrameTooLarge cannot resynchronise and should close
//     the stream.
//   - Malformed input is an error, never a panic (both readers are fuzzed).
package framing
