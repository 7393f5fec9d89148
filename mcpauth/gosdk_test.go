package mcpauth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/mcpauth"
	"github.com/agentid/agentid/mcpauth/mcpauthtest"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/auth/extauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

type noteOut struct {
	Text string `json:"text"`
}

// newNotesServer is an MCP server whose tools check scopes themselves too.
func newNotesServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil)
	read := func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, noteOut, error) {
		c, ok := mcpauth.ClaimsFromTokenInfo(req.Extra.TokenInfo)
		if !ok {
			return nil, noteOut{}, errors.New("no claims")
		}
		return nil, noteOut{Text: "notes of " + c.Subject}, nil
	}
	write := func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, noteOut, error) {
		return nil, noteOut{Text: "written"}, nil
	}
	mcp.AddTool(s, &mcp.Tool{Name: "read_notes", Description: "Read notes"}, mcpauth.RequireScopes(read, noteTools["read_notes"]...))
	mcp.AddTool(s, &mcp.Tool{Name: "write_notes", Description: "Write notes"}, mcpauth.RequireScopes(write, noteTools["write_notes"]...))
	return s
}

type mcpEnv struct {
	hub      *mcpauthtest.Server
	resource string
}

// startMCP runs the notes server behind the middleware on a real listener,
// so the resource is the URL clients use.
func startMCP(t *testing.T, tools mcpauth.ToolScopes) *mcpEnv {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	res := "http://" + srv.Listener.Addr().String() + "/mcp"
	hub := mcpauthtest.NewServer(t, mcpauthtest.WithDefaultAudience(res))
	v, err := mcpauth.NewVerifier(context.Background(), mcpauth.Config{Issuer: hub.Issuer(), Resource: res})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	if _, err := mcpauth.HandleMetadata(mux, &mcpauth.ProtectedResourceMetadata{
		Resource: res, AuthorizationServers: []string{hub.Issuer()}, ScopesSupported: []string{"notes:read"},
	}); err != nil {
		t.Fatal(err)
	}
	h := bothRevisions(newNotesServer())
	mux.Handle("/mcp", mcpauth.Middleware(v, mcpauth.MiddlewareOptions{Scopes: []string{"notes:read"}, ToolScopes: tools})(h))
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return &mcpEnv{hub: hub, resource: res}
}

type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func connect(t *testing.T, endpoint string, hc *http.Client, h auth.OAuthHandler) *mcp.ClientSession {
	t.Helper()
	return connectAt(t, "", endpoint, hc, h)
}

// connectAt connects the SDK client pinned to an MCP revision; "" lets it
// negotiate (the newest the server supports).
func connectAt(t *testing.T, revision, endpoint string, hc *http.Client, h auth.OAuthHandler) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1.0.0"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, OAuthHandler: h},
		&mcp.ClientSessionOptions{ProtocolVersion: revision})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func resultText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// TestRequireScopesInsideMCP runs without HTTP-level tool scopes, so the
// wrapper inside the MCP server is what refuses the call.
func TestRequireScopesInsideMCP(t *testing.T) {
	env := startMCP(t, nil)
	cs := connect(t, env.resource, &http.Client{Transport: bearerTransport{env.hub.Token(env.resource, "notes:read")}}, nil)
	ctx := context.Background()

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_notes", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("read_notes: %v, %+v", err, res)
	}
	if got := resultText(res); !strings.Contains(got, "notes of user-1") {
		t.Errorf("read_notes = %q; claims did not reach the tool", got)
	}

	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "write_notes", Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("write_notes: %v", err)
	}
	if !res.IsError || !strings.Contains(resultText(res), "insufficient scope") || !strings.Contains(resultText(res), "notes:write") {
		t.Fatalf("write_notes with notes:read only: IsError=%v text=%q", res.IsError, resultText(res))
	}
}

func TestRequireScopesWithoutToken(t *testing.T) {
	ct, st := mcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := newNotesServer().Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_notes", Arguments: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || !strings.Contains(resultText(res), "unauthenticated") {
		t.Fatalf("no token: IsError=%v text=%q", res.IsError, resultText(res))
	}
}

// TestClientCredentialsStepUp drives the official SDK client's OAuth
// handler through discovery and a scope step-up triggered by our 403.
func TestClientCredentialsStepUp(t *testing.T) {
	env := startMCP(t, noteTools)
	var tokenRequests atomic.Int32
	var scopesAsked []string
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/token") {
			tokenRequests.Add(1)
			body, _ := r.GetBody()
			buf := new(strings.Builder)
			b := make([]byte, 1024)
			n, _ := body.Read(b)
			buf.Write(b[:n])
			scopesAsked = append(scopesAsked, buf.String())
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	id, secret := env.hub.IntrospectionCredentials()
	h, err := extauth.NewClientCredentialsHandler(&extauth.ClientCredentialsHandlerConfig{
		Credentials: &oauthex.ClientCredentials{ClientID: id, ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: secret}},
		HTTPClient:  hc,
	})
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, env.resource, hc, h)
	ctx := context.Background()
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_notes", Arguments: map[string]any{}}); err != nil || res.IsError {
		t.Fatalf("read_notes: %v %+v", err, res)
	}
	if n := tokenRequests.Load(); n != 1 {
		t.Fatalf("token requests after the first call = %d, want 1", n)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "write_notes", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("write_notes after step-up: %v %+v", err, res)
	}
	if n := tokenRequests.Load(); n != 2 {
		t.Fatalf("token requests = %d, want 2 (one step-up)", n)
	}
	form, err := url.ParseQuery(scopesAsked[len(scopesAsked)-1])
	if err != nil {
		t.Fatal(err)
	}
	asked := strings.Fields(form.Get("scope"))
	slices.Sort(asked)
	if !slices.Equal(asked, []string{"notes:read", "notes:write"}) {
		t.Errorf("step-up asked for %q, want the union notes:read notes:write", asked)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestTokenVerifier(t *testing.T) {
	f := newFixture(t, nil)
	var got *auth.TokenInfo
	h := auth.RequireBearerToken(f.v.TokenVerifier(), nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = auth.TokenInfoFromContext(r.Context())
	}))
	tests := []struct {
		name  string
		token string
		code  int
	}{
		{"valid", f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, Scopes: []string{"a", "b"}, JTI: "j1"}), 200},
		{"wrong audience", f.hub.Token("https://other.example.com"), 401},
		{"garbage", "garbage", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, request("GET", tt.token, ""))
			if rec.Code != tt.code {
				t.Fatalf("status = %d, want %d", rec.Code, tt.code)
			}
			if tt.code != 200 {
				_, err := f.v.TokenVerifier()(context.Background(), tt.token, nil)
				if !errors.Is(err, auth.ErrInvalidToken) {
					t.Errorf("err = %v, want auth.ErrInvalidToken", err)
				}
				return
			}
			if got == nil || got.UserID != "user-1" || !slices.Equal(got.Scopes, []string{"a", "b"}) || got.Expiration.IsZero() {
				t.Fatalf("TokenInfo = %+v", got)
			}
			if got.Extra["jti"] != "j1" || got.Extra["client_id"] == "" {
				t.Errorf("Extra = %v", got.Extra)
			}
			if c, ok := mcpauth.ClaimsFromTokenInfo(got); !ok || c.JTI != "j1" {
				t.Errorf("ClaimsFromTokenInfo = %+v, %v", c, ok)
			}
		})
	}
	if _, ok := mcpauth.ClaimsFromTokenInfo(nil); ok {
		t.Error("ClaimsFromTokenInfo(nil) reported claims")
	}
}

// TestMiddlewareSetsTokenInfo checks the bridge to the SDK's context key.
func TestMiddlewareSetsTokenInfo(t *testing.T) {
	f := newFixture(t, nil)
	var ti *auth.TokenInfo
	h := mcpauth.Middleware(f.v, mcpauth.MiddlewareOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ti = auth.TokenInfoFromContext(r.Context())
	}))
	// The fixture clock runs behind: the SDK's own expiry check must not
	// second-guess the verifier's clock.
	f.clock.Advance(-10 * time.Minute)
	tok := f.hub.Token(resource, "notes:read")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request("POST", tok, ""))
	if rec.Code != 200 || ti == nil || ti.UserID != "user-1" || !slices.Equal(ti.Scopes, []string{"notes:read"}) {
		t.Fatalf("status %d, TokenInfo %+v", rec.Code, ti)
	}
}
