package link

import (
	"encoding/binary"

	"github.com/hashicorp/raft"

	"github.com/duro-db/duro/internal/framing"
)

// Transport is one group's raft.Transport: raft's NetworkTransport, except that its
// AppendEntries go over the node's link: heartbeats through the coalesced rounds, other
// appends on the shared connection to the peer. It keeps NetworkTransport's other methods
// (RequestPreVote among them, which raft looks for), and its Close.
type Transport struct {
	*raft.NetworkTransport
	l    *Link
	gid  uint64
	stop <-chan struct{} // the group's shutdown
	// rpcs is what raft consumes: NetworkTransport's RPCs, forwarded, and the link's.
	rpcs chan raft.RPC
}

// Transport returns group gid's raft transport over nt and the link. stop is closed when
// the group shuts down; until Forget(gid), the link hands the group's incoming appends to
// its raft.
func (l *Link) Transport(nt *raft.NetworkTransport, gid uint64, stop <-chan struct{}) *Transport {
	t := &Transport{NetworkTransport: nt, l: l, gid: gid, stop: stop, rpcs: make(chan raft.RPC)}
	go t.forward()
	l.apps.setConsumer(gid, t.rpcs, stop)
	return t
}

// Consumer returns the channel raft takes every incoming RPC from.
func (t *Transport) Consumer() <-chan raft.RPC { return t.rpcs }

// forward passes NetworkTransport's RPCs (votes, snapshots, and appends from a peer that
// does not use the shared connections) on to raft until the group shuts down.
func (t *Transport) forward() {
	in := t.NetworkTransport.Consumer()
	for {
		select {
		case rpc := <-in:
			select {
			case t.rpcs <- rpc:
			case <-t.stop:
				return
			}
		case <-t.stop:
			return
		}
	}
}

// AppendEntries sends entries on the node's shared connection to the peer (or, when
// they would not fit in one frame, on the group's own), and answers heartbeats from the
// node's rounds to the peer.
func (t *Transport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if !IsHeartbeat(args) {
		if fitsOneFrame(args) {
			return t.l.apps.appendEntries(string(id), t.gid, args, resp, t.stop)
		}
		return t.NetworkTransport.AppendEntries(id, target, args, resp)
	}
	a, err := t.l.beats.heartbeat(string(id), t.gid, args.Term, t.stop)
	if err != nil {
		return err
	}
	*resp = raft.AppendEntriesResponse{Term: a.term, Success: a.ok}
	return nil
}

// fitsOneFrame reports whether args surely encodes within framing.MaxFrameSize.
func fitsOneFrame(args *raft.AppendEntriesRequest) bool {
	const perEntry = 4*binary.MaxVarintLen64 + 2 // index, term, lengths, type, flag, time
	// The address goes twice: in the header and in the leader field.
	size := 1024 + len(args.RPCHeader.ID) + 2*len(args.RPCHeader.Addr)
	for _, e := range args.Entries {
		size += perEntry + len(e.Data) + len(e.Extensions)
	}
	return size <= framing.MaxFrameSize
}

// SetHeartbeatHandler registers raft's heartbeat handler with the node's rounds as well as
// with NetworkTransport (where a peer without coalescing would still send heartbeats).
func (t *Transport) SetHeartbeatHandler(cb func(raft.RPC)) {
	t.l.beats.setHandler(t.gid, cb)
	t.NetworkTransport.SetHeartbeatHandler(cb)
}

// IsHeartbeat is NetworkTransport's own test of a heartbeat: an AppendEntries with a term
// and a leader address, and no entries, no previous entry and no commit index. Raft names
// the leader in RPCHeader.Addr (its deprecated Leader field repeats it).
func IsHeartbeat(a *raft.AppendEntriesRequest) bool {
	return a.Term != 0 && len(a.RPCHeader.Addr) != 0 &&
		a.PrevLogEntry == 0 && a.PrevLogTerm == 0 && len(a.Entries) == 0 && a.LeaderCommitIndex == 0
}
