package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/agentid/agentid/internal/federation"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// DefaultMaxDelegationDepth is the longest delegation chain (actors in the
// act claim of an issued token) when the configuration sets none.
const DefaultMaxDelegationDepth = 5

// proveTokenExchange is RFC 8693 token exchange with delegation: a
// resource server (an MCP server) that received a token exchanges it for
// a token to the next hop, acting for the same person.
//
// Who may exchange: a hub access token only by the resource server of its
// audience (the client linked to the resource its aud names) — an MCP
// server cannot exchange a token minted for another (no confused deputy);
// a trusted issuer's JWT (store.IssuerUseSubjectToken) by the resource
// server of the resource its aud names, or, when its aud is the hub, by any
// client linked to a resource.
//
// Who acts: always the authenticated client. An actor_token, when sent,
// must identify that same client (its own client-credentials token, or a
// trusted issuer's workload JWT its rules map to it): it adds proof, never
// another identity. The subject token's may_act, when present, must name
// the actor.
//
// What comes out: sub = the subject token's person; client_id = the
// exchanging client; aud = the next hop (resource and/or audience, which
// must agree); act = {sub: the actor, act: the subject token's chain} with
// the current actor outermost — a subject token without act contributes
// {sub: its client_id}, so every hop names the agent; scopes = requested ∩
// the subject token's ∩ the next hop's ∩ the ceiling ∩ the policy's
// exchange action (which sees the chain); exp never after the subject
// (or actor) token's; no refresh token; no consent; the access token
// family of the subject token, so revoking the family reaches every
// exchanged token. There is no path that drops act: the chain only grows.
func (s *Server) proveTokenExchange(ctx context.Context, r *http.Request, c *store.Client, req *oauth.TokenRequest) (*authorization, error) {
	switch req.RequestedTokenType {
	case "", oauth.TokenTypeAccessToken:
	default:
		return nil, oauth.NewError(oauth.CodeUnsupportedTokenType, "requested_token_type %q is not supported", truncate(req.RequestedTokenType, 100))
	}
	if !exchangeable(req.SubjectTokenType) {
		return nil, oauth.NewError(oauth.CodeUnsupportedTokenType, "subject_token_type %q is not supported", truncate(req.SubjectTokenType, 100))
	}
	if req.ActorToken != "" && !exchangeable(req.ActorTokenType) {
		return nil, oauth.NewError(oauth.CodeUnsupportedTokenType, "actor_token_type %q is not supported", truncate(req.ActorTokenType, 100))
	}
	target, oe := exchangeTarget(req)
	if oe != nil {
		return nil, oe
	}
	if target == nil && c.DefaultResource == "" {
		// Never guessed from the scopes: the next hop is named.
		return nil, oauth.ErrInvalidTarget("resource or audience is required: name the next hop the token is for")
	}
	sub, err := s.exchangeSubject(ctx, c, req)
	if err != nil {
		return nil, err
	}
	now := s.now()
	notAfter := sub.exp
	if req.ActorToken != "" {
		actorExp, err := s.exchangeActor(ctx, c, req)
		if err != nil {
			return nil, err
		}
		if actorExp.Before(notAfter) {
			notAfter = actorExp
		}
	}
	if !sub.mayAct.permits(c.ID, s.issuer) {
		return nil, oauth.ErrInvalidGrant("the subject token's may_act does not name this client")
	}
	act := &token.Actor{Subject: c.ID, Actor: sub.chain}
	if depth := act.Depth(); depth > s.maxDelegationDepth() {
		return nil, oauth.ErrInvalidGrant("the delegation chain would have %d actors; at most %d are allowed", depth, s.maxDelegationDepth())
	}
	if err := s.chainAlive(ctx, sub.chain); err != nil {
		return nil, err
	}
	scopes, oe := s.exchangeScopes(ctx, c, target, req.Scopes, sub.scopes)
	if oe != nil {
		return nil, oe
	}
	if !notAfter.After(now) {
		return nil, oauth.ErrInvalidGrant("the subject token has expired")
	}
	return &authorization{
		subject:         subject{userID: sub.userID, authTime: sub.authTime, act: act},
		resource:        target,
		scopes:          scopes,
		family:          family{exchanged: sub.recorded},
		notAfter:        notAfter,
		issuedTokenType: oauth.TokenTypeAccessToken,
		subjectJTI:      sub.jti,
	}, nil
}

// exchangeable reports whether subject and actor tokens of type typ are
// accepted: the hub's access tokens and trusted issuers' JWTs.
func exchangeable(typ string) bool {
	return typ == oauth.TokenTypeAccessToken || typ == oauth.TokenTypeJWT
}

// maxDelegationDepth is the configured chain limit.
func (s *Server) maxDelegationDepth() int {
	if s.cfg.MaxDelegationDepth <= 0 {
		return DefaultMaxDelegationDepth
	}
	return s.cfg.MaxDelegationDepth
}

// exchangeTarget is the next hop the request names: its resource and
// audience parameters (RFC 8693 §2.1), one value in all (an audience is
// taken as a resource URI, the only audiences the hub knows); both may be
// sent when they agree. None leaves the choice to the pipeline (the
// client's default resource). Anything else is invalid_target.
func exchangeTarget(req *oauth.TokenRequest) ([]string, *oauth.Error) {
	var uri string
	for _, values := range [2][]string{req.Resources, req.Audiences} {
		for _, raw := range values {
			canon, oe := oauth.CanonicalResource(raw)
			if oe != nil {
				return nil, oauth.ErrInvalidTarget("resource and audience must name a registered resource by its URI")
			}
			if uri != "" && canon != uri {
				return nil, oauth.ErrInvalidTarget("only one resource may be requested per token")
			}
			uri = canon
		}
	}
	if uri == "" {
		return nil, nil
	}
	return []string{uri}, nil
}

// exchangedSubject is what a verified subject token contributes.
type exchangedSubject struct {
	userID   string
	authTime time.Time
	// chain is the delegation chain so far: the token's act, or {sub: the
	// agent it was issued to} when it has none.
	chain  *token.Actor
	mayAct mayAct
	scopes []string
	exp    time.Time
	jti    string
	// recorded: the subject token is the hub's, whose record the store
	// checks when it writes the exchanged token (store.Issuance.SubjectJTI).
	recorded bool
}

// mayAct is a subject token's may_act claim (RFC 8693 §4.4) and the issuer
// its unqualified subjects are named by.
type mayAct struct {
	claim  *token.Actor
	issuer string
}

// permits reports whether the actor clientID (named by the hub, issuer)
// is the one may_act names; no may_act permits anyone.
func (m mayAct) permits(clientID, issuer string) bool {
	if m.claim == nil {
		return true
	}
	iss := m.claim.Issuer
	if iss == "" {
		iss = m.issuer
	}
	return m.claim.Subject == clientID && iss == issuer
}

// exchangeSubject verifies the subject token and checks that c may
// exchange it.
func (s *Server) exchangeSubject(ctx context.Context, c *store.Client, req *oauth.TokenRequest) (*exchangedSubject, error) {
	switch req.SubjectTokenType {
	case oauth.TokenTypeAccessToken:
		return s.hubSubject(ctx, c, req.SubjectToken)
	case oauth.TokenTypeJWT:
		return s.federatedSubject(ctx, c, req.SubjectToken)
	default:
		return nil, oauth.NewError(oauth.CodeUnsupportedTokenType, "subject_token_type %q is not supported", truncate(req.SubjectTokenType, 100))
	}
}

// hubSubject verifies an access token this hub issued as a subject token:
// signature, issuer, expiry, and c is the resource server of its audience.
// Its record (of this tenant, not revoked, alone or with its family) is
// checked by the statement that writes the exchanged token, which also
// takes the family from it: read here, it could be revoked before the
// write and outlived by the token the exchange issues.
func (s *Server) hubSubject(ctx context.Context, c *store.Client, raw string) (*exchangedSubject, error) {
	claims, _, err := s.subjectClaims(ctx, raw)
	if err != nil {
		return nil, err
	}
	if _, err := s.resourceServerOf(ctx, c, claims.Audience[0]); err != nil {
		return nil, err
	}
	return s.hubSubjectOf(claims), nil
}

// subjectClaims verifies a subject token as an access token of this hub
// about a person, unexpired, with one audience. Its record has not been
// checked yet (the caller first checks who presents it), but it may have
// been read to verify the token: rec is then that read (see
// verifyAccessToken), nil otherwise.
func (s *Server) subjectClaims(ctx context.Context, raw string) (claims *token.AccessClaims, rec *store.AccessToken, err error) {
	claims, rec, err = s.verifyAccessToken(ctx, raw)
	if err != nil {
		return nil, nil, oauth.ErrInvalidGrant("the subject token is not a valid access token of this server")
	}
	if s.now().Unix() >= claims.Expiry {
		return nil, nil, oauth.ErrInvalidGrant("the subject token has expired")
	}
	if claims.Subject == claims.ClientID {
		return nil, nil, oauth.ErrInvalidGrant("the subject token is an agent's own token, not one issued for a person")
	}
	if len(claims.Audience) != 1 {
		return nil, nil, oauth.ErrInvalidGrant("the subject token must have exactly one audience")
	}
	return claims, rec, nil
}

// hubSubjectOf is what verified subject token claims contribute. The
// token's record is not read here (see hubSubject).
func (s *Server) hubSubjectOf(claims *token.AccessClaims) *exchangedSubject {
	scopes, _ := oauth.ParseScope(claims.Scope)
	_, scopes = splitOIDC(scopes)
	chain := claims.Act
	if chain == nil {
		chain = &token.Actor{Subject: claims.ClientID}
	}
	sub := &exchangedSubject{
		userID: claims.Subject, chain: chain, mayAct: mayAct{claim: claims.MayAct, issuer: s.issuer},
		scopes: scopes, exp: unixTime(claims.Expiry), jti: claims.JTI, recorded: true,
	}
	if claims.AuthTime != 0 {
		sub.authTime = unixTime(claims.AuthTime)
	}
	return sub
}

// verifyAccessToken verifies an access token this hub issued. The
// signature check is the largest cost of an exchange, and two things spare
// it. The hub recorded the SHA-256 of every access token it minted
// (store.AccessToken.Digest): the record of the jti the token names is
// read first, and a token whose SHA-256 equals the recorded one is byte
// for byte what the hub signed (token.Keys.VerifyRecorded; docs/design.md
// §13); anything else — no record, no digest, a mismatch, a read that
// failed — is verified by its signature. And a resource server that fans
// one call out exchanges the same token for several next hops, often
// within moments: a verification is remembered by the token's SHA-256
// until the key set changes (the change feed, changes.go). Only
// authenticity is spared: expiry, revocation and everything else are
// checked on every exchange; a signing key withdrawn from the key set, on
// any replica, stops vouching for its tokens here within the feed's bound.
//
// rec is the record read to verify the token (nil when none was read or
// found), for a caller that reads it anyway; it is the record of the
// verified token's jti. Nothing is done with an unverified token's claims
// but reading that record.
func (s *Server) verifyAccessToken(ctx context.Context, raw string) (claims *token.AccessClaims, rec *store.AccessToken, err error) {
	verify := func() (*token.AccessClaims, error) {
		return s.keys.VerifyRecorded(raw, s.issuer, func(jti string) []byte {
			r, err := s.st.GetAccessToken(ctx, jti)
			if err != nil {
				// Not found, or unreadable now: the signature decides.
				return nil
			}
			rec = r
			return r.Digest
		})
	}
	if len(raw) > maxVerifiedTokenLen {
		claims, err = verify()
	} else {
		sum := sha256.Sum256([]byte(raw))
		claims, err = s.verified.get(string(sum[:]), verify)
	}
	if err != nil {
		return nil, nil, err
	}
	if rec != nil && rec.JTI != claims.JTI {
		rec = nil
	}
	return claims, rec, nil
}

// maxVerifiedTokenLen bounds the tokens whose verification is remembered
// (the hub's own are far shorter; longer ones fail verification).
const maxVerifiedTokenLen = 8 << 10

// mayExchangeFor checks that c is the resource server of aud: the client
// linked to the registered resource aud names.
func (s *Server) mayExchangeFor(ctx context.Context, c *store.Client, aud string) error {
	_, err := s.resourceServerOf(ctx, c, aud)
	return err
}

// resourceServerOf returns the registered resource aud names, when c is
// its linked client (its resource server); invalid_grant otherwise, so
// that no client acts on a token minted for another (no confused deputy).
func (s *Server) resourceServerOf(ctx context.Context, c *store.Client, aud string) (*store.Resource, error) {
	res, oe := s.lookupResource(ctx, aud)
	if oe != nil {
		if oe.Code == oauth.CodeInvalidTarget {
			return nil, oauth.ErrInvalidGrant("the subject token's audience is not a registered resource")
		}
		return nil, oe
	}
	if res.ClientID == "" || res.ClientID != c.ID {
		return nil, oauth.ErrInvalidGrant("only the resource server the subject token was issued for may exchange it")
	}
	return res, nil
}

// federatedSubject verifies a trusted issuer's JWT as a subject token and
// finds the person it names.
func (s *Server) federatedSubject(ctx context.Context, c *store.Client, raw string) (*exchangedSubject, error) {
	a, err := s.fed.Verify(ctx, raw, federation.Expect{
		Use:       store.IssuerUseSubjectToken,
		Audiences: []string{s.issuer, s.issuer + "/token"},
	})
	if err != nil {
		return nil, err
	}
	if a.Issuer.Issuer == s.issuer {
		// The hub's own tokens are exchanged as access tokens only, where
		// their record (revocation, family) and may_act are checked.
		return nil, oauth.ErrInvalidGrant("tokens of this server are exchanged with subject_token_type access_token")
	}
	if _, ok := a.Claims["authorization_details"]; ok {
		// The hub cannot carry these restrictions over; refusing keeps an
		// exchange from shedding them.
		return nil, oauth.ErrInvalidGrant("subject tokens carrying authorization_details are not accepted")
	}
	if a.Audience == s.issuer || a.Audience == s.issuer+"/token" {
		if err := s.isResourceServer(ctx, c); err != nil {
			return nil, err
		}
	} else if err := s.mayExchangeFor(ctx, c, a.Audience); err != nil {
		return nil, err
	}
	u, err := s.subjectUser(ctx, a)
	if err != nil {
		return nil, err
	}
	var chain *token.Actor
	if v, ok := a.Claims["act"]; ok {
		if chain, err = actorClaim(v, a.Issuer.Issuer); err != nil || chain == nil {
			return nil, oauth.ErrInvalidGrant("the subject token's act claim is malformed")
		}
	} else if agent := stringClaim(a.Claims, "client_id", "azp"); agent != "" {
		chain = &token.Actor{Subject: agent, Issuer: a.Issuer.Issuer}
	}
	var may *token.Actor
	if v, ok := a.Claims["may_act"]; ok {
		if may, err = actorClaim(v, ""); err != nil || may == nil {
			return nil, oauth.ErrInvalidGrant("the subject token's may_act claim is malformed")
		}
	}
	scopes, _ := oauth.ParseScope(stringClaim(a.Claims, "scope"))
	_, scopes = splitOIDC(scopes)
	sub := &exchangedSubject{
		userID: u.ID, chain: chain, mayAct: mayAct{claim: may, issuer: a.Issuer.Issuer},
		scopes: scopes, exp: a.Expiry, jti: a.JTI,
	}
	if at, ok := numberClaim(a.Claims, "auth_time"); ok {
		sub.authTime = time.Unix(at, 0)
	}
	return sub, nil
}

// isResourceServer checks that c is linked to some registered resource:
// only resource servers exchange tokens about people.
func (s *Server) isResourceServer(ctx context.Context, c *store.Client) error {
	resources, err := s.st.ListResources(ctx, s.tenant)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(resources, func(r *store.Resource) bool { return r.ClientID == c.ID }) {
		return oauth.ErrInvalidGrant("only a resource server may exchange a token about a person")
	}
	return nil
}

// subjectUser is the local user a trusted issuer's JWT names through the
// issuer's UserClaim: the jwt-bearer grant's rule (federatedUser), so that
// a person is found the same way whichever grant carries the JWT.
func (s *Server) subjectUser(ctx context.Context, a *federation.Assertion) (*store.User, error) {
	return s.federatedUser(ctx, a)
}

// exchangeActor verifies the actor token, which must identify c itself,
// and returns its expiry.
func (s *Server) exchangeActor(ctx context.Context, c *store.Client, req *oauth.TokenRequest) (time.Time, error) {
	switch req.ActorTokenType {
	case oauth.TokenTypeAccessToken:
		claims, err := s.keys.Verify(req.ActorToken, s.issuer)
		if err != nil {
			return time.Time{}, oauth.ErrInvalidGrant("the actor token is not a valid access token of this server")
		}
		if s.now().Unix() >= claims.Expiry {
			return time.Time{}, oauth.ErrInvalidGrant("the actor token has expired")
		}
		if claims.ClientID != c.ID || claims.Subject != c.ID || claims.Act != nil {
			return time.Time{}, oauth.ErrInvalidGrant("the actor token must be the exchanging client's own token")
		}
		revoked, err := s.st.AccessTokenRevoked(ctx, claims.JTI)
		if err != nil {
			return time.Time{}, err
		}
		if revoked {
			return time.Time{}, oauth.ErrInvalidGrant("the actor token was revoked")
		}
		return unixTime(claims.Expiry), nil
	case oauth.TokenTypeJWT:
		a, err := s.fed.Verify(ctx, req.ActorToken, federation.Expect{
			Use:       store.IssuerUseWorkload,
			Audiences: []string{s.issuer, s.issuer + "/token"},
		})
		if err != nil {
			return time.Time{}, err
		}
		// Held to the rules of the same JWT as a grant or client_assertion:
		// one obtained by delegation (act) is not the client's own, and a
		// binding or restrictions it carries cannot be shed.
		if err := refuseUnhonoured(a); err != nil {
			return time.Time{}, err
		}
		if id, _, ok := federation.Agent(a); !ok || id != c.ID {
			return time.Time{}, oauth.ErrInvalidGrant("the actor token must identify the exchanging client")
		}
		return a.Expiry, nil
	default:
		return time.Time{}, oauth.NewError(oauth.CodeUnsupportedTokenType, "actor_token_type %q is not supported", truncate(req.ActorTokenType, 100))
	}
}

// chainAlive refuses a chain naming a client of this hub that is disabled,
// deleted or held for review: every actor must still be trusted to act.
// Actors named by another issuer are that issuer's business.
func (s *Server) chainAlive(ctx context.Context, chain *token.Actor) error {
	for a := chain; a != nil; a = a.Actor {
		if a.Issuer != "" && a.Issuer != s.issuer {
			continue
		}
		id := a.Subject
		c, err := s.clients.get(id, func() (*store.Client, error) { return s.st.GetClient(ctx, s.tenant, id) })
		if errors.Is(err, store.ErrNotFound) {
			return oauth.ErrInvalidGrant("an actor of the delegation chain no longer exists")
		}
		if err != nil {
			return err
		}
		if c.Disabled || c.Pending() {
			return oauth.ErrInvalidGrant("an actor of the delegation chain is disabled")
		}
	}
	return nil
}

// exchangeScopes is what the exchange asks the pipeline for: the scopes
// requested, each of which the subject token must hold (a hop never
// widens), or with none requested those of the subject token that the
// target offers. OpenID Connect scopes are never exchanged.
func (s *Server) exchangeScopes(ctx context.Context, c *store.Client, target, requested, held []string) ([]string, *oauth.Error) {
	if slices.Contains(requested, scopeOpenID) {
		return nil, oauth.ErrInvalidScope("OpenID Connect scopes cannot be exchanged")
	}
	if len(requested) > 0 {
		for _, sc := range requested {
			if !slices.Contains(held, sc) {
				return nil, oauth.ErrInvalidScope("scope %q exceeds the subject token's scopes", truncate(sc, 100))
			}
		}
		return requested, nil
	}
	// target is exchangeTarget's canonical form (none: the client's
	// default resource, which proveTokenExchange made sure of).
	uri := c.DefaultResource
	if len(target) > 0 {
		uri = target[0]
	}
	res, oe := s.lookupResource(ctx, uri)
	if oe != nil {
		return nil, oe
	}
	var out []string
	for _, sc := range held {
		if offers(res, sc) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, oauth.ErrInvalidScope("no scope of the subject token is offered by %s", res.URI)
	}
	return out, nil
}

// actorClaim reads an act or may_act claim of a foreign JWT (a JSON object
// with sub, optionally iss and a nested act); unqualified actors are
// named by defaultIssuer. Only identity claims are kept.
func actorClaim(v any, defaultIssuer string) (*token.Actor, error) {
	var out *token.Actor
	prev := &out
	for depth := 0; v != nil; depth++ {
		m, ok := v.(map[string]any)
		if !ok || depth > 32 {
			return nil, errors.New("act: not an object")
		}
		sub, _ := m["sub"].(string)
		if sub == "" {
			return nil, errors.New("act: no sub")
		}
		iss, _ := m["iss"].(string)
		if iss == "" {
			iss = defaultIssuer
		}
		a := &token.Actor{Subject: sub, Issuer: iss}
		*prev, prev = a, &a.Actor
		v = m["act"]
	}
	return out, nil
}

// stringClaim is the first of names that is a non-empty string claim.
func stringClaim(claims map[string]any, names ...string) string {
	for _, n := range names {
		if s, ok := claims[n].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// numberClaim reads an integer claim (a json.Number or a float64).
func numberClaim(claims map[string]any, name string) (int64, bool) {
	switch v := claims[name].(type) {
	case interface{ Int64() (int64, error) }:
		n, err := v.Int64()
		return n, err == nil
	case float64:
		return int64(v), true
	}
	return 0, false
}
