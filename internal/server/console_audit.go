package server

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// eventRow is an audit event in a console table.
type eventRow struct {
	ID       int64
	Time     time.Time
	Type     string
	Outcome  string
	ClientID string
	UserID   string
	Resource string
	Scopes   string
}

func eventRows(evs []*store.AuditEvent) []eventRow {
	out := make([]eventRow, len(evs))
	for i, ev := range evs {
		out[i] = eventRow{ID: ev.ID, Time: ev.Time, Type: ev.Type, Outcome: ev.Outcome, ClientID: ev.ClientID,
			UserID: ev.UserID, Resource: ev.Resource, Scopes: oauth.FormatScope(ev.Scopes)}
	}
	return out
}

// consoleAuditParams are the audit page's filters: those of GET
// /admin/api/audit a person types, and the cursor.
var consoleAuditParams = []string{"tenant", "agent", "user", "type", "resource", "provider", "outcome", "since", "until", "before"}

// chainStatus is the newest verification of the audit chain, from its
// audit.verified event.
type chainStatus struct {
	Known       bool
	At          time.Time
	OK          bool
	Events      string
	Checkpoints string
	Unsealed    string
	BreakID     string
	BreakReason string
	By          string
}

// auditView is the audit page: the filters as typed, what is wrong with
// them, a page of events and the way to the next.
type auditView struct {
	consoleBase
	// Tenants are the tenants the hub serves when there are several (the
	// search then offers them).
	Tenants  []string
	Filter   map[string]string
	Outcomes []string
	Problems []audit.QueryProblem
	Events   []eventRow
	// Older is the URL of the next (older) page; First, when this is not
	// the first page, the URL of the newest events with these filters.
	Older, First string
	Chain        chainStatus
}

func (s *Server) handleConsoleAudit(w http.ResponseWriter, r *http.Request) {
	admin := s.consoleUser(w, r)
	if admin == nil {
		return
	}
	ctx := r.Context()
	params := r.URL.Query()
	v := auditView{consoleBase: s.consoleBase(w, r, admin, "audit", "Audit trail"), Filter: map[string]string{},
		Outcomes: []string{audit.Success, audit.Failure, audit.Denied}}
	for _, p := range consoleAuditParams {
		v.Filter[p] = strings.TrimSpace(params.Get(p))
	}
	if r.URL.Query().Get("verified") != "" {
		v.Notice = "The chain was verified just now; the result is below."
	}
	var err error
	if v.Chain, err = s.chainStatus(r); err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	tenant, ok, err := s.requestTenant(r)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	if served, err := s.servedTenants(ctx); err != nil {
		s.internalErrorPage(w, r, err)
		return
	} else if len(served) > 1 {
		v.Tenants = served
	}
	if !ok {
		v.Problems = []audit.QueryProblem{{Param: "tenant", Reason: "this hub holds no tenant of that name"}}
		render(w, s.console.audit, http.StatusBadRequest, v)
		return
	}
	user := v.Filter["user"]
	if user != "" {
		// A username is what an administrator knows; events name the id.
		if u, err := s.st.GetUserByUsername(ctx, tenant, user); err == nil {
			user = u.ID
		}
	}
	q := audit.Query{Agent: v.Filter["agent"], User: user, Type: v.Filter["type"], Resource: v.Filter["resource"],
		Provider: v.Filter["provider"], Outcome: v.Filter["outcome"], Since: v.Filter["since"], Until: v.Filter["until"],
		Before: v.Filter["before"], Limit: strconv.Itoa(consolePage)}
	f, err := q.Filter(s.now(), consolePage)
	var qe *audit.QueryError
	if errors.As(err, &qe) {
		v.Problems = qe.Problems
		render(w, s.console.audit, http.StatusBadRequest, v)
		return
	}
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	f.TenantID = tenant
	f.Limit = consolePage + 1
	evs, err := s.st.ListAudit(ctx, f)
	if errors.Is(err, store.ErrInvalid) {
		v.Error = "These filters select nothing they could mean."
		render(w, s.console.audit, http.StatusBadRequest, v)
		return
	}
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	if len(evs) > consolePage {
		evs = evs[:consolePage]
		v.Older = auditURL(v.Filter, strconv.FormatInt(evs[len(evs)-1].ID, 10))
	}
	if v.Filter["before"] != "" {
		v.First = auditURL(v.Filter, "")
	}
	v.Events = eventRows(evs)
	render(w, s.console.audit, http.StatusOK, v)
}

// auditURL is the audit page with filter and the cursor before.
func auditURL(filter map[string]string, before string) string {
	q := url.Values{}
	for k, val := range filter {
		if val != "" && k != "before" {
			q.Set(k, val)
		}
	}
	if before != "" {
		q.Set("before", before)
	}
	if len(q) == 0 {
		return "/admin/audit"
	}
	return "/admin/audit?" + q.Encode()
}

// chainStatus reads the newest audit.verified event.
func (s *Server) chainStatus(r *http.Request) (chainStatus, error) {
	evs, err := s.st.ListAudit(r.Context(), store.AuditFilter{TenantID: s.tenant, Type: audit.AuditVerified, Limit: 1})
	if err != nil || len(evs) == 0 {
		return chainStatus{}, err
	}
	ev := evs[0]
	d := ev.Details
	c := chainStatus{Known: true, At: ev.Time, OK: ev.Outcome == audit.Success, Events: d["events"], Checkpoints: d["checkpoints"],
		Unsealed: d["unsealed"], BreakID: d["break_id"], BreakReason: d["break_reason"], By: d["actor"]}
	if d["actor_id"] != "" {
		c.By += " (" + d["actor_id"] + ")"
	} else if d["os_user"] != "" {
		c.By += " (" + d["os_user"] + ")"
	}
	return c, nil
}

// handleConsoleVerify walks the audit chain (audit.Verify, as `agentid
// audit verify` does) and records the run as an audit.verified event; the
// audit page then shows it.
func (s *Server) handleConsoleVerify(w http.ResponseWriter, r *http.Request) {
	admin := s.consoleForm(w, r)
	if admin == nil {
		return
	}
	ctx := r.Context()
	keys, err := s.st.ListSigningKeys(ctx)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	rep, err := audit.Verify(ctx, audit.VerifyOptions{Store: s.st, TenantID: s.tenant, Verifier: func(jws string) ([]byte, error) {
		p, _, err := token.VerifyCheckpoint(jws, keys)
		if errors.Is(err, token.ErrCheckpointKeyUnknown) {
			return nil, fmt.Errorf("%w: %v", audit.ErrUnknownKey, err)
		}
		return p, err
	}})
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	if err := s.st.AppendAudit(ctx, audit.NewVerified(s.consoleMeta(r, admin), rep)); err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	http.Redirect(w, r, "/admin/audit?verified=1", http.StatusSeeOther)
}

// eventView is one event's page: every column and detail.
type eventView struct {
	consoleBase
	Event   *store.AuditEvent
	Scopes  string
	Details [][2]string
}

func (s *Server) handleConsoleEvent(w http.ResponseWriter, r *http.Request) {
	admin := s.consoleUser(w, r)
	if admin == nil {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.consoleNotFound(w, "event")
		return
	}
	// An event of any tenant the hub serves (ids are the trail's own,
	// one sequence).
	served, err := s.servedTenants(r.Context())
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	var ev *store.AuditEvent
	for _, tenant := range served {
		evs, err := s.st.ListAudit(r.Context(), store.AuditFilter{TenantID: tenant, Before: id + 1, After: id - 1, Limit: 1})
		if err != nil {
			s.internalErrorPage(w, r, err)
			return
		}
		if len(evs) == 1 && evs[0].ID == id {
			ev = evs[0]
			break
		}
	}
	if ev == nil {
		s.consoleNotFound(w, "event")
		return
	}
	v := eventView{consoleBase: s.consoleBase(w, r, admin, "audit", "Event "+strconv.FormatInt(id, 10)), Event: ev, Scopes: oauth.FormatScope(ev.Scopes)}
	d := ev.StoredDetails()
	for _, k := range slices.Sorted(maps.Keys(d)) {
		v.Details = append(v.Details, [2]string{k, d[k]})
	}
	render(w, s.console.event, http.StatusOK, v)
}
