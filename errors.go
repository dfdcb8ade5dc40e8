package duro

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/wire"
	"github.com/duro-db/duro/objects"
	"github.com/duro-db/duro/raftgroup"
)

// errorCode maps a sentinel of the node to the wire code the client is told.
//
// The client names the code itself ("duro: no such class: ..."), so the message sent
// with it must not name it again: the sentinel's own text is cut out of the message and
// replaced by says, the words it adds to the code ("" when the code says it all).
type errorCode struct {
	err  error
	code wire.Code
	says string
}

// kept is an errorCode whose sentinel's text stays in the message: it says why, and the
// code does not.
func kept(err error, code wire.Code) errorCode { return errorCode{err, code, err.Error()} }

// limitCodes are the storage limits. A handler that passes one up is reported as that
// limit rather than as a handler error (its *objects.HandlerError unwraps to it).
var limitCodes = []errorCode{
	{objects.ErrKeyTooLarge, wire.CodeKeyTooLarge, ""},
	{fsm.ErrKeyTooLarge, wire.CodeKeyTooLarge, ""},
	{objects.ErrValueTooLarge, wire.CodeValueTooLarge, ""},
	{fsm.ErrValueTooLarge, wire.CodeValueTooLarge, ""},
	{objects.ErrTooManyKeys, wire.CodeTooManyKeys, ""},
	{fsm.ErrTooManyOps, wire.CodeTooManyKeys, ""},
}

// codeOf lists, in order of precedence, the other errors with a wire code of their own.
// Order matters: an unknown outcome caused by a shutdown is still an unknown outcome.
var codeOf = []errorCode{
	{objects.ErrArgumentsTooLarge, wire.CodeTooLarge, "arguments"},
	{objects.ErrResultTooLarge, wire.CodeTooLarge, "result"},
	{objects.ErrCallTooLarge, wire.CodeTooLarge, "the call's writes"},
	{fsm.ErrResultTooLarge, wire.CodeTooLarge, "result"},
	{objects.ErrNoSuchClass, wire.CodeNoSuchClass, ""},
	{objects.ErrNoSuchMethod, wire.CodeNoSuchMethod, ""},
	{objects.ErrInvalidID, wire.CodeInvalidID, ""},
	{objects.ErrWrongClass, wire.CodeWrongClass, ""},
	{objects.ErrBadArgument, wire.CodeBadArgument, ""},
	{objects.ErrBadRequest, wire.CodeBadRequest, ""},
	{objects.ErrOverloaded, wire.CodeOverloaded, ""},
	{objects.ErrNoSpace, wire.CodeNoSpace, ""},
	{objects.ErrInstanceReset, wire.CodeInstanceReset, "object instance reset"},
	{raftgroup.ErrUnknownOutcome, wire.CodeUnknownOutcome, ""},
	// The call's deadline (or its connection) ended while it ran: it may still complete.
	kept(context.DeadlineExceeded, wire.CodeUnknownOutcome),
	kept(context.Canceled, wire.CodeUnknownOutcome),
	{objects.ErrClosed, wire.CodeUnavailable, "runtime closed"},
	kept(raftgroup.ErrClosed, wire.CodeUnavailable),
	kept(raftgroup.ErrNoGroup, wire.CodeUnavailable),
}

// wireError maps an error of the runtime or of the node to what the client is told.
func (s *Server) wireError(err error) *wire.Error {
	var nl *raftgroup.NotLeaderError
	if errors.As(err, &nl) {
		// The code says "not the leader"; the message says of which group and who is.
		msg := fmt.Sprintf("group %d; leader unknown", nl.Group)
		if nl.LeaderID != "" {
			msg = fmt.Sprintf("group %d; leader is %s at %s", nl.Group, nl.LeaderID, nl.LeaderAddr)
		}
		return &wire.Error{Code: wire.CodeNotLeader, Message: msg,
			Group: nl.Group, LeaderID: nl.LeaderID, LeaderAddr: nl.LeaderAddr}
	}
	var he *objects.HandlerError
	isHandler := errors.As(err, &he)
	for _, c := range limitCodes {
		if errors.Is(err, c.err) {
			text := err.Error()
			if isHandler {
				text = he.Message // without "objects: handler error: ", which the code replaces
			}
			return &wire.Error{Code: c.code, Message: c.message(text)}
		}
	}
	// Before the rest: whatever a handler returned, even a context error, is its answer.
	if isHandler {
		return &wire.Error{Code: wire.CodeHandler, Message: he.Message}
	}
	for _, c := range codeOf {
		if errors.Is(err, c.err) {
			return &wire.Error{Code: c.code, Message: c.message(err.Error())}
		}
	}
	s.log.Warn("call failed with an unexpected error", "err", err)
	return &wire.Error{Code: wire.CodeInternal, Message: err.Error()}
}

// message rewrites text, an error that wraps c.err, for the wire: c.err's own words are
// replaced by c.says, and what came before and after them is kept. A text that does not
// contain c.err's words (a wrapper that rewrote them) is sent whole.
func (c errorCode) message(text string) string {
	before, after, found := strings.Cut(text, c.err.Error())
	if !found {
		return text
	}
	before = strings.TrimSpace(strings.TrimSuffix(before, ": "))
	after = strings.TrimSpace(strings.TrimPrefix(after, ": "))
	if strings.HasPrefix(after, "(") && strings.HasSuffix(after, ")") {
		after = after[1 : len(after)-1] // diskspace's "(1 GiB free, reserve 2 GiB)"
	}
	var parts []string
	for _, p := range []string{before, c.says, after} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ": ")
}
