package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/store"
)

// The admin API's agents and users (docs/design.md, "Admin API"): the
// inventory as `agentid agents list|show` gives it, people with their
// consents and connections, and the lifecycle operations of the CLI
// (deprovision an agent, disable or deprovision a person), which write the
// same events, attributed to the admin client (actor admin_api). The
// console (console*.go) runs the same operations for a signed-in
// administrator.

const (
	// recentEvents is how many of an agent's or person's newest events a
	// detail shows.
	recentEvents = 20
	// maxAdminPage bounds the limit parameter of the list endpoints.
	maxAdminPage = 500
)

// agentRecord is an agent as the admin API shows it: its registration
// and what the inventory adds. Never a secret or its hash.
type agentRecord struct {
	ClientID                string     `json:"client_id"`
	Name                    string     `json:"name,omitempty"`
	Status                  string     `json:"status"`
	Type                    string     `json:"client_type"`
	RegistrationMethod      string     `json:"registration_method"`
	CIMDHost                string     `json:"cimd_host,omitempty"`
	SoftwareStatementIssuer string     `json:"software_statement_issuer,omitempty"`
	FederatedIssuer         string     `json:"federated_issuer,omitempty"`
	TokenEndpointAuthMethod string     `json:"token_endpoint_auth_method"`
	GrantTypes              []string   `json:"grant_types"`
	Scopes                  []string   `json:"scope_ceiling"`
	Tags                    []string   `json:"tags"`
	Owner                   string     `json:"owner,omitempty"`
	ConsentingUsers         []string   `json:"consenting_users"`
	CreatedAt               time.Time  `json:"created_at"`
	CreatedIP               string     `json:"created_ip,omitempty"`
	LastTokenAt             *time.Time `json:"last_token_at,omitempty"`
	LastToolCallAt          *time.Time `json:"last_tool_call_at,omitempty"`
	LastTool                string     `json:"last_tool,omitempty"`
}

func agentRecordOf(a *clients.Agent) agentRecord {
	c := a.Client
	return agentRecord{
		ClientID: c.ID, Name: c.Name, Status: a.Status, Type: a.Type, RegistrationMethod: c.RegistrationMethod,
		CIMDHost: a.CIMDHost, SoftwareStatementIssuer: c.SoftwareStatementIssuer, FederatedIssuer: c.FederatedIssuer,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, GrantTypes: nonNil(c.GrantTypes), Scopes: nonNil(c.Scopes),
		Tags: nonNil(c.Tags), Owner: a.Owner, ConsentingUsers: nonNil(a.ConsentingUsers),
		CreatedAt: c.CreatedAt.UTC(), CreatedIP: c.CreatedIP, LastTokenAt: optUTC(a.LastTokenAt),
		LastToolCallAt: optUTC(a.LastToolCallAt), LastTool: a.LastTool,
	}
}

// consentRecord is one live consent grant: one person, agent, resource
// and scope.
type consentRecord struct {
	UserID     string     `json:"user_id"`
	Username   string     `json:"username"`
	ClientID   string     `json:"client_id"`
	Resource   string     `json:"resource"`
	Scope      string     `json:"scope"`
	GrantedAt  time.Time  `json:"granted_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// userRecord is a person as the admin API shows them. Never the password
// hash.
type userRecord struct {
	ID            string    `json:"id"`
	Username      string    `json:"username"`
	Name          string    `json:"name,omitempty"`
	Email         string    `json:"email,omitempty"`
	EmailVerified bool      `json:"email_verified"`
	Roles         []string  `json:"roles"`
	Groups        []string  `json:"groups"`
	Disabled      bool      `json:"disabled"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func userRecordOf(u *store.User) userRecord {
	return userRecord{
		ID: u.ID, Username: u.Username, Name: u.Name, Email: u.Email, EmailVerified: u.EmailVerified,
		Roles: nonNil(u.Roles), Groups: nonNil(u.Groups), Disabled: u.Disabled, CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC(),
	}
}

// connectionRecord is a vault connection without its sealed material.
type connectionRecord struct {
	ID         string     `json:"id"`
	ProviderID string     `json:"provider"`
	Label      string     `json:"label,omitempty"`
	Status     string     `json:"status"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

func connectionRecordOf(c *store.Connection) connectionRecord {
	return connectionRecord{
		ID: c.ID, ProviderID: c.ProviderID, Label: c.Label, Status: c.Status, Scopes: nonNil(c.Scopes),
		CreatedAt: c.CreatedAt.UTC(), LastUsedAt: optUTC(c.LastUsedAt), ExpiresAt: optUTC(c.ExpiresAt),
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func optUTC(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func records(evs []*store.AuditEvent) []audit.Record {
	out := make([]audit.Record, len(evs))
	for i, ev := range evs {
		out[i] = audit.RecordOf(ev)
	}
	return out
}

// agentDetail is what the hub knows of one agent: its inventory entry,
// the live consents people gave it (with their usernames) and its newest
// events (store.AuditFilter.Agent: its own and those naming it).
type agentDetail struct {
	Agent    *clients.Agent
	Consents []consentRecord
	Events   []*store.AuditEvent
}

func (s *Server) agentDetail(ctx context.Context, id string) (*agentDetail, error) {
	now := s.now()
	a, err := clients.InventoryAgent(ctx, s.st, s.tenant, id, now)
	if err != nil {
		return nil, err
	}
	d := &agentDetail{Agent: a}
	grants, err := s.st.ListConsents(ctx, store.ConsentFilter{TenantID: s.tenant, ClientID: id})
	if err != nil {
		return nil, err
	}
	if d.Consents, err = s.consentRecords(ctx, grants, now); err != nil {
		return nil, err
	}
	d.Events, err = s.st.ListAudit(ctx, store.AuditFilter{TenantID: s.tenant, Agent: id, Limit: recentEvents})
	return d, err
}

// consentRecords are the live grants among gs, each with its person's
// username (the id when the person is gone), ordered by person, agent,
// resource and scope.
func (s *Server) consentRecords(ctx context.Context, gs []*store.ConsentGrant, now time.Time) ([]consentRecord, error) {
	names := map[string]string{}
	out := []consentRecord{}
	for _, g := range gs {
		if !g.Live(now) {
			continue
		}
		name, ok := names[g.UserID]
		if !ok {
			u, err := s.st.GetUser(ctx, s.tenant, g.UserID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				name = g.UserID
			case err != nil:
				return nil, err
			default:
				name = u.Username
			}
			names[g.UserID] = name
		}
		out = append(out, consentRecord{
			UserID: g.UserID, Username: name, ClientID: g.ClientID, Resource: g.Resource, Scope: g.Scope,
			GrantedAt: g.GrantedAt.UTC(), ExpiresAt: optUTC(g.ExpiresAt), LastUsedAt: optUTC(g.LastUsedAt),
		})
	}
	slices.SortStableFunc(out, func(a, b consentRecord) int {
		for _, c := range [][2]string{{a.Username, b.Username}, {a.ClientID, b.ClientID}, {a.Resource, b.Resource}, {a.Scope, b.Scope}} {
			if n := strings.Compare(c[0], c[1]); n != 0 {
				return n
			}
		}
		return 0
	})
	return out, nil
}

// userDetail is what the hub knows of one person: the account, the live
// consents they gave, the vault connections they own and their newest
// events.
type userDetail struct {
	User        *store.User
	Consents    []consentRecord
	Connections []*store.Connection
	Events      []*store.AuditEvent
}

// The person is of tenant (one the hub serves); their consents and
// connections are recorded in the hub's own tenant, where its agents and
// resources are.
func (s *Server) userDetail(ctx context.Context, tenant, id string) (*userDetail, error) {
	u, err := s.st.GetUser(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	d := &userDetail{User: u}
	grants, err := s.st.ListConsents(ctx, store.ConsentFilter{TenantID: s.tenant, UserID: id})
	if err != nil {
		return nil, err
	}
	if d.Consents, err = s.consentRecords(ctx, grants, s.now()); err != nil {
		return nil, err
	}
	if d.Connections, err = s.st.ListConnections(ctx, store.ConnectionFilter{TenantID: s.tenant, OwnerKind: store.OwnerUser, OwnerID: id, Limit: maxAdminPage}); err != nil {
		return nil, err
	}
	d.Events, err = s.st.ListAudit(ctx, store.AuditFilter{TenantID: tenant, UserID: id, Limit: recentEvents})
	return d, err
}

// deprovisionAgent runs clients.Deprovision (the events it writes carry
// m's actor) and forgets the client in this process's cache, so that its
// next request here already finds it disabled.
func (s *Server) deprovisionAgent(ctx context.Context, m audit.Meta, id string) (*clients.DeprovisionResult, error) {
	res, err := clients.Deprovision(ctx, s.st, m, s.tenant, id, s.now())
	s.clients.invalidate(id)
	return res, err
}

// disableUser disables a person as `agentid users disable` does: the
// account is disabled (user.updated, unless it already was) and their
// sessions, codes and tokens end (user.access_revoked, reason disabled).
// changed is false when the account was disabled before.
func (s *Server) disableUser(ctx context.Context, m audit.Meta, tenant, id string) (u *store.User, changed bool, err error) {
	m.TenantID = tenant
	u, err = s.st.GetUser(ctx, tenant, id)
	if err != nil {
		return nil, false, err
	}
	now := s.now()
	m.Time = now
	if !u.Disabled {
		u.Disabled, u.UpdatedAt = true, now
		if err := s.st.UpdateUser(ctx, u, audit.NewUserUpdated(m, u.ID, audit.ChangeDisabled)); err != nil {
			return nil, false, fmt.Errorf("disabling user %s: %w", id, err)
		}
		s.users.invalidate(u.ID)
		changed = true
	}
	if err := s.st.RevokeUserAccess(ctx, tenant, u.ID, now, audit.NewUserAccessRevoked(m, u.ID, audit.ChangeDisabled)); err != nil {
		return nil, false, fmt.Errorf("ending the sessions and tokens of user %s: %w", id, err)
	}
	return u, changed, nil
}

// deprovisionUser runs clients.DeprovisionUser with the hub's vault (none:
// a person owning connections is clients.ErrNoVault).
func (s *Server) deprovisionUser(ctx context.Context, m audit.Meta, tenant, id string) (*clients.UserDeprovisionResult, error) {
	var rv clients.ConnectionRevoker
	if s.cfg.Vault != nil {
		rv = s.cfg.Vault
	}
	m.TenantID = tenant
	return clients.DeprovisionUser(ctx, s.st, rv, m, tenant, id, s.now())
}

// adminMeta is the event metadata of an admin API request by clientID.
func (s *Server) adminMeta(r *http.Request, clientID string) audit.Meta {
	m := s.meta(r)
	m.Actor, m.ActorID = audit.ActorAdminAPI, clientID
	return m
}

var listParams = []string{"after", "limit"}

// pageParams reads the after and limit parameters of a list endpoint,
// answering 400 itself when they are bad.
func pageParams(w http.ResponseWriter, r *http.Request) (after string, limit int, ok bool) {
	params := r.URL.Query()
	bad := checkParams(params, listParams)
	limit = defaultAdminPage
	if v := params.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAdminPage {
			bad = append(bad, audit.QueryProblem{Param: "limit", Reason: fmt.Sprintf("a whole number from 1 to %d", maxAdminPage)})
		}
		limit = n
	}
	if len(bad) > 0 {
		writeInvalidParams(w, r, sortedProblems(bad))
		return "", 0, false
	}
	return params.Get("after"), limit, true
}

// checkParams reports parameters not in allowed, and parameters given
// more than once.
func checkParams(params url.Values, allowed []string) []audit.QueryProblem {
	var bad []audit.QueryProblem
	for name, vs := range params {
		switch {
		case !slices.Contains(allowed, name):
			bad = append(bad, audit.QueryProblem{Param: name, Reason: "not a parameter of this endpoint"})
		case len(vs) > 1:
			bad = append(bad, audit.QueryProblem{Param: name, Reason: "given more than once"})
		}
	}
	return bad
}

func sortedProblems(ps []audit.QueryProblem) []audit.QueryProblem {
	slices.SortFunc(ps, func(a, b audit.QueryProblem) int { return strings.Compare(a.Param, b.Param) })
	return ps
}

// pageAfter returns up to limit of ids (sorted) after the cursor, and the
// next cursor when more follow.
func pageAfter(ids []string, after string, limit int) (page []string, next string) {
	slices.Sort(ids)
	i, _ := slices.BinarySearch(ids, after)
	if i < len(ids) && ids[i] == after {
		i++
	}
	ids = ids[i:]
	if len(ids) > limit {
		return ids[:limit], ids[limit-1]
	}
	return ids, ""
}

// agentsPage is a page of the inventory in client id order: up to limit
// agents after the cursor, and the next cursor when more follow.
func (s *Server) agentsPage(ctx context.Context, after string, limit int) ([]*clients.Agent, string, error) {
	cls, err := s.st.ListClients(ctx, s.tenant)
	if err != nil {
		return nil, "", err
	}
	ids := make([]string, len(cls))
	for i, c := range cls {
		ids[i] = c.ID
	}
	page, next := pageAfter(ids, after, limit)
	out := make([]*clients.Agent, 0, len(page))
	now := s.now()
	for _, id := range page {
		a, err := clients.InventoryAgent(ctx, s.st, s.tenant, id, now)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, a)
	}
	return out, next, nil
}

// usersPage is a page of the tenant's people in id order.
func (s *Server) usersPage(ctx context.Context, tenant, after string, limit int) ([]*store.User, string, error) {
	us, err := s.st.ListUsers(ctx, tenant)
	if err != nil {
		return nil, "", err
	}
	byID := make(map[string]*store.User, len(us))
	ids := make([]string, len(us))
	for i, u := range us {
		byID[u.ID], ids[i] = u, u.ID
	}
	page, next := pageAfter(ids, after, limit)
	out := make([]*store.User, len(page))
	for i, id := range page {
		out[i] = byID[id]
	}
	return out, next, nil
}

// writePage answers a list page under name, with a Link rel="next"
// header when a page follows.
func (s *Server) writePage(w http.ResponseWriter, path, name string, items any, next string, limit int) {
	body := map[string]any{name: items}
	if next != "" {
		q := url.Values{"after": {next}}
		if limit != defaultAdminPage {
			q.Set("limit", strconv.Itoa(limit))
		}
		link := path + "?" + q.Encode()
		body["next_cursor"], body["next"] = next, link
		w.Header().Set("Link", "<"+s.issuer+link+`>; rel="next"`)
	}
	writeAdminJSON(w, http.StatusOK, body)
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// adminLookupFailed answers a failed lookup of the agent or person id:
// 404 when there is none, else a server error.
func (s *Server) adminLookupFailed(w http.ResponseWriter, r *http.Request, what, id string, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeProblem(w, problem{Status: http.StatusNotFound, Detail: fmt.Sprintf("no %s with id %q", what, id), RequestID: requestID(r.Context())})
		return
	}
	s.adminServerError(w, r, err)
}

// handleAdminAgents is GET /admin/api/agents: the inventory, ordered by
// client id, a page at a time (after: the last client id of the page
// before).
func (s *Server) handleAdminAgents(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.adminAuth(w, r); !ok {
		return
	}
	after, limit, ok := pageParams(w, r)
	if !ok {
		return
	}
	agents, next, err := s.agentsPage(r.Context(), after, limit)
	if err != nil {
		s.adminServerError(w, r, err)
		return
	}
	out := make([]agentRecord, len(agents))
	for i, a := range agents {
		out[i] = agentRecordOf(a)
	}
	s.writePage(w, AdminAPIPath+"/agents", "agents", out, next, limit)
}

// handleAdminAgent is GET /admin/api/agents/{id}.
func (s *Server) handleAdminAgent(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.adminAuth(w, r); !ok {
		return
	}
	if bad := checkParams(r.URL.Query(), nil); len(bad) > 0 {
		writeInvalidParams(w, r, sortedProblems(bad))
		return
	}
	id := r.PathValue("id")
	d, err := s.agentDetail(r.Context(), id)
	if err != nil {
		s.adminLookupFailed(w, r, "agent", id, err)
		return
	}
	writeAdminJSON(w, http.StatusOK, struct {
		agentRecord
		Consents     []consentRecord `json:"consents"`
		RecentEvents []audit.Record  `json:"recent_events"`
	}{agentRecordOf(d.Agent), d.Consents, records(d.Events)})
}

// handleAdminAgentDeprovision is POST /admin/api/agents/{id}/deprovision:
// clients.Deprovision, idempotent (changed false the second time, and no
// event).
func (s *Server) handleAdminAgentDeprovision(w http.ResponseWriter, r *http.Request) {
	admin, ok := s.adminAuth(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	res, err := s.deprovisionAgent(r.Context(), s.adminMeta(r, admin), id)
	if err != nil {
		s.adminLookupFailed(w, r, "agent", id, err)
		return
	}
	writeAdminJSON(w, http.StatusOK, struct {
		ClientID string `json:"client_id"`
		Status   string `json:"status"`
		Changed  bool   `json:"changed"`
	}{res.Client.ID, clients.AgentStatus(res.Client), res.Changed})
}

// handleAdminUsers is GET /admin/api/users, ordered by id, a page at a
// time.
func (s *Server) handleAdminUsers(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.adminAuth(w, r); !ok {
		return
	}
	after, limit, ok := pageParams(w, r)
	if !ok {
		return
	}
	users, next, err := s.usersPage(r.Context(), s.tenant, after, limit)
	if err != nil {
		s.adminServerError(w, r, err)
		return
	}
	out := make([]userRecord, len(users))
	for i, u := range users {
		out[i] = userRecordOf(u)
	}
	s.writePage(w, AdminAPIPath+"/users", "users", out, next, limit)
}

// handleAdminUser is GET /admin/api/users/{id}.
func (s *Server) handleAdminUser(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.adminAuth(w, r); !ok {
		return
	}
	if bad := checkParams(r.URL.Query(), nil); len(bad) > 0 {
		writeInvalidParams(w, r, sortedProblems(bad))
		return
	}
	id := r.PathValue("id")
	d, err := s.userDetail(r.Context(), s.tenant, id)
	if err != nil {
		s.adminLookupFailed(w, r, "user", id, err)
		return
	}
	conns := make([]connectionRecord, len(d.Connections))
	for i, c := range d.Connections {
		conns[i] = connectionRecordOf(c)
	}
	writeAdminJSON(w, http.StatusOK, struct {
		userRecord
		Consents     []consentRecord    `json:"consents"`
		Connections  []connectionRecord `json:"connections"`
		RecentEvents []audit.Record     `json:"recent_events"`
	}{userRecordOf(d.User), d.Consents, conns, records(d.Events)})
}

// handleAdminUserDisable is POST /admin/api/users/{id}/disable.
func (s *Server) handleAdminUserDisable(w http.ResponseWriter, r *http.Request) {
	admin, ok := s.adminAuth(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	u, changed, err := s.disableUser(r.Context(), s.adminMeta(r, admin), s.tenant, id)
	if err != nil {
		s.adminLookupFailed(w, r, "user", id, err)
		return
	}
	writeAdminJSON(w, http.StatusOK, struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		Disabled bool   `json:"disabled"`
		Changed  bool   `json:"changed"`
	}{u.ID, u.Username, u.Disabled, changed})
}

// handleAdminUserDeprovision is POST /admin/api/users/{id}/deprovision.
func (s *Server) handleAdminUserDeprovision(w http.ResponseWriter, r *http.Request) {
	admin, ok := s.adminAuth(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	res, err := s.deprovisionUser(r.Context(), s.adminMeta(r, admin), s.tenant, id)
	if errors.Is(err, clients.ErrNoVault) {
		writeProblem(w, problem{Status: http.StatusConflict, Detail: "the user owns vault connections and this hub has no vault to revoke them with; the rest was done", RequestID: requestID(r.Context())})
		return
	}
	if err != nil {
		s.adminLookupFailed(w, r, "user", id, err)
		return
	}
	writeAdminJSON(w, http.StatusOK, struct {
		ID          string   `json:"id"`
		Username    string   `json:"username"`
		Changed     bool     `json:"changed"`
		Disabled    bool     `json:"disabled_now"`
		Consents    int      `json:"consents_revoked"`
		Connections []string `json:"connections_revoked"`
	}{res.User.ID, res.User.Username, res.Changed(), res.Disabled, res.Consents, nonNil(res.Connections)})
}

// adminMethods answers a method an admin API endpoint does not take.
func adminMethods(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeProblem(w, problem{Status: http.StatusMethodNotAllowed, Detail: r.Method + " is not allowed here; use " + allow, RequestID: requestID(r.Context())})
	}
}
