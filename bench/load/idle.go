package load

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/procfs"
)

// ProcessCPU returns the CPU time (user+system, all threads) pid has used so far, as the
// kernel counts it in /proc (in ticks of 10 ms).
func ProcessCPU(pid int) (time.Duration, error) {
	return processCPU(procfs.DefaultMountPoint, pid)
}

// processCPU is ProcessCPU with the proc file system mounted at procRoot.
func processCPU(procRoot string, pid int) (time.Duration, error) {
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	p, err := fs.Proc(pid)
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	st, err := p.Stat()
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	// More than a Duration holds (292 years) is a corrupt file, not a process's CPU.
	secs := st.CPUTime()
	if secs >= math.MaxInt64/float64(time.Second) {
		return 0, fmt.Errorf("cpu time of pid %d: %g s is not plausible", pid, secs)
	}
	return time.Duration(math.Round(secs * float64(time.Second))), nil
}

// IdleResult is the CPU the processes used over a window, together, as a percentage of
// one core. Its JSON encoding is `duro bench idle --json`.
type IdleResult struct {
	Pids       []int     `json:"pids"`
	Seconds    float64   `json:"seconds"`
	CPUSeconds float64   `json:"cpu_seconds"`
	PercentOne float64   `json:"percent_of_one_core"`
	PerProcess []float64 `json:"percent_per_process"`
}

// MeasureIdle samples the CPU time of pids, waits for window (or ctx), and samples again.
// The resolution is 10 ms of CPU per process, so a 20 s window resolves 0.05% of a core.
func MeasureIdle(ctx context.Context, pids []int, window time.Duration) (*IdleResult, error) {
	if len(pids) == 0 {
		return nil, fmt.Errorf("%w: no pids to measure", ErrBadConfig)
	}
	before := make([]time.Duration, len(pids))
	for i, p := range pids {
		d, err := ProcessCPU(p)
		if err != nil {
			return nil, err
		}
		before[i] = d
	}
	t0 := time.Now()
	tm := time.NewTimer(window)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	wall := time.Since(t0)
	res := &IdleResult{Pids: pids, Seconds: wall.Seconds()}
	for i, p := range pids {
		d, err := ProcessCPU(p)
		if err != nil {
			return nil, err
		}
		used := (d - before[i]).Seconds()
		res.CPUSeconds += used
		res.PerProcess = append(res.PerProcess, 100*used/wall.Seconds())
	}
	res.PercentOne = 100 * res.CPUSeconds / wall.Seconds()
	return res, nil
}
