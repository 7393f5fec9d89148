package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// grant is one row of the grant table: a grant_type the token endpoint
// serves, what the pipeline asks of the client before the grant's hook runs,
// and the hook. The hook only proves the grant (a code, a refresh token, the
// client's own credentials) and says what it authorizes; client
// authentication, the resource, the subject being alive, the policy, the
// scopes, consent, lifetimes, minting and the one store write belong to the
// pipeline (token.go), so a grant cannot forget a check. Adding a grant is one
// row in defaultGrants and one grant_*.go file with its hook.
//
// One grant type may have several rows when its requests come in kinds
// that are proven differently (token exchange: to a resource, for an
// ID-JAG, for a downstream credential): each but the last has a match, and
// the first row of the type that matches the request serves it. Rows of
// one type share clientAuth and public, so the client checks before the
// hook, metadata and registration see one grant type.
type grant struct {
	// typ is the grant_type value (RFC 6749 §4.1.3, §4.4.2, §6).
	typ string
	// match, when set, selects the requests of typ this row serves; a row
	// without one serves every request of typ no earlier row matched.
	match func(s *Server, req *oauth.TokenRequest) bool
	// clientAuth: the client must authenticate (RFC 6749 §3.2.1); a public
	// client does so by its client_id alone. Without it a client is
	// authenticated only when the request names one (RFC 7523 §3.1 makes
	// client authentication optional for jwt-bearer).
	clientAuth bool
	// public: public clients may use the grant (RFC 6749 §2.1).
	public bool
	// prove checks the grant and returns what it authorizes. c is nil only
	// for a grant without clientAuth whose request named no client.
	prove func(s *Server, ctx context.Context, r *http.Request, c *store.Client, req *oauth.TokenRequest) (*authorization, error)
}

// defaultGrants is the grant table agentid serves. Each call returns a new
// table, so a Server owns its own (tests add grants to one server).
func defaultGrants() []grant {
	return []grant{
		{typ: oauth.GrantAuthorizationCode, clientAuth: true, public: true, prove: (*Server).proveAuthorizationCode},
		{typ: oauth.GrantRefreshToken, clientAuth: true, public: true, prove: (*Server).proveRefreshToken},
		{typ: oauth.GrantClientCredentials, clientAuth: true, public: false, prove: (*Server).proveClientCredentials},
		// RFC 7523 §2.1 (grant_jwtbearer.go): client authentication is
		// optional, as a workload token identifies its agent itself; an
		// ID-JAG or a user assertion needs an authenticated confidential
		// client.
		{typ: oauth.GrantJWTBearer, clientAuth: false, public: false, prove: (*Server).proveJWTBearer},
		// RFC 8693 token exchange, in three kinds: for an ID-JAG
		// (grant_idjag.go), for a downstream credential of the vault
		// (grant_connection.go), and to a resource (grant_exchange.go).
		{typ: oauth.GrantTokenExchange, match: wantsIDJAG, clientAuth: true, public: false, prove: (*Server).proveIDJAGExchange},
		{typ: oauth.GrantTokenExchange, match: (*Server).isRetrieval, clientAuth: true, public: false, prove: (*Server).proveConnection},
		{typ: oauth.GrantTokenExchange, clientAuth: true, public: false, prove: (*Server).proveTokenExchange},
	}
}

// GrantTypes lists the grant types the token endpoint serves, for
// registration (RFC 7591 §2) to accept exactly those.
func GrantTypes() []oauth.SupportedGrant { return supportedGrants(defaultGrants()) }

// supportedGrants are the grant types of table, once each, in table order.
func supportedGrants(table []grant) []oauth.SupportedGrant {
	var out []oauth.SupportedGrant
	for _, g := range table {
		if !slices.ContainsFunc(out, func(sg oauth.SupportedGrant) bool { return sg.Type == g.typ }) {
			out = append(out, oauth.SupportedGrant{Type: g.typ, Public: g.public})
		}
	}
	return out
}

// grantTypeNames are the grant_type values of table, once each, in table
// order.
func grantTypeNames(table []grant) []string {
	var out []string
	for _, g := range table {
		if !slices.Contains(out, g.typ) {
			out = append(out, g.typ)
		}
	}
	return out
}

// grant returns the row of grant type typ that serves the requests no
// other row of the type matches.
func (s *Server) grant(typ string) (*grant, bool) {
	for i := range s.grants {
		if s.grants[i].typ == typ && s.grants[i].match == nil {
			return &s.grants[i], true
		}
	}
	return nil, false
}

// grantFor returns the row that serves req: the first of its grant type
// whose match accepts it.
func (s *Server) grantFor(req *oauth.TokenRequest) (*grant, bool) {
	for i := range s.grants {
		g := &s.grants[i]
		if g.typ == req.GrantType && (g.match == nil || g.match(s, req)) {
			return g, true
		}
	}
	return nil, false
}

// admit checks that client c may use g: it is registered for the grant
// (RFC 7591 §2), and confidential unless the grant admits public clients.
func (g *grant) admit(c *store.Client) error {
	if !slices.Contains(c.GrantTypes, g.typ) {
		return oauth.ErrUnauthorizedClient("the client is not registered for the %s grant", g.typ)
	}
	if !g.public && c.Public() {
		return oauth.ErrUnauthorizedClient("public clients cannot use %s", g.typ)
	}
	return nil
}

// authorization is what a grant hook proved: whom the token is about, what is
// asked for and which token family it continues. Nothing in it has been
// checked against the registry, the policy or the consent ledger yet; that
// is the pipeline's work.
type authorization struct {
	// answer, when set, is the whole response: the grant issued something
	// that is not an access token of the hub (an ID-JAG, grant_idjag.go)
	// on its own short path, after the pipeline's client checks. Nothing
	// else of the authorization is then used.
	answer *oauth.TokenResponse

	subject subject
	// resource is the resource asked for, unresolved: the request's resource
	// parameters (RFC 8707 §2), or the one resource the grant is bound to.
	resource []string
	// scopes are the resource scopes asked for; none means the client's
	// registered scopes on the resource.
	scopes []string
	// oidc are the OpenID Connect scopes granted with them (openid,
	// profile): with openid, the response carries an ID token.
	oidc []string
	// nonce is the authorization request's nonce, for the ID token
	// (OpenID Connect Core §3.1.3.6); refreshes carry none (§12.2).
	nonce  string
	family family
	// consent: the person's consent applies. Only scopes with live consent
	// are issued, and no token outlives the consent behind it.
	consent bool
	// refresh: a refresh token may be issued (to a client registered for
	// the refresh_token grant).
	refresh bool
	// client is the agent the grant itself identified when the request
	// authenticated no client (a workload JWT through the jwt-bearer
	// grant): the pipeline checks and issues to it as if it had
	// authenticated. Nil otherwise.
	client *store.Client
	// notAfter caps the access token's expiry (token exchange: never later
	// than the subject token's). Zero: no cap.
	notAfter time.Time
	// issuedTokenType is the issued_token_type of the response (RFC 8693
	// §2.2.1); "" for grants whose response carries none.
	issuedTokenType string
	// subjectJTI is the jti of the token a token exchange consumed, for
	// the audit event; "" otherwise.
	subjectJTI string
}

// check rejects an authorization no grant may return; failing it is a bug
// in the hook, answered as a server error.
func (a *authorization) check() error {
	if a.consent && !a.subject.isUser() {
		return errors.New("grant: consent applies only to tokens about a person")
	}
	if a.refresh && a.family.id == "" {
		// Reuse detection revokes by family (OAuth 2.1 §4.3.1).
		return errors.New("grant: a refresh token needs a token family")
	}
	if a.refresh && a.subject.act != nil {
		// A delegated token is never refreshed (RFC 8693 §2.2.1): the
		// actor exchanges again while the subject token lives.
		return errors.New("grant: no refresh token for a delegated token")
	}
	return nil
}

// family is the token family an issuance continues: every token of one
// authorization shares its id, so that a replayed code or a reused refresh
// token revokes them all (RFC 6749 §4.1.2, OAuth 2.1 §4.3.1).
type family struct {
	// id is empty for tokens of no family (client credentials).
	id string
	// scopes are what a new refresh token carries: the grant's whole scope
	// (RFC 6749 §6), which a narrowed access token may not. Nil: the scopes
	// asked for.
	scopes []string
	// oidc are the OpenID Connect scopes a new refresh token carries
	// beside them.
	oidc []string
	// rotate is the refresh token this issuance retires, if any.
	rotate *store.RefreshToken
	// exchanged: the family is that of the hub access token a token
	// exchange presented (authorization.subjectJTI), which the store reads
	// from its record when it writes the new token, refusing a record
	// revoked by then (store.Issuance.SubjectJTI). id is then empty.
	exchanged bool
	// installation is the redirect URI of the authorization the family
	// came from, as oauth.InstallationURI names it ("" for grants without
	// one): the refresh and access tokens carry it, so that a person can
	// sign one installation of a Client ID Metadata Document client out
	// (store.Tokens.RevokeInstallation).
	installation string
}

// subject is whom a token is about, as the grant proved it.
type subject struct {
	// userID is the person the client acts for; empty when the client acts
	// for itself.
	userID string
	// authTime is when the person last logged in (OpenID Connect Core §2).
	authTime time.Time
	// act is the delegation chain (RFC 8693 §4.1) the token carries, the
	// current actor outermost: set by token exchange, nil otherwise.
	act *token.Actor
}

// clientSubject is the client acting for itself (client credentials).
func clientSubject() subject { return subject{} }

// userSubject is a person the client acts for.
func userSubject(userID string, authTime time.Time) subject {
	return subject{userID: userID, authTime: authTime}
}

func (sub subject) isUser() bool { return sub.userID != "" }

// act is the delegation chain of the authorization (nil: none).
func (a *authorization) act() *token.Actor { return a.subject.act }

// principal is a subject the pipeline found alive: a user who exists and is
// not disabled, or an enabled client acting for itself.
type principal struct {
	client   *store.Client
	user     *store.User // nil when the client acts for itself
	authTime time.Time
	// act is the delegation chain of the token (nil: none), which the
	// policy sees.
	act *token.Actor
}

// checkSubject finds the subject of a token alive. A user who was deleted
// or disabled since the grant was given ends the grant (invalid_grant).
func (s *Server) checkSubject(ctx context.Context, c *store.Client, sub subject) (principal, error) {
	if c.Disabled {
		return principal{}, oauth.ErrInvalidClient("client is disabled")
	}
	if !sub.isUser() {
		return principal{client: c, act: sub.act}, nil
	}
	u, err := s.issuingUser(ctx, sub.userID)
	if err != nil {
		return principal{}, err
	}
	return principal{client: c, user: u, authTime: sub.authTime, act: sub.act}, nil
}

// issuingUser is liveUser for the issuance pipeline, cached like clients
// and resources until the change feed reports the person changed: the
// store's issuance re-checks, in the transaction that writes the token,
// that the user exists and is enabled (store.LiveCheck, set by persist),
// so a user disabled or deleted a moment ago still gets nothing. What the
// cache can serve stale, for at most the feed's bound, is the rest of the
// row (roles, groups, profile) that policy and the ID token read, as it
// does for clients. Only enabled users are remembered; a disabled or
// missing one is read again every time.
func (s *Server) issuingUser(ctx context.Context, id string) (*store.User, error) {
	return s.users.get(id, func() (*store.User, error) { return s.liveUser(ctx, id) })
}

// liveUser reads the user a token is about from the store (never a cache):
// invalid_grant when deleted or disabled. Paths whose write does not check
// the user again use it; issuances use issuingUser.
func (s *Server) liveUser(ctx context.Context, id string) (*store.User, error) {
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

// userID is the person's id, or "" when the client acts for itself.
func (p *principal) userID() string {
	if p.user == nil {
		return ""
	}
	return p.user.ID
}

// sub is the token's sub claim: the person, or the client itself.
func (p *principal) sub() string {
	if p.user == nil {
		return p.client.ID
	}
	return p.user.ID
}

// describe fills the principal's part of a policy request: the agent, and
// the user with the age of their login when there is one.
func (p *principal) describe(req *policy.Request, now time.Time) {
	req.Agent = policy.AgentFromClient(p.client)
	req.Context.ChainDepth = p.act.Depth()
	req.Context.Actors = chainSubjects(p.act)
	if first := firstActor(p.act); first != nil {
		req.Context.FirstActor = actorName(first)
	}
	if p.user == nil {
		return
	}
	req.User = policy.UserFromStore(p.user)
	req.Context.AuthAge = p.authAge(now)
}

// authAge is how long ago the person logged in (zero when unknown).
func (p *principal) authAge(now time.Time) time.Duration {
	if p.user == nil || p.authTime.IsZero() {
		return 0
	}
	return now.Sub(p.authTime)
}

// chainSubjects are the actors of a delegation chain, the current actor
// first (nil for none), each by actorName.
func chainSubjects(a *token.Actor) []string {
	var out []string
	for ; a != nil; a = a.Actor {
		out = append(out, actorName(a))
	}
	return out
}

// actorName is how the policy and the audit trail name an actor: the hub's
// own actors (no iss) by their client id; an actor another issuer vouches
// for by "iss#sub", so that a foreign client never passes for the hub's
// client of the same name (a hub client id has no '#', RFC 3986
// unreserved characters or a fragment-less URL). The sub is escaped so the
// name holds no space (audit lists are space-separated).
func actorName(a *token.Actor) string {
	if a.Issuer == "" {
		return a.Subject
	}
	return a.Issuer + "#" + url.PathEscape(a.Subject)
}

// firstActor is the innermost actor of a chain: the agent the person
// first authorized (nil for none).
func firstActor(a *token.Actor) *token.Actor {
	for a != nil && a.Actor != nil {
		a = a.Actor
	}
	return a
}
