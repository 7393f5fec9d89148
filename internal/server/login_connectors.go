package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/connectors"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// Upstream sign-in (internal/connectors): the login page offers each
// enabled connector; GET /login/connectors/{id} sends the person to its
// provider and /login/connectors/{id}/callback, the redirect URI
// registered there, signs them in.

// connectorPathPrefix is where connector sign-in lives; attempt cookies
// are confined to it.
const connectorPathPrefix = "/login/connectors/"

// connectorAttemptAAD binds a sealed attempt cookie to its purpose.
const connectorAttemptAAD = "connector-attempt"

// connectorAttemptCookie names the attempt cookies (one per attempt).
const connectorAttemptCookie = "agentid_signin"

// connectorStateKey namespaces the single-use states in store.UseJTI.
const connectorStateKey = "connector-state"

// maxLoginHint bounds a login_hint the hub passes on or matches.
const maxLoginHint = 256

// connectorsOn reports whether people may sign in through connectors: a
// registry to run them and a keyring to seal the attempts.
func (s *Server) connectorsOn() bool { return s.cfg.Connectors != nil && s.cfg.Keyring != nil }

// connectorRedirectURI is the redirect URI of connector id, registered at
// its provider.
func (s *Server) connectorRedirectURI(id string) string {
	return s.issuer + connectorPathPrefix + id + "/callback"
}

// enabledConnectors lists the connectors the login page offers.
func (s *Server) enabledConnectors(ctx context.Context) ([]*store.Connector, error) {
	if !s.connectorsOn() {
		return nil, nil
	}
	all, err := s.st.ListConnectors(ctx, "")
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, c := range all {
		if !c.Disabled {
			out = append(out, c)
		}
	}
	return out, nil
}

// connectorForEmail returns the enabled connector whose email domains
// hold the address's domain, or nil.
func (s *Server) connectorForEmail(ctx context.Context, addr string) (*store.Connector, error) {
	_, domain, ok := strings.Cut(strings.TrimSpace(addr), "@")
	if !ok || domain == "" || strings.Contains(domain, "@") || len(addr) > maxLoginHint {
		return nil, nil
	}
	domain = strings.ToLower(domain)
	cs, err := s.enabledConnectors(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		for _, d := range c.EmailDomains {
			if d == domain {
				return c, nil
			}
		}
	}
	return nil, nil
}

// routeToConnector sends the browser to the connector whose email domain
// addr has, with addr as the login_hint, and reports whether it answered
// (an error page counts).
func (s *Server) routeToConnector(w http.ResponseWriter, r *http.Request, addr, returnTo string) bool {
	if addr == "" {
		return false
	}
	c, err := s.connectorForEmail(r.Context(), addr)
	switch {
	case err != nil:
		s.internalErrorPage(w, r, err)
		return true
	case c == nil:
		return false
	}
	http.Redirect(w, r, connectorStartURL(c, returnTo, addr), http.StatusSeeOther)
	return true
}

// connectorStartURL is the login page's link that starts a sign-in
// through connector c (a SAML connector's AuthnRequest carries no hint).
func connectorStartURL(c *store.Connector, returnTo, hint string) string {
	q := url.Values{"return_to": {returnTo}}
	if c.Type == store.ConnectorSAML {
		return samlPathPrefix + c.ID + "?" + q.Encode()
	}
	if hint != "" {
		q.Set("login_hint", hint)
	}
	return connectorPathPrefix + c.ID + "?" + q.Encode()
}

// connectorLabel names a connector on pages.
func connectorLabel(c *store.Connector) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// viaConnector is the name of the connector u signs in through, "" for a
// local user (pages say "through …").
func (s *Server) viaConnector(ctx context.Context, u *store.User) string {
	if u == nil || u.ConnectorID == "" {
		return ""
	}
	c, err := s.st.GetConnector(ctx, u.ConnectorID)
	if err != nil {
		return u.ConnectorID
	}
	return connectorLabel(c)
}

// cleanHint keeps a login_hint that is short printable text, else "".
func cleanHint(h string) string {
	h = strings.TrimSpace(h)
	if len(h) > maxLoginHint {
		return ""
	}
	for _, r := range h {
		if r < 0x20 || r == 0x7f {
			return ""
		}
	}
	return h
}

// attemptCookieName names the cookie of the attempt with this state; each
// attempt has its own so that two tabs can sign in at once. __Secure-
// rather than __Host-: the cookie is confined to connectorPathPrefix.
func (s *Server) attemptCookieName(state string) string {
	name := connectorAttemptCookie + "_" + connectors.AttemptCookieSuffix(state)
	if s.secure {
		return "__Secure-" + name
	}
	return name
}

// attemptCookiePath is connectorPathPrefix as the browser sees it.
func (s *Server) attemptCookiePath() string {
	if u, err := url.Parse(s.issuer); err == nil {
		return strings.TrimSuffix(u.Path, "/") + connectorPathPrefix
	}
	return connectorPathPrefix
}

// handleConnectorStart sends the person to the connector's provider. It
// keeps the attempt (state, nonce, PKCE verifier, where to return) sealed
// in a cookie of this browser: HttpOnly, SameSite=Lax (the provider sends
// the person back with a cross-site top-level GET), only sent to the
// connector paths, gone after connectors.AttemptTTL.
func (s *Server) handleConnectorStart(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, ok := s.connectorFor(w, r)
	if !ok {
		return
	}
	returnTo := safeReturn(r.URL.Query().Get("return_to"))
	if c.Type == store.ConnectorSAML {
		http.Redirect(w, r, connectorStartURL(c, returnTo, ""), http.StatusSeeOther)
		return
	}
	authURL, a, err := s.cfg.Connectors.Begin(ctx, c, s.connectorRedirectURI(c.ID), cleanHint(r.URL.Query().Get("login_hint")), returnTo)
	if err != nil {
		s.connectorFailed(w, r, c, returnTo, err)
		return
	}
	b, err := json.Marshal(a)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	sealed, err := s.cfg.Keyring.Seal(s.rand, b, connectorAttemptAAD)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: s.attemptCookieName(a.State), Value: string(sealed), Path: s.attemptCookiePath(),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
		MaxAge: int(connectors.AttemptTTL / time.Second), Expires: s.now().Add(connectors.AttemptTTL),
	})
	http.Redirect(w, r, authURL, http.StatusSeeOther)
}

// connectorFor finds the enabled connector the path names, or answers
// with a page saying it does not exist.
func (s *Server) connectorFor(w http.ResponseWriter, r *http.Request) (*store.Connector, bool) {
	id := r.PathValue("id")
	if !store.ValidConnectorID(id) {
		s.pages.errorPage(w, http.StatusNotFound, "Unknown sign-in option", "This sign-in option does not exist.")
		return nil, false
	}
	c, err := s.st.GetConnector(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.pages.errorPage(w, http.StatusNotFound, "Unknown sign-in option", "This sign-in option does not exist.")
		return nil, false
	case err != nil:
		s.internalErrorPage(w, r, err)
		return nil, false
	case c.Disabled:
		s.pages.errorPage(w, http.StatusNotFound, "Sign-in option turned off", "An administrator turned this sign-in option off.")
		return nil, false
	}
	return c, true
}

// errAttempt: the attempt cookie is missing, does not open, is another
// connector's or has expired, or the state is not its. The page says the
// same for all of them.
var errAttempt = errors.New("connector attempt missing, mismatched or expired")

// openAttempt returns this browser's attempt for the callback's state.
func (s *Server) openAttempt(r *http.Request, connectorID, state string) (*connectors.Attempt, error) {
	if state == "" || len(state) > 512 {
		return nil, errAttempt
	}
	ck, err := r.Cookie(s.attemptCookieName(state))
	if err != nil || ck.Value == "" || len(ck.Value) > maxFlowCookie {
		return nil, errAttempt
	}
	b, err := s.cfg.Keyring.Open([]byte(ck.Value), connectorAttemptAAD)
	if err != nil {
		return nil, errAttempt
	}
	var a connectors.Attempt
	if err := json.Unmarshal(b, &a); err != nil || a.ConnectorID != connectorID {
		return nil, errAttempt
	}
	// RFC 6749 §10.12: the state must be the one this browser's attempt sent.
	if !s.cfg.Connectors.CheckState(&a, state) {
		return nil, errAttempt
	}
	return &a, nil
}

// handleConnectorCallback finishes a sign-in through a connector: the
// attempt of this browser for the state (single use on every replica),
// the code exchange and ID token checks (connectors.Registry.Finish),
// then the person is provisioned or refreshed and signed in, in one
// transaction with the session and the user.signed_in event.
func (s *Server) handleConnectorCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	id := r.PathValue("id")
	a, err := s.openAttempt(r, id, state)
	if state != "" && len(state) <= 512 {
		http.SetCookie(w, &http.Cookie{Name: s.attemptCookieName(state), Value: "", Path: s.attemptCookiePath(),
			HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	}
	if err != nil {
		s.pages.errorPage(w, http.StatusBadRequest, "Sign-in expired",
			"This sign-in did not start in this browser or took too long. Go back to the login page and try again.")
		return
	}
	// One answer per attempt, on any replica: a replayed callback (with a
	// copy of the cookie) is refused.
	if !s.spendAttempt(w, r, connectorStateKey, connectors.StateKey(state), a.Expires) {
		return
	}
	c, ok := s.connectorFor(w, r)
	if !ok {
		return
	}
	cb := connectors.Callback{State: state, Code: q.Get("code"), Error: q.Get("error"),
		ErrorDescription: q.Get("error_description"), Iss: q.Get("iss")}
	ident, err := s.cfg.Connectors.Finish(ctx, c, a, s.connectorRedirectURI(c.ID), cb)
	if err != nil {
		s.connectorFailed(w, r, c, safeReturn(a.ReturnTo), err)
		return
	}
	s.signInConnectorIdentity(w, r, c, ident, a.ReturnTo)
}

// signInConnectorIdentity provisions or refreshes the person a connector
// (OIDC or SAML) vouched for and signs them in, in one transaction with
// the session and the user.signed_in event, then sends them to returnTo.
func (s *Server) signInConnectorIdentity(w http.ResponseWriter, r *http.Request, c *store.Connector, ident *connectors.Identity, returnTo string) {
	ctx := r.Context()
	now := s.now()
	handle, err := token.NewHandle(s.rand, "")
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	verified := ident.EmailVerified
	if verified {
		held, err := s.heldElsewhere(ctx, c, ident.Email)
		if err != nil {
			s.internalErrorPage(w, r, err)
			return
		}
		verified = !held
	}
	if held, err := s.heldElsewhere(ctx, c, ident.Username); err != nil {
		s.internalErrorPage(w, r, err)
		return
	} else if held {
		m := s.meta(r)
		m.TenantID = c.TenantID
		s.log.WarnContext(ctx, "connector sign-in refused: username in another connector's domain", "request_id", requestID(ctx), "connector", c.ID)
		if err := s.st.AppendAudit(ctx, audit.NewLoginFailed(m, "")); err != nil {
			s.internalErrorPage(w, r, err)
			return
		}
		s.pages.errorPage(w, http.StatusForbidden, "Sign-in not possible",
			"The identity provider named you with an address of another organisation's sign-in. Ask your administrator.")
		return
	}
	u := &store.User{
		TenantID: c.TenantID, ID: token.NewID(s.rand), Username: ident.Username, ConnectorID: c.ID,
		ExternalSubject: ident.Subject, Name: ident.Name, Email: ident.Email, EmailVerified: verified,
		Groups: ident.Groups, Roles: ident.Roles, Attributes: ident.Attributes, CreatedAt: now, UpdatedAt: now,
	}
	sess := &store.Session{Hash: token.Hash(handle), TenantID: c.TenantID, AuthTime: now, ExpiresAt: now.Add(s.cfg.SessionTTL)}
	m := s.meta(r)
	m.TenantID = c.TenantID
	stored, _, err := s.st.SignInConnectorUser(ctx, u, sess, func(stored *store.User, created bool) []*store.AuditEvent {
		var evs []*store.AuditEvent
		if created {
			evs = append(evs, audit.NewUserCreated(m, stored.ID))
		}
		return append(evs, audit.NewUserSignedIn(m, stored.ID, c.ID, created))
	})
	if err == nil {
		// The claims may have changed the groups, roles and attributes that
		// policy reads: the issuance pipeline must not decide on the copy it
		// remembered before this sign-in.
		s.users.invalidate(stored.ID)
	}
	switch {
	case errors.Is(err, store.ErrConflict):
		// A local account (or another connector's) has this username: it
		// is never taken over by a sign-in from elsewhere.
		_ = s.st.AppendAudit(ctx, audit.NewLoginFailed(m, ""))
		s.pages.errorPage(w, http.StatusConflict, "Account exists",
			"An account named "+truncate(ident.Username, maxUsernameShown)+" already exists here and was not created through "+
				connectorLabel(c)+". Ask your administrator to link or rename it.")
		return
	case errors.Is(err, store.ErrInvalid):
		// Roles, groups or attributes the hub cannot hold (CheckUserAccess).
		s.log.WarnContext(ctx, "connector sign-in refused", "request_id", requestID(ctx), "connector", c.ID, "err", err)
		_ = s.st.AppendAudit(ctx, audit.NewLoginFailed(m, ""))
		s.pages.errorPage(w, http.StatusBadGateway, "Sign-in not possible",
			"The identity provider described you with roles, groups or attributes this hub cannot hold. Ask your administrator.")
		return
	case err != nil:
		s.internalErrorPage(w, r, err)
		return
	case stored.Disabled:
		// A disabled person stays out, whichever way they come.
		if err := s.st.AppendAudit(ctx, audit.NewLoginFailed(m, stored.ID)); err != nil {
			s.internalErrorPage(w, r, err)
			return
		}
		s.pages.errorPage(w, http.StatusForbidden, "Account disabled", "Your account here is disabled. Ask your administrator.")
		return
	}
	s.setCookie(w, sessionCookie, handle, http.SameSiteLaxMode, sess.ExpiresAt, 0)
	http.Redirect(w, r, safeReturn(returnTo), http.StatusSeeOther)
}

// heldElsewhere reports whether addr is an address in an email domain
// that a connector other than c holds (enabled or not, of any tenant).
// The provider of a domain speaks for its addresses; another provider
// vouching for one (as verified, or as a username) would pass an address
// it does not own on to the hub's pages, ID tokens and userinfo.
func (s *Server) heldElsewhere(ctx context.Context, c *store.Connector, addr string) (bool, error) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false, nil
	}
	domain := strings.ToLower(strings.TrimSuffix(addr[at+1:], "."))
	all, err := s.st.ListConnectors(ctx, "")
	if err != nil {
		return false, err
	}
	for _, o := range all {
		if o.ID != c.ID && slices.Contains(o.EmailDomains, domain) {
			return true, nil
		}
	}
	return false, nil
}

// spendAttempt records a connector attempt as used until it expires (Unix
// seconds), on every replica; a second use answers with a page and false.
func (s *Server) spendAttempt(w http.ResponseWriter, r *http.Request, key, jti string, expires int64) bool {
	err := s.st.UseJTI(r.Context(), key, jti, time.Unix(expires, 0), s.now())
	switch {
	case errors.Is(err, store.ErrConflict):
		s.pages.errorPage(w, http.StatusBadRequest, "Sign-in already used",
			"This sign-in was already completed. Go back to the login page to sign in again.")
		return false
	case err != nil:
		s.internalErrorPage(w, r, err)
		return false
	}
	return true
}

// connectorFailed answers a sign-in the connector refused: its words on
// the login page, which still returns to returnTo (they never carry a
// secret), the cause in the log.
func (s *Server) connectorFailed(w http.ResponseWriter, r *http.Request, c *store.Connector, returnTo string, err error) {
	// OIDC and SAML connectors (internal/connectors/saml) refuse alike.
	var ce *connectors.Error
	if !errors.As(err, &ce) {
		s.internalErrorPage(w, r, err)
		return
	}
	s.log.WarnContext(r.Context(), "connector sign-in failed", "request_id", requestID(r.Context()),
		"connector", c.ID, "reason", ce.Reason, "err", ce.Cause())
	status := http.StatusUnauthorized
	switch ce.Reason {
	case connectors.ReasonDiscovery, connectors.ReasonExchange:
		status = http.StatusBadGateway
	case connectors.ReasonConfig:
		status = http.StatusServiceUnavailable
	}
	m := s.meta(r)
	m.TenantID = c.TenantID
	if aerr := s.st.AppendAudit(r.Context(), audit.NewLoginFailed(m, "")); aerr != nil {
		s.internalErrorPage(w, r, aerr)
		return
	}
	s.renderLogin(w, r, status, loginView{ReturnTo: returnTo, Error: connectorLabel(c) + ": " + ce.Error()})
}
