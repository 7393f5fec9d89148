package main

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// TestClientsApproveAndPrune: `clients list` shows a held client as pending
// and when clients were last used; `clients approve` lets it out, audited;
// `clients prune --dry-run` shows the unused self-registered clients and
// changes nothing; `clients prune` removes them with client.expired events,
// never an admin's client or a recently used one.
func TestClientsApproveAndPrune(t *testing.T) {
	e := newCLIEnv(t)
	e.run("resources", "add", "--uri", "https://notes.example.test/mcp", "--name", "Notes", "--scope", "notes.read=Read")
	e.run("clients", "add", "--name", "Admin's", "--id", "admin-1", "--redirect-uri", "https://agent.example.test/cb")
	st := e.store()
	ctx := context.Background()
	now := time.Now()
	add := func(id, status string, created, lastUsed time.Time) {
		t.Helper()
		c := &store.Client{
			TenantID: store.DefaultTenant, ID: id, Name: "Agent " + id, RegistrationMethod: store.RegistrationDCR,
			TokenEndpointAuthMethod: "none", RedirectURIs: []string{"http://127.0.0.1/cb"}, GrantTypes: []string{"authorization_code"},
			ResponseTypes: []string{"code"}, ApplicationType: "native", Status: status, LastUsedAt: lastUsed,
			CreatedAt: created, UpdatedAt: created,
		}
		if err := st.CreateClient(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
	}
	add("held-1", store.ClientPending, now.Add(-time.Minute), time.Time{})
	add("old-1", store.ClientActive, now.Add(-72*time.Hour), time.Time{})
	add("used-1", store.ClientActive, now.Add(-72*time.Hour), now.Add(-time.Hour))

	out, _ := e.run("clients", "list")
	for _, re := range []string{
		`(?m)^held-1 +Agent held-1 +none +authorization_code +dcr +pending +\S+ +never$`,
		`(?m)^used-1 .* enabled +\S+ +\d{4}-\d\d-\d\dT`,
		`(?m)^admin-1 .* manual +enabled`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("clients list does not match %s:\n%s", re, out)
		}
	}

	out, _ = e.run("clients", "approve", "held-1")
	if out != "client held-1 approved\n" {
		t.Errorf("approve: %q", out)
	}
	if c, err := st.GetClient(ctx, store.DefaultTenant, "held-1"); err != nil || c.Pending() {
		t.Fatalf("after approve: %+v %v", c, err)
	}
	if evs, _ := st.ListAudit(ctx, store.AuditFilter{Type: audit.ClientUpdated, ClientID: "held-1"}); len(evs) != 1 || evs[0].StoredDetails()["change"] != audit.ChangeApproved {
		t.Fatalf("approval events: %+v", evs)
	}
	if out, _ = e.run("clients", "approve", "held-1"); out != "client held-1 was not pending; nothing changed\n" {
		t.Errorf("approving again: %q", out)
	}

	out, _ = e.run("clients", "prune", "--dry-run", "--unused-for", "24h")
	if !regexp.MustCompile(`(?m)^old-1 +Agent old-1 +dcr `).MatchString(out) || regexp.MustCompile(`used-1|admin-1|held-1`).MatchString(out) ||
		!regexp.MustCompile(`1 client\(s\) unused for 24h would be removed \(dry run`).MatchString(out) {
		t.Errorf("dry run:\n%s", out)
	}
	if _, err := st.GetClient(ctx, store.DefaultTenant, "old-1"); err != nil {
		t.Fatalf("the dry run removed old-1: %v", err)
	}

	out, _ = e.run("clients", "prune", "--unused-for", "24h")
	if !regexp.MustCompile(`1 client\(s\) unused for 24h removed`).MatchString(out) {
		t.Errorf("prune:\n%s", out)
	}
	if _, err := st.GetClient(ctx, store.DefaultTenant, "old-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old-1 after prune: %v", err)
	}
	for _, id := range []string{"used-1", "admin-1", "held-1"} {
		if _, err := st.GetClient(ctx, store.DefaultTenant, id); err != nil {
			t.Errorf("%s removed: %v", id, err)
		}
	}
	if evs, _ := st.ListAudit(ctx, store.AuditFilter{Type: audit.ClientExpired, ClientID: "old-1"}); len(evs) != 1 {
		t.Fatalf("client.expired events: %+v", evs)
	}

	// The default is registration.client_expiry (720h): nothing is that old.
	if out, _ = e.run("clients", "prune", "--dry-run"); !regexp.MustCompile(`0 client\(s\) unused for 720h`).MatchString(out) {
		t.Errorf("default prune: %q", out)
	}
}
