package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	crewsaml "github.com/crewjam/saml"
	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// samlIdP is the SAML library's own identity provider on an httptest
// server, signing in whoever the test says.
type samlIdP struct {
	*crewsaml.IdentityProvider
	srv *httptest.Server
	mu  sync.Mutex
	who *crewsaml.Session
}

func (p *samlIdP) GetSession(http.ResponseWriter, *http.Request, *crewsaml.IdpAuthnRequest) *crewsaml.Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := *p.who
	s.CreateTime, s.ExpireTime = time.Now(), time.Now().Add(time.Hour)
	return &s
}

func (p *samlIdP) signIn(s *crewsaml.Session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.who = s
}

// spMetadata fetches a hub connector's service-provider metadata, as an
// identity provider's administrator does.
type spMetadata struct{ url string }

func (m spMetadata) GetServiceProvider(_ *http.Request, id string) (*crewsaml.EntityDescriptor, error) {
	resp, err := http.Get(m.url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var ed crewsaml.EntityDescriptor
	if err := xml.Unmarshal(b, &ed); err != nil {
		return nil, err
	}
	if ed.EntityID != id {
		return nil, crewsaml.ErrUnknownServiceProvider
	}
	return &ed, nil
}

func newSAMLIdP(t *testing.T, spMetadataURL string) *samlIdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "saml-idp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &samlIdP{}
	mux := http.NewServeMux()
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	meta, _ := url.Parse(p.srv.URL + "/metadata")
	sso, _ := url.Parse(p.srv.URL + "/sso")
	p.IdentityProvider = &crewsaml.IdentityProvider{Key: key, Certificate: cert, MetadataURL: *meta, SSOURL: *sso,
		SessionProvider: p, ServiceProviderProvider: spMetadata{spMetadataURL}}
	mux.HandleFunc("/sso", p.ServeSSO)
	return p
}

var (
	samlFormRe  = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
	samlInputRe = regexp.MustCompile(`name="(SAMLResponse|RelayState)" value="([^"]*)"`)
)

// postSAMLForm does what the identity provider's auto-submitting page
// does in a browser: a cross-site POST of the form to the hub's ACS.
func postSAMLForm(t *testing.T, b *servertest.Browser, idpPage *servertest.Page, idpOrigin string) (*servertest.Page, url.Values) {
	t.Helper()
	m := samlFormRe.FindStringSubmatch(idpPage.Body)
	if m == nil {
		t.Fatalf("identity provider page (%d) has no form:\n%s", idpPage.Status, idpPage.Body)
	}
	form := url.Values{}
	for _, in := range samlInputRe.FindAllStringSubmatch(idpPage.Body, -1) {
		form.Set(in[1], html.UnescapeString(in[2]))
	}
	return postACS(t, b, html.UnescapeString(m[1]), form, idpOrigin), form
}

func postACS(t *testing.T, b *servertest.Browser, acs string, form url.Values, origin string) *servertest.Page {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, acs, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	return b.Do(req)
}

// addSAMLConnector stores the SAML connector samlcorp ("Corp SAML") to a
// new identity provider of the library, which signs alice in with the
// groups eng and eng-oncall.
func addSAMLConnector(t *testing.T, h *connectorHub) (*samlIdP, *crewsaml.Session) {
	t.Helper()
	idp := newSAMLIdP(t, h.URL+"/login/saml/samlcorp/metadata")
	mdXML, err := xml.Marshal(idp.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	c := &store.Connector{TenantID: store.DefaultTenant, ID: "samlcorp", Type: store.ConnectorSAML, Name: "Corp SAML",
		Issuer: idp.MetadataURL.String(), SAMLMetadata: string(mdXML), EmailDomains: []string{"saml.example"},
		Claims: store.ClaimMapping{Groups: "eduPersonAffiliation", Attributes: map[string]string{"login": "uid"}}}
	if err := h.Store.CreateConnector(context.Background(), c, nil); err != nil {
		t.Fatal(err)
	}
	alice := &crewsaml.Session{ID: "s1", Index: "i1", NameID: "alice-0001", NameIDFormat: string(crewsaml.PersistentNameIDFormat),
		UserName: "alice", UserEmail: "alice@saml.example", UserCommonName: "Alice SAML", Groups: []string{"eng", "eng-oncall"}}
	idp.signIn(alice)
	return idp, alice
}

// TestSAMLConnectorSignIn: through the login page's SAML button the
// person signs in at a SAML identity provider (the library's, which reads
// our AuthnRequest and our metadata), whose page posts the signed
// Response cross-site to the ACS; the first sign-in provisions them in
// the connector's tenant with the groups of the assertion, the agent's
// scopes follow a policy on a group, a replayed Response is refused, an
// attempt that outlived its time (moving clock) is refused, and when the
// provider drops the group the next sign-in takes it away.
func TestSAMLConnectorSignIn(t *testing.T) {
	h := newConnectorHub(t)
	idp, alice := addSAMLConnector(t, h)

	h.oncallPolicy(t)
	secret := h.AddClient(&store.Client{ID: "agent-1", Name: "Notes Agent", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
	conf := h.oauth2Config("agent-1", secret, "openid", "notes.read", "notes.write")

	// The SP metadata the provider's administrator loads.
	resp, err := http.Get(h.URL + "/login/saml/samlcorp/metadata")
	if err != nil {
		t.Fatal(err)
	}
	spMD, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/samlmetadata+xml" ||
		!strings.Contains(string(spMD), `Location="`+h.URL+`/login/saml/samlcorp/acs"`) {
		t.Fatalf("SP metadata %d %s:\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), spMD)
	}

	b := h.browser(nil...)
	b.Client().CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), h.URL) || strings.HasPrefix(req.URL.String(), idp.srv.URL) {
			return nil
		}
		return http.ErrUseLastResponse
	}
	start := func(prompt string) (*flow, *servertest.Page) {
		f := &flow{h: h.hub, b: b, conf: conf, verifier: oauth2.GenerateVerifier()}
		opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.verifier), oauth2.SetAuthURLParam("resource", h.Resource)}
		if prompt != "" {
			opts = append(opts, oauth2.SetAuthURLParam("prompt", prompt))
		}
		login := b.Get(conf.AuthCodeURL("st", opts...))
		if !strings.Contains(login.Body, "Sign in with <bdi>Corp SAML</bdi>") {
			t.Fatalf("login page lacks the SAML button:\n%s", login.Body)
		}
		return f, h.via(t, b, login, "samlcorp") // the provider's auto-posting page
	}

	f, idpPage := start("")
	f.page, _ = postSAMLForm(t, b, idpPage, idp.srv.URL)
	if !strings.Contains(f.page.Body, `action="/authorize/decision"`) {
		t.Fatalf("after the ACS: %d %s\n%s", f.page.Status, f.page.URL, f.page.Body)
	}
	if !strings.Contains(f.page.Body, `id="via">through <bdi>Corp SAML</bdi>`) {
		t.Fatalf("consent page does not name the connector:\n%s", f.page.Body)
	}
	if got := servertest.Offered(f.page.Body); !slices.Equal(got, []string{"notes.read", "notes.write"}) {
		t.Fatalf("offered %v with eng-oncall", got)
	}
	u := h.user(t, store.DefaultTenant, "alice@saml.example")
	if u.ConnectorID != "samlcorp" || u.ExternalSubject != "alice-0001" || u.Email != "alice@saml.example" || u.EmailVerified ||
		u.Name != "Alice SAML" || !slices.Equal(u.Groups, []string{"eng", "eng-oncall"}) || u.Attributes["login"] != "alice" || u.PasswordHash != "" {
		t.Fatalf("provisioned user %+v", u)
	}
	tok := f.finish(f.decide("allow", []string{"notes.read", "notes.write"}, ""))
	if tok.Extra("scope") != "openid notes.read notes.write" {
		t.Fatalf("token scope = %v", tok.Extra("scope"))
	}
	if evs := h.auditEvents(audit.UserSignedIn); len(evs) != 1 || evs[0].UserID != u.ID || evs[0].Details["connector"] != "samlcorp" {
		t.Fatalf("user.signed_in events %+v", evs)
	}

	// A captured Response posted again, with the attempt cookie still in
	// the browser: the attempt is used up.
	_, idpPage = start("login consent")
	page, form := postSAMLForm(t, b, idpPage, idp.srv.URL)
	if !strings.Contains(page.Body, `action="/authorize/decision"`) {
		t.Fatalf("second sign-in: %d\n%s", page.Status, page.Body)
	}
	acs := h.URL + "/login/saml/samlcorp/acs"
	if p := postACS(t, b, acs, form, idp.srv.URL); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Sign-in") {
		t.Fatalf("replayed Response: %d\n%s", p.Status, p.Body)
	}
	// A fresh attempt carrying the old Response: it answers another request.
	_, idpPage = start("login")
	m := samlInputRe.FindAllStringSubmatch(idpPage.Body, -1)
	fresh := url.Values{}
	for _, in := range m {
		fresh.Set(in[1], html.UnescapeString(in[2]))
	}
	fresh.Set("SAMLResponse", form.Get("SAMLResponse"))
	if p := postACS(t, b, acs, fresh, idp.srv.URL); p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "Corp SAML: ") {
		t.Fatalf("old Response in a new attempt: %d\n%s", p.Status, p.Body)
	}
	// The clock moves past the attempt's lifetime before the provider answers.
	_, idpPage = start("login")
	h.clock.Advance(11 * time.Minute)
	if p, _ := postSAMLForm(t, b, idpPage, idp.srv.URL); p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "took too long") {
		t.Fatalf("expired attempt: %d\n%s", p.Status, p.Body)
	}
	h.clock.Advance(-11 * time.Minute)

	// Upstream, alice leaves eng-oncall; her next sign-in takes the group
	// away and the policy answers differently.
	less := *alice
	less.Groups = []string{"eng"}
	idp.signIn(&less)
	f, idpPage = start("login consent")
	f.page, _ = postSAMLForm(t, b, idpPage, idp.srv.URL)
	if again := h.user(t, store.DefaultTenant, "alice@saml.example"); again.ID != u.ID || !slices.Equal(again.Groups, []string{"eng"}) {
		t.Fatalf("user after the later sign-in %+v", again)
	}
	if got := servertest.Offered(f.page.Body); !slices.Equal(got, []string{"notes.read"}) {
		t.Fatalf("offered %v without eng-oncall", got)
	}

	// The OIDC path of a SAML connector leads to its SAML path; an OIDC
	// connector has no SAML path.
	b.Client().CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if p := b.Get(h.URL + "/login/connectors/samlcorp?return_to=/account"); p.Location == nil || p.Location.Path != "/login/saml/samlcorp" {
		t.Fatalf("/login/connectors/samlcorp: %d %v", p.Status, p.Location)
	}
	if p := b.Get(h.URL + "/login/saml/corp"); p.Status != http.StatusNotFound {
		t.Fatalf("/login/saml/corp (an OIDC connector): %d", p.Status)
	}
}
