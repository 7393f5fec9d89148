package policy

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// fullRequest sets every field of a Request, so that changing any one of
// them is a change from a set value.
func fullRequest() *Request {
	return &Request{
		Action:   ActionGrant,
		TenantID: store.DefaultTenant,
		Agent: Agent{ID: "a", RegistrationMethod: "dcr", ClientType: "public", SoftwareID: "sw",
			VerifiedDomain: "agent.example", DomainTrust: store.DomainAllowed, CreatedIP: "192.0.2.7", OwnerUserID: "bob", Tags: []string{"x", "cc:s"}},
		User:     &User{ID: "u", TenantID: store.DefaultTenant, Roles: []string{"r"}, Groups: []string{"g"}, Attributes: map[string]string{"department": "sales", "site": "b"}},
		Resource: Resource{URI: testResource, Name: "Files", TenantID: store.DefaultTenant, Tags: []string{"prod"}},
		Scopes:   []Scope{{Name: "s", Sensitive: true}, {Name: "t"}},
		Context: Context{GrantType: "authorization_code", IP: "10.1.2.3", AuthMethod: "none",
			Time: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), AuthAge: 90 * time.Second, ChainDepth: 2,
			Actors: []string{"b", "a"}, FirstActor: "a", Resource: testResource, SoftwareIssuer: "https://sw.example"},
		Service: &Service{Name: "github", TenantID: store.DefaultTenant},
	}
}

// notInKey are the request fields the decision key leaves out: the action
// (DecideAs decides under its own list) and the volatile context, which a
// cached set never reads.
var notInKey = map[string]bool{"Action": true, "Context.Time": true, "Context.AuthAge": true}

// requestChanges calls change once for each way of changing one field of
// v (a field, an element of a list or map, a list's or map's length, a
// pointer to nil), in a fixed order. An unknown kind of field fails the
// test: a new field needs its place in the key decided.
func requestChanges(t *testing.T, v reflect.Value, name string, change func(name string, apply func())) {
	switch v.Kind() {
	case reflect.String:
		change(name, func() { v.SetString(v.String() + "x") })
	case reflect.Int, reflect.Int64:
		change(name, func() { v.SetInt(v.Int() + 1) })
	case reflect.Bool:
		change(name, func() { v.SetBool(!v.Bool()) })
	case reflect.Pointer:
		elem := v.Elem() // walked even when the change below set v to nil
		change(name+"=nil", func() { v.SetZero() })
		requestChanges(t, elem, name, change)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			change(name, func() { v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Second))) })
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			n := f.Name
			if name != "" {
				n = name + "." + f.Name
			}
			requestChanges(t, v.Field(i), n, change)
		}
	case reflect.Slice:
		if v.Len() == 0 {
			t.Fatalf("%s: set it in fullRequest", name)
		}
		elems := make([]reflect.Value, v.Len()) // walked even when a change below resliced v
		for i := range elems {
			elems[i] = v.Index(i)
		}
		change(name+" longer", func() { v.Set(reflect.Append(v, v.Index(0))) })
		change(name+" shorter", func() { v.Set(v.Slice(0, v.Len()-1)) })
		for i, e := range elems {
			requestChanges(t, e, fmt.Sprintf("%s[%d]", name, i), change)
		}
	case reflect.Map:
		if v.Type() != reflect.TypeFor[map[string]string]() || v.Len() == 0 {
			t.Fatalf("%s: a map of strings set in fullRequest", name)
		}
		change(name+" longer", func() { v.SetMapIndex(reflect.ValueOf("added"), reflect.ValueOf("v")) })
		for _, k := range v.MapKeys() {
			change(fmt.Sprintf("%s[%s]", name, k), func() { v.SetMapIndex(k, reflect.ValueOf(v.MapIndex(k).String()+"x")) })
		}
	default:
		t.Fatalf("%s: kind %s has no place in the decision key yet", name, v.Kind())
	}
}

// TestDecisionKeyCoversRequest: changing any field of a request, except
// those notInKey, changes its decision key; changing those does not. A
// field added to Request (or to any struct in it) fails here until the key
// holds it.
func TestDecisionKeyCoversRequest(t *testing.T) {
	acts := []Action{ActionGrant, ActionRegister}
	base := appendDecisionKey(nil, fullRequest(), acts)
	var names []string
	requestChanges(t, reflect.ValueOf(fullRequest()).Elem(), "", func(name string, _ func()) { names = append(names, name) })
	if len(names) < 40 {
		t.Fatalf("only %d changes found: %v", len(names), names)
	}
	for k, name := range names {
		req := fullRequest()
		i := 0
		requestChanges(t, reflect.ValueOf(req).Elem(), "", func(_ string, apply func()) {
			if i == k {
				apply()
			}
			i++
		})
		got := appendDecisionKey(nil, req, acts)
		changed := !bytes.Equal(got, base)
		if notInKey[name] && changed {
			t.Errorf("%s changed the key; it is left out on purpose", name)
		}
		if !notInKey[name] && !changed {
			t.Errorf("%s is not in the decision key", name)
		}
	}
	// The actions decided are in the key, in order.
	for _, other := range [][]Action{{ActionGrant}, {ActionRegister, ActionGrant}, {ActionExchange, ActionRegister}} {
		if bytes.Equal(appendDecisionKey(nil, fullRequest(), other), base) {
			t.Errorf("actions %v share the key of %v", other, acts)
		}
	}
}

// TestDecisionKeyUnambiguous: values that concatenate to the same text
// still give different keys.
func TestDecisionKeyUnambiguous(t *testing.T) {
	pairs := []struct {
		name string
		a, b func(*Request)
	}{
		{"tags split", func(r *Request) { r.Agent.Tags = []string{"ab"} }, func(r *Request) { r.Agent.Tags = []string{"a", "b"} }},
		{"field boundary", func(r *Request) { r.Agent.ID, r.Agent.SoftwareID = "a", "bc" }, func(r *Request) { r.Agent.ID, r.Agent.SoftwareID = "ab", "c" }},
		{"scope name and flag", func(r *Request) { r.Scopes = []Scope{{Name: "s\x01"}} }, func(r *Request) { r.Scopes = []Scope{{Name: "s", Sensitive: true}} }},
		{"attribute key and value", func(r *Request) { r.User.Attributes = map[string]string{"ab": "c"} }, func(r *Request) { r.User.Attributes = map[string]string{"a": "bc"} }},
		{"roles and groups", func(r *Request) { r.User.Roles, r.User.Groups = []string{"x"}, nil }, func(r *Request) { r.User.Roles, r.User.Groups = nil, []string{"x"} }},
		{"no user, empty user", func(r *Request) { r.User = nil }, func(r *Request) { r.User = &User{} }},
		{"no service, empty service", func(r *Request) { r.Service = nil }, func(r *Request) { r.Service = &Service{} }},
	}
	for _, p := range pairs {
		a, b := fullRequest(), fullRequest()
		p.a(a)
		p.b(b)
		if bytes.Equal(appendDecisionKey(nil, a, []Action{ActionGrant}), appendDecisionKey(nil, b, []Action{ActionGrant})) {
			t.Errorf("%s: one key for two requests", p.name)
		}
	}
	// Map order does not matter: equal maps, equal keys.
	a, b := fullRequest(), fullRequest()
	b.User.Attributes = map[string]string{"site": "b", "department": "sales"}
	for range 20 {
		if !bytes.Equal(appendDecisionKey(nil, a, nil), appendDecisionKey(nil, b, nil)) {
			t.Fatal("equal attributes, different keys")
		}
	}
}

// TestVolatileContextNotCached: a set that can read the time or the
// login's age, by name or through the context record used whole, decides
// every request afresh; any other set remembers its decisions.
func TestVolatileContextNotCached(t *testing.T) {
	tests := []struct {
		cond   string
		cached bool
	}{
		{`context.grant_type == "client_credentials"`, true},
		{`context has user && context.user.roles.contains("a")`, true},
		{`context has ip && context.ip.isInRange(ip("10.0.0.0/8"))`, true},
		{`principal.tags.contains("x") && resource.sensitive`, true},
		{`context.time > datetime("2025-01-01")`, false},
		{`context has auth_age_seconds && context.auth_age_seconds < 300`, false},
		{`context has time`, false},
		{`context has user && context.user.tenant == resource.tenant && context.time < datetime("2030-01-01")`, false},
		{`(if context has user then context else context).grant_type == "x"`, false},
		{`[context].contains(context)`, false},
	}
	for _, tt := range tests {
		t.Run(tt.cond, func(t *testing.T) {
			s, err := Compile(map[string]string{"a.cedar": "permit (principal, action, resource) when { " + tt.cond + " };"})
			if err != nil {
				t.Fatal(err)
			}
			if s.cached != tt.cached {
				t.Errorf("cached = %v, want %v", s.cached, tt.cached)
			}
		})
	}
	// The unless conditions count too, and one policy is enough.
	files := DefaultFiles()
	files["late.cedar"] = `forbid (principal, action, resource) unless { context.time < datetime("2030-01-01") };`
	s, err := Compile(files)
	if err != nil {
		t.Fatal(err)
	}
	if s.cached {
		t.Error("a set with one unless reading context.time is cached")
	}
	if !defaultSet(t).cached {
		t.Error("the default set reads no volatile context, yet is not cached")
	}
}

// TestDecisionsFollowTheClock: with a policy reading context.time, the
// same request decided at two times gets the answer of each time.
func TestDecisionsFollowTheClock(t *testing.T) {
	s, err := Compile(map[string]string{"a.cedar": `
permit (principal, action, resource);
@id("after-june")
forbid (principal, action, resource) when { context.time > datetime("2025-06-01") };`})
	if err != nil {
		t.Fatal(err)
	}
	req := &Request{Agent: manualAgent, Resource: homeResource, Scopes: []Scope{readScope}}
	for _, step := range []struct {
		at      time.Time
		allowed bool
	}{
		{time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), false},
		{time.Date(2025, 5, 2, 0, 0, 0, 0, time.UTC), true},
	} {
		req.Context.Time = step.at
		res, err := s.DecideAs(req, ActionGrant)
		if err != nil {
			t.Fatal(err)
		}
		if got := res[0].Decisions[0].Allowed; got != step.allowed {
			t.Errorf("at %v: allowed = %v, want %v", step.at, got, step.allowed)
		}
	}
}

// TestDecisionCacheExact: a cached set answers every request exactly as
// the same set deciding afresh, over random policy sets and requests that
// come back in random order (so that most answers are from the cache).
func TestDecisionCacheExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	actionLists := [][]Action{{ActionGrant, ActionRegister}, {ActionExchange, ActionRegister}, {ActionRegister}, {ActionConnect}}
	hits := 0
	for i := range 200 {
		files := randomFiles(r)
		cached, err := Compile(files)
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := Compile(files)
		if err != nil {
			t.Fatal(err)
		}
		fresh.cached = false
		// Requests that differ in one context attribute only, too: a
		// key without it would answer one with another's decisions.
		var reqs []*Request
		for range 2 {
			base := randomRequest(r)
			for _, ip := range []string{"", "10.0.0.1", "192.0.2.1"} {
				for _, actors := range [][]string{nil, {"a3"}} {
					req := *base
					req.Context.IP, req.Context.Actors = ip, actors
					reqs = append(reqs, &req)
				}
			}
		}
		for range 40 {
			req := reqs[r.IntN(len(reqs))]
			acts := actionLists[r.IntN(len(actionLists))]
			if _, ok := cached.decisions.get(appendDecisionKey(nil, req, acts)); ok {
				hits++
			}
			got, err := cached.DecideAs(req, acts...)
			if err != nil {
				t.Fatal(err)
			}
			want, err := fresh.DecideAs(req, acts...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("set %d, %v of %+v:\n cached %+v\n  fresh %+v\nfiles %v", i, acts, req, got, want, files)
			}
		}
	}
	if hits < 1000 {
		t.Fatalf("only %d answers came from the cache", hits)
	}
}

// TestDecisionCacheCopies: what a caller does to its results changes
// nothing of what the next caller gets.
func TestDecisionCacheCopies(t *testing.T) {
	s := defaultSet(t)
	req := &Request{Agent: ccAgent, Resource: homeResource, Scopes: []Scope{readScope, deleteScope}, Context: Context{GrantType: "client_credentials"}}
	// The first caller gets the results decided, the second the cache's.
	for range 2 {
		first, err := s.DecideAs(req, ActionGrant, ActionRegister)
		if err != nil {
			t.Fatal(err)
		}
		first[0].Granted[0] = "changed"
		first[0].Decisions[0].Allowed = false
		first[0].Decisions[0].PolicyIDs = append(first[0].Decisions[0].PolicyIDs, "appended")
		first[1].Version = 99
		first[1] = nil
	}
	want, err := s.decideEach(req, []Action{ActionGrant, ActionRegister})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, err := s.DecideAs(req, ActionGrant, ActionRegister)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after a caller changed its results: %+v, want %+v", got, want)
		}
	}
}

// TestDecisionCacheBounded: the cache never holds more than cacheMax
// requests' decisions.
func TestDecisionCacheBounded(t *testing.T) {
	s := defaultSet(t)
	for i := range cacheMax + 10 {
		req := &Request{Agent: Agent{ID: fmt.Sprint("agent-", i)}, Resource: homeResource, Scopes: []Scope{readScope}}
		if _, err := s.DecideAs(req, ActionGrant); err != nil {
			t.Fatal(err)
		}
		if n := len(s.decisions.m); n > cacheMax {
			t.Fatalf("%d entries after %d requests", n, i+1)
		}
	}
}

// TestNewPolicyVersionDecidesAfresh: decisions remembered under one
// version are not answers under the next: the engine's reload (what the
// change feed calls on a policy change) swaps the set and its cache.
func TestNewPolicyVersionDecidesAfresh(t *testing.T) {
	ctx := context.Background()
	st := newFakeStore()
	e, err := New(ctx, Options{Store: st, RefreshInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	req := &Request{Agent: ccAgent, Resource: homeResource, Scopes: []Scope{readScope}, Context: Context{GrantType: "client_credentials"}}
	decide := func() Decision {
		t.Helper()
		res, err := e.DecideAs(ctx, req, ActionGrant, ActionRegister)
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Decisions[0]
	}
	for range 2 {
		if d := decide(); !d.Allowed {
			t.Fatalf("default set: %+v", d)
		}
	}
	files := DefaultFiles()
	files["no-cc.cedar"] = `@id("no-cc") forbid (principal, action, resource) when { context.grant_type == "client_credentials" };`
	if err := st.CreatePolicySet(ctx, &store.PolicySet{Files: files}, nil); err != nil {
		t.Fatal(err)
	}
	if d := decide(); !d.Allowed {
		t.Fatalf("before the reload the active set is still the default: %+v", d)
	}
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if d := decide(); d.Allowed || len(d.PolicyIDs) != 1 || d.PolicyIDs[0] != "no-cc" {
		t.Fatalf("after the reload: %+v, want denied by no-cc", d)
	}
	// And back to the default rules, as a third version.
	if err := st.CreatePolicySet(ctx, &store.PolicySet{Files: DefaultFiles()}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if d := decide(); !d.Allowed {
		t.Fatalf("after the default set came back: %+v", d)
	}
}

// TestDecisionCacheConcurrent: deciding from many goroutines at once, with
// the cache filling and emptying, gives every caller the fresh answer (run
// with -race).
func TestDecisionCacheConcurrent(t *testing.T) {
	files := map[string]string{}
	for i, src := range policyPool {
		files[fmt.Sprintf("p%02d.cedar", i)] = src
	}
	s, err := Compile(files)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := Compile(files)
	if err != nil {
		t.Fatal(err)
	}
	fresh.cached = false
	r := rand.New(rand.NewPCG(5, 6))
	reqs := make([]*Request, 64)
	want := make([][]*Result, len(reqs))
	for i := range reqs {
		reqs[i] = randomRequest(r)
		if want[i], err = fresh.DecideAs(reqs[i], ActionGrant, ActionRegister); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 300 {
				i := (g*31 + n*7) % len(reqs)
				got, err := s.DecideAs(reqs[i], ActionGrant, ActionRegister)
				if err != nil {
					t.Error(err)
					return
				}
				if !reflect.DeepEqual(got, want[i]) {
					t.Errorf("request %d: %+v, want %+v", i, got, want[i])
					return
				}
				got[0].Granted = append(got[0].Granted, "mine")
				if n%50 == 0 {
					s.decisions.mu.Lock()
					clear(s.decisions.m)
					s.decisions.mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
}
