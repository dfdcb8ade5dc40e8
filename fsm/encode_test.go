package fsm

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// libraryEncoding is what EncodeCommand wrote before it was written out by hand, and what
// nodes of earlier builds still write: the reflective encoder with compact integers.
func libraryEncoding(t testing.TB, c *Command) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(c); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestEncodeMatchesLibrary holds the hand-written encoder to the library's bytes, at every
// integer width and length class the format has.
func TestEncodeMatchesLibrary(t *testing.T) {
	ints := []int64{0, 1, 127, 128, 255, 256, math.MaxUint16, math.MaxUint16 + 1, math.MaxUint32,
		math.MaxUint32 + 1, math.MaxInt64, -1, -32, -33, -128, -129, math.MinInt16, math.MinInt16 - 1,
		math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	uints := []uint64{1, 127, 128, 255, 256, math.MaxUint16, math.MaxUint16 + 1, math.MaxUint32,
		math.MaxUint32 + 1, math.MaxUint64}
	sizes := []int{1, 255, 256, math.MaxUint16, math.MaxUint16 + 1}
	var cases []*Command
	cases = append(cases, &Command{}, &Command{Time: -7}, &Command{Object: []byte{}, Time: 3}, &Command{Object: testID(1)})
	for _, v := range ints {
		cases = append(cases,
			&Command{Object: testID(1), Time: v},
			&Command{Object: testID(1), Ops: []Op{setAlarm(v)}})
	}
	for _, v := range uints {
		cases = append(cases,
			&Command{Object: testID(2), Client: testClient(1), Seq: v, Ack: v / 2, Version: v},
			&Command{Object: testID(2), Client: testClient(1), Seq: v, Ack: v})
	}
	for _, n := range sizes {
		cases = append(cases,
			&Command{Object: testID(3), Result: bytes.Repeat([]byte{'r'}, n)},
			&Command{Object: testID(3), Ops: []Op{{Kind: OpPut, Key: []byte("k"), Value: bytes.Repeat([]byte{'v'}, min(n, MaxValueSize))}}})
	}
	for _, n := range []int{1, 15, 16, MaxOps} {
		ops := make([]Op, n)
		for i := range ops {
			ops[i] = []Op{put("k", "v"), del("d"), deleteAll(), setAlarm(int64(i) - 40), deleteAlarm(), {Kind: OpPut, Key: []byte("empty")}}[i%6]
		}
		cases = append(cases, &Command{Object: testID(4), Ops: ops, Time: int64(n)})
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		c := &Command{Object: testID(byte(rnd.IntN(256))), Time: rnd.Int64() >> rnd.IntN(64)}
		if rnd.IntN(2) == 0 {
			c.Client, c.Seq = testClient(byte(rnd.IntN(256))), 1+rnd.Uint64()>>rnd.IntN(64)
			c.Ack = c.Seq >> rnd.IntN(64)
			c.Result = bytes.Repeat([]byte{'x'}, rnd.IntN(300))
		}
		if rnd.IntN(2) == 0 {
			c.Version = rnd.Uint64() >> rnd.IntN(64)
		}
		for range rnd.IntN(20) {
			c.Ops = append(c.Ops, put(string(rune('a'+rnd.IntN(26))), string(bytes.Repeat([]byte{'v'}, rnd.IntN(300)))))
		}
		cases = append(cases, c)
	}
	for i, c := range cases {
		got, err := EncodeCommand(c)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if want := libraryEncoding(t, c); !bytes.Equal(got, want) {
			t.Fatalf("case %d (%+v): encoded\n%x\nthe library encodes\n%x", i, c, got, want)
		}
		if len(got) > encodedSizeHint(c) {
			t.Fatalf("case %d: %d bytes, more than the size hint %d", i, len(got), encodedSizeHint(c))
		}
	}
}

func BenchmarkEncodeCommand(b *testing.B) {
	c := &Command{Object: testID(1), Ops: []Op{put("value", string(bytes.Repeat([]byte{'v'}, 256)))},
		Client: testClient(1), Seq: 1000, Ack: 990, Result: []byte{0x81}, Time: 1 << 60, Version: 12345}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeCommand(c); err != nil {
			b.Fatal(err)
		}
	}
}
