package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/consent"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// proveRefreshToken is the refresh token grant (RFC 6749 §6, OAuth 2.1
// §4.3): the token must be this client's, live and never rotated — or
// rotated less than the reuse interval ago; the issuance rotates it. A
// rotated token presented again after the interval revokes its family.
func (s *Server) proveRefreshToken(ctx context.Context, r *http.Request, c *store.Client, req *oauth.TokenRequest) (*authorization, error) {
	rt, err := s.st.GetRefreshToken(ctx, token.Hash(req.RefreshToken))
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.ErrInvalidGrant("the refresh token is invalid")
	}
	if err != nil {
		return nil, err
	}
	if rt.ClientID != c.ID || rt.TenantID != s.tenant {
		return nil, oauth.ErrInvalidGrant("the refresh token was issued to another client")
	}
	if err := s.refreshUsable(ctx, r, c, rt); err != nil {
		return nil, err
	}
	if err := sameResource(req.Resources, rt.Resource, "the grant"); err != nil {
		return nil, err
	}
	// RFC 6749 §6: a refresh may narrow the scope, never widen it; none
	// asked (or offline_access alone) asks for the grant as it is.
	if !oauth.ContainsAll(rt.Scopes, req.Scopes) {
		return nil, oauth.ErrInvalidScope("the requested scope exceeds the grant")
	}
	// OpenID Connect Core §12.2: the refresh returns an ID token when the
	// grant has openid and the request leaves it in (or asks the grant as
	// it is).
	oidc, grantScopes := splitOIDC(rt.Scopes)
	scopes := grantScopes
	if len(req.Scopes) > 0 {
		askedOIDC, askedRes := splitOIDC(req.Scopes)
		oidc = askedOIDC
		if len(askedRes) > 0 {
			scopes = askedRes
		}
	}
	return &authorization{
		subject:  userSubject(rt.UserID, rt.AuthTime),
		resource: []string{rt.Resource},
		scopes:   scopes,
		oidc:     oidc,
		family:   family{id: rt.GrantID, scopes: grantScopes, oidc: oidcOf(rt.Scopes), rotate: rt, installation: rt.RedirectURI},
		consent:  true,
		refresh:  true,
	}, nil
}

// refreshUsable refuses a refresh token that was rotated, revoked or has
// expired, recording what that means: reuse of a rotated token revokes its
// family (OAuth 2.1 §4.3.1), and a token that ended with its consent retires
// the grant. A token rotated less than the reuse interval ago passes: the
// issuance's store call decides, atomically, whether it is still within
// (see persist).
func (s *Server) refreshUsable(ctx context.Context, r *http.Request, c *store.Client, rt *store.RefreshToken) error {
	now := s.now()
	if s.withinReuseInterval(rt, now) {
		return nil
	}
	if !rt.RotatedAt.IsZero() || !rt.RevokedAt.IsZero() {
		if rt.RevokedAt.IsZero() {
			if err := s.st.RevokeGrant(ctx, rt.TenantID, rt.GrantID, now, s.reuseEvent(r, c, rt)); err != nil {
				return err
			}
		}
		return oauth.ErrInvalidGrant("the refresh token is no longer valid")
	}
	if !now.Before(rt.ExpiresAt) {
		if err := s.retireWithConsent(ctx, r, c, rt); err != nil {
			return err
		}
		return oauth.ErrInvalidGrant("the refresh token has expired")
	}
	return nil
}

// withinReuseInterval reports whether rt, rotated but not revoked nor
// expired, may be presented again at now.
func (s *Server) withinReuseInterval(rt *store.RefreshToken, now time.Time) bool {
	return s.cfg.RefreshReuseInterval > 0 && !rt.RotatedAt.IsZero() && rt.RevokedAt.IsZero() &&
		now.Sub(rt.RotatedAt) <= s.cfg.RefreshReuseInterval && now.Before(rt.ExpiresAt)
}

func (s *Server) reuseEvent(r *http.Request, c *store.Client, rt *store.RefreshToken) *store.AuditEvent {
	return audit.NewRefreshReuse(s.meta(r).WithAgent(c), audit.RefreshFields{
		ClientID: rt.ClientID, UserID: rt.UserID, Resource: rt.Resource, Scopes: rt.Scopes, GrantID: rt.GrantID,
	})
}

// retireWithConsent handles a refresh token that ended because the consent
// behind it ended (its lifetime is capped at the longest consent): the
// expiry is recorded, and the grant revoked in the same transaction so that
// a client retrying the token records nothing more.
func (s *Server) retireWithConsent(ctx context.Context, r *http.Request, c *store.Client, rt *store.RefreshToken) error {
	snap, err := s.ledger.Snapshot(ctx, consent.Key{UserID: rt.UserID, ClientID: rt.ClientID, Resource: rt.Resource})
	if err != nil {
		return err
	}
	expired := snap.Expired(rt.Scopes)
	if len(expired) == 0 || len(snap.Live(rt.Scopes)) > 0 {
		return nil
	}
	ev := audit.NewConsentExpired(s.meta(r).WithAgent(c), audit.ConsentExpiredFields{
		ConsentKey: audit.ConsentKey{ClientID: rt.ClientID, UserID: rt.UserID, Resource: rt.Resource},
		Scopes:     expired, GrantID: rt.GrantID,
	})
	return s.st.RevokeGrant(ctx, rt.TenantID, rt.GrantID, s.now(), ev)
}
