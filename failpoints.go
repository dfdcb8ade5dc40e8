package duro

// Hidden fault switches for the fault tests and the Jepsen harness (bench/jepsen). They
// exist so that those tools can show (1) that the output gate holds when a leader dies
// between running a call and committing its command, and (2) that the harness catches a
// broken guarantee. They are compiled in only with -tags failpoints (failpoints_on.go),
// as bbolt and etcd do with theirs: a release build refuses the variables below instead
// of running without the fault a test asked for, and its write path makes one nil check.
// Start reads them from the environment, once.
//
//	DURO_FAILPOINTS=crash-before-propose=PATH  the first write whose command is about to
//	                                           be handed to raft while PATH exists removes
//	                                           PATH and SIGKILLs this process: the call
//	                                           ran, nothing was submitted.
//	DURO_FAILPOINTS=crash-before-commit=PATH   the same, just after the command was
//	                                           handed to raft and before it committed.
//	DURO_UNSAFE=ack-before-commit              BREAKS LINEARIZABILITY: writes are
//	                                           acknowledged as soon as they are submitted.
//	DURO_UNSAFE=stale-reads                    BREAKS LINEARIZABILITY: read-only calls
//	                                           skip the ReadIndex leadership check.
//
// Several entries are separated by commas. Removing PATH is what makes a failpoint fire
// once per arming across the whole cluster: only one process can remove the file.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/objects"
)

// Environment variables holding the fault switches.
const (
	EnvFailpoints = "DURO_FAILPOINTS"
	EnvUnsafe     = "DURO_UNSAFE"
)

// faultSwitches is what the environment asked for. The zero value turns everything off.
type faultSwitches struct {
	crashBeforePropose string // arming file; "" = off
	crashBeforeCommit  string
	ackBeforeCommit    bool
	staleReads         bool
}

func parseFaults(failpoints, unsafe string) (faultSwitches, error) {
	var f faultSwitches
	for _, item := range strings.Split(failpoints, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		name, path, _ := strings.Cut(item, "=")
		if path == "" {
			return f, fmt.Errorf("%s: %q needs =PATH (the arming file)", EnvFailpoints, item)
		}
		switch name {
		case "crash-before-propose":
			f.crashBeforePropose = path
		case "crash-before-commit":
			f.crashBeforeCommit = path
		default:
			return f, fmt.Errorf("%s: unknown failpoint %q", EnvFailpoints, name)
		}
	}
	for _, item := range strings.Split(unsafe, ",") {
		switch strings.TrimSpace(item) {
		case "":
		case "ack-before-commit":
			f.ackBeforeCommit = true
		case "stale-reads":
			f.staleReads = true
		default:
			return f, fmt.Errorf("%s: unknown switch %q", EnvUnsafe, item)
		}
	}
	return f, nil
}

// fire reports whether the failpoint armed by path fires now, disarming it if so.
func fire(path string) bool { return path != "" && os.Remove(path) == nil }

// crashNow ends the process as abruptly as a power cut would, as far as the process is
// concerned: no deferred calls, no flush, no leadership hand-off.
func crashNow(why string) {
	fmt.Fprintf(os.Stderr, "duro: failpoint %s fired: SIGKILL\n", why)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is delivered asynchronously; never run on
}

// propose is group.Submit with the fault switches applied, if any are on. Only calls
// from an SDK client (cmd.Client set) trigger the crash failpoints, so activation and
// alarms do not consume an arming meant for a call.
func (a *group) propose(term uint64, cmd *fsm.Command) objects.Proposal {
	faults := a.faults
	if faults == nil {
		return a.g.Submit(term, cmd)
	}
	if cmd.Client != nil && fire(faults.crashBeforePropose) {
		crashNow("crash-before-propose")
	}
	p := a.g.Submit(term, cmd)
	if cmd.Client != nil && fire(faults.crashBeforeCommit) {
		crashNow("crash-before-commit")
	}
	if !faults.ackBeforeCommit {
		return p
	}
	// The lie the harness must catch: report the command applied, at the version and with
	// the result the runtime expects, before raft has even replicated it.
	return objects.Settled(&fsm.Result{Version: cmd.Version, Result: cmd.Result}, nil)
}

// readIndex is group.ReadIndex with the fault switches applied.
func (a *group) readIndex(ctx context.Context) error {
	if a.faults != nil && a.faults.staleReads {
		return nil
	}
	return a.g.ReadIndex(ctx)
}
