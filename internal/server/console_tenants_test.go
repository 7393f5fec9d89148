package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
)

// TestConsoleTenants: a connector of tenant acme puts its people there;
// the console's people and audit pages and the admin API's audit search
// reach that tenant (the hub's own stays the default), an administrator
// deprovisions such a person from the console, and a tenant the hub does
// not serve is refused.
func TestConsoleTenants(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	addAdmin(t, h)
	now := time.Now()
	if err := h.Store.CreateConnector(ctx, &store.Connector{TenantID: "acme", ID: "acme", Type: store.ConnectorOIDC, Name: "Acme SSO",
		Issuer: "https://login.acme.example", ClientID: "hub", EmailDomains: []string{"acme.example"}}, nil); err != nil {
		t.Fatal(err)
	}
	m := audit.Meta{TenantID: "acme", Time: now, Actor: audit.ActorHub}
	if err := h.Store.CreateUser(ctx, &store.User{TenantID: "acme", ID: "u-dave", Username: "dave", Email: "dave@acme.example",
		ConnectorID: "acme", ExternalSubject: "sub-dave", CreatedAt: now, UpdatedAt: now}, audit.NewUserCreated(m, "u-dave")); err != nil {
		t.Fatal(err)
	}
	sess := []byte("dave-session")
	if err := h.Store.CreateSession(ctx, &store.Session{Hash: sess, TenantID: "acme", UserID: "u-dave", AuthTime: now, ExpiresAt: now.Add(time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}

	b := h.Browser()
	p := signIn(t, h, b, "/admin/users", adminUser)
	if !strings.Contains(p.Body, `href="/admin/users?tenant=acme"`) || strings.Contains(p.Body, "dave") {
		t.Fatalf("the people page of the default tenant:\n%s", p.Body)
	}
	p = b.Get(h.URL + "/admin/users?tenant=acme")
	if p.Status != 200 || !strings.Contains(p.Body, `href="/admin/users/u-dave?tenant=acme"`) || strings.Contains(p.Body, ">alice<") {
		t.Fatalf("the people page of acme: %d\n%s", p.Status, p.Body)
	}
	for _, path := range []string{"/admin/users?tenant=nope", "/admin/users/u-dave", "/admin/users/u-dave?tenant=nope"} {
		if p := b.Get(h.URL + path); p.Status != http.StatusNotFound {
			t.Errorf("%s: %d", path, p.Status)
		}
	}
	p = b.Get(h.URL + "/admin/users/u-dave?tenant=acme")
	if p.Status != 200 || !strings.Contains(p.Body, `href="/admin/users/u-dave/deprovision?tenant=acme"`) || !strings.Contains(p.Body, "user.created") {
		t.Fatalf("dave's page: %d\n%s", p.Status, p.Body)
	}
	p = b.Get(h.URL + "/admin/users/u-dave/deprovision?tenant=acme")
	p = b.Post(h.URL+"/admin/users/u-dave/deprovision?tenant=acme", url.Values{"csrf_token": {formToken(t, p)}})
	if p.URL.Query().Get("done") != "deprovisioned" || p.URL.Query().Get("tenant") != "acme" || !strings.Contains(p.Body, "Deprovisioned:") {
		t.Fatalf("after deprovisioning: %s\n%s", p.URL, p.Body)
	}
	if u, err := h.Store.GetUser(ctx, "acme", "u-dave"); err != nil || !u.Disabled {
		t.Fatalf("dave after deprovisioning: %+v %v", u, err)
	}
	if _, err := h.Store.GetSession(ctx, sess, time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("dave's session: %v", err)
	}
	evs, err := h.Store.ListAudit(ctx, store.AuditFilter{TenantID: "acme", UserID: "u-dave", Type: audit.UserUpdated})
	if err != nil || len(evs) != 1 || evs[0].Details["actor"] != audit.ActorConsole {
		t.Fatalf("dave's user.updated events in acme: %v %v", evs, err)
	}

	p = b.Get(h.URL + "/admin/audit?tenant=acme&user=dave")
	if p.Status != 200 || !strings.Contains(p.Body, "user.created") || !strings.Contains(p.Body, `<option value="acme" selected>`) {
		t.Fatalf("the audit page of acme: %d\n%s", p.Status, p.Body)
	}
	if p := b.Get(h.URL + "/admin/audit?type=user.created"); strings.Contains(p.Body, "u-dave") {
		t.Fatal("the default tenant's audit page shows acme's events")
	}
	if p := b.Get(h.URL + "/admin/audit?tenant=nope"); p.Status != http.StatusBadRequest {
		t.Fatalf("an unknown tenant's audit page: %d", p.Status)
	}
	ev := evs[0]
	if p := b.Get(h.URL + "/admin/audit/" + strconv.FormatInt(ev.ID, 10)); p.Status != 200 || !strings.Contains(p.Body, "u-dave") {
		t.Fatalf("acme's event page: %d", p.Status)
	}

	adminURI, adminSecret := adminHub(t, h)
	tok, err := adminToken(t, h, "siem", adminSecret, adminURI, server.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	resp, raw := bearerDo(t, "GET", h.URL+"/admin/api/audit?tenant=acme&type=user.created", tok, "", "")
	var page struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(raw, &page); resp.StatusCode != 200 || err != nil || len(page.Events) != 1 {
		t.Fatalf("admin API audit of acme: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := bearerDo(t, "GET", h.URL+"/admin/api/audit?tenant=nope", tok, "", ""); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("admin API audit of an unknown tenant: %d %s", resp.StatusCode, raw)
	}
}
