package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/vault"
)

// The browser side of the vault: the pages where a person connects
// downstream providers (/connections), the provider's OAuth 2
// authorization-code flow with its one exact callback, the API-key form,
// the page a connect link opens, and disconnecting from /account. Every
// page needs a signed-in person and acts only for that person: whom a
// connection belongs to always comes from the session, never from a form.

// connectCallbackPath is the one redirect URI every OAuth 2 provider is
// registered with: <issuer>/connections/callback.
const connectCallbackPath = "/connections/callback"

// connectFlowTTL bounds the time from Connect to the provider's answer.
const connectFlowTTL = 10 * time.Minute

// connectFlowAAD binds a sealed flow cookie to its purpose: it cannot be
// passed off as a connect intent or anything else the keyring seals.
const connectFlowAAD = "connect-flow"

// connectFlowCookie names the flow cookies (one per flow, see
// flowCookieName).
const connectFlowCookie = "agentid_connect"

// maxFlowCookie bounds a flow cookie read back from a browser.
const maxFlowCookie = 4096

// connectFlow is what the hub keeps, sealed in a cookie of the person's
// browser, between sending them to the provider and the provider sending
// them back: the state and PKCE verifier the provider's answer must match
// (RFC 6749 §10.12, RFC 7636), who started it in which session, and what
// for.
type connectFlow struct {
	TenantID string `json:"t"`
	State    string `json:"st"`
	Verifier string `json:"v,omitempty"`
	UserID   string `json:"u"`
	// Session is the form token of the session that started the flow
	// (csrfFor of its handle): the flow finishes only in that session.
	Session  string   `json:"ss"`
	Provider string   `json:"p"`
	Scopes   []string `json:"s,omitempty"`
	// ClientID and Resource name the agent and MCP server of the connect
	// intent that started the flow, if one did.
	ClientID string `json:"c,omitempty"`
	Resource string `json:"r,omitempty"`
	// Replace is the id of the person's connection this one replaces
	// (Reconnect of a connection that needs reconnecting).
	Replace string `json:"x,omitempty"`
	Expires int64  `json:"e"`
}

// providerIDRe is the form of a provider id (store.Provider).
var providerIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// isConnectPagePath reports whether p is the path and query of a connect
// link's page, /connections/connect/<provider>?intent=<sealed>, so that a
// sign-in can return there.
func isConnectPagePath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/connections/connect/")
	if !ok {
		return false
	}
	id, q, ok := strings.Cut(rest, "?intent=")
	if !ok || !providerIDRe.MatchString(id) || q == "" || len(q) > 4096 {
		return false
	}
	for i := 0; i < len(q); i++ {
		c := q[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '%' || c == '~') {
			return false
		}
	}
	return true
}

// connectionsOn reports whether the hub has a vault: without one the
// connection pages do not exist.
func (s *Server) connectionsOn() bool { return s.cfg.Vault != nil && s.cfg.Keyring != nil }

// connectRedirectURI is the exact redirect URI of every provider flow.
func (s *Server) connectRedirectURI() string { return s.issuer + connectCallbackPath }

// flowCookieName names the cookie of the flow with this state. Each flow
// has its own, so that a person connecting two providers in two tabs at
// once (two connect links) finishes both; the name reveals nothing the
// state in the URL does not. __Secure- rather than __Host-: the cookie is
// confined to the callback's path.
func (s *Server) flowCookieName(state string) string {
	sum := sha256.Sum256([]byte("agentid connect flow v1\x00" + state))
	name := connectFlowCookie + "_" + base64.RawURLEncoding.EncodeToString(sum[:9])
	if s.secure {
		return "__Secure-" + name
	}
	return name
}

// flowCookiePath is the callback's path as the browser sees it (the
// issuer may have a path of its own).
func (s *Server) flowCookiePath() string {
	u, err := url.Parse(s.issuer)
	if err != nil {
		return connectCallbackPath
	}
	return u.Path + connectCallbackPath
}

// setFlowCookie keeps f in the browser: sealed by the keyring, HttpOnly,
// SameSite=Lax (the provider sends the person back with a cross-site
// top-level GET, which Lax lets through and Strict would not), only sent
// to the callback, gone after connectFlowTTL.
func (s *Server) setFlowCookie(w http.ResponseWriter, f *connectFlow) error {
	f.Expires = s.now().Add(connectFlowTTL).Unix()
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	sealed, err := s.cfg.Keyring.Seal(s.rand, b, connectFlowAAD)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: s.flowCookieName(f.State), Value: string(sealed), Path: s.flowCookiePath(),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
		MaxAge: int(connectFlowTTL / time.Second), Expires: s.now().Add(connectFlowTTL),
	})
	return nil
}

// clearFlowCookie removes the cookie of the flow with this state.
func (s *Server) clearFlowCookie(w http.ResponseWriter, state string) {
	http.SetCookie(w, &http.Cookie{Name: s.flowCookieName(state), Value: "", Path: s.flowCookiePath(), HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// errFlow: the flow cookie is missing, does not open, belongs to another
// state or has expired. The page says the same for all of them.
var errFlow = errors.New("connect flow missing or expired")

// openFlow returns the flow of the provider's answer with this state, if
// this browser holds one that has not expired.
func (s *Server) openFlow(r *http.Request, state string) (*connectFlow, error) {
	if state == "" || len(state) > 512 {
		return nil, errFlow
	}
	ck, err := r.Cookie(s.flowCookieName(state))
	if err != nil || ck.Value == "" || len(ck.Value) > maxFlowCookie {
		return nil, errFlow
	}
	b, err := s.cfg.Keyring.Open([]byte(ck.Value), connectFlowAAD)
	if err != nil {
		return nil, errFlow
	}
	var f connectFlow
	if err := json.Unmarshal(b, &f); err != nil || f.TenantID != s.tenant || f.UserID == "" {
		return nil, errFlow
	}
	// RFC 6749 §10.12: the state must be the one this browser's flow sent.
	if subtle.ConstantTimeCompare([]byte(f.State), []byte(state)) != 1 {
		return nil, errFlow
	}
	if !s.now().Before(time.Unix(f.Expires, 0)) {
		return nil, errFlow
	}
	return &f, nil
}

// sessionBinding is the value a flow records to finish only in the session
// that started it.
func (s *Server) sessionBinding(r *http.Request) string {
	if h := s.cookieValue(r, sessionCookie); h != "" {
		return csrfFor(h)
	}
	return ""
}

// Views.

// connectionView is one of the person's connections on /account and
// /connections.
type connectionView struct {
	ID           string
	ProviderID   string
	ProviderName string
	Label        string
	Status       string // store.Connection…
	StatusText   string
	NeedsReauth  bool
	// OAuth: an OAuth 2 connection (Reconnect goes through the provider);
	// an API-key connection is replaced by entering a new key.
	OAuth       bool
	Scopes      []string
	ScopeText   string
	Created     string
	CreatedISO  string
	LastUsed    string
	LastUsedISO string
}

// connListView is the connections table shared by /account and
// /connections; From says which page its forms return to.
type connListView struct {
	CSRF  string
	From  string
	Items []connectionView
}

// providerView is a provider someone can connect on /connections.
type providerView struct {
	ID       string
	Name     string
	OAuth    bool
	Scopes   []string
	KeyHint  string
	KeyWhere string
	// Count is how many connections the person holds to it.
	Count int
}

type connectionsView struct {
	Title     string
	CSRF      string
	Username  string
	Notice    string
	Conns     connListView
	Providers []providerView
}

// connectView is the page a connect link opens.
type connectView struct {
	Title        string
	CSRF         string
	Username     string
	Provider     providerView
	AgentName    string
	AgentHost    string
	ResourceName string
	ResourceURI  string
	Scopes       []string
	Intent       string
	// Existing counts the person's connections to the provider that
	// need reconnecting; the page says so.
	NeedsReauth int
}

// connectedView is the page after a successful connection.
type connectedView struct {
	Title        string
	CSRF         string
	Username     string
	ProviderName string
	Label        string
	Scopes       []string
	// FromIntent: a connect link started it; AgentName (or AgentHost) and
	// ResourceName say where to go back to.
	FromIntent   bool
	AgentName    string
	AgentHost    string
	ResourceName string
}

// connectErrorView is a readable refusal in the connection flows, with
// the way on.
type connectErrorView struct {
	Title    string
	CSRF     string
	Username string
	Message  string
	// Said is what the provider answered (its error code and text), shown
	// escaped and shortened.
	Said string
	// Next links onwards (the connections page, or sign in).
	Next      string
	NextLabel string
}

func (p *pages) connectError(w http.ResponseWriter, status int, v connectErrorView) {
	if v.Next == "" {
		v.Next, v.NextLabel = "/connections", "Your connections"
	}
	render(w, p.connectErr, status, v)
}

// statusText says a connection status in words, and whether the person
// must act.
func statusText(status string) (text string, needsReauth bool) {
	switch status {
	case store.ConnectionActive, store.ConnectionRefreshing:
		return "Active", false
	case store.ConnectionNeedsReauth:
		return "Needs reconnecting", true
	case store.ConnectionRevoked:
		return "Disconnected", false
	}
	return status, false
}

// userConnections lists the person's own connections (never the tenant's
// or anyone else's), providers by name, in the order the providers sort,
// newest first within one.
func (s *Server) userConnections(ctx context.Context, u *store.User) ([]connectionView, map[string]*store.Provider, error) {
	providers, err := s.st.ListProviders(ctx, s.tenant)
	if err != nil {
		return nil, nil, err
	}
	byID := make(map[string]*store.Provider, len(providers))
	for _, p := range providers {
		byID[p.ID] = p
	}
	conns, err := s.st.ListConnections(ctx, store.ConnectionFilter{TenantID: s.tenant, OwnerKind: store.OwnerUser, OwnerID: u.ID})
	if err != nil {
		return nil, nil, err
	}
	// By provider, the newest first within one.
	slices.SortStableFunc(conns, func(a, b *store.Connection) int {
		if a.ProviderID != b.ProviderID {
			return strings.Compare(a.ProviderID, b.ProviderID)
		}
		return b.CreatedAt.Compare(a.CreatedAt)
	})
	out := make([]connectionView, 0, len(conns))
	for _, c := range conns {
		if c.OwnerKind != store.OwnerUser || c.OwnerID != u.ID {
			continue
		}
		cv := connectionView{
			ID: c.ID, ProviderID: c.ProviderID, ProviderName: c.ProviderID, Label: displayName(c.Label), Status: c.Status,
			Scopes: c.Scopes, ScopeText: oauth.FormatScope(c.Scopes),
			Created: displayTime(c.CreatedAt), CreatedISO: isoTime(c.CreatedAt),
			LastUsed: "never", LastUsedISO: isoTime(c.LastUsedAt),
		}
		cv.StatusText, cv.NeedsReauth = statusText(c.Status)
		if p := byID[c.ProviderID]; p != nil {
			if p.Name != "" {
				cv.ProviderName = displayName(p.Name)
			}
			cv.OAuth = p.Kind == store.ProviderOAuth2
		}
		if !c.LastUsedAt.IsZero() {
			cv.LastUsed = displayTime(c.LastUsedAt)
		}
		out = append(out, cv)
	}
	return out, byID, nil
}

// providerName is how pages name a provider.
func providerName(p *store.Provider) string {
	if n := displayName(p.Name); n != "" {
		return n
	}
	return p.ID
}

func viewProvider(p *store.Provider) providerView {
	v := providerView{ID: p.ID, Name: providerName(p), OAuth: p.Kind == store.ProviderOAuth2, Scopes: p.Scopes, KeyHint: displayName(p.KeyHint)}
	switch {
	case p.KeyHeader != "":
		v.KeyWhere = "It is sent in the " + p.KeyHeader + " header of requests to " + v.Name + "."
	case p.KeyQuery != "":
		v.KeyWhere = "It is sent as the " + p.KeyQuery + " parameter of requests to " + v.Name + "."
	}
	return v
}

// signedIn returns the signed-in person, or redirects to the login page
// that returns to returnTo and returns nil.
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, returnTo string) *store.User {
	sess, u := s.currentSession(r)
	if sess == nil {
		http.Redirect(w, r, "/login?return_to="+url.QueryEscape(safeReturn(returnTo)), http.StatusSeeOther)
		return nil
	}
	return u
}

// handleConnections lists the enabled providers the person can connect,
// with a Connect button (OAuth 2) or an API-key form, and the person's
// connections.
func (s *Server) handleConnections(w http.ResponseWriter, r *http.Request) {
	u := s.signedIn(w, r, "/connections")
	if u == nil {
		return
	}
	conns, byID, err := s.userConnections(r.Context(), u)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	csrf := s.csrfToken(w, r)
	v := connectionsView{Title: "Connections", CSRF: csrf, Username: u.Username, Conns: connListView{CSRF: csrf, From: "connections", Items: conns}}
	switch r.URL.Query().Get("done") {
	case "saved":
		v.Notice = "Key saved. It is shown only as its last four characters from now on."
	case "disconnected":
		v.Notice = "Disconnected. The credential is deleted from this hub."
	case "rotated":
		v.Notice = rotatedNotice
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		p := byID[id]
		if p.Disabled {
			continue
		}
		pv := viewProvider(p)
		for _, c := range conns {
			if c.ProviderID == p.ID {
				pv.Count++
			}
		}
		v.Providers = append(v.Providers, pv)
	}
	render(w, s.pages.connections, http.StatusOK, v)
}

// connectProvider looks up the provider named in the path for a person
// about to connect it: it must exist, be enabled and be of kind. It
// answers the request itself (404) and returns nil otherwise.
func (s *Server) connectProvider(w http.ResponseWriter, r *http.Request, u *store.User, kind string) *store.Provider {
	id := r.PathValue("provider")
	notFound := func() {
		s.pages.connectError(w, http.StatusNotFound, connectErrorView{Title: "No such service", Username: u.Username, CSRF: s.csrfToken(w, r),
			Message: "This hub has no service by that name that you can connect. It may have been removed or turned off by an administrator."})
	}
	if !providerIDRe.MatchString(id) {
		notFound()
		return nil
	}
	p, err := s.st.GetProvider(r.Context(), s.tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		notFound()
		return nil
	}
	if err != nil {
		s.internalErrorPage(w, r, err)
		return nil
	}
	if p.Disabled || (kind != "" && p.Kind != kind) {
		notFound()
		return nil
	}
	return p
}

// connectForm reads a form posted to a connection route: parsed, its CSRF
// token checked and the person signed in (else a sign-in that returns to
// returnTo). It returns the person, or nil when it has answered itself.
func (s *Server) connectForm(w http.ResponseWriter, r *http.Request) *store.User {
	if err := r.ParseForm(); err != nil {
		s.pages.errorPage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return nil
	}
	if !s.checkCSRF(r) {
		s.pages.errorPage(w, http.StatusForbidden, "Form expired", "This form is no longer valid. Reload the page and try again.")
		return nil
	}
	returnTo := "/connections"
	if in := r.PostForm.Get("intent"); in != "" {
		returnTo = "/connections/connect/" + url.PathEscape(r.PathValue("provider")) + "?intent=" + url.QueryEscape(in)
	}
	return s.signedIn(w, r, returnTo)
}

// intentFor opens the connect intent a form or link carries for provider
// and checks that it was made for u. It answers the request itself and
// returns nil when it is not usable.
func (s *Server) intentFor(w http.ResponseWriter, r *http.Request, u *store.User, provider, raw string) *connectIntent {
	ci, err := s.openConnectIntent(provider, raw)
	if err != nil {
		s.pages.connectError(w, http.StatusBadRequest, connectErrorView{Title: "Link expired", Username: u.Username, CSRF: s.csrfToken(w, r),
			Message: "This connect link is not valid or has expired. Go back to your agent and try again: it will give you a new link. You can also connect services on your connections page."})
		return nil
	}
	if ci.TenantID != s.tenant || ci.UserID != u.ID {
		s.pages.connectError(w, http.StatusForbidden, connectErrorView{Title: "This link was made for another account", Username: u.Username, CSRF: s.csrfToken(w, r),
			Message: "You are signed in as " + u.Username + ", but this connect link was made for someone else, so it connects nothing here. If the agent acts for another account of yours, sign out and sign in with that one. If someone sent you this link, do not use it.",
		})
		return nil
	}
	return ci
}

// checkScopes keeps the scopes asked for to those the provider offers.
func checkScopes(p *store.Provider, scopes []string) bool {
	for _, sc := range scopes {
		if !slices.Contains(p.Scopes, sc) {
			return false
		}
	}
	return true
}

// handleConnectStart sends the person to the provider's authorization
// endpoint: the authorization request with PKCE and state from the vault,
// the exact redirect URI, and the flow kept in a sealed cookie for the
// callback.
func (s *Server) handleConnectStart(w http.ResponseWriter, r *http.Request) {
	u := s.connectForm(w, r)
	if u == nil {
		return
	}
	p := s.connectProvider(w, r, u, store.ProviderOAuth2)
	if p == nil {
		return
	}
	f := &connectFlow{TenantID: s.tenant, UserID: u.ID, Session: s.sessionBinding(r), Provider: p.ID}
	if raw := r.PostForm.Get("intent"); raw != "" {
		ci := s.intentFor(w, r, u, p.ID, raw)
		if ci == nil {
			return
		}
		f.Scopes, f.ClientID, f.Resource = ci.Scopes, ci.ClientID, ci.Resource
	} else {
		for _, v := range r.PostForm["scope"] {
			f.Scopes = append(f.Scopes, strings.Fields(v)...)
		}
		slices.Sort(f.Scopes)
		f.Scopes = slices.Compact(f.Scopes)
	}
	if !checkScopes(p, f.Scopes) {
		s.pages.connectError(w, http.StatusBadRequest, connectErrorView{Title: "Not available", Username: u.Username, CSRF: s.csrfToken(w, r),
			Message: providerName(p) + " on this hub does not offer every permission asked for. An administrator of this hub can add them to the service."})
		return
	}
	if id := r.PostForm.Get("replace"); id != "" {
		c, err := s.ownConnection(r.Context(), u, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.internalErrorPage(w, r, err)
			return
		}
		if c == nil || c.ProviderID != p.ID {
			s.pages.connectError(w, http.StatusNotFound, connectErrorView{Title: "No such connection", Username: u.Username, CSRF: s.csrfToken(w, r),
				Message: "You have no such connection to reconnect."})
			return
		}
		f.Replace = c.ID
	}
	ar, err := s.cfg.Vault.AuthCodeURL(p, s.connectRedirectURI(), f.Scopes)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	f.State, f.Verifier, f.Scopes = ar.State, ar.Verifier, ar.Scopes
	if err := s.setFlowCookie(w, f); err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	http.Redirect(w, r, ar.URL, http.StatusSeeOther)
}

// maxProviderSaid bounds the provider's error text shown on a page.
const maxProviderSaid = 200

// handleConnectCallback is the provider's answer (RFC 6749 §4.1.2): the
// state must be the one this browser's flow cookie holds, the flow must
// belong to the signed-in person and this session, then the code is
// exchanged (with the PKCE verifier) and the connection stored.
func (s *Server) handleConnectCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	f, err := s.openFlow(r, state)
	if state != "" {
		// Whatever happens next, this flow is over: a second use of the
		// same answer finds no cookie.
		s.clearFlowCookie(w, state)
	}
	sess, u := s.currentSession(r)
	if err != nil {
		v := connectErrorView{Title: "Connection not completed",
			Message: "This answer from the service does not belong to a connection started in this browser in the last ten minutes, so nothing was connected. Start again from your connections page."}
		if u != nil {
			v.Username, v.CSRF = u.Username, s.csrfToken(w, r)
		}
		s.pages.connectError(w, http.StatusBadRequest, v)
		return
	}
	if sess == nil {
		s.pages.connectError(w, http.StatusUnauthorized, connectErrorView{Title: "Signed out",
			Message: "You were signed out before the service answered, so nothing was connected. Sign in and connect again.",
			Next:    "/login?return_to=%2Fconnections", NextLabel: "Sign in"})
		return
	}
	csrf := s.csrfToken(w, r)
	if f.UserID != u.ID || subtle.ConstantTimeCompare([]byte(f.Session), []byte(s.sessionBinding(r))) != 1 {
		s.pages.connectError(w, http.StatusForbidden, connectErrorView{Title: "Connection not completed", Username: u.Username, CSRF: csrf,
			Message: "This connection was started by another account or before you last signed in, so nothing was connected to your account. Start again from your connections page."})
		return
	}
	p, err := s.st.GetProvider(r.Context(), s.tenant, f.Provider)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (p.Disabled || p.Kind != store.ProviderOAuth2)) {
		s.pages.connectError(w, http.StatusNotFound, connectErrorView{Title: "No such service", Username: u.Username, CSRF: csrf,
			Message: "The service was removed or turned off while you were connecting it, so nothing was connected."})
		return
	}
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	name := providerName(p)
	// RFC 9207: a provider that names itself must be the one the person
	// was sent to (a mix-up defence when several providers share a
	// browser), in an error answer as in a success (§2.4): another
	// service's error is not shown as this provider's.
	if iss := q.Get("iss"); iss != "" && p.Issuer != "" && iss != p.Issuer {
		s.pages.connectError(w, http.StatusBadRequest, connectErrorView{Title: "Connection not completed", Username: u.Username, CSRF: csrf,
			Message: "The answer came from another service than " + name + ", so nothing was connected. Start again from your connections page."})
		return
	}
	if code := q.Get("error"); code != "" {
		s.providerRefused(w, r, u, csrf, name, code, q.Get("error_description"))
		return
	}
	code := q.Get("code")
	if code == "" || len(code) > 4096 {
		s.pages.connectError(w, http.StatusBadRequest, connectErrorView{Title: "Connection not completed", Username: u.Username, CSRF: csrf,
			Message: name + " sent you back without an authorization, so nothing was connected. Start again from your connections page."})
		return
	}
	ctx := r.Context()
	c, err := s.cfg.Vault.CompleteAuth(ctx, s.meta(r), p, vault.Owner{Kind: store.OwnerUser, ID: u.ID}, code, f.Verifier, s.connectRedirectURI(), f.Scopes...)
	if err != nil {
		// The vault's errors carry no credential and no provider body.
		s.log.WarnContext(ctx, "connection not completed", "request_id", requestID(ctx), "provider", p.ID, "err", err)
		s.pages.connectError(w, http.StatusBadGateway, connectErrorView{Title: "Connection not completed", Username: u.Username, CSRF: csrf,
			Message: name + " did not complete the connection, so nothing was connected. Try again; if it keeps failing, tell an administrator of this hub. Reference: " + requestID(ctx)})
		return
	}
	s.retireSuperseded(r, u, c, f.Replace)
	v := connectedView{Title: "Connected " + name, CSRF: csrf, Username: u.Username, ProviderName: name, Label: displayName(c.Label), Scopes: c.Scopes}
	if v.Label == name {
		v.Label = "" // the vault's fallback when the provider names no account
	}
	if f.ClientID != "" || f.Resource != "" {
		v.FromIntent = true
		v.AgentName, v.AgentHost, v.ResourceName = s.whoAsks(ctx, f.ClientID, f.Resource)
	}
	render(w, s.pages.connected, http.StatusOK, v)
}

// retireSuperseded removes, once c is stored, the person's connections to
// the same provider that c makes useless: the one Reconnect named
// (replace), and any that needs reconnecting and whose scopes c holds
// too. Their tokens no longer work at the provider; leaving them would
// only keep "needs reconnecting" on the person's pages. Failures are
// logged: the new connection stands either way.
func (s *Server) retireSuperseded(r *http.Request, u *store.User, c *store.Connection, replace string) {
	ctx := r.Context()
	conns, err := s.st.ListConnections(ctx, store.ConnectionFilter{TenantID: s.tenant, ProviderID: c.ProviderID, OwnerKind: store.OwnerUser, OwnerID: u.ID})
	if err != nil {
		s.log.WarnContext(ctx, "superseded connections not listed", "request_id", requestID(ctx), "err", err)
		return
	}
	for _, old := range conns {
		if old.ID == c.ID || old.OwnerKind != store.OwnerUser || old.OwnerID != u.ID || old.ProviderID != c.ProviderID {
			continue
		}
		covered := old.Status == store.ConnectionNeedsReauth && !slices.ContainsFunc(old.Scopes, func(sc string) bool { return !slices.Contains(c.Scopes, sc) })
		if old.ID != replace && !covered {
			continue
		}
		if err := s.cfg.Vault.Revoke(ctx, s.meta(r), s.tenant, old.ID, "reconnected"); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.WarnContext(ctx, "superseded connection not removed", "request_id", requestID(ctx), "connection_id", old.ID, "err", err)
		}
	}
}

// providerRefused renders the provider's error answer (RFC 6749
// §4.1.2.1) in words.
func (s *Server) providerRefused(w http.ResponseWriter, r *http.Request, u *store.User, csrf, name, code, desc string) {
	v := connectErrorView{Title: "Not connected", Username: u.Username, CSRF: csrf}
	status := http.StatusBadGateway
	switch code {
	case oauth.CodeAccessDenied:
		v.Title = "You did not allow access to " + name
		v.Message = "You did not allow access to " + name + ", so nothing was connected. You can connect it later from your connections page."
		status = http.StatusForbidden
	case oauth.CodeInvalidScope:
		v.Message = name + " refused the permissions asked for, so nothing was connected. An administrator of this hub may need to change the service's scopes."
	case oauth.CodeServerError, oauth.CodeTemporarilyUnavailable:
		v.Message = name + " could not complete the connection just now, so nothing was connected. Try again in a few minutes."
		status = http.StatusServiceUnavailable
	default:
		v.Message = name + " refused the connection request, so nothing was connected. An administrator of this hub may need to check the service's settings."
	}
	if code != oauth.CodeAccessDenied {
		said := displayName(code)
		if d := displayName(desc); d != "" {
			said += ": " + d
		}
		v.Said = truncate(said, maxProviderSaid)
	}
	s.pages.connectError(w, status, v)
}

// whoAsks names the agent and the MCP server of a connect intent.
func (s *Server) whoAsks(ctx context.Context, clientID, resource string) (agent, host, resName string) {
	agent, resName = clientID, resource
	if clientID != "" {
		if c, err := s.st.GetClient(ctx, s.tenant, clientID); err == nil {
			if n := displayName(c.Name); n != "" {
				agent = n
			}
			if c.RegistrationMethod == store.RegistrationCIMD {
				host = cimdHost(c)
			}
		}
	}
	if resource != "" {
		if res, err := s.st.GetResource(ctx, s.tenant, resource); err == nil && displayName(res.Name) != "" {
			resName = displayName(res.Name)
		}
	}
	return agent, host, resName
}

// maxAPIKey bounds an API key; maxLabel the name a person gives it.
const (
	maxAPIKey = 4096
	maxLabel  = 64
)

// keyHintMin is the shortest key whose last four characters are shown:
// of a shorter key they would give too much of it away.
const keyHintMin = 12

// keyLabel is the label an API-key connection is shown by: the person's
// name for it, if any, and the key's last four characters.
func keyLabel(name, key string) string {
	hint := "…"
	if len(key) >= keyHintMin {
		hint += key[len(key)-4:]
	}
	if name == "" {
		return hint
	}
	return name + " " + hint
}

// validAPIKey accepts printable ASCII without spaces: what can travel in
// an HTTP header or a query parameter as it is.
func validAPIKey(k string) bool {
	if k == "" || len(k) > maxAPIKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] > '~' {
			return false
		}
	}
	return true
}

// handleConnectKey saves an API key the person entered. The key is never
// shown again, nor logged, nor put in an event: only its last four
// characters, in the connection's label.
func (s *Server) handleConnectKey(w http.ResponseWriter, r *http.Request) {
	u := s.connectForm(w, r)
	if u == nil {
		return
	}
	p := s.connectProvider(w, r, u, store.ProviderAPIKey)
	if p == nil {
		return
	}
	var ci *connectIntent
	if raw := r.PostForm.Get("intent"); raw != "" {
		if ci = s.intentFor(w, r, u, p.ID, raw); ci == nil {
			return
		}
	}
	key := strings.TrimSpace(r.PostForm.Get("key"))
	name := displayName(r.PostForm.Get("label"))
	if !validAPIKey(key) || len(name) > maxLabel {
		msg := "The key must be one line of letters, digits and punctuation, without spaces. Nothing was saved."
		if len(name) > maxLabel {
			msg = "The name is too long (at most 64 characters). Nothing was saved."
		}
		s.pages.connectError(w, http.StatusBadRequest, connectErrorView{Title: "Key not saved", Username: u.Username, CSRF: s.csrfToken(w, r), Message: msg})
		return
	}
	ctx := r.Context()
	c, err := s.cfg.Vault.SaveAPIKey(ctx, s.meta(r), p, vault.Owner{Kind: store.OwnerUser, ID: u.ID}, keyLabel(name, key), key)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	if ci == nil {
		http.Redirect(w, r, "/connections?done=saved", http.StatusSeeOther)
		return
	}
	v := connectedView{Title: "Connected " + providerName(p), CSRF: s.csrfToken(w, r), Username: u.Username, ProviderName: providerName(p), Label: displayName(c.Label), FromIntent: true}
	v.AgentName, v.AgentHost, v.ResourceName = s.whoAsks(ctx, ci.ClientID, ci.Resource)
	render(w, s.pages.connected, http.StatusOK, v)
}

// handleConnectIntent is the page a connect link opens: which agent,
// through which MCP server, wants the person to connect which provider
// with which permissions, and the button that does it. It connects only
// for the person the link was made for.
func (s *Server) handleConnectIntent(w http.ResponseWriter, r *http.Request) {
	u := s.signedIn(w, r, r.URL.RequestURI())
	if u == nil {
		return
	}
	id := r.PathValue("provider")
	raw := r.URL.Query().Get("intent")
	ci := s.intentFor(w, r, u, id, raw)
	if ci == nil {
		return
	}
	p := s.connectProvider(w, r, u, "")
	if p == nil {
		return
	}
	ctx := r.Context()
	v := connectView{Title: "Connect " + providerName(p), CSRF: s.csrfToken(w, r), Username: u.Username, Provider: viewProvider(p), Scopes: ci.Scopes, Intent: raw, ResourceURI: ci.Resource}
	if len(v.Scopes) == 0 {
		v.Scopes = p.Scopes
	}
	v.AgentName, v.AgentHost, v.ResourceName = s.whoAsks(ctx, ci.ClientID, ci.Resource)
	conns, err := s.st.ListConnections(ctx, store.ConnectionFilter{TenantID: s.tenant, ProviderID: p.ID, OwnerKind: store.OwnerUser, OwnerID: u.ID, Statuses: []string{store.ConnectionNeedsReauth}})
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	for _, c := range conns {
		if c.OwnerID == u.ID && c.Status == store.ConnectionNeedsReauth {
			v.NeedsReauth++
		}
	}
	render(w, s.pages.connect, http.StatusOK, v)
}

// ownConnection returns the person's own connection id: store.ErrNotFound
// for an unknown id and for anyone else's (a tenant's, another person's),
// so that the answer does not tell them apart.
func (s *Server) ownConnection(ctx context.Context, u *store.User, id string) (*store.Connection, error) {
	if id == "" || len(id) > 128 {
		return nil, store.ErrNotFound
	}
	c, err := s.st.GetConnection(ctx, s.tenant, id)
	if err != nil {
		return nil, err
	}
	if c.OwnerKind != store.OwnerUser || c.OwnerID != u.ID {
		return nil, store.ErrNotFound
	}
	return c, nil
}

// handleDisconnect disconnects one of the person's connections: the vault
// revokes it at the provider when it can and deletes the credential. A
// connection that is not the person's own is a 404, like one that does
// not exist.
func (s *Server) handleDisconnect(w http.ResponseWriter, r *http.Request) {
	u := s.accountForm(w, r)
	if u == nil {
		return
	}
	ctx := r.Context()
	c, err := s.ownConnection(ctx, u, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		s.pages.connectError(w, http.StatusNotFound, connectErrorView{Title: "No such connection", Username: u.Username, CSRF: s.csrfToken(w, r),
			Message: "You have no such connection. It may have been disconnected already.", Next: "/account", NextLabel: "Your account"})
		return
	}
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	if err := s.cfg.Vault.Revoke(ctx, s.meta(r), s.tenant, c.ID, "disconnected"); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.internalErrorPage(w, r, err)
		return
	}
	back := "/account"
	if r.PostForm.Get("from") == "connections" {
		back = "/connections"
	}
	http.Redirect(w, r, back+"?done=disconnected", http.StatusSeeOther)
}

// rotatedNotice is what /account and /connections say after a key was
// replaced.
const rotatedNotice = "New key saved. The old key keeps working for a short overlap, in case a tool still uses it, and is then deleted."

// handleReplaceKey replaces the key of one of the person's API-key
// connections: the vault keeps the old key retrievable for the provider's
// overlap and then destroys it (connection.rotated). The label's last four
// characters follow the new key. A connection that is not the person's
// own is a 404, like one that does not exist.
func (s *Server) handleReplaceKey(w http.ResponseWriter, r *http.Request) {
	u := s.accountForm(w, r)
	if u == nil {
		return
	}
	ctx := r.Context()
	c, err := s.ownConnection(ctx, u, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		s.pages.connectError(w, http.StatusNotFound, connectErrorView{Title: "No such connection", Username: u.Username, CSRF: s.csrfToken(w, r),
			Message: "You have no such connection. It may have been disconnected already.", Next: "/account", NextLabel: "Your account"})
		return
	}
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	p, err := s.st.GetProvider(ctx, s.tenant, c.ProviderID)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	key := strings.TrimSpace(r.PostForm.Get("key"))
	if p.Kind != store.ProviderAPIKey || !validAPIKey(key) {
		msg := "The key must be one line of letters, digits and punctuation, without spaces. The old key is unchanged."
		if p.Kind != store.ProviderAPIKey {
			msg = providerName(p) + " is connected by signing in there, not with a key. Use Reconnect or Disconnect instead."
		}
		s.pages.connectError(w, http.StatusBadRequest, connectErrorView{Title: "Key not replaced", Username: u.Username, CSRF: s.csrfToken(w, r),
			Message: msg, Next: "/account", NextLabel: "Your account"})
		return
	}
	if err := s.cfg.Vault.RotateAPIKey(ctx, s.meta(r), s.tenant, c.ID, key, 0); err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	name := labelName(c.Label)
	if _, err := s.st.UpdateConnection(ctx, s.tenant, c.ID, func(cur *store.Connection) error {
		cur.Label = keyLabel(name, key)
		return nil
	}, nil); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.internalErrorPage(w, r, err)
		return
	}
	back := "/account"
	if r.PostForm.Get("from") == "connections" {
		back = "/connections"
	}
	http.Redirect(w, r, back+"?done=rotated", http.StatusSeeOther)
}

// labelName is the person's own name for an API key in a label keyLabel
// made: what stands before the last-four hint.
func labelName(label string) string {
	if i := strings.LastIndex(label, "…"); i >= 0 {
		return strings.TrimSpace(label[:i])
	}
	return label
}
