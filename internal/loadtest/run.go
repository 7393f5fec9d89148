// Package loadtest drives a running agentid hub over HTTP and measures it:
// requests per second, latency percentiles from a bounded histogram,
// errors by status, and the hub process's CPU time and peak memory when it
// runs on this machine. The scenarios (client credentials, refresh
// rotation, token exchange, introspection, vault retrieval) are ordinary
// OAuth requests to the hub's public endpoints; mcpauth verification is
// measured locally against the hub's JWKS, beside raw crypto/ecdsa
// verification of the same tokens. `agentid bench` is its command line.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Op is one request of a scenario, made by worker (0 ≤ worker <
// concurrency). It returns the HTTP status of the answer (0 when there
// was none, such as a local verification) and an error when the request
// did not do what the scenario expects.
type Op func(ctx context.Context, worker int) (status int, err error)

// Options says how long and how hard to drive a scenario.
type Options struct {
	// Concurrency is the number of workers, each making one request at a
	// time. Zero means 32.
	Concurrency int
	// Duration bounds the run by time; Requests by count. With both, the
	// run ends at whichever comes first; with neither, Duration is 5 s.
	Duration time.Duration
	Requests int64
	// Processes are the hub's processes (one per replica) whose CPU time
	// and memory the run reports, summed, and each apart when there are
	// several.
	Processes []*Process
	// Database, when set, is the database server's main process: the run
	// reports the CPU time of it and all its descendants.
	Database *Process
}

// Result is what one run of a scenario measured. Latencies are in
// milliseconds.
type Result struct {
	Scenario    string  `json:"scenario"`
	Concurrency int     `json:"concurrency"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"requests_per_second"`
	P50         float64 `json:"p50_ms"`
	P90         float64 `json:"p90_ms"`
	P99         float64 `json:"p99_ms"`
	Max         float64 `json:"max_ms"`
	// ErrorsByStatus counts the failed requests by the HTTP status of
	// their answer ("0": no answer, or a local failure).
	ErrorsByStatus map[string]int64 `json:"errors_by_status,omitempty"`
	// FirstError is the text of a failure (the first that the lowest-
	// numbered failing worker saw), for a reader to start from; it never
	// holds a token or secret (the ops' errors do not).
	FirstError string `json:"first_error,omitempty"`
	// Hub is the hub's usage during the run, when known: with several
	// processes (replicas) their sum, CPU time and peak memory alike (each
	// process's own peak, added).
	Hub *Usage `json:"hub,omitempty"`
	// Hubs is each process's usage, in the order given, when there are
	// several.
	Hubs []*Usage `json:"hubs,omitempty"`
	// Database is the database server's CPU time during the run, when
	// known (Options.Database).
	Database *CPUUsage `json:"database,omitempty"`
	// ClientCPUPerRequestMicros is this process's own CPU time per
	// request (the load tool's share of a machine it shares with the
	// hub), from getrusage(2) over the run.
	ClientCPUPerRequestMicros float64 `json:"client_cpu_us_per_request,omitempty"`
	// StoreGrowthBytes is how much the hub's database grew during the
	// run, and StoreBytesPerRequest that per successful request, when the
	// caller could measure it.
	StoreGrowthBytes     int64   `json:"store_growth_bytes,omitempty"`
	StoreBytesPerRequest float64 `json:"store_bytes_per_request,omitempty"`
	// VerifyRatio is, on an mcpauth-verify result, its rate as a share of
	// raw-verify's (the median of interleaved pairs), when both ran.
	VerifyRatio float64 `json:"verify_ratio,omitempty"`
	// Exited are the hub processes (PIDs of Options.Processes) that
	// exited during the run; the first one's exit ended it.
	Exited []int `json:"exited_pids,omitempty"`
	// Notes are facts about the run a reader needs (e.g. how many
	// distinct tokens were presented).
	Notes []string `json:"notes,omitempty"`
}

type worker struct {
	h        Histogram
	n        int64
	errs     map[int]int64
	firstErr error
}

// Run drives op with opts and returns what it measured. Workers start no
// request after the run's duration; those under way finish and count. It
// stops early, with what it has, when ctx ends (then with ctx's error as
// well) or when a process of opts.Processes exits (Result.Exited). A
// process that has already exited at the start is ErrExited.
func Run(ctx context.Context, name string, opts Options, op Op) (*Result, error) {
	conc := opts.Concurrency
	if conc <= 0 {
		conc = 32
	}
	dur := opts.Duration
	if dur <= 0 && opts.Requests <= 0 {
		dur = 5 * time.Second
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if dur > 0 {
		runCtx, cancel = context.WithTimeout(runCtx, dur)
		defer cancel()
	}
	// A hub process that exits ends the run: what follows would measure
	// only refused connections.
	stopRun := cancel
	var mons []*monitor
	for _, p := range opts.Processes {
		m, err := startMonitor(p, stopRun)
		if err != nil {
			for _, m := range mons {
				m.stop()
			}
			return nil, err
		}
		mons = append(mons, m)
	}
	var db0 time.Duration
	if opts.Database != nil {
		var err error
		if db0, err = opts.Database.treeCPU(); err != nil {
			return nil, fmt.Errorf("reading the database server's processes: %w", err)
		}
	}
	selfCPU0, selfErr := selfCPU()
	var issued atomic.Int64
	ws := make([]*worker, conc)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range ws {
		w := &worker{errs: map[int]int64{}}
		ws[i] = w
		wg.Go(func() {
			for runCtx.Err() == nil {
				if opts.Requests > 0 && issued.Add(1) > opts.Requests {
					return
				}
				// The request runs to its end even past the run's: one cut
				// off could leave the hub in a state the tool never learns
				// (a rotated refresh token whose successor is lost).
				t0 := time.Now()
				status, err := op(ctx, i)
				d := time.Since(t0)
				w.n++
				w.h.Record(d)
				if err != nil {
					w.errs[status]++
					if w.firstErr == nil {
						w.firstErr = err
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// The tool's own CPU time: the workers' window, before the readings
	// of the hub's and database's processes below.
	selfCPU1, selfErr1 := selfCPU()
	r := &Result{Scenario: name, Concurrency: conc, Seconds: elapsed.Seconds()}
	var h Histogram
	for _, w := range ws {
		h.Merge(&w.h)
		r.Requests += w.n
		for st, n := range w.errs {
			if r.ErrorsByStatus == nil {
				r.ErrorsByStatus = map[string]int64{}
			}
			r.ErrorsByStatus[strconv.Itoa(st)] += n
			r.Errors += n
		}
		if r.FirstError == "" && w.firstErr != nil {
			r.FirstError = w.firstErr.Error()
		}
	}
	if len(mons) > 0 {
		var errs []error
		total := &Usage{PeakReset: true}
		for _, m := range mons {
			u, err := m.stop()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if r.Requests > 0 {
				u.CPUPerRequestMicros = u.CPUSeconds * 1e6 / float64(r.Requests)
			}
			if u.Exited {
				r.Exited = append(r.Exited, m.p.PID)
				r.Notes = append(r.Notes, fmt.Sprintf("the hub process %d exited during the run, which ended then; its CPU time and memory are those of its last reading", m.p.PID))
			}
			total.CPUSeconds += u.CPUSeconds
			total.CPUPerRequestMicros += u.CPUPerRequestMicros
			total.PeakRSSBytes += u.PeakRSSBytes
			total.RSSBytes += u.RSSBytes
			total.PeakReset = total.PeakReset && u.PeakReset
			total.Exited = total.Exited || u.Exited
			r.Hubs = append(r.Hubs, u)
		}
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		r.Hub = total
		if len(r.Hubs) == 1 {
			r.Hubs = nil
		}
	}
	if opts.Database != nil {
		// The measurement stands without it: a server that went away
		// shows in the requests' errors.
		if db1, err := opts.Database.treeCPU(); err != nil {
			r.Notes = append(r.Notes, fmt.Sprintf("the database server's CPU time is unknown: reading process %d at the end: %v", opts.Database.PID, err))
		} else {
			r.Database = &CPUUsage{CPUSeconds: (db1 - db0).Seconds()}
			if r.Requests > 0 {
				r.Database.CPUPerRequestMicros = r.Database.CPUSeconds * 1e6 / float64(r.Requests)
			}
		}
	}
	if selfErr == nil && selfErr1 == nil && r.Requests > 0 {
		r.ClientCPUPerRequestMicros = float64((selfCPU1 - selfCPU0).Microseconds()) / float64(r.Requests)
	}
	if elapsed > 0 {
		r.PerSecond = float64(r.Requests) / elapsed.Seconds()
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r.P50, r.P90, r.P99, r.Max = ms(h.Quantile(0.50)), ms(h.Quantile(0.90)), ms(h.Quantile(0.99)), ms(h.Max())
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("%s: %w", name, err)
	}
	return r, nil
}
