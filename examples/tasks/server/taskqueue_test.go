package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/client"
	"github.com/duro-db/duro/objects"
	"github.com/duro-db/duro/transport"
)

// clock is a settable Options.Now, so lease expiry is decided by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// queueEnv is a one-node cluster serving TaskQueue (registered by this package's init in
// the default registry, as in the real program) and a client of it.
type queueEnv struct {
	t     *testing.T
	clock *clock
	cl    *client.Client
}

func newQueueEnv(t *testing.T) *queueEnv {
	t.Helper()
	mux, err := transport.Listen("127.0.0.1:0", transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	srv, err := duro.Start(context.Background(), duro.Config{
		ID: "n1", DataDir: t.TempDir(), Peers: []duro.Peer{{ID: "n1", Addr: mux.Addr().String()}},
		Groups: 1, Replicas: 1, Slots: 16, NoSync: true, Mux: mux,
		Timing:  duro.Timing{HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond},
		Objects: objects.Options{Now: clk.Now, IdleTimeout: 24 * time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	cl, err := client.Dial(ctx, []string{srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return &queueEnv{t: t, clock: clk, cl: cl}
}

// queue returns a stub of a fresh queue.
func (e *queueEnv) queue() *client.Stub {
	ns := e.cl.Namespace("TaskQueue")
	return ns.Get(ns.NewUniqueID())
}

// call calls method and decodes the result into a new Out.
func call[Out any](t *testing.T, q *client.Stub, method string, in any) (Out, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return client.Call[Out](ctx, q, method, in)
}

// must is call for a call that has to succeed.
func must[Out any](t *testing.T, q *client.Stub, method string, in any) Out {
	t.Helper()
	out, err := call[Out](t, q, method, in)
	if err != nil {
		t.Fatalf("%s(%+v): %v", method, in, err)
	}
	return out
}

// refused asserts that a call fails with a handler error containing want.
func refused(t *testing.T, q *client.Stub, method string, in any, want string) {
	t.Helper()
	_, err := call[struct{}](t, q, method, in)
	var he *client.HandlerError
	if !errors.As(err, &he) || !strings.Contains(he.Message, want) {
		t.Fatalf("%s(%+v): want a handler error with %q, got %v", method, in, want, err)
	}
}

func claimID(t *testing.T, q *client.Stub, worker string, lease time.Duration) uint64 {
	t.Helper()
	r := must[ClaimResult](t, q, "Claim", ClaimArgs{Worker: worker, LeaseMs: lease.Milliseconds()})
	if r.Task == nil {
		return 0
	}
	if r.Task.Worker != worker || r.Task.State != StateClaimed {
		t.Fatalf("Claim by %s returned %+v", worker, r.Task)
	}
	return r.Task.ID
}

func TestTaskQueue(t *testing.T) {
	e := newQueueEnv(t)

	t.Run("PushMany rolls back only the refused titles", func(t *testing.T) {
		q := e.queue()
		long := strings.Repeat("x", MaxTitle+1)
		r := must[PushManyResult](t, q, "PushMany", PushManyArgs{Titles: []string{"a", "", long, "b", " "}})
		if len(r.Pushed) != 2 || r.Pushed[0].ID != 1 || r.Pushed[1].ID != 2 || len(r.Rejected) != 3 {
			t.Fatalf("got %+v, want a=#1, b=#2 and three rejections", r)
		}
		// The rejected titles used no ID: the counter write inside their Transaction was
		// undone while the call's other writes stayed.
		if got := must[Task](t, q, "Push", PushArgs{Title: "c"}); got.ID != 3 {
			t.Fatalf("Push after PushMany got ID %d, want 3", got.ID)
		}
		refused(t, q, "Push", PushArgs{Title: ""}, "empty title")
		refused(t, q, "PushMany", PushManyArgs{Titles: make([]string, MaxPushMany+1)}, "at most")
		if got := must[Task](t, q, "Push", PushArgs{Title: "d"}); got.ID != 4 {
			t.Fatalf("a refused Push used an ID: next got %d, want 4", got.ID)
		}
	})

	t.Run("Claim takes expired leases first, then the oldest pending", func(t *testing.T) {
		q := e.queue()
		must[PushManyResult](t, q, "PushMany", PushManyArgs{Titles: []string{"1", "2", "3", "4"}})
		steps := []struct {
			worker  string
			lease   time.Duration
			advance time.Duration // before the claim
			want    uint64        // 0: nothing to claim
		}{
			{"w1", 10 * time.Second, 0, 1},
			{"w2", 5 * time.Second, 0, 2},
			{"w3", 20 * time.Second, 0, 3},
			{"w4", time.Minute, 4 * time.Second, 4}, // no lease has run out yet
			{"w5", time.Minute, 0, 0},               // queue empty
			{"w6", time.Minute, time.Second, 2},     // w2's lease ends first, exactly now
			{"w7", time.Minute, 6 * time.Second, 1}, // then w1's
			{"w8", time.Minute, 0, 0},               // w3's has 9s to go
		}
		for _, s := range steps {
			e.clock.advance(s.advance)
			if got := claimID(t, q, s.worker, s.lease); got != s.want {
				t.Fatalf("Claim by %s got task %d, want %d", s.worker, got, s.want)
			}
		}
		if r := must[ClaimResult](t, q, "Claim", ClaimArgs{Worker: "w9"}); r.Task != nil {
			t.Fatalf("Claim stole a live lease: %+v", r.Task)
		}
		refused(t, q, "Claim", ClaimArgs{}, "worker is required")
		refused(t, q, "Claim", ClaimArgs{Worker: "w", LeaseMs: -1}, "lease_ms")
	})

	t.Run("Done only by the current claimant", func(t *testing.T) {
		q := e.queue()
		must[PushManyResult](t, q, "PushMany", PushManyArgs{Titles: []string{"1", "2"}})
		claimID(t, q, "ann", time.Second)
		refused(t, q, "Done", DoneArgs{ID: 1, Worker: "bob"}, "claimed by ann")
		refused(t, q, "Done", DoneArgs{ID: 2, Worker: "ann"}, "is pending")
		refused(t, q, "Done", DoneArgs{ID: 9, Worker: "ann"}, "no task 9")

		// ann's lease has run out but nobody took the task: her Done still counts, and the
		// expired lease is gone with it (nobody can claim task 1 again).
		e.clock.advance(2 * time.Second)
		if got := must[Task](t, q, "Done", DoneArgs{ID: 1, Worker: "ann"}); got.State != StateDone {
			t.Fatalf("Done returned %+v", got)
		}
		refused(t, q, "Done", DoneArgs{ID: 1, Worker: "ann"}, "is done")
		if got := claimID(t, q, "bob", time.Second); got != 2 {
			t.Fatalf("bob claimed %d, want 2 (1 is done)", got)
		}

		// Once bob's lease ran out and cat took the task over, bob may no longer finish it.
		e.clock.advance(2 * time.Second)
		if got := claimID(t, q, "cat", time.Minute); got != 2 {
			t.Fatalf("cat claimed %d, want 2 (bob's lease ran out)", got)
		}
		refused(t, q, "Done", DoneArgs{ID: 2, Worker: "bob"}, "claimed by cat")
	})

	t.Run("List filters by state and limits", func(t *testing.T) {
		q := e.queue()
		must[PushManyResult](t, q, "PushMany", PushManyArgs{Titles: []string{"1", "2", "3", "4", "5"}})
		claimID(t, q, "w", time.Minute)
		claimID(t, q, "w", time.Minute)
		must[Task](t, q, "Done", DoneArgs{ID: 2, Worker: "w"})
		tests := []struct {
			in   ListArgs
			want []uint64
		}{
			{ListArgs{}, []uint64{1, 2, 3, 4, 5}},
			{ListArgs{State: StatePending}, []uint64{3, 4, 5}},
			{ListArgs{State: StatePending, Limit: 2}, []uint64{3, 4}},
			{ListArgs{State: StateClaimed}, []uint64{1}},
			{ListArgs{State: StateDone}, []uint64{2}},
			{ListArgs{Limit: 1}, []uint64{1}},
		}
		for _, tc := range tests {
			r := must[ListResult](t, q, "List", tc.in)
			var got []uint64
			for _, task := range r.Tasks {
				if tc.in.State != "" && task.State != tc.in.State {
					t.Errorf("List(%+v) returned %+v", tc.in, task)
				}
				got = append(got, task.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("List(%+v) = %v, want %v", tc.in, got, tc.want)
			}
		}
		refused(t, q, "List", ListArgs{State: "lost"}, "unknown state")
		refused(t, q, "List", ListArgs{Limit: MaxListSize + 1}, "limit")
	})
}
