package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
)

// adminHub is a hub with the admin API registered as a resource (its one
// scope sensitive) and an admin client allowed that scope, as
// docs/design.md ("Admin API") tells an operator to set it up.
func adminHub(t *testing.T, h *hub) (adminURI, secret string) {
	t.Helper()
	adminURI = h.URL + server.AdminAPIPath
	if err := h.Store.CreateResource(context.Background(), &store.Resource{
		TenantID: store.DefaultTenant, ID: "agentid-admin", URI: adminURI, Name: "agentid admin API", CreatedAt: time.Now(),
		Scopes: []store.Scope{
			{Name: server.ScopeAdmin, Description: "Read the audit trail", Sensitive: true},
			{Name: "audit.count", Description: "Count events (not the admin scope)"},
		},
	}, nil); err != nil {
		t.Fatal(err)
	}
	secret = h.AddClient(&store.Client{ID: "siem", GrantTypes: []string{"client_credentials"}, Scopes: []string{server.ScopeAdmin},
		RequestedScopes: []string{server.ScopeAdmin}, Tags: []string{"cc:" + server.ScopeAdmin}, DefaultResource: adminURI})
	return adminURI, secret
}

// adminToken gets an access token by client credentials (x/oauth2).
func adminToken(t *testing.T, h *hub, clientID, secret, resource string, scopes ...string) (string, error) {
	t.Helper()
	conf := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: h.URL + "/token", Scopes: scopes,
		EndpointParams: url.Values{"resource": {resource}}}
	tok, err := conf.Token(context.Background())
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

type adminResponse struct {
	status int
	header http.Header
	page   struct {
		Events     []audit.Record `json:"events"`
		NextCursor string         `json:"next_cursor"`
		Next       string         `json:"next"`
	}
	problem map[string]any
}

func adminGet(t *testing.T, h *hub, bearer, pathQuery string) adminResponse {
	t.Helper()
	resp, body := bearerDo(t, http.MethodGet, h.URL+pathQuery, bearer, "", "")
	r := adminResponse{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		if err := json.Unmarshal(body, &r.page); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return r
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("error %d with Content-Type %q, want application/problem+json: %s", resp.StatusCode, ct, body)
	}
	if err := json.Unmarshal(body, &r.problem); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if r.problem["status"] != float64(resp.StatusCode) || r.problem["title"] != http.StatusText(resp.StatusCode) || r.problem["type"] != "about:blank" {
		t.Errorf("problem %v does not match status %d (RFC 9457 §3.1)", r.problem, resp.StatusCode)
	}
	return r
}

func TestAdminAuditAuth(t *testing.T) { forEachBackend(t, testAdminAuditAuth) }

func testAdminAuditAuth(t *testing.T, h *hub) {
	adminURI, secret := adminHub(t, h)
	good, err := adminToken(t, h, "siem", secret, adminURI, server.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	// A client with scopes on another resource only.
	botSecret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	notesToken, err := adminToken(t, h, "bot", botSecret, h.Resource, "notes.read")
	if err != nil {
		t.Fatal(err)
	}
	// An agent tagged for the admin scope but registered by itself: the
	// sensitive-scope policy keeps the scope from it, so it gets no token.
	dcrSecret := h.AddClient(&store.Client{ID: "self-made", RegistrationMethod: store.RegistrationDCR, GrantTypes: []string{"client_credentials"},
		Tags: []string{"cc:" + server.ScopeAdmin}, DefaultResource: adminURI})
	if tok, err := adminToken(t, h, "self-made", dcrSecret, adminURI, server.ScopeAdmin); err == nil {
		t.Errorf("a self-registered client got an admin token: %s", tok)
	}

	tests := []struct {
		name, bearer string
		status       int
		challenge    string // WWW-Authenticate must contain this
	}{
		{"no token", "", 401, `Bearer realm="agentid"`},
		{"garbage", "not-a-jwt", 401, `error="invalid_token"`},
		{"token for another resource", notesToken, 401, `error="invalid_token"`},
		{"good", good, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := adminGet(t, h, tc.bearer, server.AdminAPIPath+"/audit")
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %v", r.status, tc.status, r.problem)
			}
			if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, tc.challenge) || (tc.status == 401 && tc.bearer == "" && strings.Contains(got, "error=")) {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
		})
	}

	t.Run("wrong scope", func(t *testing.T) {
		// A token for the admin resource with its other, non-admin scope.
		sec := h.AddClient(&store.Client{ID: "counter", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:audit.count"}, DefaultResource: adminURI})
		tok, err := adminToken(t, h, "counter", sec, adminURI, "audit.count")
		if err != nil {
			t.Fatal(err)
		}
		resp := adminGet(t, h, tok, server.AdminAPIPath+"/audit")
		if resp.status != http.StatusForbidden || !strings.Contains(resp.header.Get("WWW-Authenticate"), `error="insufficient_scope", error_description=`) ||
			!strings.Contains(resp.header.Get("WWW-Authenticate"), `scope="agentid:admin"`) {
			t.Errorf("status %d, WWW-Authenticate %q; want 403 insufficient_scope naming agentid:admin", resp.status, resp.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("revoked", func(t *testing.T) {
		tok, err := adminToken(t, h, "siem", secret, adminURI, server.ScopeAdmin)
		if err != nil {
			t.Fatal(err)
		}
		form := url.Values{"token": {tok}}
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/revoke", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("siem", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("revoke: %v %v", resp, err)
		}
		resp.Body.Close()
		if r := adminGet(t, h, tok, server.AdminAPIPath+"/audit"); r.status != 401 {
			t.Errorf("revoked token: status %d", r.status)
		}
	})
	t.Run("disabled client", func(t *testing.T) {
		tok, err := adminToken(t, h, "siem", secret, adminURI, server.ScopeAdmin)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Store.UpdateClient(context.Background(), store.DefaultTenant, "siem", func(c *store.Client) error { c.Disabled = true; return nil }, nil); err != nil {
			t.Fatal(err)
		}
		defer h.Store.UpdateClient(context.Background(), store.DefaultTenant, "siem", func(c *store.Client) error { c.Disabled = false; return nil }, nil)
		if r := adminGet(t, h, tok, server.AdminAPIPath+"/audit"); r.status != 401 {
			t.Errorf("token of a disabled client: status %d", r.status)
		}
	})
	t.Run("other methods and paths", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, h.URL+server.AdminAPIPath+"/audit", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("POST: %d %v", resp.StatusCode, resp.Header)
		}
		if r := adminGet(t, h, good, server.AdminAPIPath+"/nothing"); r.status != 404 {
			t.Errorf("unknown path: %d", r.status)
		}
	})
}

func TestAdminAuditQuery(t *testing.T) { forEachBackend(t, testAdminAuditQuery) }

func testAdminAuditQuery(t *testing.T, h *hub) {
	adminURI, secret := adminHub(t, h)
	tok, err := adminToken(t, h, "siem", secret, adminURI, server.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for i := range 25 {
		m := audit.Meta{Time: at.Add(time.Duration(i) * time.Second), IP: "192.0.2.9"}
		ev := audit.NewTokenIssued(m, audit.TokenIssuedFields{ClientID: fmt.Sprintf("agent-%d", i%2), UserID: "u-alice", Resource: h.Resource,
			Scopes: []string{"notes.read"}, GrantType: "authorization_code", JTI: fmt.Sprintf("j%d", i)})
		if i%5 == 0 {
			ev = audit.NewConnectionRetrievalDenied(m, audit.RetrievalFields{ClientID: "mcp", Resource: h.Resource, UserID: "u-alice", Agent: "agent-1", ProviderID: "calendar", Reason: "no_connection"})
		}
		if err := h.Store.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	// Another tenant's events never show.
	if err := h.Store.AppendAudit(ctx, audit.NewTokenIssued(audit.Meta{TenantID: "other", Time: at}, audit.TokenIssuedFields{ClientID: "agent-0", Resource: "r", Scopes: []string{"s"}})); err != nil {
		t.Fatal(err)
	}
	get := func(q string) adminResponse { return adminGet(t, h, tok, server.AdminAPIPath+"/audit"+q) }

	t.Run("filters", func(t *testing.T) {
		tests := []struct {
			query string
			want  func(audit.Record) bool
			count int
		}{
			{"?client=agent-1", func(r audit.Record) bool { return r.ClientID == "agent-1" }, 10},
			// The agent's own events and the retrievals an MCP server made for it.
			{"?agent=agent-1", func(r audit.Record) bool { return r.ClientID == "agent-1" || r.Details["agent"] == "agent-1" }, 15},
			{"?type=token.issued&client=agent-0&limit=100", func(r audit.Record) bool { return r.Type == "token.issued" && r.ClientID == "agent-0" }, 10},
			{"?type=connection.*", func(r audit.Record) bool { return r.Type == "connection.retrieval_denied" }, 5},
			{"?provider=calendar&outcome=denied", func(r audit.Record) bool { return r.Details["provider"] == "calendar" && r.Outcome == "denied" }, 5},
			{"?user=u-alice&resource=" + url.QueryEscape(h.Resource) + "&since=" + url.QueryEscape(at.Add(20*time.Second).Format(time.RFC3339)),
				func(r audit.Record) bool { return !r.Time.Before(at.Add(20 * time.Second)) }, 5},
			{"?until=" + url.QueryEscape(at.Add(3*time.Second).Format(time.RFC3339Nano)), func(r audit.Record) bool { return r.Time.Before(at.Add(3 * time.Second)) }, 3},
			{"?tenant=default&outcome=failure", nil, 0},
		}
		for _, tc := range tests {
			t.Run(tc.query, func(t *testing.T) {
				r := get(tc.query)
				if r.status != 200 {
					t.Fatalf("status %d: %v", r.status, r.problem)
				}
				if len(r.page.Events) != tc.count {
					t.Fatalf("%d events, want %d", len(r.page.Events), tc.count)
				}
				for i, ev := range r.page.Events {
					if ev.TenantID != store.DefaultTenant || (tc.want != nil && !tc.want(ev)) {
						t.Errorf("event %+v does not match", ev)
					}
					if i > 0 && ev.ID >= r.page.Events[i-1].ID {
						t.Errorf("not newest first")
					}
				}
			})
		}
	})

	t.Run("pagination", func(t *testing.T) {
		var ids []int64
		next := server.AdminAPIPath + "/audit?limit=7&type=token.*"
		for pages := 0; next != ""; pages++ {
			if pages > 5 {
				t.Fatal("too many pages")
			}
			r := adminGet(t, h, tok, next)
			if r.status != 200 {
				t.Fatalf("status %d: %v", r.status, r.problem)
			}
			for _, ev := range r.page.Events {
				ids = append(ids, ev.ID)
			}
			if r.page.Next != "" {
				link := r.header.Get("Link")
				if link != "<"+h.URL+r.page.Next+`>; rel="next"` || !strings.Contains(r.page.Next, "before="+r.page.NextCursor) ||
					!strings.Contains(r.page.Next, "type=token.%2A") || len(r.page.Events) != 7 {
					t.Fatalf("page: next %q cursor %q link %q, %d events", r.page.Next, r.page.NextCursor, link, len(r.page.Events))
				}
			} else if r.header.Get("Link") != "" || r.page.NextCursor != "" {
				t.Fatal("last page names a next one")
			}
			next = r.page.Next
		}
		// 20 written above and the issuance of the admin's own token.
		if len(ids) != 21 || !slices.IsSortedFunc(ids, func(a, b int64) int { return int(b - a) }) || len(slices.Compact(slices.Clone(ids))) != 21 {
			t.Errorf("pages gave ids %v, want the 21 token events once each, newest first", ids)
		}

		// Forward from a cursor, oldest first: what a SIEM polling the
		// API does with the last id it has.
		var forward []int64
		next = server.AdminAPIPath + "/audit?limit=8&type=token.*&order=asc&after=" + fmt.Sprint(ids[len(ids)-1])
		for pages := 0; next != ""; pages++ {
			if pages > 5 {
				t.Fatal("too many pages")
			}
			r := adminGet(t, h, tok, next)
			if r.status != 200 {
				t.Fatalf("status %d: %v", r.status, r.problem)
			}
			for _, ev := range r.page.Events {
				forward = append(forward, ev.ID)
			}
			if r.page.Next != "" && !strings.Contains(r.page.Next, "after="+r.page.NextCursor) {
				t.Fatalf("ascending next %q does not continue after %s", r.page.Next, r.page.NextCursor)
			}
			next = r.page.Next
		}
		want := slices.Clone(ids[:len(ids)-1])
		slices.Reverse(want)
		if !slices.Equal(forward, want) {
			t.Errorf("forward pages gave %v, want %v", forward, want)
		}
	})

	t.Run("bad parameters", func(t *testing.T) {
		tests := []struct {
			query  string
			params []string
		}{
			{"?outcome=ok", []string{"outcome"}},
			{"?since=yesterday&limit=0", []string{"since", "limit"}},
			{"?before=x", []string{"before"}},
			{"?clientid=a", []string{"clientid"}},
			{"?client=a&client=b", []string{"client"}},
			{"?tenant=other", []string{"tenant"}},
			{"?type=" + url.QueryEscape("a*b"), []string{"type"}},
			{"?order=random", []string{"order"}},
		}
		for _, tc := range tests {
			t.Run(tc.query, func(t *testing.T) {
				r := get(tc.query)
				if r.status != 400 {
					t.Fatalf("status %d, want 400", r.status)
				}
				var names []string
				ps, _ := r.problem["invalid-params"].([]any)
				for _, p := range ps {
					names = append(names, p.(map[string]any)["name"].(string))
					if p.(map[string]any)["reason"] == "" {
						t.Error("a problem without a reason")
					}
				}
				if !slices.Equal(names, tc.params) {
					t.Errorf("invalid-params %v, want %v", names, tc.params)
				}
				if r.problem["request_id"] == "" || r.problem["detail"] == "" {
					t.Errorf("problem %v lacks detail or request id", r.problem)
				}
			})
		}
	})
}

// TestAdminAuditTokenExpires: an admin token works until its exp, on a
// clock that moves, and is refused from then on.
func TestAdminAuditTokenExpires(t *testing.T) {
	clk := newFakeClock()
	h := newHub(t, withClock(clk))
	adminURI, secret := adminHub(t, h)
	tok, err := adminToken(t, h, "siem", secret, adminURI, server.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if r := adminGet(t, h, tok, server.AdminAPIPath+"/audit"); r.status != 200 {
		t.Fatalf("fresh token: %d", r.status)
	}
	clk.Advance(10*time.Minute - time.Second) // the default lifetime is 10 minutes
	if r := adminGet(t, h, tok, server.AdminAPIPath+"/audit"); r.status != 200 {
		t.Fatalf("token a second before exp: %d", r.status)
	}
	clk.Advance(time.Second)
	r := adminGet(t, h, tok, server.AdminAPIPath+"/audit")
	if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("token at exp: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
}
