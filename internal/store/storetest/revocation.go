package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// testRevokeGrantEmpty pins that an empty grant id is refused: tokens
// without a grant (client credentials, and token exchange) belong to no
// family, so no revocation by grant may reach them.
func testRevokeGrantEmpty(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	const res = "https://files.example.com/mcp"
	clientCreds := accessToken(tn, "", "c1", "", res, "files:read")
	exchanged := accessToken(tn, "", "c1", "u1", res, "files:read")
	issue(t, s, nil, clientCreds)
	issue(t, s, nil, exchanged)
	rts, ats := grantTokens(t, s, tn, "g1")

	ev := event(tn, "token.revoked")
	wantErr(t, "RevokeGrant with an empty grant id", s.RevokeGrant(ctx(t), tn, "", base().Add(time.Minute), ev), store.ErrInvalid)
	wantNoAudit(t, s, ev)
	for name, at := range map[string]*store.AccessToken{"client credentials": clientCreds, "grant-less user token": exchanged} {
		if revoked(t, s, at) {
			t.Errorf("%s revoked by an empty-grant revocation", name)
		}
	}
	wantGrantRevoked(t, s, rts, ats, false)
}

// testRevokeConsentsNothing pins that RevokeConsents writes its event only
// when it revoked something.
func testRevokeConsentsNothing(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	const res = "https://files.example.com/mcp"
	must(t, "UpsertConsents", s.UpsertConsents(ctx(t), []*store.ConsentGrant{
		consent(tn, "u1", "c1", res, "a"),
		consent(tn, "u1", "c1", res, "b"),
	}, nil))
	cc := accessToken(tn, "", "c1", "", res, "a")
	issue(t, s, nil, cc)
	now := base().Add(time.Hour)
	f := store.ConsentFilter{TenantID: tn, UserID: "u1", ClientID: "c1", Resource: res}

	steps := []struct {
		name      string
		f         store.ConsentFilter
		scopes    []string
		wantEvent bool
	}{
		{"unknown user", store.ConsentFilter{TenantID: tn, UserID: "u-none", ClientID: "c1"}, nil, false},
		{"scope never granted", f, []string{"zzz"}, false},
		{"no scopes named", f, []string{}, false},
		{"one scope", f, []string{"a"}, true},
		{"the same scope again", f, []string{"a"}, false},
		{"every scope", f, nil, true},
		{"every scope again", f, nil, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			ev := event(tn, "consent.revoked")
			must(t, "RevokeConsents", s.RevokeConsents(ctx(t), st.f, st.scopes, now, ev))
			if st.wantEvent {
				wantAudit(t, s, ev)
			} else if found := findAudit(t, s, ev); len(found) != 0 {
				t.Fatalf("RevokeConsents revoked nothing and wrote %d events", len(found))
			}
		})
	}
	if revoked(t, s, cc) {
		t.Error("a client-credentials token was revoked by a consent revocation")
	}
}

// testRevokeConsentsReachesExchanged pins that withdrawing consent revokes
// the tokens exchanged from the consented ones (RFC 8693: same user and
// grant family, issued to other clients for other resources) that carry a
// withdrawn scope, also when the agent's own tokens were revoked before,
// and nothing of another family, user or scope.
func testRevokeConsentsReachesExchanged(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	const resA, resB = "https://a.example.com/mcp", "https://b.example.com/mcp"
	must(t, "UpsertConsents", s.UpsertConsents(ctx(t), []*store.ConsentGrant{
		consent(tn, "u1", "agent", resA, "read"),
		consent(tn, "u1", "agent", resA, "write"),
	}, nil))
	own := accessToken(tn, "g1", "agent", "u1", resA, "read", "write")
	issue(t, s, nil, own)
	exRead := accessToken(tn, "g1", "mcp-a", "u1", resB, "read")
	exWrite := accessToken(tn, "g1", "mcp-a", "u1", resB, "write")
	exHop2 := accessToken(tn, "g1", "mcp-b", "u1", "https://c.example.com/api", "write")
	otherFamily := accessToken(tn, "g2", "mcp-a", "u1", resB, "write")
	otherUser := accessToken(tn, "g1", "mcp-a", "u2", resB, "write")
	for _, at := range []*store.AccessToken{exRead, exWrite, exHop2, otherFamily, otherUser} {
		issue(t, s, nil, at)
	}
	// The agent revoked its own token first (RFC 7009): the family is
	// still found through it.
	must(t, "RevokeAccessToken", s.RevokeAccessToken(ctx(t), own, base().Add(30*time.Second), nil))
	must(t, "RevokeConsents", s.RevokeConsents(ctx(t), store.ConsentFilter{TenantID: tn, UserID: "u1", ClientID: "agent", Resource: resA},
		[]string{"write"}, base().Add(time.Minute), nil))
	for _, c := range []struct {
		name string
		at   *store.AccessToken
		want bool
	}{
		{"exchanged with the scope", exWrite, true},
		{"exchanged again with the scope", exHop2, true},
		{"exchanged without the scope", exRead, false},
		{"another family", otherFamily, false},
		{"another user", otherUser, false},
	} {
		if got := revoked(t, s, c.at); got != c.want {
			t.Errorf("%s: revoked = %v, want %v", c.name, got, c.want)
		}
	}
	// Every scope withdrawn: the rest of the family's exchanged tokens go.
	must(t, "RevokeConsents", s.RevokeConsents(ctx(t), store.ConsentFilter{TenantID: tn, UserID: "u1", ClientID: "agent"}, nil, base().Add(2*time.Minute), nil))
	if !revoked(t, s, exRead) {
		t.Error("an exchanged token outlived the withdrawal of every scope")
	}
	if revoked(t, s, otherFamily) {
		t.Error("another family's token was revoked")
	}
}

// testRevokeGrantRecordsOnce pins that a grant's revocation is recorded
// once however many requests race to it (replicas serving one replayed
// refresh token each see it unrevoked, then each revoke): RevokeGrant and a
// reuse found by RotateRefresh write their event only when they revoked a
// token, and a replay after the family ended records nothing.
func testRevokeGrantRecordsOnce(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	t0 := base()
	t.Run("racing revocations", func(t *testing.T) {
		grant := uniq("g")
		rts, ats := grantTokens(t, s, tn, grant)
		evs := make([]*store.AuditEvent, 8)
		var wg sync.WaitGroup
		for i := range evs {
			evs[i] = event(tn, "token.revoked")
			wg.Go(func() {
				if err := s.RevokeGrant(ctx(t), tn, grant, t0.Add(time.Minute), evs[i]); err != nil {
					t.Errorf("RevokeGrant: %v", err)
				}
			})
		}
		wg.Wait()
		written := 0
		for _, ev := range evs {
			written += len(findAudit(t, s, ev))
		}
		if written != 1 {
			t.Fatalf("%d racing revocations of one grant wrote %d events, want 1", len(evs), written)
		}
		wantGrantRevoked(t, s, rts, ats, true)
	})
	t.Run("racing replays", func(t *testing.T) {
		grant := uniq("g")
		rt := refreshToken(tn, grant, "c1", "u1", "https://r/", "a")
		issue(t, s, rt, nil)
		first := rotation(tn, grant, t0)
		first.Reuse = nil
		must(t, "RotateRefresh", s.RotateRefresh(ctx(t), rt.Hash, t0, first, nil))
		late := t0.Add(time.Hour)
		evs := make([]*store.AuditEvent, 8)
		var wg sync.WaitGroup
		for i := range evs {
			evs[i] = event(tn, "refresh.reuse")
			next := rotation(tn, grant, late)
			next.Reuse = nil
			wg.Go(func() {
				err := s.RotateRefresh(ctx(t), rt.Hash, late, next, evs[i])
				if !errors.Is(err, store.ErrAlreadyUsed) {
					t.Errorf("a replay: %v, want ErrAlreadyUsed", err)
				}
			})
		}
		wg.Wait()
		written := 0
		for _, ev := range evs {
			written += len(findAudit(t, s, ev))
		}
		if written != 1 {
			t.Fatalf("%d racing replays of one rotated token wrote %d reuse events, want 1", len(evs), written)
		}
		again := event(tn, "refresh.reuse")
		next := rotation(tn, grant, late.Add(time.Minute))
		next.Reuse = nil
		wantErr(t, "a replay after the family ended", s.RotateRefresh(ctx(t), rt.Hash, late.Add(time.Minute), next, again), store.ErrAlreadyUsed)
		wantNoAudit(t, s, again)
	})
}
