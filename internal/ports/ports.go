// Package ports picks loopback ports for servers that tests and the Jepsen harness start
// as separate processes, which must be told their address before they bind it.
//
// The usual trick, binding 127.0.0.1:0 and closing, hands out a port from the kernel's
// ephemeral range, the same range every outgoing connection on the machine takes its
// source port from. Between the close and the server's bind, any connection (there are
// thousands in a test run) can take it, and the server fails with "address already in
// use": a test cluster that silently runs one node short. Ports here come from below
// that range, where only explicit binds land, at a random place so that parallel
// runs rarely meet, and each is checked free by binding it.
package ports

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// low is the first port handed out; the last is below the ephemeral range.
const low = 20000

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's default when it
// cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > low+1000 {
				return v
			}
		}
	}
	return 32768
}

// Free returns n distinct loopback addresses ("127.0.0.1:port") that were free when
// checked.
func Free(n int) ([]string, error) {
	base, err := FreeBase(seq(n)...)
	if err != nil {
		return nil, err
	}
	out := make([]string, n)
	for i := range out {
		out[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i))
	}
	return out, nil
}

// FreeBase returns a base port B such that B+offset is free on 127.0.0.1 for every
// offset given (each in [0, 1000)).
func FreeBase(offsets ...int) (int, error) {
	span := 0
	for _, o := range offsets {
		if o < 0 || o >= 1000 {
			return 0, fmt.Errorf("ports: offset %d out of [0, 1000)", o)
		}
		span = max(span, o+1)
	}
	high := ephemeralLow()
	for range 200 {
		base := low + rand.IntN(high-low-span)
		if allFree(base, offsets) {
			return base, nil
		}
	}
	return 0, errors.New("ports: no free range found below the ephemeral ports")
}

// Available reports whether every port given is free on 127.0.0.1 right now.
func Available(ports ...int) bool { return allFree(0, ports) }

func allFree(base int, offsets []int) bool {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for _, o := range offsets {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+o)))
		if err != nil {
			return false
		}
		lns = append(lns, ln)
	}
	return true
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}
