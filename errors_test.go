package duro

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/diskspace"
	"github.com/duro-db/duro/internal/wire"
	"github.com/duro-db/duro/objects"
	"github.com/duro-db/duro/raftgroup"
)

// The client names the wire code itself ("duro: no such class: ..."), so the message a
// node sends with it must say only what the code does not: else the user reads the
// same words twice, once in the client's wording and once in the node's.
func TestWireErrorSaysEachThingOnce(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	tests := []struct {
		name     string
		err      error
		wantCode wire.Code
		wantMsg  string
	}{
		{"no such class", fmt.Errorf("%w: %q", objects.ErrNoSuchClass, "Nope"),
			wire.CodeNoSuchClass, `"Nope"`},
		{"no such method", fmt.Errorf("%w: Counter.Ad; did you mean Counter.Add?", objects.ErrNoSuchMethod),
			wire.CodeNoSuchMethod, "Counter.Ad; did you mean Counter.Add?"},
		{"bad argument inside context", fmt.Errorf("Counter.Add: %w: json: cannot unmarshal", objects.ErrBadArgument),
			wire.CodeBadArgument, "Counter.Add: json: cannot unmarshal"},
		{"a sentinel with nothing more", objects.ErrOverloaded, wire.CodeOverloaded, ""},
		{"arguments too large keeps what was too large",
			fmt.Errorf("Counter.Add: %w: 200 bytes > 100", objects.ErrArgumentsTooLarge),
			wire.CodeTooLarge, "Counter.Add: arguments: 200 bytes > 100"},
		{"result too large", fmt.Errorf("%w: 2 > 1", fsm.ErrResultTooLarge), wire.CodeTooLarge, "result: 2 > 1"},
		{"no space, without the parentheses", fmt.Errorf("%w (1.0 GiB free, reserve 2.0 GiB)", diskspace.ErrNoSpace),
			wire.CodeNoSpace, "1.0 GiB free, reserve 2.0 GiB"},
		{"a storage limit", fmt.Errorf("%w: 9 > 8", fsm.ErrValueTooLarge), wire.CodeValueTooLarge, "9 > 8"},
		{"a handler's error is its own", &objects.HandlerError{Message: "limit must be 0..1000"},
			wire.CodeHandler, "limit must be 0..1000"},
		{"unknown outcome with its cause", fmt.Errorf("%w: %w", raftgroup.ErrUnknownOutcome, raftgroup.ErrClosed),
			wire.CodeUnknownOutcome, "node closed"},
		{"a deadline is the reason, kept", fmt.Errorf("Counter.Add: %w", context.DeadlineExceeded),
			wire.CodeUnknownOutcome, "Counter.Add: context deadline exceeded"},
		{"not the leader", fmt.Errorf("objects: %w", &raftgroup.NotLeaderError{Group: 3, LeaderID: "n2", LeaderAddr: "h:1"}),
			wire.CodeNotLeader, "group 3; leader is n2 at h:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.wireError(tt.err)
			if got.Code != tt.wantCode || got.Message != tt.wantMsg {
				t.Errorf("wireError(%q) = %v %q, want %v %q", tt.err, got.Code, got.Message, tt.wantCode, tt.wantMsg)
			}
		})
	}
}
