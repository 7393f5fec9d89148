package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/consent"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// accountActivity is how many recent events the account page shows per agent.
const accountActivity = 8

type grantView struct {
	Scope        string
	Description  string
	Sensitive    bool
	GrantedAt    string
	GrantedISO   string
	Expires      string
	ExpiresISO   string
	LastUsed     string
	LastUsedISO  string
	ResourceName string
}

type resourceGrantsView struct {
	URI    string
	Name   string
	Grants []grantView
}

type activityView struct {
	When    string
	WhenISO string
	What    string
	Scopes  string
	Failed  bool
}

type agentView struct {
	ClientID     string
	Name         string
	Registration string
	// Host is the verified host of a Client ID Metadata Document client:
	// the page names the agent by it, Name (the document's) only beside.
	Host string
	// Label names the agent in headings' accessible text: Host for a
	// CIMD client, else Name.
	Label string
	// Installations are a CIMD client's installations the person has
	// live tokens for, each signed out on its own.
	Installations []installationView
	Resources     []resourceGrantsView
	Activity      []activityView
}

// installationView is one installation of a CIMD client on the account
// page.
type installationView struct {
	RedirectURI string
	Where       string // the redirect's host (or private-use scheme)
	LocalOnly   bool   // a loopback redirect: a program on the person's computer
	LastIssued  string
	LastISO     string
}

type accountView struct {
	Title    string
	CSRF     string
	Username string
	// Via names the connector the person signed in through ("": local).
	Via    string
	Notice string
	Agents []agentView
	// ConnectionsOn: the hub has a vault, and the page lists the person's
	// connections (connections.go) in Conns.
	ConnectionsOn bool
	Conns         connListView
}

// handleAccount shows the signed-in person every agent that has access, per
// resource: scopes, when granted, until when, when last used, with forms to
// revoke one scope or the agent entirely, and the agent's recent activity
// for this person from the audit trail.
func (s *Server) handleAccount(w http.ResponseWriter, r *http.Request) {
	sess, u := s.currentSession(r)
	if sess == nil {
		http.Redirect(w, r, "/login?return_to=/account", http.StatusSeeOther)
		return
	}
	ctx := r.Context()
	v := accountView{Title: "Your agents", CSRF: s.csrfToken(w, r), Username: u.Username, Via: s.viaConnector(ctx, u)}
	switch r.URL.Query().Get("done") {
	case "revoked":
		v.Notice = "Access revoked. The agent's tokens stopped working at once."
	case "none":
		v.Notice = "There was nothing left to revoke."
	case "signedout":
		v.Notice = "That installation is signed out: its tokens stopped working at once. Your other installations keep working."
	case "disconnected":
		v.Notice = "Disconnected. The credential is deleted from this hub."
	case "rotated":
		v.Notice = rotatedNotice
	}
	grants, err := s.ledger.ForUser(ctx, u.ID)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	if s.connectionsOn() {
		conns, _, err := s.userConnections(ctx, u)
		if err != nil {
			s.internalErrorPage(w, r, err)
			return
		}
		v.ConnectionsOn, v.Conns = true, connListView{CSRF: v.CSRF, From: "account", Items: conns}
	}
	now := s.now()
	resources := map[string]*store.Resource{}
	for _, g := range grants {
		if len(v.Agents) == 0 || v.Agents[len(v.Agents)-1].ClientID != g.ClientID {
			a, err := s.agentView(ctx, u, g.ClientID)
			if err != nil {
				s.internalErrorPage(w, r, err)
				return
			}
			v.Agents = append(v.Agents, a)
		}
		a := &v.Agents[len(v.Agents)-1]
		if len(a.Resources) == 0 || a.Resources[len(a.Resources)-1].URI != g.Resource {
			res, ok := resources[g.Resource]
			if !ok {
				res, err = s.st.GetResource(ctx, s.tenant, g.Resource)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					s.internalErrorPage(w, r, err)
					return
				}
				resources[g.Resource] = res
			}
			rv := resourceGrantsView{URI: g.Resource, Name: g.Resource}
			if res != nil && res.Name != "" {
				rv.Name = res.Name
			}
			a.Resources = append(a.Resources, rv)
		}
		rv := &a.Resources[len(a.Resources)-1]
		gv := grantView{
			Scope: g.Scope, Description: g.Scope,
			GrantedAt: displayTime(g.GrantedAt), GrantedISO: isoTime(g.GrantedAt),
			Expires: until(g.ExpiresAt, now), ExpiresISO: isoTime(g.ExpiresAt),
			LastUsed: "never", LastUsedISO: isoTime(g.LastUsedAt),
		}
		if !g.LastUsedAt.IsZero() {
			gv.LastUsed = displayTime(g.LastUsedAt)
		}
		if res := resources[g.Resource]; res != nil {
			if i := slices.IndexFunc(res.Scopes, func(sc store.Scope) bool { return sc.Name == g.Scope }); i >= 0 {
				if res.Scopes[i].Description != "" {
					gv.Description = res.Scopes[i].Description
				}
				gv.Sensitive = res.Scopes[i].Sensitive
			}
		}
		rv.Grants = append(rv.Grants, gv)
	}
	// Within a resource, permissions appear in the order the resource lists
	// its scopes (as on the consent screen), not alphabetically.
	for i := range v.Agents {
		for j := range v.Agents[i].Resources {
			rv := &v.Agents[i].Resources[j]
			if res := resources[rv.URI]; res != nil {
				rank := func(sc string) int {
					if k := slices.IndexFunc(res.Scopes, func(s store.Scope) bool { return s.Name == sc }); k >= 0 {
						return k
					}
					return len(res.Scopes)
				}
				slices.SortStableFunc(rv.Grants, func(a, b grantView) int { return rank(a.Scope) - rank(b.Scope) })
			}
		}
	}
	render(w, s.pages.account, http.StatusOK, v)
}

// agentView describes a client and its recent activity for user u.
func (s *Server) agentView(ctx context.Context, u *store.User, clientID string) (a agentView, err error) {
	a = agentView{ClientID: clientID, Name: clientID}
	defer func() {
		a.Label = a.Name
		if a.Host != "" {
			a.Label = a.Host
		}
	}()
	c, err := s.st.GetClient(ctx, s.tenant, clientID)
	switch {
	case err == nil:
		if c.Name != "" {
			a.Name = c.Name
		}
		a.Registration = c.RegistrationMethod
		if c.RegistrationMethod == store.RegistrationCIMD {
			a.Host, a.Name = cimdHost(c), displayName(c.Name)
			if a.Installations, err = s.installations(ctx, u, c); err != nil {
				return a, err
			}
		}
	case !errors.Is(err, store.ErrNotFound):
		return a, err
	}
	events, err := s.st.ListAudit(ctx, store.AuditFilter{TenantID: s.tenant, ClientID: clientID, UserID: u.ID, Limit: accountActivity})
	if err != nil {
		return a, err
	}
	for _, ev := range events {
		a.Activity = append(a.Activity, activityView{
			When: displayTime(ev.Time), WhenISO: isoTime(ev.Time), What: describeEvent(ev.Type),
			Scopes: oauth.FormatScope(ev.Scopes), Failed: ev.Outcome == audit.Failure,
		})
	}
	return a, nil
}

// installations lists the person's installations of a CIMD client.
func (s *Server) installations(ctx context.Context, u *store.User, c *store.Client) ([]installationView, error) {
	list, err := s.st.Installations(ctx, s.tenant, u.ID, c.ID, s.now())
	if err != nil {
		return nil, err
	}
	out := make([]installationView, 0, len(list))
	for _, in := range list {
		iv := installationView{RedirectURI: in.RedirectURI, Where: redirectHost(in.RedirectURI), LastIssued: "", LastISO: isoTime(in.LastIssuedAt)}
		if iv.Where == "" {
			iv.Where = in.RedirectURI
		}
		if ru, err := url.Parse(in.RedirectURI); err == nil {
			iv.LocalOnly = oauth.IsLoopbackHost(ru.Hostname())
		}
		if !in.LastIssuedAt.IsZero() {
			iv.LastIssued = displayTime(in.LastIssuedAt)
		}
		out = append(out, iv)
	}
	return out, nil
}

// describeEvent says what an audit event means to the person it concerns.
func describeEvent(typ string) string {
	switch typ {
	case audit.ConsentGiven:
		return "You allowed access"
	case audit.ConsentDenied:
		return "You refused access"
	case audit.ConsentRevoked:
		return "You revoked access"
	case audit.ConsentExpired:
		return "Access expired"
	case audit.CodeIssued:
		return "Authorization sent to the agent"
	case audit.TokenIssued:
		return "Token issued"
	case audit.TokenDenied:
		return "Token refused"
	case audit.RefreshRotated:
		return "Token refreshed"
	case audit.RefreshReuse:
		return "Stolen refresh token suspected; tokens revoked"
	case audit.CodeReplayed:
		return "Authorization code replayed; tokens revoked"
	case audit.TokenRevoked:
		return "Token revoked"
	case audit.InstallationRevoked:
		return "You signed one installation out"
	}
	return typ
}

// accountForm reads a form posted from the account page: parsed, its CSRF
// token checked, and the person signed in. It returns the person, or nil
// when it has answered the request itself.
func (s *Server) accountForm(w http.ResponseWriter, r *http.Request) *store.User {
	if err := r.ParseForm(); err != nil {
		s.pages.errorPage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return nil
	}
	if !s.checkCSRF(r) {
		s.pages.errorPage(w, http.StatusForbidden, "Form expired", "This form is no longer valid. Reload your account page and try again.")
		return nil
	}
	sess, u := s.currentSession(r)
	if sess == nil {
		http.Redirect(w, r, "/login?return_to=/account", http.StatusSeeOther)
		return nil
	}
	return u
}

// handleAccountRevoke withdraws consent from the account page. With client_id
// alone it revokes the agent entirely: every scope on every resource. With a
// resource and a scope it revokes that one scope. The person can only ever
// revoke their own consent: the user comes from the session, never the form.
func (s *Server) handleAccountRevoke(w http.ResponseWriter, r *http.Request) {
	u := s.accountForm(w, r)
	if u == nil {
		return
	}
	f := r.PostForm
	key := consent.Key{UserID: u.ID, ClientID: f.Get("client_id"), Resource: f.Get("resource")}
	var scopes []string
	if sc := f.Get("scope"); sc != "" {
		scopes = []string{sc}
	}
	if key.ClientID == "" || (scopes != nil && key.Resource == "") || (scopes == nil && key.Resource != "") {
		s.pages.errorPage(w, http.StatusBadRequest, "Bad request", "The form does not say what to revoke.")
		return
	}
	m := s.meta(r)
	if c, err := s.st.GetClient(r.Context(), s.tenant, key.ClientID); err == nil {
		m = m.WithAgent(c)
	}
	withdrawn, err := s.ledger.Revoke(r.Context(), key, scopes, &m, "user")
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	done := "revoked"
	if len(withdrawn) == 0 {
		done = "none"
	}
	http.Redirect(w, r, "/account?done="+done, http.StatusSeeOther)
}

// handleAccountSignOutInstallation signs one installation of a Client ID
// Metadata Document client out: every token issued to the client for this
// person with that redirect URI is revoked (store.RevokeInstallation). The
// client is one client_id for all its installations, so the person's other
// installations, their consent and other people are untouched. The person
// comes from the session, never the form.
func (s *Server) handleAccountSignOutInstallation(w http.ResponseWriter, r *http.Request) {
	u := s.accountForm(w, r)
	if u == nil {
		return
	}
	clientID, redirectURI := r.PostForm.Get("client_id"), r.PostForm.Get("redirect_uri")
	if clientID == "" || redirectURI == "" {
		s.pages.errorPage(w, http.StatusBadRequest, "Bad request", "The form does not say which installation to sign out.")
		return
	}
	// The installation as tokens name it: a loopback port never matters.
	redirectURI = oauth.InstallationURI(redirectURI)
	ev := audit.NewInstallationRevoked(s.meta(r), audit.InstallationRevokedFields{ClientID: clientID, UserID: u.ID, RedirectURI: redirectURI})
	n, err := s.st.RevokeInstallation(r.Context(), s.tenant, u.ID, clientID, redirectURI, s.now(), ev)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	done := "signedout"
	if n == 0 {
		done = "none"
	}
	http.Redirect(w, r, "/account?done="+done, http.StatusSeeOther)
}
