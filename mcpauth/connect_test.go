package mcpauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentid/agentid/mcpauth"
	"github.com/agentid/agentid/mcpauth/mcpauthtest"
)

// calendarEnv is an MCP server with a read_calendar tool that reads a
// downstream calendar API through the test hub's vault.
type calendarEnv struct {
	hub      *mcpauthtest.Server
	resource string
	token    string // the agent's token for user-1
	api      *httptest.Server
}

type dayIn struct {
	Day string `json:"day,omitempty"`
}

func startCalendarMCP(t *testing.T) *calendarEnv {
	t.Helper()
	env := &calendarEnv{}
	srv := httptest.NewUnstartedServer(nil)
	env.resource = "http://" + srv.Listener.Addr().String() + "/mcp"
	env.hub = mcpauthtest.NewServer(t)
	env.token = env.hub.Token(env.resource, "calendar:read")
	// The provider's API accepts the tokens the person got by connecting.
	env.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+env.hub.AccessTokenOf("user-1", "calendar") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "09:30 stand-up on %s", r.URL.Query().Get("day"))
	}))
	t.Cleanup(env.api.Close)

	ctx := context.Background()
	v, err := mcpauth.NewVerifier(ctx, mcpauth.Config{Issuer: env.hub.Issuer(), Resource: env.resource})
	if err != nil {
		t.Fatal(err)
	}
	id, secret := env.hub.IntrospectionCredentials()
	x, err := mcpauth.NewExchanger(ctx, mcpauth.ExchangerConfig{Issuer: env.hub.Issuer(), ClientID: id, ClientSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := mcpauth.NewConnector(mcpauth.ConnectOptions{StateSecret: []byte(secret + "-and-padding-to-32-bytes"), Exchanger: x, CompletionPoll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "calendar", Version: "1"}, nil)
	read := func(ctx context.Context, req *mcp.CallToolRequest, in dayIn) (*mcp.CallToolResult, any, error) {
		resp, err := x.HTTPClient(ctx, "calendar").Get(env.api.URL + "/events?day=" + in.Day)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return nil, nil, fmt.Errorf("calendar answered %d", resp.StatusCode)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}, nil, nil
	}
	mcp.AddTool(server, &mcp.Tool{Name: "read_calendar"}, mcpauth.ConnectTool(conn, read))
	mux := http.NewServeMux()
	mux.Handle("/mcp", mcpauth.Middleware(v, mcpauth.MiddlewareOptions{})(bothRevisions(server)))
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return env
}

// agent connects as the MCP client of revision rev with the agent's token.
func (env *calendarEnv) agent(t *testing.T, rev string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, opts)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: env.resource, HTTPClient: &http.Client{Transport: bearerTransport{env.token}}},
		&mcp.ClientSessionOptions{ProtocolVersion: rev})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

var urlElicitation = &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}}

// personConnects opens a connect URL as the person would.
func personConnects(t *testing.T, u string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("connect page: %d", resp.StatusCode)
	}
}

func (env *calendarEnv) checkResult(t *testing.T, res *mcp.CallToolResult, err error) {
	t.Helper()
	if err != nil || res.IsError {
		t.Fatalf("read_calendar: %v %+v", err, res)
	}
	text := resultText(res)
	if text != "09:30 stand-up on 2026-12-01" {
		t.Fatalf("read_calendar = %q", text)
	}
	if tok := env.hub.AccessTokenOf("user-1", "calendar"); tok == "" || strings.Contains(text, tok) {
		t.Fatal("the calendar token reached the agent, or there is none")
	}
}

// TestConnectOnDemand2026: MCP 2026-07-28 — the first call comes back
// input-required with a URL elicitation; the SDK client's handler shows the
// URL, the person connects, and the client's automatic retry (with the
// requestState) succeeds, in one CallTool.
func TestConnectOnDemand2026(t *testing.T) {
	env := startCalendarMCP(t)
	var asked []*mcp.ElicitParams
	cs := env.agent(t, "2026-07-28", &mcp.ClientOptions{Capabilities: urlElicitation,
		ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			asked = append(asked, req.Params)
			personConnects(t, req.Params.URL)
			return &mcp.ElicitResult{Action: "accept"}, nil
		}})
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "read_calendar", Arguments: map[string]any{"day": "2026-12-01"}})
	env.checkResult(t, res, err)
	if len(asked) != 1 || asked[0].Mode != "url" || asked[0].ElicitationID != "" || !strings.Contains(asked[0].URL, "/connections/connect/calendar?intent=") ||
		!strings.Contains(asked[0].Message, "calendar") {
		t.Fatalf("elicitations = %+v", asked)
	}
	// Connected now: the next call needs nobody.
	res, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "read_calendar", Arguments: map[string]any{"day": "2026-12-01"}})
	env.checkResult(t, res, err)
	if len(asked) != 1 {
		t.Fatalf("asked again after connecting")
	}
}

// TestConnectDeclined2026: the person declines; the call ends with a tool
// error, and the tool never ran a second time.
func TestConnectDeclined2026(t *testing.T) {
	env := startCalendarMCP(t)
	cs := env.agent(t, "2026-07-28", &mcp.ClientOptions{Capabilities: urlElicitation,
		ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "decline"}, nil
		}})
	n := 0
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "read_calendar", Arguments: map[string]any{"day": "2026-12-01"}})
	if err != nil || !res.IsError || !strings.Contains(resultText(res), "did not connect calendar") {
		t.Fatalf("declined: %v %+v", err, res)
	}
	if n = env.hub.Retrievals(); n != 1 {
		t.Fatalf("retrievals = %d, want 1: a declined retry must not retrieve", n)
	}
}

// TestRequestStateOnTheWire: with its automatic retry off, the SDK client
// sees the input-required result; a retry with the state altered, or with
// the state of a call with other arguments, is refused as invalid params;
// the honest retry succeeds.
func TestRequestStateOnTheWire(t *testing.T) {
	env := startCalendarMCP(t)
	cs := env.agent(t, "2026-07-28", &mcp.ClientOptions{Capabilities: urlElicitation, MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true},
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			t.Error("the client was asked directly")
			return nil, errors.New("unexpected")
		}})
	ctx := context.Background()
	params := &mcp.CallToolParams{Name: "read_calendar", Arguments: map[string]any{"day": "2026-12-01"}}
	res, err := cs.CallTool(ctx, params)
	if err != nil || !res.NeedsInput() || res.RequestState == "" || len(res.InputRequests) != 1 {
		t.Fatalf("first call: %v %+v", err, res)
	}
	ep, ok := res.InputRequests["connect_calendar"].(*mcp.ElicitParams)
	if !ok || ep.Mode != "url" {
		t.Fatalf("input requests = %+v", res.InputRequests)
	}
	personConnects(t, ep.URL)
	accept := mcp.InputResponseMap{"connect_calendar": &mcp.ElicitResult{Action: "accept"}}
	for _, tt := range []struct {
		name  string
		state string
		args  map[string]any
	}{
		{"altered state", res.RequestState[:len(res.RequestState)-2] + "AA", params.Arguments.(map[string]any)},
		{"state of another call", res.RequestState, map[string]any{"day": "2026-12-24"}},
	} {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_calendar", Arguments: tt.args, InputResponses: accept, RequestState: tt.state})
		var rpcErr *jsonrpc.Error
		if !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc.CodeInvalidParams {
			t.Errorf("%s: err = %v, want invalid params", tt.name, err)
		}
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_calendar", Arguments: map[string]any{"day": "2026-12-01"}, InputResponses: accept, RequestState: res.RequestState})
	env.checkResult(t, res, err)
}

// TestConnectOnDemand2025: MCP 2025-11-25 — the first call fails with
// URLElicitationRequired (-32042) carrying an elicitationId; the person
// connects; the server notices and sends notifications/elicitation/complete
// for that id; the retried call succeeds.
func TestConnectOnDemand2025(t *testing.T) {
	env := startCalendarMCP(t)
	completed := make(chan string, 1)
	cs := env.agent(t, "2025-11-25", &mcp.ClientOptions{Capabilities: urlElicitation,
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept"}, nil
		},
		ElicitationCompleteHandler: func(_ context.Context, req *mcp.ElicitationCompleteNotificationRequest) {
			completed <- req.Params.ElicitationID
		}})
	ctx := context.Background()
	params := &mcp.CallToolParams{Name: "read_calendar", Arguments: map[string]any{"day": "2026-12-01"}}
	_, err := cs.CallTool(ctx, params)
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != mcp.CodeURLElicitationRequired {
		t.Fatalf("first call: err = %v, want -32042", err)
	}
	var data struct {
		Elicitations []*mcp.ElicitParams `json:"elicitations"`
	}
	if err := json.Unmarshal(rpcErr.Data, &data); err != nil || len(data.Elicitations) != 1 {
		t.Fatalf("error data %s: %v", rpcErr.Data, err)
	}
	el := data.Elicitations[0]
	if el.Mode != "url" || len(el.ElicitationID) < 16 || !strings.Contains(el.URL, "/connections/connect/calendar?intent=") {
		t.Fatalf("elicitation = %+v", el)
	}
	select {
	case id := <-completed:
		t.Fatalf("completion %q before the person connected", id)
	case <-time.After(50 * time.Millisecond):
	}
	personConnects(t, el.URL)
	select {
	case id := <-completed:
		if id != el.ElicitationID {
			t.Fatalf("completed %q, want %q", id, el.ElicitationID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notifications/elicitation/complete")
	}
	res, err := cs.CallTool(ctx, params)
	env.checkResult(t, res, err)
}

// TestConnectWithoutElicitation: a client that cannot show URLs gets a
// tool error whose text holds the URL, at either revision; after the
// person connects, the call succeeds.
func TestConnectWithoutElicitation(t *testing.T) {
	for _, rev := range revisions {
		for _, opts := range []*mcp.ClientOptions{nil, {ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return nil, errors.New("form elicitation only")
		}}} {
			name := rev + "/no elicitation"
			if opts != nil {
				name = rev + "/form elicitation only"
			}
			t.Run(name, func(t *testing.T) {
				env := startCalendarMCP(t)
				cs := env.agent(t, rev, opts)
				params := &mcp.CallToolParams{Name: "read_calendar", Arguments: map[string]any{"day": "2026-12-01"}}
				res, err := cs.CallTool(context.Background(), params)
				if err != nil || !res.IsError {
					t.Fatalf("first call: %v %+v", err, res)
				}
				text := resultText(res)
				i := strings.Index(text, "http://")
				if i < 0 || !strings.Contains(text, "/connections/connect/calendar?intent=") {
					t.Fatalf("tool error %q has no connect URL", text)
				}
				personConnects(t, strings.TrimSpace(text[i:]))
				res, err = cs.CallTool(context.Background(), params)
				env.checkResult(t, res, err)
			})
		}
	}
}

// TestConnectToolPassesOtherErrors: errors other than a missing
// connection are the handler's own.
func TestConnectToolPassesOtherErrors(t *testing.T) {
	conn, err := mcpauth.NewConnector(mcpauth.ConnectOptions{StateSecret: []byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	h := mcpauth.ConnectTool(conn, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := mcpauth.ClaimsFromContext(ctx); !ok {
			t.Error("no claims in the handler's context")
		}
		return nil, nil, mcpauth.ErrUnavailable
	})
	f := newFixture(t, nil)
	ti, err := f.v.TokenVerifier()(context.Background(), f.hub.Token(resource, "a"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req := &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Name: "t"}, Extra: &mcp.RequestExtra{TokenInfo: ti}}
	if _, _, err := h(context.Background(), req, struct{}{}); !errors.Is(err, mcpauth.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := h(context.Background(), &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Name: "t"}}, struct{}{}); err == nil {
		t.Fatal("a call without a token ran")
	}
}
