package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Process is a hub process on this machine, read through Linux's /proc.
type Process struct {
	PID int
	// Root is the proc file system's mount point; "" means /proc.
	Root string
}

// Usage is what a process used during a run.
type Usage struct {
	// CPUSeconds is the user and system CPU time the process spent
	// during the run (all its threads).
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUPerRequestMicros is CPUSeconds per request of the run, in µs.
	CPUPerRequestMicros float64 `json:"cpu_us_per_request"`
	// PeakRSSBytes is the largest resident set size seen: the kernel's
	// high-water mark (VmHWM), reset at the start of the run when the
	// process allows it (PeakReset), else since the process started.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	PeakReset    bool  `json:"peak_reset"`
	// RSSBytes is the resident set size at the end of the run.
	RSSBytes int64 `json:"rss_bytes"`
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

func (p *Process) path(name string) string {
	root := p.Root
	if root == "" {
		root = "/proc"
	}
	return fmt.Sprintf("%s/%d/%s", root, p.PID, name)
}

// cpu is the process's user + system CPU time so far.
func (p *Process) cpu() (time.Duration, error) {
	b, err := os.ReadFile(p.path("stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// the fields after its closing parenthesis start at field 3 (state).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unreadable " + p.path("stat"))
	}
	f := strings.Fields(string(b[i+1:]))
	// utime and stime are fields 14 and 15 (1-based), so 11 and 12 here.
	if len(f) < 13 {
		return 0, errors.New("short " + p.path("stat"))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("%s: %w", p.path("stat"), err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// memory reads VmRSS and VmHWM from /proc/<pid>/status, in bytes.
func (p *Process) memory() (rss, hwm int64, err error) {
	b, err := os.ReadFile(p.path("status"))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("%s: unreadable %s", p.path("status"), k)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", p.path("status"), err)
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, fmt.Errorf("%s has no VmRSS or VmHWM", p.path("status"))
	}
	return rss, hwm, nil
}

// resetPeak resets the kernel's high-water mark of the process's resident
// set (proc(5), clear_refs value 5); it needs the right to write the
// file, which the process's owner has.
func (p *Process) resetPeak() bool {
	return os.WriteFile(p.path("clear_refs"), []byte("5"), 0) == nil
}

// monitor follows a process through a run. Besides the high-water mark it
// samples VmRSS, for kernels or permissions where the mark cannot be
// reset and would include the time before the run.
type monitor struct {
	p     *Process
	cpu0  time.Duration
	reset bool
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	peak  int64
}

func startMonitor(p *Process) (*monitor, error) {
	cpu0, err := p.cpu()
	if err != nil {
		return nil, fmt.Errorf("reading the hub process: %w", err)
	}
	m := &monitor{p: p, cpu0: cpu0, reset: p.resetPeak(), done: make(chan struct{})}
	m.sample()
	m.wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.done:
				return
			case <-t.C:
				m.sample()
			}
		}
	})
	return m, nil
}

func (m *monitor) sample() {
	// A failed read (the process gone) shows at stop, which reads again.
	rss, _, err := m.p.memory()
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peak = max(m.peak, rss)
}

// stop ends the monitoring and returns the usage; the request count is
// filled in by the caller.
func (m *monitor) stop() (*Usage, error) {
	close(m.done)
	m.wg.Wait()
	cpu1, err := m.p.cpu()
	if err != nil {
		return nil, fmt.Errorf("reading the hub process: %w", err)
	}
	rss, hwm, err := m.p.memory()
	if err != nil {
		return nil, fmt.Errorf("reading the hub process: %w", err)
	}
	u := &Usage{CPUSeconds: (cpu1 - m.cpu0).Seconds(), RSSBytes: rss, PeakReset: m.reset}
	m.mu.Lock()
	u.PeakRSSBytes = max(m.peak, rss)
	m.mu.Unlock()
	if m.reset {
		// The mark saw every page, the samples only every 50 ms.
		u.PeakRSSBytes = max(u.PeakRSSBytes, hwm)
	}
	return u, nil
}
