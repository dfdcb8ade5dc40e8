package transport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/duro-db/duro/internal/framing"
)

// DefaultHeaderTimeout is Options.HeaderTimeout when left zero.
const DefaultHeaderTimeout = 5 * time.Second

// ErrNotAdvertisable is returned by Listen when Options.Advertise is empty and
// the listener's own address (such as 0.0.0.0:7000) is not one a peer can dial.
var ErrNotAdvertisable = errors.New("transport: address is not advertisable")

// Options configures a Mux.
type Options struct {
	// Logger receives the Mux's logs; nil discards them. Rejected
	// connections are logged at debug level, accept failures at warn.
	Logger *slog.Logger

	// HeaderTimeout bounds the time from accepting a connection to handing it
	// to its receiver: the peer must send a full header, and the receiver
	// must Accept, within it. Zero means DefaultHeaderTimeout.
	HeaderTimeout time.Duration

	// Advertise is the host:port peers dial to reach this Mux, reported by
	// StreamLayer.Addr and so by raft as this node's address. Empty means the
	// listener's address, which must then not be a wildcard.
	Advertise string
}

// Mux is a node's single TCP listener. It reads each connection's header and
// routes the connection to the StreamLayer of the named Raft group or to the
// client listener. All methods are safe for concurrent use.
type Mux struct {
	ln            net.Listener
	advertise     net.Addr
	log           *slog.Logger
	headerTimeout time.Duration

	// wg counts the accept loop and the handshake goroutines.
	wg   sync.WaitGroup
	done chan struct{} // closed by Close

	mu          sync.Mutex
	closed      bool
	layers      map[uint64]*StreamLayer
	protos      map[byte]*listener    // ProtoClient, ProtoBeat, ProtoAppend
	handshaking map[net.Conn]struct{} // accepted, header not yet routed
}

// Listen listens on the TCP address addr and starts accepting immediately.
// Connections for groups or protocols nobody registered yet are closed, so
// register receivers (RaftLayer, ClientListener) before peers need them.
func Listen(addr string, opts Options) (*Mux, error) {
	if opts.HeaderTimeout < 0 {
		return nil, fmt.Errorf("transport: negative HeaderTimeout %v", opts.HeaderTimeout)
	}
	if opts.HeaderTimeout == 0 {
		opts.HeaderTimeout = DefaultHeaderTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var advertise net.Addr
	if opts.Advertise != "" {
		a, err := parseAdvertise(opts.Advertise)
		if err != nil {
			return nil, err
		}
		advertise = a
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err) // "listen tcp ADDR: why"
	}
	if advertise == nil {
		advertise = ln.Addr()
		if tcp, ok := advertise.(*net.TCPAddr); ok && (tcp.IP == nil || tcp.IP.IsUnspecified()) {
			ln.Close()
			return nil, fmt.Errorf("%w: listening on %v; set Options.Advertise", ErrNotAdvertisable, tcp)
		}
	}
	m := &Mux{
		ln:            ln,
		advertise:     advertise,
		log:           opts.Logger,
		headerTimeout: opts.HeaderTimeout,
		layers:        make(map[uint64]*StreamLayer),
		protos:        make(map[byte]*listener),
		handshaking:   make(map[net.Conn]struct{}),
		done:          make(chan struct{}),
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

// advertiseAddr is a host:port that need not resolve locally (a DNS name
// of this node as its peers see it).
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

func parseAdvertise(s string) (net.Addr, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrNotAdvertisable, s, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return nil, fmt.Errorf("%w: %q: bad port", ErrNotAdvertisable, s)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return nil, fmt.Errorf("%w: %q: no dialable host", ErrNotAdvertisable, s)
	}
	return advertiseAddr(s), nil
}

// Addr is the address the Mux listens on.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// Advertise is the address peers dial to reach this Mux (Options.Advertise,
// or the listener address).
func (m *Mux) Advertise() net.Addr { return m.advertise }

// Close stops the listener, closes every StreamLayer and the client listener
// (and with them every connection they own), closes connections whose header
// is still being read, and waits for the Mux's goroutines to exit. Later calls
// return nil.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.done)
	layers := make([]*StreamLayer, 0, len(m.layers))
	for _, l := range m.layers {
		layers = append(layers, l)
	}
	protos := make([]*listener, 0, len(m.protos))
	for _, l := range m.protos {
		protos = append(protos, l)
	}
	handshaking := m.handshaking
	m.handshaking = nil
	m.mu.Unlock()

	err := m.ln.Close()
	// The receivers unregister themselves through onClose, which takes m.mu:
	// it must not be held here.
	for _, l := range layers {
		l.Close()
	}
	for _, l := range protos {
		l.Close()
	}
	for c := range handshaking {
		c.Close()
	}
	m.wg.Wait()
	if err != nil {
		return fmt.Errorf("transport: close listener: %w", err)
	}
	return nil
}

// RaftLayer returns the raft.StreamLayer of group, registering it on first
// call; later calls return the same value until it is closed, after which a
// new one is registered (a group can leave a node and come back).
//
// If the Mux is closed, or group exceeds framing.MaxGroupID, the layer returned is
// already closed: its Accept and Dial fail (with net.ErrClosed or
// framing.ErrBadGroup).
func (m *Mux) RaftLayer(group uint64) *StreamLayer {
	name := "raft group " + strconv.FormatUint(group, 10)
	if group > framing.MaxGroupID {
		err := fmt.Errorf("%w: %d > %d", framing.ErrBadGroup, group, framing.MaxGroupID)
		return &StreamLayer{l: newClosedListener(name, m.advertise, err), group: group}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		err := fmt.Errorf("transport: %s: mux: %w", name, net.ErrClosed)
		return &StreamLayer{l: newClosedListener(name, m.advertise, err), group: group}
	}
	if s, ok := m.layers[group]; ok {
		return s
	}
	s := &StreamLayer{group: group}
	s.l = newListener(name, m.advertise, func(*listener) { m.unregisterRaft(s) })
	m.layers[group] = s
	return s
}

func (m *Mux) unregisterRaft(s *StreamLayer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.layers[s.group] == s {
		delete(m.layers, s.group)
	}
}

// ClientListener returns the listener of ProtoClient connections, header
// consumed: what follows are frames (framing.ReadFrame). Like RaftLayer, it returns
// the same listener until that is closed, and a closed one once the Mux is.
// Addr reports the Mux's listen address.
func (m *Mux) ClientListener() net.Listener { return m.protoListener(framing.ProtoClient, "client") }

// BeatListener is ClientListener for ProtoBeat connections: node-to-node
// heartbeat rounds.
func (m *Mux) BeatListener() net.Listener { return m.protoListener(framing.ProtoBeat, "heartbeat") }

// AppendListener is ClientListener for ProtoAppend connections: node-to-node
// log replication for every group.
func (m *Mux) AppendListener() net.Listener { return m.protoListener(framing.ProtoAppend, "append") }

func (m *Mux) protoListener(proto byte, name string) net.Listener {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return newClosedListener(name, m.ln.Addr(), fmt.Errorf("transport: %s listener: mux: %w", name, net.ErrClosed))
	}
	if m.protos[proto] == nil {
		var l *listener
		l = newListener(name, m.ln.Addr(), func(*listener) {
			m.mu.Lock()
			if m.protos[proto] == l {
				delete(m.protos, proto)
			}
			m.mu.Unlock()
		})
		m.protos[proto] = l
	}
	return m.protos[proto]
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	// Back off on accept errors such as EMFILE, as net/http does, so that a
	// node out of descriptors does not spin.
	const minDelay, maxDelay = 5 * time.Millisecond, time.Second
	var delay time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, minDelay), maxDelay)
			m.log.Warn("transport: accept failed", "err", err, "retry_in", delay)
			select {
			case <-m.done:
				return
			case <-time.After(delay):
				continue
			}
		}
		delay = 0
		if !m.startHandshake(c) {
			c.Close()
			return
		}
		go m.handshake(c)
	}
}

// startHandshake records c as pending so Close can end it, and counts its
// goroutine; it reports false once the Mux is closed.
func (m *Mux) startHandshake(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.handshaking[c] = struct{}{}
	m.wg.Add(1)
	return true
}

func (m *Mux) handshake(c net.Conn) {
	defer m.wg.Done()
	err := m.route(c, time.Now().Add(m.headerTimeout))
	m.mu.Lock()
	delete(m.handshaking, c) // a nil map after Close: delete is a no-op
	m.mu.Unlock()
	if err != nil {
		c.Close()
		// Debug, not warn: the cause is remote (scanners, health checks,
		// peers of a group this node no longer hosts) and can be frequent.
		m.log.Debug("transport: rejected connection", "remote", c.RemoteAddr().String(), "err", err)
	}
}

// route reads c's header and delivers c to its receiver by deadline.
func (m *Mux) route(c net.Conn, deadline time.Time) error {
	if err := c.SetReadDeadline(deadline); err != nil {
		return err
	}
	// A bufio.Reader of the minimum size lets ReadHeader read byte by byte
	// without a syscall per byte; whatever it read past the header is passed
	// on as the connection's prefix.
	br := bufio.NewReaderSize(c, framing.MaxHeaderLen)
	proto, group, err := framing.ReadHeader(br)
	if err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	var prefix []byte
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n) // cannot fail: n bytes are buffered
		prefix = bytes.Clone(b)
	}

	var l *listener
	m.mu.Lock()
	switch proto {
	case framing.ProtoRaft:
		if s := m.layers[group]; s != nil {
			l = s.l
		}
	default:
		l = m.protos[proto]
	}
	m.mu.Unlock()
	if l == nil {
		if proto == framing.ProtoRaft {
			return fmt.Errorf("no raft layer for group %d", group)
		}
		return fmt.Errorf("no listener for protocol %d", proto)
	}
	return l.deliver(c, prefix, deadline)
}
