package objects

import (
	"context"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/objid"
)

// Group is what the runtime needs of the Raft group holding an object: its log, its
// committed state and its leadership. The node implements it on top of hashicorp/raft;
// tests use an in-memory one. Every method may be called from any goroutine.
//
// The runtime's correctness rests on these contracts; an implementation must keep each.
type Group interface {
	// Submit submits cmd to the group's log for term and returns without waiting for the
	// commit; the Proposal reports the outcome. The runtime builds each command on the
	// writes of the commands it submitted before, so these rules are what keeps an
	// object's committed state equal to what its handlers saw:
	//
	//   - Term: cmd is submitted only if this node leads term (the term LeaderTerm
	//     reported); otherwise the Proposal fails at once and cmd is never applied. A
	//     command submitted for term T is appended in term T or never.
	//   - Order: commands whose Submit calls are ordered by happens-before enter the log
	//     in that order. The runtime calls Submit for one object from one goroutine, in
	//     the order the calls ran, and the next call runs before this one commits.
	//   - Prefix: of the commands submitted for one term, those ever applied form a prefix
	//     of the submission order. Raft gives this for entries one leader appends in one
	//     term, as long as no submission is dropped while a later one is accepted: a
	//     command refused after the term check (enqueue timeout, leadership transfer in
	//     progress, shutdown) must end the term for LeaderTerm before its Wait returns.
	//
	// ctx bounds only the submission (waiting for room in the log's queue); the runtime
	// passes a context that ends when the Runtime closes. Neither side modifies cmd after
	// the call: its slices are shared with the runtime's view of in-flight writes.
	Submit(ctx context.Context, term uint64, cmd *fsm.Command) Proposal

	// ReadIndex returns nil once this node has confirmed, after the call began, that it
	// still leads the group, and has applied every entry committed before the call. An
	// error (not leader, shutdown) is returned to the caller unchanged, so an error that
	// carries a leader hint keeps it.
	ReadIndex(ctx context.Context) error

	// View runs fn on a consistent snapshot of the locally applied state. Everything
	// applied before a Proposal's Wait returned successfully is visible to a View that
	// starts afterwards.
	View(fn func(tx *fsm.Tx) error) error

	// LeaderTerm reports whether this node leads the group and is ready to serve: it has
	// applied everything committed in earlier terms (its Barrier of this term returned).
	// While ok is true the term does not change; any loss of leadership makes ok false or
	// the term different from then on.
	LeaderTerm() (term uint64, ok bool)
}

// Proposal is the outcome of one Submit.
type Proposal interface {
	// Done is closed once the outcome is known; Wait then returns it without blocking. It
	// must be closed eventually: at the latest when the node loses leadership or stops.
	// The executor waits on it together with new calls, so no goroutine waits per command.
	Done() <-chan struct{}
	// Wait blocks until Done is closed and returns the outcome:
	//   - (res, nil): the command committed and has been applied on this node; res is what
	//     the state machine returned (res.Err set if it rejected the command, res.Duplicate
	//     if the request had been applied before).
	//   - (nil, err): the command has not been applied here, and either it never will be, or
	//     the term it was submitted for is over (LeaderTerm no longer reports it). An error
	//     carrying a leader hint is returned to the caller unchanged.
	Wait() (*fsm.Result, error)
}

// Settled returns a Proposal whose outcome is known already: a Group that applies a
// command before Submit returns, or refuses it at once, answers with one.
func Settled(res *fsm.Result, err error) Proposal {
	p := &settled{res: res, err: err, done: make(chan struct{})}
	close(p.done)
	return p
}

type settled struct {
	res  *fsm.Result
	err  error
	done chan struct{}
}

func (p *settled) Done() <-chan struct{}      { return p.done }
func (p *settled) Wait() (*fsm.Result, error) { return p.res, p.err }

// Locator routes objects to groups.
type Locator interface {
	// Locate returns the group holding id if this node leads it. Otherwise it returns an
	// error that the runtime passes to the caller unchanged (it carries the leader hint).
	// It must return the same comparable Group value (a pointer) for the same group, so
	// the runtime notices when an object moves to another group.
	Locate(id objid.ID) (Group, error)
}
