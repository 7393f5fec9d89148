package policy

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

func dryRunStore(t *testing.T) store.Store {
	t.Helper()
	ctx := context.Background()
	st := openSQLite(t)
	clients := []*store.Client{
		{TenantID: store.DefaultTenant, ID: "dcr-1", RegistrationMethod: store.RegistrationDCR, TokenEndpointAuthMethod: "none"},
		{TenantID: store.DefaultTenant, ID: "bot", RegistrationMethod: store.RegistrationManual,
			TokenEndpointAuthMethod: "client_secret_basic", Tags: []string{"cc:files:read"}},
	}
	for _, c := range clients {
		if err := st.CreateClient(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CreateUser(ctx, &store.User{TenantID: store.DefaultTenant, ID: "alice", Username: "alice"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateResource(ctx, &store.Resource{TenantID: store.DefaultTenant, ID: "files", URI: testResource, Name: "Files",
		Scopes: []store.Scope{{Name: "files:read"}, {Name: "files:write"}, {Name: "files:delete", Sensitive: true}}}, nil); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestDryRun(t *testing.T) {
	ctx := context.Background()
	t0 := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	st := dryRunStore(t)
	add := func(ev *store.AuditEvent) *store.AuditEvent {
		ev.TenantID, ev.Type, ev.Outcome = store.DefaultTenant, EventTokenIssued, "success"
		if err := st.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	// A grant recorded with its policy decisions: files:delete was denied
	// by policy.
	withDecisions := &Result{Decisions: []Decision{
		{Scope: "files:read", Allowed: true, PolicyIDs: []string{"user-consent"}},
		{Scope: "files:write", Allowed: true, PolicyIDs: []string{"user-consent"}},
		{Scope: "files:delete", PolicyIDs: []string{"self-registered-sensitive-requires-trusted"}},
	}}
	details := audit.NewTokenIssued(audit.Meta{}, audit.TokenIssuedFields{GrantType: "authorization_code", Policy: withDecisions.Audit()}).Details
	old := add(&store.AuditEvent{Time: t0.Add(-48 * time.Hour), ClientID: "dcr-1", UserID: "alice", Resource: testResource,
		Scopes: []string{"files:read"}, Details: map[string]string{"grant_type": "authorization_code"}})
	evUser := add(&store.AuditEvent{Time: t0.Add(time.Hour), ClientID: "dcr-1", UserID: "alice", Resource: testResource,
		Scopes: []string{"files:read", "files:write"}, Details: details})
	evCC := add(&store.AuditEvent{Time: t0.Add(2 * time.Hour), ClientID: "bot", Resource: testResource,
		Scopes: []string{"files:read"}, Details: map[string]string{"grant_type": "client_credentials"}})
	evGone := add(&store.AuditEvent{Time: t0.Add(3 * time.Hour), ClientID: "deleted", UserID: "alice", Resource: testResource,
		Scopes: []string{"files:read"}, Details: map[string]string{"grant_type": "refresh_token"}})
	_ = old
	// The compact per-scope form the token endpoint writes.
	evCompact := add(&store.AuditEvent{Time: t0.Add(4 * time.Hour), ClientID: "dcr-1", UserID: "alice", Resource: testResource,
		Scopes: []string{"files:read"}, Details: map[string]string{"grant_type": "refresh_token",
			"scope.files:read":   "granted:user-consent",
			"scope.files:delete": "denied:self-registered-sensitive-requires-trusted"}})

	tests := []struct {
		name      string
		candidate map[string]string
		// changes maps event id to removed and added scopes.
		removed, added map[int64][]string
	}{
		{name: "same policy changes nothing", candidate: DefaultFiles()},
		{
			name:      "forbid write removes it from user grants",
			candidate: withFile("no-write.cedar", `@id("no-write") forbid (principal, action, resource) when { resource.name == "files:write" };`),
			removed:   map[int64][]string{evUser.ID: {"files:write"}},
		},
		{
			name:      "trusting every agent adds the denied sensitive scope",
			candidate: map[string]string{"open.cedar": `@id("open") permit (principal, action, resource);`},
			added:     map[int64][]string{evUser.ID: {"files:delete"}, evCompact.ID: {"files:delete"}},
		},
		{
			name:      "dropping the cc rule removes client credentials grants",
			candidate: map[string]string{"users.cedar": `@id("users-only") permit (principal, action, resource) when { context has user };`},
			removed:   map[int64][]string{evCC.ID: {"files:read"}},
			added:     map[int64][]string{evUser.ID: {"files:delete"}, evCompact.ID: {"files:delete"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := DryRun(ctx, st, tt.candidate, t0)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Events != 4 || rep.Evaluated != 3 || rep.Skipped != 1 || rep.Skips[0].EventID != evGone.ID {
				t.Errorf("events %d evaluated %d skipped %d %+v", rep.Events, rep.Evaluated, rep.Skipped, rep.Skips)
			}
			gotRemoved, gotAdded := map[int64][]string{}, map[int64][]string{}
			for _, c := range rep.Changes {
				if len(c.Removed) > 0 {
					gotRemoved[c.EventID] = c.Removed
				}
				if len(c.Added) > 0 {
					gotAdded[c.EventID] = c.Added
				}
				for _, s := range c.Removed {
					if slices.Contains(c.After, s) {
						t.Errorf("removed scope %q still in After %v", s, c.After)
					}
				}
			}
			if !equalChanges(gotRemoved, tt.removed) {
				t.Errorf("removed = %v, want %v\n%s", gotRemoved, tt.removed, rep)
			}
			if !equalChanges(gotAdded, tt.added) {
				t.Errorf("added = %v, want %v\n%s", gotAdded, tt.added, rep)
			}
		})
	}
}

func TestDryRunReport(t *testing.T) {
	ctx := context.Background()
	st := dryRunStore(t)
	_ = st.AppendAudit(ctx, &store.AuditEvent{TenantID: store.DefaultTenant, Type: EventTokenIssued, Outcome: "success",
		Time: time.Date(2025, 5, 1, 1, 0, 0, 0, time.UTC), ClientID: "bot", Resource: testResource,
		Scopes: []string{"files:read"}, Details: map[string]string{"grant_type": "client_credentials"}})
	rep, err := DryRun(ctx, st, withFile("deny.cedar", `@id("no-bots") forbid (principal == Agent::"bot", action, resource);`), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	out := rep.String()
	for _, w := range []string{"1 would change", `client "bot"`, "before: files:read", `files:read: no longer granted by "no-bots"`} {
		if !strings.Contains(out, w) {
			t.Errorf("report lacks %q:\n%s", w, out)
		}
	}
}

func TestDryRunRefusesInvalidCandidate(t *testing.T) {
	_, err := DryRun(context.Background(), dryRunStore(t), map[string]string{"x.cedar": "permit (principal, action, resource) when { nope };"}, time.Time{})
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want *ValidationError", err)
	}
}

func withFile(name, src string) map[string]string {
	files := DefaultFiles()
	files[name] = src
	return files
}

func equalChanges(a, b map[int64][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestResultAudit(t *testing.T) {
	res := &Result{Version: 7, Granted: []string{"a"}, Decisions: []Decision{
		{Scope: "a", Allowed: true, PolicyIDs: []string{"p,1", "p=2"}},
		{Scope: "b(x)", PolicyIDs: []string{"f"}, Errors: []string{"boom"}},
	}}
	want := audit.Decision{PolicyVersion: 7, Scopes: []audit.ScopeDecision{
		{Scope: "a", Allowed: true, Reason: audit.ReasonPolicy, PolicyIDs: []string{"p,1", "p=2"}},
		{Scope: "b(x)", Reason: audit.ReasonPolicy, PolicyIDs: []string{"f"}, Errors: []string{"boom"}},
	}}
	if got := res.Audit(); !reflect.DeepEqual(got, want) {
		t.Errorf("Audit() = %+v, want %+v", got, want)
	}
}
