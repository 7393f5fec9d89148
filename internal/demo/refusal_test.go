package demo_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/agentid/agentid/internal/demo"
	"github.com/agentid/agentid/internal/server/servertest"
)

// TestRefusedStepUpWithOfficialClient: the official go-sdk client, as the
// demo agent uses it (registered once), calls delete_note, whose
// notes.delete the default policy refuses to a self-registered agent. The
// hub shows the person why and answers the re-authorization with
// invalid_scope naming the scope, so the SDK's call fails at once with that
// reason: one authorization and one 403 for the attempt, no loop, no code.
func TestRefusedStepUpWithOfficialClient(t *testing.T) {
	h := servertest.New(t)
	resource := startDemo(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const cb = "http://127.0.0.1:3000/callback"
	log := &wireLog{}
	hc := &http.Client{Transport: log}
	asm, err := auth.GetAuthServerMetadata(ctx, h.URL, hc)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := oauthex.RegisterClient(ctx, asm.RegistrationEndpoint, &oauthex.ClientRegistrationMetadata{
		ClientName: "refused agent", RedirectURIs: []string{cb}, TokenEndpointAuthMethod: "none",
		GrantTypes: []string{"authorization_code", "refresh_token"},
	}, hc)
	if err != nil {
		t.Fatal(err)
	}
	b := h.Browser()
	var pages []string
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		PreregisteredClient: &oauthex.ClientCredentials{ClientID: reg.ClientID, Issuer: h.URL},
		RedirectURL:         cb,
		Client:              hc,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			p := b.Get(args.URL)
			if strings.Contains(p.Body, `action="/login"`) {
				p = b.Login(p, servertest.TestUser, servertest.TestPassword)
			}
			pages = append(pages, p.Body)
			var back *url.URL
			if back = servertest.BackLink(p.Body); back == nil {
				back = b.Consent(p, servertest.Offered(p.Body)).Location
			}
			q := back.Query()
			if e := q.Get("error"); e != "" {
				return nil, &demo.AuthorizationRefused{Code: e, Description: q.Get("error_description")}
			}
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	sess, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: resource, HTTPClient: hc, OAuthHandler: handler}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	call(ctx, t, sess, "write_note", map[string]any{"text": "keep me"})
	before, forbidden := len(pages), len(log.forbidden)

	_, err = sess.CallTool(ctx, &mcp.CallToolParams{Name: "delete_note", Arguments: map[string]any{"id": 1}})
	var refused *demo.AuthorizationRefused
	if !errors.As(err, &refused) || refused.Code != "invalid_scope" || !strings.Contains(refused.Description, "notes.delete") ||
		!strings.Contains(refused.Description, "an administrator must mark it trusted") {
		t.Fatalf("delete_note: %v, want invalid_scope naming notes.delete and why", err)
	}
	if n := len(pages) - before; n != 1 {
		t.Fatalf("authorizations for delete_note = %d, want 1", n)
	}
	if n := len(log.forbidden) - forbidden; n != 1 {
		t.Fatalf("403 responses for delete_note = %d, want 1 (no loop); wire: %q", n, log.steps)
	}
	page := pages[len(pages)-1]
	if strings.Contains(page, `action="/authorize/decision"`) || !strings.Contains(page, "agentid clients tag "+reg.ClientID+" trusted") {
		t.Fatalf("the person did not see why:\n%s", page)
	}
	if got := call(ctx, t, sess, "read_notes", map[string]any{}); !strings.Contains(got, "keep me") {
		t.Fatalf("read_notes after the refusal = %q (the note must still be there)", got)
	}
}
