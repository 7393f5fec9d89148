package server

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/consent"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
	"github.com/agentid/agentid/internal/vault"
)

// Credential retrieval: an MCP server that received an agent's access token
// exchanges it (RFC 8693) for the downstream credential the person the
// token is about holds at a provider of the vault. The request names the
// provider as the resource (or audience) <issuer>/providers/<id>; it is
// its own row of the grant table (isRetrieval), after the pipeline has
// authenticated the client and found it confidential, not pending and
// registered for token exchange.
//
// Only the resource server the subject token was minted for may retrieve,
// and only what the person's consent to the agent at that resource still
// covers, through the scopes the resource maps to the provider
// (store.ResourceProvider), as the policy action connect allows. The
// answer is the credential itself; nothing is minted and no hub token is
// recorded. Once the caller is known to be the token's resource server,
// every refusal is recorded (connection.retrieval_denied) and a retrieval
// is recorded with the connection's last use (connection.retrieved);
// neither event ever carries the credential.

// providersPath is the path under the issuer that names providers as
// retrieval targets.
const providersPath = "/providers/"

// providersPrefix is the canonical <issuer>/providers/ that
// providerTarget looks for (computed once: every exchange asks).
func providersPrefix(issuer string) string {
	canon, oe := oauth.CanonicalResource(issuer)
	if oe != nil {
		canon = issuer
	}
	return canon + providersPath
}

// providerIDPattern is a provider id (store.Provider.ID).
var providerIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// connectionMissing is the connection_status of a connection_required
// error when the person holds no usable connection (store.ConnectionNeedsReauth
// when the one they hold must be renewed).
const connectionMissing = "missing"

// defaultRetryAfter is the Retry-After of a provider failure when the
// vault names no later attempt; maxRetryAfter bounds the one it names.
const (
	defaultRetryAfter = 10 * time.Second
	maxRetryAfter     = 5 * time.Minute
)

// isRetrieval selects the token exchanges whose resource or audience
// names a provider of this hub: their row of the grant table. Any one such
// value selects it, so a request mixing a provider with another target is
// refused by the retrieval's rules rather than exchanged.
func (s *Server) isRetrieval(req *oauth.TokenRequest) bool {
	for _, vs := range [][]string{req.Resources, req.Audiences} {
		for _, raw := range vs {
			if _, ok := s.providerTarget(raw); ok {
				return true
			}
		}
	}
	return false
}

// providerTarget returns what follows <issuer>/providers/ in a resource or
// audience value, compared in canonical form (RFC 8707 §2).
func (s *Server) providerTarget(raw string) (string, bool) {
	if !strings.Contains(raw, "%") && !containsFold(raw, "providers") {
		// Canonicalising lowercases the scheme and host, drops a default
		// port and a trailing slash, and escapes bytes into %XX sequences;
		// with no '%' to decode, it cannot make "providers" (in any case)
		// appear where the value has none. Every token exchange asks this
		// (the grant table), so its resource is not parsed an extra time.
		return "", false
	}
	canon, oe := oauth.CanonicalResource(raw)
	if oe != nil || s.providers == "" {
		return "", false
	}
	id, ok := strings.CutPrefix(canon, s.providers)
	if !ok {
		return "", false
	}
	return id, true
}

// containsFold reports whether s contains lower, a string of lowercase
// ASCII letters, in any case.
func containsFold(s, lower string) bool {
next:
	for i := 0; i+len(lower) <= len(s); i++ {
		for j := 0; j < len(lower); j++ {
			if s[i+j]|0x20 != lower[j] {
				continue next
			}
		}
		return true
	}
	return false
}

// retrievalProvider is the one provider a retrieval names: every resource
// and audience value must name it.
func (s *Server) retrievalProvider(req *oauth.TokenRequest) (string, *oauth.Error) {
	var id string
	for _, raw := range append(slices.Clone(req.Resources), req.Audiences...) {
		p, ok := s.providerTarget(raw)
		if !ok || (id != "" && p != id) {
			return "", oauth.ErrInvalidTarget("a credential retrieval names one provider, as resource or audience %s%s<provider>", s.issuer, providersPath)
		}
		id = p
	}
	if !providerIDPattern.MatchString(id) {
		return "", oauth.ErrInvalidTarget("the provider is not known to this hub")
	}
	return id, nil
}

// retrieval is one retrieval under way: what its audit event says.
type retrieval struct {
	fields audit.RetrievalFields
	// subject is the subject token's record when verifying the token read
	// it (nil otherwise): subjectRecordAlive judges it rather than read it
	// again.
	subject *store.AccessToken
}

// refuse records why the retrieval is refused and returns err.
func (rt *retrieval) refuse(reason string, err error) error {
	rt.fields.Reason = reason
	return err
}

// proveConnection answers a credential retrieval (the grant table's row
// selected by isRetrieval) with the downstream credential as the whole
// token response.
func (s *Server) proveConnection(ctx context.Context, r *http.Request, c *store.Client, req *oauth.TokenRequest) (*authorization, error) {
	if s.cfg.Vault == nil || s.cfg.Keyring == nil {
		return nil, oauth.ErrInvalidTarget("this hub keeps no connections")
	}
	switch req.RequestedTokenType {
	case "", oauth.TokenTypeAccessToken:
	default:
		return nil, oauth.NewError(oauth.CodeUnsupportedTokenType, "a credential retrieval issues requested_token_type %s", oauth.TokenTypeAccessToken)
	}
	if req.SubjectTokenType != oauth.TokenTypeAccessToken {
		return nil, oauth.NewError(oauth.CodeUnsupportedTokenType, "a credential is retrieved with the agent's access token (subject_token_type %s)", oauth.TokenTypeAccessToken)
	}
	if req.ActorToken != "" {
		return nil, oauth.ErrInvalidRequest("actor_token is not used by a credential retrieval")
	}
	providerID, oe := s.retrievalProvider(req)
	if oe != nil {
		return nil, oe
	}
	claims, rec, err := s.subjectClaims(ctx, req.SubjectToken)
	if err != nil {
		return nil, err
	}
	res, err := s.resourceServerOf(ctx, c, claims.Audience[0])
	if err != nil {
		return nil, err
	}
	// The caller is the token's resource server: from here every refusal
	// is recorded.
	rt := &retrieval{fields: audit.RetrievalFields{
		ClientID: c.ID, Resource: res.URI, UserID: claims.Subject, SubjectJTI: claims.JTI, ProviderID: providerID,
	}, subject: rec}
	resp, err := s.retrieve(ctx, r, c, req, claims, res, rt)
	if err != nil {
		if oe, ok := errors.AsType[*oauth.Error](err); ok && oe.Code != oauth.CodeServerError {
			if aerr := s.st.AppendAudit(ctx, audit.NewConnectionRetrievalDenied(s.meta(r).WithAgent(c), rt.fields)); aerr != nil {
				return nil, aerr
			}
		}
		return nil, err
	}
	return &authorization{answer: resp}, nil
}

// retrieve runs the checks of a retrieval in the order of the contract
// (docs/design.md, "Connections (the vault)") and fetches the credential.
func (s *Server) retrieve(ctx context.Context, r *http.Request, c *store.Client, req *oauth.TokenRequest, claims *token.AccessClaims, res *store.Resource, rt *retrieval) (*oauth.TokenResponse, error) {
	// The subject token: its record not revoked (nor its family), may_act,
	// and every hub actor of its chain alive. No token is written, so no
	// store statement checks the record for us, as for an exchange.
	if err := s.subjectRecordAlive(ctx, claims.JTI, rt.subject); err != nil {
		return nil, rt.refuse("subject_token", err)
	}
	sub := s.hubSubjectOf(claims)
	agentActor := firstActor(sub.chain)
	act := &token.Actor{Subject: c.ID, Actor: sub.chain}
	rt.fields.Agent, rt.fields.ActChain = agentActor.Subject, strings.Join(chainSubjects(act), " ")
	if !sub.mayAct.permits(c.ID, s.issuer) {
		return nil, rt.refuse("subject_token", oauth.ErrInvalidGrant("the subject token's may_act does not name this client"))
	}
	if err := s.chainAlive(ctx, sub.chain); err != nil {
		return nil, rt.refuse("chain", err)
	}
	// The person and the agent, read from the store: a disable takes
	// effect on the next retrieval, not after a cache's lifetime.
	u, err := s.liveUser(ctx, sub.userID)
	if err != nil {
		return nil, rt.refuse("user", err)
	}
	agent, err := s.liveAgent(ctx, agentActor)
	if err != nil {
		return nil, rt.refuse("agent", err)
	}
	p := &principal{client: agent, user: u, authTime: sub.authTime, act: act}

	// The person's consent to the agent at this resource, judged now.
	snap, err := s.ledger.Snapshot(ctx, consent.Key{UserID: u.ID, ClientID: agent.ID, Resource: res.URI})
	if err != nil {
		return nil, err
	}
	live := snap.Live(sub.scopes)
	if len(live) == 0 {
		return nil, rt.refuse("consent", oauth.ErrInvalidGrant("the user's consent for this agent at this resource has expired or was revoked"))
	}

	// The provider, linked to the resource.
	prov, err := s.st.GetProvider(ctx, s.tenant, rt.fields.ProviderID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, rt.refuse("provider_unknown", oauth.ErrInvalidTarget("the provider is not known to this hub"))
	case err != nil:
		return nil, err
	case prov.Disabled:
		return nil, rt.refuse("provider_disabled", oauth.ErrInvalidTarget("the provider %q is disabled", prov.ID))
	}
	i := slices.IndexFunc(res.Providers, func(l store.ResourceProvider) bool { return l.ProviderID == prov.ID })
	if i < 0 {
		return nil, rt.refuse("provider_not_linked", oauth.ErrInvalidTarget("the resource does not use the provider %q", prov.ID))
	}
	link := &res.Providers[i]

	// The provider scopes: within what the token's scopes reach, and what
	// its live consent still reaches.
	rt.fields.Scopes = providerScopesAsked(req)
	asked, _, oe := reachScopes(link, sub.scopes, rt.fields.Scopes)
	if oe != nil {
		return nil, rt.refuse("scope", oe)
	}
	rt.fields.Scopes = asked
	_, used, oe := reachScopes(link, live, asked)
	if oe != nil {
		return nil, rt.refuse("consent", oauth.ErrInvalidGrant("the user's consent for the scopes that reach %q has expired or was revoked", prov.ID))
	}

	// The agent's ceiling, which may have narrowed since the token was
	// issued, then the policy, on each resource scope used: all or nothing.
	if beyond := slices.DeleteFunc(slices.Clone(used), func(sc string) bool { return policy.WithinCeiling(agent, sc) }); len(beyond) > 0 {
		return nil, rt.refuse("ceiling", oauth.ErrInvalidScope("scope %s is beyond what the agent may hold", strings.Join(beyond, " ")))
	}
	result, err := s.decideConnect(ctx, r, p, res, prov, used)
	if err != nil {
		return nil, err
	}
	rt.fields.PolicyVersion = strconv.FormatInt(result.Version, 10)
	if denied := deniedScopes(result); len(denied) > 0 {
		return nil, rt.refuse("policy", oauth.ErrInvalidScope("the policy does not allow a credential for %q through scope %s", prov.ID, strings.Join(denied, " ")))
	}

	// The credential.
	v := s.cfg.Vault
	conn, err := v.Find(ctx, s.tenant, prov.ID, u.ID, asked)
	switch {
	case errors.Is(err, vault.ErrNoConnection):
		return nil, rt.refuse("no_connection", s.connectionRequired(p, res, prov, asked, connectionMissing))
	case errors.Is(err, vault.ErrNeedsReauth):
		return nil, rt.refuse("needs_reauth", s.connectionRequired(p, res, prov, asked, store.ConnectionNeedsReauth))
	case err != nil:
		return nil, err
	}
	rt.fields.ConnectionID = conn.ID
	cred, err := v.Credential(ctx, s.meta(r), conn, req.ForceRefresh)
	switch {
	case errors.Is(err, vault.ErrNeedsReauth):
		return nil, rt.refuse("needs_reauth", s.connectionRequired(p, res, prov, asked, store.ConnectionNeedsReauth))
	case errors.Is(err, vault.ErrProviderUnavailable):
		return nil, rt.refuse("provider_unavailable", s.providerUnavailable(prov, err))
	case err != nil:
		return nil, err
	}
	now := s.now()
	resp := &oauth.TokenResponse{
		AccessToken: cred.AccessToken, Scope: oauth.FormatScope(cred.Scopes),
		Provider: prov.ID, ConnectionID: conn.ID,
	}
	if cred.Kind == store.ProviderAPIKey {
		// RFC 8693 §2.2.1: N_A for what is not an OAuth access token.
		resp.TokenType, resp.IssuedTokenType = oauth.TokenTypeNA, oauth.TokenTypeAPIKey
		resp.KeyHeader, resp.KeyHeaderValue, resp.KeyQuery = cred.Header, cred.HeaderValue, cred.Query
	} else {
		resp.TokenType, resp.IssuedTokenType = cmp.Or(cred.TokenType, oauth.TokenTypeBearer), oauth.TokenTypeAccessToken
	}
	if !cred.ExpiresAt.IsZero() {
		// The vault refreshes before handing a token out; one that is
		// already expired is a provider that could not refresh it.
		if resp.ExpiresIn = int64(cred.ExpiresAt.Sub(now) / time.Second); resp.ExpiresIn <= 0 {
			return nil, rt.refuse("provider_unavailable", s.providerUnavailable(prov, nil))
		}
	}
	err = s.st.TouchConnection(ctx, s.tenant, conn.ID, now, audit.NewConnectionRetrieved(s.meta(r).WithAgent(c), rt.fields))
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Disconnected while it was being read: nothing is handed out.
		return nil, rt.refuse("no_connection", s.connectionRequired(p, res, prov, asked, connectionMissing))
	case err != nil:
		return nil, err
	}
	return resp, nil
}

// subjectRecordAlive reads the record of a subject token this hub issued:
// invalid_grant unless it is of this tenant and not revoked (revoking its
// family, its person's access or the consent it rests on revokes it too).
// rec, when not nil, is that record as verifying the token read it, moments
// before; it is judged instead of read again.
func (s *Server) subjectRecordAlive(ctx context.Context, jti string, rec *store.AccessToken) error {
	var err error
	if rec == nil || rec.JTI != jti {
		rec, err = s.st.GetAccessToken(ctx, jti)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return oauth.ErrInvalidGrant("the subject token is not known to this server")
	case err != nil:
		return err
	case rec.TenantID != s.tenant:
		return oauth.ErrInvalidGrant("the subject token is not known to this server")
	case !rec.RevokedAt.IsZero():
		return oauth.ErrInvalidGrant("the subject token was revoked")
	}
	return nil
}

// liveAgent reads the agent a subject token was issued to (its first
// actor) from the store: invalid_grant unless it is a client of this hub,
// enabled and not held for review.
func (s *Server) liveAgent(ctx context.Context, a *token.Actor) (*store.Client, error) {
	if a.Issuer != "" && a.Issuer != s.issuer {
		return nil, oauth.ErrInvalidGrant("the subject token's agent is not a client of this server")
	}
	agent, err := s.st.GetClient(ctx, s.tenant, a.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.ErrInvalidGrant("the agent no longer exists")
	}
	if err != nil {
		return nil, err
	}
	if agent.Disabled || agent.Pending() {
		return nil, oauth.ErrInvalidGrant("the agent is disabled")
	}
	return agent, nil
}

// providerScopesAsked are the provider scopes a retrieval asks for, as
// sent: offline_access, which token requests keep apart, is a provider
// scope like any other here.
func providerScopesAsked(req *oauth.TokenRequest) []string {
	asked := slices.Clone(req.Scopes)
	if req.OfflineAccess {
		asked = append(asked, oauth.ScopeOfflineAccess)
	}
	return asked
}

// reachScopes checks the provider scopes asked against what the resource
// scopes held reach through link (ResourceProvider.Scopes). Holding a
// resource scope that link names reaches the provider; asked must be
// within the union of their provider scopes (none asked: all of that
// union). It returns the provider scopes asked and the resource scopes
// used: those held that reach one of them, or with none asked (an API key)
// every one that reaches the provider. invalid_scope names the first
// provider scope out of reach.
func reachScopes(link *store.ResourceProvider, held, asked []string) (provider, used []string, oe *oauth.Error) {
	var reach []string
	for _, sc := range held {
		ps, ok := link.Scopes[sc]
		if !ok {
			continue
		}
		used = append(used, sc)
		for _, p := range ps {
			if !slices.Contains(reach, p) {
				reach = append(reach, p)
			}
		}
	}
	if len(used) == 0 {
		return nil, nil, oauth.ErrInvalidScope("no scope of the subject token reaches the provider %q", link.ProviderID)
	}
	if len(asked) == 0 {
		return reach, used, nil
	}
	for _, p := range asked {
		if !slices.Contains(reach, p) {
			return nil, nil, oauth.ErrInvalidScope("provider scope %q is beyond what the subject token's scopes reach", truncate(p, 100))
		}
	}
	used = slices.DeleteFunc(used, func(sc string) bool {
		return !slices.ContainsFunc(link.Scopes[sc], func(p string) bool { return slices.Contains(asked, p) })
	})
	return asked, used, nil
}

// decideConnect asks the policy's connect action about each resource
// scope a retrieval uses. The principal is the agent, the user the person,
// the resource the MCP server, the service the provider; the chain (the
// MCP server as the current actor) is in the context, as for an exchange.
func (s *Server) decideConnect(ctx context.Context, r *http.Request, p *principal, res *store.Resource, prov *store.Provider, used []string) (*policy.Result, error) {
	now := s.now()
	asked := make([]policy.Scope, len(used))
	for i, name := range used {
		j := slices.IndexFunc(res.Scopes, func(sc store.Scope) bool { return sc.Name == name })
		asked[i] = policy.Scope{Name: name, Sensitive: j >= 0 && res.Scopes[j].Sensitive}
	}
	req := &policy.Request{
		Action:   policy.ActionConnect,
		TenantID: s.tenant,
		Resource: policy.ResourceFromStore(res),
		Scopes:   asked,
		Service:  &policy.Service{Name: prov.ID, TenantID: s.tenant},
		Context: policy.Context{
			GrantType: oauth.GrantTokenExchange, IP: clientIP(r), Time: now,
			Resource: s.issuer + providersPath + prov.ID, AuthMethod: p.client.TokenEndpointAuthMethod,
		},
	}
	p.describe(req, now)
	results, err := s.decideAs(ctx, req, policy.ActionConnect)
	if err != nil {
		return nil, err
	}
	return results[0], nil
}

// deniedScopes are the scopes a policy result did not allow.
func deniedScopes(res *policy.Result) []string {
	var out []string
	for _, d := range res.Decisions {
		if !d.Allowed {
			out = append(out, d.Scope)
		}
	}
	return out
}

// connectionRequired is the connection_required error: the person must
// connect the provider (status "missing") or connect it again
// ("needs_reauth") at connect_uri, a connect page for them, this provider
// and these scopes that says which agent and MCP server asked.
func (s *Server) connectionRequired(p *principal, res *store.Resource, prov *store.Provider, scopes []string, status string) error {
	uri, err := s.connectURL(connectIntent{
		TenantID: s.tenant, UserID: p.user.ID, Provider: prov.ID, Scopes: scopes,
		ClientID: p.client.ID, Resource: res.URI,
	})
	if err != nil {
		return err
	}
	desc := "the user has no connection to %q with the scopes asked; send them to connect_uri"
	if status == store.ConnectionNeedsReauth {
		desc = "the user's connection to %q must be renewed; send them to connect_uri"
	}
	return oauth.NewError(oauth.CodeConnectionRequired, desc, prov.ID).
		With("connect_uri", uri).With("provider", prov.ID).With("connection_status", status)
}

// providerUnavailable is the 503 of a provider that failed to refresh the
// credential, with Retry-After from the vault's next attempt (err, from
// Credential), else defaultRetryAfter.
func (s *Server) providerUnavailable(prov *store.Provider, err error) error {
	after := defaultRetryAfter
	if at, ok := vault.RetryAt(err); ok {
		if d := at.Sub(s.now()); d > 0 {
			after = min(d, maxRetryAfter)
		}
	}
	oe := oauth.NewError(oauth.CodeTemporarilyUnavailable, "the provider %q is unavailable; try again later", prov.ID).With("provider", prov.ID)
	oe.RetryAfter = after
	return oe
}
