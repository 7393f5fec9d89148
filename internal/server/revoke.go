package server

import (
	"errors"
	"net/http"
	"strings"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// handleRevoke is RFC 7009 token revocation. Unknown tokens, and tokens of
// other clients, answer 200 like revoked ones (§2.2), so the endpoint
// reveals nothing about tokens the caller does not own.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, raw, ok := s.tokenForm(w, r)
	if !ok {
		return
	}
	now := s.now()
	if looksLikeJWT(raw) {
		claims, err := s.keys.Verify(raw, s.issuer)
		if err == nil && claims.ClientID == c.ID && now.Unix() < claims.Expiry {
			at := &store.AccessToken{JTI: claims.JTI, TenantID: s.tenant, ClientID: c.ID, ExpiresAt: unixTime(claims.Expiry)}
			if claims.Subject != c.ID {
				at.UserID = claims.Subject
			}
			ev := audit.NewTokenRevoked(s.meta(r), audit.TokenRevokedFields{ClientID: c.ID, UserID: at.UserID, TokenType: audit.TokenTypeAccess, JTI: claims.JTI})
			if err := s.st.RevokeAccessToken(ctx, at, now, ev); err != nil {
				s.writeProtocolError(w, r, err)
				return
			}
		}
	} else {
		rt, err := s.st.GetRefreshToken(ctx, token.Hash(raw))
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			s.writeProtocolError(w, r, err)
			return
		case rt.ClientID == c.ID && rt.RevokedAt.IsZero():
			// RFC 7009 §2.1: revoking a refresh token revokes its grant's
			// access tokens too.
			ev := audit.NewTokenRevoked(s.meta(r), audit.TokenRevokedFields{ClientID: c.ID, UserID: rt.UserID, Resource: rt.Resource, TokenType: audit.TokenTypeRefresh, GrantID: rt.GrantID})
			if err := s.st.RevokeGrant(ctx, rt.TenantID, rt.GrantID, now, ev); err != nil {
				s.writeProtocolError(w, r, err)
				return
			}
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// handleIntrospect is RFC 7662 token introspection, for confidential
// clients (resource servers authenticate as such). Anything not active,
// or not the caller's business, is exactly {"active":false}.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, raw, ok := s.tokenForm(w, r)
	if !ok {
		return
	}
	if c.Public() {
		s.writeProtocolError(w, r, oauth.ErrInvalidClient("introspection requires a confidential client"))
		return
	}
	inactive := &oauth.IntrospectionResponse{}
	now := s.now()
	if looksLikeJWT(raw) {
		claims, err := s.keys.Verify(raw, s.issuer)
		if err != nil || now.Unix() >= claims.Expiry {
			oauth.WriteJSON(w, http.StatusOK, inactive)
			return
		}
		revoked, err := s.st.AccessTokenRevoked(ctx, claims.JTI)
		if err != nil {
			s.writeProtocolError(w, r, err)
			return
		}
		if revoked {
			oauth.WriteJSON(w, http.StatusOK, inactive)
			return
		}
		oauth.WriteJSON(w, http.StatusOK, &oauth.IntrospectionResponse{
			Active: true, Scope: claims.Scope, ClientID: claims.ClientID, TokenType: "Bearer",
			Exp: claims.Expiry, Iat: claims.IssuedAt, Sub: claims.Subject, Aud: claims.Audience, Iss: claims.Issuer, Jti: claims.JTI,
		})
		return
	}
	rt, err := s.st.GetRefreshToken(ctx, token.Hash(raw))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.writeProtocolError(w, r, err)
		return
	}
	// A refresh token is the business of its own client only.
	if err != nil || rt.ClientID != c.ID || !rt.Active(now) {
		oauth.WriteJSON(w, http.StatusOK, inactive)
		return
	}
	oauth.WriteJSON(w, http.StatusOK, &oauth.IntrospectionResponse{
		Active: true, Scope: oauth.FormatScope(rt.Scopes), ClientID: rt.ClientID, TokenType: "refresh_token",
		Exp: rt.ExpiresAt.Unix(), Iat: rt.CreatedAt.Unix(), Sub: rt.UserID, Aud: []string{rt.Resource}, Iss: s.issuer,
	})
}

func looksLikeJWT(s string) bool { return strings.Count(s, ".") == 2 }

// tokenForm parses a revocation or introspection request: the form, the
// authenticated client and the token parameter. It writes the error and
// returns ok false when any is missing or wrong.
func (s *Server) tokenForm(w http.ResponseWriter, r *http.Request) (c *store.Client, raw string, ok bool) {
	form, oe := oauth.ParseForm(r)
	if oe != nil {
		s.writeProtocolError(w, r, oe)
		return nil, "", false
	}
	ca, oe := oauth.ParseClientAuth(r, form)
	if oe != nil {
		s.writeProtocolError(w, r, oe)
		return nil, "", false
	}
	c, err := s.authenticateClient(r.Context(), ca)
	if err != nil {
		s.writeProtocolError(w, r, err)
		return nil, "", false
	}
	raw = form.Get("token")
	if raw == "" {
		s.writeProtocolError(w, r, oauth.ErrInvalidRequest("token is required"))
		return nil, "", false
	}
	return c, raw, true
}
