package server

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// The admin API is a protected resource of the hub itself, at the issuer
// followed by AdminAPIPath: its access tokens are the hub's own JWTs with
// that URI as their audience and ScopeAdmin among their scopes, obtained
// by an admin client through client credentials. Nothing about it is
// special in the token pipeline: an operator registers it as a resource
// with the scope marked sensitive, and an admin client manually, with the
// scope in its ceiling and the tag cc:agentid:admin that the default
// policy's client-credentials rule asks for (docs/design.md, "Admin API").
// Self-registered agents can never hold it (the sensitive-scope forbid),
// and a token a person delegated is refused: the API answers only a
// client acting for itself.
const (
	AdminAPIPath = "/admin/api"
	ScopeAdmin   = "agentid:admin"
)

// defaultAdminPage is the page size of GET /admin/api/audit without a limit.
const defaultAdminPage = 100

// adminResource is the admin API's resource URI (the audience of its
// tokens), in the canonical form resources are registered in.
func (s *Server) adminResource() string {
	if uri, err := oauth.CanonicalResource(s.issuer + AdminAPIPath); err == nil {
		return uri
	}
	return s.issuer + AdminAPIPath
}

// adminAuth checks an admin API request's bearer token (RFC 6750): the
// hub's own, unexpired, unrevoked access token for the admin resource,
// with ScopeAdmin, of a live client acting for itself, whose id it
// returns. It writes the RFC 6750 §3 challenge with a problem body and
// returns false when not.
func (s *Server) adminAuth(w http.ResponseWriter, r *http.Request) (clientID string, ok bool) {
	clientID, ref := s.hubClientToken(r, s.adminResource(), ScopeAdmin)
	switch {
	case ref == nil:
		return clientID, true
	case ref.err != nil:
		s.adminServerError(w, r, ref.err)
	default:
		s.adminChallenge(w, r, ref.status, ref.code, ref.detail)
	}
	return "", false
}

// tokenRefusal is why hubClientToken refused a bearer token: an RFC 6750
// §3.1 error code ("" for a request without one) and its description
// with the status to answer, or err when the check itself failed.
type tokenRefusal struct {
	status       int
	code, detail string
	err          error
}

// hubClientToken checks a request's bearer token for one of the hub's
// own protected resources (the admin API, SCIM): the hub's own,
// unexpired, unrevoked access token with resource among its audiences and
// scope among its scopes, of a live client acting for itself (no person
// delegated it, nobody acts for it), whose id it returns.
func (s *Server) hubClientToken(r *http.Request, resource, scope string) (string, *tokenRefusal) {
	raw, ok := bearerToken(r)
	if !ok {
		return "", &tokenRefusal{status: http.StatusUnauthorized, detail: "an access token with the " + scope + " scope is required"}
	}
	ctx := r.Context()
	claims, err := s.keys.Verify(raw, s.issuer)
	if err != nil || s.now().Unix() >= claims.Expiry {
		return "", &tokenRefusal{status: http.StatusUnauthorized, code: "invalid_token", detail: "the access token is invalid or expired"}
	}
	if !slices.Contains(claims.Audience, resource) {
		return "", &tokenRefusal{status: http.StatusUnauthorized, code: "invalid_token", detail: "the access token is not for " + resource}
	}
	revoked, err := s.st.AccessTokenRevoked(ctx, claims.JTI)
	if err != nil {
		return "", &tokenRefusal{err: err}
	}
	if revoked {
		return "", &tokenRefusal{status: http.StatusUnauthorized, code: "invalid_token", detail: "the access token was revoked"}
	}
	alive, err := s.alive(ctx, claims.ClientID, "")
	if err != nil {
		return "", &tokenRefusal{err: err}
	}
	if !alive {
		return "", &tokenRefusal{status: http.StatusUnauthorized, code: "invalid_token", detail: "the access token is no longer valid"}
	}
	if !slices.Contains(strings.Fields(claims.Scope), scope) || claims.Subject != claims.ClientID || claims.Act != nil {
		return "", &tokenRefusal{status: http.StatusForbidden, code: "insufficient_scope", detail: "the access token lacks the " + scope + " scope of a client acting for itself"}
	}
	return claims.ClientID, nil
}

// adminChallenge answers with an RFC 6750 §3 challenge and an RFC 9457
// problem body. A request without credentials gets no error code (§3.1).
func (s *Server) adminChallenge(w http.ResponseWriter, r *http.Request, status int, code, detail string) {
	v := `Bearer realm="agentid"`
	if code != "" {
		v += `, error="` + code + `", error_description="` + detail + `"`
		if code == "insufficient_scope" {
			v += `, scope="` + ScopeAdmin + `"`
		}
	}
	w.Header().Set("WWW-Authenticate", v)
	writeProblem(w, problem{Status: status, Detail: detail, RequestID: requestID(r.Context())})
}

func (s *Server) adminServerError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "admin request failed", "request_id", requestID(r.Context()), "path", r.URL.Path, "err", err)
	writeProblem(w, problem{Status: http.StatusInternalServerError, Detail: "the request failed; the hub's log has the details under this request id", RequestID: requestID(r.Context())})
}

// adminAuditParams are the query parameters of GET /admin/api/audit.
var adminAuditParams = []string{"tenant", "client", "agent", "user", "type", "resource", "provider", "outcome", "since", "until", "before", "after", "limit", "order"}

// auditPage is the answer of GET /admin/api/audit.
type auditPage struct {
	Events []audit.Record `json:"events"`
	// NextCursor is the before value of the next page (after with
	// order=asc); Next the URL of the next page (also a Link rel="next"
	// header). Both are absent on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
	Next       string `json:"next,omitempty"`
}

// handleAdminAudit is GET /admin/api/audit: the tenant's audit events,
// newest first (order=asc: oldest first), filtered as `agentid audit
// list` filters.
func (s *Server) handleAdminAudit(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.adminAuth(w, r); !ok {
		return
	}
	params := r.URL.Query()
	bad := checkParams(params, adminAuditParams)
	tenant, ok, err := s.requestTenant(r)
	if err != nil {
		s.adminServerError(w, r, err)
		return
	}
	if !ok {
		bad = append(bad, audit.QueryProblem{Param: "tenant", Reason: "this hub holds no tenant of that name"})
	}
	if len(bad) > 0 {
		writeInvalidParams(w, r, sortedProblems(bad))
		return
	}
	q := audit.Query{
		Client: params.Get("client"), Agent: params.Get("agent"), User: params.Get("user"), Type: params.Get("type"),
		Resource: params.Get("resource"), Provider: params.Get("provider"), Outcome: params.Get("outcome"),
		Since: params.Get("since"), Until: params.Get("until"), Before: params.Get("before"), After: params.Get("after"),
		Limit: params.Get("limit"), Order: params.Get("order"),
	}
	f, err := q.Filter(s.now(), defaultAdminPage)
	var qe *audit.QueryError
	if errors.As(err, &qe) {
		writeInvalidParams(w, r, qe.Problems)
		return
	}
	if err != nil {
		s.adminServerError(w, r, err)
		return
	}
	f.TenantID = tenant
	limit := f.Limit
	f.Limit = limit + 1 // one more tells whether there is a next page
	evs, err := s.st.ListAudit(r.Context(), f)
	if errors.Is(err, store.ErrInvalid) {
		writeProblem(w, problem{Status: http.StatusBadRequest, Detail: "the filter selects nothing it could mean", RequestID: requestID(r.Context())})
		return
	}
	if err != nil {
		s.adminServerError(w, r, err)
		return
	}
	page := auditPage{Events: make([]audit.Record, 0, min(len(evs), limit))}
	for _, ev := range evs[:min(len(evs), limit)] {
		page.Events = append(page.Events, audit.RecordOf(ev))
	}
	if len(evs) > limit {
		cursor := strconv.FormatInt(evs[limit-1].ID, 10)
		param := "before"
		if f.Ascending {
			param = "after"
		}
		next := url.Values{}
		for name, vs := range params {
			if name != param {
				next[name] = vs
			}
		}
		next.Set(param, cursor)
		page.NextCursor = cursor
		page.Next = AdminAPIPath + "/audit?" + next.Encode()
		w.Header().Set("Link", "<"+s.issuer+page.Next+`>; rel="next"`)
	}
	writeAdminJSON(w, http.StatusOK, page)
}

// writeInvalidParams answers 400 naming every bad parameter (the
// invalid-params extension of RFC 9457 §3's example).
func writeInvalidParams(w http.ResponseWriter, r *http.Request, ps []audit.QueryProblem) {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Param
	}
	writeProblem(w, problem{
		Status: http.StatusBadRequest,
		Detail: "bad parameters: " + strings.Join(names, ", "), RequestID: requestID(r.Context()), InvalidParams: ps,
	})
}

// adminNotFound answers unknown admin API paths in the API's own format.
func (s *Server) adminNotFound(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, problem{Status: http.StatusNotFound, Detail: "no such admin API endpoint", RequestID: requestID(r.Context())})
}
