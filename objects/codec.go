package objects

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/duro-db/duro/internal/values"
)

// marshal encodes v as msgpack with compact integers (values.Marshal). The wire and
// storage encoding is internal/values's: msgpack that honours `json` struct tags, shared
// with the Go SDK.
func marshal(v any) ([]byte, error) { return values.Marshal(v) }

// unmarshal decodes msgpack b into out. strict rejects fields out does not have (used for
// call arguments, where a misspelt field is a caller's bug; stored values are decoded
// leniently so a type may drop a field without making old values unreadable). Trailing
// bytes are an error. checkMsgpack runs first, so hostile headers cannot make the decoder
// allocate or recurse without bound. A panic inside the decoder (msgpack on hostile input,
// or a user's custom decoder) is returned as an error: b may come from the network.
func unmarshal(b []byte, out any, strict bool) error {
	if err := checkMsgpack(b); err != nil {
		return err
	}
	n, err := values.Unmarshal(b, out, strict)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%d trailing bytes after the value", n)
	}
	return nil
}

// decodeArgs decodes a call's arguments into in (a pointer). Empty arguments leave the
// zero value, so methods whose input is a struct{} need none.
func decodeArgs(b []byte, isJSON bool, in any) error {
	if len(b) > MaxArgsSize {
		return fmt.Errorf("%w: %d bytes > %d", ErrArgumentsTooLarge, len(b), MaxArgsSize)
	}
	if len(b) == 0 {
		return nil
	}
	var err error
	if isJSON {
		err = unmarshalJSON(b, in)
	} else {
		err = unmarshal(b, in, true)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadArgument, err)
	}
	return nil
}

func unmarshalJSON(b []byte, out any) (err error) {
	defer func() {
		if p := recover(); p != nil { // a user's UnmarshalJSON
			err = fmt.Errorf("decoder panicked: %v", p)
		}
	}()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

// encodeResult encodes a method's result in the request's format.
func encodeResult(out any, isJSON bool) ([]byte, error) {
	if isJSON {
		return json.Marshal(out)
	}
	return marshal(out)
}
