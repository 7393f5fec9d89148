package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	crewsaml "github.com/crewjam/saml"

	"github.com/agentid/agentid/internal/connectors"
	"github.com/agentid/agentid/internal/store"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store/sqlite"
)

func decodeRedirectRequest(t *testing.T, s string) *crewsaml.AuthnRequest {
	t.Helper()
	deflated, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(deflated)))
	if err != nil {
		t.Fatal(err)
	}
	var req crewsaml.AuthnRequest
	if err := xml.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	return &req
}

// spLookup serves our metadata to the library's identity provider.
type spLookup struct{ md *crewsaml.EntityDescriptor }

func (s spLookup) GetServiceProvider(_ *http.Request, id string) (*crewsaml.EntityDescriptor, error) {
	if id != s.md.EntityID {
		return nil, errors.New("unknown service provider")
	}
	return s.md, nil
}

// TestInteropLibraryIdP signs in through the library's own identity
// provider: our AuthnRequest (HTTP-Redirect) is validated by it against
// our metadata, and its Response (assertion and Response both signed) is
// accepted by Finish.
func TestInteropLibraryIdP(t *testing.T) {
	clock := &testClock{t: t0}
	keys := newTestIdP(t, "idp", "", t0)
	idpMeta, _ := url.Parse("https://idp.example.test/metadata")
	sso, _ := url.Parse(testSSOURL)
	idp := &crewsaml.IdentityProvider{
		Key: keys.key, Certificate: keys.cert, MetadataURL: *idpMeta, SSOURL: *sso,
		Clock: dsig.NewFakeClock(funcClock{now: clock.Now}),
	}
	mdXML, err := xml.Marshal(idp.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{
		ConnectorID: "corp", ACSURL: testACS, MetadataURL: testMetaURL, IdPMetadataXML: mdXML,
		Mapping: store.ClaimMapping{Groups: "eduPersonAffiliation"},
	}, Options{Replay: &memReplay{}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	spXML, err := p.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	var spMD crewsaml.EntityDescriptor
	if err := xml.Unmarshal(spXML, &spMD); err != nil {
		t.Fatal(err)
	}
	idp.ServiceProviderProvider = spLookup{&spMD}

	redirect, a, err := p.Begin("/")
	if err != nil {
		t.Fatal(err)
	}
	req, err := crewsaml.NewIdpAuthnRequest(idp, httptest.NewRequest(http.MethodGet, redirect, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := req.Validate(); err != nil {
		t.Fatalf("the identity provider refuses our AuthnRequest: %v", err)
	}
	clock.Advance(3 * time.Second)
	req.Now = clock.Now()
	if err := (crewsaml.DefaultAssertionMaker{}).MakeAssertion(req, &crewsaml.Session{
		ID: "s1", CreateTime: clock.Now(), ExpireTime: clock.Now().Add(time.Hour), Index: "i1",
		NameID: "alice-persistent-id", NameIDFormat: string(crewsaml.PersistentNameIDFormat),
		UserName: "alice", UserEmail: "alice@corp.example", UserCommonName: "Alice Liddell",
		Groups: []string{"eng", "eng-oncall"},
	}); err != nil {
		t.Fatal(err)
	}
	form, err := req.PostBinding()
	if err != nil {
		t.Fatal(err)
	}
	if form.URL != testACS || form.RelayState != a.RelayState {
		t.Fatalf("form to %s with RelayState %q", form.URL, form.RelayState)
	}
	clock.Advance(2 * time.Second)
	id, err := p.Finish(context.Background(), a, form.SAMLResponse, form.RelayState)
	if err != nil {
		t.Fatalf("Finish: %v (%s)", err, cause(err))
	}
	if id.Subject != "alice-persistent-id" || id.Email != "alice@corp.example" || id.Name != "Alice Liddell" ||
		id.Username != "alice@corp.example" || strings.Join(id.Groups, ",") != "eng,eng-oncall" || id.SessionIndex != "i1" {
		t.Fatalf("identity = %+v", id)
	}
}

// TestReplayAcrossReplicas: two hubs on one database share the record of
// used assertions (the store's single-use table), so a Response accepted by
// one is refused by the other.
func TestReplayAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "agentid.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: t0}
	idp := newTestIdP(t, "idp", testIdPEntity, t0)
	newHub := func() *Provider {
		p, err := New(Config{ConnectorID: "corp", ACSURL: testACS, MetadataURL: testMetaURL, IdPMetadataXML: idp.metadata(t)},
			Options{Replay: st, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	hub1, hub2 := newHub(), newHub()
	_, a, err := hub1.Begin("/")
	if err != nil {
		t.Fatal(err)
	}
	o := issue{now: clock.Now(), requestID: a.RequestID, signAssertion: true}
	resp := encode(t, idp.response(t, o, idp.assertion(t, o)))
	if _, err := hub1.Finish(ctx, a, resp, a.RelayState); err != nil {
		t.Fatalf("hub1: %v (%s)", err, cause(err))
	}
	_, err = hub2.Finish(ctx, a, resp, a.RelayState)
	var e *connectors.Error
	if !errors.As(err, &e) || e.Reason != ReasonReplay {
		t.Fatalf("hub2: err = %v (%s), want reason %s", err, cause(err), ReasonReplay)
	}
}

// TestAttemptSeal: a sealed attempt opens only for its connector, and its
// cookie reaches the provider's cross-site POST.
func TestAttemptSeal(t *testing.T) {
	kek, err := keyring.GenerateKEK(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.NewKeyring(kek)
	if err != nil {
		t.Fatal(err)
	}
	a := &Attempt{ConnectorID: "corp", RequestID: "id-1", RelayState: "rs", ReturnTo: "/consent", Expires: 42}
	sealed, err := SealAttempt(kr, nil, a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenAttempt(kr, sealed, "corp")
	if err != nil || *got != *a {
		t.Fatalf("opened %+v, %v", got, err)
	}
	if _, err := OpenAttempt(kr, sealed, "other"); err == nil {
		t.Fatal("opened as another connector's attempt")
	}
	if _, err := OpenAttempt(kr, sealed[:len(sealed)-2]+"AA", "corp"); err == nil {
		t.Fatal("opened a tampered attempt")
	}
	c := AttemptCookie(a, sealed, "/login/saml/corp/", t0)
	if c.SameSite != http.SameSiteNoneMode || !c.Secure || !c.HttpOnly || c.Name != AttemptCookieName("rs") || c.Name == AttemptCookieName("rs2") {
		t.Fatalf("cookie = %+v", c)
	}
}

// TestMetadata: our metadata names the entity id, the ACS over HTTP-POST
// only, wants signed assertions and offers no key (requests unsigned, no
// encryption).
func TestMetadata(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.EntityID = "urn:agentid:corp" })
	b, err := f.p.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	var md crewsaml.EntityDescriptor
	if err := xml.Unmarshal(b, &md); err != nil {
		t.Fatal(err)
	}
	if md.EntityID != "urn:agentid:corp" || len(md.SPSSODescriptors) != 1 {
		t.Fatalf("metadata = %s", b)
	}
	sp := md.SPSSODescriptors[0]
	if sp.WantAssertionsSigned == nil || !*sp.WantAssertionsSigned || len(sp.KeyDescriptors) != 0 {
		t.Fatalf("metadata = %s", b)
	}
	if len(sp.AssertionConsumerServices) != 1 || sp.AssertionConsumerServices[0].Location != testACS ||
		sp.AssertionConsumerServices[0].Binding != crewsaml.HTTPPostBinding {
		t.Fatalf("ACS = %+v", sp.AssertionConsumerServices)
	}
}

// TestNewConfig: what a connector's configuration must hold.
func TestNewConfig(t *testing.T) {
	idp := newTestIdP(t, "idp", testIdPEntity, t0)
	good := Config{ConnectorID: "corp", ACSURL: testACS, MetadataURL: testMetaURL, IdPMetadataXML: idp.metadata(t)}
	noCert := strings.Replace(string(idp.metadata(t)), base64.StdEncoding.EncodeToString(idp.cert.Raw), "", 1)
	for name, tc := range map[string]struct {
		edit func(*Config)
		ok   bool
	}{
		"metadata": {func(*Config) {}, true},
		"SSO URL and cert": {func(c *Config) {
			c.IdPMetadataXML, c.IdPEntityID, c.IdPSSOURL, c.IdPCertificatePEM = nil, testIdPEntity, testSSOURL, idp.certPEM()
		}, true},
		"metadata, pinned cert":  {func(c *Config) { c.IdPCertificatePEM = idp.certPEM() }, true},
		"SSO URL without cert":   {func(c *Config) { c.IdPMetadataXML, c.IdPEntityID, c.IdPSSOURL = nil, testIdPEntity, testSSOURL }, false},
		"metadata and SSO URL":   {func(c *Config) { c.IdPSSOURL = testSSOURL }, false},
		"metadata without cert":  {func(c *Config) { c.IdPMetadataXML = []byte(noCert) }, false},
		"not metadata":           {func(c *Config) { c.IdPMetadataXML = []byte("<html/>") }, false},
		"relative ACS":           {func(c *Config) { c.ACSURL = "/login/saml/corp/acs" }, false},
		"no connector id":        {func(c *Config) { c.ConnectorID = "" }, false},
		"skew too large":         {func(c *Config) { c.ClockSkew = MaxClockSkew + time.Second }, false},
		"cert not PEM":           {func(c *Config) { c.IdPCertificatePEM = []byte("MIIB") }, false},
		"EntitiesDescriptor":     {func(c *Config) { c.IdPMetadataXML = entities(t, idp) }, true},
		"EntitiesDescriptor, id": {func(c *Config) { c.IdPMetadataXML, c.IdPEntityID = entities(t, idp), "https://nope.example.test" }, false},
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			_, err := New(c, Options{Replay: &memReplay{}})
			if (err == nil) != tc.ok {
				t.Fatalf("New: %v, want ok=%v", err, tc.ok)
			}
			aboutMetadata := strings.Contains(name, "metadata") || strings.HasPrefix(name, "EntitiesDescriptor")
			if !aboutMetadata || len(c.IdPMetadataXML) == 0 || c.IdPSSOURL != "" || len(c.IdPCertificatePEM) > 0 {
				return
			}
			// What the CLI and the config file check agrees with New.
			id, err := CheckIdPMetadata(c.IdPMetadataXML, c.IdPEntityID)
			if (err == nil) != tc.ok || (err == nil && id != testIdPEntity) {
				t.Fatalf("CheckIdPMetadata: %q, %v, want ok=%v", id, err, tc.ok)
			}
		})
	}
}

func entities(t *testing.T, idp *testIdP) []byte {
	return []byte(`<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` +
		strings.TrimPrefix(string(idp.metadata(t)), xml.Header) + `</EntitiesDescriptor>`)
}

// TestPinnedCertificate: with a pinned certificate, the metadata's
// certificates are not trusted.
func TestPinnedCertificate(t *testing.T) {
	pinned := newTestIdP(t, "other", testIdPEntity, t0)
	f := newFixture(t, func(c *Config) { c.IdPCertificatePEM = pinned.certPEM() })
	a := f.begin(t)
	o := issue{now: f.clock.Now(), requestID: a.RequestID, signAssertion: true}
	if _, err := f.p.Finish(context.Background(), a, encode(t, f.idp.response(t, o, f.idp.assertion(t, o))), a.RelayState); !errors.Is(err, crewsaml.ErrInvalidSignature) {
		t.Fatalf("signed with the metadata's key: err = %v (%s)", err, cause(err))
	}
	o.signer = pinned
	if _, err := f.p.Finish(context.Background(), a, encode(t, f.idp.response(t, o, f.idp.assertion(t, o))), a.RelayState); err != nil {
		t.Fatalf("signed with the pinned key: %v (%s)", err, cause(err))
	}
}
