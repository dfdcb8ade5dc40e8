package objects

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/duro-db/duro/internal/objid"
)

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"Counter", "Counter", 0},
		{"Conter", "Counter", 1},   // a deletion
		{"Countter", "Counter", 1}, // an insertion
		{"Cointer", "Counter", 1},  // a substitution
		{"Cuonter", "Counter", 1},  // a swap of neighbours: one edit, not two
		{"Ad", "Add", 1},
		{"kitten", "sitting", 3},
		{"Nope", "Get", 4},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := editDistance(tt.b, tt.a); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d (it is symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestNearest(t *testing.T) {
	names := []string{"ChatLog", "Counter", "Get", "Register", "Set"}
	tests := []struct {
		typo string
		want []string
	}{
		{"Conter", []string{"Counter"}},
		{"counter", []string{"Counter"}}, // case alone is no edit
		{"Registr", []string{"Register"}},
		{"Regstr", []string{"Register"}},  // two edits in eight letters
		{"Ret", []string{"Get", "Set"}},   // ties: both
		{"Nope", nil},                     // nothing is close: no guess
		{"Cntr", nil},                     // three edits in four letters is another word
		{strings.Repeat("x", 1<<20), nil}, // longer than any name can be: not even compared
	}
	for _, tt := range tests {
		if got := nearest(tt.typo, names); !slices.Equal(got, tt.want) {
			t.Errorf("nearest(%.20q) = %q, want %q", tt.typo, got, tt.want)
		}
	}
}

// A call to a class or method the node lacks says what it has: the nearest name if one
// is close (a typo), else the list.
func TestNoSuchNameSuggests(t *testing.T) {
	f := newFixture(t, Options{})
	RegisterIn(f.reg, "Counter", func() *struct{} { return new(struct{}) },
		Method("Add", func(*struct{}, *Context, int) (int, error) { return 0, nil }))
	for i := range maxListed {
		RegisterIn(f.reg, fmt.Sprintf("Filler%d", i), func() *struct{} { return new(struct{}) },
			Method("M", func(*struct{}, *Context, int) (int, error) { return 0, nil }))
	}
	call := func(class, method string) error {
		_, err := f.rt.Call(context.Background(), Request{Class: class, ID: objid.FromName(class, "x"), Name: "x", Method: method})
		return err
	}
	tests := []struct {
		name          string
		class, method string
		want          error
		wantMsg       string
	}{
		{"a class typo", "Conter", "Add", ErrNoSuchClass, `objects: no such class: "Conter"; did you mean "Counter"?`},
		{"no class close", "Nope", "Add", ErrNoSuchClass,
			`objects: no such class: "Nope"; the classes are Counter, Filler0, Filler1, Filler2, Filler3, Filler4, Filler5, Filler6, Filler7, Filler8 and 2 more`},
		{"a method typo", "T", "Adt", ErrNoSuchMethod, `objects: no such method: T.Adt; did you mean T.Add?`},
		{"a method in the wrong case", "T", "get", ErrNoSuchMethod, `objects: no such method: T.get; did you mean T.Get?`},
		{"no method close", "T", "Nope", ErrNoSuchMethod, `objects: no such method: T.Nope; the methods of T are Add, Do, Get, Local`},
	}
	for _, tt := range tests {
		err := call(tt.class, tt.method)
		if !errors.Is(err, tt.want) || err.Error() != tt.wantMsg {
			t.Errorf("%s: err = %v\nwant %s", tt.name, err, tt.wantMsg)
		}
	}

	empty := NewRegistry()
	if got := empty.classHint("Counter"); got != "; no class is registered" {
		t.Errorf("empty registry: hint %q", got)
	}
}
