package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/consent"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// The token endpoint is one pipeline around the grant table (grant.go):
//
//  1. authenticate the client, before anything is consumed, so that a
//     client retrying with other credentials (x/oauth2 tries Basic, then
//     the body) still has its code;
//  2. find the grant type in the table and check the client may use it;
//  3. run the grant's hook, which proves the grant and returns an
//     authorization;
//  4. resolve the resource, find the subject alive, filter the scopes by
//     resource, ceiling, policy and consent, cap the lifetimes, mint, and
//     persist tokens, rotation, consent use and audit event in one store
//     call.

// handleToken is the token endpoint (RFC 6749 §3.2): the request is parsed
// once, then answered by the pipeline below.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	req, oe := oauth.ParseTokenRequest(r)
	if oe != nil {
		if m := s.cfg.Metrics; m != nil {
			m.countToken(unparsedGrant, oe)
		}
		s.writeProtocolError(w, r, oe)
		return
	}
	resp, err := s.tracedToken(r, req)
	if m := s.cfg.Metrics; m != nil {
		var typ string
		if g, known := s.grantFor(req); known {
			typ = g.typ
		}
		m.countToken(typ, err)
	}
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	oauth.WriteTokenResponse(w, resp)
}

// token answers a parsed token request.
func (s *Server) token(ctx context.Context, r *http.Request, req *oauth.TokenRequest) (*oauth.TokenResponse, error) {
	g, known := s.grantFor(req)
	c, err := s.tokenClient(r, g, req.Client)
	if err != nil {
		return nil, err
	}
	if !known {
		return nil, oauth.ErrUnsupportedGrantType("grant_type %q is not supported", truncate(req.GrantType, 80))
	}
	if c != nil && c.Pending() {
		// Quarantine: a client held for an admin's review gets nothing.
		return nil, errClientPending
	}
	if c != nil {
		if err := g.admit(c); err != nil {
			return nil, err
		}
	}
	a, err := g.prove(s, ctx, r, c, req)
	if err != nil {
		return nil, err
	}
	if c == nil && a.client != nil {
		// The grant identified the agent itself (a workload JWT): it is
		// held to every rule an authenticated client is.
		c = a.client
		if c.Pending() {
			return nil, errClientPending
		}
		if err := g.admit(c); err != nil {
			return nil, err
		}
	}
	if c == nil {
		return nil, oauth.ErrInvalidClient("client authentication is required")
	}
	if err := a.check(); err != nil {
		return nil, err
	}
	if a.answer != nil {
		return a.answer, nil
	}
	return s.issue(ctx, r, g.typ, c, a)
}

// tokenClient authenticates the client of a token request: always when the
// grant asks for it, and for a grant type the table does not know (so that
// bad credentials are reported first, RFC 6749 §5.2); otherwise only when
// the request names a client.
func (s *Server) tokenClient(r *http.Request, g *grant, ca oauth.ClientAuth) (*store.Client, error) {
	if g != nil && !g.clientAuth && ca.ClientID == "" && ca.Assertion == "" {
		return nil, nil
	}
	return s.authenticateClient(r, ca)
}

// consentLimit is how the person's consent limits one issuance: only live
// consent is issued on, and no token outlives the consent behind it.
type consentLimit interface {
	live(scopes []string) []string
	// expired are the scopes of asked and of the grant whose consent ran out.
	expired(asked, grantScopes []string) []string
	accessExpiry(scopes []string, exp time.Time) time.Time
	refreshExpiry(scopes []string, exp time.Time) time.Time
}

// noConsent limits nothing: the token rests on no person's consent.
type noConsent struct{}

func (noConsent) live(scopes []string) []string                     { return scopes }
func (noConsent) expired(_, _ []string) []string                    { return nil }
func (noConsent) accessExpiry(_ []string, exp time.Time) time.Time  { return exp }
func (noConsent) refreshExpiry(_ []string, exp time.Time) time.Time { return exp }

// personConsent is the consent of the person a token is about, as it
// stands at the moment of minting.
type personConsent struct{ snap *consent.Snapshot }

func (c personConsent) live(scopes []string) []string { return c.snap.Live(scopes) }
func (c personConsent) expired(asked, grantScopes []string) []string {
	return c.snap.Expired(append(slices.Clone(asked), grantScopes...))
}
func (c personConsent) accessExpiry(scopes []string, exp time.Time) time.Time {
	return c.snap.AccessExpiry(scopes, exp)
}
func (c personConsent) refreshExpiry(scopes []string, exp time.Time) time.Time {
	return c.snap.RefreshExpiry(scopes, exp)
}

// consentLimit reads the consent an authorization rests on, judged now.
func (s *Server) consentLimit(ctx context.Context, a *authorization, p *principal, res *store.Resource) (consentLimit, error) {
	if !a.consent {
		return noConsent{}, nil
	}
	snap, err := s.ledger.Snapshot(ctx, consent.Key{UserID: p.userID(), ClientID: p.client.ID, Resource: res.URI})
	if err != nil {
		return nil, err
	}
	return personConsent{snap}, nil
}

// issue is the shared issuance pipeline after the hook: the resource is
// resolved, the subject found alive, the scopes asked pass the resource's
// scope list, the client's ceiling, the central policy and the person's
// live consent, then the token is minted and persisted with its audit event
// in one transaction.
func (s *Server) issue(ctx context.Context, r *http.Request, grantType string, c *store.Client, a *authorization) (*oauth.TokenResponse, error) {
	now := s.now()
	res, oe := s.resolveResource(ctx, c, a.resource, a.scopes)
	if oe != nil {
		return nil, oe
	}
	p, err := s.checkSubject(ctx, c, a.subject)
	if err != nil {
		return nil, err
	}
	asked, oe := scopesOnResource(c, res, a.scopes)
	if oe != nil {
		return nil, oe
	}
	granted, decision, err := s.decideScopes(ctx, r, grantType, &p, res, asked)
	if err != nil {
		return nil, err
	}
	// The person's consent, judged at the moment of minting: only scopes
	// consented and unexpired now are issued, and no token outlives the
	// consent behind it.
	limit, err := s.consentLimit(ctx, a, &p, res)
	if err != nil {
		return nil, err
	}
	refreshScopes := a.family.scopes
	if refreshScopes == nil {
		refreshScopes = asked
	}
	expired := limit.expired(asked, refreshScopes)
	// A refresh token stops carrying what the person no longer consents to.
	refreshScopes = limit.live(refreshScopes)
	policyGranted := granted
	granted = limit.live(granted)
	if len(granted) < len(policyGranted) {
		withoutConsent(&decision, granted)
	}
	if len(granted) == 0 {
		return nil, s.refuse(ctx, r, grantType, &p, res, a.family.id, asked, decision, expired, len(policyGranted) > 0)
	}

	exp := limit.accessExpiry(granted, now.Add(s.accessTTL(res)))
	if !a.notAfter.IsZero() && exp.After(a.notAfter) {
		exp = a.notAfter
	}
	claims := &token.AccessClaims{
		Issuer:   s.issuer,
		Subject:  p.sub(),
		Audience: []string{res.URI},
		ClientID: c.ID,
		Scope:    oauth.FormatScope(append(slices.Clone(a.oidc), granted...)),
		JTI:      token.NewJTI(now, s.rand),
		IssuedAt: now.Unix(),
		Expiry:   exp.Unix(),
		Act:      a.act(),
	}
	if !p.authTime.IsZero() {
		claims.AuthTime = p.authTime.Unix()
	}
	if p.user != nil {
		// The claims about the person this resource opted into, from the
		// user as stored now: a refresh carries their current groups.
		claims.UserClaims = store.UserClaimsFor(p.user, res.UserClaims)
	}
	jwt, err := s.keys.Mint(claims)
	if err != nil {
		return nil, err
	}
	ev := audit.NewTokenIssued(s.meta(r).WithAgent(c), audit.TokenIssuedFields{
		ClientID: c.ID, UserID: p.userID(), Resource: res.URI, Scopes: granted,
		GrantType: grantType, JTI: claims.JTI, Policy: decision,
		AuthMethod: c.TokenEndpointAuthMethod, AuthAge: p.authAge(now),
		Chain: chainSubjects(a.act()), SubjectJTI: a.subjectJTI,
	})
	iss := &store.Issuance{
		AccessToken: &store.AccessToken{JTI: claims.JTI, TenantID: s.tenant, GrantID: a.family.id, ClientID: c.ID, UserID: p.userID(), Resource: res.URI, Scopes: granted, RedirectURI: a.family.installation, ExpiresAt: exp, Digest: token.Hash(jwt)},
		Events:      []*store.AuditEvent{ev},
	}
	if a.consent {
		iss.ConsentUse = &store.ConsentUse{Filter: store.ConsentFilter{TenantID: s.tenant, UserID: p.userID(), ClientID: c.ID, Resource: res.URI}, Scopes: granted, At: now}
	}
	if len(expired) > 0 {
		iss.Events = append(iss.Events, s.expiredEvent(r, &p, res, a.family.id, expired))
	}
	resp := &oauth.TokenResponse{AccessToken: jwt, TokenType: oauth.TokenTypeBearer, ExpiresIn: int64(exp.Sub(now) / time.Second), Scope: claims.Scope, IssuedTokenType: a.issuedTokenType}
	if resp.IDToken, err = s.idToken(now, exp, c, &p, a, jwt); err != nil {
		return nil, err
	}
	rt, handle, err := s.refreshToken(now, exp, c, &p, res, a, limit, refreshScopes)
	if err != nil {
		return nil, err
	}
	if rt != nil {
		iss.RefreshToken, resp.RefreshToken = rt, handle
	}
	// The client's last use, which keeps a self-registered client from
	// expiring, moves forward at most about hourly (gov.go).
	iss.Touch = s.touch(c, now)
	if a.family.exchanged {
		iss.SubjectJTI = a.subjectJTI
	}
	if err := s.persist(ctx, r, now, &p, res, a.family, iss); err != nil {
		return nil, err
	}
	s.touched(iss.Touch)
	return resp, nil
}

// refreshToken returns the refresh token to issue beside an access token
// expiring at accessExp, and its handle, or nil when none may be issued: the
// grant must allow one and the client be registered for the refresh_token
// grant. A refresh token carries scopes, the grant's scopes the person
// still consents to, and never outlives the longest consent behind them.
// When that ends no later than the access token ("only for this session")
// there is nothing to refresh and none is issued, except as the successor
// of a rotated one: a client keeps its old refresh token when the response
// carries none (RFC 6749 §6), and presenting that one again would look like
// theft.
func (s *Server) refreshToken(now, accessExp time.Time, c *store.Client, p *principal, res *store.Resource, a *authorization, limit consentLimit, scopes []string) (*store.RefreshToken, string, error) {
	if !a.refresh || !slices.Contains(c.GrantTypes, oauth.GrantRefreshToken) {
		return nil, "", nil
	}
	exp := limit.refreshExpiry(scopes, now.Add(s.cfg.RefreshTokenTTL))
	if !exp.After(accessExp) && a.family.rotate == nil {
		return nil, "", nil
	}
	handle, err := token.NewHandle(s.rand, "")
	if err != nil {
		return nil, "", err
	}
	return &store.RefreshToken{
		Hash: token.Hash(handle), TenantID: s.tenant, GrantID: a.family.id, ClientID: c.ID, UserID: p.userID(),
		Scopes: append(slices.Clone(a.family.oidc), scopes...), Resource: res.URI, RedirectURI: a.family.installation, AuthTime: p.authTime, CreatedAt: now, ExpiresAt: exp,
	}, handle, nil
}

// persist writes an issuance in one store call: a rotation retires the
// refresh token it continues in the same transaction. The same transaction
// finds the client and the user alive (store.LiveCheck): the client cache
// of the token path cannot let a token out for a client or user deleted or
// disabled a moment ago.
func (s *Server) persist(ctx context.Context, r *http.Request, now time.Time, p *principal, res *store.Resource, f family, iss *store.Issuance) error {
	iss.Check = &store.LiveCheck{TenantID: s.tenant, ClientID: p.client.ID, UserID: p.userID()}
	var err error
	if f.rotate == nil {
		err = s.st.IssueTokens(ctx, iss)
		if iss.SubjectJTI != "" && (errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrRevoked)) {
			// The subject token's record, checked as the token is written.
			if errors.Is(err, store.ErrNotFound) {
				return oauth.ErrInvalidGrant("the subject token is not known to this server")
			}
			return oauth.ErrInvalidGrant("the subject token was revoked")
		}
		if errors.Is(err, store.ErrAlreadyUsed) {
			// The code was replayed while this exchange was in flight.
			return oauth.ErrInvalidGrant("the authorization code was already used")
		}
	} else {
		fields := audit.RefreshFields{ClientID: p.client.ID, UserID: p.userID(), Resource: res.URI, GrantID: f.id}
		iss.Events = append(iss.Events, audit.NewRefreshRotated(s.meta(r).WithAgent(p.client), fields))
		if s.cfg.RefreshReuseInterval > 0 {
			// The refresh reuse interval (docs/tokens.md): a token rotated
			// since then, and still its family's most recent rotation, is
			// accepted again from its client with a sibling successor;
			// nothing else is retired. Set even for a token that looked
			// current: a concurrent refresh may rotate it first.
			iss.Reuse = &store.ReuseInterval{
				Since: now.Add(-s.cfg.RefreshReuseInterval),
				Event: audit.NewRefreshReusedWithinInterval(s.meta(r).WithAgent(p.client), fields, f.rotate.RotatedAt),
			}
		}
		err = s.st.RotateRefresh(ctx, f.rotate.Hash, now, iss, s.reuseEvent(r, p.client, f.rotate))
		if errors.Is(err, store.ErrAlreadyUsed) || errors.Is(err, store.ErrNotFound) {
			return oauth.ErrInvalidGrant("the refresh token is no longer valid")
		}
	}
	switch {
	case errors.Is(err, store.ErrClientGone):
		return errClientAuth.WithCause(err)
	case errors.Is(err, store.ErrUserGone):
		return oauth.ErrInvalidGrant("the user is disabled or no longer exists")
	}
	return err
}

// withoutConsent marks the verdicts of scopes the policy allowed but the
// person's consent does not cover (any not in live).
func withoutConsent(d *audit.Decision, live []string) {
	for i := range d.Scopes {
		v := &d.Scopes[i]
		if v.Allowed && !slices.Contains(live, v.Scope) {
			v.Allowed, v.Reason, v.PolicyIDs, v.Errors = false, audit.ReasonConsent, nil, nil
		}
	}
}

// refuse records an issuance that has no scope left to grant and returns
// the error to answer. When the policy allowed scopes that the person's
// consent no longer covers, the grant itself is no longer valid.
func (s *Server) refuse(ctx context.Context, r *http.Request, grantType string, p *principal, res *store.Resource, familyID string, asked []string, decision audit.Decision, expired []string, policyAllowed bool) error {
	ev := audit.NewTokenDenied(s.meta(r).WithAgent(p.client), audit.TokenDeniedFields{
		ClientID: p.client.ID, UserID: p.userID(), Resource: res.URI, Scopes: asked, GrantType: grantType, Policy: decision,
		Chain: chainSubjects(p.act),
	})
	events := []*store.AuditEvent{ev}
	if len(expired) > 0 {
		events = append(events, s.expiredEvent(r, p, res, familyID, expired))
	}
	// Both events in one transaction: the refusal and the consent expiry
	// it found are recorded together or not at all.
	if err := s.st.AppendAudit(ctx, events...); err != nil {
		return err
	}
	if policyAllowed {
		return oauth.ErrInvalidGrant("the user's consent for the requested scopes has expired or was revoked")
	}
	return oauth.ErrInvalidScope("none of the requested scopes may be granted")
}

// expiredEvent records that the consent behind scopes ran out, found when a
// token request had to drop them.
func (s *Server) expiredEvent(r *http.Request, p *principal, res *store.Resource, familyID string, scopes []string) *store.AuditEvent {
	return audit.NewConsentExpired(s.meta(r).WithAgent(p.client), audit.ConsentExpiredFields{
		ConsentKey: audit.ConsentKey{ClientID: p.client.ID, UserID: p.userID(), Resource: res.URI},
		Scopes:     scopes, GrantID: familyID,
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func unixTime(sec int64) time.Time { return time.Unix(sec, 0) }
