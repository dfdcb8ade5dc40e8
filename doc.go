// Package duro is the embeddable duro server: one node of a Raft-replicated store of
// durable objects. `duro server`, `duro dev` and a program of its own that registers
// classes all run a node through Start.
//
// A Server ties together the node's one listener (transport), its Raft groups
// (raftgroup), the object runtime (objects) and the SDK protocol (internal/wire) that the
// Go client (package client) speaks.
//
// SDK protocol serving, per connection: one reader goroutine decodes frames and hands each
// request to a worker goroutine, an idle one if there is one, at most MaxInflightPerConn
// requests at once (more are answered CodeOverloaded at once); a request whose object is
// idle runs the object's executor on its worker (objects.Runtime.Call); one writer
// goroutine serialises the responses, which may go out in any order. Every error a call can end in is mapped to a wire code, a NotLeader one
// carrying the leader this node knows of.
//
// Invariants:
//   - Nothing a client sends can crash the node or affect another connection: a frame
//     that does not decode as a request closes its own connection, nothing else.
//   - A response is written only after the call's outcome is final on this node (the
//     runtime's output gate); a call whose outcome is unknown says so
//     (CodeUnknownOutcome), so the client retries it under the same (client, seq).
package duro
