package audit

import (
	"slices"
	"strconv"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// ToolInvoked: an MCP server reported that a tool was called with an
// access token of this hub. The server reports the tool, its outcome and
// duration and the token's jti; the hub fills the agent, user, resource and
// scopes from its own record of that token, never from the report.
const ToolInvoked = "tool.invoked"

// Tool call outcomes, as an MCP server reports them (details
// "tool_outcome"; the event's outcome column maps them to success,
// failure and denied).
const (
	// ToolSuccess: the tool ran and returned a result.
	ToolSuccess = "success"
	// ToolError: the tool ran and failed (a tool error result or a
	// protocol error).
	ToolError = "error"
	// ToolDenied: the server refused the call (missing scope, consent
	// or connection) before the tool ran.
	ToolDenied = "denied"
)

// ToolOutcomes lists the outcomes a report may name.
func ToolOutcomes() []string { return []string{ToolSuccess, ToolError, ToolDenied} }

func init() {
	required[ToolInvoked] = struct {
		fields  []field
		details []string
	}{[]field{fClient, fResource}, []string{"tool", "tool_outcome", "duration_ms", "jti", "reporting_client"}}
}

// ToolInvokedFields is what a tool.invoked event carries. Everything but
// Tool, Outcome, Duration and Time comes from the hub's record of the
// token.
type ToolInvokedFields struct {
	// ClientID is the client the token was issued to: the agent, or for
	// an exchanged token the current actor.
	ClientID string
	UserID   string // empty for a client's own (client credentials) token
	// Resource is the reporting MCP server's resource: the token's aud.
	Resource string
	Scopes   []string // the token's scopes
	JTI      string
	// Agent is the first actor of the delegation chain (the agent the
	// person authorized); empty when the token has no chain, whose agent
	// is ClientID.
	Agent string
	// Chain is the token's delegation chain, the current actor first;
	// empty without delegation.
	Chain []string
	// ReportingClient is the MCP server's own client, which reported.
	ReportingClient string
	Tool            string
	Outcome         string // ToolSuccess, ToolError or ToolDenied
	Duration        time.Duration
	// ReportID is the reporting server's own id of the report (details
	// "report_id"): the store keeps one tool.invoked event per reporting
	// client and report id, so a batch sent again is not recorded twice.
	ReportID string
}

// NewToolInvoked records a tool call an MCP server reported. The event's
// time (m.Time) is when the call was made, as reported; the event's
// outcome is success for a successful call, failure for a tool error and
// denied for a refused call.
func NewToolInvoked(m Meta, f ToolInvokedFields) *store.AuditEvent {
	ev := event(m, ToolInvoked)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = f.ClientID, f.UserID, f.Resource, slices.Clone(f.Scopes)
	switch f.Outcome {
	case ToolError:
		ev.Outcome = Failure
	case ToolDenied:
		ev.Outcome = Denied
	}
	set(ev.Details, "tool", truncate(f.Tool, maxNameInEvent))
	set(ev.Details, "tool_outcome", f.Outcome)
	ev.Details["duration_ms"] = strconv.FormatInt(f.Duration.Milliseconds(), 10)
	set(ev.Details, "jti", f.JTI)
	set(ev.Details, "agent", f.Agent)
	setList(ev.Details, DetailActChain, f.Chain)
	set(ev.Details, "reporting_client", f.ReportingClient)
	set(ev.Details, store.DetailReportID, f.ReportID)
	return done(ev)
}
