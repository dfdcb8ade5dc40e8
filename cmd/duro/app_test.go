package main

import (
	"errors"
	"fmt"
	"testing"
)

// The CLI prints "duro: " once, at the front, and one line however the error was built.
func TestOneLine(t *testing.T) {
	sdk := errors.New("duro: unavailable")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"the SDK's prefix is dropped", fmt.Errorf("%w: no known node", sdk), "unavailable: no known node"},
		{"what the CLI was doing goes first, without a second prefix",
			doing("connect to the dev cluster", fmt.Errorf("%w: no known node", sdk)),
			"connect to the dev cluster: unavailable: no known node"},
		{"joined errors become clauses", errors.Join(errors.New("node a: refused"), errors.New("node b:  reset")),
			"node a: refused; node b: reset"},
		{"a message of the CLI's own is kept", errors.New("--id: bad"), "--id: bad"},
	}
	for _, tt := range tests {
		if got := oneLine(tt.err); got != tt.want {
			t.Errorf("%s: oneLine = %q, want %q", tt.name, got, tt.want)
		}
	}
	if !errors.Is(doing("x", sdk), sdk) {
		t.Error("doing hides the SDK's error from errors.Is")
	}
}
