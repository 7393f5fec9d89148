package demo_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/agentid/agentid/internal/server/servertest"
)

// wireLog records, in order, the HTTP exchanges the SDK client makes.
type wireLog struct {
	mu    sync.Mutex
	steps []string
	// forbidden holds the WWW-Authenticate of every 403 the client saw.
	forbidden []string
}

func (l *wireLog) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	step := r.Method + " " + r.URL.Path
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		step += " " + resp.Status[:3]
	}
	l.mu.Lock()
	l.steps = append(l.steps, step)
	if resp.StatusCode == http.StatusForbidden {
		l.forbidden = append(l.forbidden, resp.Header.Get("WWW-Authenticate"))
	}
	l.mu.Unlock()
	return resp, nil
}

func (l *wireLog) index(prefix string, from int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := from; i < len(l.steps); i++ {
		if strings.HasPrefix(l.steps[i], prefix) {
			return i
		}
	}
	return -1
}

// TestStepUpWire pins down, on the wire, what the demo end-to-end test
// only infers from the number of consent screens: the discovery order
// (401 → PRM → AS metadata → registration → token), the 403 carrying
// error="insufficient_scope" with the needed scope, and the re-authorization
// asking for the union of scopes.
func TestStepUpWire(t *testing.T) {
	h := servertest.New(t)
	resource := startDemo(t, h)
	b := h.Browser()
	log := &wireLog{}
	hc := &http.Client{Transport: log}
	var asked [][]string
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			ClientName: "wire agent", RedirectURIs: []string{"http://127.0.0.1:3000/callback"}, TokenEndpointAuthMethod: "none",
			GrantTypes: []string{"authorization_code", "refresh_token"},
		}},
		RedirectURL: "http://127.0.0.1:3000/callback",
		Client:      hc,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			u, err := url.Parse(args.URL)
			if err != nil {
				return nil, err
			}
			s := strings.Fields(u.Query().Get("scope"))
			slices.Sort(s)
			asked = append(asked, s)
			if u.Query().Get("resource") != resource {
				t.Errorf("authorization request resource = %q, want %q", u.Query().Get("resource"), resource)
			}
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	sess, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: resource, HTTPClient: hc, OAuthHandler: handler}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if _, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "read_notes", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "write_note", Arguments: map[string]any{"text": "x"}})
	if err != nil || res.IsError {
		t.Fatalf("write_note after step-up: %v %+v", err, res)
	}

	// Discovery, in order.
	pos := 0
	for _, want := range []string{
		"POST /mcp 401",
		"GET /.well-known/oauth-protected-resource/mcp",
		"GET /.well-known/oauth-authorization-server",
		"POST /register",
		"POST /token",
		"POST /mcp",
	} {
		i := log.index(want, pos)
		if i < 0 {
			t.Fatalf("no %q after step %d; wire: %q", want, pos, log.steps)
		}
		pos = i + 1
	}
	// Exactly one 403, with the step-up challenge.
	if len(log.forbidden) != 1 {
		t.Fatalf("403 responses = %d, want 1; wire: %q", len(log.forbidden), log.steps)
	}
	cs, err := oauthex.ParseWWWAuthenticate([]string{log.forbidden[0]})
	if err != nil || len(cs) != 1 {
		t.Fatalf("403 challenge %q: %v", log.forbidden[0], err)
	}
	p := cs[0].Params
	if p["error"] != "insufficient_scope" || !slices.Contains(strings.Fields(p["scope"]), "notes.write") || !strings.HasSuffix(p["resource_metadata"], "/.well-known/oauth-protected-resource/mcp") {
		t.Fatalf("403 challenge = %v", p)
	}
	// Two authorizations: the minimal scope, then the union.
	if len(asked) != 2 || !slices.Equal(asked[0], []string{"notes.read"}) || !slices.Equal(asked[1], []string{"notes.read", "notes.write"}) {
		t.Fatalf("authorization scopes = %q, want [notes.read] then [notes.read notes.write]", asked)
	}
}
