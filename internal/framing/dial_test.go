package framing

import (
	"context"
	"errors"
	"net"
	"testing"
)

func TestDialHonoursContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Dial(ctx, ln.Addr().String(), ProtoClient, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := Dial(context.Background(), ln.Addr().String(), 42, 0); !errors.Is(err, ErrUnknownProto) {
		t.Fatalf("Dial with an unknown protocol = %v, want ErrUnknownProto", err)
	}
}

// Dial writes the header for the protocol and group before anything else.
func TestDialWritesTheHeader(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		proto, group, err := ReadHeader(byteReader{c})
		if err == nil && (proto != ProtoRaft || group != 300) {
			err = errors.New("wrong header")
		}
		got <- err
	}()
	c, err := Dial(context.Background(), ln.Addr().String(), ProtoRaft, 300)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// byteReader reads a net.Conn a byte at a time, so ReadHeader takes nothing past the header.
type byteReader struct{ c net.Conn }

func (r byteReader) ReadByte() (byte, error) {
	var b [1]byte
	_, err := r.c.Read(b[:])
	return b[0], err
}
