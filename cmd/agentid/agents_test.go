package main

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// TestAgentsCLI: `agents list|show` is the inventory (status, type,
// registration, owner, consenting users, last token); `agents deprovision`
// switches an agent off with its events and says so when run again;
// `agents stale` reports without acting unless asked; `users deprovision`
// disables the person and revokes their consents.
func TestAgentsCLI(t *testing.T) {
	e := newCLIEnv(t)
	e.run("resources", "add", "--uri", "https://notes.example.test/mcp", "--name", "Notes", "--scope", "notes.read=Read")
	e.run("clients", "add", "--name", "Notes Agent", "--id", "agent-1", "--redirect-uri", "https://agent.example.test/cb")
	e.run("clients", "add", "--name", "Nightly", "--id", "job-1", "--grant-type", "client_credentials")
	st := e.store()
	ctx := context.Background()
	now := time.Now()
	if err := st.CreateUser(ctx, &store.User{TenantID: store.DefaultTenant, ID: "u-1", Username: "alice", CreatedAt: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertConsents(ctx, []*store.ConsentGrant{{TenantID: store.DefaultTenant, UserID: "u-1", ClientID: "agent-1",
		Resource: "https://notes.example.test/mcp", Scope: "notes.read", GrantedAt: now}}, nil); err != nil {
		t.Fatal(err)
	}
	old := &store.Client{TenantID: store.DefaultTenant, ID: "dcr-old", Name: "Old", RegistrationMethod: store.RegistrationDCR,
		TokenEndpointAuthMethod: "none", RedirectURIs: []string{"http://127.0.0.1/cb"}, GrantTypes: []string{"authorization_code"},
		ResponseTypes: []string{"code"}, ApplicationType: "native", CreatedIP: "192.0.2.7", OwnerUserID: "u-1",
		CreatedAt: now.Add(-900 * time.Hour), UpdatedAt: now.Add(-900 * time.Hour)}
	if err := st.CreateClient(ctx, old, nil); err != nil {
		t.Fatal(err)
	}

	// A tool call an MCP server reported for the job.
	call := audit.NewToolInvoked(audit.Meta{Time: now.Add(-time.Minute)}, audit.ToolInvokedFields{ClientID: "job-1",
		Resource: "https://notes.example.test/mcp", JTI: "jti-1", ReportingClient: "notes-mcp", Tool: "search_notes",
		Outcome: audit.ToolSuccess})
	if err := st.AppendAudit(ctx, call); err != nil {
		t.Fatal(err)
	}

	out, _ := e.run("agents", "list")
	for _, re := range []string{
		`(?m)^agent-1 +Notes Agent +active +confidential +manual +- +1 +\S+ +never +never$`,
		`(?m)^dcr-old +Old +active +public +dcr +alice +0 `,
		`(?m)^job-1 +Nightly +active +confidential +manual .* never +\S+ search_notes$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("agents list does not match %s:\n%s", re, out)
		}
	}
	out, _ = e.run("agents", "show", "dcr-old")
	for _, re := range []string{`(?m)^created_ip +192\.0\.2\.7$`, `(?m)^owner +alice$`, `(?m)^status +active$`, `(?m)^last_token +never$`, `(?m)^last_tool_call +never$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("agents show does not match %s:\n%s", re, out)
		}
	}

	out, _ = e.run("agents", "show", "--json", "job-1")
	var job struct {
		LastToolCallAt time.Time `json:"last_tool_call_at"`
		LastTool       string    `json:"last_tool"`
	}
	if err := json.Unmarshal([]byte(out), &job); err != nil || !job.LastToolCallAt.Equal(call.Time.Truncate(time.Microsecond)) || job.LastTool != "search_notes" {
		t.Errorf("show --json job-1: %+v %v\n%s", job, err, out)
	}

	out, _ = e.run("agents", "deprovision", "agent-1")
	if out != "agent agent-1 deprovisioned: disabled, its consents and tokens revoked\n" {
		t.Errorf("deprovision: %q", out)
	}
	out, _ = e.run("agents", "deprovision", "agent-1")
	if out != "agent agent-1 was already deprovisioned; nothing changed\n" {
		t.Errorf("deprovision again: %q", out)
	}
	out, _ = e.run("agents", "show", "--json", "agent-1")
	var shown struct {
		Status   string   `json:"status"`
		Disabled bool     `json:"disabled"`
		Users    []string `json:"consenting_users"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.Status != "deprovisioned" || !shown.Disabled || len(shown.Users) != 0 {
		t.Errorf("show --json after: %+v %v\n%s", shown, err, out)
	}
	if evs, _ := st.ListAudit(ctx, store.AuditFilter{Type: audit.ClientTokensRevoked, ClientID: "agent-1"}); len(evs) != 1 {
		t.Errorf("client.tokens_revoked events: %d", len(evs))
	}
	if out, _ := e.run("clients", "list"); !regexp.MustCompile(`(?m)^agent-1 .* deprovisioned `).MatchString(out) {
		t.Errorf("clients list:\n%s", out)
	}

	out, _ = e.run("agents", "stale", "--unused-for", "720h")
	if !regexp.MustCompile(`(?m)^dcr-old +Old +active +dcr +\S+ +-$`).MatchString(out) || regexp.MustCompile(`(?m)^(job-1|agent-1) `).MatchString(out) {
		t.Errorf("stale report:\n%s", out)
	}
	if out, _ = e.run("agents", "stale", "--unused-for", "720h", "--action", "disable", "--dry-run"); !regexp.MustCompile(`(?m)^dcr-old .* would disable$`).MatchString(out) {
		t.Errorf("stale dry run:\n%s", out)
	}
	if c, _ := st.GetClient(ctx, store.DefaultTenant, "dcr-old"); c.Disabled {
		t.Fatal("a report or dry run disabled the agent")
	}
	if out, _ = e.run("agents", "stale", "--unused-for", "720h", "--action", "disable"); !regexp.MustCompile(`(?m)^dcr-old .* disabled$`).MatchString(out) {
		t.Errorf("stale disable:\n%s", out)
	}
	if c, _ := st.GetClient(ctx, store.DefaultTenant, "dcr-old"); !c.Disabled {
		t.Fatal("stale --action disable left the agent enabled")
	}

	if err := st.UpsertConsents(ctx, []*store.ConsentGrant{{TenantID: store.DefaultTenant, UserID: "u-1", ClientID: "job-1",
		Resource: "https://notes.example.test/mcp", Scope: "notes.read", GrantedAt: now}}, nil); err != nil {
		t.Fatal(err)
	}
	out, _ = e.run("users", "deprovision", "alice")
	if out != "user alice deprovisioned: disabled, sessions and tokens ended, 1 consent(s) and 0 connection(s) revoked\n" {
		t.Errorf("users deprovision: %q", out)
	}
	if u, _ := st.GetUserByUsername(ctx, store.DefaultTenant, "alice"); !u.Disabled {
		t.Error("alice is not disabled")
	}
	out, _ = e.run("users", "deprovision", "alice")
	if out != "user alice was already deprovisioned; sessions and tokens checked again\n" {
		t.Errorf("users deprovision again: %q", out)
	}
}
