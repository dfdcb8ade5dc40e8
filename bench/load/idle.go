package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat. It is the kernel's USER_HZ,
// which is 100 on every Linux architecture Go supports (it is ABI, unlike CONFIG_HZ).
const userHZ = 100

// ErrBadStat is returned for a /proc/<pid>/stat line that does not parse.
var ErrBadStat = errors.New("load: malformed /proc stat line")

// ParseStat returns the user+system CPU time in a /proc/<pid>/stat line.
func ParseStat(line []byte) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may hold spaces and ')' itself;
	// the fields that follow start after the LAST ')'.
	i := bytes.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: no ')' after the command name", ErrBadStat)
	}
	f := bytes.Fields(line[i+1:])
	// After the name: state(3) ppid(4) ... utime(14) stime(15), i.e. f[11] and f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("%w: %d fields after the command name, want at least 13", ErrBadStat, len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] {
		// 40 bits of ticks is 348 years of CPU: more is corruption, and the bound keeps
		// the sum and its conversion to a Duration from overflowing.
		v, err := strconv.ParseUint(string(s), 10, 40)
		if err != nil {
			return 0, fmt.Errorf("%w: cpu time %q: %v", ErrBadStat, s, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// ProcessCPU returns the CPU time (user+system, all threads) pid has used so far.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	d, err := ParseStat(b)
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return d, nil
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
