package jepsen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Fault is one injected fault as it happened: what, to whom, and when (since the start of
// the run). End is zero while the fault lasts.
type Fault struct {
	Kind   string        `json:"kind"`   // kill, pause, partition, slow, reset, powercut
	Detail string        `json:"detail"` // e.g. "isolate leader n2 of group 3"
	Start  time.Duration `json:"start"`
	End    time.Duration `json:"end"`
}

// Nemeses lists the fault kinds --nemesis accepts; "all" means every one of them but
// powercut, "none" none. powercut needs nodes built with -tags failpoints (their disk is
// simulated), so it is asked for by name.
var Nemeses = []string{"kill", "pause", "partition", "slow", "reset", "powercut"}

// ParseNemeses turns a comma-separated list into fault kinds.
func ParseNemeses(s string) ([]string, error) {
	var out []string
	for _, k := range strings.Split(s, ",") {
		switch k = strings.TrimSpace(k); k {
		case "", "none":
		case "all":
			for _, k := range Nemeses {
				if k != "powercut" {
					out = append(out, k)
				}
			}
		default:
			if !slices.Contains(Nemeses, k) {
				return nil, fmt.Errorf("jepsen: unknown nemesis %q (%s, all, none)", k, strings.Join(Nemeses, ", "))
			}
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Nemesis injects faults into a cluster on a schedule: quiet for a while, one fault for a
// while, heal, again. Every choice comes from Rng, so a seed fixes the schedule (the
// timing of the cluster's reactions, e.g. which node leads, is not the harness's to fix).
type Nemesis struct {
	Cluster *Cluster
	Kinds   []string
	Rng     *rand.Rand
	// Quiet and Active bound the random lengths of the two phases.
	Quiet, Active [2]time.Duration
	// Since is the clock faults are stamped with (the history's).
	Since func() time.Duration
	// Log receives one line per fault (progress on screen); may be nil.
	Log func(string)
	// Groups is the number of data groups, to pick a busy one's leader.
	Groups int

	faults []Fault
}

// Run injects faults until ctx ends, then heals. It returns the faults injected.
func (n *Nemesis) Run(ctx context.Context) []Fault {
	if len(n.Kinds) == 0 {
		<-ctx.Done()
		return nil
	}
	for {
		if !n.sleep(ctx, n.between(n.Quiet)) {
			return n.faults
		}
		kind := n.Kinds[n.Rng.IntN(len(n.Kinds))]
		heal, detail := n.inject(ctx, kind)
		f := Fault{Kind: kind, Detail: detail, Start: n.Since()}
		n.logf("fault: %s: %s", kind, detail)
		n.sleep(ctx, n.between(n.Active))
		// Heal with a fresh context: the run ending must not leave a fault behind.
		heal(context.WithoutCancel(ctx))
		f.End = n.Since()
		n.faults = append(n.faults, f)
		n.logf("healed: %s", kind)
		if ctx.Err() != nil {
			return n.faults
		}
	}
}

func (n *Nemesis) logf(format string, args ...any) {
	if n.Log != nil {
		n.Log(fmt.Sprintf(format, args...))
	}
}

func (n *Nemesis) between(r [2]time.Duration) time.Duration {
	if r[1] <= r[0] {
		return r[0]
	}
	return r[0] + time.Duration(n.Rng.Int64N(int64(r[1]-r[0])))
}

// sleep waits d or until ctx ends; it reports whether d passed. This is a schedule, not
// a wait for a condition.
func (n *Nemesis) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// leader returns a busy group's leader, or a random node if none is known.
func (n *Nemesis) leader(ctx context.Context) (int, string) {
	gid := uint64(1 + n.Rng.IntN(max(n.Groups, 1)))
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if i, err := n.Cluster.Leader(cctx, gid); err == nil {
		return i, fmt.Sprintf("leader %s of group %d", n.Cluster.Nodes[i].ID, gid)
	}
	i := n.Rng.IntN(len(n.Cluster.Nodes))
	return i, fmt.Sprintf("%s (group %d had no leader)", n.Cluster.Nodes[i].ID, gid)
}

func (n *Nemesis) ids(idx []int) string {
	var s []string
	for _, i := range idx {
		s = append(s, n.Cluster.Nodes[i].ID)
	}
	return strings.Join(s, ",")
}

// inject starts one fault of kind and returns how to heal it.
func (n *Nemesis) inject(ctx context.Context, kind string) (heal func(context.Context), detail string) {
	c := n.Cluster
	all := len(c.Nodes)
	minority := (all - 1) / 2
	switch kind {
	case "kill", "powercut":
		verb, stop := "SIGKILL", c.Kill
		if kind == "powercut" {
			verb, stop = "power cut", c.PowerCut
		}
		victims, detail := n.victims(ctx, verb)
		for _, i := range victims {
			if err := stop(i); err != nil {
				n.logf("%s %s: %v", verb, c.Nodes[i].ID, err)
			}
		}
		return func(context.Context) {
			for _, i := range victims {
				if err := c.Start(i); err != nil {
					n.logf("start %s: %v", c.Nodes[i].ID, err)
				}
			}
		}, detail + " (restart at heal)"
	case "pause":
		var victims []int
		if n.Rng.IntN(2) == 0 {
			i, who := n.leader(ctx)
			victims, detail = []int{i}, "SIGSTOP "+who
		} else {
			victims = n.Rng.Perm(all)[:minority]
			detail = "SIGSTOP minority " + n.ids(victims)
		}
		for _, i := range victims {
			_ = c.Pause(i)
		}
		return func(context.Context) {
			for _, i := range victims {
				_ = c.Resume(i)
			}
		}, detail
	case "partition":
		cuts, d := n.partition(ctx)
		for _, e := range cuts {
			c.Cut(e[0], e[1], true)
		}
		return func(context.Context) {
			for _, e := range cuts {
				c.Cut(e[0], e[1], false)
			}
		}, d
	case "slow":
		l := Link{Delay: time.Duration(5+n.Rng.IntN(50)) * time.Millisecond, Jitter: time.Duration(1+n.Rng.IntN(50)) * time.Millisecond}
		if n.Rng.IntN(2) == 0 {
			l.Loss = 0.05
		}
		c.Slow(l)
		return func(context.Context) { c.Slow(Link{}) },
			fmt.Sprintf("every raft link: delay %v + jitter up to %v, loss %.0f%%", l.Delay, l.Jitter, 100*l.Loss)
	case "reset":
		// A flapping network: connections are reset repeatedly while the fault lasts.
		stop := make(chan struct{})
		done := make(chan struct{})
		period := time.Duration(200+n.Rng.IntN(800)) * time.Millisecond
		go func() {
			defer close(done)
			t := time.NewTicker(period)
			defer t.Stop()
			for {
				c.ResetConnections()
				select {
				case <-t.C:
				case <-stop:
					return
				}
			}
		}()
		return func(context.Context) { close(stop); <-done },
			fmt.Sprintf("reset every client and raft connection every %v", period)
	}
	panic("jepsen: invariant violated: inject called with a kind ParseNemeses does not accept: " + kind)
}

// victims picks the nodes a kill or a power cut strikes: one, the leader of a group, a
// minority, or every node (a whole rack); verb names the fault in the detail.
func (n *Nemesis) victims(ctx context.Context, verb string) (victims []int, detail string) {
	all := len(n.Cluster.Nodes)
	switch n.Rng.IntN(4) {
	case 0:
		victims = []int{n.Rng.IntN(all)}
		return victims, verb + " " + n.ids(victims)
	case 1:
		i, who := n.leader(ctx)
		return []int{i}, verb + " " + who
	case 2:
		victims = n.Rng.Perm(all)[:(all-1)/2]
		return victims, verb + " minority " + n.ids(victims)
	default:
		return n.Rng.Perm(all), verb + " all nodes"
	}
}

// partition picks a partition and returns the directed cuts making it.
func (n *Nemesis) partition(ctx context.Context) (cuts [][2]int, detail string) {
	all := len(n.Cluster.Nodes)
	both := func(a, b []int) {
		for _, i := range a {
			for _, j := range b {
				cuts = append(cuts, [2]int{i, j}, [2]int{j, i})
			}
		}
	}
	perm := n.Rng.Perm(all)
	switch v := n.Rng.IntN(5); v {
	case 0:
		l, who := n.leader(ctx)
		var rest []int
		for i := range all {
			if i != l {
				rest = append(rest, i)
			}
		}
		both([]int{l}, rest)
		detail = "isolate " + who
	case 1:
		half := all / 2
		both(perm[:half], perm[half:])
		detail = fmt.Sprintf("halves %s | %s", n.ids(perm[:half]), n.ids(perm[half:]))
	case 2:
		// Majorities ring: each node sees only its ring neighbours (with 3 nodes, every
		// node sees a majority, so this degenerates to no cut; with 5, every node sees a
		// different majority and none a stable one).
		for i := range all {
			for j := range all {
				d := (j - i + all) % all
				if i != j && d != 1 && d != all-1 {
					cuts = append(cuts, [2]int{perm[i], perm[j]})
				}
			}
		}
		detail = "majorities ring " + n.ids(perm)
	case 3:
		// Bridge: two halves that only the bridge node connects.
		bridge := perm[0]
		a, b := perm[1:1+(all-1)/2], perm[1+(all-1)/2:]
		both(a, b)
		detail = fmt.Sprintf("bridge %s between %s and %s", n.ids([]int{bridge}), n.ids(a), n.ids(b))
	default:
		// One-way: the leader hears everyone, nobody hears the leader.
		l, who := n.leader(ctx)
		for j := range all {
			if j != l {
				cuts = append(cuts, [2]int{l, j})
			}
		}
		detail = "one-way: nothing from " + who + " reaches the others"
	}
	return cuts, detail
}
