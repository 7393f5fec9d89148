package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// liveFixture creates a confidential client and a user to issue for.
func liveFixture(t *testing.T, s store.Store, tn string) (client *store.Client, user *store.User) {
	t.Helper()
	client = fullClient(tn, uniq("c"))
	must(t, "CreateClient", s.CreateClient(ctx(t), client, nil))
	user = &store.User{TenantID: tn, ID: uniq("u"), Username: uniq("name"), PasswordHash: "x", CreatedAt: base(), UpdatedAt: base()}
	must(t, "CreateUser", s.CreateUser(ctx(t), user, nil))
	return client, user
}

// setClientDisabled disables or enables a client.
func setClientDisabled(t *testing.T, s store.Store, c *store.Client, disabled bool) {
	t.Helper()
	_, err := s.UpdateClient(ctx(t), c.TenantID, c.ID, func(c *store.Client) error {
		c.Disabled = disabled
		return nil
	}, nil)
	must(t, "UpdateClient", err)
	c.Disabled = disabled
}

func checkedIssuance(tn, grant string, c *store.Client, u *store.User) *store.Issuance {
	userID := ""
	if u != nil {
		userID = u.ID
	}
	return &store.Issuance{
		AccessToken:  accessToken(tn, grant, c.ID, userID, "https://r/", "a"),
		RefreshToken: refreshToken(tn, grant, c.ID, userID, "https://r/", "a"),
		Events:       []*store.AuditEvent{event(tn, "token.issued")},
		Check:        &store.LiveCheck{TenantID: tn, ClientID: c.ID, UserID: userID},
	}
}

// wantNothingIssued checks a refused issuance left no trace.
func wantNothingIssued(t *testing.T, s store.Store, iss *store.Issuance) {
	t.Helper()
	_, err := s.GetRefreshToken(ctx(t), iss.RefreshToken.Hash)
	wantErr(t, "refresh token of a refused issuance", err, store.ErrNotFound)
	for _, ev := range iss.Events {
		wantNoAudit(t, s, ev)
	}
}

// testIssueLiveCheck: with Issuance.Check, IssueTokens and RotateRefresh
// refuse a deleted or disabled client or user and write nothing.
func testIssueLiveCheck(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	t.Run("alive", func(t *testing.T) {
		c, u := liveFixture(t, s, tn)
		iss := checkedIssuance(tn, uniq("g"), c, u)
		must(t, "IssueTokens", s.IssueTokens(ctx(t), iss))
		ccIss := checkedIssuance(tn, "", c, nil)
		ccIss.RefreshToken = nil
		must(t, "IssueTokens without a user", s.IssueTokens(ctx(t), ccIss))
	})
	for _, tc := range []struct {
		name   string
		breaks func(t *testing.T, c *store.Client, u *store.User)
		grant  string
		want   error
	}{
		{"client disabled", func(t *testing.T, c *store.Client, _ *store.User) { setClientDisabled(t, s, c, true) }, "g", store.ErrClientGone},
		{"client deleted", func(t *testing.T, c *store.Client, _ *store.User) {
			must(t, "DeleteClient", s.DeleteClient(ctx(t), tn, c.ID, base(), nil))
		}, "g", store.ErrClientGone},
		{"client disabled, no grant", func(t *testing.T, c *store.Client, _ *store.User) { setClientDisabled(t, s, c, true) }, "", store.ErrClientGone},
		{"user disabled", func(t *testing.T, _ *store.Client, u *store.User) {
			u.Disabled = true
			must(t, "UpdateUser", s.UpdateUser(ctx(t), u, nil))
		}, "g", store.ErrUserGone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, u := liveFixture(t, s, tn)
			grant := ""
			if tc.grant != "" {
				grant = uniq(tc.grant)
			}
			// A token issued before, to rotate afterwards.
			old := checkedIssuance(tn, uniq("g"), c, u)
			must(t, "IssueTokens before", s.IssueTokens(ctx(t), old))
			tc.breaks(t, c, u)
			iss := checkedIssuance(tn, grant, c, u)
			wantErr(t, "IssueTokens", s.IssueTokens(ctx(t), iss), tc.want)
			wantNothingIssued(t, s, iss)
			next := checkedIssuance(tn, old.RefreshToken.GrantID, c, u)
			wantErr(t, "RotateRefresh", s.RotateRefresh(ctx(t), old.RefreshToken.Hash, base().Add(time.Minute), next, event(tn, "refresh.reuse")), tc.want)
			wantNothingIssued(t, s, next)
			if !refreshState(t, s, old.RefreshToken).RotatedAt.IsZero() {
				t.Fatal("a refused rotation retired the old token")
			}
		})
	}
	t.Run("user missing", func(t *testing.T) {
		c, _ := liveFixture(t, s, tn)
		iss := checkedIssuance(tn, uniq("g"), c, &store.User{ID: "nobody"})
		wantErr(t, "IssueTokens", s.IssueTokens(ctx(t), iss), store.ErrUserGone)
		wantNothingIssued(t, s, iss)
	})
}

// testRevokeClientTokens: every token of the client is revoked, nobody
// else's.
func testRevokeClientTokens(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	c, u := liveFixture(t, s, tn)
	other, _ := liveFixture(t, s, tn)
	mine := checkedIssuance(tn, uniq("g"), c, u)
	cc := checkedIssuance(tn, "", c, nil)
	cc.RefreshToken = nil
	theirs := checkedIssuance(tn, uniq("g"), other, u)
	for _, iss := range []*store.Issuance{mine, cc, theirs} {
		must(t, "IssueTokens", s.IssueTokens(ctx(t), iss))
	}
	ev := event(tn, "token.revoked")
	must(t, "RevokeClientTokens", s.RevokeClientTokens(ctx(t), tn, c.ID, base().Add(time.Minute), ev))
	wantAudit(t, s, ev)
	if !revoked(t, s, mine.AccessToken) || !revoked(t, s, cc.AccessToken) || refreshState(t, s, mine.RefreshToken).RevokedAt.IsZero() {
		t.Fatal("a token of the client is still live")
	}
	if revoked(t, s, theirs.AccessToken) || !refreshState(t, s, theirs.RefreshToken).RevokedAt.IsZero() {
		t.Fatal("another client's tokens were revoked")
	}
}

// testRevokeUserAccess: sessions, pending codes, code grants and tokens of
// the user end; another user's stay.
func testRevokeUserAccess(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	c, u := liveFixture(t, s, tn)
	_, other := liveFixture(t, s, tn)
	sess := func(user string) *store.Session {
		return &store.Session{Hash: hash(uniq("cookie")), TenantID: tn, UserID: user, AuthTime: base(), ExpiresAt: base().Add(12 * time.Hour)}
	}
	code := func(user string) *store.AuthCode {
		ac := authCode(tn, uniq("g"))
		ac.ClientID, ac.UserID = c.ID, user
		must(t, "CreateAuthCode", s.CreateAuthCode(ctx(t), ac, nil))
		return ac
	}
	mySess, theirSess := sess(u.ID), sess(other.ID)
	for _, x := range []*store.Session{mySess, theirSess} {
		must(t, "CreateSession", s.CreateSession(ctx(t), x, nil))
	}
	pending, inFlight, theirCode := code(u.ID), code(u.ID), code(other.ID)
	// An exchange that consumed its code before the change and issues after.
	_, err := s.ConsumeAuthCode(ctx(t), inFlight.Hash, base(), nil)
	must(t, "ConsumeAuthCode", err)
	mine := checkedIssuance(tn, uniq("g"), c, u)
	theirs := checkedIssuance(tn, uniq("g"), c, other)
	for _, iss := range []*store.Issuance{mine, theirs} {
		must(t, "IssueTokens", s.IssueTokens(ctx(t), iss))
	}

	ev := event(tn, "user.access_revoked")
	must(t, "RevokeUserAccess", s.RevokeUserAccess(ctx(t), tn, u.ID, base().Add(time.Minute), ev))
	wantAudit(t, s, ev)

	_, err = s.GetSession(ctx(t), mySess.Hash, base())
	wantErr(t, "the user's session", err, store.ErrNotFound)
	_, err = s.ConsumeAuthCode(ctx(t), pending.Hash, base(), nil)
	wantErr(t, "the user's pending code", err, store.ErrNotFound)
	late := checkedIssuance(tn, inFlight.GrantID, c, u)
	wantErr(t, "issuing for the in-flight code", s.IssueTokens(ctx(t), late), store.ErrAlreadyUsed)
	if !revoked(t, s, mine.AccessToken) || refreshState(t, s, mine.RefreshToken).RevokedAt.IsZero() {
		t.Fatal("a token of the user is still live")
	}

	_, err = s.GetSession(ctx(t), theirSess.Hash, base())
	must(t, "another user's session", err)
	_, err = s.ConsumeAuthCode(ctx(t), theirCode.Hash, base(), nil)
	must(t, "another user's code", err)
	if revoked(t, s, theirs.AccessToken) || !refreshState(t, s, theirs.RefreshToken).RevokedAt.IsZero() {
		t.Fatal("another user's tokens were revoked")
	}
}

// testDisableRacesIssuance: issuances race a disable followed by
// RevokeClientTokens (what `clients disable` does). Every issuance either
// fails with ErrClientGone or its tokens end up revoked: none survives.
func testDisableRacesIssuance(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	for round := range 3 {
		t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
			c, u := liveFixture(t, s, tn)
			const n = 24
			issued := make([]*store.Issuance, n)
			errs := make([]error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				issued[i] = checkedIssuance(tn, uniq("g"), c, u)
				wg.Go(func() {
					<-start
					if i%3 == 0 {
						time.Sleep(time.Duration(i) * 100 * time.Microsecond)
					}
					errs[i] = s.IssueTokens(ctx(t), issued[i])
				})
			}
			wg.Go(func() {
				<-start
				time.Sleep(time.Duration(round) * time.Millisecond)
				setClientDisabled(t, s, c, true)
				must(t, "RevokeClientTokens", s.RevokeClientTokens(ctx(t), tn, c.ID, base().Add(time.Minute), nil))
			})
			close(start)
			wg.Wait()
			for i, err := range errs {
				switch {
				case err == nil:
					if !revoked(t, s, issued[i].AccessToken) || refreshState(t, s, issued[i].RefreshToken).RevokedAt.IsZero() {
						t.Errorf("issuance %d committed and its tokens survived the disable", i)
					}
				case errors.Is(err, store.ErrClientGone):
					wantNothingIssued(t, s, issued[i])
				default:
					t.Errorf("issuance %d: %v", i, err)
				}
			}
		})
	}
}
