package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/tracing"
	"github.com/agentid/agentid/internal/vault"
)

// tracedRetrievalHub is a retrieval hub traced as serve traces it when
// tracing is on: the handler, the store and the vault's HTTP client, every
// span recorded in exp.
func tracedRetrievalHub(t *testing.T) (*retrievalHub, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	h := newRetrievalHubWith(t, exchangeOptions{
		wrap: func(st store.Store) store.Store { return tracing.Store(st, "sqlite") },
		hubOpts: []servertest.Option{func(c *server.Config) {
			v, err := vault.New(vault.Config{Store: c.Store, Keyring: c.Keyring, Now: c.Now,
				HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: tracing.Transport(tp, nil)}})
			if err != nil {
				t.Fatal(err)
			}
			c.Vault = v
		}},
	})
	h.Wrap(func(next http.Handler) http.Handler { return tracing.Handler(tp, next) })
	return h, exp
}

// TestTracesHoldNoSecret runs the flows whose requests carry the most
// secrets — sign-in with a password and consent, the code flow with PKCE,
// a refresh, client credentials, introspection, token exchange for a
// downstream credential with a forced refresh at the provider, and
// refusals among them — traced, and searches every span's name, status
// and attribute values (resource, events and links included) for each
// secret, token, code, verifier, cookie and the person's identity. It
// also checks what the spans say: route names, the token path's child
// spans, and the provider call as a client span inside the exchange's
// trace.
func TestTracesHoldNoSecret(t *testing.T) {
	h, exp := tracedRetrievalHub(t)
	conn := h.connect("calendar.read")
	tRead := h.userToken("notes.read")

	// The code flow by hand, to hold the code, verifier, state and the
	// browser's cookies.
	conf := h.oauth2Config("agent", h.secrets["agent"], "notes.read")
	verifier := oauth2.GenerateVerifier()
	b := h.Browser()
	back := b.Authorize(conf.AuthCodeURL("state-5e1f9a", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", h.resA)), []string{"notes.read"})
	code := back.Query().Get("code")
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", h.resA))
	if err != nil {
		t.Fatal(err)
	}
	var cookies []string
	u, _ := url.Parse(h.URL)
	for _, c := range b.Client().Jar.Cookies(u) {
		cookies = append(cookies, c.Value)
	}
	if len(cookies) == 0 {
		t.Fatal("the browser holds no cookie")
	}
	r := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "agent", h.secrets["agent"])
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %v", r.status, r.body)
	}
	refreshed, rotated := r.str("access_token"), r.str("refresh_token")
	wrong := "wrong-secret-0c9d8e7f6a"
	if r := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "bot", wrong); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d", r.status)
	}
	cc := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}, "bot", h.secrets["bot"])
	if cc.status != http.StatusOK {
		t.Fatalf("client credentials: %d %v", cc.status, cc.body)
	}
	h.introspect(refreshed, "mcp-a", h.secrets["mcp-a"])

	r1 := h.retrieve("mcp-a", tRead, "calendar", "requested_token_type", oauth.TokenTypeAccessToken)
	h.clk.Advance(10 * time.Second)
	r2 := h.retrieve("mcp-a", tRead, "calendar", "force_refresh", "true")
	if r1.status != http.StatusOK || r2.status != http.StatusOK || r2.str("access_token") == r1.str("access_token") {
		t.Fatalf("retrievals: %d %d", r1.status, r2.status)
	}
	spans := exp.GetSpans()
	checkTraces(t, spans, h.cal.URL)

	secrets := map[string]string{
		"agent secret": h.secrets["agent"], "mcp-a secret": h.secrets["mcp-a"], "bot secret": h.secrets["bot"], "wrong secret": wrong,
		"provider client secret": h.cal.ClientSecret(), "password": servertest.TestPassword,
		"code": code, "verifier": verifier, "state": "state-5e1f9a",
		"access token": tok.AccessToken, "refresh token": tok.RefreshToken, "refreshed": refreshed, "rotated": rotated,
		"cc token": cc.str("access_token"), "user token": tRead,
		"downstream token": r1.str("access_token"), "refreshed downstream token": r2.str("access_token"),
		"user name": servertest.TestUser, "user's name": servertest.TestUserName, "email": servertest.TestUserEmail,
		"connection id": conn.ID,
	}
	for i, c := range cookies {
		secrets["cookie "+string(rune('a'+i))] = c
	}
	if len(spans) < 40 {
		t.Fatalf("only %d spans", len(spans))
	}
	for _, s := range spans {
		for _, text := range stubTexts(s) {
			for what, v := range secrets {
				if v != "" && strings.Contains(text, v) {
					t.Errorf("span %q carries the %s in %q", s.Name, what, text)
				}
			}
			if strings.Contains(text, "?") {
				t.Errorf("span %q carries a query: %q", s.Name, text)
			}
		}
	}
}

// stubTexts is every text a span carries: its name, status description,
// and every attribute value of the span, its events, its links and its
// resource.
func stubTexts(s tracetest.SpanStub) []string {
	out := []string{s.Name, s.Status.Description, s.SpanContext.TraceState().String()}
	add := func(kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			out = append(out, string(kv.Key)+"="+kv.Value.String())
		}
	}
	add(s.Attributes)
	add(s.Resource.Attributes())
	for _, e := range s.Events {
		out = append(out, e.Name)
		add(e.Attributes)
	}
	for _, l := range s.Links {
		add(l.Attributes)
	}
	return out
}

// checkTraces checks what the flows' spans say: server spans named by
// route, the token path's spans under the token span, and the provider
// calls as client spans — the forced refresh inside the retrieval's
// trace, the connection's code exchange (no request) a root of its own.
func checkTraces(t *testing.T, spans tracetest.SpanStubs, providerURL string) {
	t.Helper()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	names := map[string]int{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
		names[s.Name]++
	}
	for _, want := range []string{"POST /token", "GET /authorize", "POST /login", "POST /authorize/decision", "POST /introspect",
		"token", "policy.decide", "store.IssueTokens", "store.RotateRefresh", "store.ConsumeAuthCode", "store.GetRefreshToken",
		"store.AccessTokenStanding"} {
		if names[want] == 0 {
			t.Errorf("no span named %q; names: %v", want, names)
		}
	}
	// ancestor walks up to the span named name.
	ancestor := func(s tracetest.SpanStub, name string) (tracetest.SpanStub, bool) {
		for s.Parent.IsValid() {
			p, ok := byID[s.Parent.SpanID()]
			if !ok {
				return tracetest.SpanStub{}, false
			}
			if p.Name == name {
				return p, true
			}
			s = p
		}
		return tracetest.SpanStub{}, false
	}
	provider, _ := url.Parse(providerURL)
	var inRequest, root int
	outcomes := map[string]bool{}
	for _, s := range spans {
		attrs := map[attribute.Key]attribute.Value{}
		for _, kv := range s.Attributes {
			attrs[kv.Key] = kv.Value
		}
		switch {
		case s.SpanKind == trace.SpanKindClient && s.Name == "POST":
			if got := attrs["server.address"].AsString(); got != provider.Hostname() {
				t.Errorf("provider call to %q, want %q", got, provider.Hostname())
			}
			if attrs["http.response.status_code"].AsInt64() != http.StatusOK {
				t.Errorf("provider call status %v", attrs["http.response.status_code"])
			}
			if tok, ok := ancestor(s, "token"); ok {
				inRequest++
				if srv, ok := ancestor(tok, "POST /token"); !ok || srv.SpanKind != trace.SpanKindServer {
					t.Errorf("the token span of a provider call is not under the request's server span")
				}
			} else if !s.Parent.IsValid() {
				root++
			}
		case s.Name == "token":
			outcomes[attrs["oauth.grant_type"].AsString()+" "+attrs["agentid.outcome"].AsString()] = true
			if p, ok := byID[s.Parent.SpanID()]; !ok || p.Name != "POST /token" {
				t.Errorf("a token span's parent is %q", p.Name)
			}
		case strings.HasPrefix(s.Name, "store."):
			if attrs["db.system.name"].AsString() != "sqlite" || s.SpanKind != trace.SpanKindClient {
				t.Errorf("store span %s: %v", s.Name, s.Attributes)
			}
		case s.SpanKind == trace.SpanKindServer:
			if !strings.Contains(s.Name, " /") || attrs["http.route"].AsString() == "" {
				t.Errorf("server span named %q, route %q", s.Name, attrs["http.route"].AsString())
			}
		}
	}
	if inRequest != 1 || root != 1 {
		t.Errorf("provider calls: %d inside a token request (want the forced refresh), %d roots (want the code exchange)", inRequest, root)
	}
	for _, want := range []string{"authorization_code issued", "refresh_token issued", "client_credentials issued",
		"client_credentials invalid_client", oauth.GrantTokenExchange + " issued"} {
		if !outcomes[want] {
			t.Errorf("no token span %q; have %v", want, outcomes)
		}
	}
}
