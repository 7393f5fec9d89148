package mcpauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/agentid/agentid/mcpauth"
)

const (
	downstream     = "https://api.example.com/notes"
	exchClientID   = "mcp:notes server" // needs form-urlencoding in Basic
	exchSecret     = "s3cret&=/+%"
	incomingToken  = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2ln"
	incomingToken2 = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyLTIifQ.c2ln"
)

// fakeTokenEndpoint is an authorization server with RFC 8414 metadata and a
// token endpoint whose answers the test scripts. It records every request.
type fakeTokenEndpoint struct {
	srv      *httptest.Server // nil for newFakeTokenEndpointHandler
	url      string
	handler  http.Handler
	requests atomic.Int64

	mu      sync.Mutex
	forms   []url.Values
	auths   [][2]string
	respond func(n int, form url.Values) (int, any) // n counts from 1
	gate    chan struct{}                           // when set, each request waits for it
}

func newFakeTokenEndpoint(t testing.TB) *fakeTokenEndpoint {
	f := newFakeTokenEndpointHandler(t)
	f.srv = httptest.NewServer(f.handler)
	f.url = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

// newFakeTokenEndpointHandler makes the endpoint without a listener, to be
// reached through [inMemory] at a made-up loopback URL.
func newFakeTokenEndpointHandler(t testing.TB) *fakeTokenEndpoint {
	f := &fakeTokenEndpoint{url: "http://127.0.0.1:9"}
	f.respond = func(n int, form url.Values) (int, any) {
		return http.StatusOK, map[string]any{
			"access_token":      fmt.Sprintf("exchanged-%d", n),
			"issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
			"token_type":        "Bearer",
			"expires_in":        300,
			"scope":             form.Get("scope"),
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":         f.url,
			"token_endpoint": f.url + "/token",
			"jwks_uri":       f.url + "/jwks",
		})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		n := int(f.requests.Add(1))
		if err := r.ParseForm(); err != nil {
			t.Errorf("token request: %v", err)
		}
		id, secret, _ := r.BasicAuth()
		f.mu.Lock()
		f.forms = append(f.forms, r.PostForm)
		f.auths = append(f.auths, [2]string{id, secret})
		respond, gate := f.respond, f.gate
		f.mu.Unlock()
		if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("token request Content-Type %q", r.Header.Get("Content-Type"))
		}
		if gate != nil {
			<-gate
		}
		status, body := respond(n, r.PostForm)
		w.Header().Set("Cache-Control", "no-store")
		if s, ok := body.(string); ok {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(s))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	})
	f.handler = mux
	return f
}

func (f *fakeTokenEndpoint) setRespond(fn func(n int, form url.Values) (int, any)) {
	f.mu.Lock()
	f.respond = fn
	f.mu.Unlock()
}

func (f *fakeTokenEndpoint) count() int { return int(f.requests.Load()) }

func newExchanger(t testing.TB, f *fakeTokenEndpoint, clk *clock, mutate func(*mcpauth.ExchangerConfig)) *mcpauth.Exchanger {
	t.Helper()
	cfg := mcpauth.ExchangerConfig{Issuer: f.url, ClientID: exchClientID, ClientSecret: exchSecret, Now: clk.Now}
	if mutate != nil {
		mutate(&cfg)
	}
	ex, err := mcpauth.NewExchanger(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewExchanger: %v", err)
	}
	return ex
}

// TestExchangeRequest checks the RFC 8693 §2.1 request and the result.
func TestExchangeRequest(t *testing.T) {
	f := newFakeTokenEndpoint(t)
	clk := newClock()
	ex := newExchanger(t, f, clk, nil)

	tok, err := ex.Exchange(context.Background(), incomingToken, downstream, "notes:write", "notes:read", "notes:read")
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if tok.AccessToken != "exchanged-1" || !tok.ExpiresAt.Equal(clk.Now().Add(300*time.Second)) ||
		strings.Join(tok.Scopes, " ") != "notes:read notes:write" {
		t.Errorf("token = %+v", tok)
	}
	want := url.Values{
		"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":        {incomingToken},
		"subject_token_type":   {"urn:ietf:params:oauth:token-type:access_token"},
		"requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"resource":             {downstream},
		"scope":                {"notes:read notes:write"},
	}
	if got := f.forms[0]; got.Encode() != want.Encode() {
		t.Errorf("form = %v\nwant   %v", got, want)
	}
	// RFC 6749 §2.3.1: Basic credentials are form-urlencoded first.
	id, _ := url.QueryUnescape(f.auths[0][0])
	secret, _ := url.QueryUnescape(f.auths[0][1])
	if id != exchClientID || secret != exchSecret {
		t.Errorf("basic auth = %q, %q", id, secret)
	}

	// Without scopes: no scope parameter; the granted ones come from the
	// response.
	f.setRespond(func(n int, form url.Values) (int, any) {
		return http.StatusOK, map[string]any{
			"access_token": "t", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
			"token_type": "bearer", "expires_in": 60, "scope": "notes:read",
		}
	})
	tok, err = ex.Exchange(context.Background(), incomingToken, downstream)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if f.forms[1].Has("scope") || strings.Join(tok.Scopes, " ") != "notes:read" {
		t.Errorf("form %v, scopes %q", f.forms[1], tok.Scopes)
	}
	// The caller may modify what it gets without touching the cache.
	tok.Scopes[0] = "changed"
	again, _ := ex.Exchange(context.Background(), incomingToken, downstream)
	if f.count() != 2 || again.Scopes[0] != "notes:read" {
		t.Errorf("cache shared the caller's copy: %d requests, %q", f.count(), again.Scopes)
	}
}

// TestExchangeCache walks a moving clock through cache hits, keys, refresh
// shortly before expiry, and the bound.
func TestExchangeCache(t *testing.T) {
	type call struct {
		advance time.Duration
		token   string
		scopes  []string
		res     string
		want    string // AccessToken expected ("exchanged-N" is the Nth request)
	}
	cases := []struct {
		name      string
		expiresIn any // nil: omitted
		cfg       func(*mcpauth.ExchangerConfig)
		calls     []call
	}{
		{
			name: "hit until RefreshBefore ahead of expiry", expiresIn: 300,
			calls: []call{
				{want: "exchanged-1"},
				{advance: 100 * time.Second, want: "exchanged-1"},
				{advance: 169 * time.Second, want: "exchanged-1"}, // 269 s: 31 s left
				{advance: time.Second, want: "exchanged-2"},       // 270 s: refresh
				{advance: 269 * time.Second, want: "exchanged-2"},
				{advance: time.Second, want: "exchanged-3"},
			},
		},
		{
			name: "custom RefreshBefore", expiresIn: 300,
			cfg: func(c *mcpauth.ExchangerConfig) { c.RefreshBefore = 2 * time.Minute },
			calls: []call{
				{want: "exchanged-1"},
				{advance: 179 * time.Second, want: "exchanged-1"},
				{advance: time.Second, want: "exchanged-2"},
			},
		},
		{
			name: "short lifetime refreshes at half", expiresIn: 20,
			calls: []call{
				{want: "exchanged-1"},
				{advance: 9 * time.Second, want: "exchanged-1"},
				{advance: time.Second, want: "exchanged-2"},
			},
		},
		{
			name: "key is token, resource and set of scopes", expiresIn: 300,
			calls: []call{
				{scopes: []string{"a", "b"}, want: "exchanged-1"},
				{scopes: []string{"b", "a", "a"}, want: "exchanged-1"},
				{scopes: []string{"a"}, want: "exchanged-2"},
				{scopes: nil, want: "exchanged-3"},
				{scopes: []string{"a", "b"}, res: "https://api.example.com/other", want: "exchanged-4"},
				{scopes: []string{"a", "b"}, token: incomingToken2, want: "exchanged-5"},
				{scopes: []string{"a", "b"}, want: "exchanged-1"},
				{scopes: []string{"a"}, token: incomingToken2, want: "exchanged-6"},
			},
		},
		{
			name: "no expires_in: never cached", expiresIn: nil,
			calls: []call{{want: "exchanged-1"}, {want: "exchanged-2"}},
		},
		{
			name: "expires_in 0: never cached", expiresIn: 0,
			calls: []call{{want: "exchanged-1"}, {want: "exchanged-2"}},
		},
		{
			name: "caching disabled", expiresIn: 300,
			cfg:   func(c *mcpauth.ExchangerConfig) { c.MaxCacheEntries = -1 },
			calls: []call{{want: "exchanged-1"}, {want: "exchanged-2"}},
		},
		{
			name: "bound drops the entry due soonest", expiresIn: 300,
			cfg: func(c *mcpauth.ExchangerConfig) { c.MaxCacheEntries = 2 },
			calls: []call{
				{scopes: []string{"a"}, want: "exchanged-1"},
				{advance: time.Second, scopes: []string{"b"}, want: "exchanged-2"},
				{advance: time.Second, scopes: []string{"c"}, want: "exchanged-3"}, // drops a
				{scopes: []string{"b"}, want: "exchanged-2"},
				{scopes: []string{"c"}, want: "exchanged-3"},
				{scopes: []string{"a"}, want: "exchanged-4"}, // drops b
				{scopes: []string{"c"}, want: "exchanged-3"},
				{scopes: []string{"b"}, want: "exchanged-5"},
			},
		},
		{
			name: "bound drops expired entries first", expiresIn: 300,
			cfg: func(c *mcpauth.ExchangerConfig) { c.MaxCacheEntries = 2 },
			calls: []call{
				{scopes: []string{"a"}, want: "exchanged-1"},
				{advance: 200 * time.Second, scopes: []string{"b"}, want: "exchanged-2"},
				{advance: 100 * time.Second, scopes: []string{"c"}, want: "exchanged-3"}, // a expired
				{scopes: []string{"b"}, want: "exchanged-2"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTokenEndpoint(t)
			f.setRespond(func(n int, form url.Values) (int, any) {
				body := map[string]any{
					"access_token":      fmt.Sprintf("exchanged-%d", n),
					"issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
					"token_type":        "Bearer",
				}
				if tc.expiresIn != nil {
					body["expires_in"] = tc.expiresIn
				}
				return http.StatusOK, body
			})
			clk := newClock()
			ex := newExchanger(t, f, clk, tc.cfg)
			for i, c := range tc.calls {
				clk.Advance(c.advance)
				token := c.token
				if token == "" {
					token = incomingToken
				}
				res := c.res
				if res == "" {
					res = downstream
				}
				tok, err := ex.Exchange(context.Background(), token, res, c.scopes...)
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if tok.AccessToken != c.want {
					t.Fatalf("call %d: got %s, want %s", i, tok.AccessToken, c.want)
				}
			}
		})
	}
}

// TestExchangeConcurrent: identical concurrent calls share one request; a
// caller that gives up does not fail the others; different calls do not
// wait for each other. synctest makes "everyone is waiting" observable;
// the fake endpoint is reached through an in-memory transport because
// synctest cannot see goroutines blocked on real sockets.
func TestExchangeConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeTokenEndpointHandler(t)
		clk := newClock()
		client := &http.Client{Transport: inMemory{f.handler}}
		cfg := mcpauth.ExchangerConfig{
			Issuer: f.url, ClientID: exchClientID, ClientSecret: exchSecret, Now: clk.Now, HTTPClient: client,
		}
		ex, err := mcpauth.NewExchanger(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		gate := make(chan struct{})
		f.mu.Lock()
		f.gate = gate
		f.mu.Unlock()

		const n = 20
		got := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				tok, err := ex.Exchange(context.Background(), incomingToken, downstream, "notes:read")
				errs[i] = err
				if err == nil {
					got[i] = tok.AccessToken
				}
			})
		}
		// One more caller that gives up while the request is under way.
		ctx, cancel := context.WithCancel(context.Background())
		var quitErr error
		wg.Go(func() { _, quitErr = ex.Exchange(ctx, incomingToken, downstream, "notes:read") })
		synctest.Wait()
		if c := f.count(); c != 1 {
			t.Fatalf("%d requests in flight, want 1", c)
		}
		cancel()
		synctest.Wait()
		if !errors.Is(quitErr, context.Canceled) || errors.Is(quitErr, mcpauth.ErrUnavailable) {
			t.Errorf("abandoning caller: err = %v, want context.Canceled", quitErr)
		}
		close(gate)
		wg.Wait()
		for i := range n {
			if errs[i] != nil || got[i] != "exchanged-1" {
				t.Fatalf("caller %d: %q, %v", i, got[i], errs[i])
			}
		}
		if c := f.count(); c != 1 {
			t.Errorf("%d requests, want 1", c)
		}
		// Now cached: no new request.
		if _, err := ex.Exchange(context.Background(), incomingToken, downstream, "notes:read"); err != nil || f.count() != 1 {
			t.Errorf("after: %v, %d requests", err, f.count())
		}
	})
}

// inMemory serves requests with a handler, without sockets.
type inMemory struct{ h http.Handler }

func (m inMemory) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// TestExchangeErrors: the hub's OAuth error codes reach the caller typed;
// unusable answers are ErrUnavailable; nothing failed is cached; no error
// names the incoming token.
func TestExchangeErrors(t *testing.T) {
	oauthErr := func(status int, code string) func(int, url.Values) (int, any) {
		return func(int, url.Values) (int, any) {
			return status, map[string]string{"error": code, "error_description": "because\n\"reasons\""}
		}
	}
	ok := func(mut func(map[string]any)) func(int, url.Values) (int, any) {
		return func(int, url.Values) (int, any) {
			body := map[string]any{
				"access_token": "t", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
				"token_type": "Bearer", "expires_in": 300,
			}
			mut(body)
			return http.StatusOK, body
		}
	}
	cases := []struct {
		name        string
		respond     func(int, url.Values) (int, any)
		code        string
		status      int
		unavailable bool
	}{
		{"invalid_grant", oauthErr(400, "invalid_grant"), "invalid_grant", 400, false},
		{"invalid_target", oauthErr(400, "invalid_target"), "invalid_target", 400, false},
		{"invalid_scope", oauthErr(400, "invalid_scope"), "invalid_scope", 400, false},
		{"invalid_request", oauthErr(400, "invalid_request"), "invalid_request", 400, false},
		{"unsupported_token_type", oauthErr(400, "unsupported_token_type"), "unsupported_token_type", 400, false},
		{"invalid_client", oauthErr(401, "invalid_client"), "invalid_client", 401, false},
		{"server_error", oauthErr(500, "server_error"), "server_error", 500, true},
		{"temporarily_unavailable", oauthErr(503, "temporarily_unavailable"), "temporarily_unavailable", 503, true},
		{"gateway page", func(int, url.Values) (int, any) { return 502, "<html>bad gateway</html>" }, "", 502, true},
		{"error without code", func(int, url.Values) (int, any) { return 400, map[string]string{} }, "", 400, true},
		{"200 not JSON", func(int, url.Values) (int, any) { return 200, "nope" }, "", 200, true},
		{"no access_token", ok(func(b map[string]any) { delete(b, "access_token") }), "", 200, true},
		{"no issued_token_type", ok(func(b map[string]any) { delete(b, "issued_token_type") }), "", 200, true},
		{"issued an ID-JAG", ok(func(b map[string]any) { b["issued_token_type"] = "urn:ietf:params:oauth:token-type:id-jag" }), "", 200, true},
		{"DPoP token", ok(func(b map[string]any) { b["token_type"] = "DPoP" }), "", 200, true},
		{"N_A token", ok(func(b map[string]any) { b["token_type"] = "N_A" }), "", 200, true},
		{"negative expires_in", ok(func(b map[string]any) { b["expires_in"] = -5 }), "", 200, true},
		{"non-numeric expires_in", ok(func(b map[string]any) { b["expires_in"] = "soon" }), "", 200, true},
		{"fractional expires_in", ok(func(b map[string]any) { b["expires_in"] = 1.5 }), "", 200, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTokenEndpoint(t)
			f.setRespond(tc.respond)
			ex := newExchanger(t, f, newClock(), nil)
			for attempt := 1; attempt <= 2; attempt++ {
				_, err := ex.Exchange(context.Background(), incomingToken, downstream, "notes:read")
				xe, isXE := errors.AsType[*mcpauth.ExchangeError](err)
				if !isXE {
					t.Fatalf("err = %v (%T), want *ExchangeError", err, err)
				}
				if xe.Code != tc.code || xe.StatusCode != tc.status {
					t.Errorf("code %q status %d, want %q %d", xe.Code, xe.StatusCode, tc.code, tc.status)
				}
				if errors.Is(err, mcpauth.ErrUnavailable) != tc.unavailable {
					t.Errorf("errors.Is(ErrUnavailable) = %v", !tc.unavailable)
				}
				if strings.Contains(err.Error(), incomingToken) || strings.ContainsAny(xe.Description, "\n\"") {
					t.Errorf("error text %q", err.Error())
				}
				if f.count() != attempt {
					t.Fatalf("attempt %d: %d requests (failures must not be cached)", attempt, f.count())
				}
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		f := newFakeTokenEndpoint(t)
		ex := newExchanger(t, f, newClock(), nil)
		f.srv.Close()
		_, err := ex.Exchange(context.Background(), incomingToken, downstream)
		xe, isXE := errors.AsType[*mcpauth.ExchangeError](err)
		if !isXE || xe.Code != "" || !errors.Is(err, mcpauth.ErrUnavailable) {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("arguments", func(t *testing.T) {
		f := newFakeTokenEndpoint(t)
		ex := newExchanger(t, f, newClock(), nil)
		for _, a := range []struct{ token, res, scope string }{
			{"", downstream, "a"},
			{"has space", downstream, "a"},
			{strings.Repeat("a", 17<<10), downstream, "a"},
			{incomingToken, "", "a"},
			{incomingToken, "/relative", "a"},
			{incomingToken, "http://api.example.com/plain-http", "a"},
			{incomingToken, downstream + "#frag", "a"},
			{incomingToken, downstream, "two words"},
			{incomingToken, downstream, `quo"te`},
		} {
			_, err := ex.Exchange(context.Background(), a.token, a.res, a.scope)
			xe, isXE := errors.AsType[*mcpauth.ExchangeError](err)
			if !isXE || xe.Code != "invalid_request" || xe.StatusCode != 0 || errors.Is(err, mcpauth.ErrUnavailable) {
				t.Errorf("%.20q %q %q: err = %v", a.token, a.res, a.scope, err)
			}
		}
		if f.count() != 0 {
			t.Errorf("%d requests sent for refused arguments", f.count())
		}
	})
}

func TestExchangerConfig(t *testing.T) {
	f := newFakeTokenEndpoint(t)
	cases := []struct {
		name string
		cfg  mcpauth.ExchangerConfig
		want []string
	}{
		{"empty", mcpauth.ExchangerConfig{}, []string{"Issuer", "ClientID", "ClientSecret"}},
		{"plain http", mcpauth.ExchangerConfig{Issuer: "http://hub.example.com", ClientID: "a", ClientSecret: "b"}, []string{"Issuer"}},
		{"negative refresh", mcpauth.ExchangerConfig{Issuer: f.srv.URL, ClientID: "a", ClientSecret: "b", RefreshBefore: -1}, []string{"RefreshBefore"}},
		{"wrong issuer", mcpauth.ExchangerConfig{Issuer: f.srv.URL + "/other", ClientID: "a", ClientSecret: "b"}, []string{"metadata"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mcpauth.NewExchanger(context.Background(), tc.cfg)
			if err == nil {
				t.Fatal("NewExchanger accepted the config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}
