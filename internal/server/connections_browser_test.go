package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// TestBrowserConnections walks a person through the connection pages in
// headless Chromium: sign in on /connections, connect the calendar through
// the provider's real redirect flow (the hub to the provider and back to
// the one callback, the flow cookie crossing sites with SameSite=Lax), see
// it on /account, save an API key (shown only by its last four
// characters), disconnect; then open a connect link as an agent would hand
// it out, connect from the keyboard and be told to return to the agent;
// and be refused a link made for someone else.
func TestBrowserConnections(t *testing.T) {
	b := newTab(t)
	e := newConnEnv(t)
	e.Wrap(slowPages)
	e.AddClient(&store.Client{ID: "research-assistant", Name: "Research Assistant", RedirectURIs: []string{"http://127.0.0.1:9/cb"}, GrantTypes: []string{"authorization_code"}})

	t.Run("sign in and connect the calendar", func(t *testing.T) {
		b.do(t, chromedp.Navigate(e.URL+"/connections"), chromedp.WaitVisible(chromedp.CSS("#username")), loaded,
			chromedp.SendKeys(chromedp.CSS("#username"), servertest.TestUser),
			chromedp.SendKeys(chromedp.CSS("#password"), servertest.TestPassword),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS("#no-connections")), loaded)
		text := b.text(t)
		for _, want := range []string{"Connections", "Connect Calendar", "API key for Search", "starts with sk_", "X-API-Key"} {
			if !strings.Contains(text, want) {
				t.Errorf("/connections lacks %q:\n%s", want, text)
			}
		}
		b.checkPage(t, "connections")
		// The click goes to the provider and back through the callback.
		b.do(t, chromedp.Click(chromedp.CSS("#connect-calendar")))
		b.settle(t, chromedp.WaitVisible(chromedp.CSS("#connections-link")), loaded)
		if got := evalIn[string](t, b, `location.origin + location.pathname`); got != e.URL+"/connections/callback" {
			t.Fatalf("the flow ended at %s", got)
		}
		if h1 := evalIn[string](t, b, `document.querySelector('h1').innerText`); h1 != "Connected Calendar" {
			t.Fatalf("heading %q", h1)
		}
		b.checkPage(t, "connected")
		if cs := e.connections(t, "u-alice"); len(cs) != 1 || cs[0].Status != store.ConnectionActive {
			t.Fatalf("connections %+v", cs)
		}
		if n := e.prov.Counts().CodeExchanges; n != 1 {
			t.Fatalf("%d code exchanges", n)
		}
	})

	const key = "sk_live_9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3wxyz"
	t.Run("save an API key", func(t *testing.T) {
		b.do(t, chromedp.Navigate(e.URL+"/connections"), chromedp.WaitVisible(chromedp.CSS("#key-search")), loaded,
			chromedp.SendKeys(chromedp.CSS("#key-search"), key),
			chromedp.SendKeys(chromedp.CSS("#label-search"), "Work"),
			chromedp.Click(chromedp.CSS("#save-search")),
			chromedp.WaitVisible(chromedp.CSS(".notice")), loaded)
		text := b.text(t)
		if !strings.Contains(text, "Work …wxyz") || !strings.Contains(text, "Key saved") {
			t.Errorf("after saving:\n%s", text)
		}
		if src := evalIn[string](t, b, `document.documentElement.outerHTML`); strings.Contains(src, key[8:20]) {
			t.Fatal("the page carries the key")
		}
		if v := evalIn[string](t, b, `document.getElementById('key-search').value`); v != "" {
			t.Fatal("the key field is filled in again")
		}
		b.checkPage(t, "connections-saved")
	})

	t.Run("reconnect a connection the provider stopped honouring", func(t *testing.T) {
		for _, c := range e.connections(t, "u-alice") {
			if c.ProviderID != calendarID {
				continue
			}
			if _, err := e.Store.UpdateConnection(context.Background(), store.DefaultTenant, c.ID, func(c *store.Connection) error {
				c.Status = store.ConnectionNeedsReauth
				return nil
			}, nil); err != nil {
				t.Fatal(err)
			}
		}
		b.do(t, chromedp.Navigate(e.URL+"/account"), chromedp.WaitVisible(chromedp.CSS("button.reconnect")), loaded)
		if text := b.text(t); !strings.Contains(text, "Needs reconnecting") {
			t.Fatalf("account page:\n%s", text)
		}
		b.checkPage(t, "account-reconnect")
		// The click goes to the provider and back through the callback.
		b.do(t, chromedp.Click(chromedp.CSS("button.reconnect")))
		b.settle(t, chromedp.WaitVisible(chromedp.CSS("#account-link")), loaded)
		b.do(t, chromedp.Navigate(e.URL+"/account"), chromedp.WaitVisible(chromedp.CSS("table.connections")), loaded)
		if text := b.text(t); strings.Contains(text, "Needs reconnecting") || evalIn[int](t, b, `document.querySelectorAll('button.disconnect').length`) != 2 {
			t.Fatalf("after reconnecting:\n%s", text)
		}
	})

	t.Run("see them on the account page and disconnect", func(t *testing.T) {
		b.do(t, chromedp.Navigate(e.URL+"/account"), chromedp.WaitVisible(chromedp.CSS("table.connections")), loaded)
		rows := evalIn[[]string](t, b, `[...document.querySelectorAll('table.connections tbody tr')].map(r => r.innerText.replace(/\s+/g, ' '))`)
		if len(rows) != 2 || !strings.Contains(rows[0], "Calendar") || !strings.Contains(rows[0], "Active") || !strings.Contains(rows[0], "calendar.read calendar.write") ||
			!strings.Contains(rows[1], "Search") || !strings.Contains(rows[1], "Work …wxyz") {
			t.Fatalf("account rows %q", rows)
		}
		b.checkPage(t, "account-connections")
		cal := e.connections(t, "u-alice")[0]
		if cal.ProviderID != calendarID {
			cal = e.connections(t, "u-alice")[1]
		}
		// From the keyboard: focus the calendar's Disconnect and press Enter.
		b.do(t, chromedp.Focus(chromedp.CSS(`#conn-`+cal.ID+` button.disconnect`)), chromedp.KeyEvent("\r"),
			chromedp.WaitVisible(chromedp.CSS(".notice")), loaded)
		if text := b.text(t); !strings.Contains(text, "Disconnected.") || strings.Contains(text, "calendar.read") {
			t.Fatalf("after disconnecting:\n%s", text)
		}
		if len(e.prov.Revoked()) == 0 {
			t.Error("the provider was not told")
		}
	})

	t.Run("a connect link, from the keyboard", func(t *testing.T) {
		link := e.link(t, "u-alice", calendarID, "calendar.read")
		b.do(t, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#connect")), loaded)
		if who := evalIn[string](t, b, `document.getElementById('who-asks').innerText`); who != "Research Assistant wants to use Calendar for you through Notes." {
			t.Errorf("who asks: %q", who)
		}
		b.checkPage(t, "connect-link")
		// Tab order: the account link in the text, Not now, Connect.
		b.do(t, chromedp.Focus(chromedp.CSS("#not-now")), chromedp.KeyEvent("\t"))
		if id := evalIn[string](t, b, `document.activeElement.id`); id != "connect" {
			t.Fatalf("after Not now the focus is on %q", id)
		}
		b.do(t, chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS("#return")), loaded)
		if ret := evalIn[string](t, b, `document.getElementById('return').innerText`); !strings.Contains(ret, "You can return to Research Assistant and try again: Notes can now use Calendar for you.") {
			t.Errorf("return text %q", ret)
		}
		b.checkPage(t, "connected-link")
	})

	t.Run("a link made for someone else", func(t *testing.T) {
		b.do(t, chromedp.Navigate(e.link(t, bobID, calendarID)), chromedp.WaitVisible(chromedp.CSS("#next")), loaded)
		if h1 := evalIn[string](t, b, `document.querySelector('h1').innerText`); h1 != "This link was made for another account" {
			t.Fatalf("heading %q", h1)
		}
		if n := evalIn[int](t, b, `document.querySelectorAll('form[action$="/start"]').length`); n != 0 {
			t.Fatal("the refusal offers to connect")
		}
		b.checkPage(t, "connect-refused")
	})
}
