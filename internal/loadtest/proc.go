package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
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
	// Exited says the process was gone before the run's end (its PID
	// and the run's Result.Exited name it): the CPU time and memory are
	// those of its last reading while it ran.
	Exited bool `json:"exited,omitempty"`
}

// ErrExited is the error of reading a process that is no longer running
// (gone from /proc, or a zombie that only awaits its parent's wait).
var ErrExited = errors.New("the process has exited")

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

// Check reports whether the process can be read.
func (p *Process) Check() error {
	if _, err := p.cpu(); err != nil {
		return fmt.Errorf("process %d: %w", p.PID, err)
	}
	return nil
}

// cpu is the process's user + system CPU time so far; ErrExited when it
// no longer runs.
func (p *Process) cpu() (time.Duration, error) {
	st, err := readStat(p.path("stat"))
	if errors.Is(err, fs.ErrNotExist) || err == nil && st.dead() {
		return 0, fmt.Errorf("process %d: %w", p.PID, ErrExited)
	}
	if err != nil {
		return 0, err
	}
	return st.cpu, nil
}

// stat is what this package reads of /proc/<pid>/stat.
type stat struct {
	// state is field 3: R, S, D, … ; Z (zombie) and X (dead) have exited.
	state byte
	ppid  int
	// cpu is utime + stime; reaped is cutime + cstime, the CPU time of
	// children the process has waited for.
	cpu, reaped time.Duration
}

func readStat(path string) (stat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return stat{}, err
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// the fields after its closing parenthesis start at field 3 (state).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, errors.New("unreadable " + path)
	}
	f := strings.Fields(string(b[i+1:]))
	// ppid is field 4 (1-based), utime, stime, cutime and cstime are
	// fields 14 to 17: here 1 and 11 to 14.
	if len(f) < 15 || f[0] == "" {
		return stat{}, errors.New("short " + path)
	}
	var n [5]int64
	for j, k := range []int{1, 11, 12, 13, 14} {
		if n[j], err = strconv.ParseInt(f[k], 10, 64); err != nil {
			return stat{}, fmt.Errorf("%s: %w", path, err)
		}
	}
	tick := func(v int64) time.Duration { return time.Duration(v) * time.Second / clockTicks }
	return stat{state: f[0][0], ppid: int(n[0]), cpu: tick(n[1] + n[2]), reaped: tick(n[3] + n[4])}, nil
}

// dead says whether the process has exited: a zombie's parent has not
// waited for it yet, but it runs no more.
func (st stat) dead() bool { return st.state == 'Z' || st.state == 'X' }

// treeCPU is the CPU time so far of the process, of every process
// descending from it, and of the children it has reaped: for a database
// server whose work is done by one child process per connection (the
// PostgreSQL postmaster), all of its CPU time.
func (p *Process) treeCPU() (time.Duration, error) {
	root := p.Root
	if root == "" {
		root = "/proc"
	}
	self, err := readStat(p.path("stat"))
	if err != nil {
		return 0, err
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return 0, err
	}
	children := map[int][]stat{}
	pids := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == p.PID {
			continue
		}
		st, err := readStat(fmt.Sprintf("%s/%d/stat", root, pid))
		if err != nil {
			continue // exited meanwhile, or not ours to read
		}
		children[st.ppid] = append(children[st.ppid], st)
		pids[st.ppid] = append(pids[st.ppid], pid)
	}
	total := self.cpu + self.reaped
	queue := []int{p.PID}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for i, st := range children[pid] {
			// A descendant's own time; what it reaped is counted in the
			// descendants it reaped only while they ran, so add it too.
			total += st.cpu + st.reaped
			queue = append(queue, pids[pid][i])
		}
	}
	return total, nil
}

// memory reads VmRSS and VmHWM from /proc/<pid>/status, in bytes.
func (p *Process) memory() (rss, hwm int64, err error) {
	b, err := os.ReadFile(p.path("status"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, fmt.Errorf("process %d: %w", p.PID, ErrExited)
	}
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
		// A zombie's status has no memory lines: it has exited.
		if st, err := readStat(p.path("stat")); err == nil && st.dead() {
			return 0, 0, fmt.Errorf("process %d: %w", p.PID, ErrExited)
		}
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

// CPUUsage is the CPU time a process tree used during a run.
type CPUUsage struct {
	CPUSeconds          float64 `json:"cpu_seconds"`
	CPUPerRequestMicros float64 `json:"cpu_us_per_request"`
}

// monitor follows a process through a run. When the high-water mark
// cannot be reset (kernels or permissions), and would include the time
// before the run, it samples VmRSS instead, every 50 ms. Either way it
// reads the process every so often, so that a process that exits during
// the run is noticed (onExit is called) and reported with its last
// reading.
type monitor struct {
	p      *Process
	cpu0   time.Duration
	reset  bool
	onExit func()
	done   chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	peak   int64         // the largest resident set seen
	cpu    time.Duration // CPU time at the last reading
	rss    int64         // VmRSS at the last reading
	exited bool
}

// Sampling intervals: of VmRSS when the high-water mark cannot be reset,
// and otherwise only to notice an exit (the kernel's mark sees every
// page; frequent samples would cost this process, the load tool, CPU on
// the hub's cores).
const (
	rssSampleEvery  = 50 * time.Millisecond
	liveSampleEvery = 250 * time.Millisecond
)

// startMonitor starts following p; onExit (not nil) is called once, from
// the monitor's goroutine, when it sees p has exited. A process that has
// already exited is ErrExited.
func startMonitor(p *Process, onExit func()) (*monitor, error) {
	cpu0, err := p.cpu()
	if err != nil {
		return nil, fmt.Errorf("reading the hub process: %w", err)
	}
	m := &monitor{p: p, cpu0: cpu0, cpu: cpu0, reset: p.resetPeak(), onExit: onExit, done: make(chan struct{})}
	if err := m.sample(); err != nil {
		return nil, fmt.Errorf("reading the hub process: %w", err)
	}
	every := rssSampleEvery
	if m.reset {
		every = liveSampleEvery
	}
	m.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-m.done:
				return
			case <-t.C:
				if errors.Is(m.sample(), ErrExited) {
					m.onExit()
					return
				}
			}
		}
	})
	return m, nil
}

// sample reads the process's CPU time and memory. An error other than
// ErrExited is left for stop, which reads again.
func (m *monitor) sample() error {
	cpu, err := m.p.cpu()
	if err != nil {
		if errors.Is(err, ErrExited) {
			m.mu.Lock()
			m.exited = true
			m.mu.Unlock()
		}
		return err
	}
	rss, hwm, err := m.p.memory()
	m.mu.Lock()
	defer m.mu.Unlock()
	if errors.Is(err, ErrExited) {
		m.exited = true
	}
	if err != nil {
		return err
	}
	m.cpu, m.rss = cpu, rss
	m.peak = max(m.peak, rss)
	if m.reset {
		// The mark saw every page, the samples only some moments.
		m.peak = max(m.peak, hwm)
	}
	return nil
}

// stop ends the monitoring and returns the usage; the request count is
// filled in by the caller. A process that exited during the run is
// reported with its last reading and Exited set.
func (m *monitor) stop() (*Usage, error) {
	close(m.done)
	m.wg.Wait()
	m.mu.Lock()
	exited := m.exited
	m.mu.Unlock()
	if !exited {
		if err := m.sample(); err != nil && !errors.Is(err, ErrExited) {
			return nil, fmt.Errorf("reading the hub process: %w", err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return &Usage{CPUSeconds: (m.cpu - m.cpu0).Seconds(), RSSBytes: m.rss, PeakRSSBytes: m.peak, PeakReset: m.reset, Exited: m.exited}, nil
}
