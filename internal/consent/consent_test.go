package consent_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/consent"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/store/postgres"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// clock is the ledger's injected time; tests move it by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// start is a fixed instant at whole microseconds, which both backends store
// exactly.
var start = time.Date(2030, 3, 4, 10, 0, 0, 0, time.UTC)

const (
	user     = "u-alice"
	agent    = "agent-1"
	notes    = "https://notes.example.com/mcp"
	calendar = "https://calendar.example.com/mcp"
)

// backends runs test on a fresh SQLite file and on a fresh PostgreSQL
// schema (skipped locally without AGENTID_TEST_POSTGRES, fatal in CI).
func backends(t *testing.T, test func(t *testing.T, st store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		ctx := context.Background()
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "agentid.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		test(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		ctx := context.Background()
		st, err := postgres.Open(ctx, pgtest.FreshSchema(t), postgres.Options{MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		test(t, st)
	})
}

func newLedger(t *testing.T, st store.Store) (*consent.Ledger, *clock) {
	t.Helper()
	c := &clock{t: start}
	l, err := consent.New(consent.Options{Store: st, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

func meta(at time.Time) *audit.Meta { return &audit.Meta{Time: at, RequestID: "req-1"} }

func snapshot(t *testing.T, l *consent.Ledger, k consent.Key) *consent.Snapshot {
	t.Helper()
	s, err := l.Snapshot(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func grant(t *testing.T, l *consent.Ledger, k consent.Key, scopes []string, exp time.Time) {
	t.Helper()
	if err := l.Grant(context.Background(), k, scopes, exp, nil); err != nil {
		t.Fatal(err)
	}
}

func TestLedgerExpiry(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		l, clk := newLedger(t, st)
		k := consent.Key{UserID: user, ClientID: agent, Resource: notes}
		all := []string{"notes.read", "notes.write", "notes.delete"}
		// Each scope with its own expiry, from the duration menu.
		ctx := context.Background()
		for _, g := range []struct {
			scope  string
			choice consent.Choice
		}{{"notes.read", consent.ForHour}, {"notes.write", consent.ForDay}, {"notes.delete", consent.UntilRevoked}} {
			if err := l.GrantFor(ctx, k, []string{g.scope}, g.choice, 10*time.Minute, 0, meta(clk.now())); err != nil {
				t.Fatal(err)
			}
			evs, err := st.ListAudit(ctx, store.AuditFilter{Type: audit.ConsentGiven, Limit: 1})
			if err != nil || len(evs) != 1 {
				t.Fatalf("consent.given events = %v, %v", evs, err)
			}
			if ev := evs[0]; ev.Details["duration"] != string(g.choice) || !slices.Equal(ev.Scopes, []string{g.scope}) || ev.RequestID != "req-1" || audit.Check(ev) != nil {
				t.Errorf("grant event = %+v", ev)
			}
		}
		snap := snapshot(t, l, k)
		for scope, want := range map[string]time.Time{"notes.read": start.Add(time.Hour), "notes.write": start.Add(24 * time.Hour), "notes.delete": {}} {
			if g := snap.Grant(scope); !g.ExpiresAt.Equal(want) || !g.GrantedAt.Equal(start) {
				t.Errorf("%s granted %v until %v, want %v until %v", scope, g.GrantedAt, g.ExpiresAt, start, want)
			}
		}

		steps := []struct {
			name        string
			at          time.Duration
			wantLive    []string
			wantExpired []string
		}{
			{"at grant", 0, all, nil},
			{"a moment before the hour", time.Hour - time.Microsecond, all, nil},
			{"at the hour the hour ends", time.Hour, []string{"notes.write", "notes.delete"}, []string{"notes.read"}},
			{"after a day", 24 * time.Hour, []string{"notes.delete"}, []string{"notes.read", "notes.write"}},
			{"a year on", 365 * 24 * time.Hour, []string{"notes.delete"}, []string{"notes.read", "notes.write"}},
		}
		for _, s := range steps {
			t.Run(s.name, func(t *testing.T) {
				clk.t = start.Add(s.at)
				snap := snapshot(t, l, k)
				if got := snap.Live(all); !slices.Equal(got, s.wantLive) {
					t.Errorf("Live = %v, want %v", got, s.wantLive)
				}
				if got := snap.Expired(all); !slices.Equal(got, s.wantExpired) {
					t.Errorf("Expired = %v, want %v", got, s.wantExpired)
				}
			})
		}
	})
}

func TestSnapshotTokenCaps(t *testing.T) {
	at := start
	grants := []*store.ConsentGrant{
		{Scope: "hour", ExpiresAt: at.Add(time.Hour)},
		{Scope: "day", ExpiresAt: at.Add(24 * time.Hour)},
		{Scope: "forever"},
		{Scope: "session", ExpiresAt: at.Add(10 * time.Minute)},
		{Scope: "expired", ExpiresAt: at.Add(-time.Minute)},
		{Scope: "revoked", RevokedAt: at.Add(-time.Minute)},
	}
	snap := consent.NewSnapshot(grants, at)
	access := at.Add(10 * time.Minute)
	refresh := at.Add(30 * 24 * time.Hour)
	tests := []struct {
		name        string
		scopes      []string
		wantAccess  time.Time
		wantRefresh time.Time
	}{
		{"forever is capped by nothing", []string{"forever"}, access, refresh},
		{"an hour caps the refresh token", []string{"hour"}, access, at.Add(time.Hour)},
		{"the longest consent decides the refresh token", []string{"hour", "day"}, access, at.Add(24 * time.Hour)},
		{"forever beside an hour: refresh uncapped", []string{"hour", "forever"}, access, refresh},
		{"session ends with the access token", []string{"session"}, at.Add(10 * time.Minute), at.Add(10 * time.Minute)},
		{"the earliest consent caps the access token", []string{"session", "day"}, at.Add(10 * time.Minute), at.Add(24 * time.Hour)},
		{"expired and revoked count for nothing", []string{"expired", "revoked"}, access, at},
		{"unknown scope counts for nothing", []string{"nope"}, access, at},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := snap.AccessExpiry(tc.scopes, access); !got.Equal(tc.wantAccess) {
				t.Errorf("AccessExpiry = %v, want %v", got, tc.wantAccess)
			}
			if got := snap.RefreshExpiry(tc.scopes, refresh); !got.Equal(tc.wantRefresh) {
				t.Errorf("RefreshExpiry = %v, want %v", got, tc.wantRefresh)
			}
		})
	}
	t.Run("a session is shorter than a long access token", func(t *testing.T) {
		if got := snap.AccessExpiry([]string{"session"}, at.Add(time.Hour)); !got.Equal(at.Add(10 * time.Minute)) {
			t.Fatalf("AccessExpiry = %v", got)
		}
	})
}

func TestLedgerStepUpUnion(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		l, clk := newLedger(t, st)
		k := consent.Key{UserID: user, ClientID: agent, Resource: notes}
		grant(t, l, k, []string{"notes.read", "notes.write"}, clk.now().Add(time.Hour))
		clk.advance(10 * time.Minute)
		// Step-up: the later authorization adds a scope, with its own expiry.
		if err := l.Grant(ctx, k, []string{"notes.delete", "notes.delete"}, clk.now().Add(24*time.Hour), meta(clk.now())); err != nil {
			t.Fatal(err)
		}
		snap := snapshot(t, l, k)
		all := []string{"notes.read", "notes.write", "notes.delete"}
		if got := snap.Live(all); !slices.Equal(got, all) {
			t.Fatalf("live after step-up = %v, want the union %v", got, all)
		}
		if g := snap.Grant("notes.read"); !g.ExpiresAt.Equal(start.Add(time.Hour)) || !g.GrantedAt.Equal(start) {
			t.Errorf("step-up changed the earlier grant: %+v", g)
		}
		if g := snap.Grant("notes.delete"); !g.ExpiresAt.Equal(start.Add(10*time.Minute+24*time.Hour)) || !g.GrantedAt.Equal(clk.now()) {
			t.Errorf("new grant = %+v", g)
		}
		events, err := st.ListAudit(ctx, store.AuditFilter{Type: audit.ConsentGiven})
		if err != nil || len(events) != 1 {
			t.Fatalf("consent.given events = %v, %v", events, err)
		}
		if e := events[0]; !slices.Equal(e.Scopes, []string{"notes.delete"}) || e.UserID != user || e.ClientID != agent || e.Resource != notes || e.Details["expires_at"] == "" {
			t.Errorf("grant event = %+v", e)
		}
		// When the first grant runs out, the step-up scope stays.
		clk.advance(time.Hour)
		if got := snapshot(t, l, k).Live(all); !slices.Equal(got, []string{"notes.delete"}) {
			t.Errorf("live after the hour = %v", got)
		}
		// Granting an expired scope again renews it.
		grant(t, l, k, []string{"notes.read"}, time.Time{})
		if got := snapshot(t, l, k).Live(all); !slices.Equal(got, []string{"notes.read", "notes.delete"}) {
			t.Errorf("live after renewal = %v", got)
		}
	})
}

// issueTokens records a refresh token and an access token of a grant
// family, as the token endpoint would.
func issueTokens(t *testing.T, st store.Store, grantID, resource string, scopes []string) (hash []byte, jti string) {
	t.Helper()
	hash = []byte("hash-" + grantID + "-0123456789abcdef0123")
	jti = "jti-" + grantID
	iss := &store.Issuance{
		AccessToken: &store.AccessToken{JTI: jti, TenantID: store.DefaultTenant, GrantID: grantID, ClientID: agent, UserID: user, Resource: resource, Scopes: scopes, ExpiresAt: start.Add(time.Hour)},
		RefreshToken: &store.RefreshToken{Hash: hash, TenantID: store.DefaultTenant, GrantID: grantID, ClientID: agent, UserID: user, Resource: resource, Scopes: scopes,
			CreatedAt: start, ExpiresAt: start.Add(30 * 24 * time.Hour)},
	}
	if err := st.IssueTokens(context.Background(), iss); err != nil {
		t.Fatal(err)
	}
	return hash, jti
}

func tokensRevoked(t *testing.T, st store.Store, hash []byte, jti string) (refresh, access bool) {
	t.Helper()
	rt, err := st.GetRefreshToken(context.Background(), hash)
	if err != nil {
		t.Fatal(err)
	}
	at, err := st.AccessTokenRevoked(context.Background(), jti)
	if err != nil {
		t.Fatal(err)
	}
	return !rt.RevokedAt.IsZero(), at
}

func TestLedgerRevokeCascade(t *testing.T) {
	tests := []struct {
		name          string
		key           consent.Key
		scopes        []string
		wantWithdrawn []string
		// which token families end up revoked
		wantReadFamily, wantDeleteFamily, wantCalendarFamily bool
		wantLiveNotes                                        []string
		wantLiveCalendar                                     []string
	}{
		{
			name: "one scope", key: consent.Key{UserID: user, ClientID: agent, Resource: notes}, scopes: []string{"notes.delete"},
			wantWithdrawn: []string{"notes.delete"}, wantDeleteFamily: true,
			wantLiveNotes: []string{"notes.read"}, wantLiveCalendar: []string{"calendar.read"},
		},
		{
			name: "agent on one resource", key: consent.Key{UserID: user, ClientID: agent, Resource: notes},
			wantWithdrawn: []string{"notes.delete", "notes.read"}, wantReadFamily: true, wantDeleteFamily: true,
			wantLiveCalendar: []string{"calendar.read"},
		},
		{
			name: "agent entirely", key: consent.Key{UserID: user, ClientID: agent},
			wantWithdrawn: []string{"calendar.read", "notes.delete", "notes.read"}, wantReadFamily: true, wantDeleteFamily: true, wantCalendarFamily: true,
		},
		{
			name: "a scope never granted withdraws nothing", key: consent.Key{UserID: user, ClientID: agent, Resource: notes}, scopes: []string{"notes.write"},
			wantLiveNotes: []string{"notes.read", "notes.delete"}, wantLiveCalendar: []string{"calendar.read"},
		},
		{
			name: "another person's revocation touches nothing", key: consent.Key{UserID: "u-bob", ClientID: agent},
			wantLiveNotes: []string{"notes.read", "notes.delete"}, wantLiveCalendar: []string{"calendar.read"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			backends(t, func(t *testing.T, st store.Store) {
				ctx := context.Background()
				l, clk := newLedger(t, st)
				kn := consent.Key{UserID: user, ClientID: agent, Resource: notes}
				kc := consent.Key{UserID: user, ClientID: agent, Resource: calendar}
				grant(t, l, kn, []string{"notes.read", "notes.delete"}, time.Time{})
				grant(t, l, kc, []string{"calendar.read"}, time.Time{})
				readRT, readAT := issueTokens(t, st, "g-read", notes, []string{"notes.read"})
				delRT, delAT := issueTokens(t, st, "g-delete", notes, []string{"notes.read", "notes.delete"})
				calRT, calAT := issueTokens(t, st, "g-cal", calendar, []string{"calendar.read"})
				clk.advance(time.Minute)

				got, err := l.Revoke(ctx, tc.key, tc.scopes, meta(clk.now()), "user")
				if err != nil {
					t.Fatal(err)
				}
				slices.Sort(got)
				if !slices.Equal(got, tc.wantWithdrawn) {
					t.Fatalf("withdrawn = %v, want %v", got, tc.wantWithdrawn)
				}
				for _, f := range []struct {
					name string
					hash []byte
					jti  string
					want bool
				}{{"read family", readRT, readAT, tc.wantReadFamily}, {"delete family", delRT, delAT, tc.wantDeleteFamily}, {"calendar family", calRT, calAT, tc.wantCalendarFamily}} {
					rt, at := tokensRevoked(t, st, f.hash, f.jti)
					if rt != f.want || at != f.want {
						t.Errorf("%s: refresh revoked %v, access denylisted %v; want %v", f.name, rt, at, f.want)
					}
				}
				if got := snapshot(t, l, kn).Live([]string{"notes.read", "notes.delete"}); !slices.Equal(got, tc.wantLiveNotes) {
					t.Errorf("live notes = %v, want %v", got, tc.wantLiveNotes)
				}
				if got := snapshot(t, l, kc).Live([]string{"calendar.read"}); !slices.Equal(got, tc.wantLiveCalendar) {
					t.Errorf("live calendar = %v, want %v", got, tc.wantLiveCalendar)
				}
				events, err := st.ListAudit(ctx, store.AuditFilter{Type: audit.ConsentRevoked})
				if err != nil {
					t.Fatal(err)
				}
				if len(tc.wantWithdrawn) == 0 {
					if len(events) != 0 {
						t.Errorf("a revocation that withdrew nothing wrote %d events", len(events))
					}
					return
				}
				if len(events) != 1 {
					t.Fatalf("consent.revoked events = %d", len(events))
				}
				scopes := slices.Clone(events[0].Scopes)
				slices.Sort(scopes)
				wholeAgent := tc.scopes == nil && tc.key.Resource == ""
				if !slices.Equal(scopes, tc.wantWithdrawn) || events[0].UserID != user || events[0].ClientID != agent ||
					events[0].Details["by"] != "user" || (events[0].Details["extent"] == "agent") != wholeAgent {
					t.Errorf("revocation event = %+v", events[0])
				}
			})
		})
	}
}

func TestLedgerRevokeKeepsExpiredOutOfTheReport(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		l, clk := newLedger(t, st)
		k := consent.Key{UserID: user, ClientID: agent, Resource: notes}
		grant(t, l, k, []string{"notes.read"}, clk.now().Add(time.Hour))
		grant(t, l, k, []string{"notes.write"}, time.Time{})
		clk.advance(2 * time.Hour)
		got, err := l.Revoke(context.Background(), k, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, []string{"notes.write"}) {
			t.Fatalf("withdrawn = %v: only live consent is taken back", got)
		}
	})
}

func TestLedgerForUser(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		l, clk := newLedger(t, st)
		grant(t, l, consent.Key{UserID: user, ClientID: "b-agent", Resource: notes}, []string{"notes.read"}, clk.now().Add(time.Hour))
		grant(t, l, consent.Key{UserID: user, ClientID: "a-agent", Resource: notes}, []string{"notes.write", "notes.read"}, time.Time{})
		grant(t, l, consent.Key{UserID: "u-bob", ClientID: "a-agent", Resource: notes}, []string{"notes.read"}, time.Time{})
		clk.advance(2 * time.Hour)
		got, err := l.ForUser(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, g := range got {
			keys = append(keys, g.ClientID+" "+g.Scope)
		}
		if want := []string{"a-agent notes.read", "a-agent notes.write"}; !slices.Equal(keys, want) {
			t.Fatalf("ForUser = %v, want %v (live only, this person only, ordered)", keys, want)
		}
	})
}

func TestLedgerRefusesIncompleteKeys(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		l, _ := newLedger(t, st)
		tests := []struct {
			name string
			run  func() error
		}{
			{"grant without resource", func() error {
				return l.Grant(ctx, consent.Key{UserID: user, ClientID: agent}, []string{"x"}, time.Time{}, nil)
			}},
			{"grant of nothing", func() error {
				return l.Grant(ctx, consent.Key{UserID: user, ClientID: agent, Resource: notes}, nil, time.Time{}, nil)
			}},
			{"snapshot without client", func() error { _, err := l.Snapshot(ctx, consent.Key{UserID: user, Resource: notes}); return err }},
			{"revoke without user", func() error { _, err := l.Revoke(ctx, consent.Key{ClientID: agent}, nil, nil, ""); return err }},
			{"for no user", func() error { _, err := l.ForUser(ctx, ""); return err }},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if tc.run() == nil {
					t.Fatal("accepted")
				}
			})
		}
		if _, err := consent.New(consent.Options{}); err == nil {
			t.Error("New without a store accepted")
		}
	})
}
