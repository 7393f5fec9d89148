package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/consent"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// grant is what a grant hook hands to the shared issuance pipeline.
type grant struct {
	user      *store.User // nil for client credentials
	resource  *store.Resource
	requested []string // scopes the request asks for, before policy and consent
	grantID   string   // family of the tokens; empty for client credentials
	authTime  time.Time
	// refreshScopes, when set, are the scopes a new refresh token carries (the
	// grant's whole scope, RFC 6749 §6), as opposed to the possibly narrowed
	// access-token scope.
	refreshScopes []string
	// rotate is the refresh token being rotated, if any.
	rotate *store.RefreshToken
	// consentChecked is set when the scopes were approved by the person in
	// this very flow (authorization code): the ledger is still consulted.
	consentChecked bool
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	req, oe := oauth.ParseTokenRequest(r)
	if oe != nil {
		s.writeProtocolError(w, r, oe)
		return
	}
	ctx := r.Context()
	// Client authentication comes first, so that a request whose
	// authentication fails never consumes a code (spec §5.3).
	c, err := s.authenticateClient(r, req.Client)
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	var g *grant
	switch req.GrantType {
	case oauth.GrantAuthorizationCode, oauth.GrantRefreshToken, oauth.GrantClientCredentials:
		if !slices.Contains(c.GrantTypes, req.GrantType) {
			s.writeProtocolError(w, r, oauth.ErrUnauthorizedClient("the client is not registered for the %s grant", req.GrantType))
			return
		}
	default:
		s.writeProtocolError(w, r, oauth.ErrUnsupportedGrantType("grant_type %q is not supported", truncate(req.GrantType, 80)))
		return
	}
	switch req.GrantType {
	case oauth.GrantAuthorizationCode:
		g, err = s.grantAuthorizationCode(ctx, r, c, req)
	case oauth.GrantRefreshToken:
		g, err = s.grantRefreshToken(ctx, r, c, req)
	case oauth.GrantClientCredentials:
		g, err = s.grantClientCredentials(ctx, c, req)
	}
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	resp, err := s.issue(ctx, r, c, req.GrantType, g)
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	oauth.WriteTokenResponse(w, resp)
}

// requestedResource canonicalises the request's resource parameters (RFC
// 8707 §2). agentid issues single-audience tokens, so at most one is allowed.
func requestedResource(raw []string) (string, error) {
	switch len(raw) {
	case 0:
		return "", nil
	case 1:
		uri, oe := oauth.CanonicalResource(raw[0])
		if oe != nil {
			return "", oe
		}
		return uri, nil
	default:
		return "", oauth.ErrInvalidTarget("only one resource may be requested per token")
	}
}

// inferResource picks the resource of a request that names none, for
// clients that predate RFC 8707 in MCP (2025-03-26) and have no default
// resource: the one registered resource offering every requested scope (or,
// with no scope asked, the only resource). Anything ambiguous yields "" and
// the caller answers invalid_target.
func (s *Server) inferResource(ctx context.Context, scopes []string) (string, error) {
	resources, err := s.st.ListResources(ctx, s.tenant)
	if err != nil {
		return "", err
	}
	found := ""
	for _, res := range resources {
		offers := func(name string) bool {
			return slices.ContainsFunc(res.Scopes, func(sc store.Scope) bool { return sc.Name == name })
		}
		if !slices.ContainsFunc(scopes, func(sc string) bool { return !offers(sc) }) {
			if found != "" {
				return "", nil
			}
			found = res.URI
		}
	}
	return found, nil
}

// lookupResource finds a registered resource or fails with invalid_target.
func (s *Server) lookupResource(ctx context.Context, uri string) (*store.Resource, error) {
	res, err := s.resources.get(uri, func() (*store.Resource, error) { return s.st.GetResource(ctx, s.tenant, uri) })
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.ErrInvalidTarget("resource %q is not registered", truncate(uri, 200))
	}
	return res, err
}

func (s *Server) grantAuthorizationCode(ctx context.Context, r *http.Request, c *store.Client, req *oauth.TokenRequest) (*grant, error) {
	now := s.now()
	replay := s.event(r, audit.CodeReplayed)
	replay.ClientID = c.ID
	replay.Outcome = audit.Failure
	code, err := s.st.ConsumeAuthCode(ctx, token.Hash(req.Code), now, replay)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, oauth.ErrInvalidGrant("the authorization code is invalid or expired")
	case errors.Is(err, store.ErrAlreadyUsed):
		// RFC 6749 §4.1.2: the store has revoked every token issued from it.
		return nil, oauth.ErrInvalidGrant("the authorization code was already used")
	case err != nil:
		return nil, err
	}
	if code.ClientID != c.ID {
		return nil, oauth.ErrInvalidGrant("the authorization code was issued to another client")
	}
	// RFC 6749 §4.1.3: redirect_uri must match when it is sent (OAuth 2.1
	// makes it optional, PKCE binding the code to the client instead).
	if req.RedirectURI != "" && req.RedirectURI != code.RedirectURI {
		return nil, oauth.ErrInvalidGrant("redirect_uri does not match the authorization request")
	}
	// RFC 7636 §4.6.
	if !oauth.VerifyPKCE(code.CodeChallenge, code.CodeChallengeMethod, req.CodeVerifier) {
		return nil, oauth.ErrInvalidGrant("code_verifier does not match the code_challenge")
	}
	uri, err := requestedResource(req.Resources)
	if err != nil {
		return nil, err
	}
	if uri != "" && uri != code.Resource {
		return nil, oauth.ErrInvalidTarget("resource does not match the authorization request")
	}
	res, err := s.lookupResource(ctx, code.Resource)
	if err != nil {
		return nil, err
	}
	u, err := s.activeUser(ctx, code.UserID)
	if err != nil {
		return nil, err
	}
	return &grant{user: u, resource: res, requested: code.Scopes, refreshScopes: code.Scopes, grantID: code.GrantID, authTime: code.AuthTime, consentChecked: true}, nil
}

func (s *Server) activeUser(ctx context.Context, id string) (*store.User, error) {
	u, err := s.st.GetUser(ctx, s.tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.ErrInvalidGrant("the user no longer exists")
	}
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, oauth.ErrInvalidGrant("the user is disabled")
	}
	return u, nil
}

func (s *Server) grantRefreshToken(ctx context.Context, r *http.Request, c *store.Client, req *oauth.TokenRequest) (*grant, error) {
	now := s.now()
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
	if !rt.RotatedAt.IsZero() || !rt.RevokedAt.IsZero() {
		// OAuth 2.1 §4.3.1: reuse of a rotated token revokes the grant.
		if rt.RevokedAt.IsZero() {
			ev := s.reuseEvent(r, rt)
			if err := s.st.RevokeGrant(ctx, rt.TenantID, rt.GrantID, now, ev); err != nil {
				return nil, err
			}
		}
		return nil, oauth.ErrInvalidGrant("the refresh token is no longer valid")
	}
	if !now.Before(rt.ExpiresAt) {
		if err := s.retireWithConsent(ctx, r, rt); err != nil {
			return nil, err
		}
		return nil, oauth.ErrInvalidGrant("the refresh token has expired")
	}
	uri, err := requestedResource(req.Resources)
	if err != nil {
		return nil, err
	}
	// A refresh without resource keeps the grant's resource.
	if uri != "" && uri != rt.Resource {
		return nil, oauth.ErrInvalidTarget("resource does not match the grant")
	}
	requested := rt.Scopes
	if req.Scopes != nil {
		// RFC 6749 §6: a refresh may narrow the scope, never widen it.
		asked := withoutOfflineAccess(req.Scopes)
		if !oauth.ContainsAll(rt.Scopes, asked) {
			return nil, oauth.ErrInvalidScope("the requested scope exceeds the grant")
		}
		if len(asked) > 0 {
			// scope=offline_access alone asks for the grant as it is.
			requested = asked
		}
	}
	res, err := s.lookupResource(ctx, rt.Resource)
	if err != nil {
		return nil, err
	}
	u, err := s.activeUser(ctx, rt.UserID)
	if err != nil {
		return nil, err
	}
	return &grant{user: u, resource: res, requested: requested, refreshScopes: rt.Scopes, grantID: rt.GrantID, authTime: rt.AuthTime, rotate: rt}, nil
}

func (s *Server) reuseEvent(r *http.Request, rt *store.RefreshToken) *store.AuditEvent {
	ev := s.event(r, audit.RefreshReuse)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = rt.ClientID, rt.UserID, rt.Resource, rt.Scopes
	ev.Outcome = audit.Failure
	ev.Details = map[string]string{"grant_id": rt.GrantID}
	return ev
}

func (s *Server) grantClientCredentials(ctx context.Context, c *store.Client, req *oauth.TokenRequest) (*grant, error) {
	if c.Public() {
		return nil, oauth.ErrUnauthorizedClient("public clients cannot use client_credentials")
	}
	uri, err := requestedResource(req.Resources)
	if err != nil {
		return nil, err
	}
	if uri == "" {
		uri = c.DefaultResource
	}
	if uri == "" {
		if uri, err = s.inferResource(ctx, withoutOfflineAccess(req.Scopes)); err != nil {
			return nil, err
		}
	}
	if uri == "" {
		return nil, oauth.ErrInvalidTarget("resource is required: name the MCP server the token is for")
	}
	res, err := s.lookupResource(ctx, uri)
	if err != nil {
		return nil, err
	}
	requested := withoutOfflineAccess(req.Scopes)
	if requested == nil {
		// No scope asked: the client's registered scopes on this resource.
		for _, sc := range res.Scopes {
			if policy.WithinCeiling(c, sc.Name) {
				requested = append(requested, sc.Name)
			}
		}
	}
	return &grant{resource: res, requested: requested, authTime: time.Time{}}, nil
}

// withoutOfflineAccess drops the offline_access scope that some MCP clients
// send: agentid decides about refresh tokens by the client's grant types.
func withoutOfflineAccess(scopes []string) []string {
	if !slices.Contains(scopes, "offline_access") {
		return scopes
	}
	out := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		if sc != "offline_access" {
			out = append(out, sc)
		}
	}
	return out
}

// issue is the shared issuance pipeline: every grant's scopes pass the
// resource's scope list, the client's ceiling, the central policy and the
// user's live consent, then the token is minted and persisted with its
// audit event in one transaction.
func (s *Server) issue(ctx context.Context, r *http.Request, c *store.Client, grantType string, g *grant) (*oauth.TokenResponse, error) {
	now := s.now()
	granted, decisions, err := s.decideScopes(ctx, r, policy.ActionGrant, grantType, c, g.user, g.resource, g.requested, g.authTime)
	if err != nil {
		return nil, err
	}
	// The person's consent, judged at the moment of minting: only scopes
	// consented and unexpired now are issued, and no token outlives the
	// consent behind it.
	var snap *consent.Snapshot
	var expired, refreshScopes []string
	if g.user != nil {
		snap, err = s.ledger.Snapshot(ctx, consent.Key{UserID: g.user.ID, ClientID: c.ID, Resource: g.resource.URI})
		if err != nil {
			return nil, err
		}
		refreshScopes = g.refreshScopes
		if refreshScopes == nil {
			refreshScopes = g.requested
		}
		expired = snap.Expired(append(slices.Clone(g.requested), refreshScopes...))
		// A refresh token stops carrying what the person no longer consents to.
		refreshScopes = snap.Live(refreshScopes)
	}
	policyGranted := granted
	if snap != nil {
		granted = snap.Live(granted)
		for _, sc := range policyGranted {
			if !slices.Contains(granted, sc) {
				decisions["scope."+sc] = "denied:consent"
			}
		}
	}
	if len(granted) == 0 {
		ev := s.event(r, audit.TokenDenied)
		ev.ClientID, ev.Resource, ev.Scopes, ev.Outcome = c.ID, g.resource.URI, g.requested, audit.Denied
		if g.user != nil {
			ev.UserID = g.user.ID
		}
		ev.Details = decisions
		ev.Details["grant_type"] = grantType
		if err := s.st.AppendAudit(ctx, ev); err != nil {
			return nil, err
		}
		if len(expired) > 0 {
			if err := s.st.AppendAudit(ctx, s.expiredEvent(r, c, g, expired)); err != nil {
				return nil, err
			}
		}
		if len(policyGranted) > 0 {
			// The policy allows it but the person's consent has run out or
			// was revoked: the grant itself is no longer valid.
			return nil, oauth.ErrInvalidGrant("the user's consent for the requested scopes has expired or was revoked")
		}
		return nil, oauth.ErrInvalidScope("none of the requested scopes may be granted")
	}
	exp := now.Add(s.accessTTL(g.resource))
	if snap != nil {
		exp = snap.AccessExpiry(granted, exp)
	}
	ttl := exp.Sub(now)
	claims := &token.AccessClaims{
		Issuer:   s.issuer,
		Audience: []string{g.resource.URI},
		ClientID: c.ID,
		Scope:    oauth.FormatScope(granted),
		JTI:      token.NewID(s.rand),
		IssuedAt: now.Unix(),
		Expiry:   exp.Unix(),
	}
	if g.user != nil {
		claims.Subject = g.user.ID
		if !g.authTime.IsZero() {
			claims.AuthTime = g.authTime.Unix()
		}
	} else {
		claims.Subject = c.ID
	}
	jwt, err := s.keys.Mint(claims)
	if err != nil {
		return nil, err
	}
	at := &store.AccessToken{JTI: claims.JTI, TenantID: s.tenant, GrantID: g.grantID, ClientID: c.ID, Resource: g.resource.URI, Scopes: granted, ExpiresAt: exp}
	if g.user != nil {
		at.UserID = g.user.ID
	}
	ev := s.event(r, audit.TokenIssued)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = c.ID, at.UserID, g.resource.URI, granted
	ev.Details = decisions
	ev.Details["grant_type"] = grantType
	ev.Details["jti"] = claims.JTI
	iss := &store.Issuance{AccessToken: at, Events: []*store.AuditEvent{ev}}
	resp := &oauth.TokenResponse{AccessToken: jwt, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second), Scope: claims.Scope}

	if len(expired) > 0 {
		iss.Events = append(iss.Events, s.expiredEvent(r, c, g, expired))
	}
	if g.user != nil && slices.Contains(c.GrantTypes, oauth.GrantRefreshToken) {
		// A refresh token never outlives the longest consent behind it. When
		// that ends no later than the access token ("only for this session")
		// there is nothing to refresh and none is issued, except as the
		// successor of a rotated one: a client keeps its old refresh token
		// when the response carries none (RFC 6749 §6), and presenting that
		// one again would look like theft.
		if rtExp := snap.RefreshExpiry(refreshScopes, now.Add(s.cfg.RefreshTokenTTL)); rtExp.After(exp) || g.rotate != nil {
			handle, err := token.NewHandle(s.rand, "")
			if err != nil {
				return nil, err
			}
			iss.RefreshToken = &store.RefreshToken{
				Hash: token.Hash(handle), TenantID: s.tenant, GrantID: g.grantID, ClientID: c.ID, UserID: g.user.ID,
				Scopes: refreshScopes, Resource: g.resource.URI, AuthTime: g.authTime, CreatedAt: now, ExpiresAt: rtExp,
			}
			resp.RefreshToken = handle
		}
	}
	if g.rotate != nil {
		rot := s.event(r, audit.RefreshRotated)
		rot.ClientID, rot.UserID, rot.Resource = c.ID, g.user.ID, g.resource.URI
		rot.Details = map[string]string{"grant_id": g.grantID}
		iss.Events = append(iss.Events, rot)
		err = s.st.RotateRefresh(ctx, g.rotate.Hash, now, iss, s.reuseEvent(r, g.rotate))
		if errors.Is(err, store.ErrAlreadyUsed) || errors.Is(err, store.ErrNotFound) {
			return nil, oauth.ErrInvalidGrant("the refresh token is no longer valid")
		}
	} else {
		err = s.st.IssueTokens(ctx, iss)
		if errors.Is(err, store.ErrAlreadyUsed) {
			// The code was replayed while this exchange was in flight.
			return nil, oauth.ErrInvalidGrant("the authorization code was already used")
		}
	}
	if err != nil {
		return nil, err
	}
	if g.user != nil {
		if err := s.st.TouchConsents(ctx, store.ConsentFilter{TenantID: s.tenant, UserID: g.user.ID, ClientID: c.ID, Resource: g.resource.URI}, granted, now); err != nil {
			s.log.WarnContext(ctx, "recording consent use failed", "request_id", requestID(ctx), "err", err)
		}
	}
	return resp, nil
}

// retireWithConsent handles a refresh token that ended because the consent
// behind it ended (its lifetime is capped at the longest consent): the
// expiry is recorded, and the grant revoked in the same transaction so that
// a client retrying the token records nothing more.
func (s *Server) retireWithConsent(ctx context.Context, r *http.Request, rt *store.RefreshToken) error {
	snap, err := s.ledger.Snapshot(ctx, consent.Key{UserID: rt.UserID, ClientID: rt.ClientID, Resource: rt.Resource})
	if err != nil {
		return err
	}
	expired := snap.Expired(rt.Scopes)
	if len(expired) == 0 || len(snap.Live(rt.Scopes)) > 0 {
		return nil
	}
	ev := s.event(r, audit.ConsentExpired)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = rt.ClientID, rt.UserID, rt.Resource, expired
	ev.Details = map[string]string{"grant_id": rt.GrantID}
	return s.st.RevokeGrant(ctx, rt.TenantID, rt.GrantID, s.now(), ev)
}

// expiredEvent records that the consent behind scopes ran out, found when a
// token request had to drop them.
func (s *Server) expiredEvent(r *http.Request, c *store.Client, g *grant, scopes []string) *store.AuditEvent {
	ev := s.event(r, audit.ConsentExpired)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = c.ID, g.user.ID, g.resource.URI, scopes
	if g.grantID != "" {
		ev.Details = map[string]string{"grant_id": g.grantID}
	}
	return ev
}

// decideScopes checks the requested scopes against the resource and the
// client's ceiling (unknown scopes are invalid_scope), then asks the central
// policy about each. It returns the granted scopes in request order and the
// per-scope decisions for the audit event.
func (s *Server) decideScopes(ctx context.Context, r *http.Request, action policy.Action, grantType string, c *store.Client, u *store.User, res *store.Resource, requested []string, authTime time.Time) ([]string, map[string]string, error) {
	details := make(map[string]string, len(requested)+2)
	scopes := make([]policy.Scope, 0, len(requested))
	for _, name := range requested {
		i := slices.IndexFunc(res.Scopes, func(sc store.Scope) bool { return sc.Name == name })
		if i < 0 {
			return nil, nil, oauth.ErrInvalidScope("scope %q is not offered by %s", truncate(name, 100), res.URI)
		}
		if !policy.WithinCeiling(c, name) {
			details["scope."+name] = "denied:ceiling"
			continue
		}
		scopes = append(scopes, policy.Scope{Name: name, Sensitive: res.Scopes[i].Sensitive})
	}
	if len(scopes) == 0 {
		return nil, details, nil
	}
	req := &policy.Request{
		Action:   action,
		TenantID: s.tenant,
		Agent:    policy.AgentFromClient(c),
		Resource: policy.ResourceFromStore(res),
		Scopes:   scopes,
		// auth_method is how the client authenticated at the token
		// endpoint, as docs/policy.md defines it.
		Context: policy.Context{GrantType: grantType, IP: clientIP(r), Time: s.now(), Resource: res.URI, AuthMethod: c.TokenEndpointAuthMethod},
	}
	if u != nil {
		req.User = policy.UserFromStore(u)
		if !authTime.IsZero() {
			req.Context.AuthAge = s.now().Sub(authTime)
		}
	}
	actions := []policy.Action{action}
	if action != policy.ActionRegister {
		// The stored ceiling is by scope name; the register action is also
		// decided here for this very resource, under the current policy set,
		// so that a register denial on one MCP server cannot be bypassed
		// through another offering a scope of the same name, and a tightened
		// register policy bites before any ceiling is recomputed.
		actions = append(actions, policy.ActionRegister)
	}
	results, err := s.policy.DecideAs(ctx, req, actions...)
	if err != nil {
		return nil, nil, err
	}
	result, granted := results[0], results[0].Granted
	regDenied := make(map[string]bool)
	if len(results) == 2 {
		for _, d := range results[1].Decisions {
			if !d.Allowed {
				regDenied[d.Scope] = true
				details["scope."+d.Scope] = "denied:" + strings.Join(d.PolicyIDs, ",")
			}
		}
		granted = slices.DeleteFunc(slices.Clone(granted), func(sc string) bool { return regDenied[sc] })
	}
	for _, d := range result.Decisions {
		if regDenied[d.Scope] {
			continue
		}
		verdict := "denied"
		if d.Allowed {
			verdict = "granted"
		}
		details["scope."+d.Scope] = verdict + ":" + strings.Join(d.PolicyIDs, ",")
	}
	return granted, details, nil
}

// event starts an audit event for this request.
func (s *Server) event(r *http.Request, typ string) *store.AuditEvent {
	return audit.New(audit.Meta{TenantID: s.tenant, RequestID: requestID(r.Context()), IP: clientIP(r), Time: s.now()}, typ)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func unixTime(sec int64) time.Time { return time.Unix(sec, 0) }
