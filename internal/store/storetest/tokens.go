package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

func authCode(tenant, grant string) *store.AuthCode {
	b := base()
	return &store.AuthCode{
		Hash:                hash(uniq("code")),
		TenantID:            tenant,
		GrantID:             grant,
		ClientID:            "c1",
		UserID:              "u1",
		RedirectURI:         "http://127.0.0.1:8765/callback",
		Scopes:              []string{"files:read", "files:write"},
		Resource:            "https://files.example.com/mcp",
		CodeChallenge:       "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		CodeChallengeMethod: "S256",
		Nonce:               "n-0S6_WzA2Mj",
		AuthTime:            b.Add(-time.Minute),
		CreatedAt:           b,
		ExpiresAt:           b.Add(time.Minute),
	}
}

// grantTokens issues two refresh tokens and two access tokens for grant (as
// if the code had been exchanged and refreshed once) and returns them.
func grantTokens(t *testing.T, s store.Store, tenant, grant string) ([]*store.RefreshToken, []*store.AccessToken) {
	t.Helper()
	var rts []*store.RefreshToken
	var ats []*store.AccessToken
	for range 2 {
		rt := refreshToken(tenant, grant, "c1", "u1", "https://files.example.com/mcp", "files:read")
		at := accessToken(tenant, grant, "c1", "u1", "https://files.example.com/mcp", "files:read")
		issue(t, s, rt, at)
		rts = append(rts, rt)
		ats = append(ats, at)
	}
	return rts, ats
}

// wantGrantRevoked checks every token's revocation state.
func wantGrantRevoked(t *testing.T, s store.Store, rts []*store.RefreshToken, ats []*store.AccessToken, want bool) {
	t.Helper()
	for _, rt := range rts {
		got := refreshState(t, s, rt)
		if got.RevokedAt.IsZero() == want {
			t.Errorf("refresh token of grant %s: RevokedAt = %v, want revoked=%v", rt.GrantID, got.RevokedAt, want)
		}
		if want && got.Active(base()) {
			t.Errorf("revoked refresh token is Active")
		}
	}
	for _, at := range ats {
		if revoked(t, s, at) != want {
			t.Errorf("access token of grant %s: revoked=%v, want %v", at.GrantID, !want, want)
		}
	}
}

func testAuthCode(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	b := base()
	code := authCode(tn, "g1")
	ev := event(tn, "code.issued")
	must(t, "CreateAuthCode", s.CreateAuthCode(ctx(t), code, ev))
	wantAudit(t, s, ev)

	t.Run("duplicate", func(t *testing.T) {
		ev := event(tn, "code.issued")
		wantErr(t, "CreateAuthCode", s.CreateAuthCode(ctx(t), code, ev), store.ErrConflict)
		wantNoAudit(t, s, ev)
	})

	notFound := []struct {
		name string
		hash []byte
		now  time.Time
	}{
		{"unknown", hash("nope"), b},
		{"at expiry", code.Hash, b.Add(time.Minute)},
		{"expired", code.Hash, b.Add(time.Hour)},
	}
	for _, tc := range notFound {
		t.Run(tc.name, func(t *testing.T) {
			ev := event(tn, "code.exchanged")
			got, err := s.ConsumeAuthCode(ctx(t), tc.hash, tc.now, ev)
			wantErr(t, "ConsumeAuthCode", err, store.ErrNotFound)
			if got != nil {
				t.Errorf("ConsumeAuthCode returned a code with ErrNotFound")
			}
			wantNoAudit(t, s, ev)
		})
	}

	t.Run("consume", func(t *testing.T) {
		now := b.Add(10 * time.Second)
		ev := event(tn, "code.replayed")
		got, err := s.ConsumeAuthCode(ctx(t), code.Hash, now, ev)
		must(t, "ConsumeAuthCode", err)
		want := *code
		want.ConsumedAt = now
		checkEqual(t, "consumed code", &want, got)
		// The event is the replay event: a first use writes none.
		wantNoAudit(t, s, ev)
	})
}

func testAuthCodeReplay(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	b := base()
	code := authCode(tn, "g1")
	must(t, "CreateAuthCode", s.CreateAuthCode(ctx(t), code, nil))
	first := b.Add(5 * time.Second)
	if _, err := s.ConsumeAuthCode(ctx(t), code.Hash, first, nil); err != nil {
		t.Fatal(err)
	}
	rts, ats := grantTokens(t, s, tn, "g1")
	otherRTs, otherATs := grantTokens(t, s, tn, "g2")
	// The same grant id in another tenant is another grant.
	foreignRTs, foreignATs := grantTokens(t, s, "t2", "g1")

	tests := []struct {
		name string
		now  time.Time
		ev   *store.AuditEvent
	}{
		{"replay revokes the grant", b.Add(20 * time.Second), event(tn, "code.replayed")},
		{"replay with nil event", b.Add(30 * time.Second), nil},
		// RFC 6749 §4.1.2: a code used twice is a replay even after it expired.
		{"replay after expiry", b.Add(time.Hour), event(tn, "code.replayed")},
		{"replay event completed from the code", b.Add(2 * time.Hour), &store.AuditEvent{TenantID: tn, Time: b, Type: "code.replayed", RequestID: uniq("req"), Outcome: "failure"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ConsumeAuthCode(ctx(t), code.Hash, tc.now, tc.ev)
			wantErr(t, "ConsumeAuthCode replay", err, store.ErrAlreadyUsed)
			if got == nil {
				t.Fatal("ConsumeAuthCode replay returned no code")
			}
			want := *code
			want.ConsumedAt = first
			checkEqual(t, "replayed code", &want, got)
			if tc.ev != nil {
				wantAudit(t, s, tc.ev.WithCode(code))
			}
			wantGrantRevoked(t, s, rts, ats, true)
			wantGrantRevoked(t, s, otherRTs, otherATs, false)
			wantGrantRevoked(t, s, foreignRTs, foreignATs, false)
		})
	}
	t.Run("tokens issued after the replay are refused", func(t *testing.T) {
		// The first exchange consumed the code; a replay revoked the grant
		// before that exchange persisted its tokens.
		late := &store.Issuance{
			AccessToken:  &store.AccessToken{JTI: uniq("jti"), TenantID: tn, GrantID: "g1", ClientID: "c1", UserID: "u1", ExpiresAt: b.Add(time.Hour)},
			RefreshToken: &store.RefreshToken{Hash: hash(uniq("rt")), TenantID: tn, GrantID: "g1", ClientID: "c1", UserID: "u1", CreatedAt: b, ExpiresAt: b.Add(time.Hour)},
			Events:       []*store.AuditEvent{event(tn, "token.issued")},
		}
		wantErr(t, "IssueTokens for a replayed grant", s.IssueTokens(ctx(t), late), store.ErrAlreadyUsed)
		if _, err := s.GetRefreshToken(ctx(t), late.RefreshToken.Hash); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the refused issuance wrote its refresh token: %v", err)
		}
		wantNoAudit(t, s, late.Events[0])
		// Another grant, and the same grant id in another tenant, still issue.
		other := &store.Issuance{AccessToken: &store.AccessToken{JTI: uniq("jti"), TenantID: "t2", GrantID: "g1", ClientID: "c1", ExpiresAt: b.Add(time.Hour)}}
		must(t, "IssueTokens in another tenant", s.IssueTokens(ctx(t), other))
	})
	t.Run("revocation time is the first replay", func(t *testing.T) {
		for _, rt := range rts {
			if got := refreshState(t, s, rt); !sameTime(b.Add(20*time.Second), got.RevokedAt) {
				t.Errorf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, b.Add(20*time.Second))
			}
		}
	})
}

func testAuthCodeConcurrent(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	for round := range 10 {
		n := 2 + round%7
		t.Run(fmt.Sprintf("%d racers", n), func(t *testing.T) {
			grant := uniq("g")
			code := authCode(tn, grant)
			must(t, "CreateAuthCode", s.CreateAuthCode(ctx(t), code, nil))
			// Tokens the winner would issue; a loser's replay must revoke them.
			rts, ats := grantTokens(t, s, tn, grant)
			start := make(chan struct{})
			errs := make([]error, n)
			codes := make([]*store.AuthCode, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					codes[i], errs[i] = s.ConsumeAuthCode(ctx(t), code.Hash, base().Add(time.Second), nil)
				})
			}
			close(start)
			wg.Wait()
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case errors.Is(err, store.ErrAlreadyUsed):
				default:
					t.Fatalf("racer %d: %v", i, err)
				}
				if codes[i] == nil || codes[i].GrantID != grant {
					t.Fatalf("racer %d got code %+v", i, codes[i])
				}
			}
			if wins != 1 {
				t.Fatalf("%d racers consumed the code, want exactly 1", wins)
			}
			wantGrantRevoked(t, s, rts, ats, true)
		})
	}
}

func testIssueTokens(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	tests := []struct {
		name string
		iss  *store.Issuance
	}{
		{"access only (client credentials)", &store.Issuance{
			AccessToken: accessToken(tn, "", "c1", "", "https://r/", "a", "b"),
			Events:      []*store.AuditEvent{event(tn, "token.issued")},
		}},
		{"access and refresh", &store.Issuance{
			AccessToken:  accessToken(tn, "g1", "c1", "u1", "https://r/", "a"),
			RefreshToken: refreshToken(tn, "g1", "c1", "u1", "https://r/", "a", "b", "c"),
			Events:       []*store.AuditEvent{event(tn, "token.issued"), event(tn, "refresh.issued")},
		}},
		{"refresh only, no scopes", &store.Issuance{
			RefreshToken: refreshToken(tn, "g2", "c1", "u1", ""),
		}},
		{"events only", &store.Issuance{
			Events: []*store.AuditEvent{event(tn, "token.issued")},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			must(t, "IssueTokens", s.IssueTokens(ctx(t), tc.iss))
			if rt := tc.iss.RefreshToken; rt != nil {
				got, err := s.GetRefreshToken(ctx(t), rt.Hash)
				must(t, "GetRefreshToken", err)
				checkEqual(t, "refresh token", rt, got)
				if !got.Active(base()) {
					t.Errorf("fresh refresh token not Active")
				}
			}
			if at := tc.iss.AccessToken; at != nil && revoked(t, s, at) {
				t.Errorf("fresh access token revoked")
			}
			for _, ev := range tc.iss.Events {
				wantAudit(t, s, ev)
			}
		})
	}
	t.Run("unknown refresh token", func(t *testing.T) {
		_, err := s.GetRefreshToken(ctx(t), hash("nope"))
		wantErr(t, "GetRefreshToken", err, store.ErrNotFound)
	})
	t.Run("unknown jti is not revoked", func(t *testing.T) {
		if revoked(t, s, &store.AccessToken{JTI: "never-issued"}) {
			t.Error("unknown jti reported revoked")
		}
	})
}

func testIssueTokensAtomic(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	at := accessToken(tn, "g1", "c1", "u1", "https://r/", "a")
	rt := refreshToken(tn, "g1", "c1", "u1", "https://r/", "a")
	issue(t, s, rt, at)

	tests := []struct {
		name string
		iss  func() *store.Issuance
	}{
		{"duplicate jti", func() *store.Issuance {
			return &store.Issuance{
				AccessToken:  &store.AccessToken{JTI: at.JTI, TenantID: tn, ClientID: "c1", ExpiresAt: base()},
				RefreshToken: refreshToken(tn, "g9", "c1", "u1", "https://r/"),
				Events:       []*store.AuditEvent{event(tn, "token.issued")},
			}
		}},
		{"duplicate refresh hash", func() *store.Issuance {
			dup := refreshToken(tn, "g9", "c1", "u1", "https://r/")
			dup.Hash = rt.Hash
			return &store.Issuance{
				AccessToken:  accessToken(tn, "g9", "c1", "u1", "https://r/"),
				RefreshToken: dup,
				Events:       []*store.AuditEvent{event(tn, "token.issued")},
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			iss := tc.iss()
			wantErr(t, "IssueTokens", s.IssueTokens(ctx(t), iss), store.ErrConflict)
			// Nothing of the failed issuance is left behind.
			for _, ev := range iss.Events {
				wantNoAudit(t, s, ev)
			}
			if iss.RefreshToken.Hash != nil && string(iss.RefreshToken.Hash) != string(rt.Hash) {
				_, err := s.GetRefreshToken(ctx(t), iss.RefreshToken.Hash)
				wantErr(t, "GetRefreshToken of failed issuance", err, store.ErrNotFound)
			}
			if iss.AccessToken.JTI != at.JTI {
				// Had the access token been recorded, revoking its grant
				// would denylist it.
				must(t, "RevokeGrant", s.RevokeGrant(ctx(t), tn, "g9", base(), nil))
				if revoked(t, s, iss.AccessToken) {
					t.Error("access token of failed issuance was recorded")
				}
			}
			got := refreshState(t, s, rt)
			checkEqual(t, "original refresh token", rt, got)
		})
	}
}

// testIssueTokensConcurrent issues from many goroutines at once, some of the
// issuances conflicting, so a backend that batches writes must keep each
// issuance's outcome its own.
func testIssueTokensConcurrent(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	const workers, per = 8, 40
	dupAT := accessToken(tn, "", "c1", "", "https://r/")
	dupRT := refreshToken(tn, "g-dup", "c1", "u1", "https://r/")
	issue(t, s, dupRT, dupAT)

	type result struct {
		iss *store.Issuance
		err error
		bad bool
	}
	results := make([][]result, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				// Every fifth issuance conflicts: on its jti, or (after its
				// access token was written) on its refresh token's hash.
				bad := (w+i)%5 == 0
				grant := uniq("g")
				at := accessToken(tn, grant, "c1", "u1", "https://r/", "a")
				iss := &store.Issuance{AccessToken: at, Events: []*store.AuditEvent{event(tn, "token.cc")}}
				if i%3 == 0 || bad {
					iss.RefreshToken = refreshToken(tn, grant, "c1", "u1", "https://r/", "a")
				}
				if bad && i%2 == 0 {
					at.JTI = dupAT.JTI
				} else if bad {
					iss.RefreshToken.Hash = dupRT.Hash
				}
				err := s.IssueTokens(ctx(t), iss)
				results[w] = append(results[w], result{iss, err, bad})
			}
		})
	}
	wg.Wait()

	written, err := s.ListAudit(ctx(t), store.AuditFilter{TenantID: tn, Type: "token.cc", Limit: workers * per * 2})
	must(t, "ListAudit", err)
	byReq := make(map[string]int)
	for _, e := range written {
		byReq[e.RequestID]++
	}
	good := 0
	for _, rs := range results {
		for _, r := range rs {
			if r.bad {
				wantErr(t, "conflicting IssueTokens", r.err, store.ErrConflict)
				if byReq[r.iss.Events[0].RequestID] != 0 {
					t.Fatalf("event of a failed issuance was written")
				}
				if h := r.iss.RefreshToken.Hash; string(h) != string(dupRT.Hash) {
					_, err := s.GetRefreshToken(ctx(t), h)
					wantErr(t, "refresh token of failed issuance", err, store.ErrNotFound)
				}
				if at := r.iss.AccessToken; at.JTI != dupAT.JTI {
					// Had it been recorded, revoking its grant would denylist it.
					must(t, "RevokeGrant", s.RevokeGrant(ctx(t), tn, at.GrantID, base(), nil))
					if revoked(t, s, at) {
						t.Fatalf("access token of a failed issuance was recorded")
					}
				}
				continue
			}
			must(t, "IssueTokens", r.err)
			good++
			if byReq[r.iss.Events[0].RequestID] != 1 {
				t.Fatalf("event of a successful issuance written %d times", byReq[r.iss.Events[0].RequestID])
			}
			if r.iss.RefreshToken != nil {
				if _, err := s.GetRefreshToken(ctx(t), r.iss.RefreshToken.Hash); err != nil {
					t.Fatalf("refresh token of successful issuance: %v", err)
				}
			}
		}
	}
	if len(written) != good {
		t.Fatalf("%d events written, want %d", len(written), good)
	}
}

func testRotateRefresh(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	b := base()
	old := refreshToken(tn, "g1", "c1", "u1", "https://r/", "a", "b")
	issue(t, s, old, nil)

	now := b.Add(time.Hour)
	next := refreshToken(tn, "g1", "c1", "u1", "https://r/", "a", "b")
	next.CreatedAt = now
	at := accessToken(tn, "g1", "c1", "u1", "https://r/", "a")
	ev := event(tn, "token.refreshed")
	reuse := event(tn, "refresh.reused")
	iss := &store.Issuance{AccessToken: at, RefreshToken: next, Events: []*store.AuditEvent{ev}}
	must(t, "RotateRefresh", s.RotateRefresh(ctx(t), old.Hash, now, iss, reuse))

	wantAudit(t, s, ev)
	wantNoAudit(t, s, reuse)
	gotOld := refreshState(t, s, old)
	wantOld := *old
	wantOld.RotatedAt = now
	checkEqual(t, "rotated token", &wantOld, gotOld)
	if gotOld.Active(now) {
		t.Error("rotated token still Active")
	}
	checkEqual(t, "successor", next, refreshState(t, s, next))
	if revoked(t, s, at) {
		t.Error("new access token revoked")
	}

	// The successor rotates in turn.
	later := now.Add(time.Hour)
	third := refreshToken(tn, "g1", "c1", "u1", "https://r/", "a")
	must(t, "RotateRefresh successor", s.RotateRefresh(ctx(t), next.Hash, later, &store.Issuance{RefreshToken: third}, nil))
	if got := refreshState(t, s, next); !sameTime(later, got.RotatedAt) {
		t.Errorf("successor RotatedAt = %v", got.RotatedAt)
	}
}

// testIssuanceConsentUse: the consent use an issuance carries is recorded in
// the issuance's own transaction, by IssueTokens and RotateRefresh alike, and
// not at all when the issuance is refused.
func testIssuanceConsentUse(t *testing.T, s store.Store) {
	const tn, r = store.DefaultTenant, "https://r/"
	f := store.ConsentFilter{TenantID: tn, UserID: "u1", ClientID: "c1", Resource: r}
	grants := []*store.ConsentGrant{consent(tn, "u1", "c1", r, "a"), consent(tn, "u1", "c1", r, "b"), consent(tn, "u2", "c1", r, "a")}
	must(t, "UpsertConsents", s.UpsertConsents(ctx(t), grants, nil))
	lastUsed := func(g *store.ConsentGrant) time.Time {
		t.Helper()
		return listConsents(t, s, store.ConsentFilter{})[consentKey(g)].LastUsedAt
	}
	use := func(at time.Time, scopes ...string) *store.ConsentUse {
		return &store.ConsentUse{Filter: f, Scopes: scopes, At: at}
	}
	b := base()

	rt := refreshToken(tn, "g1", "c1", "u1", r, "a", "b")
	first := b.Add(time.Minute)
	must(t, "IssueTokens", s.IssueTokens(ctx(t), &store.Issuance{AccessToken: accessToken(tn, "g1", "c1", "u1", r, "a"), RefreshToken: rt, ConsentUse: use(first, "a")}))
	if got := lastUsed(grants[0]); !sameTime(first, got) {
		t.Errorf("IssueTokens: used scope LastUsedAt = %v, want %v", got, first)
	}
	if got := lastUsed(grants[1]); !got.IsZero() {
		t.Errorf("IssueTokens: unused scope LastUsedAt = %v", got)
	}
	if got := lastUsed(grants[2]); !got.IsZero() {
		t.Errorf("IssueTokens: another user's consent LastUsedAt = %v", got)
	}

	dup := accessToken(tn, "g1", "c1", "u1", r, "b")
	issue(t, s, nil, dup)
	refused := &store.Issuance{AccessToken: &store.AccessToken{JTI: dup.JTI, TenantID: tn, ClientID: "c1", ExpiresAt: b}, ConsentUse: use(b.Add(2*time.Minute), "b")}
	wantErr(t, "IssueTokens", s.IssueTokens(ctx(t), refused), store.ErrConflict)
	if got := lastUsed(grants[1]); !got.IsZero() {
		t.Errorf("refused issuance recorded consent use at %v", got)
	}

	rotated := b.Add(3 * time.Minute)
	next := refreshToken(tn, "g1", "c1", "u1", r, "a", "b")
	must(t, "RotateRefresh", s.RotateRefresh(ctx(t), rt.Hash, rotated, &store.Issuance{RefreshToken: next, ConsentUse: use(rotated, "a", "b")}, nil))
	for _, g := range grants[:2] {
		if got := lastUsed(g); !sameTime(rotated, got) {
			t.Errorf("RotateRefresh: %s LastUsedAt = %v, want %v", g.Scope, got, rotated)
		}
	}

	reused := b.Add(4 * time.Minute)
	err := s.RotateRefresh(ctx(t), rt.Hash, reused, &store.Issuance{RefreshToken: refreshToken(tn, "g1", "c1", "u1", r, "a"), ConsentUse: use(reused, "a")}, nil)
	wantErr(t, "RotateRefresh of a rotated token", err, store.ErrAlreadyUsed)
	if got := lastUsed(grants[0]); !sameTime(rotated, got) {
		t.Errorf("refused rotation recorded consent use: LastUsedAt = %v, want %v", got, rotated)
	}
}

func testRotateRefreshReuse(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	b := base()
	first := refreshToken(tn, "g1", "c1", "u1", "https://r/", "a")
	firstAT := accessToken(tn, "g1", "c1", "u1", "https://r/", "a")
	issue(t, s, first, firstAT)
	second := refreshToken(tn, "g1", "c1", "u1", "https://r/", "a")
	secondAT := accessToken(tn, "g1", "c1", "u1", "https://r/", "a")
	must(t, "RotateRefresh", s.RotateRefresh(ctx(t), first.Hash, b.Add(time.Minute),
		&store.Issuance{AccessToken: secondAT, RefreshToken: second}, nil))
	otherRTs, otherATs := grantTokens(t, s, tn, "g2")

	// An attacker presents the rotated token.
	reuseAt := b.Add(2 * time.Minute)
	stolen := refreshToken(tn, "g1", "c1", "u1", "https://r/", "a")
	stolenAT := accessToken(tn, "g1", "c1", "u1", "https://r/", "a")
	ev := event(tn, "token.refreshed")
	reuse := event(tn, "refresh.reused")
	err := s.RotateRefresh(ctx(t), first.Hash, reuseAt,
		&store.Issuance{AccessToken: stolenAT, RefreshToken: stolen, Events: []*store.AuditEvent{ev}}, reuse)
	wantErr(t, "RotateRefresh of a rotated token", err, store.ErrAlreadyUsed)

	wantAudit(t, s, reuse)
	wantNoAudit(t, s, ev)
	_, err = s.GetRefreshToken(ctx(t), stolen.Hash)
	wantErr(t, "successor of a reused token", err, store.ErrNotFound)
	// RFC 9700 §4.14.2: the whole family is revoked.
	wantGrantRevoked(t, s, []*store.RefreshToken{first, second}, []*store.AccessToken{firstAT, secondAT}, true)
	wantGrantRevoked(t, s, otherRTs, otherATs, false)
	if got := refreshState(t, s, second); !sameTime(reuseAt, got.RevokedAt) {
		t.Errorf("successor RevokedAt = %v, want %v", got.RevokedAt, reuseAt)
	}
	if got := refreshState(t, s, first); !sameTime(b.Add(time.Minute), got.RotatedAt) {
		t.Errorf("reuse changed RotatedAt to %v", got.RotatedAt)
	}

	t.Run("reuse after expiry", func(t *testing.T) {
		reuse := event(tn, "refresh.reused")
		err := s.RotateRefresh(ctx(t), first.Hash, first.ExpiresAt.Add(time.Hour),
			&store.Issuance{RefreshToken: refreshToken(tn, "g1", "c1", "u1", "https://r/")}, reuse)
		wantErr(t, "RotateRefresh of an expired rotated token", err, store.ErrAlreadyUsed)
		// The family ended at the first reuse, which was recorded; a
		// replay revokes nothing more and records nothing.
		wantNoAudit(t, s, reuse)
	})
	t.Run("revoked token", func(t *testing.T) {
		// The current token of a revoked family is refused the same way.
		reuse := event(tn, "refresh.reused")
		err := s.RotateRefresh(ctx(t), second.Hash, reuseAt.Add(time.Minute),
			&store.Issuance{RefreshToken: refreshToken(tn, "g1", "c1", "u1", "https://r/")}, reuse)
		wantErr(t, "RotateRefresh of a revoked token", err, store.ErrAlreadyUsed)
		wantNoAudit(t, s, reuse)
	})
}

func testRotateRefreshErrors(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	b := base()
	live := refreshToken(tn, "g1", "c1", "u1", "https://r/", "a")
	issue(t, s, live, nil)

	tests := []struct {
		name string
		hash []byte
		now  time.Time
	}{
		{"unknown", hash("nope"), b},
		{"at expiry", live.Hash, live.ExpiresAt},
		{"expired", live.Hash, live.ExpiresAt.Add(time.Hour)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := refreshToken(tn, "g1", "c1", "u1", "https://r/", "a")
			ev, reuse := event(tn, "token.refreshed"), event(tn, "refresh.reused")
			err := s.RotateRefresh(ctx(t), tc.hash, tc.now, &store.Issuance{RefreshToken: next, Events: []*store.AuditEvent{ev}}, reuse)
			wantErr(t, "RotateRefresh", err, store.ErrNotFound)
			wantNoAudit(t, s, ev)
			wantNoAudit(t, s, reuse)
			_, err = s.GetRefreshToken(ctx(t), next.Hash)
			wantErr(t, "successor of a failed rotation", err, store.ErrNotFound)
		})
	}
	checkEqual(t, "token after failed rotations", live, refreshState(t, s, live))

	t.Run("successor conflict rolls back", func(t *testing.T) {
		dup := refreshToken(tn, "g1", "c1", "u1", "https://r/", "a")
		dup.Hash = live.Hash
		err := s.RotateRefresh(ctx(t), live.Hash, b.Add(time.Minute), &store.Issuance{RefreshToken: dup}, nil)
		wantErr(t, "RotateRefresh", err, store.ErrConflict)
		checkEqual(t, "token after failed rotation", live, refreshState(t, s, live))
	})
}

func testRotateRefreshConcurrent(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	for round := range 10 {
		n := 2 + round%7
		t.Run(fmt.Sprintf("%d racers", n), func(t *testing.T) {
			grant := uniq("g")
			rt := refreshToken(tn, grant, "c1", "u1", "https://r/", "a")
			at := accessToken(tn, grant, "c1", "u1", "https://r/", "a")
			issue(t, s, rt, at)
			start := make(chan struct{})
			errs := make([]error, n)
			nexts := make([]*store.RefreshToken, n)
			nextATs := make([]*store.AccessToken, n)
			var wg sync.WaitGroup
			for i := range n {
				nexts[i] = refreshToken(tn, grant, "c1", "u1", "https://r/", "a")
				nextATs[i] = accessToken(tn, grant, "c1", "u1", "https://r/", "a")
				wg.Go(func() {
					<-start
					errs[i] = s.RotateRefresh(ctx(t), rt.Hash, base().Add(time.Minute),
						&store.Issuance{AccessToken: nextATs[i], RefreshToken: nexts[i]}, nil)
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil:
					if winner >= 0 {
						t.Fatalf("racers %d and %d both rotated the token", winner, i)
					}
					winner = i
				case errors.Is(err, store.ErrAlreadyUsed):
				default:
					t.Fatalf("racer %d: %v", i, err)
				}
			}
			if winner < 0 {
				t.Fatal("no racer rotated the token")
			}
			// The losers' reuse revoked the whole family, the winner's new
			// tokens included.
			wantGrantRevoked(t, s, []*store.RefreshToken{rt, nexts[winner]}, []*store.AccessToken{at, nextATs[winner]}, true)
			for i := range n {
				if i == winner {
					continue
				}
				_, err := s.GetRefreshToken(ctx(t), nexts[i].Hash)
				wantErr(t, "loser's successor", err, store.ErrNotFound)
			}
		})
	}
}

func testRevokeGrant(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	b := base()
	rts, ats := grantTokens(t, s, tn, "g1")
	otherRTs, otherATs := grantTokens(t, s, tn, "g2")
	foreignRTs, foreignATs := grantTokens(t, s, "t2", "g1")

	ev := event(tn, "grant.revoked")
	must(t, "RevokeGrant", s.RevokeGrant(ctx(t), tn, "g1", b.Add(time.Minute), ev))
	wantAudit(t, s, ev)
	wantGrantRevoked(t, s, rts, ats, true)
	wantGrantRevoked(t, s, otherRTs, otherATs, false)
	wantGrantRevoked(t, s, foreignRTs, foreignATs, false)

	tests := []struct {
		name  string
		grant string
	}{
		{"again", "g1"},
		{"unknown", "g-unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := event(tn, "grant.revoked")
			must(t, "RevokeGrant", s.RevokeGrant(ctx(t), tn, tc.grant, b.Add(time.Hour), ev))
			// Nothing left to revoke: no error, and nothing recorded.
			wantNoAudit(t, s, ev)
		})
	}
	// A second revocation keeps the first revocation time.
	for _, rt := range rts {
		if got := refreshState(t, s, rt); !sameTime(b.Add(time.Minute), got.RevokedAt) {
			t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, b.Add(time.Minute))
		}
	}
}

func testRevokeAccessToken(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	recorded := accessToken(tn, "g1", "c1", "u1", "https://r/", "a")
	issue(t, s, nil, recorded)
	other := accessToken(tn, "g1", "c1", "u1", "https://r/", "a")
	issue(t, s, nil, other)

	tests := []struct {
		name string
		at   *store.AccessToken
	}{
		{"recorded", recorded},
		{"again", recorded},
		// A token minted by a replica that failed to record it, or by a
		// previous key: revocation records it.
		{"unrecorded", accessToken(tn, "", "c1", "", "https://r/", "a")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := event(tn, "token.revoked")
			must(t, "RevokeAccessToken", s.RevokeAccessToken(ctx(t), tc.at, base().Add(time.Minute), ev))
			wantAudit(t, s, ev)
			if !revoked(t, s, tc.at) {
				t.Error("token not revoked")
			}
		})
	}
	if revoked(t, s, other) {
		t.Error("revoking one jti revoked another of the same grant")
	}
}

func testUseJTI(t *testing.T, s store.Store) {
	b := base()
	exp := b.Add(5 * time.Minute)
	steps := []struct {
		name string
		key  string
		jti  string
		exp  time.Time
		now  time.Time
		want error
	}{
		{"first use", "https://issuer.example.com", "j1", exp, b, nil},
		{"replay", "https://issuer.example.com", "j1", exp, b.Add(time.Minute), store.ErrConflict},
		{"replay just before exp", "https://issuer.example.com", "j1", exp, exp.Add(-time.Microsecond), store.ErrConflict},
		{"same jti other key", "client-2", "j1", exp, b, nil},
		{"other jti", "https://issuer.example.com", "j2", exp, b, nil},
		// Once the recorded jti has expired the assertion itself is expired;
		// recording it again is harmless and must not fail.
		{"at exp", "https://issuer.example.com", "j1", exp.Add(time.Hour), exp, nil},
		{"replay of re-recorded", "https://issuer.example.com", "j1", exp.Add(time.Hour), exp.Add(time.Minute), store.ErrConflict},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			wantErr(t, "UseJTI", s.UseJTI(ctx(t), st.key, st.jti, st.exp, st.now), st.want)
		})
	}
}

func testUseJTIConcurrent(t *testing.T, s store.Store) {
	for round := range 5 {
		n := 2 + 3*round
		t.Run(fmt.Sprintf("%d racers", n), func(t *testing.T) {
			jti := uniq("jti")
			errs := make([]error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					errs[i] = s.UseJTI(ctx(t), "client-1", jti, base().Add(time.Minute), base())
				})
			}
			close(start)
			wg.Wait()
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case errors.Is(err, store.ErrConflict):
				default:
					t.Fatalf("racer %d: %v", i, err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d racers used the jti, want exactly 1", wins)
			}
		})
	}
}
