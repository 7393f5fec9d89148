package mcpauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/mcpauth"
	"github.com/agentid/agentid/mcpauth/mcpauthtest"
)

// vaultFixture is the test hub with its vault, a verifier for this MCP
// server and an Exchanger authenticated as it, on a clock that moves.
type vaultFixture struct {
	*fixture
	x *mcpauth.Exchanger
}

func newVaultFixture(t testing.TB) *vaultFixture {
	t.Helper()
	f := newFixture(t, nil)
	id, secret := f.hub.IntrospectionCredentials()
	x, err := mcpauth.NewExchanger(context.Background(), mcpauth.ExchangerConfig{Issuer: f.hub.Issuer(), ClientID: id, ClientSecret: secret, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &vaultFixture{fixture: f, x: x}
}

// userContext is the context of a request the middleware accepted for
// user sub.
func (f *vaultFixture) userContext(t testing.TB, sub string) context.Context {
	t.Helper()
	tok := f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, Scopes: []string{"notes:read"}, Subject: sub})
	c, err := f.v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return mcpauth.ContextWithClaims(context.Background(), c)
}

func TestConnectionCredential(t *testing.T) {
	tests := []struct {
		name  string
		conn  mcpauthtest.Connection
		check func(t *testing.T, c *mcpauth.Credential, r *http.Request)
	}{
		{"access token", mcpauthtest.Connection{AccessToken: "cal-token-1", ExpiresIn: time.Hour, Scopes: []string{"calendar.read"}},
			func(t *testing.T, c *mcpauth.Credential, r *http.Request) {
				if c.IsAPIKey() || c.TokenType != "Bearer" || c.ExpiresAt.IsZero() || c.ConnectionID == "" || c.Provider != "calendar" {
					t.Errorf("credential = %v", c)
				}
				if got := r.Header.Get("Authorization"); got != "Bearer cal-token-1" {
					t.Errorf("Authorization = %q", got)
				}
			}},
		{"API key in a header", mcpauthtest.Connection{AccessToken: "sk_live_abcd", KeyHeader: "x-api-key"},
			func(t *testing.T, c *mcpauth.Credential, r *http.Request) {
				if !c.IsAPIKey() || c.TokenType != "N_A" || !c.ExpiresAt.IsZero() {
					t.Errorf("credential = %v", c)
				}
				if got := r.Header.Get("X-Api-Key"); got != "sk_live_abcd" || r.Header.Get("Authorization") != "" {
					t.Errorf("X-API-Key = %q, Authorization = %q", got, r.Header.Get("Authorization"))
				}
			}},
		{"API key with a header format", mcpauthtest.Connection{AccessToken: "sk_abcd", KeyHeader: "Authorization", KeyHeaderValue: "Token sk_abcd"},
			func(t *testing.T, c *mcpauth.Credential, r *http.Request) {
				if got := r.Header.Get("Authorization"); got != "Token sk_abcd" {
					t.Errorf("Authorization = %q", got)
				}
			}},
		{"API key in the query", mcpauthtest.Connection{AccessToken: "k&y=1", KeyQuery: "api_key"},
			func(t *testing.T, c *mcpauth.Credential, r *http.Request) {
				if got := r.URL.Query().Get("api_key"); got != "k&y=1" || r.URL.Query().Get("q") != "x" {
					t.Errorf("query = %q", r.URL.RawQuery)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newVaultFixture(t)
			f.hub.SetConnection("user-1", "calendar", tt.conn)
			c, err := f.x.Connection(f.userContext(t, "user-1"), "calendar")
			if err != nil {
				t.Fatal(err)
			}
			if c.AccessToken != tt.conn.AccessToken {
				t.Errorf("AccessToken = %q", c.AccessToken)
			}
			r := httptest.NewRequest(http.MethodGet, "https://api.example.com/events?q=x", nil)
			c.Apply(r)
			tt.check(t, c, r)
		})
	}
}

func TestConnectionCache(t *testing.T) {
	f := newVaultFixture(t)
	f.hub.SetConnection("user-1", "calendar", mcpauthtest.Connection{AccessToken: "tok-a", ExpiresIn: 10 * time.Minute})
	f.hub.SetConnection("user-2", "calendar", mcpauthtest.Connection{AccessToken: "tok-b", ExpiresIn: 10 * time.Minute})
	ctx1, ctx2 := f.userContext(t, "user-1"), f.userContext(t, "user-2")
	get := func(ctx context.Context, scopes ...string) string {
		t.Helper()
		c, err := f.x.Connection(ctx, "calendar", scopes...)
		if err != nil {
			t.Fatal(err)
		}
		return c.AccessToken
	}
	first, second := get(ctx1), get(ctx1)
	if first != "tok-a" || second != "tok-a" || f.hub.Retrievals() != 1 {
		t.Fatalf("a second identical call went to the hub (%d retrievals)", f.hub.Retrievals())
	}
	if get(ctx2) != "tok-b" || f.hub.Retrievals() != 2 {
		t.Fatalf("another user's token shared a cache entry (%d retrievals)", f.hub.Retrievals())
	}
	if get(ctx1, "calendar.read") != "tok-a" || get(ctx1, "calendar.read", "calendar.read") != "tok-a" || f.hub.Retrievals() != 3 {
		t.Fatalf("scopes are not part of the key, or duplicates are (%d retrievals)", f.hub.Retrievals())
	}
	// The incoming token lives 5 minutes: the credential is not cached
	// beyond it, though it lives 10.
	f.clock.Advance(5*time.Minute + time.Second)
	ctx1 = f.userContext(t, "user-1")
	n := f.hub.Retrievals()
	get(ctx1)
	get(ctx1)
	if f.hub.Retrievals() != n+1 {
		t.Fatalf("retrievals = %d, want %d", f.hub.Retrievals(), n+1)
	}
	// Shortly before the credential expires it is retrieved again.
	f.hub.SetConnection("user-1", "calendar", mcpauthtest.Connection{AccessToken: "tok-a2", ExpiresIn: 2 * time.Minute})
	ctx1 = f.userContext(t, "user-1")
	if get(ctx1) != "tok-a2" {
		t.Fatal("new token not retrieved")
	}
	f.clock.Advance(time.Minute + 31*time.Second)
	f.hub.SetConnection("user-1", "calendar", mcpauthtest.Connection{AccessToken: "tok-a3", ExpiresIn: 2 * time.Minute})
	if got := get(ctx1); got != "tok-a3" {
		t.Fatalf("30s before expiry the cache still answered %q", got)
	}
	// An API key without expiry is cached for a minute only.
	f.hub.SetConnection("user-2", "keys", mcpauthtest.Connection{AccessToken: "k1", KeyHeader: "X-Key"})
	ctx2 = f.userContext(t, "user-2")
	f.x.Connection(ctx2, "keys")
	f.hub.SetConnection("user-2", "keys", mcpauthtest.Connection{AccessToken: "k2", KeyHeader: "X-Key"})
	if c, _ := f.x.Connection(ctx2, "keys"); c.AccessToken != "k1" {
		t.Fatal("API key not cached")
	}
	f.clock.Advance(61 * time.Second)
	if c, _ := f.x.Connection(ctx2, "keys"); c.AccessToken != "k2" {
		t.Fatal("rotated API key not seen after a minute")
	}
}

func TestConnectionSingleFlight(t *testing.T) {
	f := newVaultFixture(t)
	f.hub.SetConnection("user-1", "calendar", mcpauthtest.Connection{AccessToken: "tok", ExpiresIn: time.Hour})
	ctx := f.userContext(t, "user-1")
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if c, err := f.x.Connection(ctx, "calendar"); err != nil || c.AccessToken != "tok" {
				t.Errorf("Connection: %v", err)
			}
		})
	}
	wg.Wait()
	if n := f.hub.Retrievals(); n != 1 {
		t.Fatalf("50 concurrent calls made %d retrievals, want 1", n)
	}
}

func TestConnectionRequired(t *testing.T) {
	f := newVaultFixture(t)
	for _, status := range []string{mcpauth.ConnectionMissing, mcpauth.ConnectionNeedsReauth} {
		t.Run(status, func(t *testing.T) {
			ctx := f.userContext(t, "user-1") // a new token: the cache holds the last subtest's
			if status == mcpauth.ConnectionNeedsReauth {
				f.hub.SetConnection("user-1", "calendar", mcpauthtest.Connection{AccessToken: "old", NeedsReauth: true})
			}
			_, err := f.x.Connection(ctx, "calendar", "calendar.read")
			var cre *mcpauth.ConnectRequiredError
			if !errors.Is(err, mcpauth.ErrConnectionRequired) || !errors.As(err, &cre) {
				t.Fatalf("err = %v, want a ConnectRequiredError", err)
			}
			if cre.Provider != "calendar" || cre.Status != status || !strings.HasPrefix(cre.URL, f.hub.Issuer()+"/connections/connect/calendar?intent=") {
				t.Fatalf("error = %+v", cre)
			}
			var xe *mcpauth.ExchangeError
			if !errors.As(err, &xe) || xe.Code != "connection_required" || xe.StatusCode != 400 {
				t.Fatalf("hub error behind it = %+v", xe)
			}
			if strings.Contains(err.Error(), "intent=") {
				t.Errorf("error text carries the connect URL: %q", err)
			}
			// The person connects; the next call succeeds (failures are
			// not cached).
			if resp, err := http.Get(cre.URL); err != nil || resp.StatusCode != 200 {
				t.Fatalf("connect: %v %v", err, resp)
			}
			c, err := f.x.Connection(ctx, "calendar", "calendar.read")
			if err != nil || !strings.HasPrefix(c.AccessToken, "connected-") {
				t.Fatalf("after connecting: %v %v", c, err)
			}
			f.hub.RemoveConnection("user-1", "calendar")
		})
	}
}

func TestConnectionArguments(t *testing.T) {
	f := newVaultFixture(t)
	ctx := f.userContext(t, "user-1")
	tests := []struct {
		name     string
		ctx      context.Context
		provider string
		scopes   []string
	}{
		{"no claims in the context", context.Background(), "calendar", nil},
		{"empty provider", ctx, "", nil},
		{"provider with a slash", ctx, "../token", nil},
		{"upper-case provider", ctx, "Calendar", nil},
		{"malformed scope", ctx, "calendar", []string{"a b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.x.Connection(tt.ctx, tt.provider, tt.scopes...)
			var xe *mcpauth.ExchangeError
			if !errors.As(err, &xe) || xe.Code != "invalid_request" || xe.StatusCode != 0 {
				t.Fatalf("err = %v, want invalid_request before sending", err)
			}
		})
	}
	if f.hub.Retrievals() != 0 {
		t.Fatalf("%d retrievals sent", f.hub.Retrievals())
	}
}

// TestCredentialRedacted: printing or logging a credential never shows it.
func TestCredentialRedacted(t *testing.T) {
	c := &mcpauth.Credential{Provider: "calendar", AccessToken: "SECRET-TOKEN", KeyHeaderValue: "Bearer SECRET-TOKEN"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("got", "cred", c, "value", *c)
	out := fmt.Sprintf("%v %+v %#v %s %v", c, c, *c, *c, []any{c}) + buf.String()
	if strings.Contains(out, "SECRET") {
		t.Fatalf("credential leaked: %s", out)
	}
}

// provider is a downstream API that accepts only the access token the test
// hub's vault currently holds for the user.
func provider(t *testing.T, f *vaultFixture, sub string) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization")+"|"+string(body))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+f.hub.AccessTokenOf(sub, "calendar") {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "expired", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "events (%s)", body)
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func TestHTTPClientRetriesOnceAfter401(t *testing.T) {
	f := newVaultFixture(t)
	f.hub.SetConnection("user-1", "calendar", mcpauthtest.Connection{AccessToken: "tok-1", ExpiresIn: time.Hour})
	ctx := f.userContext(t, "user-1")
	api, seen := provider(t, f, "user-1")
	hc := f.x.HTTPClient(ctx, "calendar")

	get := func() *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, api.URL+"/events", strings.NewReader("body"))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && string(b) != "events (body)" {
			t.Fatalf("body = %q", b)
		}
		return resp
	}
	if resp := get(); resp.StatusCode != 200 || f.hub.ForcedRetrievals() != 0 {
		t.Fatalf("first call: %d, forced %d", resp.StatusCode, f.hub.ForcedRetrievals())
	}
	// The provider revokes the token the MCP server cached: 401, forced
	// retrieval (the hub refreshes), one retry with the same body.
	f.hub.SetConnection("user-1", "calendar", mcpauthtest.Connection{AccessToken: "revoked-by-provider", ExpiresIn: time.Hour})
	*seen = nil
	if resp := get(); resp.StatusCode != 200 {
		t.Fatalf("after the provider's 401: %d", resp.StatusCode)
	}
	if f.hub.ForcedRetrievals() != 1 || len(*seen) != 2 || !strings.HasSuffix((*seen)[1], "|body") {
		t.Fatalf("forced = %d, provider saw %q", f.hub.ForcedRetrievals(), *seen)
	}
	// The refreshed credential is cached.
	n := f.hub.Retrievals()
	if resp := get(); resp.StatusCode != 200 || f.hub.Retrievals() != n {
		t.Fatalf("refreshed credential not cached: %d retrievals", f.hub.Retrievals()-n)
	}

	t.Run("a body that cannot be replayed", func(t *testing.T) {
		f.hub.SetConnection("user-1", "calendar", mcpauthtest.Connection{AccessToken: "revoked-again", ExpiresIn: time.Hour})
		forced := f.hub.ForcedRetrievals()
		req, _ := http.NewRequest(http.MethodPost, api.URL, io.NopCloser(strings.NewReader("once")))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || f.hub.ForcedRetrievals() != forced {
			t.Fatalf("status %d, forced %d: want the 401 back, no retry", resp.StatusCode, f.hub.ForcedRetrievals()-forced)
		}
	})
	t.Run("still 401 after the refresh", func(t *testing.T) {
		deny := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) }))
		defer deny.Close()
		forced := f.hub.ForcedRetrievals()
		resp, err := hc.Get(deny.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || f.hub.ForcedRetrievals() != forced+1 {
			t.Fatalf("status %d, forced %d: want exactly one retry", resp.StatusCode, f.hub.ForcedRetrievals()-forced)
		}
	})
}

func TestHTTPClientRefusesCrossOriginRedirect(t *testing.T) {
	f := newVaultFixture(t)
	f.hub.SetConnection("user-1", "calendar", mcpauthtest.Connection{AccessToken: "tok-1", ExpiresIn: time.Hour})
	var leaked string
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { leaked = r.Header.Get("Authorization") }))
	defer evil.Close()
	api := httptest.NewServer(http.RedirectHandler(evil.URL+"/steal", http.StatusFound))
	defer api.Close()
	_, err := f.x.HTTPClient(f.userContext(t, "user-1"), "calendar").Get(api.URL)
	if err == nil || leaked != "" {
		t.Fatalf("redirect followed: err %v, other origin saw %q", err, leaked)
	}
}

func TestHTTPClientConnectRequired(t *testing.T) {
	f := newVaultFixture(t)
	_, err := f.x.HTTPClient(f.userContext(t, "user-1"), "calendar").Get("http://127.0.0.1:9/never")
	if !errors.Is(err, mcpauth.ErrConnectionRequired) {
		t.Fatalf("err = %v, want ErrConnectionRequired through Do", err)
	}
}
