package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/duro-db/duro/internal/buildinfo"
)

// Exit codes. Scripts can tell a call worth retrying (exitRetryable) from one that will
// fail again (exitFailed) and from a mistake on the command line (exitUsage).
const (
	exitOK        = 0
	exitFailed    = 1
	exitUsage     = 2
	exitRetryable = 75 // EX_TEMPFAIL from sysexits.h
)

// exitError carries an exit code with a one-line message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// doing puts what the CLI was doing in front of err, an error of the SDK, whose text starts
// with "duro: ": run prints that once, at the front of the line, not in the middle.
func doing(what string, err error) error { return &doingError{what, err} }

type doingError struct {
	what string
	err  error
}

func (e *doingError) Error() string {
	return e.what + ": " + strings.TrimPrefix(e.err.Error(), "duro: ")
}
func (e *doingError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:    "duro",
		Usage:   "a Raft-replicated store of durable objects",
		Version: buildinfo.Get().Version, // --version prints more: see printVersion
		Description: "duro runs named, single-threaded objects with transactional storage on a 3- or 5-node\n" +
			"cluster; every write is replicated to a quorum before the caller hears back.\n\n" +
			"Start here:   duro dev                      (a 3-node cluster in this process)\n" +
			"Then:         duro call Counter hello Add 1",
		Reader:          stdin,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Commands: []*cli.Command{
			serverCommand(),
			devCommand(),
			callCommand(),
			statusCommand(),
			membersCommand(),
			groupsCommand(),
			healthCommand(),
			jepsenCommand(),
			benchCommand(),
		},
		// Bad flags are reported by run as one line, not with the whole help text.
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return &exitError{code: exitUsage, err: err}
		},
		// Without a command's name, the app's own Action runs: help, or an unknown command.
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageErr("unknown command %q (see duro --help)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
}

// run executes the CLI and returns the process exit code. Errors are printed as one line.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	app := newApp(stdin, stdout, stderr)
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
	}
	if err := app.RunContext(ctx, args); err != nil {
		fmt.Fprintf(stderr, "duro: %s\n", oneLine(err))
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return exitFailed
	}
	return exitOK
}

// oneLine flattens err to one line, without the "duro: " its own message may start with
// (the SDK's errors do), since run prints that prefix itself. Lines become clauses
// separated by "; ": errors.Join puts one error on each line.
func oneLine(err error) string {
	var clauses []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			clauses = append(clauses, l)
		}
	}
	return strings.TrimPrefix(strings.Join(clauses, "; "), "duro: ")
}
