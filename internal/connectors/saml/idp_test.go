package saml

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewsaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/agentid/agentid/internal/store"
)

// This file is the in-test identity provider: a key and certificate made
// in the test, and Responses built and signed exactly as a test case asks
// (assertion signed, Response signed, both or neither).

const (
	testIdPEntity = "https://idp.example.test/saml"
	testSSOURL    = "https://idp.example.test/sso"
	testACS       = "https://hub.example.test/login/saml/corp/acs"
	testMetaURL   = "https://hub.example.test/login/saml/corp/metadata"
)

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// memReplay is store.Store's UseJTI contract in memory.
type memReplay struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (r *memReplay) UseJTI(_ context.Context, key, jti string, exp, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]time.Time{}
	}
	k := key + "\x00" + jti
	if e, ok := r.m[k]; ok && now.Before(e) {
		return store.ErrConflict
	}
	r.m[k] = exp
	return nil
}

type testIdP struct {
	entityID string
	key      *rsa.PrivateKey
	cert     *x509.Certificate
}

var (
	keysMu sync.Mutex
	keys   = map[string]*rsa.PrivateKey{}
)

// testKey is the RSA key named name, made once per test binary (making
// one takes a while under -race).
func testKey(t testing.TB, name string) *rsa.PrivateKey {
	keysMu.Lock()
	defer keysMu.Unlock()
	if k, ok := keys[name]; ok {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keys[name] = k
	return k
}

// newTestIdP is a provider with the key named keyName and a self-signed
// certificate valid a day either side of now.
func newTestIdP(t testing.TB, keyName, entityID string, now time.Time) *testIdP {
	t.Helper()
	key := testKey(t, keyName)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "idp.example.test"},
		NotBefore:    now.Add(-24 * time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testIdP{entityID: entityID, key: key, cert: cert}
}

func (p *testIdP) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.cert.Raw})
}

// metadata is the provider's EntityDescriptor: SSO over HTTP-Redirect and
// its signing certificate.
func (p *testIdP) metadata(t testing.TB) []byte {
	t.Helper()
	ed := crewsaml.EntityDescriptor{
		EntityID: p.entityID,
		IDPSSODescriptors: []crewsaml.IDPSSODescriptor{{
			SSODescriptor: crewsaml.SSODescriptor{RoleDescriptor: crewsaml.RoleDescriptor{
				ProtocolSupportEnumeration: "urn:oasis:names:tc:SAML:2.0:protocol",
				KeyDescriptors: []crewsaml.KeyDescriptor{{
					Use: "signing",
					KeyInfo: crewsaml.KeyInfo{X509Data: crewsaml.X509Data{
						X509Certificates: []crewsaml.X509Certificate{{Data: base64.StdEncoding.EncodeToString(p.cert.Raw)}},
					}},
				}},
			}},
			SingleSignOnServices: []crewsaml.Endpoint{{Binding: crewsaml.HTTPRedirectBinding, Location: testSSOURL}},
		}},
	}
	b, err := xml.Marshal(ed)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p *testIdP) signer(t testing.TB) *dsig.SigningContext {
	t.Helper()
	ctx := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(tls.Certificate{
		Certificate: [][]byte{p.cert.Raw}, PrivateKey: p.key, Leaf: p.cert,
	}))
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// issue describes one Response; zero fields take the values that make it
// acceptable for the attempt.
type issue struct {
	now                      time.Time
	requestID                string // the Response's and the assertion's InResponseTo
	audience                 string
	recipient                string
	destination              string
	issuer                   string
	assertionID              string
	nameID, nameIDFormat     string
	notBefore, notOnOrAfter  time.Time
	status                   string
	attributes               []crewsaml.Attribute
	signAssertion, signReply bool
	signer                   *testIdP // the provider by default
}

func (p *testIdP) fill(o *issue) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.audience, testMetaURL)
	def(&o.recipient, testACS)
	def(&o.destination, testACS)
	def(&o.issuer, p.entityID)
	def(&o.assertionID, "_a"+randomID())
	def(&o.nameID, "00u1alice")
	def(&o.nameIDFormat, string(crewsaml.PersistentNameIDFormat))
	def(&o.status, crewsaml.StatusSuccess)
	if o.notBefore.IsZero() {
		o.notBefore = o.now.Add(-30 * time.Second)
	}
	if o.notOnOrAfter.IsZero() {
		o.notOnOrAfter = o.now.Add(5 * time.Minute)
	}
	if o.signer == nil {
		o.signer = p
	}
}

func randomID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// assertion builds the assertion o describes, signed when o says so.
func (p *testIdP) assertion(t testing.TB, o issue) *etree.Element {
	t.Helper()
	p.fill(&o)
	as := &crewsaml.Assertion{
		ID: o.assertionID, IssueInstant: o.now, Version: "2.0",
		Issuer: crewsaml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: o.issuer},
		Subject: &crewsaml.Subject{
			NameID: &crewsaml.NameID{Format: o.nameIDFormat, Value: o.nameID},
			SubjectConfirmations: []crewsaml.SubjectConfirmation{{
				Method: "urn:oasis:names:tc:SAML:2.0:cm:bearer",
				SubjectConfirmationData: &crewsaml.SubjectConfirmationData{
					InResponseTo: o.requestID, NotOnOrAfter: o.notOnOrAfter, Recipient: o.recipient,
				},
			}},
		},
		Conditions: &crewsaml.Conditions{
			NotBefore: o.notBefore, NotOnOrAfter: o.notOnOrAfter,
			AudienceRestrictions: []crewsaml.AudienceRestriction{{Audience: crewsaml.Audience{Value: o.audience}}},
		},
		AuthnStatements: []crewsaml.AuthnStatement{{
			AuthnInstant: o.now, SessionIndex: "sess-1",
			AuthnContext: crewsaml.AuthnContext{AuthnContextClassRef: &crewsaml.AuthnContextClassRef{
				Value: "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
			}},
		}},
	}
	if len(o.attributes) > 0 {
		as.AttributeStatements = []crewsaml.AttributeStatement{{Attributes: o.attributes}}
	}
	el := as.Element()
	if !o.signAssertion {
		return el
	}
	signed, err := o.signer.signer(t).SignEnveloped(el)
	if err != nil {
		t.Fatal(err)
	}
	// The Signature goes after the Issuer, where the schema has it.
	as.Signature = signed.ChildElements()[len(signed.ChildElements())-1]
	return as.Element()
}

// response wraps assertions in the Response o describes, signed when o
// says so.
func (p *testIdP) response(t testing.TB, o issue, assertions ...*etree.Element) *etree.Element {
	t.Helper()
	p.fill(&o)
	r := &crewsaml.Response{
		ID: "_r" + randomID(), InResponseTo: o.requestID, IssueInstant: o.now, Version: "2.0",
		Destination: o.destination,
		Issuer:      &crewsaml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: o.issuer},
		Status:      crewsaml.Status{StatusCode: crewsaml.StatusCode{Value: o.status}},
	}
	el := r.Element()
	for _, a := range assertions {
		el.AddChild(a.Copy())
	}
	if !o.signReply {
		return el
	}
	signed, err := o.signer.signer(t).SignEnveloped(el)
	if err != nil {
		t.Fatal(err)
	}
	r.Signature = signed.ChildElements()[len(signed.ChildElements())-1]
	el = r.Element()
	for _, a := range assertions {
		el.AddChild(a.Copy())
	}
	return el
}

// encode is the SAMLResponse form field for el.
func encode(t testing.TB, el *etree.Element) string {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}
