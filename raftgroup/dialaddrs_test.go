package raftgroup

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duro-db/duro/transport"
)

// linkProxy forwards one directed link and counts what crosses it.
type linkProxy struct {
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
}

func newLinkProxy(t *testing.T, target string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns.Add(1)
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer p.wg.Done()
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
	return p
}

// With DialAddrs, every node reaches each peer through the address it was given for that
// peer, while group configurations keep the canonical addresses.
func TestDialAddrsRouteRaftTraffic(t *testing.T) {
	const n = 3
	var muxes []*transport.Mux
	var peers []Peer
	for i := 0; i < n; i++ {
		m, err := transport.Listen("127.0.0.1:0", transport.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		muxes = append(muxes, m)
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i+1), Addr: m.Addr().String()})
	}
	proxies := map[[2]int]*linkProxy{}
	var nodes []*Node
	for i := 0; i < n; i++ {
		dial := map[string]string{}
		for j := 0; j < n; j++ {
			if i != j {
				p := newLinkProxy(t, peers[j].Addr)
				proxies[[2]int{i, j}] = p
				dial[peers[j].ID] = p.ln.Addr().String()
			}
		}
		node, err := Start(Config{ID: peers[i].ID, DataDir: t.TempDir(), Peers: peers, Groups: 3,
			Timing: fastTiming(), NoSync: true, DialAddrs: dial, Logger: testLogger()}, muxes[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Close() })
		nodes = append(nodes, node)
	}
	c := &testCluster{t: t, nodes: nodes, muxes: muxes}
	c.waitAllLeaders()
	c.propose(1, put(randomID(), "k", "v"))
	// Once leadership is balanced every node leads a group, so every directed link carries
	// appends.
	waitFor(t, 30*time.Second, "a connection on every link", func() bool {
		for _, p := range proxies {
			if p.conns.Load() == 0 {
				return false
			}
		}
		return true
	})
	if err := (Config{ID: "n1", DataDir: "d", Peers: peers, DialAddrs: map[string]string{"zz": "127.0.0.1:1"}}).Validate(); err == nil {
		t.Fatal("a dial address for a non-peer was accepted")
	}
}
