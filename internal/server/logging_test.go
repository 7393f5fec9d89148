package server_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// TestLogsNameRequestsAndHoldNoSecret runs the sign-in, code, refresh,
// client-credentials and introspection flows, with failures among them,
// against a hub logging JSON at debug level, then reads every line: each
// request has its access line with the request id the response's
// X-Request-Id named, every record logged for a request carries that id,
// and no line holds a client secret, password, code, PKCE verifier or
// token.
func TestLogsNameRequestsAndHoldNoSecret(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := &hub{servertest.New(t, func(c *server.Config) { c.Logger = log })}
	secret := h.AddClient(&store.Client{ID: "agent-1", Name: "Notes Agent", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	ccSecret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	h.LinkResourceServer("bot")

	conf := h.oauth2Config("agent-1", secret, "notes.read")
	verifier := oauth2.GenerateVerifier()
	back := h.Browser().Authorize(conf.AuthCodeURL("state-xyz", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", h.Resource)), []string{"notes.read"})
	code := back.Query().Get("code")
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", h.Resource))
	if err != nil {
		t.Fatal(err)
	}
	// A refresh.
	r := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "agent-1", secret)
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %v", r.status, r.body)
	}
	refreshed, _ := r.body["access_token"].(string)
	newRefresh, _ := r.body["refresh_token"].(string)
	// The code again: refused as a replay (which revokes the grant).
	if r := h.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}, "agent-1", secret); r.status != http.StatusBadRequest {
		t.Fatalf("code replay: %d", r.status)
	}
	cc := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}, "bot", ccSecret)
	if cc.status != http.StatusOK {
		t.Fatalf("client credentials: %d %v", cc.status, cc.body)
	}
	ccToken, _ := cc.body["access_token"].(string)
	wrong := "wrong-secret-4b1d9c0e7a"
	if r := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "bot", wrong); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d", r.status)
	}
	h.introspect(refreshed, "bot", ccSecret)
	if r := h.post("/introspect", url.Values{"token": {"not-a-token"}}, "bot", wrong); r.status != http.StatusUnauthorized {
		t.Fatalf("introspect with a wrong secret: %d", r.status)
	}
	ids := map[string]bool{}
	for _, resp := range []jsonResp{r, cc} {
		ids[resp.header.Get("X-Request-Id")] = true
	}

	secrets := map[string]string{
		"client secret": secret, "client_credentials secret": ccSecret, "wrong secret": wrong,
		"password": servertest.TestPassword, "code": code, "verifier": verifier,
		"access token": tok.AccessToken, "refresh token": tok.RefreshToken,
		"refreshed access token": refreshed, "rotated refresh token": newRefresh, "cc token": ccToken,
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	requests := 0
	for _, line := range lines {
		for what, s := range secrets {
			if s != "" && strings.Contains(line, s) {
				t.Errorf("a log line holds the %s: %s", what, line)
			}
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if rec["msg"] != "request" {
			continue
		}
		requests++
		id, _ := rec["request_id"].(string)
		if id == "" || rec["route"] == "" || rec["status"] == nil {
			t.Errorf("access line without request id, route or status: %s", line)
		}
		delete(ids, id)
	}
	if requests < 10 {
		t.Errorf("%d access lines for the flows' requests", requests)
	}
	if len(ids) != 0 {
		t.Errorf("responses' X-Request-Id %v have no access line", ids)
	}
}

// TestLogHandlerAddsRequestID: a record logged with a request's context
// names the request once, also when the caller named it already; one
// without a request's context is left alone.
func TestLogHandlerAddsRequestID(t *testing.T) {
	var buf syncBuffer
	h := &hub{servertest.New(t, func(c *server.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})}
	resp, err := http.Get(h.URL + "/no-such-page")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	if id == "" || strings.Count(buf.String(), `"request_id":"`+id+`"`) == 0 {
		t.Fatalf("no record names request %q:\n%s", id, buf.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if strings.Count(line, `"request_id"`) > 1 {
			t.Errorf("request id twice: %s", line)
		}
	}
	var out strings.Builder
	l := slog.New(server.LogHandler(slog.NewJSONHandler(&out, nil)))
	l.InfoContext(context.Background(), "outside a request")
	if strings.Contains(out.String(), "request_id") {
		t.Errorf("a record outside a request got an id: %s", out.String())
	}
}
