package server

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// The hub as an enterprise IdP (MCP enterprise-managed authorization,
// draft-ietf-oauth-identity-assertion-authz-grant): a client that signed a
// person in with OpenID Connect exchanges the ID token the hub gave it
// (RFC 8693, requested_token_type id-jag, subject_token_type id_token) for
// an Identity Assertion JWT Authorization Grant to another authorization
// server, which turns it into an access token with the jwt-bearer grant and
// no consent screen. Which client may reach which authorization server,
// resource and scopes is the administrator's IdentityAssertions
// configuration, then the policy's exchange action.
//
// An ID-JAG is not an access token of this hub: nothing is recorded but
// the audit event, no refresh token is issued, and its typ
// (oauth-id-jag+jwt) is one no verifier of this hub accepts, so the hub
// never takes an assertion it issued for a grant of its own.

// defaultIDJAGLifetime is how long an ID-JAG is valid unless configured.
const defaultIDJAGLifetime = 5 * time.Minute

// IdentityAssertions configures ID-JAG issuance. With no Targets none is
// issued and the metadata does not advertise it.
type IdentityAssertions struct {
	// Lifetime of an ID-JAG (default 5m; never more than the keys'
	// MaxTokenTTL).
	Lifetime time.Duration
	Targets  []IdentityTarget
}

// IdentityTarget is one authorization server ID-JAGs may be issued for.
type IdentityTarget struct {
	// Audience is its issuer identifier, compared exactly.
	Audience string
	// Resources are the resources at it an ID-JAG may name.
	Resources []string
	// Claims are the user claims disclosed besides sub:
	// preferred_username, email (with email_verified), name.
	Claims  []string
	Clients []IdentityClient
}

// IdentityClient lets a client of the hub obtain ID-JAGs for a target.
type IdentityClient struct {
	// ClientID is the client at this hub; RemoteClientID the same client
	// at the target (the ID-JAG's client_id claim).
	ClientID, RemoteClientID string
	// Scopes the client may carry to the target.
	Scopes []string
}

// identityChainingTypes is identity_chaining_requested_token_types_supported
// while targets are configured.
func (s *Server) identityChainingTypes() []string {
	if len(s.cfg.IdentityAssertions.Targets) == 0 {
		return nil
	}
	if _, ok := s.grant(oauth.GrantTokenExchange); !ok {
		return nil
	}
	return []string{oauth.TokenTypeIDJAG}
}

// identityTarget finds the target with audience aud and the entry of
// clientID in it.
func (s *Server) identityTarget(aud, clientID string) (*IdentityTarget, *IdentityClient, *oauth.Error) {
	ts := s.cfg.IdentityAssertions.Targets
	i := slices.IndexFunc(ts, func(t IdentityTarget) bool { return t.Audience == aud })
	if i < 0 {
		return nil, nil, oauth.ErrInvalidTarget("the hub issues no identity assertion for this audience")
	}
	t := &ts[i]
	j := slices.IndexFunc(t.Clients, func(c IdentityClient) bool { return c.ClientID == clientID })
	if j < 0 {
		return nil, nil, oauth.ErrInvalidTarget("the client may not obtain identity assertions for this audience")
	}
	return t, &t.Clients[j], nil
}

// targetResource is the resource an ID-JAG names: the one requested, which
// must be one of the target's, or without one the target's only resource.
func targetResource(t *IdentityTarget, requested []string) (string, *oauth.Error) {
	switch {
	case len(requested) > 1:
		return "", oauth.ErrInvalidTarget("an identity assertion names one resource")
	case len(requested) == 1:
		if !slices.Contains(t.Resources, requested[0]) {
			return "", oauth.ErrInvalidTarget("the resource is not one this audience's identity assertions may name")
		}
		return requested[0], nil
	case len(t.Resources) == 1:
		return t.Resources[0], nil
	}
	return "", oauth.ErrInvalidRequest("resource is required: the audience has several resources")
}

// wantsIDJAG selects the token exchanges for an ID-JAG
// (requested_token_type id-jag): their row of the grant table.
func wantsIDJAG(_ *Server, req *oauth.TokenRequest) bool {
	return req.RequestedTokenType == oauth.TokenTypeIDJAG
}

// proveIDJAGExchange answers a token exchange for an ID-JAG (its own row
// of the grant table, selected by wantsIDJAG). The pipeline
// already authenticated the client, found it registered for token exchange
// and confidential; this checks the subject ID token, the configuration,
// the person and the policy, mints the assertion, records the audit event
// and returns the answer, which the pipeline sends as is.
func (s *Server) proveIDJAGExchange(ctx context.Context, r *http.Request, c *store.Client, req *oauth.TokenRequest) (*authorization, error) {
	if req.SubjectTokenType != oauth.TokenTypeIDToken {
		return nil, oauth.NewError(oauth.CodeUnsupportedTokenType, "an identity assertion is issued for an ID token (subject_token_type %s) only", oauth.TokenTypeIDToken)
	}
	if req.ActorToken != "" {
		return nil, oauth.ErrInvalidRequest("actor_token is not supported for identity assertions")
	}
	if len(req.Audiences) != 1 || req.Audiences[0] == "" {
		return nil, oauth.ErrInvalidRequest("audience is required once: the issuer of the target authorization server")
	}
	target, tc, oe := s.identityTarget(req.Audiences[0], c.ID)
	if oe != nil {
		return nil, oe
	}
	resource, oe := targetResource(target, req.Resources)
	if oe != nil {
		return nil, oe
	}
	now := s.now()
	id, err := s.keys.VerifyIDToken(req.SubjectToken, s.issuer)
	if err != nil {
		return nil, oauth.ErrInvalidGrant("the subject token is not an ID token of this hub")
	}
	if id.Audience != c.ID {
		// The IdP's duty: only the client the person signed in to
		// may exchange the ID token.
		return nil, oauth.ErrInvalidGrant("the ID token was not issued to this client")
	}
	if now.Unix() >= id.Expiry {
		return nil, oauth.ErrInvalidGrant("the ID token has expired")
	}
	var authTime time.Time
	if id.AuthTime != 0 {
		authTime = unixTime(id.AuthTime)
	}
	p, err := s.checkSubject(ctx, c, userSubject(id.Subject, authTime))
	if err != nil {
		return nil, err
	}
	asked := targetScopes(req.Scopes, tc.Scopes)
	if len(asked) == 0 {
		return nil, oauth.ErrInvalidScope("none of the requested scopes may be carried to this audience")
	}
	fields := audit.IdentityAssertionFields{ClientID: c.ID, UserID: p.userID(), Audience: target.Audience, Resource: resource, RemoteClientID: tc.RemoteClientID}
	granted, decision, err := s.decideIDJAGScopes(ctx, r, &p, resource, asked)
	if err != nil {
		return nil, err
	}
	if len(granted) == 0 {
		fields.Scopes, fields.Policy = asked, decision
		if err := s.st.AppendAudit(ctx, audit.NewIdentityAssertionDenied(s.meta(r).WithAgent(c), fields)); err != nil {
			return nil, err
		}
		return nil, oauth.ErrInvalidScope("none of the requested scopes may be granted")
	}

	lifetime := s.cfg.IdentityAssertions.Lifetime
	if lifetime <= 0 {
		lifetime = defaultIDJAGLifetime
	}
	exp := now.Add(lifetime)
	claims := &token.IDJAGClaims{
		Issuer: s.issuer, Subject: p.sub(), Audience: target.Audience, ClientID: tc.RemoteClientID,
		JTI: token.NewID(s.rand), IssuedAt: now.Unix(), Expiry: exp.Unix(),
		Resource: resource, Scope: oauth.FormatScope(granted),
	}
	if !p.authTime.IsZero() {
		claims.AuthTime = p.authTime.Unix()
	}
	discloseClaims(claims, p.user, target.Claims)
	jag, err := s.keys.MintIDJAG(claims)
	if err != nil {
		return nil, err
	}
	fields.Scopes, fields.JTI, fields.ExpiresAt, fields.Policy = granted, claims.JTI, exp, decision
	iss := &store.Issuance{Events: []*store.AuditEvent{audit.NewIdentityAssertionIssued(s.meta(r).WithAgent(c), fields)}, Touch: s.touch(c, now)}
	// persist finds client and person alive in the audit event's
	// transaction; with no token and no rotation it needs no resource.
	if err := s.persist(ctx, r, now, &p, nil, family{}, iss); err != nil {
		return nil, err
	}
	s.touched(iss.Touch)
	return &authorization{answer: &oauth.TokenResponse{
		AccessToken: jag, TokenType: oauth.TokenTypeNA, ExpiresIn: int64(exp.Sub(now) / time.Second),
		Scope: claims.Scope, IssuedTokenType: oauth.TokenTypeIDJAG,
	}}, nil
}

// targetScopes are the scopes asked for an ID-JAG: the requested ones the
// client may carry to the target, in request order, or all of those when
// none is requested.
func targetScopes(requested, allowed []string) []string {
	if len(requested) == 0 {
		return slices.Clone(allowed)
	}
	var out []string
	for _, sc := range requested {
		if slices.Contains(allowed, sc) && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// decideIDJAGScopes asks the policy's exchange action about each scope,
// with the target resource as the resource (it is not one of the hub's,
// so no scope is known to be sensitive).
func (s *Server) decideIDJAGScopes(ctx context.Context, r *http.Request, p *principal, resource string, scopes []string) ([]string, audit.Decision, error) {
	now := s.now()
	asked := make([]policy.Scope, len(scopes))
	for i, sc := range scopes {
		asked[i] = policy.Scope{Name: sc}
	}
	req := &policy.Request{
		Action:   policy.ActionExchange,
		TenantID: s.tenant,
		Resource: policy.Resource{URI: resource, Name: resource, TenantID: s.tenant},
		Scopes:   asked,
		Context:  policy.Context{GrantType: oauth.GrantTokenExchange, IP: clientIP(r), Time: now, Resource: resource, AuthMethod: p.client.TokenEndpointAuthMethod},
	}
	p.describe(req, now)
	results, err := s.decideAs(ctx, req, policy.ActionExchange)
	if err != nil {
		return nil, audit.Decision{}, err
	}
	res := results[0]
	return res.Granted, res.Audit(), nil
}

// discloseClaims adds the user claims the target may see.
func discloseClaims(c *token.IDJAGClaims, u *store.User, which []string) {
	for _, name := range which {
		switch name {
		case "preferred_username":
			c.PreferredUsername = u.Username
		case "email":
			if u.Email != "" {
				c.Email = u.Email
				v := u.EmailVerified
				c.EmailVerified = &v
			}
		case "name":
			c.Name = u.Name
		}
	}
}
