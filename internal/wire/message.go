package wire

import (
	"fmt"
	"strconv"
)

// Op says what a Request asks for.
type Op uint8

// Operations. Append only: the numbers are on the wire.
const (
	// OpCall invokes a method of an object: Request.Call.
	OpCall Op = 1
	// OpTopology asks for the cluster's placement and the leaders the node knows.
	OpTopology Op = 2
	// OpStatus asks a node for its own view of its groups; the Response's Result is that
	// node's status as JSON (duro.NodeStatus), for operator tools.
	OpStatus Op = 3
)

func (o Op) String() string {
	switch o {
	case OpCall:
		return "call"
	case OpTopology:
		return "topology"
	case OpStatus:
		return "status"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Request is one client request. A node that does not know Op answers it with
// CodeBadRequest rather than dropping the connection, so newer clients degrade cleanly.
type Request struct {
	StreamID uint64
	Op       Op
	Call     Call // meaningful when Op == OpCall
}

// Call invokes Method on the object ID of Class.
type Call struct {
	Class  string
	ID     [IDLen]byte
	Name   string // the name ID was derived from, when the caller minted it from one
	Method string
	Args   []byte // msgpack, or JSON when JSON is set
	JSON   bool   // Args and the result are JSON instead of msgpack

	// Client and Seq identify the call for exactly-once execution: a retry carries the
	// same pair, and the node returns the first outcome instead of running it again.
	// A zero Client means no deduplication. Ack is the lowest Seq of this client still
	// waiting for an answer: the node may forget results of every Seq below it.
	Client [ClientIDLen]byte
	Seq    uint64
	Ack    uint64

	// TimeoutMillis is how long the client will wait; the node gives up after it. Zero
	// means the node's default.
	TimeoutMillis uint64

	// FirstAttempt means no earlier attempt of this call (Client, Seq) was sent to any
	// node, so none can have been applied: the node need not look it up in the dedup
	// table. The state machine still refuses to apply a duplicate, whatever this says.
	// Absent (a client before this field) reads as false.
	FirstAttempt bool
}

// Sizes of the fixed-length fields.
const (
	IDLen       = 32
	ClientIDLen = 16
)

// Response answers the Request with the same StreamID. Exactly one of Result (for a
// successful OpCall; it may be empty), Err and Topology is meaningful.
type Response struct {
	StreamID uint64
	Result   []byte
	Err      *Error
	Topology *Topology
}

// Code classifies an Error. Append only: the numbers are on the wire.
type Code uint16

// Error codes.
const (
	// CodeNotLeader: the node does not serve the object's group; nothing was done.
	// Error.Group, LeaderID and LeaderAddr carry the leader the node knows of, if any.
	CodeNotLeader Code = 1
	// CodeUnknownOutcome: the call may or may not have taken effect (leadership lost,
	// deadline passed while committing). A retry with the same Client and Seq is safe.
	CodeUnknownOutcome Code = 2
	// CodeNoSuchClass: no class of that name is registered on the node.
	CodeNoSuchClass Code = 3
	// CodeNoSuchMethod: the class has no method of that name.
	CodeNoSuchMethod Code = 4
	// CodeInvalidID: the object ID is malformed.
	CodeInvalidID Code = 5
	// CodeWrongClass: the object ID was minted for another class.
	CodeWrongClass Code = 6
	// CodeBadArgument: the arguments do not decode into the method's input type.
	CodeBadArgument Code = 7
	// CodeKeyTooLarge, CodeValueTooLarge, CodeTooManyKeys: the handler broke a storage
	// limit; nothing of the call was written.
	CodeKeyTooLarge   Code = 8
	CodeValueTooLarge Code = 9
	CodeTooManyKeys   Code = 10
	// CodeTooLarge: the request or its result exceeds a size limit of the protocol.
	CodeTooLarge Code = 11
	// CodeOverloaded: the node or the object refused the call to protect itself; it did
	// not run. Retrying immediately makes things worse.
	CodeOverloaded Code = 12
	// CodeInstanceReset: an earlier call of the same object failed to commit, so this
	// one was abandoned before taking effect. Retryable.
	CodeInstanceReset Code = 13
	// CodeHandler: the method returned an error or panicked; Message says which.
	CodeHandler Code = 14
	// CodeUnavailable: the node cannot serve now (shutting down, group not ready);
	// nothing was done. Retryable elsewhere or later.
	CodeUnavailable Code = 15
	// CodeInternal: a bug or an unexpected failure on the node.
	CodeInternal Code = 16
	// CodeBadRequest: the request is well-formed msgpack but asks for something the
	// node does not support (an unknown Op, a missing class or method name).
	CodeBadRequest Code = 17
	// CodeNoSpace: the node's disk is below its reserve, so it refuses calls that store
	// something; nothing of the call was written. Retryable once space is freed: reads
	// and deletes go on meanwhile.
	CodeNoSpace Code = 18
)

var codeNames = map[Code]string{
	CodeNotLeader:      "not leader",
	CodeUnknownOutcome: "unknown outcome",
	CodeNoSuchClass:    "no such class",
	CodeNoSuchMethod:   "no such method",
	CodeInvalidID:      "invalid ID",
	CodeWrongClass:     "ID of another class",
	CodeBadArgument:    "bad argument",
	CodeKeyTooLarge:    "key too large",
	CodeValueTooLarge:  "value too large",
	CodeTooManyKeys:    "too many keys",
	CodeTooLarge:       "too large",
	CodeOverloaded:     "overloaded",
	CodeInstanceReset:  "instance reset",
	CodeHandler:        "handler error",
	CodeUnavailable:    "unavailable",
	CodeInternal:       "internal error",
	CodeBadRequest:     "bad request",
	CodeNoSpace:        "no space",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return "code(" + strconv.Itoa(int(c)) + ")"
}

// Error is a failed call as the node reports it.
type Error struct {
	Code Code
	// Message is what the Code does not say, or "". Clients put their own words for the
	// Code in front of it, so it must not repeat them: with CodeNoSuchClass it is
	// `"Nope"`, not `no such class: "Nope"`. With CodeHandler it is the handler's error.
	Message string
	// Group, LeaderID and LeaderAddr are set with CodeNotLeader: the object's group and
	// the leader the node knows of ("" when it knows none).
	Group      uint64
	LeaderID   string
	LeaderAddr string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.String()
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Topology is the cluster's placement as one node sees it.
type Topology struct {
	ClusterID string
	// Slots maps slot → data group; len(Slots) is the cluster's slot count.
	Slots   []uint64
	Members []Member
	// Leaders maps group → node ID, for the groups whose leader the answering node
	// knows (at least those it hosts a replica of).
	Leaders map[uint64]string
}

// Member is one node of the cluster and the address clients dial.
type Member struct {
	ID   string
	Addr string
}
