// Package objects is the durable-object runtime users program against: Register a class
// (a Go type and its typed methods), and the Runtime runs one instance per object ID on
// the node that leads the object's Raft group, with transactional Storage whose writes are
// replicated before any reply is released.
//
//	type Counter struct{}
//
//	func (c *Counter) Add(ctx *objects.Context, n int) (int, error) {
//		v, _, err := objects.GetAs[int](ctx.Storage(), "n")
//		if err != nil {
//			return 0, err
//		}
//		return v + n, ctx.Storage().Put("n", v+n)
//	}
//
//	objects.Register("Counter", func() *Counter { return new(Counter) },
//		objects.Method("Add", (*Counter).Add))
//
// Arguments and results are msgpack on the wire (JSON when the request says so); struct
// fields are named by their `json` tags in both.
//
// # Execution of one object (the write path, steps 2–6 in ARCHITECTURE.md)
//
// Each object in memory has an executor: a goroutine that exists while the object has
// calls queued or in flight. It takes calls one at a time, runs the handler, and turns the
// call's buffered writes into one fsm.Command, which it submits to the group and does not
// wait for: the next call runs while the command commits (pipelining). Calls are answered
// strictly in the order they ran.
//
// Invariants (the code names them where it keeps them):
//
//  1. Input gate. At most one handler (or Init) of an object runs at a time, and only on
//     the executor goroutine (the caller whose call found the object idle, until that
//     call is answered; then a goroutine of its own). The runtime holds at most MaxQueue
//     calls per object; more are refused with ErrOverloaded.
//  2. One call, one command. A call's writes are buffered in Storage and submitted as one
//     command, all or nothing. A handler that returns an error or panics writes nothing.
//  3. Log order is execution order. Commands are submitted from the executor goroutine in
//     the order their calls ran; Group's Order contract keeps that order in the log.
//  4. Output gate. A call is answered only after every call that ran before it was
//     answered, and: a writing call after its command was applied; any other call (read
//     only, failed, duplicate in flight) after a ReadIndex begun after it ran. So no reply
//     reveals a write that has not committed, and no read is served by a deposed leader.
//  5. View. A handler reads the committed state overlaid with the writes of the object's
//     commands in flight (in order) and its own buffered writes. Every write is blind (a
//     value, a deletion, DeleteAll), so an overlay re-applied over committed state that
//     already contains it reads the same: the view is right whichever in-flight commands
//     have reached the committed state. A command's overlay is removed only after it was
//     applied and every earlier one was removed.
//  6. Generations. A generation is the time during which overlays build on each other. It
//     begins with an empty pipeline, settled committed state and the group's current
//     term, which every command of the generation carries to Group.Submit (a command is
//     never appended in another term). It ends (hard reset) when a command fails, is
//     rejected, is a duplicate, or skips the object's version, or when the term or group
//     changes. Ending it drops the object and the overlays and answers every call still
//     in flight ErrInstanceReset at once; no call of the next generation runs until every
//     command of the ended one has an outcome. A handler panic is a soft reset: only the
//     object is dropped; the generation goes on.
//  7. Exactly-once. A call with a Client whose (Client, Seq) is in flight on the object
//     waits for that attempt's answer; one whose (Client, Seq) is in the committed dedup
//     table gets the stored result; otherwise it runs and its command stores its result.
//     A released write is applied before it leaves the in-flight set, so a retry always
//     finds one of the two. Calls that write nothing store nothing and simply run again.
//
// Why this is enough: by Group's Term and Prefix rules, the commands of a generation that
// are ever applied are a prefix of those it submitted, in order, on the state the
// generation started from; each was computed on exactly the writes of its predecessors
// (invariants 3 and 5), so the committed state is what the handlers saw. A failure
// answers every later call ErrInstanceReset, so no reply depends on a command that may
// not apply.
//
// A command the state machine applies differently from the view (rejected as a late retry,
// fsm.ErrStaleSequence, or a Duplicate of an attempt on another leader) cannot drag the
// commands behind it along: each command carries the object version it produces
// (fsm.Command.Version, invariant 3), so the state machine rejects every later command of
// the generation with fsm.ErrVersionConflict. The runtime resets and answers their callers
// ErrInstanceReset; Stats.Inconsistent counts any that applied anyway, which the version
// check makes impossible (the tests and the Jepsen harness assert it stays 0). A call
// without a Client is at-least-once under retries.
//
// # Alarms
//
// An object's alarm (Storage.SetAlarm) is replicated state with a time index in the
// group's state machine. When the Locator is also an AlarmGroups, a scheduler per group
// this node leads loads the alarms due within AlarmLookahead (at most AlarmMaxLoaded) and
// fires each as one more event of the object's executor, so invariants 1–6 hold for it as
// for a call: an Alarm handler never overlaps the object's calls, and its writes and the
// clearing of the alarm (unless it set a new one) are one command. The event fires only
// if the object's view still has an alarm at or before the proposer's clock, which is
// the command's Time: never early, and a replaced or deleted alarm never fires. A
// failure commits a retry (the alarm moved by AlarmRetryDelay·2ⁿ and the count under a
// reserved key, "\x00duro/…", which user code cannot touch), so a new leader resumes it
// with the right RetryCount. At least once: a leader that dies before the command commits
// leaves the alarm for the next.
//
// A handler must not call its own object through the Runtime (it would wait for itself),
// and must not keep its Context or Storage beyond its return.
package objects
