package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/fetch"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// docHost is a client's website on loopback, over TLS: it serves Client
// ID Metadata Documents and JWK sets, and counts how often each is fetched.
type docHost struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	docs    map[string]docResp
	fetches map[string]int
}

type docResp struct {
	body         []byte
	status       int
	cacheControl string
	contentType  string
}

func newDocHost(t *testing.T) *docHost {
	d := &docHost{t: t, docs: map[string]docResp{}, fetches: map[string]int{}}
	d.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		resp, ok := d.docs[r.URL.Path]
		d.fetches[r.URL.Path]++
		d.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		if resp.contentType == "" {
			resp.contentType = "application/json"
		}
		w.Header().Set("Content-Type", resp.contentType)
		if resp.cacheControl != "" {
			w.Header().Set("Cache-Control", resp.cacheControl)
		}
		if resp.status != 0 {
			w.WriteHeader(resp.status)
		}
		_, _ = w.Write(resp.body)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

// url is the https URL of path on the host (https://127.0.0.1:port/path).
func (d *docHost) url(path string) string { return d.srv.URL + path }

// put serves v as JSON at path with the Cache-Control header cc.
func (d *docHost) put(path string, v any, cc string) {
	b, err := json.Marshal(v)
	if err != nil {
		d.t.Fatal(err)
	}
	d.serve(path, docResp{body: b, cacheControl: cc})
}

func (d *docHost) serve(path string, r docResp) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.docs[path] = r
}

func (d *docHost) count(path string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fetches[path]
}

// named is the https URL of path on the host under a name of
// example.com (its certificate covers *.example.com), which the fetcher
// resolves to the host's loopback address.
func (d *docHost) named(host, path string) string { return "https://" + host + path }

// fetcher is a hub fetcher that trusts the host's certificate and, by the
// development allowance, fetches from loopback. Every name resolves to
// 127.0.0.1 and every connection goes to the host's port, so documents can
// live at https://app.example.com/… without DNS.
func (d *docHost) fetcher(now func() time.Time) *fetch.Fetcher {
	pool := d.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	addr := d.srv.Listener.Addr().String()
	return fetch.New(fetch.Config{
		TLS: &tls.Config{RootCAs: pool}, AllowLoopback: true, Now: now,
		Resolve: func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		},
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, network, addr)
		},
	})
}

// clientDoc is a metadata document for the client at id.
func clientDoc(id string, redirects ...string) map[string]any {
	return map[string]any{
		"client_id": id, "client_name": "Doc Agent", "redirect_uris": redirects,
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none",
	}
}

// cimdHub is a hub on a moving clock that fetches from d.
func cimdHub(t *testing.T, d *docHost, opts ...servertest.Option) (*hub, *testClock) {
	clk := &testClock{}
	h := newHub(t, append([]servertest.Option{func(c *server.Config) {
		c.Now = clk.Now
		c.Fetcher = d.fetcher(clk.Now)
	}}, opts...)...)
	return h, clk
}

// authorizeURL is an authorization request of client id with redirect,
// PKCE by testVerifier.
func authorizeURL(h *hub, id, redirect string) string {
	return h.URL + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {id}, "redirect_uri": {redirect}, "scope": {"notes.read"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
		"state": {"s"}, "resource": {h.Resource},
	}.Encode()
}

// TestCIMDAuthorizationCodeFlow: a client whose id is its document's URL
// completes the code flow as a public client (x/oauth2 sends Basic with an
// empty password first); the document is registered once as a cimd client
// with its client.registered event, and used from the cache afterwards.
func TestCIMDAuthorizationCodeFlow(t *testing.T) {
	d := newDocHost(t)
	id := d.url("/oauth/client.json")
	d.put("/oauth/client.json", clientDoc(id, redirectURI), "max-age=3600")
	h, _ := cimdHub(t, d)
	b := h.Browser()
	conf := h.oauth2Config(id, "", "notes.read")
	for i := range 2 {
		tok, err := h.codeFlow(b, conf, []string{"notes.read"})
		if err != nil {
			t.Fatalf("flow %d: %v", i, err)
		}
		if c := h.claims(tok.AccessToken); c["client_id"] != id {
			t.Fatalf("client_id claim = %v", c["client_id"])
		}
	}
	if n := d.count("/oauth/client.json"); n != 1 {
		t.Fatalf("document fetched %d times, want 1 (cached)", n)
	}
	c, err := h.Store.GetClient(context.Background(), store.DefaultTenant, id)
	if err != nil || c.RegistrationMethod != store.RegistrationCIMD || !c.Public() || c.Name != "Doc Agent" {
		t.Fatalf("stored client %+v, %v", c, err)
	}
	if evs := auditOf(t, h, audit.ClientRegistered); len(evs) != 1 || evs[0].ClientID != id || evs[0].Details["method"] != "cimd" {
		t.Fatalf("client.registered events = %+v", evs)
	}
}

// auditOf returns the events of type typ.
func auditOf(t *testing.T, h *hub, typ string) []*store.AuditEvent {
	t.Helper()
	evs, err := h.Store.ListAudit(context.Background(), store.AuditFilter{TenantID: store.DefaultTenant, Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(evs) // oldest first
	return evs
}

// TestCIMDCacheLifetime: a document is used for its HTTP freshness clamped
// to 5 minutes..24 hours, on the hub's clock.
func TestCIMDCacheLifetime(t *testing.T) {
	for _, tc := range []struct {
		cacheControl string
		fresh, stale time.Duration
	}{
		{"max-age=60", 4 * time.Minute, 6 * time.Minute},                           // raised to 5m
		{"no-store", 4 * time.Minute, 6 * time.Minute},                             // 0 → 5m
		{"", 4 * time.Minute, 6 * time.Minute},                                     // absent → 5m
		{"max-age=3600", 59 * time.Minute, 61 * time.Minute},                       // as served
		{"max-age=604800", 23 * time.Hour, 25 * time.Hour},                         // a week, cut to 24h
		{"public, s-maxage=86400, max-age=600", 9 * time.Minute, 11 * time.Minute}, // s-maxage is for shared caches
	} {
		t.Run(tc.cacheControl, func(t *testing.T) {
			d := newDocHost(t)
			id := d.url("/c.json")
			d.put("/c.json", clientDoc(id, redirectURI), tc.cacheControl)
			h, clk := cimdHub(t, d)
			b := h.Browser()
			get := func() {
				t.Helper()
				if p := b.Get(authorizeURL(h, id, redirectURI)); !strings.Contains(p.Body, `action="/login"`) {
					t.Fatalf("authorize: %d %s", p.Status, p.Body)
				}
			}
			get()
			clk.Advance(tc.fresh)
			get()
			if n := d.count("/c.json"); n != 1 {
				t.Fatalf("after %s: %d fetches, want 1", tc.fresh, n)
			}
			clk.Advance(tc.stale - tc.fresh)
			get()
			if n := d.count("/c.json"); n != 2 {
				t.Fatalf("after %s: %d fetches, want 2", tc.stale, n)
			}
		})
	}
}

// TestCIMDNeverCachesFailures: a failed fetch and an invalid document are
// not cached — the next request fetches again at once — and a document
// that turns invalid stops its client being used.
func TestCIMDNeverCachesFailures(t *testing.T) {
	d := newDocHost(t)
	id := d.url("/c.json")
	h, clk := cimdHub(t, d)
	b := h.Browser()
	page := func() string { return b.Get(authorizeURL(h, id, redirectURI)).Body }

	d.serve("/c.json", docResp{status: http.StatusInternalServerError, body: []byte("{}")})
	if p := page(); !strings.Contains(p, "could not be identified") || !strings.Contains(p, "500") {
		t.Fatalf("server error page: %s", p)
	}
	bad := clientDoc("https://elsewhere.example/c.json", redirectURI)
	d.put("/c.json", bad, "max-age=3600")
	if p := page(); !strings.Contains(p, "not the URL it was fetched from") {
		t.Fatalf("mismatch page: %s", p)
	}
	d.put("/c.json", clientDoc(id, redirectURI), "max-age=3600")
	if p := page(); !strings.Contains(p, `action="/login"`) {
		t.Fatalf("valid document: %s", p)
	}
	if n := d.count("/c.json"); n != 3 {
		t.Fatalf("%d fetches, want 3 (failures are not cached)", n)
	}
	// Stale; the document now declares a shared secret: refused, and the
	// stored client is not used meanwhile.
	clk.Advance(2 * time.Hour)
	secretDoc := clientDoc(id, redirectURI)
	secretDoc["token_endpoint_auth_method"] = "client_secret_basic"
	d.put("/c.json", secretDoc, "max-age=3600")
	if p := page(); !strings.Contains(p, "shared-secret") {
		t.Fatalf("shared secret page: %s", p)
	}
	if r := h.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {id}}, "", ""); r.status != http.StatusUnauthorized || r.body["error"] != "invalid_client" {
		t.Fatalf("token with an invalid document: %d %v", r.status, r.body)
	}
}

// TestCIMDRefetchWhenRequestDoesNotValidate: a redirect URI the cached
// document does not list makes the hub fetch the document again (the
// client may just have added it), at most once per 30 s; the change is
// audited with the fields that changed.
func TestCIMDRefetchWhenRequestDoesNotValidate(t *testing.T) {
	d := newDocHost(t)
	id := d.url("/c.json")
	const newRedirect = "http://127.0.0.1:9999/new-callback"
	d.put("/c.json", clientDoc(id, redirectURI), "max-age=86400")
	h, clk := cimdHub(t, d)
	b := h.Browser()
	if p := b.Get(authorizeURL(h, id, redirectURI)); !strings.Contains(p.Body, `action="/login"`) {
		t.Fatalf("first: %s", p.Body)
	}
	d.put("/c.json", clientDoc(id, redirectURI, newRedirect), "max-age=86400")
	clk.Advance(time.Minute)
	if p := b.Get(authorizeURL(h, id, newRedirect)); !strings.Contains(p.Body, `action="/login"`) {
		t.Fatalf("added redirect URI: %d %s", p.Status, p.Body)
	}
	if n := d.count("/c.json"); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	evs := auditOf(t, h, audit.ClientUpdated)
	if len(evs) != 1 || evs[0].Details["change"] != audit.ChangeDocument || evs[0].Details["fields"] != "redirect_uris" {
		t.Fatalf("client.updated events = %+v", evs)
	}
	// An unlisted redirect URI: refused; fetched again only once the gap
	// has passed.
	const unlisted = "http://127.0.0.1:9999/evil"
	for i, step := range []struct {
		advance time.Duration
		fetches int
	}{{0, 2}, {10 * time.Second, 2}, {31 * time.Second, 3}, {time.Second, 3}} {
		clk.Advance(step.advance)
		p := b.Get(authorizeURL(h, id, unlisted))
		if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "not listed in the application") || p.Location != nil {
			t.Fatalf("step %d: unlisted redirect URI: %d %s", i, p.Status, p.Body)
		}
		if n := d.count("/c.json"); n != step.fetches {
			t.Fatalf("step %d: %d fetches, want %d", i, n, step.fetches)
		}
	}
	// A re-fetch that fails leaves the fresh document in place: the
	// listed redirect URI still works, without another fetch.
	d.serve("/c.json", docResp{status: http.StatusServiceUnavailable})
	clk.Advance(31 * time.Second)
	if p := b.Get(authorizeURL(h, id, unlisted)); p.Status != http.StatusBadGateway || d.count("/c.json") != 4 {
		t.Fatalf("failed re-fetch: %d (%d fetches) %s", p.Status, d.count("/c.json"), p.Body)
	}
	if p := b.Get(authorizeURL(h, id, newRedirect)); !strings.Contains(p.Body, `action="/login"`) || d.count("/c.json") != 4 {
		t.Fatalf("after a failed re-fetch: %d (%d fetches) %s", p.Status, d.count("/c.json"), p.Body)
	}
	// A removed redirect URI is refused as soon as the document is fetched.
	d.put("/c.json", clientDoc(id, newRedirect), "max-age=86400")
	clk.Advance(25 * time.Hour)
	if p := b.Get(authorizeURL(h, id, redirectURI)); p.Status != http.StatusBadRequest || p.Location != nil {
		t.Fatalf("removed redirect URI: %d %s", p.Status, p.Body)
	}
}

// TestCIMDBlockedDomain: a blocked domain is refused before any fetch:
// a page saying so at /authorize, invalid_client at /token.
func TestCIMDBlockedDomain(t *testing.T) {
	d := newDocHost(t)
	id := d.url("/c.json")
	d.put("/c.json", clientDoc(id, redirectURI), "")
	h, _ := cimdHub(t, d)
	now := time.Now()
	if err := h.Store.PutDomain(context.Background(), &store.Domain{TenantID: store.DefaultTenant, Pattern: "127.0.0.1", Trust: store.DomainBlocked, CreatedAt: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	p := h.Browser().Get(authorizeURL(h, id, redirectURI))
	if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "blocked applications from 127.0.0.1") {
		t.Fatalf("blocked page: %d %s", p.Status, p.Body)
	}
	r := h.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {redirectURI}, "client_id": {id}, "code_verifier": {strings.Repeat("a", 43)}}, "", "")
	if r.status != http.StatusUnauthorized || r.body["error"] != "invalid_client" || !strings.Contains(r.body["error_description"].(string), "blocked") {
		t.Fatalf("token: %d %v", r.status, r.body)
	}
	if n := d.count("/c.json"); n != 0 {
		t.Fatalf("%d fetches of a blocked domain's document", n)
	}
}

// TestCIMDTextPlain: a document served as text/plain is refused unless the
// domain allows it.
func TestCIMDTextPlain(t *testing.T) {
	d := newDocHost(t)
	id := d.url("/c.json")
	b, _ := json.Marshal(clientDoc(id, redirectURI))
	d.serve("/c.json", docResp{body: b, contentType: "text/plain; charset=utf-8"})
	h, clk := cimdHub(t, d)
	br := h.Browser()
	if p := br.Get(authorizeURL(h, id, redirectURI)); !strings.Contains(p.Body, "not JSON") {
		t.Fatalf("text/plain: %d %s", p.Status, p.Body)
	}
	now := time.Now()
	if err := h.Store.PutDomain(context.Background(), &store.Domain{TenantID: store.DefaultTenant, Pattern: "127.0.0.1", Trust: store.DomainAllowed, AllowTextPlain: true, CreatedAt: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(3 * time.Second) // past the domain list's short cache
	if p := br.Get(authorizeURL(h, id, redirectURI)); !strings.Contains(p.Body, `action="/login"`) {
		t.Fatalf("text/plain allowed: %d %s", p.Status, p.Body)
	}
}

// TestCIMDDisabled: with documents off, an https client_id is an unknown
// client and the metadata does not advertise them.
func TestCIMDDisabled(t *testing.T) {
	d := newDocHost(t)
	id := d.url("/c.json")
	d.put("/c.json", clientDoc(id, redirectURI), "")
	h, _ := cimdHub(t, d, func(c *server.Config) { c.DisableCIMD = true })
	if p := h.Browser().Get(authorizeURL(h, id, redirectURI)); !strings.Contains(p.Body, "Unknown application") || d.count("/c.json") != 0 {
		t.Fatalf("disabled: %d %s", p.Status, p.Body)
	}
	if m := getJSON(t, h.URL+"/.well-known/oauth-authorization-server"); m["client_id_metadata_document_supported"] != nil {
		t.Fatalf("metadata advertises CIMD while it is off: %v", m["client_id_metadata_document_supported"])
	}
}

func getJSON(t *testing.T, u string) map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMetadataIssuerWithPath: an issuer with a path serves the same
// metadata at the three URLs MCP clients try (RFC 8414 §3.1 insertion,
// OpenID Connect Discovery appending), each advertising CIMD.
func TestMetadataIssuerWithPath(t *testing.T) {
	var issuer string
	h := newHub(t, func(c *server.Config) { c.Issuer += "/tenant1"; issuer = c.Issuer })
	origin := strings.TrimSuffix(issuer, "/tenant1")
	for _, p := range []string{
		"/.well-known/oauth-authorization-server/tenant1",
		"/.well-known/openid-configuration/tenant1",
		"/tenant1/.well-known/openid-configuration",
		"/.well-known/oauth-authorization-server",
	} {
		m := getJSON(t, origin+p)
		if m["issuer"] != issuer || m["client_id_metadata_document_supported"] != true || m["authorization_endpoint"] != issuer+"/authorize" {
			t.Fatalf("%s: issuer %v, cimd %v", p, m["issuer"], m["client_id_metadata_document_supported"])
		}
	}
	_ = h
}

// TestCIMDPrivateKeyJWT: a document client with private_key_jwt is
// confidential and must authenticate with an assertion its keys verify:
// keys at a jwks_uri are fetched through the hub's fetcher and fetched
// again for an unknown kid; inline keys that no longer verify make the hub
// fetch the document again (the client rotated its keys).
func TestCIMDPrivateKeyJWT(t *testing.T) {
	d := newDocHost(t)
	h, clk := cimdHub(t, d)
	k1, k2 := newSigningKey(t, "k1"), newSigningKey(t, "k2")

	t.Run("jwks_uri", func(t *testing.T) {
		id := d.url("/jwt-client.json")
		doc := clientDoc(id, redirectURI)
		doc["token_endpoint_auth_method"] = "private_key_jwt"
		doc["jwks_uri"] = d.url("/jwks.json")
		d.put("/jwt-client.json", doc, "max-age=86400")
		d.put("/jwks.json", jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k1.public()}}, "max-age=86400")
		b := h.Browser()
		code := authorizeCode(t, h, b, id)
		// Without an assertion: refused, the code is not consumed.
		if r := h.post("/token", codeForm(h, code, id), "", ""); r.status != http.StatusUnauthorized {
			t.Fatalf("no assertion: %d %v", r.status, r.body)
		}
		form := codeForm(h, code, id)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", k1.assertion(t, id, h.URL, clk.Now()))
		if r := h.post("/token", form, "", ""); r.status != http.StatusOK {
			t.Fatalf("assertion by k1: %d %v", r.status, r.body)
		}
		// The client rotates to k2 at its jwks_uri.
		d.put("/jwks.json", jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k2.public()}}, "max-age=86400")
		clk.Advance(time.Minute)
		form = codeForm(h, authorizeCode(t, h, b, id), id)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", k2.assertion(t, id, h.URL, clk.Now()))
		if r := h.post("/token", form, "", ""); r.status != http.StatusOK {
			t.Fatalf("assertion by rotated k2: %d %v", r.status, r.body)
		}
		if n := d.count("/jwks.json"); n != 2 {
			t.Fatalf("jwks fetched %d times, want 2", n)
		}
	})

	t.Run("inline jwks", func(t *testing.T) {
		id := d.url("/inline-client.json")
		doc := clientDoc(id, redirectURI)
		doc["token_endpoint_auth_method"] = "private_key_jwt"
		doc["jwks"] = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k1.public()}}
		d.put("/inline-client.json", doc, "max-age=86400")
		b := h.Browser()
		code := authorizeCode(t, h, b, id)
		doc["jwks"] = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k2.public()}}
		d.put("/inline-client.json", doc, "max-age=86400")
		clk.Advance(40 * time.Second) // past the 30 s refetch gap, within the code's minute
		form := codeForm(h, code, id)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", k2.assertion(t, id, h.URL, clk.Now()))
		if r := h.post("/token", form, "", ""); r.status != http.StatusOK {
			t.Fatalf("assertion by k2 after the document rotated: %d %v", r.status, r.body)
		}
		if n := d.count("/inline-client.json"); n != 2 {
			t.Fatalf("document fetched %d times, want 2", n)
		}
		evs := auditOf(t, h, audit.ClientUpdated)
		if len(evs) == 0 || evs[len(evs)-1].Details["fields"] != "jwks" {
			t.Fatalf("client.updated events = %+v", evs)
		}
	})
}

type signingKey struct {
	kid string
	key *ecdsa.PrivateKey
}

func newSigningKey(t *testing.T, kid string) *signingKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signingKey{kid: kid, key: k}
}

func (k *signingKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &k.key.PublicKey, KeyID: k.kid, Algorithm: "ES256", Use: "sig"}
}

func (k *signingKey) assertion(t *testing.T, id, aud string, now time.Time) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k.key, KeyID: k.kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jti := make([]byte, 12)
	_, _ = rand.Read(jti)
	a, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: id, Subject: id, Audience: jwt.Audience{aud}, ID: string(jsonHex(jti)), Expiry: jwt.NewNumericDate(now.Add(time.Minute))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func jsonHex(b []byte) []byte {
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, hex[c>>4], hex[c&15])
	}
	return out
}

const testVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk" // RFC 7636 appendix B

// authorizeCode runs the browser part of the flow for client id and
// returns the code.
func authorizeCode(t *testing.T, h *hub, b *servertest.Browser, id string) string {
	t.Helper()
	back := b.Authorize(authorizeURL(h, id, redirectURI), []string{"notes.read"})
	code := back.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %s", back)
	}
	return code
}

func codeForm(h *hub, code, id string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
		"code_verifier": {testVerifier}, "client_id": {id}, "resource": {h.Resource}}
}

// TestJWKSURIClient: an ordinary registered client with a jwks_uri (which
// the hub refused to use before it had a safe fetcher) authenticates with
// private_key_jwt; its keys come through the hub's fetcher.
func TestJWKSURIClient(t *testing.T) {
	d := newDocHost(t)
	h, clk := cimdHub(t, d)
	k := newSigningKey(t, "k1")
	d.put("/keys.json", jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public()}}, "max-age=600")
	h.AddClient(&store.Client{ID: "remote-keys", TokenEndpointAuthMethod: "private_key_jwt", JWKSURI: d.named("keys.example.com", "/keys.json"),
		GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}}
	form.Set("client_assertion", k.assertion(t, "remote-keys", h.URL, clk.Now()))
	if r := h.post("/token", form, "", ""); r.status != http.StatusOK {
		t.Fatalf("assertion verified with keys at jwks_uri: %d %v", r.status, r.body)
	}
	other := newSigningKey(t, "k1")
	form.Set("client_assertion", other.assertion(t, "remote-keys", h.URL, clk.Now()))
	if r := h.post("/token", form, "", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("assertion by a key not at jwks_uri: %d %v", r.status, r.body)
	}
	if n := d.count("/keys.json"); n != 1 {
		t.Fatalf("key set fetched %d times, want 1 (cached)", n)
	}
}

// TestCIMDConcurrentFirstSight: requests that arrive together for a
// document not seen before wait for one fetch and one registration.
func TestCIMDConcurrentFirstSight(t *testing.T) {
	d := newDocHost(t)
	id := d.url("/c.json")
	d.put("/c.json", clientDoc(id, redirectURI), "max-age=600")
	h, _ := cimdHub(t, d)
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	for i := range statuses {
		wg.Go(func() { statuses[i] = h.Browser().Get(authorizeURL(h, id, redirectURI)).Status })
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusOK {
			t.Fatalf("request %d: %d", i, st)
		}
	}
	if n := d.count("/c.json"); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	if evs := auditOf(t, h, audit.ClientRegistered); len(evs) != 1 {
		t.Fatalf("%d client.registered events, want 1", len(evs))
	}
}

// TestCIMDRefusesPrivateAddresses: without the development allowance the
// hub's fetcher refuses documents on loopback and private addresses —
// literal or behind a name — with a page saying so, and no connection is
// ever attempted.
func TestCIMDRefusesPrivateAddresses(t *testing.T) {
	d := newDocHost(t)
	var mu sync.Mutex
	var dialed []string
	pool := d.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	f := fetch.New(fetch.Config{
		TLS: &tls.Config{RootCAs: pool},
		Resolve: func(_ context.Context, host string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("10.1.2.3")}, nil
		},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dialed = append(dialed, addr)
			mu.Unlock()
			return nil, &net.OpError{Op: "dial", Err: net.UnknownNetworkError("refused by the test")}
		},
	})
	h := newHub(t, func(c *server.Config) { c.Fetcher = f })
	for _, id := range []string{
		d.url("/c.json"), // the live document on 127.0.0.1
		"https://10.0.0.1/c.json",
		"https://[::1]/c.json",
		"https://169.254.169.254/latest/meta-data.json",
		"https://[::ffff:192.168.1.1]/c.json",
		"https://internal.example.com/c.json", // resolves to 10.1.2.3
	} {
		p := h.Browser().Get(authorizeURL(h, id, redirectURI))
		// One phrase for every unreachable host: the page must not tell a
		// private address from a missing name or a closed port.
		if p.Status != http.StatusBadGateway || !strings.Contains(p.Body, "could not be reached over https at a public address") ||
			strings.Contains(p.Body, "private") || strings.Contains(p.Body, "RFC") {
			t.Errorf("%s: %d %s", id, p.Status, p.Body)
		}
	}
	if len(dialed) != 0 || d.count("/c.json") != 0 {
		t.Fatalf("connections attempted: %v, document fetched %d times", dialed, d.count("/c.json"))
	}
}

// TestCIMDFirstSightThrottled: documents the hub has never seen register
// clients, so their first sight counts against the registration limits of
// the request's address: one address cannot make the hub fetch and store
// endless URLs of its own host, the refused request fetches nothing, a
// known document keeps working, and the limit refills as time passes.
func TestCIMDFirstSightThrottled(t *testing.T) {
	d := newDocHost(t)
	for _, p := range []string{"/a.json", "/b.json", "/c.json"} {
		d.put(p, clientDoc(d.url(p), redirectURI), "max-age=3600")
	}
	h, clk := cimdHub(t, d, func(c *server.Config) {
		c.Registration = &server.RegistrationConfig{
			PerIP: server.LoginLimit{PerMinute: 1, Burst: 2},
			Total: server.LoginLimit{PerMinute: 1000, Burst: 1000},
		}
	})
	b := h.Browser()
	for _, p := range []string{"/a.json", "/b.json"} {
		if pg := b.Get(authorizeURL(h, d.url(p), redirectURI)); pg.Status == http.StatusTooManyRequests {
			t.Fatalf("%s throttled within the burst", p)
		}
	}
	pg := b.Get(authorizeURL(h, d.url("/c.json"), redirectURI))
	if pg.Status != http.StatusTooManyRequests || !strings.Contains(pg.Body, "Too many new applications") {
		t.Fatalf("third new document: %d %s", pg.Status, pg.Body)
	}
	if n := d.count("/c.json"); n != 0 {
		t.Fatalf("the refused first sight fetched %d times", n)
	}
	if _, err := h.Store.GetClient(context.Background(), store.DefaultTenant, d.url("/c.json")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused document registered: %v", err)
	}
	// A document the hub knows is not a registration.
	if pg := b.Get(authorizeURL(h, d.url("/a.json"), redirectURI)); pg.Status == http.StatusTooManyRequests {
		t.Fatal("a known document was throttled")
	}
	clk.Advance(2 * time.Minute)
	if pg := b.Get(authorizeURL(h, d.url("/c.json"), redirectURI)); pg.Status == http.StatusTooManyRequests {
		t.Fatal("still throttled after the limit refilled")
	}
	if n := d.count("/c.json"); n != 1 {
		t.Fatalf("fetches of /c.json after the refill: %d, want 1", n)
	}
}

// TestCIMDBlockedDomainEndsIntrospection: blocking a domain refuses its
// clients at /authorize and /token at once, and the access tokens they
// already hold stop introspecting as active for the resource server.
func TestCIMDBlockedDomainEndsIntrospection(t *testing.T) {
	d := newDocHost(t)
	id := d.url("/oauth/client.json")
	d.put("/oauth/client.json", clientDoc(id, redirectURI), "max-age=3600")
	h, _ := cimdHub(t, d)
	rsSecret := h.AddClient(&store.Client{ID: "notes-mcp", Name: "Notes MCP server", GrantTypes: []string{"client_credentials"}})
	h.LinkResourceServer("notes-mcp")
	tok, err := h.codeFlow(h.Browser(), h.oauth2Config(id, "", "notes.read"), []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.introspect(tok.AccessToken, "notes-mcp", rsSecret); got["active"] != true {
		t.Fatalf("before blocking: %v", got)
	}
	now := time.Now()
	if err := h.Store.PutDomain(context.Background(), &store.Domain{TenantID: store.DefaultTenant, Pattern: "127.0.0.1", Trust: store.DomainBlocked, CreatedAt: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	active := true
	for deadline := time.Now().Add(5 * time.Second); active && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		active = h.introspect(tok.AccessToken, "notes-mcp", rsSecret)["active"] == true
	}
	if active {
		t.Fatal("a blocked domain's access token still introspects as active")
	}
}
