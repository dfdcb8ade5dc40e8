package client

import (
	"bufio"
	"net"
	"sync"
	"testing"

	"github.com/duro-db/duro/internal/framing"
	"github.com/duro-db/duro/internal/wire"
	"github.com/duro-db/duro/transport"
)

// fakeNode speaks the SDK protocol with scripted answers, so the client's routing and
// retries can be tested without a cluster.
type fakeNode struct {
	t    testing.TB
	id   string
	mux  *transport.Mux
	addr string

	// concurrent answers each request in a goroutine of its own, as a real node does;
	// otherwise requests are answered one at a time, in order.
	concurrent bool

	mu     sync.Mutex
	answer func(req *wire.Request) reply // nil: answer topology, fail calls
	calls  []wire.Call                   // every call received, in order
	conns  []net.Conn
}

// reply is what a fakeNode does with one request.
type reply struct {
	resp    *wire.Response
	garbage bool // send a frame that is not a response
	hangup  bool // close the connection without answering
	silence bool // never answer
}

func newFakeNode(t testing.TB, id string) *fakeNode {
	t.Helper()
	m, err := transport.Listen("127.0.0.1:0", transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeNode{t: t, id: id, mux: m, addr: m.Addr().String()}
	ln := m.ClientListener()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.mu.Lock()
			n.conns = append(n.conns, c)
			n.mu.Unlock()
			go n.serve(c)
		}
	}()
	t.Cleanup(func() { m.Close() })
	return n
}

func (n *fakeNode) setAnswer(f func(req *wire.Request) reply) {
	n.mu.Lock()
	n.answer = f
	n.mu.Unlock()
}

func (n *fakeNode) received() []wire.Call {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]wire.Call(nil), n.calls...)
}

func (n *fakeNode) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	var wmu sync.Mutex
	for {
		frame, err := framing.ReadFrame(br, nil)
		if err != nil {
			return
		}
		req, err := wire.DecodeRequest(frame)
		if err != nil {
			n.t.Errorf("fake node %s: bad request: %v", n.id, err)
			return
		}
		n.mu.Lock()
		if req.Op == wire.OpCall {
			n.calls = append(n.calls, req.Call)
		}
		answer := n.answer
		n.mu.Unlock()
		if n.concurrent {
			go n.respond(c, &wmu, req, answer)
		} else if !n.respond(c, &wmu, req, answer) {
			return
		}
	}
}

// respond answers req as scripted; false means the connection is to end.
func (n *fakeNode) respond(c net.Conn, wmu *sync.Mutex, req *wire.Request, answer func(*wire.Request) reply) bool {
	var r reply
	if answer != nil {
		r = answer(req)
	}
	switch {
	case r.hangup:
		c.Close()
		return false
	case r.silence:
		return true
	}
	payload := []byte("garbage")
	if !r.garbage {
		if r.resp == nil {
			r.resp = &wire.Response{Err: &wire.Error{Code: wire.CodeInternal, Message: "no script"}}
		}
		r.resp.StreamID = req.StreamID
		payload = wire.AppendResponse(nil, r.resp)
	}
	wmu.Lock()
	defer wmu.Unlock()
	return framing.WriteFrame(c, payload) == nil
}

// fakeCluster is a set of fake nodes that share one topology: every slot in group 1.
type fakeCluster struct {
	nodes   []*fakeNode
	leader  string // node ID reported as group 1's leader
	members []wire.Member
}

func newFakeCluster(t testing.TB, n int) *fakeCluster {
	t.Helper()
	fc := &fakeCluster{}
	for i := range n {
		node := newFakeNode(t, string(rune('a'+i)))
		fc.nodes = append(fc.nodes, node)
		fc.members = append(fc.members, wire.Member{ID: node.id, Addr: node.addr})
	}
	fc.leader = fc.nodes[0].id
	return fc
}

func (fc *fakeCluster) topology() *wire.Topology {
	return &wire.Topology{
		ClusterID: "fake",
		Slots:     []uint64{1, 1, 1, 1},
		Members:   fc.members,
		Leaders:   map[uint64]string{1: fc.leader},
	}
}

// script makes node answer topology requests from the cluster and calls with f.
func (fc *fakeCluster) script(node *fakeNode, f func(call *wire.Call) reply) {
	node.setAnswer(func(req *wire.Request) reply {
		if req.Op == wire.OpTopology {
			return reply{resp: &wire.Response{Topology: fc.topology()}}
		}
		return f(&req.Call)
	})
}

func ok(result []byte) reply { return reply{resp: &wire.Response{Result: result}} }

func fail(code wire.Code, msg string) reply {
	return reply{resp: &wire.Response{Err: &wire.Error{Code: code, Message: msg}}}
}
