// Package wire is the duro SDK protocol: the request and response messages that a client
// and a node exchange inside frames (framing.WriteFrame / ReadFrame) on a connection
// opened with the framing.ProtoClient header.
//
// A connection is multiplexed: every Request carries a StreamID chosen by the client, the
// node answers each with exactly one Response carrying the same StreamID, and responses
// may arrive in any order. One frame holds exactly one message.
//
// Messages are msgpack arrays with positional fields. A decoder accepts arrays longer
// than it knows (trailing fields from a newer peer are skipped) and never shorter ones,
// so fields may only ever be appended. Error codes are likewise append-only and never
// renumbered; an unknown code decodes as itself and is the receiver's to interpret.
//
// Invariants:
//   - DecodeRequest and DecodeResponse never panic and never allocate more than a small
//     multiple of their input, whatever the bytes: every declared length is checked
//     against the bytes that remain before anything is allocated, and nesting in skipped
//     fields is bounded. Malformed input is an error wrapping ErrMalformed.
//   - Decoded messages own their memory: nothing aliases the input, so a reader may reuse
//     its frame buffer as soon as a decode returns.
//   - Decode(Encode(m)) == m for every message Encode accepts.
package wire
