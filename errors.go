package duro

import (
	"context"
	"errors"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/wire"
	"github.com/duro-db/duro/objects"
	"github.com/duro-db/duro/raftgroup"
)

type errorCode struct {
	err  error
	code wire.Code
}

// limitCodes are the storage limits. A handler that passes one up is reported as that
// limit rather than as a handler error (its *objects.HandlerError unwraps to it).
var limitCodes = []errorCode{
	{objects.ErrKeyTooLarge, wire.CodeKeyTooLarge},
	{fsm.ErrKeyTooLarge, wire.CodeKeyTooLarge},
	{objects.ErrValueTooLarge, wire.CodeValueTooLarge},
	{fsm.ErrValueTooLarge, wire.CodeValueTooLarge},
	{objects.ErrTooManyKeys, wire.CodeTooManyKeys},
	{fsm.ErrTooManyOps, wire.CodeTooManyKeys},
}

// codeOf lists, in order of precedence, the other errors with a wire code of their own.
// Order matters: an unknown outcome caused by a shutdown is still an unknown outcome.
var codeOf = []errorCode{
	{objects.ErrArgumentsTooLarge, wire.CodeTooLarge},
	{objects.ErrResultTooLarge, wire.CodeTooLarge},
	{objects.ErrCallTooLarge, wire.CodeTooLarge},
	{fsm.ErrResultTooLarge, wire.CodeTooLarge},
	{objects.ErrNoSuchClass, wire.CodeNoSuchClass},
	{objects.ErrNoSuchMethod, wire.CodeNoSuchMethod},
	{objects.ErrInvalidID, wire.CodeInvalidID},
	{objects.ErrWrongClass, wire.CodeWrongClass},
	{objects.ErrBadArgument, wire.CodeBadArgument},
	{objects.ErrBadRequest, wire.CodeBadRequest},
	{objects.ErrOverloaded, wire.CodeOverloaded},
	{objects.ErrNoSpace, wire.CodeNoSpace},
	{objects.ErrInstanceReset, wire.CodeInstanceReset},
	{raftgroup.ErrUnknownOutcome, wire.CodeUnknownOutcome},
	// The call's deadline (or its connection) ended while it ran: it may still complete.
	{context.DeadlineExceeded, wire.CodeUnknownOutcome},
	{context.Canceled, wire.CodeUnknownOutcome},
	{objects.ErrClosed, wire.CodeUnavailable},
	{raftgroup.ErrClosed, wire.CodeUnavailable},
	{raftgroup.ErrNoGroup, wire.CodeUnavailable},
}

// wireError maps an error of the runtime or of the node to what the client is told.
func (s *Server) wireError(err error) *wire.Error {
	var nl *raftgroup.NotLeaderError
	if errors.As(err, &nl) {
		return &wire.Error{Code: wire.CodeNotLeader, Message: err.Error(),
			Group: nl.Group, LeaderID: nl.LeaderID, LeaderAddr: nl.LeaderAddr}
	}
	for _, c := range limitCodes {
		if errors.Is(err, c.err) {
			return &wire.Error{Code: c.code, Message: err.Error()}
		}
	}
	// Before the rest: whatever a handler returned, even a context error, is its answer.
	var he *objects.HandlerError
	if errors.As(err, &he) {
		return &wire.Error{Code: wire.CodeHandler, Message: he.Message}
	}
	for _, c := range codeOf {
		if errors.Is(err, c.err) {
			return &wire.Error{Code: c.code, Message: err.Error()}
		}
	}
	s.log.Warn("call failed with an unexpected error", "err", err)
	return &wire.Error{Code: wire.CodeInternal, Message: err.Error()}
}
