package framing

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Dial connects to the node (its transport.Mux) at addr and writes the header for
// proto and group, within ctx. What follows on the returned connection is the
// protocol's.
func Dial(ctx context.Context, addr string, proto byte, group uint64) (net.Conn, error) {
	var buf [MaxHeaderLen]byte
	hdr, err := AppendHeader(buf[:0], proto, group)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err // "dial tcp ADDR: ...": it names the address already
	}
	// Make a cancelled or expired ctx interrupt the header write.
	stop := context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Unix(1, 0)) })
	_, err = c.Write(hdr)
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("framing: dial %s: write header: %w", addr, err)
	}
	return c, nil
}
