package server_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/store"
)

// need names what a stored event of one lifecycle stage must carry.
type need uint32

const (
	nClient    need = 1 << iota // client_id
	nUser                       // user_id
	nResource                   // resource
	nScopes                     // scopes
	nJTI                        // details jti (or subject_jti)
	nChain                      // details act_chain
	nProvider                   // details provider
	nDecision                   // policy_version and policy_decisions (with policy ids)
	nAgentKind                  // registration_method and client_type
	nCIMDHost                   // cimd_host
	nRequest                    // ip, user_agent and request_id
)

// TestLifecycleEvents runs one scripted life of agents through every stage
// the trail must cover — registration, consent (grant, partial deny, deny,
// expiry on a moving clock, revocation), connectivity (issuance, refresh,
// exchange, a tool call reported twice, a credential retrieval,
// introspection of a revoked token), termination (credential revocation,
// disable, delete, cleanup) — and checks, stage by stage, that the stored
// event of that stage carries the fields an incident responder needs.
func TestLifecycleEvents(t *testing.T) {
	h := newRetrievalHub(t, "")
	ctx := context.Background()

	// Registration: a public native client registers itself (RFC 7591).
	reg := h.register("203.0.113.9", nativeClient("Lifecycle Agent", 8123))
	if reg.status != http.StatusCreated {
		t.Fatalf("registration: %d %v", reg.status, reg.body)
	}
	dcrID := reg.str("client_id")

	// Consent: alice grants notes.read to the agent for a day.
	h.connect("calendar.read")
	conf := h.oauth2Config("agent", h.secrets["agent"], "notes.read")
	b := h.Browser()
	f := h.startFlow(b, conf)
	tok := f.finish(f.decide("allow", []string{"notes.read"}, "1d"))
	// Partial denial: asked for two more scopes, she allows one.
	conf2 := h.oauth2Config("agent", h.secrets["agent"], "notes.read", "notes.write", "files.read")
	f = h.startFlow(b, conf2)
	f.finish(f.decide("allow", []string{"notes.write"}, "1d"))
	// Denial: asked again for the rest, she refuses.
	f = h.startFlow(b, conf2)
	if back := f.decide("deny", nil, ""); back.Location == nil || back.Location.Query().Get("error") != "access_denied" {
		t.Fatalf("deny: %d %v", back.Status, back.Location)
	}

	// Connectivity: refresh, exchange, a tool call reported twice, a
	// downstream credential retrieval.
	rr := h.refresh(tok.RefreshToken, "agent", h.secrets["agent"])
	if rr.status != http.StatusOK {
		t.Fatalf("refresh: %d %v", rr.status, rr.body)
	}
	access, refresh := rr.str("access_token"), rr.str("refresh_token")
	jti := h.claims(access)["jti"].(string)
	ex := h.exchange("mcp-a", subjectForm(access, "resource", h.resB, "scope", "notes.read"))
	if ex.status != http.StatusOK {
		t.Fatalf("exchange: %d %v", ex.status, ex.body)
	}
	report := reportBatch(t, map[string]any{"id": "rep-1", "jti": jti, "tool": "search_notes", "outcome": "success",
		"duration_ms": 12, "time": h.clk.Now().Format(time.RFC3339Nano)})
	for range 2 { // the second send is a retry whose answer was lost
		if status, _, body := h.postToolReport(t, "mcp-a", h.secrets["mcp-a"], "application/json", report); status != http.StatusOK {
			t.Fatalf("tool report: %d %v", status, body)
		}
	}
	if r := h.retrieve("mcp-a", access, "calendar"); r.status != http.StatusOK {
		t.Fatalf("retrieval: %d %v", r.status, r.body)
	}

	// Credential revocation, then the resource server introspects the
	// revoked token.
	if r := h.post("/revoke", url.Values{"token": {access}}, "agent", h.secrets["agent"]); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %v", r.status, r.body)
	}
	if r := h.post("/introspect", url.Values{"token": {access}}, "mcp-a", h.secrets["mcp-a"]); r.body["active"] != false {
		t.Fatalf("introspection of the revoked token: %v", r.body)
	}

	// Consent revocation on the account page: the write scope.
	acct := h.account(b)
	h.revoke(b, cfField(t, cfCSRF, acct.Body), url.Values{"client_id": {"agent"}, "resource": {h.resA}, "scope": {"notes.write"}})

	// Expiry: the day passes; the refresh finds the consent gone.
	h.clk.Advance(25 * time.Hour)
	if r := h.refresh(refresh, "agent", h.secrets["agent"]); r.status == http.StatusOK {
		t.Fatalf("refresh after the consent expired: %v", r.body)
	}

	// Termination: the agent deprovisioned (disabled), the dynamic client
	// deleted by itself (RFC 7592), another one removed as unused.
	if _, err := clients.Deprovision(ctx, h.Store, audit.Meta{Actor: audit.ActorCLI}, "", "agent", h.clk.Now()); err != nil {
		t.Fatal(err)
	}
	del := h.jsonRequest(http.MethodDelete, "/register/"+url.PathEscape(dcrID), nil, reg.str("registration_access_token"))
	if del.status != http.StatusNoContent {
		t.Fatalf("RFC 7592 delete: %d %v", del.status, del.body)
	}
	stale := h.register("203.0.113.10", nativeClient("Forgotten Agent", 8124)).str("client_id")
	h.clk.Advance(100 * 24 * time.Hour)
	if gone, err := clients.Prune(ctx, h.Store, clients.PruneOptions{UnusedFor: 30 * 24 * time.Hour, Now: h.clk.Now()}); err != nil || len(gone) != 1 {
		t.Fatalf("prune: %v %v", gone, err)
	}

	isAgent := func(ev *store.AuditEvent) bool { return ev.ClientID == "agent" }
	tests := []struct {
		stage, typ string
		match      func(ev *store.AuditEvent) bool
		need       need
		check      func(t *testing.T, ev *store.AuditEvent)
	}{
		{"registration (dcr)", audit.ClientRegistered, func(ev *store.AuditEvent) bool { return ev.ClientID == dcrID },
			nClient | nDecision | nAgentKind | nRequest, func(t *testing.T, ev *store.AuditEvent) {
				want(t, ev, audit.DetailRegistrationMethod, store.RegistrationDCR)
				want(t, ev, audit.DetailClientType, audit.ClientPublic)
			}},
		{"consent grant", audit.ConsentGiven, func(ev *store.AuditEvent) bool { return slices.Equal(ev.Scopes, []string{"notes.read"}) }, nClient | nUser | nResource | nScopes | nAgentKind | nRequest, nil},
		{"consent partial deny", audit.ConsentDenied, func(ev *store.AuditEvent) bool { return ev.Details["partial"] == "true" },
			nClient | nUser | nResource | nScopes | nAgentKind | nRequest, func(t *testing.T, ev *store.AuditEvent) {
				want(t, ev, "granted", "notes.write")
				if !slices.Equal(ev.Scopes, []string{"files.read"}) {
					t.Errorf("denied scopes %v", ev.Scopes)
				}
			}},
		{"consent deny", audit.ConsentDenied, func(ev *store.AuditEvent) bool { return ev.Details["partial"] == "" },
			nClient | nUser | nResource | nScopes | nAgentKind | nRequest, nil},
		{"consent revocation", audit.ConsentRevoked, func(ev *store.AuditEvent) bool { return ev.Details["by"] == "user" },
			nClient | nUser | nResource | nScopes | nAgentKind | nRequest, nil},
		{"consent expiry", audit.ConsentExpired, isAgent, nClient | nUser | nResource | nScopes | nAgentKind | nRequest, nil},
		{"token issuance (code)", audit.TokenIssued, func(ev *store.AuditEvent) bool {
			return ev.Details["grant_type"] == "authorization_code" && len(ev.Scopes) == 1
		},
			nClient | nUser | nResource | nScopes | nJTI | nDecision | nAgentKind | nRequest, nil},
		{"refresh", audit.RefreshRotated, isAgent, nClient | nUser | nResource | nAgentKind | nRequest, nil},
		{"token issuance (refresh)", audit.TokenIssued, func(ev *store.AuditEvent) bool { return ev.Details["grant_type"] == "refresh_token" },
			nClient | nUser | nResource | nScopes | nJTI | nDecision | nAgentKind | nRequest, nil},
		{"exchange", audit.TokenIssued, func(ev *store.AuditEvent) bool {
			return ev.Details["grant_type"] == grantExchange && ev.Resource == h.resB
		},
			nClient | nUser | nResource | nScopes | nJTI | nChain | nDecision | nAgentKind | nRequest, func(t *testing.T, ev *store.AuditEvent) {
				want(t, ev, "subject_jti", jti)
				want(t, ev, audit.DetailActChain, "mcp-a agent")
			}},
		{"tool invocation", audit.ToolInvoked, isAgent, nClient | nUser | nResource | nScopes | nJTI | nAgentKind | nRequest,
			func(t *testing.T, ev *store.AuditEvent) {
				want(t, ev, "jti", jti)
				want(t, ev, store.DetailReportID, "rep-1")
			}},
		{"credential retrieval", audit.ConnectionRetrieved, nil, nClient | nUser | nResource | nJTI | nProvider | nAgentKind | nRequest,
			func(t *testing.T, ev *store.AuditEvent) { want(t, ev, store.DetailAgent, "agent") }},
		{"credential revocation", audit.TokenRevoked, isAgent, nClient | nUser | nJTI | nAgentKind | nRequest, nil},
		{"introspection of a revoked token", audit.TokenIntrospectedInactive, isAgent,
			nClient | nUser | nResource | nScopes | nJTI | nAgentKind | nRequest, func(t *testing.T, ev *store.AuditEvent) {
				want(t, ev, "reason", audit.InactiveRevoked)
				want(t, ev, "introspecting_client", "mcp-a")
			}},
		{"disable", audit.ClientUpdated, func(ev *store.AuditEvent) bool { return isAgent(ev) && ev.Details["change"] == audit.ChangeDisabled },
			nClient | nAgentKind, nil},
		{"deprovision", audit.ClientUpdated, func(ev *store.AuditEvent) bool {
			return isAgent(ev) && ev.Details["change"] == audit.ChangeDeprovisioned
		},
			nClient | nAgentKind, nil},
		{"tokens revoked", audit.ClientTokensRevoked, isAgent, nClient | nAgentKind, nil},
		{"delete", audit.ClientDeleted, func(ev *store.AuditEvent) bool { return ev.ClientID == dcrID }, nClient | nAgentKind | nRequest, nil},
		{"cleanup", audit.ClientExpired, func(ev *store.AuditEvent) bool { return ev.ClientID == stale }, nClient | nAgentKind, nil},
	}
	for _, tc := range tests {
		t.Run(tc.stage, func(t *testing.T) {
			var found []*store.AuditEvent
			for _, ev := range h.auditEvents(tc.typ) {
				if tc.match == nil || tc.match(ev) {
					found = append(found, ev)
				}
			}
			if len(found) != 1 {
				t.Fatalf("%d %s events for this stage, want 1: %+v", len(found), tc.typ, found)
			}
			ev := found[0]
			if err := audit.Check(ev); err != nil {
				t.Error(err)
			}
			checkNeeds(t, ev, tc.need)
			if tc.check != nil {
				tc.check(t, ev)
			}
		})
	}
}

// checkNeeds fails for every field of n that ev lacks.
func checkNeeds(t *testing.T, ev *store.AuditEvent, n need) {
	t.Helper()
	d := ev.Details
	checks := []struct {
		n       need
		name    string
		present bool
	}{
		{nClient, "client_id", ev.ClientID != ""},
		{nUser, "user_id", ev.UserID != ""},
		{nResource, "resource", ev.Resource != ""},
		{nScopes, "scopes", len(ev.Scopes) > 0},
		{nJTI, "jti", d["jti"] != "" || d["subject_jti"] != ""},
		{nChain, "act_chain", d[audit.DetailActChain] != ""},
		{nProvider, "provider", d[store.DetailProvider] != ""},
		{nDecision, "policy decision", d[audit.DetailPolicyVersion] != "" && strings.Contains(d["policy_decisions"], `"policies"`)},
		{nAgentKind, "registration_method and client_type", d[audit.DetailRegistrationMethod] != "" && d[audit.DetailClientType] != ""},
		{nCIMDHost, "cimd_host", d[audit.DetailCIMDHost] != ""},
		{nRequest, "ip, user agent and request id", ev.IP != "" && d[audit.DetailUserAgent] != "" && ev.RequestID != ""},
	}
	for _, c := range checks {
		if n&c.n != 0 && !c.present {
			t.Errorf("%s event lacks %s: %+v", ev.Type, c.name, ev)
		}
	}
	for k, v := range d {
		if strings.Count(v, ".") == 2 && len(v) > 100 {
			t.Errorf("details %s looks like a token: %.40s…", k, v)
		}
	}
}

func want(t *testing.T, ev *store.AuditEvent, key, value string) {
	t.Helper()
	if ev.Details[key] != value {
		t.Errorf("%s details %s = %q, want %q", ev.Type, key, ev.Details[key], value)
	}
}
