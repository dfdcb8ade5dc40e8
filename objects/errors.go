package objects

import (
	"errors"
	"fmt"

	"github.com/duro-db/duro/internal/diskspace"
	"github.com/duro-db/duro/internal/objid"
)

// Errors returned by Runtime.Call and by Storage. Each is a sentinel matched with
// errors.Is; most are wrapped with detail. Retryable means a retry of the same request
// (same Client and Seq) is safe and may succeed.
var (
	// ErrNoSuchClass: the request names a class that is not registered. The message
	// suggests the nearest registered name, or lists them. Not retryable.
	ErrNoSuchClass = errors.New("objects: no such class")
	// ErrNoSuchMethod: the class has no method of that name. The message suggests the
	// nearest, or lists them. Not retryable.
	ErrNoSuchMethod = errors.New("objects: no such method")
	// ErrInvalidID: the object ID is malformed, or the request's Name does not hash to it.
	// Not retryable.
	ErrInvalidID = objid.ErrInvalidID
	// ErrWrongClass: the object ID was minted for another class. Not retryable.
	ErrWrongClass = objid.ErrWrongClass
	// ErrBadRequest: the request's own fields are inconsistent (Seq without Client, Seq 0
	// with a Client, Ack > Seq). Not retryable.
	ErrBadRequest = errors.New("objects: bad request")
	// ErrBadArgument: the arguments do not decode into the method's input type (wrong
	// types, unknown fields, trailing bytes, or too large). Not retryable.
	ErrBadArgument = errors.New("objects: bad argument")
	// ErrArgumentsTooLarge: the arguments exceed MaxArgsSize. It wraps ErrBadArgument.
	ErrArgumentsTooLarge = fmt.Errorf("%w: arguments too large", ErrBadArgument)
	// ErrResultTooLarge: a writing call's result, stored for deduplication, exceeds
	// fsm.MaxResultSize. The call's writes were discarded. Not retryable.
	ErrResultTooLarge = errors.New("objects: result too large")
	// ErrOverloaded: the object already has MaxQueue calls waiting or in flight. The call
	// did not run. Not retryable as such: back off, the object is saturated.
	ErrOverloaded = errors.New("objects: object overloaded")
	// ErrInstanceReset: an earlier command of this object failed, so the instance was reset
	// and this call's reply (computed on state that assumed the earlier command) withheld.
	// The call's own command, if it had one, may or may not have been applied: retry with
	// the same Client and Seq for exactly-once. Retryable.
	ErrInstanceReset = errors.New("objects: object instance reset, retry")
	// ErrClosed: the Runtime is closed. Retryable on another node.
	ErrClosed = errors.New("objects: runtime closed")

	// ErrInvalidKey: an empty key, or one beginning with "\x00duro/" (reserved for the
	// runtime). Storage keys are 1..MaxKeySize bytes.
	ErrInvalidKey = errors.New("objects: invalid key")
	// ErrKeyTooLarge: a key is longer than MaxKeySize. Nothing was buffered.
	ErrKeyTooLarge = errors.New("objects: key too large")
	// ErrValueTooLarge: an encoded value is longer than MaxValueSize. Nothing was buffered.
	ErrValueTooLarge = errors.New("objects: value too large")
	// ErrTooManyKeys: a batch has more than MaxBatchKeys keys, or a call's writes touch more
	// than MaxCallKeys keys. Nothing was buffered.
	ErrTooManyKeys = errors.New("objects: too many keys")
	// ErrCallTooLarge: a call's buffered writes would exceed MaxCallBytes. Nothing more was
	// buffered.
	ErrCallTooLarge = errors.New("objects: call writes too much")
	// ErrBadListOptions: ListOptions with both Start and StartAfter, or a negative Limit.
	ErrBadListOptions = errors.New("objects: bad list options")
	// ErrInvalidAlarm: SetAlarm with a time outside the years 1678..2262 (unix nanoseconds
	// must fit an int64).
	ErrInvalidAlarm = errors.New("objects: invalid alarm time")
	// ErrStorageClosed: a Storage (or Context) was used after its call returned.
	ErrStorageClosed = errors.New("objects: storage used after its call returned")
	// ErrDecode: a stored value does not decode into the given Go value.
	ErrDecode = errors.New("objects: cannot decode value")

	// ErrNoSpace: the node's disk is below its reserve, so a call that stores something
	// is refused before any of it is written. Reads and deletes go on; writes resume once
	// space is freed.
	ErrNoSpace = diskspace.ErrNoSpace
)

// HandlerError is a failure of the user's code: the handler (or Init) returned an error,
// or it panicked. The call's writes were discarded; after a panic the instance was also
// reset. Message is what travels to remote callers. Not retryable. Because it unwraps to
// the handler's error, which may itself match a sentinel above, code that maps errors
// (the server) must test for *HandlerError first.
type HandlerError struct {
	Message string
	// Panicked is set when the handler panicked (Message then starts with "panic: ").
	Panicked bool
	err      error // what the handler returned, for errors.Is/As in-process; nil after a panic
}

func (e *HandlerError) Error() string { return "objects: handler error: " + e.Message }

// Unwrap returns the error the handler returned, so errors.Is(err, ErrValueTooLarge) holds
// when a handler passes a Storage limit error up.
func (e *HandlerError) Unwrap() error { return e.err }
