package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func sampleCall() Call {
	c := Call{
		Class:         "Counter",
		Name:          "visits",
		Method:        "Add",
		Args:          []byte{0x01},
		Seq:           42,
		Ack:           40,
		TimeoutMillis: 5000,
		FirstAttempt:  true,
	}
	for i := range c.ID {
		c.ID[i] = byte(i)
	}
	for i := range c.Client {
		c.Client[i] = byte(0xf0 + i)
	}
	return c
}

func sampleTopology() *Topology {
	return &Topology{
		ClusterID: "c0ffee",
		Slots:     []uint64{1, 2, 3, 1, 2, 3, 70000},
		Members:   []Member{{ID: "n1", Addr: "127.0.0.1:7001"}, {ID: "n2", Addr: "127.0.0.1:7002"}},
		Leaders:   map[uint64]string{0: "n1", 1: "n2", 3: "n1"},
	}
}

func TestRequestRoundTrip(t *testing.T) {
	jsonCall := sampleCall()
	jsonCall.JSON = true
	jsonCall.Client = [ClientIDLen]byte{}
	jsonCall.Args = []byte(`{"n":1}`)
	tests := []struct {
		name string
		req  Request
	}{
		{"call", Request{StreamID: 7, Op: OpCall, Call: sampleCall()}},
		{"json call without client", Request{StreamID: 1<<64 - 1, Op: OpCall, Call: jsonCall}},
		{"empty call", Request{Op: OpCall}},
		{"topology", Request{StreamID: 3, Op: OpTopology}},
		{"unknown op", Request{StreamID: 9, Op: 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendRequest(nil, &tt.req)
			got, err := DecodeRequest(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.req) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", *got, tt.req)
			}
		})
	}
}

func TestResponseRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		resp Response
	}{
		{"result", Response{StreamID: 1, Result: []byte{0x93, 1, 2, 3}}},
		{"empty result", Response{StreamID: 2, Result: []byte{}}},
		{"no result", Response{StreamID: 3}},
		{"error", Response{StreamID: 4, Err: &Error{Code: CodeHandler, Message: "boom"}}},
		{"not leader", Response{StreamID: 5, Err: &Error{Code: CodeNotLeader, Message: "x", Group: 12, LeaderID: "n2", LeaderAddr: "10.0.0.2:7000"}}},
		{"unknown code", Response{StreamID: 6, Err: &Error{Code: 999}}},
		{"topology", Response{StreamID: 7, Topology: sampleTopology()}},
		{"empty topology", Response{StreamID: 8, Topology: &Topology{Slots: []uint64{}, Members: []Member{}, Leaders: map[uint64]string{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendResponse(nil, &tt.resp)
			got, err := DecodeResponse(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.resp) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", *got, tt.resp)
			}
		})
	}
}

// TestAppendKeepsPrefix checks that Append* extend dst rather than overwrite it, so a
// caller can encode after a frame header it reserved.
func TestAppendKeepsPrefix(t *testing.T) {
	prefix := []byte("HDR!")
	b := AppendRequest(append([]byte(nil), prefix...), &Request{StreamID: 1, Op: OpTopology})
	if !bytes.HasPrefix(b, prefix) {
		t.Fatalf("prefix lost: %x", b)
	}
	if _, err := DecodeRequest(b[len(prefix):]); err != nil {
		t.Fatal(err)
	}
}

// TestDecodedDoesNotAlias checks the documented ownership: a reader may reuse its frame
// buffer as soon as a decode returns.
func TestDecodedDoesNotAlias(t *testing.T) {
	req := Request{StreamID: 1, Op: OpCall, Call: sampleCall()}
	b := AppendRequest(nil, &req)
	got, err := DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xff
	}
	if !reflect.DeepEqual(*got, req) {
		t.Fatalf("decoded request changed when its input was overwritten: %+v", *got)
	}

	for _, resp := range []Response{
		{StreamID: 2, Result: []byte{1, 2, 3}},
		{StreamID: 3, Err: &Error{Code: CodeNotLeader, Message: "m", Group: 3, LeaderID: "n2", LeaderAddr: "h:1"}},
		{StreamID: 4, Topology: sampleTopology()},
	} {
		b := AppendResponse(nil, &resp)
		got, err := DecodeResponse(b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] = 0xff
		}
		if !reflect.DeepEqual(*got, resp) {
			t.Fatalf("decoded response changed when its input was overwritten: %+v", *got)
		}
	}
}

// TestForwardCompatible checks that fields appended by a newer peer are skipped.
func TestForwardCompatible(t *testing.T) {
	enc := func(vs ...any) []byte {
		t.Helper()
		b, err := msgpack.Marshal(vs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	c := sampleCall()
	extra := map[string]any{"future": []any{1, "x", []byte{2}, nil, true, 1.5}}
	callArr := []any{c.Class, c.ID[:], c.Name, c.Method, c.Args, c.JSON, c.Client[:], c.Seq, c.Ack, c.TimeoutMillis, c.FirstAttempt, extra, "more"}
	b := enc(uint64(5), uint64(OpCall), callArr, "trailing", extra)
	got, err := DecodeRequest(b)
	if err != nil {
		t.Fatalf("decode with extra fields: %v", err)
	}
	if want := (Request{StreamID: 5, Op: OpCall, Call: c}); !reflect.DeepEqual(*got, want) {
		t.Fatalf("got %+v, want %+v", *got, want)
	}

	errArr := []any{uint64(CodeOverloaded), "busy", uint64(0), "", "", "retry-after"}
	b = enc(uint64(6), nil, errArr, nil, extra)
	resp, err := DecodeResponse(b)
	if err != nil {
		t.Fatalf("decode response with extra fields: %v", err)
	}
	if resp.Err == nil || resp.Err.Code != CodeOverloaded || resp.Err.Message != "busy" {
		t.Fatalf("got %+v", resp.Err)
	}
}

// A call from a client that predates FirstAttempt (10 fields) decodes, as a possible retry.
func TestCallWithoutFirstAttempt(t *testing.T) {
	c := sampleCall()
	arr := []any{c.Class, c.ID[:], c.Name, c.Method, c.Args, c.JSON, c.Client[:], c.Seq, c.Ack, c.TimeoutMillis}
	b, err := msgpack.Marshal([]any{uint64(9), uint64(OpCall), arr})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRequest(b)
	if err != nil {
		t.Fatalf("decode a 10-field call: %v", err)
	}
	c.FirstAttempt = false
	if want := (Request{StreamID: 9, Op: OpCall, Call: c}); !reflect.DeepEqual(*got, want) {
		t.Fatalf("got %+v, want %+v", *got, want)
	}
}

func TestDecodeMalformed(t *testing.T) {
	good := AppendRequest(nil, &Request{StreamID: 1, Op: OpCall, Call: sampleCall()})
	mp := func(vs ...any) []byte {
		t.Helper()
		b, err := msgpack.Marshal(vs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	c := sampleCall()
	callWith := func(i int, v any) []any {
		arr := []any{c.Class, c.ID[:], c.Name, c.Method, c.Args, c.JSON, c.Client[:], c.Seq, c.Ack, c.TimeoutMillis}
		arr[i] = v
		return arr
	}
	deep := bytes.Repeat([]byte{0x91}, 100) // [[[[...
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"not an array", []byte{0x01}},
		{"truncated", good[:len(good)-1]},
		{"trailing bytes", append(append([]byte(nil), good...), 0x00)},
		{"too few fields", mp(uint64(1), uint64(OpCall))},
		{"huge array count", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"huge bytes length", []byte{0x93, 0x01, 0x01, 0x9a, 0xc6, 0xff, 0xff, 0xff, 0xff}},
		{"negative stream ID", mp(int64(-1), uint64(OpCall), nil)},
		{"nil stream ID", mp(nil, uint64(OpTopology), nil)},
		{"float op", mp(uint64(1), 1.0, nil)},
		{"op out of range", mp(uint64(1), uint64(300), nil)},
		{"short object ID", mp(uint64(1), uint64(OpCall), callWith(1, []byte{1, 2, 3}))},
		{"nil object ID", mp(uint64(1), uint64(OpCall), callWith(1, nil))},
		{"long client ID", mp(uint64(1), uint64(OpCall), callWith(6, make([]byte, 17)))},
		{"class not a string", mp(uint64(1), uint64(OpCall), callWith(0, uint64(3)))},
		{"json not a bool", mp(uint64(1), uint64(OpCall), callWith(5, uint64(1)))},
		{"seq is a string", mp(uint64(1), uint64(OpCall), callWith(7, "7"))},
		{"deep unknown field", append([]byte{0x94, 0x01, 0x02, 0xc0}, deep...)},
		{"ext unknown field", append([]byte{0x94, 0x01, 0x02, 0xc0}, 0xd4, 0x01, 0x00)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeRequest(tt.in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeRequest(%x) = %v, want ErrMalformed", tt.in, err)
			}
		})
	}
}

func TestDecodeResponseMalformed(t *testing.T) {
	mp := func(vs ...any) []byte {
		t.Helper()
		b, err := msgpack.Marshal(vs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	topo := func(slots, members, leaders any) []any {
		return []any{"cid", slots, members, leaders}
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"error not an array", mp(uint64(1), nil, "boom", nil)},
		{"short error", mp(uint64(1), nil, []any{uint64(1)}, nil)},
		{"code out of range", mp(uint64(1), nil, []any{uint64(70000), "", uint64(0), "", ""}, nil)},
		{"slot count beyond input", []byte{0x94, 0x01, 0xc0, 0xc0, 0x94, 0xa0, 0xdd, 0x00, 0xff, 0xff, 0xff}},
		{"slot not a number", mp(uint64(1), nil, nil, topo([]any{"x"}, []any{}, map[uint64]string{}))},
		{"member not an array", mp(uint64(1), nil, nil, topo([]any{}, []any{"n1"}, map[uint64]string{}))},
		{"leaders not a map", mp(uint64(1), nil, nil, topo([]any{}, []any{}, []any{}))},
		{"leader count beyond input", []byte{0x94, 0x01, 0xc0, 0xc0, 0x94, 0xa0, 0x90, 0x90, 0xdf, 0x00, 0xff, 0xff, 0xff}},
		{"duplicate leader group", []byte{0x94, 0x01, 0xc0, 0xc0, 0x94, 0xa0, 0x90, 0x90, 0x82, 0x01, 0xa1, 'a', 0x01, 0xa1, 'b'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeResponse(tt.in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeResponse(%x) = %v, want ErrMalformed", tt.in, err)
			}
		})
	}
}

func TestCodeString(t *testing.T) {
	for c := CodeNotLeader; c <= CodeBadRequest; c++ {
		if s := c.String(); strings.HasPrefix(s, "code(") {
			t.Errorf("code %d has no name", c)
		}
	}
	if s := Code(999).String(); s != "code(999)" {
		t.Errorf("unknown code string = %q", s)
	}
	e := &Error{Code: CodeNotLeader, Message: "group 3"}
	if e.Error() != "not leader: group 3" {
		t.Errorf("Error() = %q", e.Error())
	}
}

func BenchmarkRequestRoundTrip(b *testing.B) {
	req := Request{StreamID: 1, Op: OpCall, Call: sampleCall()}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRequest(buf[:0], &req)
		if _, err := DecodeRequest(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResponseRoundTrip(b *testing.B) {
	resp := Response{StreamID: 1, Result: []byte{0x2a}}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendResponse(buf[:0], &resp)
		if _, err := DecodeResponse(buf); err != nil {
			b.Fatal(err)
		}
	}
}
