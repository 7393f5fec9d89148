package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestAtEveryReplicaWithinLateSuccess checks the multi-replica tests'
// "within 2 s" on a fake clock (testing/synctest), with replicas whose
// check starts holding at a chosen moment: a change seen everywhere
// before the bound passes and reports when; one that holds only after
// the bound fails even though the polling goes on to see it hold, and so
// does a check that was asked in time but answered after the bound; one
// that never holds fails with its last answer.
func TestAtEveryReplicaWithinLateSuccess(t *testing.T) {
	const limit = 2 * time.Second
	for _, tc := range []struct {
		name string
		// arrives is when each replica's check starts holding, from the
		// change; answer is how long each check takes to return.
		arrives map[string]time.Duration
		answer  time.Duration
		failed  []string // the replicas named as failures
	}{
		{name: "in time", arrives: map[string]time.Duration{"r1": 0, "r2": 700 * time.Millisecond, "r3": 1900 * time.Millisecond}},
		{name: "late success", arrives: map[string]time.Duration{"r1": 0, "r2": limit + 10*time.Millisecond, "r3": time.Second}, failed: []string{"r2: held only after"}},
		{name: "far too late", arrives: map[string]time.Duration{"r1": 3 * time.Second, "r2": 0, "r3": 0}, failed: []string{"r1: "}},
		{name: "never", arrives: map[string]time.Duration{"r1": 0, "r2": 0, "r3": time.Hour}, failed: []string{"r3: not yet"}},
		{name: "slow answer", arrives: map[string]time.Duration{"r1": 0, "r2": 0, "r3": 0}, answer: limit + 500*time.Millisecond,
			failed: []string{"r1: held only after 2.5s", "r2: held only after 2.5s", "r3: held only after 2.5s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var rs []*replica
				for name := range tc.arrives {
					rs = append(rs, &replica{name: name})
				}
				slices.SortFunc(rs, func(a, b *replica) int { return strings.Compare(a.name, b.name) })
				since := time.Now()
				p, failed := pollEveryReplica(since, limit, rs, func(r *replica) error {
					asked := time.Since(since)
					time.Sleep(tc.answer)
					if asked < tc.arrives[r.name] {
						return errors.New("not yet")
					}
					return nil
				})
				if len(failed) != len(tc.failed) {
					t.Fatalf("failures %q, want %q", failed, tc.failed)
				}
				for i, f := range failed {
					if !strings.HasPrefix(f, tc.failed[i]) {
						t.Errorf("failure %q, want %q…", f, tc.failed[i])
					}
				}
				if len(failed) > 0 {
					return
				}
				// Each replica's time is its first poll at or after its
				// arrival (polls every 20 ms).
				for name, at := range tc.arrives {
					if took := p[name]; took < at || took > at+20*time.Millisecond {
						t.Errorf("%s took %v, arrived at %v", name, took, at)
					}
				}
			})
		})
	}
}
