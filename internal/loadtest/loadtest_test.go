package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestHistogramQuantiles compares the histogram's percentiles with the
// exact ones of the same values: never below, and at most one bucket
// (1/64 of the value) above.
func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 7, 100, 10000} {
		var h Histogram
		vals := make([]time.Duration, n)
		for i := range vals {
			// Log-uniform from 1 ns to about 10 s.
			vals[i] = time.Duration(math.Exp2(r.Float64() * 33))
			h.Record(vals[i])
		}
		slices.Sort(vals)
		if h.Count() != uint64(n) || h.Max() != vals[n-1] {
			t.Fatalf("n=%d: count %d max %v, want %d %v", n, h.Count(), h.Max(), n, vals[n-1])
		}
		for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
			rank := int(q * float64(n))
			if float64(rank) < q*float64(n) {
				rank++
			}
			exact := vals[max(rank, 1)-1]
			got := h.Quantile(q)
			if got < exact || float64(got-exact) > float64(exact)/subBuckets+1 {
				t.Errorf("n=%d q=%v: %v, exact %v", n, q, got, exact)
			}
		}
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 {
		t.Error("empty histogram has a median")
	}
}

// TestHistogramBuckets checks every bucket's bounds meet: bucket(upper(i))
// is i and the next value is in the next bucket.
func TestHistogramBuckets(t *testing.T) {
	// The last bucket ends at the largest Duration, which has no next.
	for i := range 58*subBuckets - 1 {
		u := upper(i)
		if bucket(u) != i || bucket(u+1) != i+1 {
			t.Fatalf("bucket %d: upper %d in %d, next in %d", i, u, bucket(u), bucket(u+1))
		}
	}
}

// TestHistogramMerge: merged workers' histograms equal one that saw all.
func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for i := range 1000 {
		d := time.Duration(i*i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	if a != all {
		t.Error("merged histogram differs")
	}
}

// TestRunRequestsAndErrors: a run bounded by count makes exactly that
// many requests, counts failures by status and keeps the first error.
func TestRunRequestsAndErrors(t *testing.T) {
	var calls atomic.Int64
	boom := errors.New("refused")
	r, err := Run(context.Background(), "x", Options{Concurrency: 4, Requests: 1000}, func(_ context.Context, w int) (int, error) {
		if w < 0 || w >= 4 {
			t.Errorf("worker %d", w)
		}
		if n := calls.Add(1); n%10 == 0 {
			return 503, boom
		} else if n%25 == 1 {
			return 0, boom
		}
		return 200, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 1000 || calls.Load() != 1000 {
		t.Fatalf("%d requests, %d calls, want 1000", r.Requests, calls.Load())
	}
	if r.ErrorsByStatus["503"] != 100 || r.ErrorsByStatus["0"] != 40 || r.Errors != 140 {
		t.Errorf("errors %d %v", r.Errors, r.ErrorsByStatus)
	}
	if r.FirstError != "refused" || r.Concurrency != 4 || r.PerSecond <= 0 {
		t.Errorf("result %+v", r)
	}
}

// TestRunDuration: a run bounded by time ends near it; requests under
// way at its end finish (their context is not cancelled) and count.
func TestRunDuration(t *testing.T) {
	start := time.Now()
	var cut atomic.Int64
	r, err := Run(context.Background(), "x", Options{Concurrency: 2, Duration: 100 * time.Millisecond}, func(ctx context.Context, _ int) (int, error) {
		select {
		case <-ctx.Done():
			cut.Add(1)
			return 0, ctx.Err()
		case <-time.After(3 * time.Millisecond):
			return 200, nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 2*time.Second {
		t.Errorf("run took %v", el)
	}
	if r.Requests == 0 || r.Errors != 0 || cut.Load() != 0 || r.P50 < 3 {
		t.Errorf("result %+v, %d requests cut off", r, cut.Load())
	}
}

// TestProcessUsage reads CPU time and memory from a proc tree written
// here, then from this process.
func TestProcessUsage(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "42")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A command name with spaces and a parenthesis; utime 250, stime 50 ticks.
	stat := "42 (odd (name) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000 200\n"
	status := "Name:\todd\nVmPeak:\t  900 kB\nVmHWM:\t    3072 kB\nVmRSS:\t    2048 kB\nThreads:\t9\n"
	for name, body := range map[string]string{"stat": stat, "status": status} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := &Process{PID: 42, Root: root}
	cpu, err := p.cpu()
	if err != nil || cpu != 3*time.Second {
		t.Errorf("cpu %v %v, want 3s", cpu, err)
	}
	rss, hwm, err := p.memory()
	if err != nil || rss != 2048<<10 || hwm != 3072<<10 {
		t.Errorf("memory %d %d %v", rss, hwm, err)
	}

	// A tree: 42 (above) with a child 43 and a grandchild 44, and 45 apart;
	// 42 has reaped children of 7 + 3 ticks.
	tree := map[int]string{
		42: "42 (odd (name) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 9 0 100 1000 200\n",
		43: "43 (child) S 42 42 42 0 -1 4194560 100 0 0 0 30 10 0 0 20 0 1 0 100 1000 200\n",
		44: "44 (grandchild) S 43 42 42 0 -1 4194560 100 0 0 0 20 0 0 0 20 0 1 0 100 1000 200\n",
		45: "45 (other) S 1 45 45 0 -1 4194560 100 0 0 0 999 999 0 0 20 0 1 0 100 1000 200\n",
	}
	for pid, body := range tree {
		d := filepath.Join(root, fmt.Sprint(pid))
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := p.treeCPU(); err != nil || got != 3700*time.Millisecond {
		t.Errorf("tree CPU %v %v, want 3.7s", got, err)
	}

	// This process, spinning until /proc shows it spent 30 ms of CPU
	// (however long a loaded machine takes to give it that).
	self := &Process{PID: os.Getpid()}
	r, err := Run(context.Background(), "spin", Options{Concurrency: 1, Requests: 1, Processes: []*Process{self}}, func(context.Context, int) (int, error) {
		cpu0, err := self.cpu() // after the run's first reading
		if err != nil {
			return 0, err
		}
		for {
			cpu, err := self.cpu()
			if err != nil || cpu-cpu0 >= 30*time.Millisecond {
				return 0, err
			}
			x := 0
			for i := range 100000 {
				x += i
			}
			_ = x
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Hub == nil || r.Hub.CPUSeconds < 0.03 || r.Hub.PeakRSSBytes < r.Hub.RSSBytes || r.Hub.RSSBytes <= 0 {
		t.Errorf("usage %+v", r.Hub)
	}
}

// TestRunHubProcessDies: a hub process that exits during a run ends the
// run early with its numbers kept: the requests, errors and latencies so
// far, the process's usage up to its last reading, marked as exited, and
// a note saying so. Both ways a process can be gone from the tool's view:
// reaped by its parent (no /proc entry), and a zombie its parent has not
// waited for yet. A process gone before the run is ErrExited.
func TestRunHubProcessDies(t *testing.T) {
	for _, reap := range []bool{true, false} {
		t.Run(map[bool]string{true: "reaped", false: "zombie"}[reap], func(t *testing.T) {
			hub := exec.Command("sleep", "60")
			if err := hub.Start(); err != nil {
				t.Skip("no sleep command:", err)
			}
			waited := false
			t.Cleanup(func() {
				hub.Process.Kill()
				if !waited {
					hub.Wait()
				}
			})
			pid := hub.Process.Pid
			var calls atomic.Int64
			killed := make(chan time.Time, 1)
			start := time.Now()
			r, err := Run(context.Background(), "x", Options{Concurrency: 2, Duration: time.Minute, Processes: []*Process{{PID: pid}}},
				func(_ context.Context, w int) (int, error) {
					time.Sleep(time.Millisecond)
					n := calls.Add(1)
					if n == 100 {
						hub.Process.Kill()
						if reap {
							hub.Wait()
							waited = true
						}
						killed <- time.Now()
					}
					if n > 100 {
						return 0, errors.New("connection refused")
					}
					return 200, nil
				})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if el := time.Since(start); el > 20*time.Second {
				t.Errorf("the run went on %v, after the hub exited (its duration: a minute)", el)
			}
			if at := <-killed; time.Since(at) > 10*time.Second {
				t.Errorf("the run ended %v after the hub exited", time.Since(at))
			}
			if r.Requests < 100 || r.Requests != calls.Load() || r.Errors != r.Requests-100 || r.P50 <= 0 || r.Max < r.P50 || r.PerSecond <= 0 {
				t.Errorf("result %+v after %d calls", r, calls.Load())
			}
			if !slices.Equal(r.Exited, []int{pid}) || r.Hub == nil || !r.Hub.Exited || r.Hub.PeakRSSBytes <= 0 || r.Hub.RSSBytes <= 0 || r.Hub.CPUSeconds < 0 {
				t.Errorf("exited %v, hub usage %+v", r.Exited, r.Hub)
			}
			if !slices.ContainsFunc(r.Notes, func(n string) bool { return strings.Contains(n, fmt.Sprintf("hub process %d exited", pid)) }) {
				t.Errorf("notes %q say nothing of the exit", r.Notes)
			}

			// The next run cannot measure it.
			if _, err := Run(context.Background(), "x", Options{Requests: 1, Processes: []*Process{{PID: pid}}}, func(context.Context, int) (int, error) {
				return 200, nil
			}); !errors.Is(err, ErrExited) {
				t.Errorf("a run on the exited process: %v, want ErrExited", err)
			}
		})
	}
}
