package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/duro-db/duro/client"
	"github.com/duro-db/duro/internal/framing"
)

// defaultEndpoints are where `duro dev` listens, so its printed commands work as pasted.
var defaultEndpoints = []string{"127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"}

func endpointsFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "endpoints", Aliases: []string{"e"},
		Usage:   "nodes to contact (any one is enough to learn the cluster), `host:port,...`",
		Value:   cli.NewStringSlice(defaultEndpoints...),
		EnvVars: []string{"DURO_ENDPOINTS"}}
}

func endpoints(c *cli.Context) []string {
	var out []string
	for _, e := range c.StringSlice("endpoints") {
		for _, p := range strings.Split(e, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func callCommand() *cli.Command {
	return &cli.Command{
		Name:      "call",
		Usage:     "call a method of an object and print its result as JSON",
		ArgsUsage: "[--id ID] CLASS [NAME] METHOD [JSON-ARGS]",
		Description: "The object is named by NAME (an ID derived from the class and the name) or by --id, the\n" +
			"64-hex-digit ID of an object of CLASS.\n\n" +
			"JSON-ARGS is the method's argument as JSON, {} if left out. As @FILE it is read from FILE,\n" +
			"as - from standard input: for a value too large for one command-line argument (128 KiB\n" +
			"on Linux) or awkward to quote.\n\n" +
			"Examples:\n" +
			"  duro call Counter hello Add 5\n" +
			"  duro call Register config Put '{\"value\": \"blue\"}'\n" +
			"  duro call Register config Put @value.json\n" +
			"  jq -n --rawfile v notes.txt '{value: $v}' | duro call Register notes Put -\n" +
			"  duro call --id 6f1c...e2 Counter Get\n\n" +
			"Flags go before CLASS: what follows it is taken as arguments.\n\n" +
			"Exit status: 0 success; 1 the call failed and retrying will not help; 2 bad usage;\n" +
			"75 the call may succeed if retried (no leader, timeout, overload of the network).\n" +
			"A retry of a writing call is safe: duro applies it exactly once.",
		Flags: []cli.Flag{
			endpointsFlag(),
			&cli.StringFlag{Name: "id", Usage: "the object's ID instead of a NAME"},
			&cli.DurationFlag{Name: "timeout", Usage: "give up after this long (retries included)", Value: 10 * time.Second},
		},
		Action: runCall,
	}
}

func runCall(c *cli.Context) error {
	args := c.Args().Slice()
	want := "CLASS NAME METHOD [JSON-ARGS]"
	if c.String("id") != "" {
		want = "--id ID CLASS METHOD [JSON-ARGS]"
	}
	min := 3
	if c.String("id") != "" {
		min = 2
	}
	if len(args) < min || len(args) > min+1 {
		return usageErr("call wants %s, got %d argument(s)", want, len(args))
	}
	class := args[0]
	rest := args[1:]
	var name string
	if c.String("id") == "" {
		name, rest = rest[0], rest[1:]
	}
	method := rest[0]
	in := []byte("{}")
	if len(rest) == 2 {
		var err error
		if in, err = jsonArgs(c.App.Reader, rest[1]); err != nil {
			return err
		}
	}
	// Check --id before dialling: a typo is a usage error, not an unreachable cluster.
	var id client.ID
	if s := c.String("id"); s != "" {
		if err := id.UnmarshalText([]byte(s)); err != nil {
			return usageErr("--id: %v", err)
		}
		if err := id.Check(class); err != nil {
			return usageErr("--id: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	cl, err := client.Dial(ctx, endpoints(c))
	if err != nil {
		return &exitError{code: exitRetryable, err: err} // it names each endpoint and why it failed
	}
	defer cl.Close()
	ns := cl.Namespace(class)
	var stub *client.Stub
	if name != "" {
		stub = ns.GetByName(name)
	} else {
		stub = ns.Get(id)
	}
	out, err := stub.CallJSON(ctx, method, in)
	if err != nil {
		return callError(err)
	}
	fmt.Fprintln(c.App.Writer, string(out))
	return nil
}

// jsonArgs returns the call's arguments given as JSON-ARGS: arg itself, the contents of
// the file @FILE names, or standard input's for "-". No JSON text starts with '@' or is
// a lone '-', so neither form hides a value one could mean.
func jsonArgs(stdin io.Reader, arg string) ([]byte, error) {
	var from string
	var r io.Reader
	switch {
	case arg == "-":
		from, r = "standard input", stdin
	case strings.HasPrefix(arg, "@"):
		from = arg[1:]
		f, err := os.Open(from)
		if err != nil {
			return nil, usageErr("JSON-ARGS: %v", err) // "open FILE: why"
		}
		defer f.Close()
		r = f
	default:
		if !json.Valid([]byte(arg)) {
			return nil, usageErr("JSON-ARGS is not valid JSON: %s", arg)
		}
		return []byte(arg), nil
	}
	// Beyond a frame, no node would take it: refuse before reading all of a huge file.
	in, err := io.ReadAll(io.LimitReader(r, framing.MaxFrameSize+1))
	switch {
	case err != nil:
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			return nil, usageErr("JSON-ARGS: %v", err) // "read FILE: why"
		}
		return nil, usageErr("JSON-ARGS: reading %s: %v", from, err)
	case len(in) > framing.MaxFrameSize:
		return nil, usageErr("JSON-ARGS: %s holds more than %d MiB, the most one call can carry", from, framing.MaxFrameSize>>20)
	case len(bytes.TrimSpace(in)) == 0:
		return nil, usageErr("JSON-ARGS: %s is empty", from)
	}
	var v json.RawMessage
	if err := json.Unmarshal(in, &v); err != nil {
		return nil, usageErr("JSON-ARGS: %s is not valid JSON: %v", from, err)
	}
	return in, nil
}

// callError maps a client error to an exit code.
func callError(err error) error {
	var he *client.HandlerError
	switch {
	case errors.As(err, &he):
		return &exitError{code: exitFailed, err: fmt.Errorf("handler error: %s", he.Message)}
	case client.IsRetryable(err), errors.Is(err, client.ErrUnknownOutcome), errors.Is(err, context.DeadlineExceeded):
		return &exitError{code: exitRetryable, err: err}
	default:
		return &exitError{code: exitFailed, err: err}
	}
}
