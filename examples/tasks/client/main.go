// Command client drives a TaskQueue (see ../server) through the duro Go SDK: it creates a
// fresh queue, pushes tasks, lets workers claim and finish them, lets a lease run out,
// and prints each step. It checks every answer against what the queue must do and exits
// with status 1 at the first surprise, so it doubles as a smoke test of a cluster.
//
//	go run ./examples/tasks/client -endpoints 127.0.0.1:7201,127.0.0.1:7202,127.0.0.1:7203
//
// The client does not import the server's package: all it needs is the JSON shape of the
// arguments and results (the SDK encodes struct fields by their `json` tags, as the server
// decodes them), which it declares itself, as a client in another repository would.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/duro-db/duro/client"
)

// The TaskQueue's wire types, as far as this client uses them.
type (
	task struct {
		ID     uint64 `json:"id"`
		Title  string `json:"title"`
		State  string `json:"state"`
		Worker string `json:"worker"`
		Claims int    `json:"claims"`
	}
	pushManyArgs struct {
		Titles []string `json:"titles"`
	}
	pushManyResult struct {
		Pushed   []task            `json:"pushed"`
		Rejected map[string]string `json:"rejected"`
	}
	claimArgs struct {
		Worker  string `json:"worker"`
		LeaseMs int64  `json:"lease_ms"`
	}
	claimResult struct {
		Task *task `json:"task"`
	}
	doneArgs struct {
		ID     uint64 `json:"id"`
		Worker string `json:"worker"`
	}
	listResult struct {
		Tasks []task `json:"tasks"`
	}
)

func main() {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	endpoints := fs.String("endpoints", "127.0.0.1:7201,127.0.0.1:7202,127.0.0.1:7203", "any of the cluster's nodes, host:port,...")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	fs.Parse(os.Args[1:])

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := demo(ctx, strings.Split(*endpoints, ","), os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		os.Exit(1)
	}
}

func demo(ctx context.Context, endpoints []string, out io.Writer) error {
	c, err := client.Dial(ctx, endpoints)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close()

	// A queue of our own: a new unique ID each run, so the steps below start from an empty
	// queue. A long-lived queue would use GetByName("nightly-jobs") instead.
	queues := c.Namespace("TaskQueue")
	q := queues.Get(queues.NewUniqueID())
	fmt.Fprintf(out, "queue %s\n", q.ID())

	// PushMany: the empty title is refused on its own; the others are queued, IDs 1..3.
	pushed, err := client.Call[pushManyResult](ctx, q, "PushMany", pushManyArgs{
		Titles: []string{"write the report", "", "review the pull request", "deploy"},
	})
	if err != nil {
		return fmt.Errorf("PushMany: %w", err)
	}
	for _, t := range pushed.Pushed {
		fmt.Fprintf(out, "pushed #%d %q\n", t.ID, t.Title)
	}
	for title, why := range pushed.Rejected {
		fmt.Fprintf(out, "rejected %q: %s\n", title, why)
	}
	if len(pushed.Pushed) != 3 || pushed.Pushed[2].ID != 3 || len(pushed.Rejected) != 1 {
		return fmt.Errorf("PushMany: want #1..#3 queued and one title rejected, got %+v", pushed)
	}

	claim := func(worker string, lease time.Duration, wantID uint64) (*task, error) {
		r, err := client.Call[claimResult](ctx, q, "Claim", claimArgs{Worker: worker, LeaseMs: lease.Milliseconds()})
		switch {
		case err != nil:
			return nil, fmt.Errorf("%s: Claim: %w", worker, err)
		case r.Task == nil && wantID == 0:
			fmt.Fprintf(out, "%s found nothing to claim\n", worker)
			return nil, nil
		case r.Task == nil || r.Task.ID != wantID:
			return nil, fmt.Errorf("%s: Claim: want task #%d, got %+v", worker, wantID, r.Task)
		}
		fmt.Fprintf(out, "%s claimed #%d %q for %v (claim %d)\n", worker, r.Task.ID, r.Task.Title, lease, r.Task.Claims)
		return r.Task, nil
	}
	if _, err := claim("alice", time.Minute, 1); err != nil {
		return err
	}
	if _, err := claim("bob", time.Minute, 2); err != nil {
		return err
	}
	// carol takes a lease too short to finish in; once it has run out, the next worker to
	// claim gets her task before any pending one.
	if _, err := claim("carol", time.Millisecond, 3); err != nil {
		return err
	}
	time.Sleep(20 * time.Millisecond) // let carol's lease run out: this is the demo, not a wait for a state
	if t, err := claim("dave", time.Minute, 3); err != nil {
		return err
	} else if t.Claims != 2 {
		return fmt.Errorf("dave: want the second claim of #3, got %+v", t)
	}
	if _, err := claim("erin", time.Minute, 0); err != nil {
		return err
	}

	if _, err := client.Call[task](ctx, q, "Done", doneArgs{ID: 1, Worker: "alice"}); err != nil {
		return fmt.Errorf("alice: Done: %w", err)
	}
	fmt.Fprintln(out, "alice finished #1")
	// carol's lease ran out and dave holds #3 now: the queue refuses her Done. The refusal
	// is the handler's error, a *client.HandlerError; retrying would not change it.
	_, err = client.Call[task](ctx, q, "Done", doneArgs{ID: 3, Worker: "carol"})
	var he *client.HandlerError
	if !errors.As(err, &he) {
		return fmt.Errorf("carol: Done: want a refusal, got %v", err)
	}
	fmt.Fprintf(out, "carol cannot finish #3: %s\n", he.Message)

	list, err := client.Call[listResult](ctx, q, "List", struct{}{})
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	fmt.Fprintln(out, "tasks:")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	var states []string
	for _, t := range list.Tasks {
		fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\n", t.ID, t.State, t.Worker, t.Title)
		states = append(states, t.State+" "+t.Worker)
	}
	tw.Flush()
	if got, want := strings.Join(states, ", "), "done alice, claimed bob, claimed dave"; got != want {
		return fmt.Errorf("list: want %q, got %q", want, got)
	}
	fmt.Fprintln(out, "ok")
	return nil
}
