package demo

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// vaultDemo is the demo MCP server reading the demo calendar through a
// real hub's vault, as `agentid demo` wires them.
type vaultDemo struct {
	hub      *servertest.Hub
	resource string
	calendar *Calendar
}

func startVaultDemo(t *testing.T) *vaultDemo {
	t.Helper()
	ctx := context.Background()
	h := servertest.New(t)
	const calSecret = "calendar-client-secret"
	cal := NewCalendar(CalendarOptions{ClientID: "agentid-hub", ClientSecret: calSecret, RedirectURI: h.URL + "/connections/callback"})
	calSrv := httptest.NewServer(cal.Handler())
	t.Cleanup(calSrv.Close)
	sealed, err := h.Vault.SealProviderSecret(store.DefaultTenant, "calendar", calSecret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := h.Store.CreateProvider(ctx, &store.Provider{TenantID: store.DefaultTenant, ID: "calendar", Name: "Demo Calendar", Kind: store.ProviderOAuth2,
		AuthorizationEndpoint: calSrv.URL + "/authorize", TokenEndpoint: calSrv.URL + "/token", RevocationEndpoint: calSrv.URL + "/revoke",
		ClientID: "agentid-hub", ClientSecret: sealed, TokenAuthMethod: "client_secret_basic", Scopes: []string{calendarScope}, CreatedAt: now, UpdatedAt: now,
	}, nil); err != nil {
		t.Fatal(err)
	}
	// The demo server's own client: the resource server of its resource.
	secret := h.AddClient(&store.Client{ID: "demo-mcp", Name: "demo MCP server", GrantTypes: []string{oauth.GrantTokenExchange}})
	srv := httptest.NewUnstartedServer(nil)
	resource := "http://" + srv.Listener.Addr().String() + "/mcp"
	if err := h.Store.CreateResource(ctx, &store.Resource{TenantID: store.DefaultTenant, ID: "demo", URI: resource, Name: "Demo notes", Scopes: Scopes(),
		ClientID: "demo-mcp", CreatedAt: now,
		Providers: []store.ResourceProvider{{ProviderID: "calendar", Scopes: map[string][]string{ScopeCalendarRead: {calendarScope}}}},
	}, nil); err != nil {
		t.Fatal(err)
	}
	handler, err := Handler(ctx, Options{Issuer: h.URL, Resource: resource,
		Calendar: &CalendarAccess{ClientID: "demo-mcp", ClientSecret: secret, EventsURL: calSrv.URL + "/api/events", Provider: "calendar"}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = handler
	srv.Start()
	t.Cleanup(srv.Close)
	return &vaultDemo{hub: h, resource: resource, calendar: cal}
}

// calendarTokenRE looks like one of the demo calendar's tokens.
var calendarTokenRE = regexp.MustCompile(`[A-Z2-7]{52}`)

// TestScriptedAgentConnectsCalendar: the scripted agent's first
// read_calendar makes the demo server ask the person to connect (URL
// elicitation at 2026-07-28); the run follows the link as the demo user
// (login at the hub, the hub's connect page, approval at the calendar, the
// hub's callback storing the tokens in the vault); the client's retry reads
// the calendar through the vault. The agent sees events, never a token.
func TestScriptedAgentConnectsCalendar(t *testing.T) {
	d := startVaultDemo(t)
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := RunAgent(ctx, AgentOptions{MCPURL: d.resource, Out: &out, Username: servertest.TestUser, Password: servertest.TestPassword}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"the MCP server asks the person: Connect your Demo Calendar",
		"connect link (made for the demo user only): " + d.hub.URL + "/connections/connect/calendar?intent=",
		"scripted run: no person here, so the demo follows the link itself",
		"the hub says: calendar connected",
		"read_calendar → today in your Demo Calendar (read through the agentid vault): | 09:30 stand-up | 12:00 lunch with Sam | 15:00 design review",
		"done after 4 authorization round trips",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	st := d.calendar.Stats()
	if st.Approvals != 1 || st.CodeGrants != 1 || st.APICalls != 1 || st.Refused != 0 {
		t.Errorf("calendar stats = %+v, want one approval, one code grant, one API call", st)
	}
	if m := calendarTokenRE.FindString(out.String()); m != "" {
		t.Errorf("a calendar token reached the agent's output: %s", m)
	}
	conns, err := d.hub.Store.ListConnections(ctx, store.ConnectionFilter{TenantID: store.DefaultTenant, ProviderID: "calendar"})
	if err != nil || len(conns) != 1 || conns[0].Status != store.ConnectionActive {
		t.Fatalf("connections = %v, %v; want one active", conns, err)
	}
}

// TestConnectCalendarBothRevisions: the official client at each revision
// (signed in through the hub's consent with calendar.read), the person
// connecting through the hub's pages, the retried call succeeding —
// 2026-07-28 by input-required and requestState, 2025-11-25 by the
// URLElicitationRequired error and notifications/elicitation/complete.
func TestConnectCalendarBothRevisions(t *testing.T) {
	for _, rev := range []string{"2026-07-28", "2025-11-25"} {
		t.Run(rev, func(t *testing.T) {
			d := startVaultDemo(t)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			b := d.hub.Browser()
			handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
				DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
					ClientName: "calendar agent", RedirectURIs: []string{"http://127.0.0.1:3000/callback"}, TokenEndpointAuthMethod: "none",
					GrantTypes: []string{"authorization_code", "refresh_token"},
				}},
				RedirectURL: "http://127.0.0.1:3000/callback",
				AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
					p := b.Get(args.URL)
					if strings.Contains(p.Body, `action="/login"`) {
						p = b.Login(p, servertest.TestUser, servertest.TestPassword)
					}
					q := b.Consent(p, servertest.Offered(p.Body)).Location.Query()
					return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			person := func(u string) {
				if err := connectHeadless(ctx, u, servertest.TestUser, servertest.TestPassword); err != nil {
					t.Errorf("the person connecting: %v", err)
				}
			}
			asked, completed := 0, make(chan string, 1)
			client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, &mcp.ClientOptions{
				Capabilities: &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}},
				ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
					asked++
					person(req.Params.URL)
					return &mcp.ElicitResult{Action: "accept"}, nil
				},
				ElicitationCompleteHandler: func(_ context.Context, req *mcp.ElicitationCompleteNotificationRequest) {
					completed <- req.Params.ElicitationID
				},
			})
			sess, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: d.resource, OAuthHandler: handler}, &mcp.ClientSessionOptions{ProtocolVersion: rev})
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			params := &mcp.CallToolParams{Name: "read_calendar", Arguments: map[string]any{}}
			res, err := sess.CallTool(ctx, params)
			if rev == "2025-11-25" {
				var rpcErr *jsonrpc.Error
				if !errors.As(err, &rpcErr) || rpcErr.Code != mcp.CodeURLElicitationRequired {
					t.Fatalf("first call: %v %+v, want -32042", err, res)
				}
				var data struct {
					Elicitations []*mcp.ElicitParams `json:"elicitations"`
				}
				if err := json.Unmarshal(rpcErr.Data, &data); err != nil || len(data.Elicitations) != 1 || data.Elicitations[0].ElicitationID == "" {
					t.Fatalf("elicitations %s: %v", rpcErr.Data, err)
				}
				person(data.Elicitations[0].URL)
				select {
				case id := <-completed:
					if id != data.Elicitations[0].ElicitationID {
						t.Fatalf("completed %q, want %q", id, data.Elicitations[0].ElicitationID)
					}
				case <-time.After(30 * time.Second):
					t.Fatal("no notifications/elicitation/complete")
				}
				res, err = sess.CallTool(ctx, params)
			} else if asked != 1 {
				t.Fatalf("asked %d times, want 1", asked)
			}
			if err != nil || res.IsError || !strings.Contains(resultText(res), "09:30 stand-up") {
				t.Fatalf("read_calendar: %v %+v", err, res)
			}
			if m := calendarTokenRE.FindString(resultText(res)); m != "" {
				t.Fatalf("calendar token in the result: %s", m)
			}
		})
	}
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

// TestCalendarOAuth: the demo calendar is a strict enough authorization
// server: PKCE, single-use codes, refresh rotation, revocation, and an API
// that takes only live tokens.
func TestCalendarOAuth(t *testing.T) {
	const redirect = "https://hub.example/connections/callback"
	cal := NewCalendar(CalendarOptions{ClientID: "hub", ClientSecret: "s3cret", RedirectURI: redirect})
	srv := httptest.NewServer(cal.Handler())
	defer srv.Close()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := "a-verifier-that-is-long-enough-for-rfc-7636-0123456789"
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	authorize := func(q url.Values) *http.Response {
		resp, err := noFollow.Get(srv.URL + "/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	good := url.Values{"response_type": {"code"}, "client_id": {"hub"}, "redirect_uri": {redirect}, "state": {"st"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "scope": {"calendar.read"}}
	for name, mutate := range map[string]func(url.Values){
		"unknown client": func(q url.Values) { q.Set("client_id", "x") },
		"other redirect": func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") },
	} {
		q := url.Values{}
		for k, v := range good {
			q[k] = v
		}
		mutate(q)
		if resp := authorize(q); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want a 400 page, no redirect", name, resp.StatusCode)
		}
	}
	plain := url.Values{}
	for k, v := range good {
		plain[k] = v
	}
	plain.Set("code_challenge_method", "plain")
	if resp := authorize(plain); !strings.Contains(resp.Header.Get("Location"), "error=invalid_request") {
		t.Errorf("plain PKCE: %s", resp.Header.Get("Location"))
	}
	if resp := authorize(good); resp.StatusCode != 200 {
		t.Fatalf("authorize page: %d", resp.StatusCode)
	}
	decide := func() string {
		resp, err := noFollow.PostForm(srv.URL+"/authorize", url.Values{"decision": {"allow"}, "state": {"st"}, "code_challenge": {challenge}, "scope": {"calendar.read"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc.Query().Get("state") != "st" {
			t.Fatalf("redirect %s", loc)
		}
		return loc.Query().Get("code")
	}
	tokenReq := func(form url.Values) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("hub", "s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	code := decide()
	if st, out := tokenReq(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {"wrong" + verifier}}); st != 400 || out["error"] != "invalid_grant" {
		t.Errorf("wrong verifier: %d %v", st, out)
	}
	if st, _ := tokenReq(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}}); st != 400 {
		t.Errorf("a code tried once was accepted again: %d", st)
	}
	code = decide()
	st, out := tokenReq(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}})
	at, _ := out["access_token"].(string)
	rt, _ := out["refresh_token"].(string)
	if st != 200 || at == "" || rt == "" || out["scope"] != "calendar.read" {
		t.Fatalf("code grant: %d %v", st, out)
	}
	api := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/events", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if api(at) != 200 || api("nope") != 401 {
		t.Fatal("API does not tell live tokens from others")
	}
	st, out = tokenReq(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	rt2, _ := out["refresh_token"].(string)
	if st != 200 || rt2 == "" || rt2 == rt {
		t.Fatalf("refresh: %d %v", st, out)
	}
	if st, _ := tokenReq(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); st != 400 {
		t.Errorf("a rotated refresh token still works: %d", st)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/revoke", strings.NewReader(url.Values{"token": {rt2}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("hub", "s3cret")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v", err)
	}
	if st, _ := tokenReq(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}}); st != 400 || api(at) != 401 {
		t.Errorf("revocation left the grant alive")
	}
	if s := cal.Stats(); s.CodeGrants != 1 || s.Refreshes != 1 || s.Revocations != 1 {
		t.Errorf("stats = %+v", s)
	}
}
