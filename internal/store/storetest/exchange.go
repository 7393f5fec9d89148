package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// exchangeIssuance is the issuance of a token exchange of subject by c for
// u: one access token, its event, the live check and the subject's jti.
func exchangeIssuance(subject *store.AccessToken, c *store.Client, u *store.User) *store.Issuance {
	return &store.Issuance{
		AccessToken: accessToken(subject.TenantID, "", c.ID, u.ID, "https://next.example/", "a"),
		Events:      []*store.AuditEvent{event(subject.TenantID, "token.issued")},
		Check:       &store.LiveCheck{TenantID: subject.TenantID, ClientID: c.ID, UserID: u.ID},
		SubjectJTI:  subject.JTI,
	}
}

// wantNotExchanged checks a refused exchange left no trace.
func wantNotExchanged(t *testing.T, s store.Store, iss *store.Issuance) {
	t.Helper()
	_, err := s.GetAccessToken(ctx(t), iss.AccessToken.JTI)
	wantErr(t, "access token of a refused exchange", err, store.ErrNotFound)
	for _, ev := range iss.Events {
		wantNoAudit(t, s, ev)
	}
}

// testExchangeIssuance: an issuance with SubjectJTI joins the subject
// token's family and is refused, writing nothing, when the subject token's
// record is missing, of another tenant or revoked (alone, with its family,
// by a replay of its grant's code or with its user).
func testExchangeIssuance(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	c, u := liveFixture(t, s, tn)
	subjectOf := func(t *testing.T) (*store.AccessToken, string) {
		grant := uniq("g")
		at := accessToken(tn, grant, c.ID, u.ID, "https://r/", "a")
		issue(t, s, nil, at)
		return at, grant
	}
	t.Run("joins the family", func(t *testing.T) {
		subject, grant := subjectOf(t)
		iss := exchangeIssuance(subject, c, u)
		iss.AccessToken.GrantID = "ignored"
		must(t, "IssueTokens", s.IssueTokens(ctx(t), iss))
		got, err := s.GetAccessToken(ctx(t), iss.AccessToken.JTI)
		must(t, "GetAccessToken", err)
		if got.GrantID != grant || !got.RevokedAt.IsZero() {
			t.Fatalf("exchanged token: grant %q revoked %v, want grant %q live", got.GrantID, got.RevokedAt, grant)
		}
		wantAudit(t, s, iss.Events[0])
		must(t, "RevokeGrant", s.RevokeGrant(ctx(t), tn, grant, base(), nil))
		if !revoked(t, s, iss.AccessToken) {
			t.Fatal("revoking the family left the exchanged token alive")
		}
	})
	refused := []struct {
		name   string
		revoke func(t *testing.T, subject *store.AccessToken, grant string) *store.AccessToken
		want   error
	}{
		{"subject revoked", func(t *testing.T, subject *store.AccessToken, _ string) *store.AccessToken {
			must(t, "RevokeAccessToken", s.RevokeAccessToken(ctx(t), subject, base(), nil))
			return subject
		}, store.ErrRevoked},
		{"family revoked", func(t *testing.T, subject *store.AccessToken, grant string) *store.AccessToken {
			must(t, "RevokeGrant", s.RevokeGrant(ctx(t), tn, grant, base(), nil))
			return subject
		}, store.ErrRevoked},
		{"family's code replayed", func(t *testing.T, subject *store.AccessToken, grant string) *store.AccessToken {
			code := authCode(tn, grant)
			must(t, "CreateAuthCode", s.CreateAuthCode(ctx(t), code, nil))
			_, err := s.ConsumeAuthCode(ctx(t), code.Hash, base(), nil)
			must(t, "ConsumeAuthCode", err)
			_, err = s.ConsumeAuthCode(ctx(t), code.Hash, base(), nil)
			wantErr(t, "ConsumeAuthCode again", err, store.ErrAlreadyUsed)
			return subject
		}, store.ErrRevoked},
		{"user's access revoked", func(t *testing.T, subject *store.AccessToken, _ string) *store.AccessToken {
			other := &store.User{TenantID: tn, ID: uniq("u"), Username: uniq("name"), PasswordHash: "x", CreatedAt: base(), UpdatedAt: base()}
			must(t, "CreateUser", s.CreateUser(ctx(t), other, nil))
			at := accessToken(tn, uniq("g"), c.ID, other.ID, "https://r/", "a")
			issue(t, s, nil, at)
			must(t, "RevokeUserAccess", s.RevokeUserAccess(ctx(t), tn, other.ID, base(), nil))
			return at
		}, store.ErrRevoked},
		{"subject unknown", func(t *testing.T, subject *store.AccessToken, _ string) *store.AccessToken {
			return &store.AccessToken{JTI: uniq("jti"), TenantID: tn}
		}, store.ErrNotFound},
		{"subject of another tenant", func(t *testing.T, subject *store.AccessToken, _ string) *store.AccessToken {
			at := accessToken("other-tenant", uniq("g"), c.ID, u.ID, "https://r/", "a")
			issue(t, s, nil, at)
			return &store.AccessToken{JTI: at.JTI, TenantID: tn}
		}, store.ErrNotFound},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			subject, grant := subjectOf(t)
			iss := exchangeIssuance(tc.revoke(t, subject, grant), c, u)
			iss.AccessToken.TenantID, iss.Check.TenantID = tn, tn
			wantErr(t, "IssueTokens", s.IssueTokens(ctx(t), iss), tc.want)
			wantNotExchanged(t, s, iss)
		})
	}
	t.Run("a gone client reads as such first", func(t *testing.T) {
		subject, grant := subjectOf(t)
		must(t, "RevokeGrant", s.RevokeGrant(ctx(t), tn, grant, base(), nil))
		c2, u2 := liveFixture(t, s, tn)
		setClientDisabled(t, s, c2, true)
		iss := exchangeIssuance(subject, c2, u2)
		wantErr(t, "IssueTokens", s.IssueTokens(ctx(t), iss), store.ErrClientGone)
		wantNotExchanged(t, s, iss)
	})
	t.Run("without a live check", func(t *testing.T) {
		subject, _ := subjectOf(t)
		iss := exchangeIssuance(subject, c, u)
		iss.Check = nil
		wantErr(t, "IssueTokens", s.IssueTokens(ctx(t), iss), store.ErrInvalid)
		wantNotExchanged(t, s, iss)
	})
}

// testExchangeRacesRevocation: exchanges of a family's token racing the
// family's revocation either commit before it, and are revoked with the
// family, or are refused; none outlives the revocation.
func testExchangeRacesRevocation(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	c, u := liveFixture(t, s, tn)
	for round := range 3 {
		t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
			grant := uniq("g")
			subject := accessToken(tn, grant, c.ID, u.ID, "https://r/", "a")
			issue(t, s, nil, subject)
			const n = 24
			issued := make([]*store.Issuance, n)
			errs := make([]error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				issued[i] = exchangeIssuance(subject, c, u)
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
				must(t, "RevokeGrant", s.RevokeGrant(ctx(t), tn, grant, base(), nil))
			})
			close(start)
			wg.Wait()
			for i, err := range errs {
				switch {
				case err == nil:
					if !revoked(t, s, issued[i].AccessToken) {
						t.Errorf("exchange %d committed and its token survived the family's revocation", i)
					}
				case errors.Is(err, store.ErrRevoked):
					wantNotExchanged(t, s, issued[i])
				default:
					t.Errorf("exchange %d: %v", i, err)
				}
			}
		})
	}
}
