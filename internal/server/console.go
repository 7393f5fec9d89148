package server

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/store"
)

// The admin console (/admin) is for the hub's administrators: people with
// the role AdminRole, signed in with the normal login (docs/design.md,
// "Admin console"). It is server-rendered like the consent pages (no
// script, the strict CSP, form tokens and cross-origin protection on every
// POST) and runs the admin API's operations (admin_agents.go), recording
// the events with actor console and the administrator's user id.

// AdminRole is the role (store.User.Roles) that opens the console.
const AdminRole = "admin"

// consolePage is the size of the console's agent, user and audit lists.
const consolePage = 100

// consoleBase is what every console page shows: the signed-in
// administrator, the section the navigation marks current, and a notice.
type consoleBase struct {
	Title    string
	CSRF     string
	Username string
	Section  string
	Notice   string
	Error    string
}

// consolePages are the console's templates, parsed with the layout and
// adminnav.html (the navigation and the page frame).
type consolePages struct {
	agents, agent, confirm, users, user, audit, event, policy, diff, explain *template.Template
}

var consoleFuncs = template.FuncMap{
	// when shows an instant as the pages do, "never" for none.
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return displayTime(t)
	},
	"iso":  isoTime,
	"join": func(s []string) string { return strings.Join(s, " ") },
	// pathesc makes an id one path segment: a Client ID Metadata
	// Document client's id is a URL.
	"pathesc": url.PathEscape,
}

func newConsolePages() (*consolePages, error) {
	parse := func(name string) (*template.Template, error) {
		return template.New("").Funcs(consoleFuncs).ParseFS(templateFS, "web/templates/layout.html", "web/templates/adminnav.html", "web/templates/"+name)
	}
	var p consolePages
	for _, t := range []struct {
		dst  **template.Template
		file string
	}{
		{&p.agents, "admin-agents.html"}, {&p.agent, "admin-agent.html"}, {&p.confirm, "admin-confirm.html"},
		{&p.users, "admin-users.html"}, {&p.user, "admin-user.html"}, {&p.audit, "admin-audit.html"},
		{&p.event, "admin-event.html"}, {&p.policy, "admin-policy.html"}, {&p.diff, "admin-diff.html"},
		{&p.explain, "admin-explain.html"},
	} {
		var err error
		if *t.dst, err = parse(t.file); err != nil {
			return nil, err
		}
	}
	return &p, nil
}

// consoleRoutes adds the console's pages to the browser mux.
func (s *Server) consoleRoutes(web *http.ServeMux) {
	web.HandleFunc("GET /admin", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/admin/agents", http.StatusSeeOther)
	})
	web.HandleFunc("GET /admin/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/admin/agents", http.StatusSeeOther)
	})
	web.HandleFunc("GET /admin/agents", s.handleConsoleAgents)
	web.HandleFunc("GET /admin/agents/{id}", s.handleConsoleAgent)
	web.HandleFunc("GET /admin/agents/{id}/deprovision", s.handleConsoleAgentConfirm)
	web.HandleFunc("POST /admin/agents/{id}/deprovision", s.handleConsoleAgentDeprovision)
	web.HandleFunc("GET /admin/users", s.handleConsoleUsers)
	web.HandleFunc("GET /admin/users/{id}", s.handleConsoleUser)
	web.HandleFunc("GET /admin/users/{id}/{action}", s.handleConsoleUserConfirm)
	web.HandleFunc("POST /admin/users/{id}/{action}", s.handleConsoleUserAction)
	web.HandleFunc("GET /admin/audit", s.handleConsoleAudit)
	web.HandleFunc("GET /admin/audit/{id}", s.handleConsoleEvent)
	web.HandleFunc("POST /admin/audit/verify", s.handleConsoleVerify)
	web.HandleFunc("GET /admin/policy", s.handleConsolePolicy)
	web.HandleFunc("GET /admin/policy/diff", s.handleConsoleDiff)
	web.HandleFunc("GET /admin/policy/explain", s.handleConsoleExplain)
}

// isConsolePath reports whether p is a console page (a path of this hub,
// with its query), where the login may return to.
func isConsolePath(p string) bool {
	return (p == "/admin" || strings.HasPrefix(p, "/admin/") || strings.HasPrefix(p, "/admin?")) && !strings.HasPrefix(p, AdminAPIPath)
}

// consoleUser is the signed-in administrator, or nil when it has answered
// itself: a visitor who is not signed in goes to the login page, which
// brings them back here; a person without the admin role is told so (403).
func (s *Server) consoleUser(w http.ResponseWriter, r *http.Request) *store.User {
	sess, u := s.currentSession(r)
	if sess == nil {
		back := "/admin/agents"
		if r.Method == http.MethodGet {
			back = r.URL.RequestURI()
		}
		http.Redirect(w, r, "/login?return_to="+url.QueryEscape(back), http.StatusSeeOther)
		return nil
	}
	if !slices.Contains(u.Roles, AdminRole) {
		s.pages.errorPage(w, http.StatusForbidden, "Administrators only",
			"You are signed in as "+u.Username+", who is not an administrator of this hub. The admin console is for people with the admin role; an administrator can give it to an account.")
		return nil
	}
	return u
}

// consoleForm reads a form posted from a console page: parsed, its form
// token checked, and an administrator signed in. It returns the
// administrator, or nil when it has answered the request itself.
func (s *Server) consoleForm(w http.ResponseWriter, r *http.Request) *store.User {
	if err := r.ParseForm(); err != nil {
		s.pages.errorPage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return nil
	}
	if !s.checkCSRF(r) {
		s.pages.errorPage(w, http.StatusForbidden, "Form expired", "This form is no longer valid. Go back, reload the page and try again.")
		return nil
	}
	return s.consoleUser(w, r)
}

// consoleMeta is the event metadata of a console request by admin.
func (s *Server) consoleMeta(r *http.Request, admin *store.User) audit.Meta {
	m := s.meta(r)
	m.Actor, m.ActorID = audit.ActorConsole, admin.ID
	return m
}

func (s *Server) consoleBase(w http.ResponseWriter, r *http.Request, admin *store.User, section, title string) consoleBase {
	return consoleBase{Title: title, CSRF: s.csrfToken(w, r), Username: admin.Username, Section: section}
}

// consoleNotFound answers an unknown agent, person or event.
func (s *Server) consoleNotFound(w http.ResponseWriter, what string) {
	s.pages.errorPage(w, http.StatusNotFound, "No such "+what, "There is no "+what+" with this id in this hub. It may have been deleted.")
}

// consoleFailed answers a failed lookup: not found, or an internal error.
func (s *Server) consoleFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	if errors.Is(err, store.ErrNotFound) {
		s.consoleNotFound(w, what)
		return
	}
	s.internalErrorPage(w, r, err)
}

// agentsView is the agents page: a page of the inventory.
type agentsView struct {
	consoleBase
	Agents []*clients.Agent
	// Next is the cursor of the next page ("" on the last).
	Next string
}

func (s *Server) handleConsoleAgents(w http.ResponseWriter, r *http.Request) {
	admin := s.consoleUser(w, r)
	if admin == nil {
		return
	}
	agents, next, err := s.agentsPage(r.Context(), r.URL.Query().Get("after"), consolePage)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	v := agentsView{consoleBase: s.consoleBase(w, r, admin, "agents", "Agents"), Agents: agents, Next: next}
	render(w, s.console.agents, http.StatusOK, v)
}

// agentPageView is one agent's page.
type agentPageView struct {
	consoleBase
	*agentDetail
	Events []eventRow
}

func (s *Server) handleConsoleAgent(w http.ResponseWriter, r *http.Request) {
	admin := s.consoleUser(w, r)
	if admin == nil {
		return
	}
	d, err := s.agentDetail(r.Context(), r.PathValue("id"))
	if err != nil {
		s.consoleFailed(w, r, "agent", err)
		return
	}
	v := agentPageView{consoleBase: s.consoleBase(w, r, admin, "agents", "Agent "+agentLabel(d.Agent.Client)), agentDetail: d, Events: eventRows(d.Events)}
	switch r.URL.Query().Get("done") {
	case "deprovisioned":
		v.Notice = "Deprovisioned: the agent is disabled, its consents are revoked and its tokens stopped working."
	case "unchanged":
		v.Notice = "The agent was already deprovisioned; nothing changed."
	}
	render(w, s.console.agent, http.StatusOK, v)
}

func agentLabel(c *store.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// confirmView asks an administrator to confirm a state change: what it
// does, and the form that does it.
type confirmView struct {
	consoleBase
	Heading string
	Effects []string
	Action  string // the form's action
	Button  string
	Cancel  string // where Cancel leads
}

func (s *Server) handleConsoleAgentConfirm(w http.ResponseWriter, r *http.Request) {
	admin := s.consoleUser(w, r)
	if admin == nil {
		return
	}
	c, err := s.st.GetClient(r.Context(), s.tenant, r.PathValue("id"))
	if err != nil {
		s.consoleFailed(w, r, "agent", err)
		return
	}
	path := "/admin/agents/" + url.PathEscape(c.ID)
	render(w, s.console.confirm, http.StatusOK, confirmView{
		consoleBase: s.consoleBase(w, r, admin, "agents", "Deprovision "+agentLabel(c)),
		Heading:     "Deprovision " + agentLabel(c) + "?",
		Effects: []string{
			"The agent is disabled: it gets no new token.",
			"Every consent people gave it is revoked, on every service.",
			"Every refresh token and access token issued to it stops working at once.",
			"MCP servers can no longer fetch vault credentials for it.",
			"Its status becomes deprovisioned. Bringing it back (agentid clients enable) does not restore the consents.",
		},
		Action: path + "/deprovision", Button: "Deprovision", Cancel: path,
	})
}

func (s *Server) handleConsoleAgentDeprovision(w http.ResponseWriter, r *http.Request) {
	admin := s.consoleForm(w, r)
	if admin == nil {
		return
	}
	id := r.PathValue("id")
	res, err := s.deprovisionAgent(r.Context(), s.consoleMeta(r, admin), id)
	if err != nil {
		s.consoleFailed(w, r, "agent", err)
		return
	}
	done := "deprovisioned"
	if !res.Changed {
		done = "unchanged"
	}
	http.Redirect(w, r, "/admin/agents/"+url.PathEscape(id)+"?done="+done, http.StatusSeeOther)
}

// usersView is the people page of one tenant.
type usersView struct {
	consoleBase
	Users []*store.User
	Next  string
	// Tenant is the page's tenant; Tenants every tenant the hub serves
	// (more than one when a connector puts people in another); TQ the
	// tenant query to carry on links ("" for the hub's own).
	Tenant, TQ string
	Tenants    []tenantLink
}

// tenantLink is a tenant in the people page's choice.
type tenantLink struct {
	Name, Href string
	Current    bool
}

// consoleTenant is the tenant a console page names (?tenant=), the hub's
// own by default; a tenant the hub does not serve is a not-found page.
func (s *Server) consoleTenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	tenant, ok, err := s.requestTenant(r)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return "", false
	}
	if !ok {
		s.pages.errorPage(w, http.StatusNotFound, "No such tenant", "This hub holds no people of that tenant.")
		return "", false
	}
	return tenant, true
}

func (s *Server) handleConsoleUsers(w http.ResponseWriter, r *http.Request) {
	admin := s.consoleUser(w, r)
	if admin == nil {
		return
	}
	tenant, ok := s.consoleTenant(w, r)
	if !ok {
		return
	}
	users, next, err := s.usersPage(r.Context(), tenant, r.URL.Query().Get("after"), consolePage)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	served, err := s.servedTenants(r.Context())
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	v := usersView{consoleBase: s.consoleBase(w, r, admin, "users", "People"), Users: users, Next: next, Tenant: tenant, TQ: s.tenantQuery(tenant)}
	if len(served) > 1 {
		for _, t := range served {
			v.Tenants = append(v.Tenants, tenantLink{Name: t, Href: "/admin/users" + s.tenantQuery(t), Current: t == tenant})
		}
	}
	render(w, s.console.users, http.StatusOK, v)
}

// userPageView is one person's page.
type userPageView struct {
	consoleBase
	*userDetail
	// TQ carries the person's tenant on the page's links.
	TQ     string
	Events []eventRow
	// Self: the page is the administrator's own account, which the
	// console does not disable.
	Self bool
}

func (s *Server) handleConsoleUser(w http.ResponseWriter, r *http.Request) {
	admin := s.consoleUser(w, r)
	if admin == nil {
		return
	}
	tenant, ok := s.consoleTenant(w, r)
	if !ok {
		return
	}
	d, err := s.userDetail(r.Context(), tenant, r.PathValue("id"))
	if err != nil {
		s.consoleFailed(w, r, "person", err)
		return
	}
	v := userPageView{consoleBase: s.consoleBase(w, r, admin, "users", d.User.Username), userDetail: d, TQ: s.tenantQuery(tenant),
		Events: eventRows(d.Events), Self: d.User.ID == admin.ID && tenant == admin.TenantID}
	switch r.URL.Query().Get("done") {
	case "disabled":
		v.Notice = "Disabled: they can no longer sign in, and their sessions and tokens ended."
	case "deprovisioned":
		v.Notice = "Deprovisioned: disabled, sessions and tokens ended, consents and connections revoked."
	case "unchanged":
		v.Notice = "Nothing was left to change; sessions and tokens were checked again."
	}
	render(w, s.console.user, http.StatusOK, v)
}

// userActions are what the console does to a person, with what each
// does in words.
var userActions = map[string][]string{
	"disable": {
		"They can no longer sign in.",
		"Their sessions end, and every token issued for them stops working.",
		"Their consents and connections stay; enabling them again (agentid users enable) restores their access.",
	},
	"deprovision": {
		"They are disabled and can no longer sign in.",
		"Their sessions end, and every token issued for them, to any agent, stops working.",
		"Every consent they gave any agent is revoked.",
		"Every vault connection they own is revoked at its service and deleted.",
	},
}

func (s *Server) handleConsoleUserConfirm(w http.ResponseWriter, r *http.Request) {
	admin := s.consoleUser(w, r)
	if admin == nil {
		return
	}
	action := r.PathValue("action")
	effects, ok := userActions[action]
	if !ok {
		s.notFound(w, r)
		return
	}
	tenant, ok := s.consoleTenant(w, r)
	if !ok {
		return
	}
	u, err := s.st.GetUser(r.Context(), tenant, r.PathValue("id"))
	if err != nil {
		s.consoleFailed(w, r, "person", err)
		return
	}
	if u.ID == admin.ID && tenant == admin.TenantID {
		s.pages.errorPage(w, http.StatusBadRequest, "Not your own account", "The console does not "+action+" the account you are signed in with. Another administrator can, or the command line.")
		return
	}
	path, tq := "/admin/users/"+url.PathEscape(u.ID), s.tenantQuery(tenant)
	verb := strings.ToUpper(action[:1]) + action[1:]
	render(w, s.console.confirm, http.StatusOK, confirmView{
		consoleBase: s.consoleBase(w, r, admin, "users", verb+" "+u.Username),
		Heading:     verb + " " + u.Username + "?", Effects: effects,
		Action: path + "/" + action + tq, Button: verb, Cancel: path + tq,
	})
}

func (s *Server) handleConsoleUserAction(w http.ResponseWriter, r *http.Request) {
	admin := s.consoleForm(w, r)
	if admin == nil {
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	if _, ok := userActions[action]; !ok {
		s.notFound(w, r)
		return
	}
	tenant, ok := s.consoleTenant(w, r)
	if !ok {
		return
	}
	if id == admin.ID && tenant == admin.TenantID {
		s.pages.errorPage(w, http.StatusBadRequest, "Not your own account", "The console does not "+action+" the account you are signed in with. Another administrator can, or the command line.")
		return
	}
	m := s.consoleMeta(r, admin)
	done := map[string]string{"disable": "disabled", "deprovision": "deprovisioned"}[action]
	switch action {
	case "disable":
		_, changed, err := s.disableUser(r.Context(), m, tenant, id)
		if err != nil {
			s.consoleFailed(w, r, "person", err)
			return
		}
		if !changed {
			done = "unchanged"
		}
	case "deprovision":
		res, err := s.deprovisionUser(r.Context(), m, tenant, id)
		if errors.Is(err, clients.ErrNoVault) {
			s.pages.errorPage(w, http.StatusConflict, "Connections left", "The person is disabled and their consents are revoked, but they own vault connections and this hub has no vault configured to revoke them. Configure the key-encryption key and run agentid users deprovision.")
			return
		}
		if err != nil {
			s.consoleFailed(w, r, "person", err)
			return
		}
		if !res.Changed() {
			done = "unchanged"
		}
	}
	q := url.Values{"done": {done}}
	if tenant != s.tenant {
		q.Set("tenant", tenant)
	}
	http.Redirect(w, r, "/admin/users/"+url.PathEscape(id)+"?"+q.Encode(), http.StatusSeeOther)
}
