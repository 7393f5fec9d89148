package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// Tool-call reporting (POST /tools/report): an MCP server reports the tool
// calls it served to the hub's audit trail. The server authenticates as its
// own client (HTTP Basic, as for introspection) and names each call's token
// by its jti only; the hub reads its record of that token and writes a
// tool.invoked event with the token's client, user, resource and scopes,
// so a server can neither forge who acted nor report calls made with a
// token issued for another server.
const (
	// toolReportPath is where MCP servers report tool calls.
	toolReportPath = "/tools/report"
	// maxToolReports bounds one batch; maxToolReportBody its size.
	maxToolReports    = 500
	maxToolReportBody = 1 << 20
	// maxToolName bounds a reported tool name (MCP names are short
	// identifiers).
	maxToolName = 128
	// maxToolDuration bounds a reported duration.
	maxToolDuration = 24 * time.Hour
	// toolReportSkew is how far a reported time may lie ahead of the
	// hub's clock or after the token's expiry (the servers' verifiers
	// allow some leeway).
	toolReportSkew = 2 * time.Minute
)

// Per-report refusal codes in a tool report response.
const (
	toolReportRecorded      = "recorded"
	toolReportRefused       = "refused"
	toolRefusalInvalid      = "invalid_report"
	toolRefusalUnknownToken = "unknown_token"
	toolRefusalAudience     = "wrong_audience"
	toolRefusalChain        = "chain_mismatch"
	toolRefusalExpired      = "token_expired"
)

// toolReportRequest is the JSON body of POST /tools/report.
type toolReportRequest struct {
	Reports []toolReport `json:"reports"`
}

// toolReport is one reported call. Nothing in it names the user or the
// agent: those come from the token's record.
type toolReport struct {
	// ID is the server's own id of the report, the same when a batch is
	// sent again: the trail keeps one event per reporting client and id.
	// Optional (a report without one is recorded each time it arrives).
	ID         string    `json:"id,omitempty"`
	JTI        string    `json:"jti"`
	Tool       string    `json:"tool"`
	Outcome    string    `json:"outcome"`
	DurationMS int64     `json:"duration_ms"`
	Time       time.Time `json:"time"`
	// ActChain is the delegation chain of the verified token, the current
	// actor first; empty for a token without act.
	ActChain []string `json:"act_chain,omitempty"`
}

// toolReportResponse answers a batch: one result per report, in order.
type toolReportResponse struct {
	// Recorded counts the reports in the trail after this batch,
	// Duplicates those of them it already held (a batch sent again).
	Recorded   int                `json:"recorded"`
	Duplicates int                `json:"duplicates"`
	Refused    int                `json:"refused"`
	Results    []toolReportResult `json:"results"`
}

type toolReportResult struct {
	Status string `json:"status"`
	// Duplicate marks a recorded report the trail already held.
	Duplicate        bool   `json:"duplicate,omitempty"`
	Error            string `json:"error,omitempty"`
	ErrorDescription string `json:"error_description,omitempty"`
}

func (s *Server) handleToolReport(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	// The body is JSON, so only HTTP Basic can carry the credentials.
	ca, oe := oauth.ParseClientAuth(r, url.Values{})
	if oe != nil {
		s.writeProtocolError(w, r, oe)
		return
	}
	c, err := s.authenticateClient(r, ca)
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	if c.Public() {
		s.writeProtocolError(w, r, oauth.ErrInvalidClient("reporting tool calls requires a confidential client"))
		return
	}
	resources, servers, err := s.resourcesOf(ctx, c)
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	if len(resources) == 0 {
		e := oauth.ErrUnauthorizedClient("only the client of a registered resource server may report tool calls")
		e.Status = http.StatusForbidden
		s.writeProtocolError(w, r, e)
		return
	}
	req, status, detail := readToolReports(w, r)
	if status != 0 {
		writeReportProblem(w, status, detail)
		return
	}
	m := s.meta(r)
	now := s.now()
	resp := toolReportResponse{Results: make([]toolReportResult, len(req.Reports))}
	var evs []*store.AuditEvent
	recorded := make([]int, 0, len(req.Reports)) // the index of each event's report
	agents := map[string]audit.Agent{}
	for i := range req.Reports {
		ev, code, desc, err := s.toolEvent(ctx, m, now, c, resources, servers, agents, &req.Reports[i])
		if err != nil {
			s.writeProtocolError(w, r, err)
			return
		}
		if ev == nil {
			resp.Results[i] = toolReportResult{Status: toolReportRefused, Error: code, ErrorDescription: desc}
			resp.Refused++
			continue
		}
		resp.Results[i] = toolReportResult{Status: toolReportRecorded}
		resp.Recorded++
		evs = append(evs, ev)
		recorded = append(recorded, i)
	}
	if len(evs) > 0 {
		// A report the trail already holds (the reporter did not get the
		// answer to an earlier send of the batch) is skipped by the store.
		if err := s.st.AppendAuditOnce(ctx, evs...); err != nil {
			s.writeProtocolError(w, r, err)
			return
		}
		for j, ev := range evs {
			if ev.ID == 0 {
				resp.Results[recorded[j]].Duplicate = true
				resp.Duplicates++
			}
		}
	}
	oauth.WriteJSON(w, http.StatusOK, resp)
}

// resourcesOf lists the resource URIs whose resource server is c, and
// the ids of every resource server of the tenant.
func (s *Server) resourcesOf(ctx context.Context, c *store.Client) (mine []string, servers map[string]bool, err error) {
	all, err := s.st.ListResources(ctx, s.tenant)
	if err != nil {
		return nil, nil, err
	}
	servers = map[string]bool{}
	for _, res := range all {
		if res.ClientID == "" {
			continue
		}
		servers[res.ClientID] = true
		if res.ClientID == c.ID {
			mine = append(mine, res.URI)
		}
	}
	return mine, servers, nil
}

// readToolReports decodes and bounds the body; a non-zero status is a
// problem to answer with.
func readToolReports(w http.ResponseWriter, r *http.Request) (*toolReportRequest, int, string) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, http.StatusUnsupportedMediaType, "the body must be application/json"
	}
	body := http.MaxBytesReader(w, r.Body, maxToolReportBody)
	// Unknown members are ignored, not refused: a newer reporter may send
	// more, and nothing a report claims beyond its fields is believed
	// (who acted comes from the token's record).
	dec := json.NewDecoder(body)
	var req toolReportRequest
	if err := dec.Decode(&req); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body exceeds %d bytes", maxToolReportBody)
		}
		return nil, http.StatusBadRequest, "the body is not a valid tool report batch"
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, http.StatusBadRequest, "the body holds more than one JSON value"
	}
	if len(req.Reports) == 0 {
		return nil, http.StatusBadRequest, "the batch holds no reports"
	}
	if len(req.Reports) > maxToolReports {
		return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("a batch holds at most %d reports", maxToolReports)
	}
	return &req, 0, ""
}

// toolEvent checks one report against the token's record and builds its
// event; a nil event comes with the refusal code and description. err is
// for store failures only.
func (s *Server) toolEvent(ctx context.Context, m audit.Meta, now time.Time, c *store.Client, resources []string, servers map[string]bool, agents map[string]audit.Agent, rep *toolReport) (*store.AuditEvent, string, string, error) {
	if desc := rep.problem(now); desc != "" {
		return nil, toolRefusalInvalid, desc, nil
	}
	at, err := s.st.GetAccessToken(ctx, rep.JTI)
	if errors.Is(err, store.ErrNotFound) {
		return nil, toolRefusalUnknownToken, "no access token with this jti", nil
	}
	if err != nil {
		return nil, "", "", err
	}
	if at.TenantID != s.tenant {
		return nil, toolRefusalUnknownToken, "no access token with this jti", nil
	}
	if !slices.Contains(resources, at.Resource) {
		return nil, toolRefusalAudience, "the token was not issued for a resource of the reporting client", nil
	}
	if rep.Time.After(at.ExpiresAt.Add(toolReportSkew)) {
		return nil, toolRefusalExpired, "the call is reported after the token expired", nil
	}
	// The record keeps no issue time, but no access token lives longer
	// than MaxAccessTokenTTL: a call placed before that was made without
	// this token (a server backdating its reports into the trail).
	if rep.Time.Before(at.ExpiresAt.Add(-MaxAccessTokenTTL - toolReportSkew)) {
		return nil, toolRefusalInvalid, "the call is reported before the token was issued", nil
	}
	// The chain travels in the signed token the server verified; the hub
	// records who holds the token, so the current actor must be that
	// client. Without a chain the holder is the agent.
	agent := ""
	if len(rep.ActChain) > 0 {
		if rep.ActChain[0] != at.ClientID {
			return nil, toolRefusalChain, "the chain's current actor is not the client the token was issued to", nil
		}
		// Only a resource server exchanges tokens (proveTokenExchange), so
		// only its tokens carry act: behind a token the hub issued to
		// any other client, a longer chain is made up, and its last
		// entry would put the call in another agent's trail.
		if len(rep.ActChain) > 1 && !servers[at.ClientID] {
			return nil, toolRefusalChain, "the token was not obtained by token exchange, so it carries no delegation chain", nil
		}
		agent = rep.ActChain[len(rep.ActChain)-1]
	}
	// The agent's kind, read once per batch and client; a client deleted
	// since leaves it unknown.
	a, ok := agents[at.ClientID]
	if !ok {
		tc, err := s.st.GetClient(ctx, s.tenant, at.ClientID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, "", "", err
		}
		a = audit.AgentOf(tc)
		agents[at.ClientID] = a
	}
	m.Time, m.Agent = rep.Time.UTC(), a
	return audit.NewToolInvoked(m, audit.ToolInvokedFields{
		ClientID: at.ClientID, UserID: at.UserID, Resource: at.Resource, Scopes: at.Scopes, JTI: at.JTI,
		Agent: agent, Chain: rep.ActChain, ReportingClient: c.ID,
		Tool: rep.Tool, Outcome: rep.Outcome, Duration: time.Duration(rep.DurationMS) * time.Millisecond,
		ReportID: rep.ID,
	}), "", "", nil
}

// maxReportID bounds a report's id (mcpauth sends 22 characters).
const maxReportID = 64

// maxReportedChain bounds a reported delegation chain (the hub caps
// chains far lower).
const maxReportedChain = 32

// problem says what is wrong with a report on its face, or "".
func (rep *toolReport) problem(now time.Time) string {
	switch {
	case len(rep.ID) > maxReportID || !printable(rep.ID) || strings.Contains(rep.ID, " "):
		return fmt.Sprintf("id is printable, without spaces and at most %d bytes", maxReportID)
	case rep.JTI == "" || len(rep.JTI) > 256 || !printable(rep.JTI):
		return "jti is required and printable"
	case rep.Tool == "" || len(rep.Tool) > maxToolName || !printable(rep.Tool):
		return fmt.Sprintf("tool is required, printable and at most %d bytes", maxToolName)
	case !slices.Contains(audit.ToolOutcomes(), rep.Outcome):
		return "outcome must be one of " + strings.Join(audit.ToolOutcomes(), ", ")
	case rep.DurationMS < 0 || rep.DurationMS > maxToolDuration.Milliseconds():
		return "duration_ms is out of range"
	case rep.Time.IsZero():
		return "time is required"
	case rep.Time.After(now.Add(toolReportSkew)):
		return "time is in the future"
	case len(rep.ActChain) > maxReportedChain:
		return "act_chain is too long"
	}
	for _, a := range rep.ActChain {
		if a == "" || len(a) > 2048 || !printable(a) || strings.Contains(a, " ") {
			return "act_chain holds an invalid actor"
		}
	}
	return ""
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// writeReportProblem answers a malformed batch with RFC 9457 problem JSON.
func writeReportProblem(w http.ResponseWriter, status int, detail string) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}{"about:blank", http.StatusText(status), status, detail})
}
