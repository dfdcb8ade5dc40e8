package objects

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/duro-db/duro/fsm"
	"github.com/duro-db/duro/internal/objid"
	"github.com/duro-db/duro/internal/testutil"
)

// BenchmarkAlarmMemory reports the Go heap of a Runtime whose group holds many pending
// alarms: far in the future (none loaded) and all due within the lookahead (at most
// AlarmMaxLoaded loaded). The alarms live in the fsm's time index, on disk.
func BenchmarkAlarmMemory(b *testing.B) {
	const pending = 200_000
	for _, soon := range []bool{false, true} {
		b.Run(map[bool]string{false: "far", true: "within-lookahead"}[soon], func(b *testing.B) {
			for range b.N {
				reg := NewRegistry()
				RegisterIn(reg, "A", func() *struct{} { return new(struct{}) },
					Method("M", func(*struct{}, *Context, struct{}) (int, error) { return 0, nil }))
				g := newMemGroup(b)
				base := time.Now().Add(time.Hour)
				if soon {
					base = time.Now().Add(3 * time.Second)
				}
				var last *memProposal
				for i := range pending {
					id := objid.FromName("A", strconv.Itoa(i))
					last = g.insert(b, &fsm.Command{Object: id[:], Time: 1,
						Ops: []fsm.Op{{Kind: fsm.OpSetAlarm, Alarm: base.Add(time.Duration(i) * time.Microsecond).UnixNano()}}}, -1)
				}
				if _, err := last.Wait(); err != nil {
					b.Fatal(err)
				}
				var before runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				rt := NewRuntime(reg, alarmLocator{oneGroup{g}}, Options{AlarmPoll: time.Millisecond})
				testutil.WaitFor(b, waitLimit, "the first scan", func() bool { return !soon || rt.Stats().AlarmsLoaded > 0 })
				time.Sleep(50 * time.Millisecond) // let the scan finish loading (benchmark only)
				var after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(before.HeapAlloc)/(1<<20), "heap-before-MiB")
				b.ReportMetric(float64(after.HeapAlloc)/(1<<20), "heap-after-MiB")
				b.ReportMetric(float64(rt.Stats().AlarmsLoaded), "loaded")
				rt.Close()
				runtime.KeepAlive(g)
			}
		})
	}
}
