package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary frames to DecodeRequest, as a hostile client could.
// It must never panic, must fail only with ErrMalformed, and whatever it accepts must
// survive a round trip unchanged.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(AppendRequest(nil, &Request{StreamID: 1, Op: OpCall, Call: sampleCall()}))
	f.Add(AppendRequest(nil, &Request{StreamID: 2, Op: OpTopology}))
	f.Add(AppendRequest(nil, &Request{StreamID: 3, Op: 77}))
	f.Add([]byte{0x94, 0x01, 0x02, 0xc0, 0x81, 0xa1, 'x', 0x91, 0x01})
	f.Add([]byte{0x93, 0x01, 0x01, 0x9a, 0xc6, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := DecodeRequest(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		again, err := DecodeRequest(AppendRequest(nil, req))
		if err != nil {
			t.Fatalf("re-decoding an encoded request: %v", err)
		}
		if !reflect.DeepEqual(req, again) {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", req, again)
		}
	})
}

// FuzzDecodeResponse does the same for responses, as a hostile or broken node could send.
func FuzzDecodeResponse(f *testing.F) {
	f.Add(AppendResponse(nil, &Response{StreamID: 1, Result: []byte{1, 2, 3}}))
	f.Add(AppendResponse(nil, &Response{StreamID: 2, Err: &Error{Code: CodeNotLeader, Group: 3, LeaderID: "n2", LeaderAddr: "h:1"}}))
	f.Add(AppendResponse(nil, &Response{StreamID: 3, Topology: sampleTopology()}))
	f.Add([]byte{0x94, 0x01, 0xc0, 0xc0, 0x94, 0xa0, 0xdd, 0x00, 0xff, 0xff, 0xff})
	f.Add([]byte{0x94, 0x01, 0xc0, 0xc0, 0x94, 0xa0, 0x90, 0x90, 0x82, 0x01, 0xa1, 'a', 0x01, 0xa1, 'b'})
	f.Fuzz(func(t *testing.T, in []byte) {
		resp, err := DecodeResponse(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		enc := AppendResponse(nil, resp)
		again, err := DecodeResponse(enc)
		if err != nil {
			t.Fatalf("re-decoding an encoded response: %v", err)
		}
		if !reflect.DeepEqual(resp, again) {
			t.Fatalf("round trip changed the response:\n%+v\n%+v", resp, again)
		}
		// Encoding is deterministic (leaders are sorted), so it is a fixed point.
		if !bytes.Equal(enc, AppendResponse(nil, again)) {
			t.Fatalf("encoding is not deterministic")
		}
	})
}
