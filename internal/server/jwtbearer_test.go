package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/federation"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// trustedIssuer is a test issuer of JWTs (an enterprise IdP, a Kubernetes
// cluster) with a locally generated key.
type trustedIssuer struct {
	t   testing.TB
	iss string
	kid string
	key *ecdsa.PrivateKey
	n   atomic.Int64
}

func newTrustedIssuer(t testing.TB, iss string) *trustedIssuer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &trustedIssuer{t: t, iss: iss, kid: "key-1", key: k}
}

func (ti *trustedIssuer) jwks() string {
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ti.key.Public(), KeyID: ti.kid, Use: "sig", Algorithm: "ES256"}}})
	if err != nil {
		ti.t.Fatal(err)
	}
	return string(b)
}

// jti is a fresh jti.
func (ti *trustedIssuer) jti() string { return fmt.Sprintf("jti-%d", ti.n.Add(1)) }

func (ti *trustedIssuer) sign(typ string, claims map[string]any) string {
	opts := (&jose.SignerOptions{}).WithHeader("kid", ti.kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ti.key}, opts)
	if err != nil {
		ti.t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		ti.t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

// addIssuer trusts is (its TenantID and times filled in).
func (h *hub) addIssuer(is *store.Issuer) {
	h.T.Helper()
	is.TenantID = store.DefaultTenant
	is.CreatedAt, is.UpdatedAt = time.Now(), time.Now()
	if err := h.Store.CreateIssuer(context.Background(), is, nil); err != nil {
		h.T.Fatal(err)
	}
}

func jwtBearerForm(assertion string, extra ...string) url.Values {
	f := url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {assertion}}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Add(extra[i], extra[i+1])
	}
	return f
}

const idpIssuer = "https://idp.example.com"

// emaHub is a hub acting as an MCP server's authorization server with an
// enterprise IdP trusted for ID-JAGs, and the confidential client
// "agent" that the IdP knows by that id.
type emaHub struct {
	*hub
	clk    *fakeClock
	idp    *trustedIssuer
	secret string
}

func newEMAHub(t *testing.T) *emaHub {
	clk := newFakeClock()
	h := newHub(t, withClock(clk))
	idp := newTrustedIssuer(t, idpIssuer)
	h.addIssuer(&store.Issuer{ID: "okta", Issuer: idpIssuer, JWKS: idp.jwks(), Uses: []string{store.IssuerUseIDJAG}, Algorithms: []string{"ES256"}, MaxLifetime: 10 * time.Minute})
	secret := h.AddClient(&store.Client{ID: "agent", Name: "Agent", GrantTypes: []string{oauth.GrantJWTBearer}})
	return &emaHub{hub: h, clk: clk, idp: idp, secret: secret}
}

// idjag returns the claims of a valid ID-JAG for alice, the client
// "agent" and the hub's resource.
func (e *emaHub) idjag() map[string]any {
	now := e.clk.Now()
	return map[string]any{
		"iss": idpIssuer, "sub": servertest.TestUser, "aud": e.URL, "client_id": "agent",
		"jti": e.idp.jti(), "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"resource": e.Resource, "scope": "notes.read notes.write", "auth_time": now.Add(-time.Minute).Unix(),
	}
}

func (e *emaHub) present(assertion string, extra ...string) jsonResp {
	e.T.Helper()
	return e.tokenRequest(jwtBearerForm(assertion, extra...), "agent", e.secret)
}

// TestIDJAGGrant: the resource authorization server's side of MCP
// enterprise-managed authorization, accepted with client_secret_basic and
// client_secret_post; the token is the user's, for the agent, on the bound
// resource, with requested ∩ ID-JAG scopes, no refresh token, no consent.
func TestIDJAGGrant(t *testing.T) {
	e := newEMAHub(t)
	r := e.present(e.idp.sign(federation.TypeIDJAG, e.idjag()), "scope", "notes.read notes.delete")
	if r.status != 200 {
		t.Fatalf("basic: %d %v", r.status, r.body)
	}
	if _, ok := r.body["refresh_token"]; ok {
		t.Fatal("a refresh token was issued for an ID-JAG")
	}
	if r.body["scope"] != "notes.read" {
		t.Fatalf("scope = %v, want requested ∩ ID-JAG", r.body["scope"])
	}
	c := e.claims(r.body["access_token"].(string))
	if c["sub"] != "u-alice" || c["client_id"] != "agent" || c["aud"] != e.Resource {
		t.Fatalf("claims = %v", c)
	}
	if c["auth_time"] == nil {
		t.Fatalf("auth_time from the ID-JAG not carried: %v", c)
	}

	// client_secret_post, no scope asked: every scope the ID-JAG grants.
	form := jwtBearerForm(e.idp.sign(federation.TypeIDJAG, e.idjag()), "client_id", "agent", "client_secret", e.secret)
	r = e.tokenRequest(form, "", "")
	if r.status != 200 || r.body["scope"] != "notes.read notes.write" {
		t.Fatalf("post: %d %v", r.status, r.body)
	}

	// No resource in the ID-JAG (as Okta sends it): the tenant's one
	// resource; a resource parameter must name it.
	cl := e.idjag()
	delete(cl, "resource")
	if r := e.present(e.idp.sign(federation.TypeIDJAG, cl), "resource", e.Resource); r.status != 200 {
		t.Fatalf("no resource claim: %d %v", r.status, r.body)
	}
	// The issued token is recorded: granted events name the grant type.
	evs := e.auditEvents(audit.TokenIssued)
	if len(evs) != 3 || evs[0].Details["grant_type"] != oauth.GrantJWTBearer {
		t.Fatalf("token.issued events: %d %v", len(evs), evs)
	}
}

// TestIDJAGAdversarial is the adversarial table of the ID-JAG grant.
func TestIDJAGAdversarial(t *testing.T) {
	type tc struct {
		name string
		// setup may change the hub before the request.
		setup func(e *emaHub)
		// assertion builds the assertion from valid claims.
		assertion func(e *emaHub, c map[string]any) string
		// send sends it; nil: the agent with Basic auth.
		send       func(e *emaHub, assertion string) jsonResp
		status     int
		code, desc string
	}
	signed := func(mod func(e *emaHub, c map[string]any)) func(e *emaHub, c map[string]any) string {
		return func(e *emaHub, c map[string]any) string {
			mod(e, c)
			return e.idp.sign(federation.TypeIDJAG, c)
		}
	}
	rawJWS := func(header map[string]any, c map[string]any, sig func([]byte) []byte) string {
		hb, _ := json.Marshal(header)
		cb, _ := json.Marshal(c)
		in := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
		return in + "." + base64.RawURLEncoding.EncodeToString(sig([]byte(in)))
	}
	bad := oauth.CodeInvalidGrant
	cases := []tc{
		{name: "expired", assertion: signed(func(e *emaHub, c map[string]any) {
			c["iat"], c["exp"] = e.clk.Now().Add(-6*time.Minute).Unix(), e.clk.Now().Add(-time.Minute).Unix()
		}), status: 400, code: bad, desc: "expired"},
		{name: "issued in the future", assertion: signed(func(e *emaHub, c map[string]any) {
			c["iat"], c["exp"] = e.clk.Now().Add(2*time.Minute).Unix(), e.clk.Now().Add(7*time.Minute).Unix()
		}), status: 400, code: bad, desc: "future"},
		{name: "lifetime over the issuer's maximum", assertion: signed(func(e *emaHub, c map[string]any) {
			c["exp"] = e.clk.Now().Add(time.Hour).Unix()
		}), status: 400, code: bad, desc: "lifetime"},
		{name: "wrong audience", assertion: signed(func(e *emaHub, c map[string]any) { c["aud"] = "https://other-as.example.com" }), status: 400, code: bad, desc: "aud"},
		{name: "token endpoint as audience", assertion: signed(func(e *emaHub, c map[string]any) { c["aud"] = e.URL + "/token" }), status: 400, code: bad, desc: "aud"},
		{name: "multi-valued audience", assertion: signed(func(e *emaHub, c map[string]any) { c["aud"] = []string{e.URL, "https://other-as.example.com"} }), status: 400, code: bad, desc: "single value"},
		{name: "replayed jti", assertion: func(e *emaHub, c map[string]any) string {
			raw := e.idp.sign(federation.TypeIDJAG, c)
			if r := e.present(raw); r.status != 200 {
				e.T.Fatalf("first presentation: %d %v", r.status, r.body)
			}
			return raw
		}, status: 400, code: bad, desc: "already used"},
		{name: "replayed by another client", setup: func(e *emaHub) {
			e.AddClient(&store.Client{ID: "other", GrantTypes: []string{oauth.GrantJWTBearer}})
		}, assertion: func(e *emaHub, c map[string]any) string {
			raw := e.idp.sign(federation.TypeIDJAG, c)
			if r := e.present(raw); r.status != 200 {
				e.T.Fatalf("first presentation: %d %v", r.status, r.body)
			}
			return raw
		}, send: func(e *emaHub, raw string) jsonResp {
			return e.tokenRequest(jwtBearerForm(raw), "other", "secret-other-0123456789abcdef0123456789abcdef")
		}, status: 400, code: bad, desc: "another client"},
		{name: "untrusted issuer", assertion: func(e *emaHub, c map[string]any) string {
			c["iss"] = "https://evil.example.com"
			return newTrustedIssuer(e.T, "https://evil.example.com").sign(federation.TypeIDJAG, c)
		}, status: 400, code: bad, desc: "not trusted"},
		{name: "disabled issuer", setup: func(e *emaHub) {
			is, err := e.Store.GetIssuer(context.Background(), store.DefaultTenant, "okta")
			if err != nil {
				e.T.Fatal(err)
			}
			is.Disabled = true
			if err := e.Store.UpdateIssuer(context.Background(), is, nil); err != nil {
				e.T.Fatal(err)
			}
		}, assertion: signed(func(*emaHub, map[string]any) {}), status: 400, code: bad, desc: "disabled"},
		{name: "alg none", assertion: func(e *emaHub, c map[string]any) string {
			return rawJWS(map[string]any{"alg": "none", "typ": federation.TypeIDJAG, "kid": "key-1"}, c, func([]byte) []byte { return nil })
		}, status: 400, code: bad, desc: "asymmetric"},
		{name: "HMAC with the public key", assertion: func(e *emaHub, c map[string]any) string {
			return rawJWS(map[string]any{"alg": "HS256", "typ": federation.TypeIDJAG, "kid": "key-1"}, c, func(in []byte) []byte {
				m := hmac.New(sha256.New, []byte(e.idp.jwks()))
				m.Write(in)
				return m.Sum(nil)
			})
		}, status: 400, code: bad, desc: "asymmetric"},
		{name: "oversize", assertion: signed(func(e *emaHub, c map[string]any) { c["pad"] = strings.Repeat("x", 17<<10) }), status: 400, code: bad, desc: "larger"},
		{name: "typ confusion: ID-JAG claims with typ JWT", assertion: func(e *emaHub, c map[string]any) string {
			return e.idp.sign("JWT", c)
		}, status: 400, code: bad, desc: "not trusted for this use"},
		{name: "client_id mismatch", assertion: signed(func(e *emaHub, c map[string]any) { c["client_id"] = "someone-else" }), status: 400, code: bad, desc: "another client"},
		{name: "cnf", assertion: signed(func(e *emaHub, c map[string]any) { c["cnf"] = map[string]any{"jkt": "abc"} }), status: 400, code: bad, desc: "cnf"},
		{name: "authorization_details", assertion: signed(func(e *emaHub, c map[string]any) {
			c["authorization_details"] = []any{map[string]any{"type": "payment"}}
		}), status: 400, code: bad, desc: "authorization_details"},
		{name: "act", assertion: signed(func(e *emaHub, c map[string]any) { c["act"] = map[string]any{"sub": "x"} }), status: 400, code: bad, desc: "act"},
		{name: "resource mismatch", setup: func(e *emaHub) { e.addSecondResource(e.T.(*testing.T), "notes.read") }, assertion: signed(func(*emaHub, map[string]any) {}),
			send:   func(e *emaHub, raw string) jsonResp { return e.present(raw, "resource", e.URL+"/other-mcp") },
			status: 400, code: bad, desc: "bound to"},
		{name: "resource not registered", assertion: signed(func(e *emaHub, c map[string]any) { c["resource"] = "https://unknown.example.com/mcp" }), status: 400, code: bad, desc: "not registered"},
		{name: "resource missing with two resources", setup: func(e *emaHub) { e.addSecondResource(e.T.(*testing.T)) }, assertion: signed(func(e *emaHub, c map[string]any) { delete(c, "resource") }),
			status: 400, code: bad, desc: "more than one"},
		{name: "no requested scope in the ID-JAG", assertion: signed(func(*emaHub, map[string]any) {}),
			send:   func(e *emaHub, raw string) jsonResp { return e.present(raw, "scope", "notes.delete") },
			status: 400, code: oauth.CodeInvalidScope, desc: "ID-JAG"},
		{name: "unknown user", assertion: signed(func(e *emaHub, c map[string]any) { c["sub"] = "mallory" }), status: 400, code: bad, desc: "not known"},
		{name: "the hub's own issuer", setup: func(e *emaHub) {
			e.addIssuer(&store.Issuer{ID: "self", Issuer: e.URL, JWKS: e.idp.jwks(), Uses: []string{store.IssuerUseIDJAG}})
		}, assertion: signed(func(e *emaHub, c map[string]any) { c["iss"] = e.URL }), status: 400, code: bad, desc: "issued itself"},
		{name: "no client authentication", assertion: signed(func(*emaHub, map[string]any) {}),
			send:   func(e *emaHub, raw string) jsonResp { return e.tokenRequest(jwtBearerForm(raw), "", "") },
			status: 401, code: oauth.CodeInvalidClient, desc: "required"},
		{name: "public client", setup: func(e *emaHub) {
			e.AddClient(&store.Client{ID: "pub", TokenEndpointAuthMethod: "none", GrantTypes: []string{oauth.GrantJWTBearer}})
		}, assertion: signed(func(e *emaHub, c map[string]any) { c["client_id"] = "pub" }),
			send: func(e *emaHub, raw string) jsonResp {
				return e.tokenRequest(jwtBearerForm(raw, "client_id", "pub"), "", "")
			},
			status: 400, code: oauth.CodeUnauthorizedClient, desc: "public"},
		{name: "client not registered for jwt-bearer", setup: func(e *emaHub) {
			e.AddClient(&store.Client{ID: "cc", GrantTypes: []string{oauth.GrantClientCredentials}})
		}, assertion: signed(func(e *emaHub, c map[string]any) { c["client_id"] = "cc" }),
			send: func(e *emaHub, raw string) jsonResp {
				return e.tokenRequest(jwtBearerForm(raw), "cc", "secret-cc-0123456789abcdef0123456789abcdef")
			},
			status: 400, code: oauth.CodeUnauthorizedClient, desc: "jwt-bearer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEMAHub(t)
			if c.setup != nil {
				c.setup(e)
			}
			raw := c.assertion(e, e.idjag())
			var r jsonResp
			if c.send != nil {
				r = c.send(e, raw)
			} else {
				r = e.present(raw)
			}
			desc, _ := r.body["error_description"].(string)
			if r.status != c.status || r.body["error"] != c.code || !strings.Contains(desc, c.desc) {
				t.Fatalf("got %d %v, want %d %s containing %q", r.status, r.body, c.status, c.code, c.desc)
			}
			if strings.Contains(desc, raw[:20]) {
				t.Fatal("the error description contains the assertion")
			}
		})
	}
}

// TestIDJAGMovingClock: an ID-JAG verifies until exp (plus 30 s leeway)
// and not after; disabling its issuer takes effect within two seconds.
func TestIDJAGMovingClock(t *testing.T) {
	e := newEMAHub(t)
	c := e.idjag()
	// Within the leeway.
	e.clk.Advance(5*time.Minute + 20*time.Second)
	if r := e.present(e.idp.sign(federation.TypeIDJAG, c)); r.status != 200 {
		t.Fatalf("within leeway: %d %v", r.status, r.body)
	}
	c["jti"] = e.idp.jti()
	e.clk.Advance(15 * time.Second)
	if r := e.present(e.idp.sign(federation.TypeIDJAG, c)); r.status != 400 || !strings.Contains(r.body["error_description"].(string), "expired") {
		t.Fatalf("after exp + leeway: %d %v", r.status, r.body)
	}
	is, err := e.Store.GetIssuer(context.Background(), store.DefaultTenant, "okta")
	if err != nil {
		t.Fatal(err)
	}
	is.Disabled = true
	if err := e.Store.UpdateIssuer(context.Background(), is, nil); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(2 * time.Second)
	if r := e.present(e.idp.sign(federation.TypeIDJAG, e.idjag())); r.status != 400 || !strings.Contains(r.body["error_description"].(string), "disabled") {
		t.Fatalf("disabled issuer after 2 s: %d %v", r.status, r.body)
	}
}

// k8sIssuer is a locally generated key standing for a Kubernetes cluster's
// service-account token issuer.
const k8sIssuer = "https://kubernetes.default.svc.cluster.local"

func (ti *trustedIssuer) serviceAccountToken(now time.Time, aud any, ns, sa string) string {
	return ti.sign("", map[string]any{
		"iss": ti.iss, "sub": "system:serviceaccount:" + ns + ":" + sa, "aud": aud,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "jti": ti.jti(),
		"kubernetes.io": map[string]any{
			"namespace":      ns,
			"serviceaccount": map[string]any{"name": sa, "uid": "7f5e6a4c-0000-4000-8000-000000000001"},
			"pod":            map[string]any{"name": sa + "-5d8f7", "uid": "7f5e6a4c-0000-4000-8000-000000000002"},
		},
	})
}

// TestWorkloadIdentity: a Kubernetes service-account token gets a token
// for a resource through the jwt-bearer grant, with no client secret; the
// agent its issuer's rule names is created on first use, appears in the
// inventory, and policy decides its scopes. The same token type works as
// client_assertion for client_credentials.
func TestWorkloadIdentity(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		clk := newFakeClock()
		testWorkloadIdentity(t, newHub(t, withClock(clk)), clk)
	})
	t.Run("postgres", func(t *testing.T) {
		clk := newFakeClock()
		testWorkloadIdentity(t, &hub{servertest.NewOn(t, openPostgresStore(t), withClock(clk))}, clk)
	})
}

func testWorkloadIdentity(t *testing.T, h *hub, clk *fakeClock) {
	k8s := newTrustedIssuer(t, k8sIssuer)
	h.addIssuer(&store.Issuer{
		ID: "k8s-prod", Issuer: k8sIssuer, JWKS: k8s.jwks(), Uses: []string{store.IssuerUseWorkload}, Algorithms: []string{"ES256"},
		Rules: []store.IssuerRule{{
			Claims: map[string]string{"sub": "system:serviceaccount:agents:*", "kubernetes.io/namespace": "agents"},
			Agent:  "k8s.{kubernetes.io/namespace}.{kubernetes.io/serviceaccount/name}", Scopes: []string{"notes.read"},
		}},
	})
	ctx := context.Background()

	tok := k8s.serviceAccountToken(clk.Now(), []string{h.URL}, "agents", "planner")
	r := h.tokenRequest(jwtBearerForm(tok, "resource", h.Resource, "scope", "notes.read"), "", "")
	if r.status != 200 {
		t.Fatalf("workload grant: %d %v", r.status, r.body)
	}
	if _, ok := r.body["refresh_token"]; ok {
		t.Fatal("refresh token for a workload")
	}
	c := h.claims(r.body["access_token"].(string))
	if c["sub"] != "k8s.agents.planner" || c["client_id"] != "k8s.agents.planner" || c["aud"] != h.Resource || c["scope"] != "notes.read" {
		t.Fatalf("claims = %v", c)
	}
	clients, err := h.Store.ListClients(ctx, store.DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(clients, func(c *store.Client) bool { return c.ID == "k8s.agents.planner" })
	if i < 0 {
		t.Fatal("the workload agent is not in the inventory")
	}
	if a := clients[i]; a.RegistrationMethod != store.RegistrationWorkload || a.FederatedIssuer != "k8s-prod" || len(a.SecretHash) != 0 || a.JWKS != "" {
		t.Fatalf("agent = %+v", a)
	}
	regs := h.auditEvents(audit.ClientRegistered)
	if len(regs) != 1 || regs[0].ClientID != "k8s.agents.planner" || regs[0].Details["method"] != store.RegistrationWorkload {
		t.Fatalf("client.registered: %v", regs)
	}

	// Replayed: refused.
	if r := h.tokenRequest(jwtBearerForm(tok, "resource", h.Resource), "", ""); r.status != 400 || r.body["error"] != oauth.CodeInvalidGrant {
		t.Fatalf("replay: %d %v", r.status, r.body)
	}
	// Policy decides: notes.write is not among the rule's scopes.
	r = h.tokenRequest(jwtBearerForm(k8s.serviceAccountToken(clk.Now(), h.URL+"/token", "agents", "planner"), "resource", h.Resource, "scope", "notes.write"), "", "")
	if r.status != 400 || r.body["error"] != oauth.CodeInvalidScope {
		t.Fatalf("scope outside policy: %d %v", r.status, r.body)
	}
	// As client_assertion for client_credentials (aud: the token endpoint).
	form := url.Values{
		"grant_type": {oauth.GrantClientCredentials}, "resource": {h.Resource}, "scope": {"notes.read"},
		"client_assertion_type": {oauth.ClientAssertionTypeJWTBearer},
		"client_assertion":      {k8s.serviceAccountToken(clk.Now(), h.URL+"/token", "agents", "planner")},
	}
	r = h.tokenRequest(form, "", "")
	if r.status != 200 || h.claims(r.body["access_token"].(string))["sub"] != "k8s.agents.planner" {
		t.Fatalf("client_assertion: %d %v", r.status, r.body)
	}
	// The same assertion again, and one naming another client_id: refused.
	r = h.tokenRequest(form, "", "")
	if r.status != 401 || r.body["error"] != oauth.CodeInvalidClient {
		t.Fatalf("client_assertion replay: %d %v", r.status, r.body)
	}
	form.Set("client_assertion", k8s.serviceAccountToken(clk.Now(), h.URL, "agents", "planner"))
	form.Set("client_id", "someone-else")
	if r := h.tokenRequest(form, "", ""); r.status != 401 {
		t.Fatalf("client_assertion with another client_id: %d %v", r.status, r.body)
	}
	if evs := h.auditEvents(audit.ClientAuthFailed); len(evs) != 2 {
		t.Fatalf("client.auth_failed events: %d", len(evs))
	}

	// A second workload of the namespace is a second agent.
	r = h.tokenRequest(jwtBearerForm(k8s.serviceAccountToken(clk.Now(), h.URL, "agents", "reviewer"), "resource", h.Resource), "", "")
	if r.status != 200 || h.claims(r.body["access_token"].(string))["sub"] != "k8s.agents.reviewer" {
		t.Fatalf("second workload: %d %v", r.status, r.body)
	}

	// Moving clock: a token verifies until exp + leeway, not after.
	old := k8s.serviceAccountToken(clk.Now(), h.URL, "agents", "planner")
	clk.Advance(11 * time.Minute)
	if r := h.tokenRequest(jwtBearerForm(old, "resource", h.Resource), "", ""); r.status != 400 || !strings.Contains(r.body["error_description"].(string), "expired") {
		t.Fatalf("expired: %d %v", r.status, r.body)
	}
}

// TestWorkloadAdversarial: what a workload token must not obtain.
func TestWorkloadAdversarial(t *testing.T) {
	clk := newFakeClock()
	h := newHub(t, withClock(clk))
	k8s := newTrustedIssuer(t, k8sIssuer)
	h.addIssuer(&store.Issuer{
		ID: "k8s-prod", Issuer: k8sIssuer, JWKS: k8s.jwks(), Uses: []string{store.IssuerUseWorkload},
		Rules: []store.IssuerRule{
			{Claims: map[string]string{"kubernetes.io/namespace": "agents"}, Agent: "k8s.{kubernetes.io/namespace}.{kubernetes.io/serviceaccount/name}", Scopes: []string{"notes.read"}},
			{Claims: map[string]string{"kubernetes.io/namespace": "raw"}, Agent: "{sub}"},
		},
	})
	h.AddClient(&store.Client{ID: "k8s.agents.admin-bot", GrantTypes: []string{oauth.GrantJWTBearer, oauth.GrantClientCredentials}, Tags: []string{"cc:notes.read"}})
	idp := newTrustedIssuer(t, idpIssuer)
	h.addIssuer(&store.Issuer{ID: "okta", Issuer: idpIssuer, JWKS: idp.jwks(), Uses: []string{store.IssuerUseIDJAG}})
	now := clk.Now()
	cases := []struct {
		name, assertion, desc string
	}{
		{"namespace no rule maps", k8s.serviceAccountToken(now, h.URL, "default", "planner"), "no rule"},
		{"rule yields an invalid agent id", k8s.serviceAccountToken(now, h.URL, "raw", "x"), "valid agent id"},
		{"would take over a manual client", k8s.serviceAccountToken(now, h.URL, "agents", "admin-bot"), "not a workload agent"},
		{"wrong audience", k8s.serviceAccountToken(now, "https://kubernetes.default.svc", "agents", "planner"), "aud"},
		{"multi-valued audience", k8s.serviceAccountToken(now, []string{h.URL, h.URL + "/token"}, "agents", "planner"), "single value"},
		{"ID-JAG issuer's token without client", idp.sign("", map[string]any{"iss": idpIssuer, "sub": "alice", "aud": h.URL, "jti": "j", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}), "not trusted for this use"},
		{"typ confusion: workload token typed as ID-JAG", k8s.sign(federation.TypeIDJAG, map[string]any{"iss": k8sIssuer, "sub": "system:serviceaccount:agents:x", "aud": h.URL, "client_id": "k8s.agents.x", "jti": "j2", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}), "required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.tokenRequest(jwtBearerForm(c.assertion, "resource", h.Resource), "", "")
			desc, _ := r.body["error_description"].(string)
			if r.status/100 != 4 || !strings.Contains(desc, c.desc) {
				t.Fatalf("got %d %v, want an error containing %q", r.status, r.body, c.desc)
			}
		})
	}
}

// TestUserAssertionGrant: an RFC 7523 §2.1 assertion about a user from an
// issuer trusted for jwt_bearer, presented by an authenticated client.
func TestUserAssertionGrant(t *testing.T) {
	clk := newFakeClock()
	h := newHub(t, withClock(clk))
	idp := newTrustedIssuer(t, idpIssuer)
	h.addIssuer(&store.Issuer{ID: "corp", Issuer: idpIssuer, JWKS: idp.jwks(), Uses: []string{store.IssuerUseJWTBearer}, UserClaim: "email"})
	u, err := h.Store.GetUser(context.Background(), store.DefaultTenant, "u-alice")
	if err != nil {
		t.Fatal(err)
	}
	u.Email, u.EmailVerified = "alice@example.com", true
	if err := h.Store.UpdateUser(context.Background(), u, nil); err != nil {
		t.Fatal(err)
	}
	secret := h.AddClient(&store.Client{ID: "svc", GrantTypes: []string{oauth.GrantJWTBearer}, DefaultResource: h.Resource})
	claims := func(mod func(map[string]any)) string {
		now := clk.Now()
		c := map[string]any{"iss": idpIssuer, "sub": "00u1", "email": "Alice@example.com", "aud": h.URL + "/token", "jti": idp.jti(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
		if mod != nil {
			mod(c)
		}
		return idp.sign("JWT", c)
	}
	r := h.tokenRequest(jwtBearerForm(claims(nil), "scope", "notes.read"), "svc", secret)
	if r.status != 200 || h.claims(r.body["access_token"].(string))["sub"] != "u-alice" || r.body["refresh_token"] != nil {
		t.Fatalf("user assertion: %d %v", r.status, r.body)
	}
	for _, c := range []struct {
		name string
		raw  string
		desc string
	}{
		{"another client's", claims(func(c map[string]any) { c["client_id"] = "other" }), "another client"},
		{"unknown user", claims(func(c map[string]any) { c["email"] = "bob@example.com" }), "not known"},
		{"no email", claims(func(c map[string]any) { delete(c, "email") }), "email"},
		{"authorization_details", claims(func(c map[string]any) { c["authorization_details"] = []any{} }), "authorization_details"},
		// A delegated token presented as an assertion would come out
		// without its chain.
		{"act", claims(func(c map[string]any) { c["act"] = map[string]any{"sub": "some-agent"} }), "act"},
		{"typed as an ID-JAG", idp.sign(federation.TypeIDJAG, map[string]any{"iss": idpIssuer, "sub": "alice", "aud": h.URL, "client_id": "svc", "jti": "x", "iat": clk.Now().Unix(), "exp": clk.Now().Add(time.Minute).Unix()}), "not trusted for this use"},
	} {
		r := h.tokenRequest(jwtBearerForm(c.raw, "scope", "notes.read"), "svc", secret)
		desc, _ := r.body["error_description"].(string)
		if r.status != 400 || r.body["error"] != oauth.CodeInvalidGrant || !strings.Contains(desc, c.desc) {
			t.Errorf("%s: %d %v", c.name, r.status, r.body)
		}
	}
}

// TestAssertionForResourceServer: an issuer trusted for subject tokens
// lists its resource servers among its audiences, and those apply to every
// use of the issuer. A JWT it minted for one of the hub's resource servers
// is that server's to exchange (with act and the confused-deputy rule), not
// a user assertion or a workload token for any client that holds it.
func TestAssertionForResourceServer(t *testing.T) {
	clk := newFakeClock()
	h := newHub(t, withClock(clk))
	idp := newTrustedIssuer(t, idpIssuer)
	h.addIssuer(&store.Issuer{
		ID: "corp", Issuer: idpIssuer, JWKS: idp.jwks(),
		Uses:      []string{store.IssuerUseSubjectToken, store.IssuerUseJWTBearer, store.IssuerUseWorkload},
		Audiences: []string{h.Resource, h.URL, h.URL + "/token"},
		Rules:     []store.IssuerRule{{Claims: map[string]string{"sub": "wl-*"}, Agent: "wl.{sub}", Scopes: []string{"notes.read"}}},
	})
	secret := h.AddClient(&store.Client{ID: "svc", GrantTypes: []string{oauth.GrantJWTBearer}, DefaultResource: h.Resource})
	signed := func(sub string, aud any) string {
		now := clk.Now()
		return idp.sign("JWT", map[string]any{"iss": idpIssuer, "sub": sub, "aud": aud, "scope": "notes.read notes.write", "jti": idp.jti(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	}
	// The same JWTs with the hub as aud are accepted: the refusal is about
	// the audience alone.
	if r := h.tokenRequest(jwtBearerForm(signed("alice", h.URL), "scope", "notes.read"), "svc", secret); r.status != 200 {
		t.Fatalf("user assertion for the hub: %d %v", r.status, r.body)
	}
	if r := h.tokenRequest(jwtBearerForm(signed("wl-a", h.URL+"/token"), "resource", h.Resource), "", ""); r.status != 200 {
		t.Fatalf("workload token for the hub: %d %v", r.status, r.body)
	}
	for _, c := range []struct {
		name string
		send func() jsonResp
		code string
	}{
		{"user assertion", func() jsonResp {
			return h.tokenRequest(jwtBearerForm(signed("alice", h.Resource), "scope", "notes.read"), "svc", secret)
		}, oauth.CodeInvalidGrant},
		{"user assertion, aud as a one-element array", func() jsonResp {
			return h.tokenRequest(jwtBearerForm(signed("alice", []string{h.Resource}), "scope", "notes.read"), "svc", secret)
		}, oauth.CodeInvalidGrant},
		{"workload token", func() jsonResp {
			return h.tokenRequest(jwtBearerForm(signed("wl-a", h.Resource), "resource", h.Resource), "", "")
		}, oauth.CodeInvalidGrant},
		{"workload client_assertion", func() jsonResp {
			return h.tokenRequest(url.Values{
				"grant_type": {oauth.GrantClientCredentials}, "resource": {h.Resource},
				"client_assertion_type": {oauth.ClientAssertionTypeJWTBearer}, "client_assertion": {signed("wl-a", h.Resource)},
			}, "", "")
		}, oauth.CodeInvalidClient},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.send()
			if r.body["error"] != c.code {
				t.Fatalf("got %d %v, want %s", r.status, r.body, c.code)
			}
		})
	}
}

// TestJWTBearerMetadata: the grant and the ID-JAG profile are advertised.
func TestJWTBearerMetadata(t *testing.T) {
	h := newHub(t)
	resp, err := http.Get(h.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m oauth.ServerMetadata
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(m.GrantTypesSupported, oauth.GrantJWTBearer) || !slices.Equal(m.AuthorizationGrantProfilesSupported, []string{oauth.GrantProfileIDJAG}) {
		t.Fatalf("metadata: %v %v", m.GrantTypesSupported, m.AuthorizationGrantProfilesSupported)
	}
}

// TestUserAssertionConnectorPeople: a trusted issuer speaks only for the
// people it may speak for. Carol signs in through the corp connector (its
// provider vouches for her); a trusted issuer that is another provider
// naming her verified address, her username, or a sub equal to her
// username gets nothing, whatever its user claim. The connector's own
// provider, trusted as an issuer, finds her by her subject there (never
// by a username that equals another subject), and the hub's own people
// stay reachable by the other issuer.
func TestUserAssertionConnectorPeople(t *testing.T) {
	const corpIssuer = "https://login.corp.example"
	clk := newFakeClock()
	h := newHub(t, withClock(clk))
	ctx := context.Background()
	if err := h.Store.CreateConnector(ctx, &store.Connector{TenantID: store.DefaultTenant, ID: "corp", Type: store.ConnectorOIDC,
		Name: "Corp SSO", Issuer: corpIssuer, ClientID: "hub", EmailDomains: []string{"corp.example"}}, nil); err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	if err := h.Store.CreateUser(ctx, &store.User{TenantID: store.DefaultTenant, ID: "u-carol", Username: "carol",
		Email: "carol@corp.example", EmailVerified: true, ConnectorID: "corp", ExternalSubject: "00u-carol",
		CreatedAt: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	// A local person whose username is another provider subject's.
	if err := h.Store.CreateUser(ctx, &store.User{TenantID: store.DefaultTenant, ID: "u-local", Username: "00u-dave",
		CreatedAt: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	editUser(t, h.Store, func(u *store.User) { u.Email, u.EmailVerified = "alice@example.com", true })
	other := newTrustedIssuer(t, idpIssuer)
	corp := newTrustedIssuer(t, corpIssuer)
	secret := h.AddClient(&store.Client{ID: "svc", GrantTypes: []string{oauth.GrantJWTBearer}, DefaultResource: h.Resource})
	grant := func(idp *trustedIssuer, iss string, c map[string]any) jsonResp {
		t.Helper()
		c["iss"], c["aud"], c["jti"] = iss, h.URL+"/token", idp.jti()
		c["iat"], c["exp"] = clk.Now().Unix(), clk.Now().Add(time.Minute).Unix()
		return h.tokenRequest(jwtBearerForm(idp.sign("JWT", c), "scope", "notes.read"), "svc", secret)
	}
	for _, tc := range []struct {
		name, claim string
		idp         *trustedIssuer
		iss         string
		claims      map[string]any
		want        string // the token's sub; "" refused
	}{
		{"another issuer by email", "email", other, idpIssuer, map[string]any{"sub": "x1", "email": "carol@corp.example"}, ""},
		{"another issuer by username", "preferred_username", other, idpIssuer, map[string]any{"sub": "x1", "preferred_username": "carol"}, ""},
		{"another issuer by a sub equal to the username", "sub", other, idpIssuer, map[string]any{"sub": "carol"}, ""},
		{"another issuer by her subject at corp", "sub", other, idpIssuer, map[string]any{"sub": "00u-carol"}, ""},
		{"another issuer, a local person by email", "email", other, idpIssuer, map[string]any{"sub": "x1", "email": "alice@example.com"}, "u-alice"},
		{"corp by her subject", "sub", corp, corpIssuer, map[string]any{"sub": "00u-carol"}, "u-carol"},
		{"corp by a sub equal to her username", "sub", corp, corpIssuer, map[string]any{"sub": "carol"}, ""},
		{"corp by email", "email", corp, corpIssuer, map[string]any{"sub": "00u-carol", "email": "carol@corp.example"}, "u-carol"},
		// The hub's own people are found as the administrator mapped them.
		{"corp, a local person's username as sub", "sub", corp, corpIssuer, map[string]any{"sub": "00u-dave"}, "u-local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := map[string]string{idpIssuer: "other", corpIssuer: "corp-idp"}[tc.iss]
			iss, err := h.Store.GetIssuer(ctx, store.DefaultTenant, id)
			if err != nil {
				h.addIssuer(&store.Issuer{ID: id, Issuer: tc.iss, JWKS: tc.idp.jwks(), Uses: []string{store.IssuerUseJWTBearer}, UserClaim: tc.claim})
			} else {
				iss.UserClaim, iss.UpdatedAt = tc.claim, clk.Now()
				if err := h.Store.UpdateIssuer(ctx, iss, nil); err != nil {
					t.Fatal(err)
				}
			}
			clk.Advance(3 * time.Second) // the registry re-reads issuers every 2 s
			r := grant(tc.idp, tc.iss, tc.claims)
			if tc.want == "" {
				if desc, _ := r.body["error_description"].(string); r.status != 400 || r.body["error"] != oauth.CodeInvalidGrant || !strings.Contains(desc, "not known") {
					t.Fatalf("refusal: %d %v", r.status, r.body)
				}
				return
			}
			if r.status != 200 || h.claims(r.body["access_token"].(string))["sub"] != tc.want {
				t.Fatalf("grant: %d %v", r.status, r.body)
			}
		})
	}
}
