package diskspace

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoSpace is returned for a write refused because the node's disk is below its reserve.
// Reads, read-only calls and deletes go on; writes resume by themselves once space is freed.
var ErrNoSpace = errors.New("no space: the node's disk is below its reserve; free space, and writes resume")

// DefaultReserve is the free space a node keeps by default: room for deletes, log
// compaction and snapshots to run, so that an operator can make room from inside.
const DefaultReserve = 256 << 20

// DefaultInterval is how often free space is measured.
const DefaultInterval = time.Second

// Usage returns the space free to an unprivileged writer, and the size, of the file system
// holding dir.
func Usage(dir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("diskspace: statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// Monitor watches the free space of one directory's file system.
type Monitor struct {
	dir      string
	reserve  uint64
	interval time.Duration
	log      *slog.Logger
	// usage measures; tests replace it.
	usage func(dir string) (free, total uint64, err error)

	free  atomic.Uint64
	total atomic.Uint64
	low   atomic.Bool

	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	mu       sync.Mutex
	onChange []func(low bool)
}

// New returns a monitor of dir's file system against reserve bytes, measured once already.
// Start begins measuring every interval (0: DefaultInterval).
func New(dir string, reserve uint64, interval time.Duration, log *slog.Logger) (*Monitor, error) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{dir: dir, reserve: reserve, interval: interval, log: log, usage: Usage,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if err := m.measure(); err != nil {
		return nil, err
	}
	return m, nil
}

// Start measures every interval until Stop.
func (m *Monitor) Start() {
	go func() {
		defer close(m.done)
		t := time.NewTimer(m.next())
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
			case <-m.kick:
			}
			t.Reset(m.next())
			if err := m.measure(); err != nil {
				m.log.Warn("cannot measure free disk space", "dir", m.dir, "err", err)
			}
		}
	}()
}

// Stop ends the measurements of Start and waits for them.
func (m *Monitor) Stop() {
	m.stopOnce.Do(func() {
		close(m.stop)
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
		}
	})
}

// Check asks for a measurement soon, without waiting for the next interval: after a write
// failed, say.
func (m *Monitor) Check() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// OnChange registers fn to be called, on the monitor's goroutine, each time Low changes.
func (m *Monitor) OnChange(fn func(low bool)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onChange = append(m.onChange, fn)
}

// Low reports whether the free space is below the reserve (see the package doc).
func (m *Monitor) Low() bool { return m.low.Load() }

// Free returns the free space, in bytes, as last measured.
func (m *Monitor) Free() uint64 { return m.free.Load() }

// Total returns the file system's size, in bytes.
func (m *Monitor) Total() uint64 { return m.total.Load() }

// Reserve returns the reserve, in bytes.
func (m *Monitor) Reserve() uint64 { return m.reserve }

// Err returns ErrNoSpace, with the figures, while Low; else nil.
func (m *Monitor) Err() error {
	if !m.Low() {
		return nil
	}
	return fmt.Errorf("%w (%s free, reserve %s)", ErrNoSpace, Bytes(m.Free()), Bytes(m.reserve))
}

// next is the wait before the next measurement: Interval, or a tenth of it (at least
// 20 ms) once free space is within four reserves, where a fast writer could otherwise
// run through the reserve between two measurements.
func (m *Monitor) next() time.Duration {
	if m.free.Load() < 4*m.reserve {
		return max(m.interval/10, 20*time.Millisecond)
	}
	return m.interval
}

// margin is how far above the reserve free space must come back before writes resume.
func (m *Monitor) margin() uint64 { return min(m.reserve/10, 64<<20) }

func (m *Monitor) measure() error {
	free, total, err := m.usage(m.dir)
	if err != nil {
		return err
	}
	m.free.Store(free)
	m.total.Store(total)
	was := m.low.Load()
	low := was
	switch {
	case free < m.reserve:
		low = true
	case free >= m.reserve+m.margin():
		low = false
	}
	if low == was {
		return nil
	}
	m.low.Store(low)
	if low {
		m.log.Error("disk below its reserve: refusing writes until space is freed; reads and deletes go on",
			"dir", m.dir, "free", Bytes(free), "reserve", Bytes(m.reserve))
	} else {
		m.log.Warn("disk space back above the reserve: accepting writes again",
			"dir", m.dir, "free", Bytes(free), "reserve", Bytes(m.reserve))
	}
	m.mu.Lock()
	fns := append([]func(bool){}, m.onChange...)
	m.mu.Unlock()
	for _, fn := range fns {
		fn(low)
	}
	return nil
}

// Bytes formats n bytes for people: "512 B", "3.2 MiB", "1.5 GiB".
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// ParseBytes parses a size such as "256MiB", "1GiB", "512M", "1.5G", "4096" (bytes).
// Units are powers of 1024 whether or not they carry the i.
func ParseBytes(s string) (uint64, error) {
	var num float64
	var unit string
	if _, err := fmt.Sscanf(s, "%g%s", &num, &unit); err != nil {
		if _, err2 := fmt.Sscanf(s, "%g", &num); err2 != nil {
			return 0, fmt.Errorf("size %q: want a number with an optional unit (KiB, MiB, GiB, TiB)", s)
		}
		unit = ""
	}
	mult := map[string]float64{"": 1, "B": 1,
		"K": 1 << 10, "KB": 1 << 10, "KiB": 1 << 10, "k": 1 << 10,
		"M": 1 << 20, "MB": 1 << 20, "MiB": 1 << 20,
		"G": 1 << 30, "GB": 1 << 30, "GiB": 1 << 30,
		"T": 1 << 40, "TB": 1 << 40, "TiB": 1 << 40}[unit]
	if mult == 0 || num < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (KiB, MiB, GiB, TiB)", s)
	}
	return uint64(num * mult), nil
}
