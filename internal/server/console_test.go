package server_test

import (
	"context"
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/password"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// The administrator of the console tests: a local user with the admin
// role, set in the store directly (the CLI that grants roles is `agentid
// users add-role`).
const (
	adminUser   = "ada"
	adminUserID = "u-ada"
)

// addAdmin creates the administrator, whose password is the test user's.
func addAdmin(t testing.TB, h *hub) {
	t.Helper()
	hash, err := password.Hash(servertest.TestPassword)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := h.Store.CreateUser(context.Background(), &store.User{TenantID: store.DefaultTenant, ID: adminUserID, Username: adminUser,
		Name: "Ada Admin", PasswordHash: hash, Roles: []string{server.AdminRole}, CreatedAt: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
}

// signIn signs user in from path's login redirect and returns the page it
// lands on.
func signIn(t *testing.T, h *hub, b *servertest.Browser, path, user string) *servertest.Page {
	t.Helper()
	p := b.Get(h.URL + path)
	if p.URL.Path != "/login" {
		t.Fatalf("%s without a session went to %s", path, p.URL)
	}
	return b.Login(p, user, servertest.TestPassword)
}

var consoleCSRF = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)

func formToken(t *testing.T, p *servertest.Page) string {
	t.Helper()
	m := consoleCSRF.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no form token on %s:\n%s", p.URL, p.Body)
	}
	return html.UnescapeString(m[1])
}

// TestConsoleAccess: signed out, the console sends the person to the login
// page and back to the page they asked for; a person without the admin
// role is refused with a page saying so, and so are their forms and forms
// without a valid token.
func TestConsoleAccess(t *testing.T) {
	h := newHub(t)
	addAdmin(t, h)
	addAgent(h)

	admin := h.Browser()
	p := signIn(t, h, admin, "/admin/audit?type=token.*", adminUser)
	if p.Status != 200 || p.URL.Path != "/admin/audit" || p.URL.Query().Get("type") != "token.*" {
		t.Fatalf("after signing in: %d %s", p.Status, p.URL)
	}
	if p := admin.Get(h.URL + "/admin"); p.URL.Path != "/admin/agents" || !strings.Contains(p.Body, "agent-1") {
		t.Fatalf("/admin led to %s", p.URL)
	}

	person := h.Browser()
	p = signIn(t, h, person, "/admin/agents", servertest.TestUser)
	if p.Status != 403 || !strings.Contains(p.Body, "Administrators only") || !strings.Contains(p.Body, "signed in as alice") {
		t.Fatalf("a person without the admin role: %d\n%s", p.Status, p.Body)
	}
	// alice's own valid form token does not make her an administrator.
	acct := person.Get(h.URL + "/account")
	for _, c := range []struct {
		name string
		b    *servertest.Browser
		form url.Values
		want int
		text string
	}{
		{"no form token", admin, url.Values{}, 403, "Form expired"},
		{"another session's token", admin, url.Values{"csrf_token": {formToken(t, acct)}}, 403, "Form expired"},
		{"not an administrator", person, url.Values{"csrf_token": {formToken(t, acct)}}, 403, "Administrators only"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, path := range []string{"/admin/agents/agent-1/deprovision", "/admin/users/u-alice/disable", "/admin/audit/verify"} {
				p := c.b.Post(h.URL+path, c.form)
				if p.Status != c.want || !strings.Contains(p.Body, c.text) {
					t.Errorf("POST %s: %d, want %d %q", path, p.Status, c.want, c.text)
				}
			}
		})
	}
	if cl, _ := h.Store.GetClient(context.Background(), store.DefaultTenant, "agent-1"); cl.Disabled {
		t.Fatal("a refused form deprovisioned the agent")
	}
	if u, _ := h.Store.GetUser(context.Background(), store.DefaultTenant, "u-alice"); u.Disabled {
		t.Fatal("a refused form disabled alice")
	}
	if p := admin.Get(h.URL + "/admin/nothing-here"); p.Status != 404 {
		t.Errorf("an unknown console page: %d", p.Status)
	}
	// The login never returns to the admin API, nor off the hub.
	for _, back := range []string{"/admin/api/audit", "//evil.example/admin/", "/administrator"} {
		p := h.Browser().Get(h.URL + "/login?return_to=" + url.QueryEscape(back))
		if !strings.Contains(p.Body, `name="return_to" value="/account"`) {
			t.Errorf("return_to %q was kept", back)
		}
	}
}

// TestConsoleLifecycle: an administrator deprovisions an agent and
// disables a person through the confirmation pages; the events name
// them; their own account is not offered.
func TestConsoleLifecycle(t *testing.T) {
	h := newHub(t)
	addAdmin(t, h)
	conf, secret := addAgent(h)
	tok, err := h.codeFlow(h.Browser(), conf, []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	b := h.Browser()
	p := signIn(t, h, b, "/admin/agents/agent-1", adminUser)
	for _, want := range []string{"Notes Agent", "notes.read", "consent.given", "token.issued", `href="/admin/agents/agent-1/deprovision"`} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("agent page lacks %q", want)
		}
	}
	p = b.Get(h.URL + "/admin/agents/agent-1/deprovision")
	if !strings.Contains(p.Body, "Deprovision Notes Agent?") {
		t.Fatalf("confirmation page:\n%s", p.Body)
	}
	p = b.Post(h.URL+"/admin/agents/agent-1/deprovision", url.Values{"csrf_token": {formToken(t, p)}})
	if p.URL.Query().Get("done") != "deprovisioned" || !strings.Contains(p.Body, "Deprovisioned:") || strings.Contains(p.Body, `id="deprovision"`) {
		t.Fatalf("after deprovisioning: %s\n%s", p.URL, p.Body)
	}
	if r := h.refresh(tok.RefreshToken, "agent-1", secret); r.status == 200 {
		t.Error("the deprovisioned agent refreshed")
	}
	evs, _ := h.Store.ListAudit(context.Background(), store.AuditFilter{TenantID: store.DefaultTenant, ClientID: "agent-1", Type: audit.ClientUpdated})
	if len(evs) != 2 {
		t.Fatalf("client.updated events: %v", evs)
	}
	for _, ev := range evs {
		if ev.Details["actor"] != audit.ActorConsole || ev.Details["actor_id"] != adminUserID || ev.IP == "" {
			t.Errorf("event %v does not name the administrator", ev.Details)
		}
	}
	// Posting again (a second tab) changes nothing.
	p = b.Post(h.URL+"/admin/agents/agent-1/deprovision", url.Values{"csrf_token": {formToken(t, p)}})
	if p.URL.Query().Get("done") != "unchanged" {
		t.Errorf("second deprovision: %s", p.URL)
	}

	// An agent whose id is a URL (a Client ID Metadata Document client)
	// has a page and a deprovisioning of its own.
	const docID = "https://agent.example/client.json"
	h.AddClient(&store.Client{ID: docID, Name: "Doc Agent", RegistrationMethod: store.RegistrationCIMD, TokenEndpointAuthMethod: "none", RedirectURIs: []string{redirectURI}})
	m := regexp.MustCompile(`href="(/admin/agents/https[^"]*)"`).FindStringSubmatch(b.Get(h.URL + "/admin/agents").Body)
	if m == nil || m[1] != "/admin/agents/"+url.PathEscape(docID) {
		t.Fatalf("the agents page links the document client as %v", m)
	}
	p = b.Get(h.URL + m[1])
	if p.Status != 200 || !strings.Contains(p.Body, "agent.example") {
		t.Fatalf("the document client's page: %d", p.Status)
	}
	p = b.Post(h.URL+m[1]+"/deprovision", url.Values{"csrf_token": {formToken(t, p)}})
	if c, _ := h.Store.GetClient(context.Background(), store.DefaultTenant, docID); c.Status != store.ClientDeprovisioned || p.URL.Query().Get("done") != "deprovisioned" {
		t.Fatalf("the document client after deprovisioning: %+v at %s", c, p.URL)
	}

	p = b.Get(h.URL + "/admin/users/u-alice/disable")
	p = b.Post(h.URL+"/admin/users/u-alice/disable", url.Values{"csrf_token": {formToken(t, p)}})
	if p.URL.Query().Get("done") != "disabled" || !strings.Contains(p.Body, "disabled") {
		t.Fatalf("after disabling: %s", p.URL)
	}
	if u, _ := h.Store.GetUser(context.Background(), store.DefaultTenant, "u-alice"); !u.Disabled {
		t.Fatal("alice is not disabled")
	}
	if evs := h.auditEvents(audit.UserAccessRevoked); len(evs) != 1 || evs[0].Details["actor_id"] != adminUserID {
		t.Errorf("user.access_revoked events: %v", evs)
	}

	p = b.Get(h.URL + "/admin/users/" + adminUserID)
	if !strings.Contains(p.Body, `id="self"`) || strings.Contains(p.Body, `id="disable"`) {
		t.Errorf("the administrator's own page offers to disable them:\n%s", p.Body)
	}
	if p := b.Post(h.URL+"/admin/users/"+adminUserID+"/disable", url.Values{"csrf_token": {formToken(t, p)}}); p.Status != 400 {
		t.Errorf("disabling oneself: %d", p.Status)
	}
	if p := b.Get(h.URL + "/admin/users/u-alice/delete"); p.Status != 404 {
		t.Errorf("an unknown action: %d", p.Status)
	}
}

// TestConsoleAudit: the search filters as the admin API does (a username
// stands for its id), shows every bad filter, pages by cursor, opens an
// event, and verifying the chain records and shows the result.
func TestConsoleAudit(t *testing.T) {
	h := newHub(t)
	addAdmin(t, h)
	b := h.Browser()
	p := signIn(t, h, b, "/admin/audit?user=ada", adminUser)
	if !strings.Contains(p.Body, "user.login_succeeded") || !strings.Contains(p.Body, "has not been verified yet") {
		t.Fatalf("audit page:\n%s", p.Body)
	}
	for range 3 {
		stranger := h.Browser()
		stranger.Login(stranger.Get(h.URL+"/login"), servertest.TestUser, "wrong password")
	}
	p = b.Get(h.URL + "/admin/audit?type=user.login_failed&since=1h")
	if n := strings.Count(p.Body, "user.login_failed</code>"); n != 3 {
		t.Errorf("%d failed logins listed, want 3", n)
	}
	p = b.Get(h.URL + "/admin/audit?since=yesterday&outcome=maybe")
	if p.Status != 400 || !strings.Contains(p.Body, "<strong>since</strong>") || !strings.Contains(p.Body, "<strong>outcome</strong>") {
		t.Errorf("bad filters: %d\n%s", p.Status, p.Body)
	}
	m := regexp.MustCompile(`href="/admin/audit/(\d+)"`).FindStringSubmatch(b.Get(h.URL + "/admin/audit?type=user.login_failed").Body)
	if m == nil {
		t.Fatal("no event link")
	}
	if p := b.Get(h.URL + "/admin/audit/" + m[1]); !strings.Contains(p.Body, "Event #"+m[1]) || !strings.Contains(p.Body, "user.login_failed") {
		t.Errorf("event page:\n%s", p.Body)
	}
	for _, id := range []string{"999999", "x", "-1"} {
		if p := b.Get(h.URL + "/admin/audit/" + id); p.Status != 404 {
			t.Errorf("event %s: %d", id, p.Status)
		}
	}
	p = b.Post(h.URL+"/admin/audit/verify", url.Values{"csrf_token": {formToken(t, p)}})
	if !strings.Contains(p.Body, "intact") || !strings.Contains(p.Body, "console ("+adminUserID+")") {
		t.Errorf("after verifying:\n%s", p.Body)
	}
	if evs := h.auditEvents(audit.AuditVerified); len(evs) != 1 || evs[0].Details["actor"] != audit.ActorConsole {
		t.Errorf("audit.verified events: %v", evs)
	}
}

// TestConsoleAuditPages: the audit page pages by cursor, keeping the
// filters.
func TestConsoleAuditPages(t *testing.T) {
	h := newHub(t)
	addAdmin(t, h)
	var evs []*store.AuditEvent
	for range 130 {
		evs = append(evs, audit.NewLoginFailed(audit.Meta{TenantID: store.DefaultTenant, Time: time.Now()}, ""))
	}
	if err := h.Store.AppendAudit(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	b := h.Browser()
	p := signIn(t, h, b, "/admin/audit?type=user.login_failed", adminUser)
	older := regexp.MustCompile(`href="([^"]*)" id="older"`).FindStringSubmatch(p.Body)
	if strings.Count(p.Body, "user.login_failed</code>") != 100 || older == nil {
		t.Fatalf("first page: %d events, older %v", strings.Count(p.Body, "user.login_failed</code>"), older)
	}
	p = b.Get(h.URL + html.UnescapeString(older[1]))
	if n := strings.Count(p.Body, "user.login_failed</code>"); n != 30 || strings.Contains(p.Body, `id="older"`) || !strings.Contains(p.Body, `id="newest"`) {
		t.Errorf("second page: %d events", n)
	}
}

// TestConsolePolicy: the versions, a diff between two, and an explained
// decision.
func TestConsolePolicy(t *testing.T) {
	h := newHub(t)
	addAdmin(t, h)
	addAgent(h)
	files := policy.DefaultFiles()
	files[policy.DefaultFile] = strings.Replace(files[policy.DefaultFile], "// agentid default policy set.", "// agentid policy set of the tests.", 1)
	files["extra.cedar"] = "@id(\"extra\")\nforbid (principal, action, resource) when { principal.tags.contains(\"blocked\") };\n"
	if err := policy.Apply(context.Background(), h.Store, &store.PolicySet{TenantID: store.DefaultTenant, Files: files, Comment: "test version", CreatedBy: "tests", CreatedAt: time.Now()}, nil); err != nil {
		t.Fatal(err)
	}
	b := h.Browser()
	p := signIn(t, h, b, "/admin/policy", adminUser)
	if !strings.Contains(p.Body, "version 1") || !strings.Contains(p.Body, "test version") || !strings.Contains(p.Body, "0 (built-in default)") {
		t.Fatalf("policy page:\n%s", p.Body)
	}
	p = b.Get(h.URL + "/admin/policy/diff?from=0&to=1")
	for _, want := range []string{"@@ -1,", "agentid default policy set.", "agentid policy set of the tests.", "extra.cedar", ">added<"} {
		if !strings.Contains(p.Body, html.EscapeString(want)) && !strings.Contains(p.Body, want) {
			t.Errorf("diff lacks %q", want)
		}
	}
	if p := b.Get(h.URL + "/admin/policy/diff?from=1&to=1"); !strings.Contains(p.Body, `id="same"`) {
		t.Error("a version compared with itself is not the same")
	}
	if p := b.Get(h.URL + "/admin/policy/diff?from=7&to=1"); p.Status != 400 {
		t.Errorf("an unknown version: %d", p.Status)
	}
	p = b.Get(h.URL + "/admin/policy/explain?" + url.Values{"agent": {"agent-1"}, "user": {"alice"}, "resource": {h.Resource}, "scope": {"notes.read"}}.Encode())
	if !strings.Contains(p.Body, "allowed") || !strings.Contains(p.Body, "user-consent") {
		t.Errorf("explanation:\n%s", p.Body)
	}
	for q, want := range map[string]string{
		"agent=nobody&resource=" + url.QueryEscape(h.Resource):                     "There is no agent &#34;nobody&#34;.",
		"agent=agent-1&resource=" + url.QueryEscape(h.Resource) + "&scope=x.y":     "does not offer the scope x.y",
		"agent=agent-1&resource=https://elsewhere.example":                         "There is no resource",
		"agent=agent-1&resource=" + url.QueryEscape(h.Resource) + "&grant_type=xx": "Choose a grant type",
		"resource=" + url.QueryEscape(h.Resource):                                  "Name an agent and a resource",
	} {
		if p := b.Get(h.URL + "/admin/policy/explain?" + q); p.Status != 400 || !strings.Contains(p.Body, want) {
			t.Errorf("explain %s: %d, want %q", q, p.Status, want)
		}
	}
}
