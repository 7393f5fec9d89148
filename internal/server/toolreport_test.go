package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// postToolReport posts body to /tools/report as clientID.
func (h *hub) postToolReport(t *testing.T, clientID, secret, contentType string, body []byte) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.URL+"/tools/report", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if clientID != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, resp.Header, out
}

func reportBatch(t *testing.T, reports ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"reports": reports})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestToolReport: an MCP server reports tool calls as its own client; the
// hub records those made with tokens issued for it, taking the agent, user
// and scopes from its own record of the token (a forged user in the report
// changes nothing), and refuses per report unknown tokens, tokens of
// another server, a chain whose current actor does not hold the token and
// malformed reports; whole batches are refused for a wrong client, a
// client that is no resource server, and bodies that are too large or not
// a batch.
func TestToolReport(t *testing.T) {
	h := newHub(t)
	agent := h.AddClient(&store.Client{ID: "agent", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	rs := h.AddClient(&store.Client{ID: "notes-mcp", GrantTypes: []string{"client_credentials"}})
	h.LinkResourceServer("notes-mcp")
	stranger := h.AddClient(&store.Client{ID: "stranger", GrantTypes: []string{"client_credentials"}})
	other := h.addSecondResource(t, "calendar.read")
	ctx := context.Background()
	res, err := h.Store.GetResource(ctx, store.DefaultTenant, other)
	if err != nil {
		t.Fatal(err)
	}
	res.ClientID = "calendar-mcp"
	if err := h.Store.UpdateResource(ctx, res, nil); err != nil {
		t.Fatal(err)
	}
	bot := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:calendar.read"}, DefaultResource: other})

	tok, err := h.codeFlow(h.Browser(), h.oauth2Config("agent", agent, "notes.read"), []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := h.Keys.Verify(tok.AccessToken, h.URL)
	if err != nil {
		t.Fatal(err)
	}
	cc := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "bot", bot)
	otherClaims, err := h.Keys.Verify(cc.body["access_token"].(string), h.URL)
	if err != nil {
		t.Fatal(err)
	}

	now := time.Now().UTC()
	ok := map[string]any{"jti": claims.JTI, "tool": "read_notes", "outcome": "success", "duration_ms": 42, "time": now,
		// Forged: the hub never reads these.
		"user": "u-mallory", "client_id": "evil", "sub": "u-mallory"}
	withChain := map[string]any{"jti": claims.JTI, "tool": "write_note", "outcome": "error", "duration_ms": 1, "time": now, "act_chain": []string{"agent"}}
	cases := []struct {
		name   string
		report map[string]any
		want   string
	}{
		{"a call with the server's token, forged user ignored", ok, "recorded"},
		{"a chain whose current actor holds the token", withChain, "recorded"},
		{"unknown jti", map[string]any{"jti": "nope", "tool": "read_notes", "outcome": "success", "duration_ms": 1, "time": now}, "unknown_token"},
		{"another server's token", map[string]any{"jti": otherClaims.JTI, "tool": "read_notes", "outcome": "success", "duration_ms": 1, "time": now}, "wrong_audience"},
		// The token was issued to the agent itself, not exchanged (only a
		// resource server holds a token with act): a chain naming another
		// agent behind it would put the call in that agent's trail.
		{"a chain behind a token that was not exchanged", map[string]any{"jti": claims.JTI, "tool": "read_notes", "outcome": "success", "duration_ms": 1, "time": now, "act_chain": []string{"agent", "victim"}}, "chain_mismatch"},
		{"a chain naming another holder", map[string]any{"jti": claims.JTI, "tool": "read_notes", "outcome": "success", "duration_ms": 1, "time": now, "act_chain": []string{"evil", "agent"}}, "chain_mismatch"},
		{"unknown outcome", map[string]any{"jti": claims.JTI, "tool": "read_notes", "outcome": "great", "duration_ms": 1, "time": now}, "invalid_report"},
		{"no tool", map[string]any{"jti": claims.JTI, "outcome": "success", "duration_ms": 1, "time": now}, "invalid_report"},
		{"negative duration", map[string]any{"jti": claims.JTI, "tool": "t", "outcome": "success", "duration_ms": -1, "time": now}, "invalid_report"},
		{"from the future", map[string]any{"jti": claims.JTI, "tool": "t", "outcome": "success", "duration_ms": 1, "time": now.Add(time.Hour)}, "invalid_report"},
		// A server may not place a call years before its token existed:
		// no access token lives longer than server.MaxAccessTokenTTL.
		{"from before the token was issued", map[string]any{"jti": claims.JTI, "tool": "t", "outcome": "success", "duration_ms": 1, "time": now.Add(-48 * time.Hour)}, "invalid_report"},
		{"control characters in the tool", map[string]any{"jti": claims.JTI, "tool": "a\nb", "outcome": "success", "duration_ms": 1, "time": now}, "invalid_report"},
	}
	var batch []map[string]any
	for _, tc := range cases {
		batch = append(batch, tc.report)
	}
	status, _, out := h.postToolReport(t, "notes-mcp", rs, "application/json", reportBatch(t, batch...))
	if status != http.StatusOK {
		t.Fatalf("status %d %v", status, out)
	}
	results, _ := out["results"].([]any)
	if len(results) != len(cases) || out["recorded"] != 2.0 || out["refused"] != float64(len(cases)-2) {
		t.Fatalf("response = %v", out)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := results[i].(map[string]any)
			got := r["status"]
			if got == "refused" {
				got = r["error"]
			}
			if got != tc.want {
				t.Errorf("result = %v, want %s", r, tc.want)
			}
		})
	}

	evs, err := h.Store.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, Type: audit.ToolInvoked})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d tool.invoked events, want 2", len(evs))
	}
	slices.SortFunc(evs, func(a, b *store.AuditEvent) int { return strings.Compare(a.Details["tool"], b.Details["tool"]) })
	ev := evs[0]
	if ev.ClientID != "agent" || ev.UserID != "u-alice" || ev.Resource != h.Resource || !slices.Equal(ev.Scopes, []string{"notes.read"}) || ev.Outcome != audit.Success {
		t.Errorf("event = %+v, want the token's agent, user, resource and scopes", ev)
	}
	if d := ev.Details; d["jti"] != claims.JTI || d["tool"] != "read_notes" || d["duration_ms"] != "42" || d["reporting_client"] != "notes-mcp" || d["tool_outcome"] != "success" {
		t.Errorf("details = %v", d)
	}
	if !ev.Time.Equal(now.Truncate(time.Microsecond)) && ev.Time.Sub(now).Abs() > time.Millisecond {
		t.Errorf("time = %v, want the reported %v", ev.Time, now)
	}
	if err := audit.Check(ev); err != nil {
		t.Error(err)
	}
	if ev := evs[1]; ev.Outcome != audit.Failure || ev.Details["act_chain"] != "agent" || ev.Details["agent"] != "agent" {
		t.Errorf("chained event = %+v", ev)
	}

	one := reportBatch(t, ok)
	tooMany := make([]map[string]any, 501)
	for i := range tooMany {
		tooMany[i] = ok
	}
	for _, tc := range []struct {
		name        string
		client      string
		secret      string
		contentType string
		body        []byte
		status      int
		code        string // OAuth error, or "" for a problem
	}{
		{"no credentials", "", "", "application/json", one, 401, "invalid_client"},
		{"wrong secret", "notes-mcp", "wrong", "application/json", one, 401, "invalid_client"},
		{"a client that is no resource server", "stranger", stranger, "application/json", one, 403, "unauthorized_client"},
		{"too many reports", "notes-mcp", rs, "application/json", reportBatch(t, tooMany...), 413, ""},
		{"too large a body", "notes-mcp", rs, "application/json", []byte(`{"reports":[` + strings.Repeat(" ", 1<<20) + `]}`), 413, ""},
		{"not JSON", "notes-mcp", rs, "application/json", []byte(`reports=1`), 400, ""},
		{"no reports", "notes-mcp", rs, "application/json", []byte(`{"reports":[]}`), 400, ""},
		{"two values", "notes-mcp", rs, "application/json", append(one, one...), 400, ""},
		{"a form", "notes-mcp", rs, "application/x-www-form-urlencoded", one, 415, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, header, out := h.postToolReport(t, tc.client, tc.secret, tc.contentType, tc.body)
			if status != tc.status {
				t.Fatalf("status %d %v, want %d", status, out, tc.status)
			}
			if tc.code != "" {
				if out["error"] != tc.code {
					t.Errorf("error = %v, want %s", out, tc.code)
				}
				return
			}
			if ct := header.Get("Content-Type"); ct != "application/problem+json" || out["status"] != float64(tc.status) || out["title"] == "" {
				t.Errorf("problem = %v (%s)", out, ct)
			}
		})
	}
	if evs, _ := h.Store.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, Type: audit.ToolInvoked}); len(evs) != 2 {
		t.Errorf("refused batches wrote events: %d", len(evs))
	}
}
