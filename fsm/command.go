package fsm

import (
	"errors"
	"fmt"
)

// Limits on a Command. They are checked by Validate before a command is proposed and again
// when it is applied, so a breach is a typed error and never a partial write.
const (
	// IDLen is the length of an object ID.
	IDLen = 32
	// ClientIDLen is the length of a client ID used for deduplication.
	ClientIDLen = 16
	// MaxKeySize is the largest key, in bytes (Cloudflare's limit).
	MaxKeySize = 2048
	// MaxValueSize is the largest value, in bytes (Cloudflare's limit).
	MaxValueSize = 128 << 10
	// MaxOps is the most operations one command may carry.
	MaxOps = 10_000
	// MaxResultSize bounds the result stored for deduplication: the dedup table holds up
	// to Options.DedupPerClient of them per client, so they must stay small.
	MaxResultSize = 1 << 20
)

// Errors returned by Validate, EncodeCommand and DecodeCommand, and carried in Result.Err
// when an entry is rejected at apply time. Every one of them wraps ErrBadCommand.
var (
	// ErrBadCommand means a command is malformed or breaks a limit; nothing of it was
	// (or will be) applied.
	ErrBadCommand = errors.New("fsm: bad command")
	// ErrBadObjectID means Command.Object is not IDLen bytes.
	ErrBadObjectID = fmt.Errorf("%w: object ID must be %d bytes", ErrBadCommand, IDLen)
	// ErrBadOp means an Op has an unknown kind or fields that do not belong to its kind.
	ErrBadOp = fmt.Errorf("%w: bad op", ErrBadCommand)
	// ErrKeyTooLarge means a key is longer than MaxKeySize.
	ErrKeyTooLarge = fmt.Errorf("%w: key too large", ErrBadCommand)
	// ErrValueTooLarge means a value is longer than MaxValueSize.
	ErrValueTooLarge = fmt.Errorf("%w: value too large", ErrBadCommand)
	// ErrTooManyOps means a command carries more than MaxOps operations.
	ErrTooManyOps = fmt.Errorf("%w: too many ops", ErrBadCommand)
	// ErrResultTooLarge means Command.Result is longer than MaxResultSize.
	ErrResultTooLarge = fmt.Errorf("%w: result too large", ErrBadCommand)
	// ErrBadClient means the deduplication fields are inconsistent: a client ID that is
	// not ClientIDLen bytes, Seq 0 with a client, Ack > Seq, or Seq/Ack without a client.
	ErrBadClient = fmt.Errorf("%w: bad client fields", ErrBadCommand)
)

// OpKind says what an Op does.
type OpKind uint8

// The operations on one object.
const (
	OpPut         OpKind = iota + 1 // sets Key to Value
	OpDelete                        // removes Key
	OpDeleteAll                     // removes every key AND the alarm of the object
	OpSetAlarm                      // sets the alarm to Alarm (unix nanos), replacing any
	OpDeleteAlarm                   // removes the alarm
)

func (k OpKind) String() string {
	switch k {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpDeleteAll:
		return "delete-all"
	case OpSetAlarm:
		return "set-alarm"
	case OpDeleteAlarm:
		return "delete-alarm"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Op is one write to an object. Fields that do not belong to Kind must be zero.
type Op struct {
	Kind  OpKind `msgpack:"k"`
	Key   []byte `msgpack:"y,omitempty"`
	Value []byte `msgpack:"v,omitempty"`
	Alarm int64  `msgpack:"a,omitempty"`
}

// Command is ONE object's writes from one call, applied all-or-nothing.
//
// A Command with an empty Object and nothing else set (only Time) is a no-op: it is valid,
// touches no object and only advances the applied index. Use it as a barrier the state
// machine sees; raft.Barrier entries never reach a BatchingFSM, so WaitApplied cannot
// observe them.
type Command struct {
	Object []byte `msgpack:"o"`           // IDLen bytes
	Ops    []Op   `msgpack:"p,omitempty"` // applied in order
	Client []byte `msgpack:"c,omitempty"` // ClientIDLen bytes; empty = no deduplication
	Seq    uint64 `msgpack:"s,omitempty"` // client's request sequence number, > 0 when Client is set
	Ack    uint64 `msgpack:"a,omitempty"` // the client has answers to every Seq < Ack; Ack <= Seq
	Result []byte `msgpack:"r,omitempty"` // the call's encoded result, stored for deduplication
	Time   int64  `msgpack:"t"`           // proposer's wall clock, unix nanos: the log time
	// Version, when nonzero, is the object version this command must produce: it applies
	// only if the object's version is Version-1 when the entry is applied, and is otherwise
	// rejected with ErrVersionConflict. A proposer that pipelines several commands of one
	// object, each computed on top of the previous, sets it so that a command whose
	// predecessor never committed can never apply on its own.
	Version uint64 `msgpack:"v,omitempty"`
}

// isNoop reports whether c is the no-op command.
func (c *Command) isNoop() bool {
	return len(c.Object) == 0 && len(c.Ops) == 0 && len(c.Client) == 0 &&
		c.Seq == 0 && c.Ack == 0 && len(c.Result) == 0 && c.Version == 0
}

// Validate checks every limit and field rule; an error wraps ErrBadCommand and one of the
// more specific errors above. It does not allocate when c is valid: it runs on every
// applied entry.
func (c *Command) Validate() error {
	if c.isNoop() {
		return nil
	}
	if len(c.Object) != IDLen {
		return fmt.Errorf("%w (got %d)", ErrBadObjectID, len(c.Object))
	}
	if len(c.Ops) > MaxOps {
		return fmt.Errorf("%w: %d > %d", ErrTooManyOps, len(c.Ops), MaxOps)
	}
	for i := range c.Ops {
		if err := c.Ops[i].validate(); err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
	}
	switch len(c.Client) {
	case 0:
		if c.Seq != 0 || c.Ack != 0 {
			return fmt.Errorf("%w: seq or ack without a client", ErrBadClient)
		}
	case ClientIDLen:
		if c.Seq == 0 {
			return fmt.Errorf("%w: seq must be > 0", ErrBadClient)
		}
		if c.Ack > c.Seq {
			// The call carrying Ack is itself unanswered, so Ack cannot pass it.
			return fmt.Errorf("%w: ack %d > seq %d", ErrBadClient, c.Ack, c.Seq)
		}
	default:
		return fmt.Errorf("%w: client ID of %d bytes", ErrBadClient, len(c.Client))
	}
	if len(c.Result) > MaxResultSize {
		return fmt.Errorf("%w: %d > %d", ErrResultTooLarge, len(c.Result), MaxResultSize)
	}
	return nil
}

func (o *Op) validate() error {
	switch o.Kind {
	case OpPut, OpDelete:
		if len(o.Key) == 0 {
			return fmt.Errorf("%w: %v with empty key", ErrBadOp, o.Kind)
		}
		if len(o.Key) > MaxKeySize {
			return fmt.Errorf("%w: %d > %d", ErrKeyTooLarge, len(o.Key), MaxKeySize)
		}
		if o.Kind == OpPut && len(o.Value) > MaxValueSize {
			return fmt.Errorf("%w: %d > %d", ErrValueTooLarge, len(o.Value), MaxValueSize)
		}
		if o.Kind == OpDelete && len(o.Value) != 0 {
			return fmt.Errorf("%w: delete with a value", ErrBadOp)
		}
		if o.Alarm != 0 {
			return fmt.Errorf("%w: %v with an alarm", ErrBadOp, o.Kind)
		}
	case OpDeleteAll, OpSetAlarm, OpDeleteAlarm:
		if len(o.Key) != 0 || len(o.Value) != 0 {
			return fmt.Errorf("%w: %v with a key or value", ErrBadOp, o.Kind)
		}
		if o.Kind != OpSetAlarm && o.Alarm != 0 {
			return fmt.Errorf("%w: %v with an alarm", ErrBadOp, o.Kind)
		}
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrBadOp, uint8(o.Kind))
	}
	return nil
}

// EncodeCommand validates c and encodes it with msgpack (compact integers). The encoding
// is deterministic: the same Command always gives the same bytes.
func EncodeCommand(c *Command) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return appendCommand(make([]byte, 0, encodedSizeHint(c)), c), nil
}

// encodedSizeHint is an upper bound of the encoded size, so encoding allocates once.
func encodedSizeHint(c *Command) int {
	n := 96 + len(c.Object) + len(c.Client) + len(c.Result)
	for i := range c.Ops {
		n += 32 + len(c.Ops[i].Key) + len(c.Ops[i].Value)
	}
	return n
}

// DecodeCommand decodes a command encoded by EncodeCommand and validates it. Any malformed
// input gives an error wrapping ErrBadCommand; it never panics and never allocates more
// than a small multiple of len(b).
//
// The byte slices of the returned Command alias b: b must not be modified while the
// Command is in use.
func DecodeCommand(b []byte) (*Command, error) {
	c := new(Command)
	if err := decodeCommand(b, c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}
