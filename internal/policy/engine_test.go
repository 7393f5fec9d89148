package policy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// denyReadFiles is the default set plus a forbid on files:read.
func denyReadFiles() map[string]string {
	files := DefaultFiles()
	files["tighten.cedar"] = `@id("no-read")
forbid (principal, action, resource) when { resource.name == "files:read" };`
	return files
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func readRequest() *Request {
	return &Request{Action: ActionGrant, Agent: manualAgent, User: alice, Resource: homeResource,
		Scopes: []Scope{readScope}, Context: Context{GrantType: "refresh_token"}}
}

func mustDecide(t *testing.T, e *Engine) *Result {
	t.Helper()
	res, err := e.Decide(context.Background(), readRequest())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestEngineReload(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// pickUp makes the engine see the new version.
		pickUp func(e *Engine, clk *fakeClock) error
	}{
		{name: "explicit reload", pickUp: func(e *Engine, _ *fakeClock) error { return e.Reload(ctx) }},
		{name: "refresh interval", pickUp: func(_ *Engine, clk *fakeClock) error { clk.Add(3 * time.Second); return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openSQLite(t)
			clk := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
			e, err := New(ctx, Options{Store: st, Now: clk.Now, RefreshInterval: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if res := mustDecide(t, e); !res.Decisions[0].Allowed || res.Version != 0 {
				t.Fatalf("before: %+v version %d, want allowed by the built-in set", res.Decisions[0], res.Version)
			}
			createPolicySet(t, st, denyReadFiles())
			// Within the interval the engine keeps its set.
			clk.Add(time.Second)
			if res := mustDecide(t, e); !res.Decisions[0].Allowed {
				t.Fatalf("picked up the new version before the interval")
			}
			if err := tt.pickUp(e, clk); err != nil {
				t.Fatal(err)
			}
			res := mustDecide(t, e)
			if res.Decisions[0].Allowed || res.Version != 1 {
				t.Fatalf("after: %+v version %d, want denied by version 1", res.Decisions[0], res.Version)
			}
			if got := res.Decisions[0].PolicyIDs; len(got) != 1 || got[0] != "no-read" {
				t.Errorf("policies = %v", got)
			}
			// A rollback to the built-in rules, stored as version 2, and a
			// rollback to version 1 are picked up too.
			createPolicySet(t, st, DefaultFiles())
			if err := tt.pickUp(e, clk); err != nil {
				t.Fatal(err)
			}
			if res := mustDecide(t, e); !res.Decisions[0].Allowed || res.Version != 2 {
				t.Fatalf("after second change: %+v version %d", res.Decisions[0], res.Version)
			}
			if err := st.ActivatePolicySet(ctx, store.DefaultTenant, 1, nil); err != nil {
				t.Fatal(err)
			}
			if err := tt.pickUp(e, clk); err != nil {
				t.Fatal(err)
			}
			if res := mustDecide(t, e); res.Decisions[0].Allowed || res.Version != 1 {
				t.Fatalf("after rollback: %+v version %d", res.Decisions[0], res.Version)
			}
		})
	}
}

func TestEngineKeepsPreviousSet(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		breakStore func(st *fakeStore)
	}{
		{name: "invalid stored set", breakStore: func(st *fakeStore) {
			_ = st.CreatePolicySet(ctx, &store.PolicySet{Files: map[string]string{"bad.cedar": "permit (principal, action, resource) when { principal.nope };"}}, nil)
		}},
		{name: "store failure", breakStore: func(st *fakeStore) { st.failNext = errors.New("connection refused") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newFakeStore()
			if err := st.CreatePolicySet(ctx, &store.PolicySet{Files: denyReadFiles()}, nil); err != nil {
				t.Fatal(err)
			}
			clk := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
			e, err := New(ctx, Options{Store: st, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			tt.breakStore(st)
			if err := e.Reload(ctx); err == nil {
				t.Error("Reload succeeded")
			}
			res := mustDecide(t, e)
			if res.Version != 1 || res.Decisions[0].Allowed {
				t.Errorf("version %d decision %+v, want version 1 still active", res.Version, res.Decisions[0])
			}
			// The background refresh path also keeps the previous set.
			tt.breakStore(st)
			clk.Add(time.Minute)
			if res := mustDecide(t, e); res.Version != 1 {
				t.Errorf("after interval: version %d, want 1", res.Version)
			}
		})
	}
}

func TestNewRefusesInvalidActiveSet(t *testing.T) {
	ctx := context.Background()
	st := newFakeStore()
	_ = st.CreatePolicySet(ctx, &store.PolicySet{Files: map[string]string{"bad.cedar": "permit (principal, action, resource)\nwhen { resource.nope };"}}, nil)
	_, err := New(ctx, Options{Store: st})
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a *ValidationError", err)
	}
	if !strings.Contains(err.Error(), "bad.cedar:1:1:") {
		t.Errorf("error lacks the position: %v", err)
	}
}

func TestEngineUsesClockAndTenant(t *testing.T) {
	ctx := context.Background()
	st := newFakeStore()
	_ = st.CreatePolicySet(ctx, &store.PolicySet{Files: map[string]string{"t.cedar": `@id("only-in-2030")
permit (principal, action, resource)
when { context.time >= datetime("2030-01-01") && context.tenant == Tenant::"acme" && resource.tenant == Tenant::"acme" };`}}, nil)
	tests := []struct {
		name  string
		now   time.Time
		allow bool
	}{
		{name: "before", now: time.Date(2029, 12, 31, 0, 0, 0, 0, time.UTC)},
		{name: "after", now: time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC), allow: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(ctx, Options{Store: st, TenantID: "acme", Now: func() time.Time { return tt.now }})
			if err != nil {
				t.Fatal(err)
			}
			res, err := e.Decide(ctx, &Request{Action: ActionGrant, Agent: manualAgent,
				Resource: Resource{URI: testResource}, Scopes: []Scope{readScope}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Decisions[0].Allowed != tt.allow {
				t.Errorf("allowed = %v, want %v", res.Decisions[0].Allowed, tt.allow)
			}
		})
	}
}

func TestEngineConcurrentDecide(t *testing.T) {
	ctx := context.Background()
	st := newFakeStore()
	clk := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	e, err := New(ctx, Options{Store: st, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				if i == 0 && j%10 == 0 {
					_ = st.CreatePolicySet(ctx, &store.PolicySet{Files: denyReadFiles()}, nil)
					clk.Add(3 * time.Second)
				}
				if _, err := e.Decide(ctx, readRequest()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestEngineReadsStoreOncePerInterval(t *testing.T) {
	ctx := context.Background()
	st := newFakeStore()
	clk := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	e, err := New(ctx, Options{Store: st, Now: clk.Now, RefreshInterval: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		advance   time.Duration
		decisions int
		loads     int
	}{
		{name: "within the interval", advance: time.Second, decisions: 100, loads: 0},
		{name: "interval passed", advance: 2 * time.Second, decisions: 100, loads: 1},
		{name: "next interval", advance: 2 * time.Second, decisions: 1, loads: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := st.loads
			clk.Add(tt.advance)
			for range tt.decisions {
				mustDecide(t, e)
			}
			if got := st.loads - before; got != tt.loads {
				t.Errorf("store read %d times, want %d", got, tt.loads)
			}
		})
	}
}
