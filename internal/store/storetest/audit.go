package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

func testAudit(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	tests := []struct {
		name string
		ev   *store.AuditEvent
	}{
		{"every field", event(tn, "tool.called")},
		{"bare", &store.AuditEvent{TenantID: tn, Time: base(), Type: "bare", RequestID: uniq("req"), Outcome: "failure"}},
		{"empty details and scopes", &store.AuditEvent{
			TenantID: tn, Time: base(), Type: "empty", RequestID: uniq("req"), Outcome: "denied",
			Scopes: []string{}, Details: map[string]string{},
		}},
		{"details with awkward text", &store.AuditEvent{
			TenantID: tn, Time: base(), Type: "awkward", RequestID: uniq("req"), Outcome: "denied",
			Details: map[string]string{"reason": "quote \" backslash \\ newline \n tab \t ünïcode", "": "empty key"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			must(t, "AppendAudit", s.AppendAudit(ctx(t), tc.ev))
			if tc.ev.ID == 0 {
				t.Error("AppendAudit did not set the event's ID")
			}
			wantAudit(t, s, tc.ev)
			if found := findAudit(t, s, tc.ev); len(found) == 1 && found[0].ID != tc.ev.ID {
				t.Errorf("stored ID %d, AppendAudit set %d", found[0].ID, tc.ev.ID)
			}
		})
	}
}

// testAuditBatch: several events in one AppendAudit all land, each with
// its own ID, and nil entries are skipped.
func testAuditBatch(t *testing.T, s store.Store) {
	first := &store.AuditEvent{TenantID: store.DefaultTenant, Time: base(), Type: "batch.first", RequestID: uniq("req"), Outcome: "denied"}
	second := &store.AuditEvent{TenantID: store.DefaultTenant, Time: base(), Type: "batch.second", RequestID: uniq("req"), Outcome: "success"}
	must(t, "AppendAudit", s.AppendAudit(ctx(t), first, nil, second))
	if first.ID == 0 || second.ID == 0 || first.ID == second.ID {
		t.Fatalf("IDs %d and %d, want two distinct non-zero IDs", first.ID, second.ID)
	}
	wantAudit(t, s, first)
	wantAudit(t, s, second)
	must(t, "AppendAudit with nothing", s.AppendAudit(ctx(t)))
}

// auditFixture writes 130 events, one second apart, varied in every field
// a filter can select on, plus one in a second tenant; it returns them in
// the order written.
func auditFixture(t *testing.T, s store.Store) []*store.AuditEvent {
	const tn = store.DefaultTenant
	b := base()
	var all []*store.AuditEvent
	add := func(ev *store.AuditEvent) {
		must(t, "AppendAudit", s.AppendAudit(ctx(t), ev))
		all = append(all, ev)
	}
	// Types that a careless prefix match would confuse: "tokenx." shares
	// "token" and "to_en." matches "token." under LIKE's wildcards.
	types := []string{"token.issued", "user.login_succeeded", "token.denied", "connection.retrieved", "tokenx.other", "to_en.odd"}
	outcomes := []string{"success", "failure", "denied"}
	for i := range 130 {
		ev := &store.AuditEvent{
			TenantID: tn, Time: b.Add(time.Duration(i) * time.Second), Type: types[i%len(types)],
			RequestID: uniq("req"), ClientID: fmt.Sprintf("c%d", i%4), UserID: fmt.Sprintf("u%d", i%5),
			Outcome: outcomes[i%len(outcomes)],
		}
		if i%7 != 0 {
			ev.Resource = fmt.Sprintf("https://r%d.example/mcp", i%3)
		}
		if i%2 == 0 {
			ev.Details = map[string]string{store.DetailProvider: fmt.Sprintf("p%d", i%3), "other": "x"}
			if i%3 == 0 {
				// A retrieval for an agent by an MCP server's client.
				ev.Details[store.DetailAgent] = fmt.Sprintf("c%d", (i+1)%4)
			}
		} else if i%5 == 0 {
			// A provider named only in another key must not match.
			ev.Details = map[string]string{"provider_id": "p1"}
		}
		add(ev)
	}
	add(&store.AuditEvent{TenantID: "t2", Time: b.Add(time.Hour), Type: "token.issued", RequestID: uniq("req"),
		ClientID: "c0", UserID: "u0", Resource: "https://r0.example/mcp", Outcome: "success",
		Details: map[string]string{store.DetailProvider: "p0"}})
	return all
}

// wantAuditMatch is the reference meaning of an AuditFilter, written out
// here rather than taken from the store so that the suite checks it.
func wantAuditMatch(all []*store.AuditEvent, f store.AuditFilter) []*store.AuditEvent {
	var out []*store.AuditEvent
	for _, ev := range all {
		if (f.TenantID == "" || ev.TenantID == f.TenantID) &&
			(f.Type == "" || ev.Type == f.Type) &&
			(f.TypePrefix == "" || len(ev.Type) >= len(f.TypePrefix) && ev.Type[:len(f.TypePrefix)] == f.TypePrefix) &&
			(f.ClientID == "" || ev.ClientID == f.ClientID) &&
			(f.Agent == "" || ev.ClientID == f.Agent || ev.Details["agent"] == f.Agent) &&
			(f.UserID == "" || ev.UserID == f.UserID) &&
			(f.Resource == "" || ev.Resource == f.Resource) &&
			(f.Provider == "" || ev.Details["provider"] == f.Provider) &&
			(f.Outcome == "" || ev.Outcome == f.Outcome) &&
			(f.Since.IsZero() || !ev.Time.Before(f.Since)) &&
			(f.Until.IsZero() || ev.Time.Before(f.Until)) &&
			(f.Before == 0 || ev.ID < f.Before) &&
			(f.After == 0 || ev.ID > f.After) {
			out = append(out, ev)
		}
	}
	if !f.Ascending {
		slices.Reverse(out)
	}
	limit := f.Limit
	if limit == 0 {
		limit = store.DefaultAuditLimit
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

func testAuditFilter(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	b := base()
	all := auditFixture(t, s)
	mid := all[60].ID
	tests := []struct {
		name string
		f    store.AuditFilter
	}{
		{"default limit", store.AuditFilter{}},
		{"tenant", store.AuditFilter{TenantID: tn, Limit: 1000}},
		{"other tenant", store.AuditFilter{TenantID: "t2"}},
		{"type", store.AuditFilter{TenantID: tn, Type: "user.login_succeeded", Limit: 1000}},
		{"type prefix", store.AuditFilter{TenantID: tn, TypePrefix: "token.", Limit: 1000}},
		{"type prefix without dot", store.AuditFilter{TenantID: tn, TypePrefix: "token", Limit: 1000}},
		{"type prefix with LIKE wildcard", store.AuditFilter{TenantID: tn, TypePrefix: "to_en.", Limit: 1000}},
		{"type prefix percent", store.AuditFilter{TenantID: tn, TypePrefix: "%", Limit: 1000}},
		{"type prefix is case sensitive", store.AuditFilter{TenantID: tn, TypePrefix: "Token.", Limit: 1000}},
		{"type and prefix", store.AuditFilter{TenantID: tn, Type: "token.denied", TypePrefix: "token.", Limit: 1000}},
		{"type outside prefix", store.AuditFilter{TenantID: tn, Type: "token.denied", TypePrefix: "user."}},
		{"client", store.AuditFilter{TenantID: tn, ClientID: "c1", Limit: 1000}},
		{"user", store.AuditFilter{TenantID: tn, UserID: "u3", Limit: 1000}},
		{"client and user", store.AuditFilter{TenantID: tn, ClientID: "c2", UserID: "u2", Limit: 1000}},
		{"agent", store.AuditFilter{TenantID: tn, Agent: "c1", Limit: 1000}},
		{"agent and type", store.AuditFilter{TenantID: tn, Agent: "c3", TypePrefix: "token.", Limit: 1000}},
		{"agent and client", store.AuditFilter{TenantID: tn, Agent: "c1", ClientID: "c2", Limit: 1000}},
		{"resource", store.AuditFilter{TenantID: tn, Resource: "https://r1.example/mcp", Limit: 1000}},
		{"provider", store.AuditFilter{TenantID: tn, Provider: "p1", Limit: 1000}},
		{"provider across tenants", store.AuditFilter{Provider: "p0", Limit: 1000}},
		{"outcome", store.AuditFilter{TenantID: tn, Outcome: "denied", Limit: 1000}},
		{"since", store.AuditFilter{TenantID: tn, Since: b.Add(100*time.Second + time.Millisecond), Limit: 1000}},
		{"since exact", store.AuditFilter{TenantID: tn, Since: b.Add(100 * time.Second), Limit: 1000}},
		{"until exact is exclusive", store.AuditFilter{TenantID: tn, Until: b.Add(10 * time.Second), Limit: 1000}},
		{"since and until", store.AuditFilter{TenantID: tn, Since: b.Add(20 * time.Second), Until: b.Add(40 * time.Second), Limit: 1000}},
		{"since and type", store.AuditFilter{TenantID: tn, Type: "token.issued", Since: b.Add(50 * time.Second)}},
		{"before", store.AuditFilter{TenantID: tn, Before: mid, Limit: 1000}},
		{"after", store.AuditFilter{TenantID: tn, After: mid, Limit: 1000}},
		{"after ascending", store.AuditFilter{TenantID: tn, After: mid, Ascending: true, Limit: 10}},
		{"between ids", store.AuditFilter{After: all[10].ID, Before: all[20].ID}},
		{"ascending default limit", store.AuditFilter{Ascending: true}},
		{"everything at once", store.AuditFilter{TenantID: tn, TypePrefix: "token.", ClientID: "c0", Resource: "https://r0.example/mcp",
			Provider: "p0", Outcome: "success", Since: b.Add(time.Second), Until: b.Add(125 * time.Second), Before: all[128].ID, Limit: 1000}},
		{"limit", store.AuditFilter{TenantID: tn, Limit: 7}},
		{"limit one", store.AuditFilter{Type: "token.issued", Limit: 1}},
		{"nothing", store.AuditFilter{TenantID: tn, Type: "no.such.type"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListAudit(ctx(t), tc.f)
			must(t, "ListAudit", err)
			checkAuditList(t, got, wantAuditMatch(all, tc.f), tc.f.Ascending)
		})
	}
	t.Run("a type prefix matches something", func(t *testing.T) {
		// Guard the table above: the prefix cases must not all be empty.
		if got, _ := s.ListAudit(ctx(t), store.AuditFilter{TypePrefix: "to_en."}); len(got) == 0 {
			t.Error("no to_en. events")
		}
	})
}

func checkAuditList(t *testing.T, got, want []*store.AuditEvent, ascending bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("ListAudit returned %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].RequestID != want[i].RequestID {
			t.Fatalf("event %d: got %s #%d at %v, want %s #%d at %v", i, got[i].Type, got[i].ID, got[i].Time, want[i].Type, want[i].ID, want[i].Time)
		}
		if i > 0 && (got[i].ID > got[i-1].ID) != ascending {
			t.Fatalf("IDs out of order (ascending %v): %d then %d", ascending, got[i-1].ID, got[i].ID)
		}
	}
}

// testAuditPages: walking the trail page by page with the id cursor, in
// either direction, visits every matching event exactly once, and events
// written while walking forward show up on a later page (tail -f).
func testAuditPages(t *testing.T, s store.Store) {
	all := auditFixture(t, s)
	for _, asc := range []bool{false, true} {
		t.Run(fmt.Sprintf("ascending=%v", asc), func(t *testing.T) {
			f := store.AuditFilter{TenantID: store.DefaultTenant, TypePrefix: "token.", Ascending: asc, Limit: 6}
			full := f
			full.Limit = 1000
			want := wantAuditMatch(all, full)
			var got []*store.AuditEvent
			for pages := 0; ; pages++ {
				if pages > len(want) {
					t.Fatal("paging does not end")
				}
				page, err := s.ListAudit(ctx(t), f)
				must(t, "ListAudit", err)
				if len(page) == 0 {
					break
				}
				got = append(got, page...)
				if asc {
					f.After = page[len(page)-1].ID
				} else {
					f.Before = page[len(page)-1].ID
				}
			}
			checkAuditList(t, got, want, asc)
		})
	}
	t.Run("follow", func(t *testing.T) {
		last := all[len(all)-1].ID
		late := &store.AuditEvent{TenantID: store.DefaultTenant, Time: base(), Type: "token.issued", RequestID: uniq("req"), Outcome: "success"}
		must(t, "AppendAudit", s.AppendAudit(ctx(t), late))
		got, err := s.ListAudit(ctx(t), store.AuditFilter{After: last, Ascending: true})
		must(t, "ListAudit", err)
		if len(got) != 1 || got[0].RequestID != late.RequestID {
			t.Fatalf("after the newest id: %d events, want the one written since", len(got))
		}
	})
}

// testAuditFilterInvalid: filters no query can mean are ErrInvalid.
func testAuditFilterInvalid(t *testing.T, s store.Store) {
	b := base()
	for name, f := range map[string]store.AuditFilter{
		"negative before":    {Before: -1},
		"negative after":     {After: -1},
		"negative limit":     {Limit: -1},
		"until before since": {Since: b, Until: b.Add(-time.Second)},
		"empty time range":   {Since: b, Until: b},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.ListAudit(ctx(t), f); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("ListAudit = %v, want ErrInvalid", err)
			}
		})
	}
}

func testDeleteExpired(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	b := base()
	now := b.Add(24 * time.Hour)

	// Expired: every kind of short-lived row.
	oldCode := authCode(tn, "g-old")
	must(t, "CreateAuthCode", s.CreateAuthCode(ctx(t), oldCode, nil))
	if _, err := s.ConsumeAuthCode(ctx(t), oldCode.Hash, b, nil); err != nil {
		t.Fatal(err)
	}
	oldRT := refreshToken(tn, "g-old", "c1", "u1", "https://r/")
	oldRT.ExpiresAt = now.Add(-time.Second)
	oldAT := accessToken(tn, "g-old", "c1", "u1", "https://r/")
	oldAT.ExpiresAt = now.Add(-time.Hour)
	issue(t, s, oldRT, oldAT)
	must(t, "RevokeAccessToken", s.RevokeAccessToken(ctx(t), oldAT, b, nil))
	oldSess := &store.Session{Hash: hash("old-session"), TenantID: tn, UserID: "u1", AuthTime: b, ExpiresAt: now.Add(-time.Minute)}
	must(t, "CreateSession", s.CreateSession(ctx(t), oldSess, nil))
	must(t, "UseJTI", s.UseJTI(ctx(t), "k", "old-jti", now.Add(-time.Minute), b))

	// Live: the same kinds, expiring after now.
	liveCode := authCode(tn, "g-live")
	liveCode.ExpiresAt = now.Add(time.Minute)
	must(t, "CreateAuthCode", s.CreateAuthCode(ctx(t), liveCode, nil))
	if _, err := s.ConsumeAuthCode(ctx(t), liveCode.Hash, b, nil); err != nil {
		t.Fatal(err)
	}
	liveRT := refreshToken(tn, "g-live", "c1", "u1", "https://r/")
	liveRT.ExpiresAt = now.Add(time.Hour)
	liveAT := accessToken(tn, "g-live", "c1", "u1", "https://r/")
	liveAT.ExpiresAt = now.Add(time.Minute)
	issue(t, s, liveRT, liveAT)
	must(t, "RevokeAccessToken", s.RevokeAccessToken(ctx(t), liveAT, b, nil))
	liveSess := &store.Session{Hash: hash("live-session"), TenantID: tn, UserID: "u1", AuthTime: b, ExpiresAt: now.Add(time.Minute)}
	must(t, "CreateSession", s.CreateSession(ctx(t), liveSess, nil))
	must(t, "UseJTI", s.UseJTI(ctx(t), "k", "live-jti", now.Add(time.Minute), b))
	// Consents are not short-lived rows: an expired one stays for the record.
	expiredConsent := consent(tn, "u1", "c1", "https://r/", "a")
	expiredConsent.ExpiresAt = b.Add(time.Hour)
	must(t, "UpsertConsents", s.UpsertConsents(ctx(t), []*store.ConsentGrant{expiredConsent}, nil))

	must(t, "DeleteExpired", s.DeleteExpired(ctx(t), now))

	// Each check looks at the row with a "now" at which it was still valid,
	// so only its deletion can make it disappear.
	checks := []struct {
		name    string
		gone    bool
		present func() bool
	}{
		{"expired code", true, func() bool {
			_, err := s.ConsumeAuthCode(ctx(t), oldCode.Hash, b, nil)
			return err == nil || errors.Is(err, store.ErrAlreadyUsed)
		}},
		{"live code", false, func() bool {
			_, err := s.ConsumeAuthCode(ctx(t), liveCode.Hash, b, nil)
			return err == nil || errors.Is(err, store.ErrAlreadyUsed)
		}},
		{"expired refresh token", true, func() bool { _, err := s.GetRefreshToken(ctx(t), oldRT.Hash); return err == nil }},
		{"live refresh token", false, func() bool { _, err := s.GetRefreshToken(ctx(t), liveRT.Hash); return err == nil }},
		{"expired access token record", true, func() bool { return revoked(t, s, oldAT) }},
		{"live access token record", false, func() bool { return revoked(t, s, liveAT) }},
		{"expired session", true, func() bool { _, err := s.GetSession(ctx(t), oldSess.Hash, b); return err == nil }},
		{"live session", false, func() bool { _, err := s.GetSession(ctx(t), liveSess.Hash, b); return err == nil }},
		{"expired jti", true, func() bool { return s.UseJTI(ctx(t), "k", "old-jti", now.Add(time.Hour), b) != nil }},
		{"live jti", false, func() bool { return s.UseJTI(ctx(t), "k", "live-jti", now.Add(time.Hour), b) != nil }},
		{"expired consent", false, func() bool {
			return len(listConsents(t, s, store.ConsentFilter{TenantID: tn, UserID: "u1"})) == 1
		}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if got := c.present(); got == c.gone {
				t.Errorf("present after DeleteExpired = %v, want %v", got, !c.gone)
			}
		})
	}
}

func testTenantIsolation(t *testing.T, s store.Store) {
	tenants := []string{store.DefaultTenant, "t2"}
	for _, tn := range tenants {
		c := fullClient(tn, "shared-id")
		c.Name = "client of " + tn
		must(t, "CreateClient "+tn, s.CreateClient(ctx(t), c, event(tn, "client.created")))
		u := &store.User{TenantID: tn, ID: "shared-user", Username: "alice", PasswordHash: "h-" + tn, CreatedAt: base(), UpdatedAt: base()}
		must(t, "CreateUser "+tn, s.CreateUser(ctx(t), u, nil))
		r := fullResource(tn, "shared-res", "https://shared.example.com/")
		r.Name = "resource of " + tn
		must(t, "CreateResource "+tn, s.CreateResource(ctx(t), r, nil))
	}
	for _, tn := range tenants {
		t.Run(tn, func(t *testing.T) {
			c, err := s.GetClient(ctx(t), tn, "shared-id")
			must(t, "GetClient", err)
			if c.Name != "client of "+tn || c.TenantID != tn {
				t.Errorf("GetClient(%s) = %s of %s", tn, c.Name, c.TenantID)
			}
			u, err := s.GetUserByUsername(ctx(t), tn, "alice")
			must(t, "GetUserByUsername", err)
			if u.PasswordHash != "h-"+tn || u.TenantID != tn {
				t.Errorf("GetUserByUsername(%s) = %+v", tn, u)
			}
			r, err := s.GetResource(ctx(t), tn, "https://shared.example.com/")
			must(t, "GetResource", err)
			if r.Name != "resource of "+tn || r.TenantID != tn {
				t.Errorf("GetResource(%s) = %s", tn, r.Name)
			}
			events, err := s.ListAudit(ctx(t), store.AuditFilter{TenantID: tn})
			must(t, "ListAudit", err)
			if len(events) != 1 || events[0].TenantID != tn {
				t.Errorf("ListAudit(%s) = %d events", tn, len(events))
			}
		})
	}
	t.Run("update and delete stay in their tenant", func(t *testing.T) {
		_, err := s.UpdateClient(ctx(t), "t2", "shared-id", func(c *store.Client) error { c.Name = "renamed"; return nil }, nil)
		must(t, "UpdateClient", err)
		must(t, "DeleteResource", s.DeleteResource(ctx(t), "t2", "https://shared.example.com/", nil))
		c, err := s.GetClient(ctx(t), store.DefaultTenant, "shared-id")
		must(t, "GetClient", err)
		if c.Name != "client of default" {
			t.Errorf("updating t2's client renamed default's to %q", c.Name)
		}
		if _, err := s.GetResource(ctx(t), store.DefaultTenant, "https://shared.example.com/"); err != nil {
			t.Errorf("deleting t2's resource deleted default's: %v", err)
		}
		must(t, "DeleteClient", s.DeleteClient(ctx(t), "t2", "shared-id", base(), nil))
		if _, err := s.GetClient(ctx(t), store.DefaultTenant, "shared-id"); err != nil {
			t.Errorf("deleting t2's client deleted default's: %v", err)
		}
	})
}

// testAuditOnce: AppendAuditOnce writes an event once per tenant,
// reporting client and report id — a batch sent again, or the same report
// twice in one batch, adds nothing and leaves the skipped events' IDs 0 —
// while another client's, another tenant's or another id's report, and
// events without a report id, are all written.
func testAuditOnce(t *testing.T, s store.Store) {
	rid, other := uniq("rep"), uniq("rep")
	report := func(tenant, client, id string) *store.AuditEvent {
		d := map[string]string{store.DetailReportingClient: client, "tool": "search"}
		if id != "" {
			d[store.DetailReportID] = id
		}
		return &store.AuditEvent{TenantID: tenant, Time: base(), Type: "tool.invoked", ClientID: "agent",
			RequestID: uniq("req"), Outcome: "success", Details: d}
	}
	count := func(t *testing.T, tenant, id string) int {
		t.Helper()
		evs, err := s.ListAudit(ctx(t), store.AuditFilter{TenantID: tenant, Type: "tool.invoked", Limit: 1000})
		must(t, "ListAudit", err)
		n := 0
		for _, ev := range evs {
			if ev.Details[store.DetailReportID] == id {
				n++
			}
		}
		return n
	}
	first := []*store.AuditEvent{report(store.DefaultTenant, "mcp-a", rid), nil, report(store.DefaultTenant, "mcp-a", rid)}
	must(t, "AppendAuditOnce", s.AppendAuditOnce(ctx(t), first...))
	if first[0].ID == 0 || first[2].ID != 0 {
		t.Fatalf("IDs %d and %d: want the first written and its duplicate in the batch skipped", first[0].ID, first[2].ID)
	}
	again := []*store.AuditEvent{
		report(store.DefaultTenant, "mcp-a", rid),   // the batch sent again
		report(store.DefaultTenant, "mcp-b", rid),   // another server's id
		report("tenant-once", "mcp-a", rid),         // another tenant
		report(store.DefaultTenant, "mcp-a", other), // another report
		report(store.DefaultTenant, "mcp-a", ""),    // no id: never unique
		report(store.DefaultTenant, "mcp-a", ""),
	}
	must(t, "AppendAuditOnce again", s.AppendAuditOnce(ctx(t), again...))
	if again[0].ID != 0 {
		t.Errorf("the report sent again was written (ID %d)", again[0].ID)
	}
	for i, ev := range again[1:] {
		if ev.ID == 0 {
			t.Errorf("event %d was skipped", i+1)
		}
	}
	if n := count(t, store.DefaultTenant, rid); n != 2 {
		t.Errorf("%d events with the report id in the default tenant, want 2 (one per reporting client)", n)
	}
	if n := count(t, "tenant-once", rid); n != 1 {
		t.Errorf("%d events with the report id in the second tenant, want 1", n)
	}
	wantAudit(t, s, first[0])
	must(t, "AppendAuditOnce with nothing", s.AppendAuditOnce(ctx(t)))
}
