// Command alarmlat measures duro's alarms on a real 3-node cluster of `duro server`
// processes (the Jepsen harness's Cluster), with the Reminder example class:
//
//   - lateness: n reminders due evenly over -spread, the first -ahead from the start,
//     all scheduled before it; reports delivery time minus scheduled time
//     (p50/p90/p99/max), optionally with the leader of one group SIGKILLed (and
//     restarted) halfway through the spread (-kill).
//   - memory: n reminders due an hour ahead (so all stay pending), scheduled by -clients
//     concurrent clients; reports every node's VmRSS (from /proc) at each -checkpoints
//     count, and the data directories' size.
//
// Usage:
//
//	go build -o /tmp/duro ./cmd/duro
//	go run ./bench/alarmlat -binary /tmp/duro -mode lateness -n 100000 -spread 60s [-kill]
//	go run ./bench/alarmlat -binary /tmp/duro -mode memory -n 1000000 -checkpoints 200000,500000
//
// It is a measurement, not a test: it exits non-zero only when the cluster cannot be run,
// or a reminder is delivered early or never.
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duro-db/duro/bench/jepsen"
	"github.com/duro-db/duro/client"
	"github.com/duro-db/duro/objects/examples"
)

func main() {
	var (
		binary      = flag.String("binary", "", "the duro binary the nodes run (required)")
		mode        = flag.String("mode", "lateness", "lateness or memory")
		n           = flag.Int("n", 100_000, "reminders")
		spread      = flag.Duration("spread", 60*time.Second, "lateness: the due times span this")
		ahead       = flag.Duration("ahead", 150*time.Second, "lateness: the first is due this long after the start (all are scheduled before it)")
		kill        = flag.Bool("kill", false, "lateness: SIGKILL one group's leader halfway through, and restart it")
		clients     = flag.Int("clients", 64, "concurrent SDK clients scheduling")
		checkpoints = flag.String("checkpoints", "", "memory: comma-separated counts at which to report RSS (n is always one)")
		settle      = flag.Duration("settle", 75*time.Second, "memory: report once more after this, when idle objects are evicted (0: don't)")
		groups      = flag.Int("groups", 4, "data groups")
		dir         = flag.String("dir", "", "data dirs and logs (default: a temporary directory, removed)")
	)
	flag.Parse()
	if *binary == "" {
		log.Fatal("alarmlat: -binary is required (go build -o /tmp/duro ./cmd/duro)")
	}
	if *mode != "lateness" && *mode != "memory" {
		log.Fatalf("alarmlat: unknown -mode %q (lateness, memory)", *mode)
	}
	if err := run(*binary, *mode, *n, *spread, *ahead, *kill, *clients, *checkpoints, *settle, *groups, *dir); err != nil {
		log.Fatal("alarmlat: ", err)
	}
}

// run starts the cluster and measures; the cluster is gone when it returns.
func run(binary, mode string, n int, spread, ahead time.Duration, kill bool, clients int, checkpoints string, settle time.Duration, groups int, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "alarmlat")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	ctx := context.Background()
	c, err := jepsen.StartCluster(ctx, jepsen.ClusterConfig{Binary: binary, Dir: dir, Nodes: 3, Groups: groups, Seed: 1})
	if err != nil {
		return err
	}
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = c.WaitReady(rctx)
	cancel()
	if err != nil {
		return err
	}
	cls := make([]*client.Client, clients)
	for i := range cls {
		if cls[i], err = client.Dial(ctx, c.Endpoints(), client.WithRetryBackoff(5*time.Millisecond, 250*time.Millisecond)); err != nil {
			return err
		}
		defer cls[i].Close()
	}
	if mode == "memory" {
		return memory(ctx, c, cls, n, checkpoints, settle)
	}
	return lateness(ctx, c, cls, n, spread, ahead, kill)
}

func schedule(ctx context.Context, cl *client.Client, name string, in examples.ReminderSchedule) error {
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	_, err := client.Call[examples.ReminderState](cctx, cl.Namespace("Reminder").GetByName(name), "Schedule", in)
	return err
}

func lateness(ctx context.Context, c *jepsen.Cluster, cls []*client.Client, n int, spread, ahead time.Duration, kill bool) error {
	name := func(i int) string { return fmt.Sprintf("lat-%d", i) }
	base := time.Now().Add(ahead + time.Second)
	due := func(i int) time.Time { return base.Add(time.Duration(int64(spread) * int64(i) / int64(n))) }
	fmt.Printf("lateness: %d reminders due over %v from %s, %d clients, kill=%v\n",
		n, spread, base.Format("15:04:05"), len(cls), kill)

	// Preload: every reminder is scheduled before the first is due, as fast as the
	// clients go, so what is measured is the firing, not the scheduling. (Scheduling each
	// just ahead of its time measures whether the cluster sustains n/spread schedules
	// and as many firings per second at once: on a loaded 2-core machine it did not.)
	var next, lateAck atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, len(cls))
	started := time.Now()
	for _, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				at := due(i)
				if err := schedule(ctx, cl, name(i), examples.ReminderSchedule{At: at.UnixMilli()}); err != nil {
					errc <- fmt.Errorf("schedule %s: %w", name(i), err)
					return
				}
				if time.Now().After(at) {
					lateAck.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	took := time.Since(started)
	fmt.Printf("scheduled %d in %v (%.0f/s); %v before the first is due\n", n, took.Round(time.Millisecond),
		float64(n)/took.Seconds(), time.Until(base).Round(time.Millisecond))

	var killed struct {
		gid  uint64
		node string
		at   time.Time
	}
	if kill {
		time.Sleep(time.Until(base.Add(spread / 2))) // the kill's time, not a state
		killed.gid = c.GroupOf("Reminder", name(n/2))
		// Under this load a node's /status can be slow: ask until one claims the group.
		l, err := -1, error(nil)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			l, err = c.Leader(lctx, killed.gid)
			cancel()
			if err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond) // polling interval
		}
		if err != nil {
			return err
		}
		if err := c.Kill(l); err != nil {
			return err
		}
		killed.node, killed.at = c.Nodes[l].ID, time.Now()
		if err := c.Start(l); err != nil {
			return err
		}
		fmt.Printf("SIGKILLed %s, leader of group %d, at +%v; restarted\n", killed.node, killed.gid, killed.at.Sub(base).Round(time.Millisecond))
	}
	if d := time.Until(base.Add(spread)); d > 0 {
		time.Sleep(d) // the last one's due time
	}

	// Read every reminder, polling until delivered.
	late := make([]time.Duration, n)
	delivered := make([]bool, n)
	var early atomic.Int64
	next.Store(0)
	deadline := time.Now().Add(2 * time.Minute)
	for _, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				for time.Now().Before(deadline) {
					cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					st, err := client.Call[examples.ReminderState](cctx, cl.Namespace("Reminder").GetByName(name(i)), "Read", nil)
					cancel()
					if err == nil && len(st.Attempts) > 0 {
						a := st.Attempts[0]
						late[i], delivered[i] = time.Duration(a.FiredAt-a.Scheduled)*time.Millisecond, true
						if late[i] < 0 {
							early.Add(1)
						}
						break
					}
					time.Sleep(100 * time.Millisecond) // polling interval
				}
			}
		}()
	}
	wg.Wait()

	var all, group, other []time.Duration
	lost := 0
	for i, l := range late {
		if !delivered[i] {
			lost++
			continue
		}
		all = append(all, l)
		if kill && c.GroupOf("Reminder", name(i)) == killed.gid {
			group = append(group, l)
		} else {
			other = append(other, l)
		}
	}
	fmt.Printf("acknowledged after their due time (their lateness includes scheduling): %d\n", lateAck.Load())
	fmt.Printf("all:  %s\n", percentiles(all))
	if kill {
		fmt.Printf("killed group %d: %s\n", killed.gid, percentiles(group))
		fmt.Printf("other groups:    %s\n", percentiles(other))
	}
	fmt.Printf("early: %d  never delivered: %d\n", early.Load(), lost)
	if early.Load() > 0 || lost > 0 {
		return fmt.Errorf("%d early, %d lost", early.Load(), lost)
	}
	return nil
}

func percentiles(d []time.Duration) string {
	if len(d) == 0 {
		return "none"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	p := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return fmt.Sprintf("n=%d p50=%v p90=%v p99=%v p99.9=%v max=%v", len(s), p(0.50), p(0.90), p(0.99), p(0.999), s[len(s)-1])
}

func memory(ctx context.Context, c *jepsen.Cluster, cls []*client.Client, n int, checkpoints string, settle time.Duration) error {
	var marks []int
	for _, f := range strings.Split(checkpoints, ",") {
		if f = strings.TrimSpace(f); f != "" {
			v, err := strconv.Atoi(f)
			if err != nil {
				return fmt.Errorf("-checkpoints: %w", err)
			}
			if v < n {
				marks = append(marks, v)
			}
		}
	}
	marks = append(marks, n)
	slices.Sort(marks)
	at := time.Now().Add(time.Hour).UnixMilli()
	report := func(done int, took time.Duration) error {
		var parts []string
		for _, node := range c.Nodes {
			rss, hwm, err := rssOf(node.DataDir)
			if err != nil {
				return err
			}
			parts = append(parts, fmt.Sprintf("%s VmRSS %d MiB (VmHWM %d MiB), data %d MiB", node.ID, rss>>10, hwm>>10, dirSize(node.DataDir)>>20))
		}
		fmt.Printf("%8d pending alarms (%v, %.0f/s): %s\n", done, took.Round(time.Second), float64(done)/took.Seconds(), strings.Join(parts, "; "))
		return nil
	}
	if err := report(0, time.Nanosecond); err != nil {
		return err
	}
	start := time.Now()
	done := 0
	for _, m := range marks {
		var next atomic.Int64
		next.Store(int64(done))
		var wg sync.WaitGroup
		errc := make(chan error, len(cls))
		for _, cl := range cls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= m {
						return
					}
					if err := schedule(ctx, cl, fmt.Sprintf("mem-%d", i), examples.ReminderSchedule{At: at}); err != nil {
						errc <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		if err := <-errc; err != nil {
			return err
		}
		done = m
		if err := report(done, time.Since(start)); err != nil {
			return err
		}
	}
	// The objects just scheduled stay in memory until the nodes' idle timeout (60 s by
	// default) evicts them; after it, what is left is the cost of the pending alarms.
	if settle > 0 {
		fmt.Printf("waiting %v for idle objects to be evicted\n", settle)
		time.Sleep(settle) // the idle timeout's passing, not a state
		return report(done, time.Since(start))
	}
	return nil
}

// rssOf finds the `duro server` process with --data-dir dataDir in /proc and returns its
// VmRSS and VmHWM in KiB.
func rssOf(dataDir string) (rss, hwm int64, err error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, err
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), "\x00--data-dir\x00"+dataDir+"\x00") {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			return 0, 0, err
		}
		for _, line := range strings.Split(string(status), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				if f[0] == "VmRSS:" {
					rss = v
				} else {
					hwm = v
				}
			}
		}
		return rss, hwm, nil
	}
	return 0, 0, fmt.Errorf("no process serves %s", dataDir)
}

func dirSize(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}
