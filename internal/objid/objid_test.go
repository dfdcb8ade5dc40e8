package objid

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Golden values: FromName and Slot are persisted implicitly by every cluster (placement) and
// every client (cached IDs). A change to either breaks deployed data, so it must fail here.
// The values were computed outside Go from the definitions in doc.go and Slot's comment
// (sha256 of the documented byte strings; floor(x*slots/2^64)), so they also check that
// the code matches its documentation.
func TestGolden(t *testing.T) {
	const (
		goldenCounterAlice     = "010f3d1171d3cddd69c0e7f3484e19eb7cd57bb3d1c48d46bef9532e2b1f1630"
		goldenCounterAliceSlot = 0x0f3d1171d3cddd69 >> 52 // Slot(4096) is the top 12 bits of bytes 1..8
	)
	id := FromName("Counter", "alice")
	if got := id.String(); got != goldenCounterAlice {
		t.Fatalf("FromName(Counter, alice) = %s, recorded %s: the ID derivation changed", got, goldenCounterAlice)
	}
	if s := id.Slot(4096); s != goldenCounterAliceSlot {
		t.Fatalf("Slot(4096) = %d, recorded %d: the slot function changed", s, goldenCounterAliceSlot)
	}
	if s := id.Slot(1000); s != 59 {
		t.Fatalf("Slot(1000) = %d, recorded 59: the slot function changed", s)
	}
}

func TestFromNameDeterministicAndDistinct(t *testing.T) {
	a1 := FromName("Counter", "a")
	a2 := FromName("Counter", "a")
	if a1 != a2 {
		t.Fatal("FromName is not deterministic")
	}
	cases := []struct{ class, name string }{
		{"Counter", "b"},
		{"Register", "a"},
		{"Counte", "ra"}, // class/name boundary must matter
		{"Counter", ""},
		{"", "Countera"},
	}
	for _, c := range cases {
		if FromName(c.class, c.name) == a1 {
			t.Errorf("FromName(%q, %q) collides with FromName(Counter, a)", c.class, c.name)
		}
	}
	if a1.Kind() != KindName {
		t.Errorf("kind = %d, want KindName", a1.Kind())
	}
}

func TestNewUnique(t *testing.T) {
	seen := map[ID]bool{}
	for i := 0; i < 1000; i++ {
		id := NewUnique("Counter")
		if seen[id] {
			t.Fatal("NewUnique repeated an ID")
		}
		seen[id] = true
		if id.Kind() != KindUnique {
			t.Fatalf("kind = %d, want KindUnique", id.Kind())
		}
		if err := id.Check("Counter"); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
}

func TestParse(t *testing.T) {
	named := FromName("Counter", "x")
	unique := NewUnique("Counter")
	other := FromName("Register", "x")
	badKind := named
	badKind[0] = 7
	zero := ID{}

	tests := []struct {
		name    string
		class   string
		in      string
		want    ID
		wantErr error
	}{
		{"named", "Counter", named.String(), named, nil},
		{"unique", "Counter", unique.String(), unique, nil},
		{"other class", "Counter", other.String(), ID{}, ErrWrongClass},
		{"same ID other class", "Register", named.String(), ID{}, ErrWrongClass},
		{"empty", "Counter", "", ID{}, ErrInvalidID},
		{"short", "Counter", named.String()[:63], ID{}, ErrInvalidID},
		{"long", "Counter", named.String() + "0", ID{}, ErrInvalidID},
		{"uppercase", "Counter", strings.ToUpper(named.String()), ID{}, ErrInvalidID},
		{"non-hex", "Counter", "g" + named.String()[1:], ID{}, ErrInvalidID},
		{"unicode", "Counter", "é" + named.String()[2:], ID{}, ErrInvalidID},
		{"unknown kind", "Counter", badKind.String(), ID{}, ErrInvalidID},
		{"zero", "Counter", zero.String(), ID{}, ErrInvalidID},
		{"flipped checksum bit", "Counter", flip(named, 31).String(), ID{}, ErrWrongClass},
		{"flipped body bit", "Counter", flip(named, 5).String(), ID{}, ErrWrongClass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.class, tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Parse error = %v, want %v", err, tt.wantErr)
				}
				if err.Error() == tt.wantErr.Error() {
					t.Errorf("error %q carries no detail", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Parse = %s, want %s", got, tt.want)
			}
		})
	}
}

func flip(id ID, i int) ID {
	id[i] ^= 1
	return id
}

func TestEncodings(t *testing.T) {
	id := NewUnique("C")
	var back struct{ ID ID }
	b, err := json.Marshal(struct{ ID ID }{id})
	if err != nil || json.Unmarshal(b, &back) != nil || back.ID != id {
		t.Fatalf("JSON round trip: %s, %v, %v", b, err, back.ID)
	}
	bin, _ := id.MarshalBinary()
	var got ID
	if err := got.UnmarshalBinary(bin); err != nil || got != id {
		t.Fatalf("binary round trip: %v", err)
	}
	for _, bad := range [][]byte{nil, bin[:31], append([]byte{9}, bin[1:]...)} {
		if err := got.UnmarshalBinary(bad); !errors.Is(err, ErrInvalidID) {
			t.Errorf("UnmarshalBinary(% x) = %v, want ErrInvalidID", bad, err)
		}
	}
	if err := got.UnmarshalText([]byte(strings.ToUpper(id.String()))); !errors.Is(err, ErrInvalidID) {
		t.Errorf("UnmarshalText(uppercase) = %v", err)
	}
}

func TestStringRoundTripAndJSON(t *testing.T) {
	id := FromName("ChatLog", "room-1")
	s := id.String()
	if len(s) != StringLen || strings.ToLower(s) != s {
		t.Fatalf("String() = %q, want %d lowercase hex digits", s, StringLen)
	}
	b, err := json.Marshal(struct{ ID ID }{id})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ID":"` + s + `"}`; string(b) != want {
		t.Fatalf("json = %s, want %s", b, want)
	}
}

func TestSlotUniform(t *testing.T) {
	const slots, n = 64, 64 * 2000
	var counts [slots]int
	for i := 0; i < n; i++ {
		var id ID
		if i%2 == 0 {
			id = NewUnique("C")
		} else {
			id = FromName("C", strings.Repeat("k", i%7)+string(rune('a'+i%26))+itoa(i))
		}
		s := id.Slot(slots)
		if s < 0 || s >= slots {
			t.Fatalf("Slot = %d out of [0, %d)", s, slots)
		}
		counts[s]++
	}
	// Chi-square with 63 degrees of freedom: the 99.99th percentile is about 117.
	exp := float64(n) / slots
	var chi float64
	for _, c := range counts {
		d := float64(c) - exp
		chi += d * d / exp
	}
	if chi > 117 {
		t.Fatalf("slot distribution is not uniform: chi² = %.1f over %v", chi, counts)
	}
}

func TestSlotEdges(t *testing.T) {
	var id ID
	id[0] = KindUnique
	for i := 1; i <= 8; i++ {
		id[i] = 0xff
	}
	if got := id.Slot(4096); got != 4095 {
		t.Fatalf("max body Slot(4096) = %d, want 4095", got)
	}
	if got := id.Slot(1); got != 0 {
		t.Fatalf("Slot(1) = %d, want 0", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Slot(0) did not panic")
		}
	}()
	id.Slot(0)
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func FuzzParse(f *testing.F) {
	f.Add("Counter", FromName("Counter", "a").String())
	f.Add("Counter", NewUnique("Counter").String())
	f.Add("Counter", FromName("Register", "a").String())
	f.Add("", "")
	f.Add("X", strings.Repeat("0", 64))
	f.Add("X", strings.Repeat("G", 64))
	f.Fuzz(func(t *testing.T, class, s string) {
		id, err := Parse(class, s)
		if err != nil {
			if !errors.Is(err, ErrInvalidID) && !errors.Is(err, ErrWrongClass) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if id.String() != s {
			t.Fatalf("round trip: Parse(%q).String() = %q", s, id.String())
		}
		if err := id.Check(class); err != nil {
			t.Fatalf("parsed ID fails Check: %v", err)
		}
	})
}

func BenchmarkFromName(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		FromName("Counter", "some-object-name")
	}
}

// BenchmarkCheck is what the client and the node do for every call.
func BenchmarkCheck(b *testing.B) {
	id := FromName("Counter", "x")
	b.ReportAllocs()
	for b.Loop() {
		if err := id.Check("Counter"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	s := FromName("Counter", "x").String()
	for i := 0; i < b.N; i++ {
		if _, err := Parse("Counter", s); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzUnmarshalBinary(f *testing.F) {
	id := FromName("C", "x")
	f.Add(id[:])
	f.Add([]byte{})
	f.Add(make([]byte, 33))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got ID
		if err := got.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrInvalidID) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if out, _ := got.MarshalBinary(); string(out) != string(b) {
			t.Fatal("round trip changed the bytes")
		}
	})
}

// TestLongInputs covers names and classes longer than the stack buffer the hash inputs are
// built in: the ID must be the one the streamed definition gives.
func TestLongInputs(t *testing.T) {
	class, name := strings.Repeat("C", 300), strings.Repeat("n", 1000)
	h := sha256.New()
	h.Write([]byte("duro-name"))
	h.Write(binary.AppendUvarint(nil, uint64(len(class))))
	h.Write([]byte(class))
	h.Write([]byte(name))
	sum := h.Sum(nil)
	id := FromName(class, name)
	if !bytes.Equal(id[1:bodyEnd], sum[:bodyEnd-1]) {
		t.Fatalf("FromName body = %x, want %x", id[1:bodyEnd], sum[:bodyEnd-1])
	}
	h = sha256.New()
	h.Write([]byte("duro-id"))
	h.Write(binary.AppendUvarint(nil, uint64(len(class))))
	h.Write([]byte(class))
	h.Write(id[:bodyEnd])
	if sum := h.Sum(nil); !bytes.Equal(id[bodyEnd:], sum[:Len-bodyEnd]) {
		t.Fatalf("checksum = %x, want %x", id[bodyEnd:], sum[:Len-bodyEnd])
	}
	if err := id.Check(class); err != nil {
		t.Fatal(err)
	}
}
