package client

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"

	"github.com/duro-db/duro/internal/wire"
)

// TestRequestSizeHint checks that the size hint bounds a request's encoding with every
// field at its widest, so encoding never grows the frame.
func TestRequestSizeHint(t *testing.T) {
	for _, n := range []int{0, 31, 32, 255, 256, 70000} {
		req := &wire.Request{StreamID: math.MaxUint64, Op: wire.OpCall, Call: wire.Call{
			Class: strings.Repeat("c", n), Name: strings.Repeat("n", n), Method: strings.Repeat("m", n),
			Args: bytes.Repeat([]byte{1}, n), JSON: true,
			Seq: math.MaxUint64, Ack: math.MaxUint64, TimeoutMillis: math.MaxUint64,
		}}
		req.Call.Client[0] = 1
		if got, hint := len(wire.AppendRequest(nil, req)), requestSizeHint(req); got > hint {
			t.Fatalf("strings of %d bytes: encoded %d bytes, hint %d", n, got, hint)
		}
	}
}

// BenchmarkCall is one call at a time through a Client to a fake node that answers at
// once: the SDK's own cost per call (plus the fake node's, which is fixed).
func BenchmarkCall(b *testing.B) {
	fc := newFakeCluster(b, 1)
	result, _ := marshal(7)
	fc.script(fc.nodes[0], func(*wire.Call) reply { return ok(result) })
	c := dialFake(b, fc)
	stub := c.Namespace("C").GetByName("x")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Call[int](ctx, stub, "Add", 1); err != nil {
			b.Fatal(err)
		}
	}
}
