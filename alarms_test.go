package duro_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/client"
	"github.com/duro-db/duro/internal/objid"
	"github.com/duro-db/duro/internal/testutil"
	"github.com/duro-db/duro/objects"
)

// alarmRecorder collects the firings of class "Alarm" on every node of an in-process
// cluster.
type alarmRecorder struct {
	mu    sync.Mutex
	fired map[objid.ID][]alarmFiring
	n     atomic.Int64
}

type alarmFiring struct {
	now  time.Time // the firing's log time (Context.Now)
	info objects.AlarmInfo
}

type alarmSpec struct {
	At   int64 `json:"at"`   // unix nanos
	Fail int   `json:"fail"` // fail while RetryCount < Fail
}

type alarmObj struct{ rec *alarmRecorder }

func (o *alarmObj) Alarm(ctx *objects.Context, info objects.AlarmInfo) error {
	o.rec.mu.Lock()
	o.rec.fired[ctx.ID()] = append(o.rec.fired[ctx.ID()], alarmFiring{ctx.Now(), info})
	o.rec.mu.Unlock()
	o.rec.n.Add(1)
	spec, _, err := objects.GetAs[alarmSpec](ctx.Storage(), "spec")
	if err != nil {
		return err
	}
	if info.RetryCount < spec.Fail {
		return fmt.Errorf("attempt %d fails", info.RetryCount)
	}
	return ctx.Storage().Put("done", true)
}

// withAlarms registers class "Alarm" in a fresh registry for the cluster.
func withAlarms(rec *alarmRecorder, retry time.Duration) clusterOpt {
	reg := objects.NewRegistry()
	objects.RegisterIn(reg, "Alarm", func() *alarmObj { return &alarmObj{rec: rec} },
		objects.Method("Set", func(_ *alarmObj, ctx *objects.Context, s alarmSpec) (bool, error) {
			if err := ctx.Storage().Put("spec", s); err != nil {
				return false, err
			}
			return true, ctx.Storage().SetAlarm(time.Unix(0, s.At))
		}))
	return func(c *duro.Config) {
		c.Registry = reg
		c.Objects.AlarmRetryDelay = retry
		// The backstop poll never runs here: schedulers must learn of every leadership
		// change, the kill included, from the node (locator.ServingChanged).
		c.Objects.AlarmPoll = time.Hour
	}
}

func newAlarmRecorder() *alarmRecorder {
	return &alarmRecorder{fired: map[objid.ID][]alarmFiring{}}
}

func (r *alarmRecorder) firings(id objid.ID) []alarmFiring {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.fired[id])
}

// scheduleAlarms sets the alarm of each named object, in parallel.
func scheduleAlarms(t testing.TB, cl *client.Client, specs map[string]alarmSpec) {
	t.Helper()
	ns := cl.Namespace("Alarm")
	type job struct {
		name string
		spec alarmSpec
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := ns.GetByName(j.name).Call(ctx, "Set", j.spec, nil)
				cancel()
				if err != nil {
					t.Errorf("Set %s: %v", j.name, err)
				}
			}
		}()
	}
	for name, s := range specs {
		jobs <- job{name, s}
	}
	close(jobs)
	wg.Wait()
}

// checkAlarms checks that every alarm succeeded, none fired before its time, and each
// object's retry counts never went backwards (the count is replicated).
func checkAlarms(t testing.TB, rec *alarmRecorder, specs map[string]alarmSpec) {
	t.Helper()
	for name, s := range specs {
		fs := rec.firings(objid.FromName("Alarm", name))
		if len(fs) == 0 || fs[len(fs)-1].info.RetryCount < s.Fail {
			t.Errorf("%s: firings %+v, want a success at RetryCount %d", name, fs, s.Fail)
			continue
		}
		for i, f := range fs {
			if f.now.UnixNano() < s.At || f.now.Before(f.info.Scheduled) {
				t.Errorf("%s: firing %d at %v, before its time (%v, scheduled %v)", name, i, f.now, time.Unix(0, s.At), f.info.Scheduled)
			}
			if f.info.RetryCount == 0 && f.info.Scheduled.UnixNano() != s.At {
				t.Errorf("%s: first attempt scheduled %v, set for %v", name, f.info.Scheduled, time.Unix(0, s.At))
			}
			if i > 0 && f.info.RetryCount < fs[i-1].info.RetryCount {
				t.Errorf("%s: RetryCount went back from %d to %d", name, fs[i-1].info.RetryCount, f.info.RetryCount)
			}
		}
	}
}

// TestAlarmsSurviveLeaderKill: alarms due while their group's leader is killed, and
// alarms in the middle of their retries, all fire on the new leader, none early, retry
// counts kept. The kill is an in-process Close of the node (its peers see it vanish);
// real-process SIGKILL is the Jepsen harness's alarms workload.
func TestAlarmsSurviveLeaderKill(t *testing.T) {
	rec := newAlarmRecorder()
	c := newCluster(t, 3, withAlarms(rec, 700*time.Millisecond), noBalance)
	cl := c.dial(c.addrs)

	start := time.Now()
	specs := map[string]alarmSpec{}
	for i := range 150 {
		specs[fmt.Sprintf("due-%d", i)] = alarmSpec{At: start.Add(500*time.Millisecond + time.Duration(i)*15*time.Millisecond).UnixNano()}
	}
	retrying := map[uint64]string{} // group → an object being retried in it
	for i := range 40 {
		name := fmt.Sprintf("retry-%d", i)
		specs[name] = alarmSpec{At: start.Add(200 * time.Millisecond).UnixNano(), Fail: 2}
		retrying[c.groupOf(objid.FromName("Alarm", name))] = name
	}
	scheduleAlarms(t, cl, specs)

	// Kill the leader of a group as soon as one of its alarms is in its retries.
	var gid uint64
	var victim string
	testutil.WaitFor(t, 10*time.Second, "an alarm in its retries", func() bool {
		for g, name := range retrying {
			if fs := rec.firings(objid.FromName("Alarm", name)); len(fs) == 1 {
				gid, victim = g, name
				return true
			}
		}
		return false
	})
	leader := c.leaderOf(gid)
	t.Logf("killing n%d, leader of group %d, while %s is between retries (%s)", leader+1, gid, victim, c.leaders())
	c.kill(leader)

	testutil.WaitFor(t, 30*time.Second, "every alarm to succeed", func() bool {
		for name, s := range specs {
			fs := rec.firings(objid.FromName("Alarm", name))
			if len(fs) == 0 || fs[len(fs)-1].info.RetryCount < s.Fail {
				return false
			}
		}
		return true
	})
	checkAlarms(t, rec, specs)
	if fs := rec.firings(objid.FromName("Alarm", victim)); len(fs) < 3 {
		t.Errorf("%s fired %d times, want its first attempt and 2 retries", victim, len(fs))
	}
}

// BenchmarkAlarmLateness measures how late alarms fire (handler start minus alarm time)
// on a 3-node in-process cluster: 10,000 alarms spread over 10 s, steady and with the
// leader of one group killed in the middle. Run with -benchtime=1x.
func BenchmarkAlarmLateness(b *testing.B) {
	const n, spread = 10_000, 10 * time.Second
	for _, kill := range []bool{false, true} {
		b.Run(fmt.Sprintf("kill=%v", kill), func(b *testing.B) {
			for range b.N {
				rec := newAlarmRecorder()
				c := newCluster(b, 3, withAlarms(rec, 2*time.Second), noBalance)
				cl := c.dial(c.addrs)
				// Setting them takes a while: start the spread after it.
				start := time.Now().Add(15 * time.Second)
				specs := map[string]alarmSpec{}
				for i := range n {
					specs[fmt.Sprintf("a%d", i)] = alarmSpec{At: start.Add(spread * time.Duration(i) / n).UnixNano()}
				}
				scheduleAlarms(b, cl, specs)
				if time.Now().After(start) {
					b.Fatalf("setting %d alarms took past the start of their spread", n)
				}
				if kill {
					time.Sleep(time.Until(start.Add(spread / 2)))
					c.kill(c.leaderOf(1))
				}
				testutil.WaitFor(b, spread+30*time.Second, "every alarm", func() bool { return rec.n.Load() >= n })
				var late []time.Duration
				for name, s := range specs {
					fs := rec.firings(objid.FromName("Alarm", name))
					if len(fs) == 0 {
						b.Fatalf("%s never fired", name)
					}
					late = append(late, fs[0].now.Sub(time.Unix(0, s.At)))
				}
				slices.Sort(late)
				b.ReportMetric(float64(late[len(late)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(late[len(late)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(late[len(late)-1].Microseconds())/1000, "max-ms")
				if late[0] < 0 {
					b.Errorf("an alarm fired %v early", -late[0])
				}
				c.close()
			}
		})
	}
}
