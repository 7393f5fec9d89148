package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/federation"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
)

// The JWT bearer grant (RFC 7523 §2.1) carries a JWT from a trusted issuer
// (federation.Registry). What the JWT is decides what it proves:
//
//   - typ oauth-id-jag+jwt: an identity assertion authorization grant from
//     an enterprise IdP (MCP enterprise-managed authorization, the resource
//     authorization server's side): the user, for the authenticated
//     confidential client the ID-JAG names, on the resource it is bound to;
//   - no client authenticated: a workload identity token (Kubernetes,
//     SPIFFE, CI), which the issuer's rules map to an agent acting for
//     itself, created on first use;
//   - a client authenticated: an RFC 7523 assertion about a user.
//
// Every JWT passes the federation checks (issuer trusted for the use and
// enabled, asymmetric signature under its keys, typ, one aud naming the
// hub, lifetime, jti single use); none ever gets a refresh token or rests
// on a consent screen, and none the hub signed itself is accepted.

// proveJWTBearer is the grant's hook.
func (s *Server) proveJWTBearer(ctx context.Context, r *http.Request, c *store.Client, req *oauth.TokenRequest) (*authorization, error) {
	iss, typ, err := federation.Peek(req.Assertion)
	if err != nil {
		return nil, err
	}
	if strings.TrimSuffix(iss, "/") == s.issuer {
		// The hub never accepts its own JWTs as a grant: an ID-JAG it
		// issued as an IdP is for another authorization server, and its
		// access and ID tokens are no assertions (ID-JAG draft §7).
		return nil, oauth.ErrInvalidGrant("the hub does not accept assertions it issued itself")
	}
	switch {
	case federation.SameType(typ, federation.TypeIDJAG):
		return s.proveIDJAG(ctx, c, req)
	case c == nil:
		return s.proveWorkload(ctx, r, req)
	default:
		return s.proveUserAssertion(ctx, c, req)
	}
}

// proveIDJAG accepts an identity assertion authorization grant
// (draft-ietf-oauth-identity-assertion-authz-grant §4.4, MCP EMA).
func (s *Server) proveIDJAG(ctx context.Context, c *store.Client, req *oauth.TokenRequest) (*authorization, error) {
	if c == nil {
		// Only confidential clients (the grant row refuses public ones),
		// which must authenticate: the ID-JAG names the client it is for.
		return nil, oauth.ErrInvalidClient("client authentication is required for an identity assertion grant")
	}
	a, err := s.fed.Verify(ctx, req.Assertion, federation.Expect{
		Use: store.IssuerUseIDJAG, Audiences: []string{s.issuer}, Type: federation.TypeIDJAG,
	})
	if err != nil {
		return nil, err
	}
	if a.Audience != s.issuer {
		return nil, oauth.ErrInvalidGrant("the ID-JAG's aud must be this authorization server's issuer")
	}
	if a.String("client_id") != c.ID {
		return nil, oauth.ErrInvalidGrant("the ID-JAG was issued for another client")
	}
	if err := refuseUnhonoured(a); err != nil {
		return nil, err
	}
	res, err := s.idjagResource(ctx, c, a, req.Resources)
	if err != nil {
		return nil, err
	}
	scopes, err := idjagScopes(a, req.Scopes)
	if err != nil {
		return nil, err
	}
	u, err := s.federatedUser(ctx, a)
	if err != nil {
		return nil, err
	}
	// Spent only now that it proved everything it is asked to: replaying
	// it, by this client or any other, fails from here on.
	if err := s.fed.Consume(ctx, a); err != nil {
		return nil, err
	}
	return &authorization{
		subject:  userSubject(u.ID, authTime(a)),
		resource: []string{res},
		scopes:   scopes,
	}, nil
}

// refuseUnhonoured refuses what the hub cannot honour and must not shed:
// a proof-of-possession binding (cnf), fine-grained authorization_details
// (RFC 9396), and an actor chain (act): the ID-JAG profile leaves act to
// future work, and a delegated token presented as an assertion would come
// out as a token without its chain, a path that drops act (only token
// exchange carries a chain on). Issuing a token without them would widen
// what the issuer granted.
func refuseUnhonoured(a *federation.Assertion) error {
	if a.Has("cnf") {
		return oauth.ErrInvalidGrant("the assertion is bound to a key (cnf), which the hub cannot honour")
	}
	if a.Has("authorization_details") {
		return oauth.ErrInvalidGrant("the assertion carries authorization_details, which the hub cannot honour")
	}
	if a.Has("act") {
		return oauth.ErrInvalidGrant("the assertion carries an actor chain (act), which the hub does not take from an assertion")
	}
	return nil
}

// refuseResourceAudience refuses an assertion whose aud names one of the
// hub's registered resources. An issuer trusted for subject tokens lists
// its resource servers among its audiences, and those audiences apply to
// every use of the issuer; but a JWT minted for a resource server is that
// server's to exchange (token exchange, with its act and the confused-
// deputy rule), never a grant for whoever holds it: RFC 7523 §3 (3), the
// aud of an assertion identifies the authorization server.
func (s *Server) refuseResourceAudience(ctx context.Context, a *federation.Assertion) error {
	if a.Audience == s.issuer || a.Audience == s.issuer+"/token" {
		return nil
	}
	_, oe := s.lookupResource(ctx, a.Audience)
	switch {
	case oe == nil:
		return oauth.ErrInvalidGrant("the assertion's aud names a resource server, not this authorization server")
	case oe.Code == oauth.CodeInvalidTarget:
		return nil
	}
	return oe
}

// idjagResource is the resource the ID-JAG is bound to: its resource
// claim, which must be a registered resource; without one (some IdPs send
// none), the client's only resource — its default resource, or the
// tenant's one resource. Resource parameters of the request must name the
// same resource.
func (s *Server) idjagResource(ctx context.Context, c *store.Client, a *federation.Assertion, asked []string) (string, error) {
	var uri string
	switch v := a.Claims["resource"].(type) {
	case nil:
		if a.Has("resource") {
			return "", oauth.ErrInvalidGrant("the ID-JAG's resource is not a string")
		}
		uri = c.DefaultResource
		if uri == "" {
			resources, err := s.st.ListResources(ctx, s.tenant)
			if err != nil {
				return "", err
			}
			if len(resources) != 1 {
				return "", oauth.ErrInvalidGrant("the ID-JAG names no resource and the client may reach more than one")
			}
			uri = resources[0].URI
		}
	case string:
		canon, oe := oauth.CanonicalResource(v)
		if oe != nil {
			return "", oauth.ErrInvalidGrant("the ID-JAG's resource is not a valid resource indicator")
		}
		if _, oe := s.lookupResource(ctx, canon); oe != nil {
			if oe.Code == oauth.CodeInvalidTarget {
				return "", oauth.ErrInvalidGrant("the ID-JAG's resource is not registered at this authorization server")
			}
			return "", oe
		}
		uri = canon
	default:
		return "", oauth.ErrInvalidGrant("the ID-JAG's resource is not a string")
	}
	for _, raw := range asked {
		canon, oe := oauth.CanonicalResource(raw)
		if oe != nil || canon != uri {
			return "", oauth.ErrInvalidGrant("the requested resource is not the one the ID-JAG is bound to")
		}
	}
	return uri, nil
}

// idjagScopes are the scopes asked of an ID-JAG: the requested ones that
// it grants (MCP EMA §7.2.1), or all it grants when none are requested.
// An ID-JAG without a scope claim limits nothing beyond the request.
func idjagScopes(a *federation.Assertion, asked []string) ([]string, error) {
	if !a.Has("scope") {
		return asked, nil
	}
	raw, ok := a.Claims["scope"].(string)
	if !ok {
		return nil, oauth.ErrInvalidGrant("the ID-JAG's scope is not a string")
	}
	granted, _, oe := oauth.ParseRequestedScope(raw)
	if oe != nil {
		return nil, oauth.ErrInvalidGrant("the ID-JAG's scope is malformed")
	}
	if len(granted) == 0 {
		return nil, oauth.ErrInvalidScope("the ID-JAG grants no scope")
	}
	if len(asked) == 0 {
		return granted, nil
	}
	var out []string
	for _, sc := range asked {
		if slices.Contains(granted, sc) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, oauth.ErrInvalidScope("none of the requested scopes is granted by the ID-JAG")
	}
	return out, nil
}

// authTime is the assertion's auth_time (zero when absent or not a
// number).
func authTime(a *federation.Assertion) time.Time {
	n, ok := a.Claims["auth_time"].(interface{ Int64() (int64, error) })
	if !ok {
		return time.Time{}
	}
	sec, err := n.Int64()
	if err != nil || sec <= 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}

// federatedUser is the local user an assertion names through its
// issuer's UserClaim: "sub" (the default) and "preferred_username" match a
// username, "email" the verified email of exactly one user.
//
// An issuer speaks only for the people it may speak for (speaksFor): the
// hub's own, and a connector's people only when the connector's provider
// is this very issuer. A person who signs in through a connector is that
// provider's to vouch for: another trusted issuer naming their address or
// username (or a sub equal to it) would otherwise get tokens for them. And
// a subject names a person only at its issuer (OpenID Connect Core §5.7),
// so with "sub" such a person is found by their subject at the provider
// (User.ExternalSubject), never by a username that happens to equal it.
func (s *Server) federatedUser(ctx context.Context, a *federation.Assertion) (*store.User, error) {
	claim := a.Issuer.UserClaim
	if claim == "" {
		claim = "sub"
	}
	v := a.String(claim)
	if v == "" {
		return nil, oauth.ErrInvalidGrant("the assertion has no %s claim naming the user", claim)
	}
	unknown := oauth.ErrInvalidGrant("the assertion's user is not known to this authorization server")
	own, err := s.issuerConnectors(ctx, a.Issuer)
	if err != nil {
		return nil, err
	}
	speaksFor := func(u *store.User) bool { return u.ConnectorID == "" || own[u.ConnectorID] }
	switch claim {
	case "sub", "preferred_username":
		if claim == "sub" && len(own) > 0 {
			users, err := s.st.ListUsers(ctx, s.tenant)
			if err != nil {
				return nil, err
			}
			for _, u := range users {
				if own[u.ConnectorID] && u.ExternalSubject == v {
					return u, nil
				}
			}
		}
		u, err := s.st.GetUserByUsername(ctx, s.tenant, v)
		if errors.Is(err, store.ErrNotFound) {
			return nil, unknown
		}
		if err != nil {
			return nil, err
		}
		if !speaksFor(u) || claim == "sub" && u.ConnectorID != "" {
			return nil, unknown
		}
		return u, nil
	case "email":
		users, err := s.st.ListUsers(ctx, s.tenant)
		if err != nil {
			return nil, err
		}
		var found *store.User
		for _, u := range users {
			if u.EmailVerified && strings.EqualFold(u.Email, v) && speaksFor(u) {
				if found != nil {
					return nil, oauth.ErrInvalidGrant("the assertion's email names more than one user")
				}
				found = u
			}
		}
		if found == nil {
			return nil, unknown
		}
		return found, nil
	}
	return nil, oauth.ErrInvalidGrant("the issuer's user claim %q is not supported", claim)
}

// issuerConnectors are the ids of the tenant's connectors whose provider
// is the trusted issuer iss (the same iss, exactly): the connectors whose
// people iss may name.
func (s *Server) issuerConnectors(ctx context.Context, iss *store.Issuer) (map[string]bool, error) {
	cs, err := s.st.ListConnectors(ctx, s.tenant)
	if err != nil {
		return nil, err
	}
	own := map[string]bool{}
	for _, c := range cs {
		if c.Type != store.ConnectorSAML && c.Issuer == iss.Issuer {
			own[c.ID] = true
		}
	}
	return own, nil
}

// assertionAudiences are the aud values an RFC 7523 assertion or a
// workload token may carry when its issuer names none: the hub's issuer
// or its token endpoint, one of them (RFC 7523bis; the workload identity
// draft names the token endpoint).
func (s *Server) assertionAudiences() []string {
	return []string{s.issuer, s.issuer + "/token"}
}

// proveWorkload accepts a workload identity token: the agent its issuer's
// rules map it to acts for itself.
func (s *Server) proveWorkload(ctx context.Context, r *http.Request, req *oauth.TokenRequest) (*authorization, error) {
	a, err := s.fed.Verify(ctx, req.Assertion, federation.Expect{
		Use: store.IssuerUseWorkload, Audiences: s.assertionAudiences(), SingleUse: true,
	})
	if err != nil {
		return nil, err
	}
	if err := refuseUnhonoured(a); err != nil {
		return nil, err
	}
	if err := s.refuseResourceAudience(ctx, a); err != nil {
		return nil, err
	}
	c, err := s.workloadAgent(ctx, r, a)
	if err != nil {
		return nil, err
	}
	return &authorization{subject: clientSubject(), resource: req.Resources, scopes: req.Scopes, client: c}, nil
}

// proveUserAssertion accepts an RFC 7523 §2.1 assertion about a user from
// an issuer trusted for it, presented by an authenticated client.
func (s *Server) proveUserAssertion(ctx context.Context, c *store.Client, req *oauth.TokenRequest) (*authorization, error) {
	a, err := s.fed.Verify(ctx, req.Assertion, federation.Expect{
		Use: store.IssuerUseJWTBearer, Audiences: s.assertionAudiences(), SingleUse: true,
	})
	if err != nil {
		return nil, err
	}
	if err := refuseUnhonoured(a); err != nil {
		return nil, err
	}
	if err := s.refuseResourceAudience(ctx, a); err != nil {
		return nil, err
	}
	if a.Has("client_id") && a.String("client_id") != c.ID {
		return nil, oauth.ErrInvalidGrant("the assertion was issued for another client")
	}
	u, err := s.federatedUser(ctx, a)
	if err != nil {
		return nil, err
	}
	return &authorization{subject: userSubject(u.ID, authTime(a)), resource: req.Resources, scopes: req.Scopes}, nil
}

// workloadAgent is the agent a verified workload token maps to through its
// issuer's rules, created on first use (store.RegistrationWorkload): it has
// no secret and no keys, and authenticates only with that issuer's tokens.
// An existing client of that id that is not this issuer's workload agent
// is never taken over.
func (s *Server) workloadAgent(ctx context.Context, r *http.Request, a *federation.Assertion) (*store.Client, error) {
	id, rule, ok := federation.Agent(a)
	if !ok {
		if rule != nil {
			return nil, oauth.ErrInvalidGrant("the issuer's rule for this workload does not yield a valid agent id")
		}
		return nil, oauth.ErrInvalidGrant("no rule of the issuer maps this workload to an agent")
	}
	c, err := s.st.GetClient(ctx, s.tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		c, err = s.createWorkloadAgent(ctx, r, a.Issuer, id, rule)
		if errors.Is(err, store.ErrConflict) {
			// Created concurrently, by another request or replica.
			c, err = s.st.GetClient(ctx, s.tenant, id)
		}
	}
	if err != nil {
		return nil, err
	}
	if c.RegistrationMethod != store.RegistrationWorkload || c.FederatedIssuer != a.Issuer.ID {
		return nil, oauth.ErrInvalidGrant("the agent this workload maps to belongs to another issuer or is not a workload agent")
	}
	return c, nil
}

// createWorkloadAgent registers the agent of a workload: grant types
// jwt-bearer and client_credentials (its token as client_assertion), the
// rule's scopes as requested scopes (the ceiling follows the policy's
// register action) and as cc:<scope> tags, which the default policy reads
// as the scopes an admin allowed it without a user.
func (s *Server) createWorkloadAgent(ctx context.Context, r *http.Request, is *store.Issuer, id string, rule *store.IssuerRule) (*store.Client, error) {
	now := s.now()
	c := &store.Client{
		TenantID: s.tenant, ID: id, Name: id,
		GrantTypes:              []string{oauth.GrantJWTBearer, oauth.GrantClientCredentials},
		TokenEndpointAuthMethod: "private_key_jwt",
		ApplicationType:         "web",
		RegistrationMethod:      store.RegistrationWorkload,
		FederatedIssuer:         is.ID,
		Status:                  store.ClientActive,
		CreatedIP:               clientIP(r),
		CreatedAt:               now, UpdatedAt: now,
	}
	for _, sc := range rule.Scopes {
		c.Tags = append(c.Tags, "cc:"+sc)
	}
	resources, err := s.st.ListResources(ctx, s.tenant)
	if err != nil {
		return nil, err
	}
	probe := *c
	probe.RequestedScopes = slices.Clone(rule.Scopes)
	cl, err := s.policy.Ceiling(ctx, &probe, resources, policy.Context{IP: clientIP(r), Time: now})
	if err != nil {
		return nil, err
	}
	c.RequestedScopes, c.Scopes = probe.RequestedScopes, cl.Scopes
	ev := audit.NewClientRegistered(s.meta(r).WithAgent(c), audit.ClientRegisteredFields{
		ClientID: c.ID, Name: c.Name, Method: c.RegistrationMethod, AuthMethod: c.TokenEndpointAuthMethod,
		Ceiling: c.Scopes, Policy: cl.Audit(),
	})
	if err := s.st.CreateClient(ctx, c, ev); err != nil {
		return nil, err
	}
	return c, nil
}
