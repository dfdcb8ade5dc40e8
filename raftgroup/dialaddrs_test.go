package raftgroup

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duro-db/duro/internal/testutil"
	"github.com/duro-db/duro/transport"
)

// linkProxy forwards one directed link and counts what crosses it. cut makes it drop every
// connection, open or new, until heal.
type linkProxy struct {
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup

	mu     sync.Mutex
	isCut  bool
	active map[net.Conn]struct{}
}

func (p *linkProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isCut = true
	for c := range p.active {
		c.Close()
	}
}

func (p *linkProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isCut = false
}

// track registers c, or closes it and reports false while the link is cut.
func (p *linkProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isCut {
		c.Close()
		return false
	}
	p.active[c] = struct{}{}
	return true
}

func newLinkProxy(t *testing.T, target string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{ln: ln, active: map[net.Conn]struct{}{}}
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
			if !p.track(in) {
				continue
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			if !p.track(out) {
				in.Close()
				continue
			}
			p.wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer p.wg.Done()
				io.Copy(dst, src)
				dst.Close()
				src.Close()
				p.mu.Lock()
				delete(p.active, dst)
				delete(p.active, src)
				p.mu.Unlock()
			}
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
	return p
}

// newProxiedCluster starts n nodes whose every directed link i->j goes through
// proxies[[2]int{i, j}] (Config.DialAddrs).
func newProxiedCluster(t *testing.T, n, groups int, opts ...clusterOpt) (*testCluster, map[[2]int]*linkProxy, []Peer) {
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
		cfg := Config{ID: peers[i].ID, DataDir: t.TempDir(), Peers: peers, Groups: groups,
			Timing: fastTiming(), NoSync: true, DialAddrs: dial, Logger: testLogger()}
		for _, o := range opts {
			o(&cfg)
		}
		node, err := Start(cfg, muxes[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Close() })
		nodes = append(nodes, node)
	}
	return &testCluster{t: t, nodes: nodes, muxes: muxes}, proxies, peers
}

// With DialAddrs, every node reaches each peer through the address it was given for that
// peer, while group configurations keep the canonical addresses.
func TestDialAddrsRouteRaftTraffic(t *testing.T) {
	c, proxies, peers := newProxiedCluster(t, 3, 3)
	c.waitAllLeaders()
	c.commit(1, put(randomID(), "k", "v"))
	// Once leadership is balanced every node leads a group, so every directed link carries
	// appends.
	testutil.WaitFor(t, 30*time.Second, "a connection on every link", func() bool {
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
