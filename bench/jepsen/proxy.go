package jepsen

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Link is the fault state of one direction of a proxied connection: the bytes flowing
// from one node to another. The zero Link passes everything at once.
type Link struct {
	// Cut drops every byte. A connection that lost bytes is closed when the link heals,
	// as TCP would reset it, so a healed link never delivers a stream with a hole in it.
	Cut bool
	// Delay and Jitter hold each chunk back by Delay plus up to Jitter, keeping order.
	Delay, Jitter time.Duration
	// Loss is the probability that a chunk is "lost" and retransmitted: it is held back
	// by another RetransmitDelay (TCP over loopback cannot lose bytes otherwise).
	Loss float64
}

// RetransmitDelay is what a lost chunk costs: roughly TCP's minimum retransmission
// timeout.
const RetransmitDelay = 200 * time.Millisecond

// Proxy forwards TCP connections from its listener to a target. Each accepted connection
// is two pipes: Up (client → target) and Down (target → client), whose faults are set
// independently, so a cut can be one-way. All methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	up     Link
	down   Link
	conns  map[*proxyConn]struct{}
	closed bool
	rng    *rand.Rand
	wg     sync.WaitGroup
}

type proxyConn struct {
	client, server net.Conn
	holed          bool // bytes were dropped: close at heal
}

// NewProxy listens on addr (host:port; port 0 picks one) and forwards to target.
func NewProxy(addr, target string, seed uint64) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[*proxyConn]struct{}{}, rng: rand.New(rand.NewPCG(seed, 0x70727879))}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address clients of the proxy dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// SetLinks sets the faults of both directions. Healing a cut closes every connection
// that lost bytes while it lasted.
func (p *Proxy) SetLinks(up, down Link) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up, p.down = up, down
	if up.Cut || down.Cut {
		for c := range p.conns {
			c.holed = true
		}
		return
	}
	for c := range p.conns {
		if c.holed {
			c.closeLocked(p)
		}
	}
}

// Links returns the faults of both directions.
func (p *Proxy) Links() (up, down Link) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.up, p.down
}

// Reset closes every open connection (both ends see a reset); new ones are accepted.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.closeLocked(p)
	}
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.closeLocked(p)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (c *proxyConn) closeLocked(p *Proxy) {
	_ = c.client.Close()
	_ = c.server.Close()
	delete(p.conns, c)
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		// Dial outside the lock: a stopped target must not stall the proxy. A cut link still
		// connects (the handshake is not modelled) and then delivers nothing, which the
		// dialer sees as a hang, as behind a dropping firewall.
		sc, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			_ = cc.Close()
			continue
		}
		c := &proxyConn{client: cc, server: sc}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = cc.Close()
			_ = sc.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pump(c, cc, sc, true)
		go p.pump(c, sc, cc, false)
	}
}

// chunk is bytes read from one side, due at the other side at due.
type chunk struct {
	b   []byte
	due time.Time
}

// pump copies src to dst applying the link's faults. Reading and writing are split so a
// delay holds back bytes without stopping the reader (a delayed link is slow, not
// narrow); order is kept by never scheduling a chunk before the one ahead of it.
func (p *Proxy) pump(c *proxyConn, src, dst net.Conn, up bool) {
	defer p.wg.Done()
	q := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ch := range q {
			if d := time.Until(ch.due); d > 0 {
				t := time.NewTimer(d)
				<-t.C
			}
			if _, err := dst.Write(ch.b); err != nil {
				_ = src.Close()
				for range q { // drain so the reader never blocks on a dead writer
				}
				return
			}
		}
	}()
	var last time.Time
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			l := p.down
			if up {
				l = p.up
			}
			if l.Cut {
				c.holed = true
			}
			var extra time.Duration
			if !l.Cut {
				extra = l.Delay
				if l.Jitter > 0 {
					extra += time.Duration(p.rng.Int64N(int64(l.Jitter)))
				}
				if l.Loss > 0 && p.rng.Float64() < l.Loss {
					extra += RetransmitDelay
				}
			}
			p.mu.Unlock()
			if !l.Cut {
				due := time.Now().Add(extra)
				if due.Before(last) {
					due = last
				}
				last = due
				q <- chunk{b: append([]byte(nil), buf[:n]...), due: due}
			}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-done
	// Half-close is not worth modelling: one side ending ends the connection.
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

var _ io.Closer = (*Proxy)(nil)
