package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// TestBrowserConsole walks an administrator through the admin console in
// Chromium: sign in from a console link, see the agents, open one,
// deprovision it from the keyboard through the confirmation (its tokens
// stop working), search the audit trail and open an event, verify the
// chain, compare two policy versions, explain a decision, see the
// people; then a person without the admin role is refused. Every page
// passes the checks of checkPage (contrast, named controls, no script,
// no sideways scrolling on a phone).
func TestBrowserConsole(t *testing.T) {
	b := newTab(t)
	h := newHub(t)
	h.Wrap(slowPages)
	addAdmin(t, h)
	rsSecret := h.AddClient(&store.Client{ID: "notes-mcp", Name: "Notes MCP server", GrantTypes: []string{"client_credentials"}})
	h.LinkResourceServer("notes-mcp")
	conf, secret := addAgent(h)
	tok, err := h.codeFlow(h.Browser(), conf, []string{"notes.read", "notes.write"})
	if err != nil {
		t.Fatal(err)
	}
	files := policy.DefaultFiles()
	files[policy.DefaultFile] = strings.Replace(files[policy.DefaultFile], "// agentid default policy set.", "// agentid policy set, reviewed.", 1)
	if err := policy.Apply(context.Background(), h.Store, &store.PolicySet{TenantID: store.DefaultTenant, Files: files, Comment: "reviewed", CreatedBy: "ops", CreatedAt: time.Now()}, nil); err != nil {
		t.Fatal(err)
	}

	t.Run("sign in and see the agents", func(t *testing.T) {
		b.do(t, chromedp.Navigate(h.URL+"/admin/agents"), chromedp.WaitVisible(chromedp.CSS("#username")), loaded,
			chromedp.SendKeys(chromedp.CSS("#username"), adminUser),
			chromedp.SendKeys(chromedp.CSS("#password"), servertest.TestPassword),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS("#agents")), loaded)
		rows := evalIn[[]string](t, b, `[...document.querySelectorAll('#agents tbody th code')].map(e => e.textContent)`)
		if !slices.Equal(rows, []string{"agent-1", "notes-mcp"}) {
			t.Fatalf("agents listed: %v", rows)
		}
		if cur := evalIn[string](t, b, `document.querySelector('nav [aria-current=page]').id`); cur != "nav-agents" {
			t.Errorf("current section %q", cur)
		}
		b.checkPage(t, "admin-agents")
	})

	t.Run("open an agent and deprovision it from the keyboard", func(t *testing.T) {
		b.do(t, chromedp.Click(chromedp.CSS(`a[href="/admin/agents/agent-1"]`)), chromedp.WaitVisible(chromedp.CSS("#deprovision")), loaded)
		page := b.text(t)
		for _, want := range []string{"Notes Agent", "notes.read", "notes.write", "consent.given", "token.issued"} {
			if !strings.Contains(page, want) {
				t.Errorf("agent page lacks %q", want)
			}
		}
		b.checkPage(t, "admin-agent")
		b.do(t, chromedp.Click(chromedp.CSS("#deprovision")), chromedp.WaitVisible(chromedp.CSS("#confirm")), loaded)
		b.checkPage(t, "admin-confirm")
		if h.introspect(tok.AccessToken, "notes-mcp", rsSecret)["active"] != true {
			t.Fatal("the token is inactive before deprovisioning")
		}
		b.do(t, chromedp.Focus(chromedp.CSS("#confirm")), chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS(".notice")), loaded)
		if !strings.Contains(b.text(t), "deprovisioned") || !strings.Contains(b.text(t), "No one has a consent in force") {
			t.Fatalf("after deprovisioning:\n%s", b.text(t))
		}
		if h.introspect(tok.AccessToken, "notes-mcp", rsSecret)["active"] != false {
			t.Error("the deprovisioned agent's access token is still active")
		}
		if r := h.refresh(tok.RefreshToken, "agent-1", secret); r.status == 200 {
			t.Error("the deprovisioned agent's refresh token still works")
		}
	})

	t.Run("search the audit trail and open an event", func(t *testing.T) {
		b.do(t, chromedp.Click(chromedp.CSS("#nav-audit")), chromedp.WaitVisible(chromedp.CSS("#f-agent")), loaded,
			chromedp.SendKeys(chromedp.CSS("#f-agent"), "agent-1"),
			chromedp.SendKeys(chromedp.CSS("#f-type"), "client.*"))
		// The unfiltered page lists events too: take its table away, so
		// that the wait below is for the results' table.
		evalIn[bool](t, b, `document.querySelector('table.events').remove() === undefined`)
		b.do(t, chromedp.Click(chromedp.CSS("#search")), chromedp.WaitVisible(chromedp.CSS("table.events")), loaded)
		types := evalIn[[]string](t, b, `[...document.querySelectorAll('table.events tbody td:nth-child(3) code')].map(e => e.textContent)`)
		// Newest first: the refresh the deprovisioned agent tried, then
		// the steps of deprovisioning.
		if want := []string{audit.ClientAuthFailed, audit.ClientUpdated, audit.ClientTokensRevoked, audit.ClientUpdated}; !slices.Equal(types, want) {
			t.Fatalf("events found: %v, want %v", types, want)
		}
		b.do(t, chromedp.Click(chromedp.CSS("#verify")), chromedp.WaitVisible(chromedp.CSS(".notice")), loaded)
		if st := evalIn[string](t, b, `document.getElementById('chain-status').innerText`); !strings.Contains(st, "intact") {
			t.Errorf("chain status %q", st)
		}
		b.checkPage(t, "admin-audit")
		b.do(t, chromedp.Navigate(h.URL+"/admin/audit?agent=agent-1&type=client.updated"), chromedp.WaitVisible(chromedp.CSS("table.events")), loaded,
			chromedp.Click(chromedp.CSS(`table.events tbody a[href^="/admin/audit/"]`)), chromedp.WaitVisible(chromedp.CSS("#details")), loaded)
		details := b.text(t)
		for _, want := range []string{"client.updated", "deprovisioned", "console", "u-ada"} {
			if !strings.Contains(details, want) {
				t.Errorf("event page lacks %q", want)
			}
		}
		b.checkPage(t, "admin-event")
	})

	t.Run("compare two policy versions and explain a decision", func(t *testing.T) {
		b.do(t, chromedp.Click(chromedp.CSS("#nav-policy")), chromedp.WaitVisible(chromedp.CSS("#versions")), loaded)
		b.checkPage(t, "admin-policy")
		b.do(t, chromedp.Click(chromedp.CSS("#compare")), chromedp.WaitVisible(chromedp.CSS(".diff")), loaded)
		del := evalIn[[]string](t, b, `[...document.querySelectorAll('.diff li.del code')].map(e => e.textContent)`)
		add := evalIn[[]string](t, b, `[...document.querySelectorAll('.diff li.add code')].map(e => e.textContent)`)
		if !slices.Equal(del, []string{"// agentid default policy set. Cedar denies by default and a forbid"}) ||
			!slices.Equal(add, []string{"// agentid policy set, reviewed. Cedar denies by default and a forbid"}) {
			t.Fatalf("diff removed %q, added %q", del, add)
		}
		b.checkPage(t, "admin-policy-diff")
		b.do(t, chromedp.Navigate(h.URL+"/admin/policy"), chromedp.WaitVisible(chromedp.CSS("#x-agent")), loaded,
			chromedp.SendKeys(chromedp.CSS("#x-agent"), "notes-mcp"),
			chromedp.SendKeys(chromedp.CSS("#x-scope"), "notes.read"),
			chromedp.Click(chromedp.CSS("#explain")), chromedp.WaitVisible(chromedp.CSS(".decisions")), loaded)
		if x := evalIn[string](t, b, `document.querySelector('.decisions').innerText`); !strings.Contains(x, "denied") || !strings.Contains(x, "default deny") {
			t.Errorf("explanation: %q", x)
		}
		b.checkPage(t, "admin-policy-explain")
	})

	t.Run("the people", func(t *testing.T) {
		b.do(t, chromedp.Click(chromedp.CSS("#nav-users")), chromedp.WaitVisible(chromedp.CSS("#users")), loaded)
		b.checkPage(t, "admin-users")
		b.do(t, chromedp.Click(chromedp.CSS(`a[href="/admin/users/u-alice"]`)), chromedp.WaitVisible(chromedp.CSS("#disable")), loaded)
		b.checkPage(t, "admin-user")
	})

	t.Run("a person without the admin role is refused", func(t *testing.T) {
		b.do(t, chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#username")), loaded,
			chromedp.Navigate(h.URL+"/admin/agents"), chromedp.WaitVisible(chromedp.CSS("#username")), loaded,
			chromedp.SendKeys(chromedp.CSS("#username"), servertest.TestUser),
			chromedp.SendKeys(chromedp.CSS("#password"), servertest.TestPassword),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)),
			chromedp.WaitNotPresent(chromedp.CSS("#username")), chromedp.WaitVisible(chromedp.CSS("h1")), loaded)
		if page := b.text(t); !strings.Contains(page, "Administrators only") || strings.Contains(page, "agent-1") {
			t.Fatalf("a person without the admin role saw:\n%s", page)
		}
		b.checkPage(t, "admin-refused")
	})
}
