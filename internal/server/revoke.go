package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
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
			ev := audit.NewTokenRevoked(s.meta(r).WithAgent(c), audit.TokenRevokedFields{ClientID: c.ID, UserID: at.UserID, TokenType: audit.TokenTypeAccess, JTI: claims.JTI})
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
			ev := audit.NewTokenRevoked(s.meta(r).WithAgent(c), audit.TokenRevokedFields{ClientID: c.ID, UserID: rt.UserID, Resource: rt.Resource, TokenType: audit.TokenTypeRefresh, GrantID: rt.GrantID})
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
// clients. Following §4, a caller learns about a token only when it is the
// token's business: an access token is shown to the client it was issued
// to and to the resource server of its audience (the client linked to the
// resource, DESIGN §4a); a refresh token to its own client only. Anything
// not active, or not the caller's business, is exactly {"active":false},
// so the answer never tells a stranger whether a token exists.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	c, raw, ok := s.tokenForm(w, r)
	if !ok {
		return
	}
	if c.Public() {
		s.writeProtocolError(w, r, oauth.ErrInvalidClient("introspection requires a confidential client"))
		return
	}
	body, err := s.introspect(r, c, raw)
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	if body == nil {
		body = inactiveBody
	}
	oauth.WriteIntrospectionBody(w, body)
}

// inactiveBody is the whole answer about a token that is not active or not
// the caller's business (RFC 7662 §2.2).
var inactiveBody = []byte("{\"active\":false}\n")

// introspect answers (the body, as oauth.IntrospectionBody writes it) for
// an active token the caller may see, and nil for anything else.
func (s *Server) introspect(r *http.Request, c *store.Client, raw string) ([]byte, error) {
	ctx := r.Context()
	now := s.now()
	if looksLikeJWT(raw) {
		return s.introspectAccess(r, c, raw, now)
	}
	rt, err := s.st.GetRefreshToken(ctx, token.Hash(raw))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// A refresh token is presented to the hub only, so it is the business
	// of its own client alone, never of a resource server.
	if rt.ClientID != c.ID || rt.TenantID != s.tenant || !rt.Active(now) {
		return nil, nil
	}
	if alive, err := s.alive(ctx, rt.ClientID, rt.UserID); err != nil || !alive {
		return nil, err
	}
	return oauth.IntrospectionBody(&oauth.IntrospectionResponse{
		Active: true, Scope: oauth.FormatScope(rt.Scopes), ClientID: rt.ClientID, TokenType: "refresh_token",
		Exp: rt.ExpiresAt.Unix(), Iat: rt.CreatedAt.Unix(), Sub: rt.UserID, Aud: []string{rt.Resource}, Iss: s.issuer,
	})
}

// introspectAccess is introspect for an access token of this hub.
func (s *Server) introspectAccess(r *http.Request, c *store.Client, raw string, now time.Time) ([]byte, error) {
	ctx := r.Context()
	digest := sha256.Sum256([]byte(raw))
	claims, standing, memo, err := s.verifyIntrospected(ctx, raw, &digest)
	if err != nil || now.Unix() >= claims.Expiry {
		return nil, nil
	}
	if visible, err := s.mayIntrospect(ctx, c, claims.ClientID, claims.Audience); err != nil || !visible {
		return nil, err
	}
	userID := ""
	if claims.Subject != claims.ClientID {
		userID = claims.Subject
	}
	var reason string
	if standing != nil && standing.TenantID == s.tenant && standing.ClientID == claims.ClientID && standing.UserID == userID {
		reason, err = s.inactiveStanding(ctx, standing, claims.Act)
	} else {
		reason, err = s.inactive(ctx, claims.JTI, claims.ClientID, userID, claims.Act)
	}
	if err != nil {
		return nil, err
	}
	if reason != "" {
		// The token is the caller's business and would be active but
		// for this: the trail records who kept presenting it.
		return nil, s.recordInactive(r, c, claims, userID, reason)
	}
	if memo != nil {
		s.introMemo.hits.Add(1)
		return memo.body, nil
	}
	resp := &oauth.IntrospectionResponse{
		Active: true, Scope: claims.Scope, ClientID: claims.ClientID, TokenType: "Bearer",
		Exp: claims.Expiry, Iat: claims.IssuedAt, Sub: claims.Subject, Aud: claims.Audience, Iss: claims.Issuer, Jti: claims.JTI,
	}
	// The delegation chain travels with the token (RFC 8693 §4.1): a
	// resource server that introspects sees who acts, as one that
	// verifies the JWT does.
	if claims.Act != nil {
		if resp.Act, err = json.Marshal(claims.Act); err != nil {
			return nil, err
		}
	}
	if claims.MayAct != nil {
		if resp.MayAct, err = json.Marshal(claims.MayAct); err != nil {
			return nil, err
		}
	}
	// The user claims the token carries for its resource, as a
	// resource server verifying the JWT would read them.
	if resp.Extra, err = token.UserClaimsOf(raw); err != nil {
		return nil, err
	}
	body, err := oauth.IntrospectionBody(resp)
	if err != nil {
		return nil, err
	}
	if standing != nil && token.EqualHash(standing.Digest, digest[:]) {
		// Accepted by its record: what these bytes say is kept.
		s.introMemo.put(&digest, &introEntry{claims: claims, body: body}, now.Unix())
	}
	return body, nil
}

// verifyIntrospected verifies an access token of this hub for
// introspection, reading its record and its client's and user's standing
// in one statement (store.AccessTokenStanding) on the way: a token whose
// SHA-256 (digest) is the one recorded at minting is byte for byte what
// the hub signed, so its signature is not checked again
// (token.Keys.VerifyRecorded, which still refuses a token of a key no
// longer in the key set); any other is verified by its signature. standing
// is the read, nil when none was made or found; it is of the verified
// token's jti. A token in the memo (introMemo) is not decoded again: its
// header is checked against the key set and its record read and compared
// as VerifyRecorded would, and memo is its entry. Nothing about the
// token's standing is remembered between requests: every introspection
// reads its revocation and its parties' standing as they are at that
// moment.
func (s *Server) verifyIntrospected(ctx context.Context, raw string, digest *[sha256.Size]byte) (claims *token.AccessClaims, standing *store.TokenStanding, memo *introEntry, err error) {
	if e := s.introMemo.get(digest); e != nil && s.keys.MintedHeader(raw) {
		ts, err := s.st.AccessTokenStanding(ctx, e.claims.JTI)
		if err == nil && ts.JTI == e.claims.JTI && token.EqualHash(ts.Digest, digest[:]) {
			return e.claims, ts, e, nil
		}
		// No record vouches for it now (or none could be read): judged
		// afresh, as a token never seen.
	}
	claims, err = s.keys.VerifyRecorded(raw, s.issuer, func(jti string) []byte {
		ts, err := s.st.AccessTokenStanding(ctx, jti)
		if err != nil {
			// Not found, or unreadable now: the signature decides, and
			// the reads of inactive follow.
			return nil
		}
		standing = ts
		return ts.Digest
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if standing != nil && standing.JTI != claims.JTI {
		standing = nil
	}
	return claims, standing, nil, nil
}

// inactive says why an unexpired access token of this hub is no longer
// active (an audit.Inactive reason), or "" when it is.
func (s *Server) inactive(ctx context.Context, jti, clientID, userID string, act *token.Actor) (string, error) {
	if revoked, err := s.st.AccessTokenRevoked(ctx, jti); err != nil || revoked {
		return audit.InactiveRevoked, err
	}
	if alive, err := s.alive(ctx, clientID, userID); err != nil || !alive {
		if err != nil || userID == "" {
			return audit.InactiveClientGone, err
		}
		// Which of the two: the client alone decides.
		if alive, err := s.alive(ctx, clientID, ""); err != nil || !alive {
			return audit.InactiveClientGone, err
		}
		return audit.InactiveUserGone, nil
	}
	return s.actorsInactive(ctx, act)
}

// inactiveStanding is inactive for a token whose record and parties were
// read together (ts, of the token's own client and user): the same
// answers from one read.
func (s *Server) inactiveStanding(ctx context.Context, ts *store.TokenStanding, act *token.Actor) (string, error) {
	if !ts.RevokedAt.IsZero() {
		return audit.InactiveRevoked, nil
	}
	if alive, err := s.clientStands(ctx, ts.ClientID, ts.Client); err != nil || !alive {
		return audit.InactiveClientGone, err
	}
	if ts.UserID != "" && (!ts.User.Found || ts.User.Disabled) {
		return audit.InactiveUserGone, nil
	}
	return s.actorsInactive(ctx, act)
}

// actorsInactive is inactive's answer for the delegation chain.
func (s *Server) actorsInactive(ctx context.Context, act *token.Actor) (string, error) {
	if alive, err := s.actorsAlive(ctx, act); err != nil || !alive {
		return audit.InactiveActorDisabled, err
	}
	return "", nil
}

// recordInactive writes token.introspected_inactive for a token the
// resource server c presented and the hub no longer considers active.
func (s *Server) recordInactive(r *http.Request, c *store.Client, claims *token.AccessClaims, userID, reason string) error {
	m := s.meta(r)
	if tc, err := s.st.GetClient(r.Context(), s.tenant, claims.ClientID); err == nil {
		m = m.WithAgent(tc)
	}
	resource := ""
	if len(claims.Audience) > 0 {
		resource = claims.Audience[0]
	}
	return s.st.AppendAudit(r.Context(), audit.NewTokenIntrospectedInactive(m, audit.TokenIntrospectedInactiveFields{
		ClientID: claims.ClientID, UserID: userID, Resource: resource, Scopes: strings.Fields(claims.Scope),
		JTI: claims.JTI, Chain: chainSubjects(claims.Act), IntrospectingClient: c.ID, Reason: reason,
	}))
}

// alive reports whether the client, and the user when userID is set, still
// exist and are enabled. It reads the store, not the token path's client
// cache: a token of a client or user disabled a moment ago is inactive at
// once, whatever revocation has reached yet.
func (s *Server) alive(ctx context.Context, clientID, userID string) (bool, error) {
	c, err := s.st.GetClient(ctx, s.tenant, clientID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	standing := store.Standing{Found: true, Disabled: c.Disabled, Status: c.Status, RegistrationMethod: c.RegistrationMethod}
	if alive, err := s.clientStands(ctx, c.ID, standing); err != nil || !alive {
		return false, err
	}
	if userID == "" {
		return true, nil
	}
	u, err := s.st.GetUser(ctx, s.tenant, userID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil || u.Disabled {
		return false, err
	}
	return true, nil
}

// clientStands reports whether the client clientID, of this standing, may
// still hold tokens: it exists, is enabled and not pending approval, and,
// for a metadata-document client, its domain is not blocked.
func (s *Server) clientStands(ctx context.Context, clientID string, c store.Standing) (bool, error) {
	if !c.Found || c.Disabled || c.Status == store.ClientPending {
		return false, nil
	}
	if c.RegistrationMethod == store.RegistrationCIMD {
		// A metadata-document client whose domain the administrator has
		// blocked since the token was issued holds nothing any more.
		domains, err := s.domains.get("", func() ([]*store.Domain, error) { return s.st.ListDomains(ctx, s.tenant) })
		if err != nil {
			return false, err
		}
		if clients.DomainTrust(domains, documentHost(clientID)) == store.DomainBlocked {
			return false, nil
		}
	}
	return true, nil
}

// actorsAlive reports whether every actor of a delegation chain that is a
// client of this hub still exists and is enabled, as the exchange that
// minted the token required (chainAlive). A delegated token's client is
// the last resource server that exchanged it, so disabling the agent the
// person authorized, or an earlier hop, revokes none of the tokens
// exchanged downstream: only their chain names it. Actors named by
// another issuer are that issuer's business.
func (s *Server) actorsAlive(ctx context.Context, chain *token.Actor) (bool, error) {
	for a := chain; a != nil; a = a.Actor {
		if a.Issuer != "" && a.Issuer != s.issuer {
			continue
		}
		if alive, err := s.alive(ctx, a.Subject, ""); err != nil || !alive {
			return false, err
		}
	}
	return true, nil
}

// mayIntrospect reports whether caller may see an access token issued to
// clientID for audience (RFC 7662 §4): it was issued to the caller, or the
// caller is the resource server of one of its audiences.
func (s *Server) mayIntrospect(ctx context.Context, caller *store.Client, clientID string, audience []string) (bool, error) {
	if clientID == caller.ID {
		return true, nil
	}
	for _, aud := range audience {
		res, err := s.resources.get(aud, func() (*store.Resource, error) { return s.st.GetResource(ctx, s.tenant, aud) })
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if res.ClientID != "" && res.ClientID == caller.ID {
			return true, nil
		}
	}
	return false, nil
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
	c, err := s.authenticateClient(r, ca)
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
