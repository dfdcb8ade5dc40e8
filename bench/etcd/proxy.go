package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/textproto"
	"sync"
	"time"
)

// A member's peers reach it through one advertised peer URL, so a proxy per directed link
// (what duro's harness uses) is not possible: every member dials the same address. The
// proxy in front of a member's peer port instead learns which member each connection
// comes from, from the X-Server-From header etcd's raft transport sets on every request
// (streams and pipelined messages alike; each member has connections of its own), and
// drops the bytes of the connections the partition cuts. Connections that carry no such
// header (version probes, the prober) count as from no member.

// partition is which member, if any, is cut off from its peers. Members are named by
// their IDs as etcd writes them (hex).
type partition struct {
	mu       sync.Mutex
	isolated string
}

func (p *partition) isolate(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isolated = id
}

// cut reports whether bytes between members from and to are dropped.
func (p *partition) cut(from, to string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.isolated != "" && (from == p.isolated || to == p.isolated)
}

// maxHead bounds the request head the proxy reads to find the sender.
const maxHead = 64 << 10

// proxy forwards TCP connections from its listener to a target. With a partition it reads
// the head of each connection's first request for the sender and applies the partition
// to the bytes both ways; without one it only forwards (for client traffic, so both
// sides of the comparison pay for one proxy on every connection).
type proxy struct {
	ln     net.Listener
	target string
	part   *partition // nil: never cut

	mu     sync.Mutex
	member string // the target's member ID, set once the cluster has told it
	conns  map[*proxyConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

type proxyConn struct {
	from           string // sending member, "" if unknown
	client, server net.Conn
	holed          bool // bytes were dropped: closed when the cut heals
}

func newProxy(target string, part *partition) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, part: part, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) setMember(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.member = id
}

// blocked reports whether c's bytes are dropped now, and marks c holed if so.
func (p *proxy) blocked(c *proxyConn) bool {
	if p.part == nil {
		return false
	}
	p.mu.Lock()
	to := p.member
	p.mu.Unlock()
	if !p.part.cut(c.from, to) {
		return false
	}
	p.mu.Lock()
	c.holed = true
	p.mu.Unlock()
	return true
}

// healed closes every connection that lost bytes, as TCP would have reset it: a healed
// link never delivers a stream with a hole in it.
func (p *proxy) healed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if c.holed {
			c.closeLocked(p)
		}
	}
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.closeLocked(p)
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

func (c *proxyConn) closeLocked(p *proxy) {
	_ = c.client.Close()
	_ = c.server.Close()
	delete(p.conns, c)
}

func (p *proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.wg.Add(1)
		go p.serve(cc)
	}
}

// serve learns cc's sender (with a partition), dials the target and pumps both ways.
func (p *proxy) serve(cc net.Conn) {
	defer p.wg.Done()
	r := bufio.NewReaderSize(cc, maxHead)
	from := ""
	if p.part != nil {
		_ = cc.SetReadDeadline(time.Now().Add(5 * time.Second))
		from = sender(r)
		_ = cc.SetReadDeadline(time.Time{})
	}
	sc, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		_ = cc.Close()
		return
	}
	c := &proxyConn{from: from, client: cc, server: sc}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = cc.Close()
		_ = sc.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.pump(c, r, sc); close(done) }()
	p.pump(c, sc, cc)
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// sender peeks at the head of the first request on r and returns its X-Server-From, or
// "" if there is none (or no HTTP/1 head within maxHead bytes). Nothing is consumed, and
// nothing is waited for beyond the end of the head: the sender may be waiting for an
// answer.
func sender(r *bufio.Reader) string {
	var err error
	for {
		b, _ := r.Peek(r.Buffered()) // what has arrived
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(b[:i+4])))
			if _, err := tp.ReadLine(); err != nil { // the request line
				return ""
			}
			h, err := tp.ReadMIMEHeader()
			if err != nil {
				return ""
			}
			return h.Get("X-Server-From")
		}
		// The end, the deadline, or maxHead without a head end the search; until then,
		// wait for at least one byte more.
		if err != nil {
			return ""
		}
		_, err = r.Peek(r.Buffered() + 1)
	}
}

// pump copies src to dst, dropping what the partition cuts. One side ending ends both.
func (p *proxy) pump(c *proxyConn, src io.Reader, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.blocked(c) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = c.client.Close()
	_ = c.server.Close()
}
