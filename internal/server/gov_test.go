package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func hashOf(s string) []byte { return token.Hash(s) }

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// Registration governance, end to end: rate limits, size limits, modes,
// software statements, hold and reject policies, deduplication, expiry and
// the last-use touch.

// peerHeader lets a test choose the address a request comes from.
const peerHeader = "X-Test-Peer"

func fromPeer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get(peerHeader); a != "" {
			r.RemoteAddr = net.JoinHostPort(a, "40000")
			r.Header.Del(peerHeader)
		}
		next.ServeHTTP(w, r)
	})
}

// newGovHub is a hub on SQLite whose clock and policy engine the test
// holds, with reg as its registration config and requests' addresses
// chosen by peerHeader.
func newGovHub(t *testing.T, reg *server.RegistrationConfig, opts ...servertest.Option) *policyHub {
	t.Helper()
	st := openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db"))
	clk := &testClock{}
	e, err := policy.New(context.Background(), policy.Options{Store: st, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	all := append([]servertest.Option{func(c *server.Config) { c.Policy, c.Now, c.Registration = e, clk.Now, reg }}, opts...)
	h := servertest.NewOn(t, st, all...)
	h.Wrap(fromPeer)
	return &policyHub{hub: &hub{h}, engine: e, clock: clk}
}

// register posts a registration from peer.
func (h *hub) register(peer string, md any) jsonResp {
	h.T.Helper()
	return h.registerWith(peer, md, "")
}

func (h *hub) registerWith(peer string, md any, bearer string) jsonResp {
	h.T.Helper()
	var body string
	switch v := md.(type) {
	case string:
		body = v
	default:
		body = mustJSON(h.T, v)
	}
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/register", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(peerHeader, peer)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return h.send(req)
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := jsonMarshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// nativeClient is the metadata an MCP client on a laptop registers with.
func nativeClient(name string, port int) map[string]any {
	return map[string]any{
		"client_name": name, "software_id": "sw-" + name, "software_version": "1.0",
		"redirect_uris":              []string{fmt.Sprintf("http://127.0.0.1:%d/callback", port)},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_method": "none", "application_type": "native",
	}
}

func wantError(t *testing.T, r jsonResp, status int, code string) {
	t.Helper()
	if r.status != status || r.body["error"] != code {
		t.Fatalf("got %d %v, want %d %s", r.status, r.body, status, code)
	}
}

// TestRegistrationFloodThrottled: a flood from one address is answered 429
// with Retry-After while another address still registers; an IPv6 /64 is
// one address; the bucket refills with the clock; the total limit holds
// across addresses.
func TestRegistrationFloodThrottled(t *testing.T) {
	h := newGovHub(t, &server.RegistrationConfig{
		PerIP: server.LoginLimit{PerMinute: 5.0 / 60, Burst: 5},
		Total: server.LoginLimit{PerMinute: 1000.0 / 60, Burst: 1000},
	})
	for i := range 5 {
		if r := h.register("192.0.2.1", nativeClient(fmt.Sprintf("flood-%d", i), 1000+i)); r.status != http.StatusCreated {
			t.Fatalf("registration %d: %d %v", i, r.status, r.body)
		}
	}
	var retry int
	for i := range 20 {
		r := h.register("192.0.2.1", nativeClient("flood-x", 2000+i))
		wantError(t, r, http.StatusTooManyRequests, oauth.CodeTemporarilyUnavailable)
		n, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || n < 1 || n > 12*60+1 {
			t.Fatalf("Retry-After = %q, want whole seconds up to the refill of one registration (720s)", r.header.Get("Retry-After"))
		}
		retry = n
		// Browser-based clients may read it (CORS).
		if !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Retry-After") {
			t.Fatal("Retry-After is not exposed to browser clients")
		}
	}
	// Another address is not held up by the flood.
	if r := h.register("198.51.100.7", nativeClient("bystander", 3000)); r.status != http.StatusCreated {
		t.Fatalf("another address: %d %v", r.status, r.body)
	}
	// The addresses of one IPv6 /64 share a bucket; another /64 has its own.
	for i := range 5 {
		if r := h.register(fmt.Sprintf("2001:db8:1:2::%d", i+1), nativeClient(fmt.Sprintf("v6-%d", i), 4000+i)); r.status != http.StatusCreated {
			t.Fatalf("v6 %d: %d %v", i, r.status, r.body)
		}
	}
	wantError(t, h.register("2001:db8:1:2::99", nativeClient("v6-more", 4100)), http.StatusTooManyRequests, oauth.CodeTemporarilyUnavailable)
	if r := h.register("2001:db8:1:3::1", nativeClient("v6-other", 4200)); r.status != http.StatusCreated {
		t.Fatalf("another /64: %d %v", r.status, r.body)
	}
	// After Retry-After the flooding address may register once more, and
	// only once.
	h.clock.Advance(time.Duration(retry) * time.Second)
	if r := h.register("192.0.2.1", nativeClient("flood-later", 5000)); r.status != http.StatusCreated {
		t.Fatalf("after Retry-After: %d %v", r.status, r.body)
	}
	wantError(t, h.register("192.0.2.1", nativeClient("flood-later-2", 5001)), http.StatusTooManyRequests, oauth.CodeTemporarilyUnavailable)

	t.Run("total", func(t *testing.T) {
		h := newGovHub(t, &server.RegistrationConfig{
			PerIP: server.LoginLimit{PerMinute: 5.0 / 60, Burst: 5},
			Total: server.LoginLimit{PerMinute: 3.0 / 60, Burst: 3},
		})
		for i := range 3 {
			if r := h.register(fmt.Sprintf("203.0.113.%d", i+1), nativeClient(fmt.Sprintf("t-%d", i), 6000+i)); r.status != http.StatusCreated {
				t.Fatalf("address %d: %d %v", i, r.status, r.body)
			}
		}
		r := h.register("203.0.113.200", nativeClient("t-x", 6100))
		wantError(t, r, http.StatusTooManyRequests, oauth.CodeTemporarilyUnavailable)
		if r.header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		// A refusal by the total limit took nothing from the address: it
		// registers as soon as the total refills.
		h.clock.Advance(21 * time.Minute)
		if r := h.register("203.0.113.200", nativeClient("t-y", 6101)); r.status != http.StatusCreated {
			t.Fatalf("after the total refilled: %d %v", r.status, r.body)
		}
	})
}

// TestRegistrationLimits: size limits on a dynamic registration, each a
// clear RFC 7591 error.
func TestRegistrationLimits(t *testing.T) {
	h := newGovHub(t, nil)
	many := make([]string, 11)
	for i := range many {
		many[i] = fmt.Sprintf("http://127.0.0.1/cb%d", i)
	}
	long := "https://app.example.com/" + strings.Repeat("a", 2000)
	tests := []struct {
		name string
		md   any
		code string
		desc string
	}{
		{"body over 16 KiB", `{"client_name":"x","redirect_uris":["http://127.0.0.1/cb"],"contacts":["` + strings.Repeat("a", 17<<10) + `"]}`, oauth.CodeInvalidClientMetadata, "16 KiB"},
		{"11 redirect URIs", map[string]any{"client_name": "x", "redirect_uris": many, "token_endpoint_auth_method": "none"}, oauth.CodeInvalidRedirectURI, "at most 10"},
		{"redirect URI over 2000", map[string]any{"client_name": "x", "redirect_uris": []string{long}}, oauth.CodeInvalidRedirectURI, "2000"},
		{"name over 200", map[string]any{"client_name": strings.Repeat("n", 201), "redirect_uris": []string{"http://127.0.0.1/cb"}}, oauth.CodeInvalidClientMetadata, "200"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.register(fmt.Sprintf("192.0.2.%d", i+1), tt.md)
			wantError(t, r, http.StatusBadRequest, tt.code)
			if d, _ := r.body["error_description"].(string); !strings.Contains(d, tt.desc) {
				t.Errorf("error_description %q does not say %q", d, tt.desc)
			}
		})
	}
	if r := h.register("192.0.2.99", map[string]any{"client_name": "ten", "redirect_uris": many[:10], "token_endpoint_auth_method": "none"}); r.status != http.StatusCreated {
		t.Fatalf("10 redirect URIs: %d %v", r.status, r.body)
	}
}

// TestRegistrationModes: off, initial access token, open.
func TestRegistrationModes(t *testing.T) {
	const tok = "initial-access-token-0123456789abcdef"
	t.Run("off", func(t *testing.T) {
		h := newGovHub(t, &server.RegistrationConfig{Disabled: true})
		wantError(t, h.register("192.0.2.1", nativeClient("a", 1)), http.StatusForbidden, oauth.CodeAccessDenied)
		if m := h.jsonRequest(http.MethodGet, "/.well-known/oauth-authorization-server", "", ""); m.body["registration_endpoint"] != nil {
			t.Errorf("registration_endpoint advertised while off: %v", m.body["registration_endpoint"])
		}
	})
	t.Run("token", func(t *testing.T) {
		h := newGovHub(t, &server.RegistrationConfig{InitialAccessTokenHashes: [][]byte{hashOf(tok)}})
		if r := h.register("192.0.2.1", nativeClient("a", 1)); r.status != http.StatusUnauthorized || r.body["error"] != oauth.CodeInvalidToken {
			t.Fatalf("without token: %d %v", r.status, r.body)
		}
		if r := h.registerWith("192.0.2.1", nativeClient("a", 1), tok+"x"); r.status != http.StatusUnauthorized {
			t.Fatalf("wrong token: %d %v", r.status, r.body)
		}
		if r := h.registerWith("192.0.2.1", nativeClient("a", 1), tok); r.status != http.StatusCreated {
			t.Fatalf("with token: %d %v", r.status, r.body)
		}
	})
	t.Run("open", func(t *testing.T) {
		h := newGovHub(t, nil)
		if r := h.register("192.0.2.1", nativeClient("a", 1)); r.status != http.StatusCreated {
			t.Fatalf("open: %d %v", r.status, r.body)
		}
	})
}

// TestRegistrationDeduplication: 50 identical registrations that differ
// only in their loopback port are one client, which authorizes on any of
// those ports; a different path, another software or a confidential
// client are new clients.
func TestRegistrationDeduplication(t *testing.T) {
	roomy := func(c *server.Config) {
		c.Registration = &server.RegistrationConfig{PerIP: server.LoginLimit{PerMinute: 1, Burst: 100}}
	}
	t.Run("sqlite", func(t *testing.T) { testRegistrationDeduplication(t, newHub(t, roomy)) })
	t.Run("postgres", func(t *testing.T) {
		testRegistrationDeduplication(t, &hub{servertest.NewOn(t, openPostgresStore(t), roomy)})
	})
}

func testRegistrationDeduplication(t *testing.T, h *hub) {
	ctx := context.Background()
	var id string
	for i := range 50 {
		r := h.jsonRequest(http.MethodPost, "/register", nativeClient("Reconnecting Agent", 50000+i), "")
		if r.status != http.StatusCreated {
			t.Fatalf("registration %d: %d %v", i, r.status, r.body)
		}
		got, _ := r.body["client_id"].(string)
		switch {
		case i == 0:
			id = got
			if r.body["registration_access_token"] == nil {
				t.Fatal("the first registration carries no registration access token")
			}
		case got != id:
			t.Fatalf("registration %d got client %s, want %s", i, got, id)
		case r.body["registration_access_token"] != nil:
			t.Fatal("a deduplicated answer hands out a registration access token")
		}
	}
	all, err := h.Store.ListClients(ctx, store.DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range all {
		if c.Name == "Reconnecting Agent" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d clients stored for 50 identical registrations, want 1", n)
	}
	evs, err := h.Store.ListAudit(ctx, store.AuditFilter{Type: audit.ClientRegistrationDeduplicated, ClientID: id, Limit: 100})
	if err != nil || len(evs) != 49 {
		t.Fatalf("%d client.registration_deduplicated events (%v), want 49", len(evs), err)
	}

	// The one client authorizes on whichever port the client listens on.
	conf := h.oauth2Config(id, "", "notes.read")
	conf.RedirectURL = "http://127.0.0.1:50049/callback"
	if _, err := h.codeFlow(h.Browser(), conf, []string{"notes.read"}); err != nil {
		t.Fatalf("code flow on the last port: %v", err)
	}

	distinct := map[string]map[string]any{
		"other path": func() map[string]any {
			m := nativeClient("Reconnecting Agent", 1)
			m["redirect_uris"] = []string{"http://127.0.0.1:1/other"}
			return m
		}(),
		"other software": nativeClient("Another Agent", 50000),
		"other version": func() map[string]any {
			m := nativeClient("Reconnecting Agent", 1)
			m["software_version"] = "2.0"
			return m
		}(),
		"confidential": func() map[string]any {
			m := nativeClient("Reconnecting Agent", 1)
			m["token_endpoint_auth_method"] = "client_secret_basic"
			return m
		}(),
	}
	for name, md := range distinct {
		r := h.jsonRequest(http.MethodPost, "/register", md, "")
		if r.status != http.StatusCreated || r.body["client_id"] == id {
			t.Errorf("%s: %d %v, want a new client", name, r.status, r.body["client_id"])
		}
	}
	// A confidential client is never deduplicated: its secret is shown once.
	a := h.jsonRequest(http.MethodPost, "/register", distinct["confidential"], "")
	if a.body["client_secret"] == nil || a.body["client_id"] == id {
		t.Fatalf("confidential re-registration: %v", a.body)
	}
}

// TestQuarantine: a hold policy puts a new dynamic registration in
// pending; authorization shows the waiting page and the token endpoint
// refuses it until an admin approves; then the flow completes.
func TestQuarantine(t *testing.T) {
	h := newGovHub(t, nil)
	applyPolicy(t, h.Store, h.engine, `@id("hold-unattested")
permit (principal, action == Action::"hold", resource)
when { principal.registration_method == "dcr" && !(context has software_issuer) };`)
	h.settle()
	r := h.register("192.0.2.1", nativeClient("Held Agent", 1))
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %v", r.status, r.body)
	}
	id := r.body["client_id"].(string)
	ctx := context.Background()
	c, err := h.Store.GetClient(ctx, store.DefaultTenant, id)
	if err != nil || !c.Pending() {
		t.Fatalf("stored client %+v (%v), want pending", c, err)
	}
	evs, _ := h.Store.ListAudit(ctx, store.AuditFilter{Type: audit.ClientRegistered, ClientID: id, Limit: 1})
	if len(evs) != 1 || evs[0].StoredDetails()["status"] != store.ClientPending || evs[0].StoredDetails()["hold_policies"] != "hold-unattested" {
		t.Fatalf("client.registered = %+v, want status pending by hold-unattested", evs)
	}

	conf := h.oauth2Config(id, "", "notes.read")
	conf.RedirectURL = "http://127.0.0.1:1/callback"
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", h.Resource))
	b := h.Browser()
	p := b.Get(authURL)
	body := html.UnescapeString(p.Body)
	if p.Status != http.StatusForbidden || !strings.Contains(body, "waiting for an administrator's approval") || !strings.Contains(body, "agentid clients approve "+id) {
		t.Fatalf("authorize while pending: %d\n%s", p.Status, p.Body)
	}
	if p.Location != nil {
		t.Fatal("a pending client's request was redirected")
	}
	// The token endpoint refuses it too (here with a code it cannot have).
	tr := h.tokenRequest(map[string][]string{"grant_type": {"authorization_code"}, "client_id": {id}, "code": {"x"}, "redirect_uri": {conf.RedirectURL}, "code_verifier": {verifier}}, "", "")
	wantError(t, tr, http.StatusUnauthorized, oauth.CodeInvalidClient)

	// Registering again does not let it out.
	if again := h.register("192.0.2.2", nativeClient("Held Agent", 2)); again.body["client_id"] != id {
		t.Fatalf("re-registration: %v, want the pending client %s", again.body["client_id"], id)
	}
	if c, _ := h.Store.GetClient(ctx, store.DefaultTenant, id); !c.Pending() {
		t.Fatal("re-registration approved the client")
	}

	// An admin approves (as agentid clients approve does).
	if _, err := clients.Approve(ctx, h.Store, store.DefaultTenant, id, audit.Meta{Time: h.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if _, err := h.codeFlow(b, conf, []string{"notes.read"}); err != nil {
		t.Fatalf("code flow after approval: %v", err)
	}
}

// TestRejectPolicy: a reject permit refuses the registration, naming the
// policy; with a verified software statement the error is
// unapproved_software_statement.
func TestRejectPolicy(t *testing.T) {
	iss := newStatementIssuer(t, "https://software.example")
	h := newGovHub(t, &server.RegistrationConfig{Statements: iss.statements(t, nil)})
	applyPolicy(t, h.Store, h.engine, `@id("require-statement")
permit (principal, action == Action::"reject", resource)
when { !(context has software_issuer) };

@id("no-beta")
permit (principal, action == Action::"reject", resource)
when { principal.software_id == "sw-beta" };`)
	h.settle()
	r := h.register("192.0.2.1", nativeClient("Plain Agent", 1))
	wantError(t, r, http.StatusBadRequest, oauth.CodeInvalidClientMetadata)
	if d, _ := r.body["error_description"].(string); !strings.Contains(d, "require-statement") {
		t.Errorf("error_description %q does not name the policy", d)
	}
	md := nativeClient("Attested Agent", 1)
	md["software_statement"] = iss.sign(t, map[string]any{"software_id": "sw-attested"})
	if r := h.register("192.0.2.1", md); r.status != http.StatusCreated {
		t.Fatalf("with a statement: %d %v", r.status, r.body)
	}
	md["software_statement"] = iss.sign(t, map[string]any{"software_id": "sw-beta"})
	r = h.register("192.0.2.1", md)
	wantError(t, r, http.StatusBadRequest, oauth.CodeUnapprovedSoftwareStatement)
	if d, _ := r.body["error_description"].(string); !strings.Contains(d, "no-beta") {
		t.Errorf("error_description %q does not name the policy", d)
	}
}

// statementIssuer signs software statements.
type statementIssuer struct {
	iss string
	key *ecdsa.PrivateKey
	kid string
}

func newStatementIssuer(t *testing.T, iss string) *statementIssuer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &statementIssuer{iss: iss, key: k, kid: "k1"}
}

func (s *statementIssuer) keys() *jose.JSONWebKeySet {
	return &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &s.key.PublicKey, KeyID: s.kid, Algorithm: string(jose.ES256), Use: "sig"}}}
}

func (s *statementIssuer) statements(t *testing.T, now func() time.Time) *clients.Statements {
	v, err := clients.NewStatements([]clients.TrustedIssuer{{Issuer: s.iss, Keys: s.keys()}}, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (s *statementIssuer) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: s.key, KeyID: s.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]any{"iss": s.iss, "iat": time.Now().Unix()}
	for k, v := range claims {
		all[k] = v
	}
	out, err := jwt.Signed(signer).Claims(all).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSoftwareStatement: a statement of a trusted issuer is verified and
// its claims override the request's; a bad signature, an unknown issuer,
// an expired statement or an unsigned one are invalid_software_statement.
func TestSoftwareStatement(t *testing.T) {
	good := newStatementIssuer(t, "https://software.example")
	other := newStatementIssuer(t, "https://software.example") // same iss, other key
	stranger := newStatementIssuer(t, "https://stranger.example")
	h := newGovHub(t, &server.RegistrationConfig{Statements: good.statements(t, nil)})

	md := nativeClient("Request Name", 1)
	md["software_statement"] = good.sign(t, map[string]any{
		"software_id": "sw-stmt", "client_name": "Statement Name", "exp": time.Now().Add(time.Hour).Unix(),
	})
	r := h.register("192.0.2.1", md)
	if r.status != http.StatusCreated {
		t.Fatalf("good statement: %d %v", r.status, r.body)
	}
	if r.body["client_name"] != "Statement Name" || r.body["software_id"] != "sw-stmt" {
		t.Errorf("registered %v / %v, want the statement's name and software_id (RFC 7591 §2.3)", r.body["client_name"], r.body["software_id"])
	}
	c, err := h.Store.GetClient(context.Background(), store.DefaultTenant, r.body["client_id"].(string))
	if err != nil || c.SoftwareStatementIssuer != good.iss {
		t.Fatalf("stored issuer %q (%v), want %s", c.SoftwareStatementIssuer, err, good.iss)
	}

	unsigned := func() string {
		hdr := `{"alg":"none","typ":"JWT"}`
		pl := `{"iss":"https://software.example","software_id":"x"}`
		return b64(hdr) + "." + b64(pl) + "."
	}()
	bad := map[string]string{
		"bad signature":  other.sign(t, map[string]any{"software_id": "x"}),
		"unknown issuer": stranger.sign(t, map[string]any{"software_id": "x"}),
		"expired":        good.sign(t, map[string]any{"software_id": "x", "exp": time.Now().Add(-time.Hour).Unix()}),
		"not yet valid":  good.sign(t, map[string]any{"software_id": "x", "nbf": time.Now().Add(time.Hour).Unix()}),
		"alg none":       unsigned,
		"not a JWT":      "not-a-jwt",
	}
	for name, st := range bad {
		t.Run(name, func(t *testing.T) {
			md := nativeClient("Bad "+name, 1)
			md["software_statement"] = st
			wantError(t, h.register("192.0.2.2", md), http.StatusBadRequest, oauth.CodeInvalidSoftwareStatement)
		})
	}
	t.Run("no trusted issuer", func(t *testing.T) {
		h := newGovHub(t, nil)
		md := nativeClient("Any", 1)
		md["software_statement"] = good.sign(t, nil)
		wantError(t, h.register("192.0.2.2", md), http.StatusBadRequest, oauth.CodeInvalidSoftwareStatement)
	})
}

// TestClientExpiry: the hub's expiry job removes a self-registered client
// unused for the configured time, with a client.expired event, but never
// one holding a live refresh token, nor one whose last use (renewed by a
// token issued) is recent; an admin's client never expires.
func TestClientExpiry(t *testing.T) {
	h := newGovHub(t, &server.RegistrationConfig{ClientExpiry: 2 * time.Hour})
	ctx := context.Background()
	reg := func(name string, grants ...string) string {
		md := nativeClient(name, 1)
		md["grant_types"] = grants
		r := h.register("192.0.2.1", md)
		if r.status != http.StatusCreated {
			t.Fatalf("register %s: %d %v", name, r.status, r.body)
		}
		return r.body["client_id"].(string)
	}
	unused := reg("Unused", "authorization_code")
	withRefresh := reg("With Refresh", "authorization_code", "refresh_token")
	// A machine client: its tokens rest on no consent, so only its last
	// use keeps it.
	rr := h.register("192.0.2.1", map[string]any{"client_name": "Recently Used", "grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "client_secret_basic"})
	if rr.status != http.StatusCreated {
		t.Fatalf("register machine client: %d %v", rr.status, rr.body)
	}
	recent, recentSecret := rr.body["client_id"].(string), rr.body["client_secret"].(string)
	m := audit.Meta{}
	if _, _, err := h.engine.TagClient(ctx, recent, []string{"cc:notes.read"}, nil, &m); err != nil {
		t.Fatal(err)
	}
	h.settle()
	admin := h.AddClient(&store.Client{Name: "Admin's", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}, TokenEndpointAuthMethod: "none"})

	flow := func(id string) *oauth2.Token {
		conf := h.oauth2Config(id, "", "notes.read")
		conf.RedirectURL = "http://127.0.0.1:1/callback"
		tok, err := h.codeFlow(h.Browser(), conf, []string{"notes.read"})
		if err != nil {
			t.Fatalf("code flow of %s: %v", id, err)
		}
		return tok
	}
	if tok := flow(withRefresh); tok.RefreshToken == "" {
		t.Fatal("no refresh token issued")
	}
	h.clock.Advance(90 * time.Minute)
	cc := clientcredentials.Config{ClientID: recent, ClientSecret: recentSecret, TokenURL: h.URL + "/token", Scopes: []string{"notes.read"},
		EndpointParams: map[string][]string{"resource": {h.Resource}}}
	if _, err := cc.Token(ctx); err != nil {
		t.Fatalf("client credentials: %v", err)
	}
	h.clock.Advance(90 * time.Minute) // 3h after registration, 90 minutes after the last token

	if err := h.Server.ExpireClients(ctx); err != nil {
		t.Fatal(err)
	}
	exists := func(id string) bool {
		_, err := h.Store.GetClient(ctx, store.DefaultTenant, id)
		return err == nil
	}
	if exists(unused) {
		t.Error("the unused client was not removed")
	}
	if !exists(withRefresh) {
		t.Error("the client holding a live refresh token (and the consent behind it) was removed")
	}
	if !exists(recent) {
		t.Error("the client used 90 minutes ago was removed (its use did not renew it)")
	}
	if !exists(admin) {
		t.Error("an admin's client was removed")
	}
	evs, err := h.Store.ListAudit(ctx, store.AuditFilter{Type: audit.ClientExpired, Limit: 10})
	if err != nil || len(evs) != 1 || evs[0].ClientID != unused || evs[0].StoredDetails()["method"] != store.RegistrationDCR {
		t.Fatalf("client.expired events = %+v (%v), want one for %s", evs, err, unused)
	}

	// Once its consent and refresh token have run out, it goes too.
	h.clock.Advance(40 * 24 * time.Hour)
	if err := h.Server.ExpireClients(ctx); err != nil {
		t.Fatal(err)
	}
	if exists(withRefresh) || exists(recent) {
		t.Error("clients unused for 40 days were kept")
	}
	if !exists(admin) {
		t.Error("an admin's client was removed")
	}
}

// TestTouchAtMostHourly: issuing renews a client's last use, written at
// most about once an hour.
func TestTouchAtMostHourly(t *testing.T) {
	h := newGovHub(t, nil)
	ctx := context.Background()
	r := h.register("192.0.2.1", nativeClient("Touched", 1))
	id := r.body["client_id"].(string)
	conf := h.oauth2Config(id, "", "notes.read")
	conf.RedirectURL = "http://127.0.0.1:1/callback"
	b := h.Browser()
	lastUsed := func() time.Time {
		c, err := h.Store.GetClient(ctx, store.DefaultTenant, id)
		if err != nil {
			t.Fatal(err)
		}
		return c.LastUsedAt
	}
	if !lastUsed().IsZero() {
		t.Fatal("a new client has a last use")
	}
	tok, err := h.codeFlow(b, conf, []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	first := lastUsed()
	if first.IsZero() {
		t.Fatal("issuing did not record the client's use")
	}
	h.clock.Advance(10 * time.Minute)
	refresh := func() {
		t.Helper()
		next, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
		if err != nil {
			t.Fatal(err)
		}
		tok = next
	}
	refresh()
	if got := lastUsed(); !got.Equal(first) {
		t.Fatalf("last use moved after 10 minutes (%s → %s): the row is written on every issuance", first, got)
	}
	h.clock.Advance(time.Hour)
	refresh()
	if got := lastUsed(); !got.After(first.Add(time.Hour)) {
		t.Fatalf("last use %s not renewed after an hour (first %s)", got, first)
	}
}
