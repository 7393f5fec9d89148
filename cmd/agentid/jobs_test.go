package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/config"
)

// TestHubsLeadJobs: two hubs on one database (PostgreSQL, and one
// SQLite file) divide the lead jobs between them, each job under one
// holder; when one stops it hands its jobs over at once (released, not
// left to expire) and the other takes them within a retry; the last to
// stop leaves no lease behind.
func TestHubsLeadJobs(t *testing.T) {
	for _, tc := range hubBackends {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env(t)
			env["AGENTID_DATA_DIR"] = t.TempDir()
			cfg, err := config.Load("", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if err != nil {
				t.Fatal(err)
			}
			hubs := make([]*hub, 2)
			stops := make([]func(), 2)
			for i := range hubs {
				h, err := newHub(t.Context(), cfg, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { h.Close() })
				hubs[i] = h
				ctx, cancel := context.WithCancel(t.Context())
				var wg sync.WaitGroup
				wg.Go(func() { h.runBackground(ctx, slog.New(slog.DiscardHandler)) })
				stops[i] = sync.OnceFunc(func() { cancel(); wg.Wait() })
				t.Cleanup(stops[i])
			}
			var names []string
			for _, j := range hubs[0].leadJobs() {
				names = append(names, j.Name)
			}
			slices.Sort(names)
			if len(slices.Compact(slices.Clone(names))) != len(names) {
				t.Fatalf("lead job names repeat: %v", names)
			}
			holders := func() map[string]string {
				t.Helper()
				ls, err := hubs[0].store.ListLeases(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				out := map[string]string{}
				for _, l := range ls {
					out[l.Name] = l.Holder
				}
				return out
			}
			// waitHeld waits until every lead job is leased by one of the
			// hubs in by.
			waitHeld := func(within time.Duration, by ...*hub) map[string]string {
				t.Helper()
				ok := map[string]bool{}
				for _, h := range by {
					ok[h.jobs.Holder()] = true
				}
				var got map[string]string
				for start := time.Now(); time.Since(start) < within; time.Sleep(20 * time.Millisecond) {
					got = holders()
					all := len(got) == len(names)
					for _, n := range names {
						all = all && ok[got[n]]
					}
					if all {
						return got
					}
				}
				t.Fatalf("after %v the leases are %v; want each of %v held by %v", within, got, names, slices.Collect(maps.Keys(ok)))
				return nil
			}
			waitHeld(5*time.Second, hubs...)

			// The first hub stops: its jobs move to the second within a
			// retry (a third of the lease), not after the lease ran out.
			stopping := time.Now()
			stops[0]()
			stopped := time.Now()
			waitHeld(jobLeaseTTL/3+2*time.Second, hubs[1])
			t.Logf("%s: the first hub took %v to stop; every job on the second %v later", tc.name, stopped.Sub(stopping), time.Since(stopped))
			stops[1]()
			if left := holders(); len(left) != 0 {
				t.Fatalf("leases left after both hubs stopped: %v", left)
			}
		})
	}
}

// TestJobsCommand: `agentid jobs` shows the leases a running hub holds,
// one holder for all on a single hub, marks a lease that ran out as ended,
// and shows nothing once the hub stopped cleanly.
func TestJobsCommand(t *testing.T) {
	e := newCLIEnv(t)
	e.env["AGENTID_LISTEN"] = "127.0.0.1:0"
	e.env["AGENTID_ISSUER"] = "https://auth.example.test"
	e.run("migrate")
	if out, _ := e.run("jobs"); !strings.Contains(out, "No background job is led right now") {
		t.Fatalf("jobs before any hub ran:\n%s", out)
	}
	h := startServe(t, e.env)
	want := len((&hub{}).leadJobs()) // every lead job, each under its lease
	var lines []jobLease
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		out, _ := e.run("jobs", "--json")
		lines = nil
		if err := json.Unmarshal([]byte(out), &lines); err != nil {
			t.Fatalf("jobs --json: %v\n%s", err, out)
		}
		if len(lines) == want || time.Since(start) > 5*time.Second {
			break
		}
	}
	if len(lines) != want {
		t.Fatalf("a running hub leads %d jobs, want %d: %+v", len(lines), want, lines)
	}
	for _, l := range lines {
		if !l.Held || l.Holder != lines[0].Holder || !l.Until.After(l.Since) {
			t.Fatalf("lease %+v: want held by one process (%s)", l, lines[0].Holder)
		}
	}
	if code := h.stop(); code != 0 {
		t.Fatalf("serve exit %d\n%s", code, h.stderr.String())
	}
	// A lease a killed process left, long run out.
	past := time.Now().Add(-time.Hour)
	if _, err := e.store().AcquireLease(t.Context(), "delete-expired", "gone/1/x", past, past.Add(jobLeaseTTL)); err != nil {
		t.Fatal(err)
	}
	out, _ := e.run("jobs")
	if !regexp.MustCompile(`(?m)^delete-expired +gone/1/x +\S+ +\S+ +ended$`).MatchString(out) || strings.Count(out, "\n") != 2 {
		t.Fatalf("jobs after the hub stopped, with a dead process's lease:\n%s", out)
	}
}
