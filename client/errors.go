package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/duro-db/duro/internal/objid"
	"github.com/duro-db/duro/internal/wire"
)

// Errors a call can return. They are wrapped with detail: match them with errors.Is.
var (
	// ErrNoSuchClass: the cluster has no class of the Namespace's name.
	ErrNoSuchClass = errors.New("duro: no such class")
	// ErrNoSuchMethod: the class has no method of that name.
	ErrNoSuchMethod = errors.New("duro: no such method")
	// ErrInvalidID: the object ID is malformed (or does not match the name it was sent
	// with). The same error objid parsing returns, so IDFromString errors match it too.
	ErrInvalidID = objid.ErrInvalidID
	// ErrWrongClass: the object ID was minted for another class.
	ErrWrongClass = objid.ErrWrongClass
	// ErrBadArgument: the arguments do not decode into the method's input type, or the
	// client could not encode them or decode the result into the value given.
	ErrBadArgument = errors.New("duro: bad argument")
	// ErrTooLarge: the request, its result, or the writes of the call exceed a limit.
	// Nothing of the call was written.
	ErrTooLarge = errors.New("duro: too large")
	// ErrKeyTooLarge, ErrValueTooLarge and ErrTooManyKeys are the storage limits a
	// method broke; each wraps ErrTooLarge.
	ErrKeyTooLarge   = fmt.Errorf("%w: key too large", ErrTooLarge)
	ErrValueTooLarge = fmt.Errorf("%w: value too large", ErrTooLarge)
	ErrTooManyKeys   = fmt.Errorf("%w: too many keys", ErrTooLarge)
	// ErrOverloaded: the node or the object refused the call to protect itself; the
	// call did not run. Retry later, with backoff.
	ErrOverloaded = errors.New("duro: overloaded")

	// ErrNoSpace: the node's disk is below its reserve, so it refused a call that stores
	// something; nothing of it was written. Reads and deletes still work. Retryable
	// (IsRetryable), once the operator has freed space: the SDK does not retry it by
	// itself, since that takes minutes, not milliseconds.
	ErrNoSpace = errors.New("duro: no space on the node's disk")
	// ErrUnknownOutcome: the call may or may not have taken effect, and the context
	// ended before the client could find out. Calling again is a new call: it may apply
	// a second time unless the method is idempotent.
	ErrUnknownOutcome = errors.New("duro: outcome unknown")
	// ErrNotLeader: the node asked does not lead the object's group. The client follows
	// the node's hint and retries on its own, so a caller sees it only wrapped in a
	// deadline error.
	ErrNotLeader = errors.New("duro: not the leader")
	// ErrUnavailable: no node could serve the call (unreachable, shutting down, group
	// electing a leader). Retried on its own until the deadline.
	ErrUnavailable = errors.New("duro: unavailable")
	// ErrBadRequest: the node did not understand the request (a client newer than it).
	ErrBadRequest = errors.New("duro: bad request")
	// ErrInternal: the node failed unexpectedly (a bug, or a code this client does not
	// know).
	ErrInternal = errors.New("duro: internal error")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("duro: client closed")
)

// HandlerError is an error returned by the object's method, or a panic in it; Message is
// its text. Nothing of the call was written. It is not retried: the method decided.
type HandlerError struct {
	Message string
}

func (e *HandlerError) Error() string { return "duro: handler error: " + e.Message }

// IsRetryable reports whether a call that failed with err did not take effect and may
// succeed if made again (after a pause): overload, unavailability, a deadline that passed
// before the call was sent. It is false for definite answers (a handler error, bad input)
// and for ErrUnknownOutcome, since a new call may apply a second time.
func IsRetryable(err error) bool {
	switch {
	case err == nil, errors.Is(err, ErrUnknownOutcome), errors.Is(err, ErrClosed):
		return false
	case errors.Is(err, ErrOverloaded), errors.Is(err, ErrUnavailable), errors.Is(err, ErrNotLeader),
		errors.Is(err, ErrNoSpace):
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// remoteError turns an error a node sent into the client's typed errors. The sentinel's
// text says what the code means and the node's message adds only what it does not (see
// wire.Error), so the words are said once and errors.Is matches the sentinel.
func remoteError(e *wire.Error) error {
	wrap := func(sentinel error) error {
		if e.Message == "" {
			return sentinel
		}
		return fmt.Errorf("%w: %s", sentinel, e.Message)
	}
	switch e.Code {
	case wire.CodeNotLeader:
		return wrap(ErrNotLeader)
	case wire.CodeUnknownOutcome, wire.CodeInstanceReset:
		return wrap(ErrUnknownOutcome)
	case wire.CodeNoSuchClass:
		return wrap(ErrNoSuchClass)
	case wire.CodeNoSuchMethod:
		return wrap(ErrNoSuchMethod)
	case wire.CodeInvalidID:
		return wrap(ErrInvalidID)
	case wire.CodeWrongClass:
		return wrap(ErrWrongClass)
	case wire.CodeBadArgument:
		return wrap(ErrBadArgument)
	case wire.CodeKeyTooLarge:
		return wrap(ErrKeyTooLarge)
	case wire.CodeValueTooLarge:
		return wrap(ErrValueTooLarge)
	case wire.CodeTooManyKeys:
		return wrap(ErrTooManyKeys)
	case wire.CodeTooLarge:
		return wrap(ErrTooLarge)
	case wire.CodeOverloaded:
		return wrap(ErrOverloaded)
	case wire.CodeNoSpace:
		return wrap(ErrNoSpace)
	case wire.CodeHandler:
		return &HandlerError{Message: e.Message}
	case wire.CodeUnavailable:
		return wrap(ErrUnavailable)
	case wire.CodeBadRequest:
		return wrap(ErrBadRequest)
	case wire.CodeInternal:
		return wrap(ErrInternal)
	}
	return fmt.Errorf("%w: %s", ErrInternal, e.Error()) // a code this client does not know: name it
}

// retry says what the call loop does after an attempt failed.
type retry uint8

const (
	retryNo        retry = iota // a definite answer: return it
	retryNow                    // go straight to the leader just learnt
	retryBackoff                // pause, then try again
	retryUnknown                // like retryBackoff, and the call may have taken effect
	retryElsewhere              // like retryBackoff, and forget the node's leaderships
)

// classify decides whether the node's answer e is final.
func classify(e *wire.Error) retry {
	switch e.Code {
	case wire.CodeNotLeader:
		if e.LeaderID != "" {
			return retryNow
		}
		return retryElsewhere
	case wire.CodeUnknownOutcome, wire.CodeInstanceReset:
		return retryUnknown
	case wire.CodeUnavailable:
		return retryElsewhere
	}
	return retryNo
}
