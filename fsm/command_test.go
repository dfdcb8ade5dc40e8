package fsm

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestValidate(t *testing.T) {
	id := testID(1)
	big := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }
	puts := func(n int) []Op {
		ops := make([]Op, n)
		for i := range ops {
			ops[i] = put("k", "v")
		}
		return ops
	}
	tests := []struct {
		name string
		c    Command
		want error // nil = valid
	}{
		{"put", Command{Object: id, Ops: []Op{put("k", "v")}}, nil},
		{"no ops", Command{Object: id}, nil},
		{"noop command", Command{Time: 5}, nil},
		{"empty object with ops", Command{Ops: []Op{put("k", "v")}}, ErrBadObjectID},
		{"empty object with client", Command{Client: testClient(1), Seq: 1}, ErrBadObjectID},
		{"short object", Command{Object: id[:31]}, ErrBadObjectID},
		{"long object", Command{Object: append(id, 0)}, ErrBadObjectID},
		{"key at limit", Command{Object: id, Ops: []Op{{Kind: OpPut, Key: big(MaxKeySize)}}}, nil},
		{"key over limit", Command{Object: id, Ops: []Op{{Kind: OpPut, Key: big(MaxKeySize + 1)}}}, ErrKeyTooLarge},
		{"delete key over limit", Command{Object: id, Ops: []Op{{Kind: OpDelete, Key: big(MaxKeySize + 1)}}}, ErrKeyTooLarge},
		{"value at limit", Command{Object: id, Ops: []Op{{Kind: OpPut, Key: []byte("k"), Value: big(MaxValueSize)}}}, nil},
		{"value over limit", Command{Object: id, Ops: []Op{{Kind: OpPut, Key: []byte("k"), Value: big(MaxValueSize + 1)}}}, ErrValueTooLarge},
		{"empty put key", Command{Object: id, Ops: []Op{{Kind: OpPut, Value: []byte("v")}}}, ErrBadOp},
		{"empty delete key", Command{Object: id, Ops: []Op{{Kind: OpDelete}}}, ErrBadOp},
		{"delete with value", Command{Object: id, Ops: []Op{{Kind: OpDelete, Key: []byte("k"), Value: []byte("v")}}}, ErrBadOp},
		{"put with alarm", Command{Object: id, Ops: []Op{{Kind: OpPut, Key: []byte("k"), Alarm: 1}}}, ErrBadOp},
		{"delete-all with key", Command{Object: id, Ops: []Op{{Kind: OpDeleteAll, Key: []byte("k")}}}, ErrBadOp},
		{"delete-all with alarm", Command{Object: id, Ops: []Op{{Kind: OpDeleteAll, Alarm: 1}}}, ErrBadOp},
		{"set-alarm", Command{Object: id, Ops: []Op{setAlarm(-5)}}, nil},
		{"set-alarm with value", Command{Object: id, Ops: []Op{{Kind: OpSetAlarm, Value: []byte("v")}}}, ErrBadOp},
		{"delete-alarm with alarm", Command{Object: id, Ops: []Op{{Kind: OpDeleteAlarm, Alarm: 1}}}, ErrBadOp},
		{"kind 0", Command{Object: id, Ops: []Op{{Kind: 0}}}, ErrBadOp},
		{"kind 6", Command{Object: id, Ops: []Op{{Kind: OpDeleteAlarm + 1}}}, ErrBadOp},
		{"ops at limit", Command{Object: id, Ops: puts(MaxOps)}, nil},
		{"ops over limit", Command{Object: id, Ops: puts(MaxOps + 1)}, ErrTooManyOps},
		{"client", Command{Object: id, Client: testClient(1), Seq: 3, Ack: 3}, nil},
		{"client short", Command{Object: id, Client: testClient(1)[:15], Seq: 1}, ErrBadClient},
		{"client seq 0", Command{Object: id, Client: testClient(1)}, ErrBadClient},
		{"ack past seq", Command{Object: id, Client: testClient(1), Seq: 3, Ack: 4}, ErrBadClient},
		{"seq without client", Command{Object: id, Seq: 1}, ErrBadClient},
		{"ack without client", Command{Object: id, Ack: 1}, ErrBadClient},
		{"result at limit", Command{Object: id, Result: big(MaxResultSize)}, nil},
		{"result over limit", Command{Object: id, Result: big(MaxResultSize + 1)}, ErrResultTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrBadCommand) {
				t.Fatalf("Validate: %v, want %v wrapping ErrBadCommand", err, tt.want)
			}
			if _, err := EncodeCommand(&tt.c); !errors.Is(err, tt.want) {
				t.Fatalf("EncodeCommand: %v, want %v", err, tt.want)
			}
		})
	}
}

// normalized maps empty slices to nil, the one difference encoding does not keep.
func normalized(c *Command) *Command {
	n := *c
	nb := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		return b
	}
	n.Object, n.Client, n.Result = nb(c.Object), nb(c.Client), nb(c.Result)
	n.Ops = nil
	for _, o := range c.Ops {
		o.Key, o.Value = nb(o.Key), nb(o.Value)
		n.Ops = append(n.Ops, o)
	}
	return &n
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	id := testID(7)
	tests := []struct {
		name string
		c    Command
	}{
		{"noop", Command{}},
		{"empty", Command{Object: id}},
		{"ops", Command{Object: id, Ops: []Op{put("a", "1"), del("b"), deleteAll(), setAlarm(42), deleteAlarm()}, Time: 1}},
		{"empty value", Command{Object: id, Ops: []Op{{Kind: OpPut, Key: []byte("k"), Value: []byte{}}}}},
		{"binary key", Command{Object: id, Ops: []Op{{Kind: OpPut, Key: []byte{0, 0xff, 0x80}, Value: []byte{0}}}}},
		{"extreme ints", Command{Object: id, Ops: []Op{setAlarm(math.MinInt64)}, Client: testClient(1), Seq: math.MaxUint64, Ack: math.MaxUint64, Time: math.MaxInt64}},
		{"negative time", Command{Object: id, Time: -1, Ops: []Op{setAlarm(-129)}}},
		{"min time", Command{Object: id, Time: math.MinInt64}},
		{"result", Command{Object: id, Client: testClient(2), Seq: 9, Result: []byte("ok")}},
		{"large fields", Command{Object: id, Ops: []Op{{Kind: OpPut, Key: bytes.Repeat([]byte("k"), 300), Value: bytes.Repeat([]byte("v"), 70000)}}}},
		{"many ops", Command{Object: id, Ops: func() []Op {
			ops := make([]Op, MaxOps)
			for i := range ops {
				ops[i] = put(strings.Repeat("k", i%5+1), "v")
			}
			return ops
		}()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeCommand(&tt.c)
			if err != nil {
				t.Fatalf("EncodeCommand: %v", err)
			}
			got, err := DecodeCommand(b)
			if err != nil {
				t.Fatalf("DecodeCommand: %v", err)
			}
			if want := normalized(&tt.c); !reflect.DeepEqual(normalized(got), want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", normalized(got), want)
			}
			// The library's own decoder reads our encoding the same way.
			var lib Command
			if err := msgpack.Unmarshal(b, &lib); err != nil {
				t.Fatalf("msgpack.Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(normalized(&lib), normalized(got)) {
				t.Fatalf("library decodes differently:\n lib %+v\n ours %+v", normalized(&lib), normalized(got))
			}
			b2, _ := EncodeCommand(got)
			if !bytes.Equal(b, b2) {
				t.Fatalf("encoding is not deterministic")
			}
		})
	}
}

// TestDecodeLibraryDefaults decodes the library's default (non-compact) encoding: other
// encoders may pick any integer width.
func TestDecodeLibraryDefaults(t *testing.T) {
	c := Command{Object: testID(1), Ops: []Op{put("k", "v"), setAlarm(-70000)}, Client: testClient(1), Seq: 300, Ack: 2, Time: 1 << 40}
	b, err := msgpack.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCommand(b)
	if err != nil {
		t.Fatalf("DecodeCommand: %v", err)
	}
	if !reflect.DeepEqual(normalized(got), normalized(&c)) {
		t.Fatalf("got %+v, want %+v", got, c)
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := mustEncode(t, &Command{Object: testID(1), Ops: []Op{put("k", "v")}, Time: 3})
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	id := testID(1)
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"not a map", []byte{0x90}},
		{"truncated", valid[:len(valid)-1]},
		{"trailing byte", append(append([]byte{}, valid...), 0xc0)},
		{"unknown field", enc(map[string]any{"o": id, "x": 1})},
		{"field twice", []byte{0x82, 0xa1, 't', 0x01, 0xa1, 't', 0x02}},
		// {o: id, p: [{k: 1, k: 1}]}, written out since a Go map cannot repeat a key.
		{"op field twice", append(append([]byte{0x82, 0xa1, 'o', 0xc4, IDLen}, id...),
			0xa1, 'p', 0x91, 0x82, 0xa1, 'k', 0x01, 0xa1, 'k', 0x01)},
		{"object as string", enc(map[string]any{"o": string(id)})},
		{"time as string", enc(map[string]any{"o": id, "t": "1"})},
		{"negative seq", enc(map[string]any{"o": id, "c": testClient(1), "s": -1})},
		{"seq as float", enc(map[string]any{"o": id, "c": testClient(1), "s": 1.0})},
		{"time past int64", enc(map[string]any{"o": id, "t": uint64(math.MaxUint64)})},
		{"kind past uint8", enc(map[string]any{"o": id, "p": []any{map[string]any{"k": 256}}})},
		{"ops not an array", enc(map[string]any{"o": id, "p": 1})},
		{"op not a map", enc(map[string]any{"o": id, "p": []any{1}})},
		{"unknown op field", enc(map[string]any{"o": id, "p": []any{map[string]any{"k": 1, "z": 1}}})},
		{"invalid op", enc(map[string]any{"o": id, "p": []any{map[string]any{"k": 9}}})},
		{"huge array header", []byte{0x82, 0xa1, 'o', 0xc0, 0xa1, 'p', 0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"huge map header", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}},
		{"huge bin header", []byte{0x81, 0xa1, 'o', 0xc6, 0xff, 0xff, 0xff, 0xff}},
		{"short object", enc(map[string]any{"o": id[:5]})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DecodeCommand(tt.b)
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("DecodeCommand = %+v, %v; want ErrBadCommand", c, err)
			}
		})
	}
}

func TestDecodeAliasesInput(t *testing.T) {
	b := mustEncode(t, &Command{Object: testID(1), Ops: []Op{put("key", "value")}})
	c, err := DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	// Appending to a decoded slice must not write over the bytes that follow it.
	before := append([]byte{}, b...)
	_ = append(c.Ops[0].Key, 'X')
	if !bytes.Equal(b, before) {
		t.Fatal("append to a decoded key overwrote the input")
	}
}

func FuzzDecodeCommand(f *testing.F) {
	seeds := []*Command{
		{},
		{Object: testID(1)},
		{Object: testID(2), Ops: []Op{put("a", "b"), del("c"), deleteAll(), setAlarm(-1), deleteAlarm()}, Time: 99},
		{Object: testID(3), Client: testClient(1), Seq: 1 << 40, Ack: 5, Result: []byte("r"), Time: -5},
	}
	for _, c := range seeds {
		b, err := EncodeCommand(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		lib, _ := msgpack.Marshal(c)
		f.Add(lib)
	}
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x82, 0xa1, 'o', 0xc0, 0xa1, 'p', 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("error %v does not wrap ErrBadCommand", err)
			}
			return
		}
		// Whatever decodes is valid, re-encodes, and decodes to the same command.
		b2, err := EncodeCommand(c)
		if err != nil {
			t.Fatalf("decoded command does not re-encode: %v", err)
		}
		if lib := libraryEncoding(t, c); !bytes.Equal(b2, lib) {
			t.Fatalf("encoded %x, the library encodes %x", b2, lib)
		}
		c2, err := DecodeCommand(b2)
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalized(c), normalized(c2)) {
			t.Fatalf("unstable: %+v vs %+v", c, c2)
		}
		// The library reads the same input to the same command.
		var lib Command
		if err := msgpack.Unmarshal(b, &lib); err != nil {
			t.Fatalf("accepted input the library rejects: %v", err)
		}
		if !reflect.DeepEqual(normalized(&lib), normalized(c)) {
			t.Fatalf("library decodes differently: %+v vs %+v", lib, c)
		}
	})
}
