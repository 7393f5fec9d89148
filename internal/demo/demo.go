// Package demo is the MCP server that `agentid demo` runs beside the hub: a
// small notes-and-calendar server protected by mcpauth, whose tools need
// scopes of different sensitivity, so that a person can watch consent,
// per-tool scopes and step-up work end to end.
package demo

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/mcpauth"
)

// Scope names of the demo server.
const (
	ScopeNotesRead    = "notes.read"
	ScopeNotesWrite   = "notes.write"
	ScopeNotesDelete  = "notes.delete"
	ScopeCalendarRead = "calendar.read"
)

// Scopes are the demo server's scopes as registered with the hub.
func Scopes() []store.Scope {
	return []store.Scope{
		{Name: ScopeNotesRead, Description: "Read your notes"},
		{Name: ScopeNotesWrite, Description: "Create and change your notes"},
		{Name: ScopeCalendarRead, Description: "See your calendar"},
		{Name: ScopeNotesDelete, Description: "Delete your notes", Sensitive: true},
	}
}

// toolScopes says which scopes each tool needs.
var toolScopes = mcpauth.ToolScopes{
	"read_notes":    {ScopeNotesRead},
	"write_note":    {ScopeNotesWrite},
	"read_calendar": {ScopeCalendarRead},
	"delete_note":   {ScopeNotesDelete},
}

// toolHints says what each tool does to the user's data (MCP tool
// annotations), for clients to see before they call it. The hints and the
// scopes go together: the one destructive tool is also the one that needs a
// sensitive scope of its own (a test keeps them so). Every hint is spelled
// out, because an absent one means the pessimistic default (destructive,
// open-world). All four tools work on the demo's own data (read_calendar on
// the demo calendar in the same process), so none is open-world.
var toolHints = map[string]mcp.ToolAnnotations{
	"read_notes":    {ReadOnlyHint: true, IdempotentHint: true, DestructiveHint: new(false), OpenWorldHint: new(false)},
	"read_calendar": {ReadOnlyHint: true, IdempotentHint: true, DestructiveHint: new(false), OpenWorldHint: new(false)},
	// Each call adds another note: neither read-only nor idempotent, but it
	// destroys nothing.
	"write_note": {DestructiveHint: new(false), OpenWorldHint: new(false)},
	// Deleting destroys data; deleting the same note again changes nothing
	// more, so it is idempotent.
	"delete_note": {DestructiveHint: new(true), IdempotentHint: true, OpenWorldHint: new(false)},
}

// noIn is the input of a tool without arguments.
type noIn struct{}

// hints returns a copy of a tool's annotations, for one server.
func hints(tool string) *mcp.ToolAnnotations {
	h := toolHints[tool]
	return &h
}

// protocolVersion2026 is the first MCP revision without sessions
// (2026-07-28): the SDK serves it only from a stateless handler.
const protocolVersion2026 = "2026-07-28"

// Options configures the demo MCP server.
type Options struct {
	// Issuer is the hub's issuer URL.
	Issuer string
	// Resource is this server's canonical URL, ending in /mcp.
	Resource string
	// HTTPClient reaches the hub; nil means mcpauth's default.
	HTTPClient *http.Client
	// Introspection, when set, makes the server ask the hub about every
	// token (RFC 7662), so that revoking access on the account page stops
	// the agent at its very next call.
	Introspection *mcpauth.IntrospectionConfig
	// Calendar, when set, makes read_calendar read the person's calendar
	// at the demo calendar through the hub's vault; without it the tool
	// shows a sample day.
	Calendar *CalendarAccess
	// Reporter, when set, reports every tool call to the hub's audit trail
	// (tool.invoked); the caller closes it after the server stops.
	Reporter *mcpauth.Reporter
}

// CalendarAccess is how the demo server reaches the person's calendar:
// as its own client at the hub (the one linked to its resource), which
// retrieves the calendar credential from the vault (RFC 8693 exchange),
// and the calendar's events API.
type CalendarAccess struct {
	ClientID, ClientSecret string
	EventsURL              string
	// Provider is the hub's provider id of the calendar ("calendar").
	Provider string
}

// Handler returns the demo server's HTTP handler: the protected MCP endpoint
// at /mcp and its Protected Resource Metadata at the well-known URLs.
func Handler(ctx context.Context, opts Options) (http.Handler, error) {
	v, err := mcpauth.NewVerifier(ctx, mcpauth.Config{Issuer: opts.Issuer, Resource: opts.Resource, HTTPClient: opts.HTTPClient, Introspection: opts.Introspection})
	if err != nil {
		return nil, err
	}
	n := &notes{byUser: make(map[string][]note)}
	readCalendar := func(ctx context.Context, req *mcp.CallToolRequest, _ noIn) (*mcp.CallToolResult, any, error) {
		return text("sample day (no calendar connected to this demo):\n09:30 stand-up\n12:00 lunch with Sam\n15:00 design review"), nil, nil
	}
	if opts.Calendar != nil {
		if readCalendar, err = calendarTool(ctx, opts); err != nil {
			return nil, err
		}
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "agentid-demo", Title: "agentid demo notes", Version: "1.0.0"}, nil)
	if opts.Reporter != nil {
		server.AddReceivingMiddleware(opts.Reporter.Middleware())
	}
	type writeIn struct {
		Text string `json:"text" jsonschema:"the note's text"`
	}
	type deleteIn struct {
		ID int `json:"id" jsonschema:"the number of the note to delete"`
	}
	mcp.AddTool(server, &mcp.Tool{Name: "read_notes", Title: "Read notes", Description: "List the signed-in user's notes (needs notes.read).",
		Annotations: hints("read_notes")},
		mcpauth.RequireScopes(func(ctx context.Context, req *mcp.CallToolRequest, _ noIn) (*mcp.CallToolResult, any, error) {
			return text(n.list(subject(req))), nil, nil
		}, toolScopes["read_notes"]...))
	mcp.AddTool(server, &mcp.Tool{Name: "write_note", Title: "Write a note", Description: "Add a note (needs notes.write).",
		Annotations: hints("write_note")},
		mcpauth.RequireScopes(func(ctx context.Context, req *mcp.CallToolRequest, in writeIn) (*mcp.CallToolResult, any, error) {
			id := n.add(subject(req), in.Text)
			return text(fmt.Sprintf("saved note %d", id)), nil, nil
		}, toolScopes["write_note"]...))
	mcp.AddTool(server, &mcp.Tool{Name: "read_calendar", Title: "Read today's calendar", Description: "Show today's calendar (needs calendar.read).",
		Annotations: hints("read_calendar")},
		mcpauth.RequireScopes(readCalendar, toolScopes["read_calendar"]...))
	mcp.AddTool(server, &mcp.Tool{Name: "delete_note", Title: "Delete a note", Description: "Delete a note (needs the sensitive notes.delete).",
		Annotations: hints("delete_note")},
		mcpauth.RequireScopes(func(ctx context.Context, req *mcp.CallToolRequest, in deleteIn) (*mcp.CallToolResult, any, error) {
			if !n.remove(subject(req), in.ID) {
				return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("no note %d", in.ID)}}}, nil, nil
			}
			return text(fmt.Sprintf("deleted note %d", in.ID)), nil, nil
		}, toolScopes["delete_note"]...))

	mux := http.NewServeMux()
	prmURL, err := mcpauth.HandleMetadata(mux, &mcpauth.ProtectedResourceMetadata{
		Resource:             opts.Resource,
		AuthorizationServers: []string{opts.Issuer},
		// The minimal set: clients start with reading and step up.
		ScopesSupported: []string{ScopeNotesRead},
		ResourceName:    "agentid demo notes",
	})
	if err != nil {
		return nil, err
	}
	protect := mcpauth.Middleware(v, mcpauth.MiddlewareOptions{ResourceMetadataURL: prmURL, Scopes: []string{ScopeNotesRead}, ToolScopes: toolScopes})
	mux.Handle("/mcp", protect(bothRevisions(server)))
	return cors(mux), nil
}

// bothRevisions serves MCP 2026-07-28 and the session-based revisions up to
// 2025-11-25 from one server. The SDK answers 2026-07-28 only from a
// stateless handler, while a stateless handler would strip older clients of
// their session (the standalone GET stream, DELETE, server-to-client
// requests); so each request goes to the handler of the revision it names
// in MCP-Protocol-Version. A 2026-07-28 client sends that header on every
// request, its first server/discover included; an older client's first
// request (initialize) has none and starts a session. Both handlers share
// the one server, so tools and notes are the same whatever the revision.
// Authentication is the same for both: the middleware in front checks the
// token of every request; a session id is never taken as proof of anything.
func bothRevisions(server *mcp.Server) http.Handler {
	get := func(*http.Request) *mcp.Server { return server }
	stateful := mcp.NewStreamableHTTPHandler(get, nil)
	stateless := mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{Stateless: true})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Revisions are dates, so they order as strings.
		if r.Header.Get("MCP-Protocol-Version") >= protocolVersion2026 {
			stateless.ServeHTTP(w, r)
			return
		}
		stateful.ServeHTTP(w, r)
	})
}

// cors lets browser-based MCP clients (MCP Inspector connecting directly)
// call the demo server and read its challenges; preflights are answered
// here, before token checks, as they carry no credentials.
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version")
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

func subject(req *mcp.CallToolRequest) string {
	if c, ok := mcpauth.ClaimsFromTokenInfo(req.Extra.TokenInfo); ok {
		return c.Subject
	}
	return ""
}

// notes is the demo's in-memory note book, per user.
type notes struct {
	mu     sync.Mutex
	next   int
	byUser map[string][]note
}

type note struct {
	id   int
	text string
	at   time.Time
}

func (n *notes) add(user, text string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.next++
	n.byUser[user] = append(n.byUser[user], note{id: n.next, text: text, at: time.Now()})
	return n.next
}

func (n *notes) list(user string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.byUser[user]) == 0 {
		return "no notes yet"
	}
	var b strings.Builder
	for _, nt := range n.byUser[user] {
		fmt.Fprintf(&b, "%d. %s (%s)\n", nt.id, nt.text, nt.at.Format(time.Kitchen))
	}
	return b.String()
}

func (n *notes) remove(user string, id int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	i := slices.IndexFunc(n.byUser[user], func(nt note) bool { return nt.id == id })
	if i < 0 {
		return false
	}
	n.byUser[user] = slices.Delete(n.byUser[user], i, i+1)
	return true
}
