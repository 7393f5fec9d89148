package saml

import (
	"context"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewsaml "github.com/crewjam/saml"

	"github.com/agentid/agentid/internal/connectors"
	"github.com/agentid/agentid/internal/store"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

type fixture struct {
	idp    *testIdP
	clock  *testClock
	replay *memReplay
	p      *Provider
}

func newFixture(t testing.TB, mutate func(*Config)) *fixture {
	t.Helper()
	f := &fixture{clock: &testClock{t: t0}, replay: &memReplay{}}
	f.idp = newTestIdP(t, "idp", testIdPEntity, t0)
	cfg := Config{
		ConnectorID: "corp", ACSURL: testACS, MetadataURL: testMetaURL,
		IdPMetadataXML: f.idp.metadata(t),
		Mapping: store.ClaimMapping{
			Username: "uid", Groups: "groups",
			Attributes: map[string]string{"department": "dept"},
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := New(cfg, Options{Replay: f.replay, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.p = p
	return f
}

func (f *fixture) begin(t testing.TB) *Attempt {
	t.Helper()
	_, a, err := f.p.Begin("/consent?x=1")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var testAttrs = []crewsaml.Attribute{
	{Name: "uid", Values: []crewsaml.AttributeValue{{Value: "alice"}}},
	{Name: "urn:oid:0.9.2342.19200300.100.1.3", FriendlyName: "mail", Values: []crewsaml.AttributeValue{{Value: "alice@corp.example"}}},
	{Name: "displayName", Values: []crewsaml.AttributeValue{{Value: "Alice Liddell"}}},
	{Name: "groups", Values: []crewsaml.AttributeValue{{Value: "eng"}, {Value: "eng-oncall"}, {Value: "eng"}}},
	{Name: "dept", Values: []crewsaml.AttributeValue{{Value: "R&D"}}},
}

// TestFinish is the table of Responses a SAML connector accepts and
// refuses. Each case builds its Response for a fresh attempt at the
// moving clock's time; want is "" for accepted, else the Reason, and
// wantIs the library's class of refusal where one names the check.
func TestFinish(t *testing.T) {
	type build func(t *testing.T, f *fixture, a *Attempt) string
	ok := func(o issue) issue { o.signAssertion = true; o.attributes = testAttrs; return o }
	// std is a Response for the attempt, changed by edit.
	std := func(edit func(*issue)) build {
		return func(t *testing.T, f *fixture, a *Attempt) string {
			o := ok(issue{now: f.clock.Now(), requestID: a.RequestID})
			if edit != nil {
				edit(&o)
			}
			return encode(t, f.idp.response(t, o, f.idp.assertion(t, o)))
		}
	}
	other := newTestIdP(t, "other", testIdPEntity, t0)
	cases := []struct {
		name    string
		advance time.Duration // moves the clock between Begin and the Response's issue
		later   time.Duration // moves the clock between issue and Finish
		build   build
		want    string
		wantIs  error
		// wantCause is in the refusal's Cause (where no class names it).
		wantCause string
	}{
		{name: "signed assertion", build: std(nil)},
		{name: "signed assertion in signed response", build: std(func(o *issue) { o.signReply = true })},
		{name: "signed response covering an unsigned assertion", build: std(func(o *issue) { o.signAssertion, o.signReply = false, true })},
		{name: "unsigned", build: std(func(o *issue) { o.signAssertion = false }), want: ReasonResponse, wantCause: "signature element not present"},
		{name: "signed by another key", build: std(func(o *issue) { o.signer = other }), want: ReasonResponse, wantIs: crewsaml.ErrInvalidSignature},
		{name: "signed by another key naming the provider's certificate", build: func(t *testing.T, f *fixture, a *Attempt) string {
			o := ok(issue{now: f.clock.Now(), requestID: a.RequestID, signer: other})
			as := f.idp.assertion(t, o)
			as.FindElement("./Signature/KeyInfo/X509Data/X509Certificate").SetText(base64.StdEncoding.EncodeToString(f.idp.cert.Raw))
			return encode(t, f.idp.response(t, o, as))
		}, want: ReasonResponse, wantIs: crewsaml.ErrInvalidSignature},
		{name: "response signed by another key", build: std(func(o *issue) { o.signAssertion, o.signReply, o.signer = false, true, other }), want: ReasonResponse, wantIs: crewsaml.ErrInvalidSignature},
		{name: "signed assertion, response signed by another key", build: std(func(o *issue) { o.signReply = true; o.signer = other }), want: ReasonResponse, wantIs: crewsaml.ErrInvalidSignature},
		{name: "wrong audience", build: std(func(o *issue) { o.audience = "https://other-sp.example.test/saml" }), want: ReasonResponse, wantIs: crewsaml.ErrAudienceMismatch},
		{name: "wrong recipient", build: std(func(o *issue) { o.recipient = "https://evil.example.test/acs" }), want: ReasonResponse, wantIs: crewsaml.ErrDestinationMismatch},
		{name: "wrong destination", build: std(func(o *issue) { o.destination = "https://evil.example.test/acs" }), want: ReasonResponse, wantIs: crewsaml.ErrDestinationMismatch},
		{name: "wrong issuer", build: std(func(o *issue) { o.issuer = "https://evil.example.test/saml" }), want: ReasonResponse, wantIs: crewsaml.ErrIssuerMismatch},
		{name: "InResponseTo another request", build: std(func(o *issue) { o.requestID = "id-another-request" }), want: ReasonResponse, wantIs: crewsaml.ErrRequestIDMismatch},
		{name: "InResponseTo absent (unsolicited)", build: std(func(o *issue) { o.requestID = "" }), want: ReasonResponse, wantIs: crewsaml.ErrRequestIDMismatch},
		{name: "assertion InResponseTo another request", build: func(t *testing.T, f *fixture, a *Attempt) string {
			o := ok(issue{now: f.clock.Now(), requestID: a.RequestID})
			inner := o
			inner.requestID = "id-another-request"
			return encode(t, f.idp.response(t, o, f.idp.assertion(t, inner)))
		}, want: ReasonResponse, wantIs: crewsaml.ErrRequestIDMismatch},
		{name: "expired NotOnOrAfter", build: std(func(o *issue) { o.notOnOrAfter = o.now.Add(-MaxClockSkew - time.Second) }), want: ReasonResponse, wantIs: crewsaml.ErrExpired},
		{name: "NotOnOrAfter passed within the skew", build: std(func(o *issue) { o.notOnOrAfter = o.now.Add(-DefaultClockSkew + time.Second) })},
		{name: "NotOnOrAfter passed beyond our skew, within the library's", build: std(func(o *issue) { o.notOnOrAfter = o.now.Add(-DefaultClockSkew - time.Second) }), want: ReasonResponse, wantIs: crewsaml.ErrExpired, wantCause: "clock skew"},
		{name: "not yet valid beyond our skew, within the library's", build: std(func(o *issue) { o.notBefore = o.now.Add(DefaultClockSkew + 10*time.Second) }), want: ReasonResponse, wantIs: crewsaml.ErrNotYetValid, wantCause: "clock skew"},
		{name: "not yet valid beyond the library's skew", build: std(func(o *issue) { o.notBefore = o.now.Add(MaxClockSkew + 10*time.Second) }), want: ReasonResponse, wantIs: crewsaml.ErrNotYetValid},
		{name: "NotBefore ahead within the skew", build: std(func(o *issue) { o.notBefore = o.now.Add(DefaultClockSkew - time.Second) })},
		{name: "issued, then the clock moves past the lifetime", later: 6 * time.Minute, build: std(nil), want: ReasonResponse, wantIs: crewsaml.ErrExpired},
		{name: "issued, then the clock moves a little", later: 20 * time.Second, build: std(nil)},
		{name: "attempt expired", advance: AttemptTTL, build: std(nil), want: ReasonAttempt},
		{name: "transient NameID", build: std(func(o *issue) { o.nameIDFormat = string(crewsaml.TransientNameIDFormat) }), want: ReasonClaims},
		{name: "status not success", build: std(func(o *issue) { o.status = crewsaml.StatusRequester }), want: ReasonDenied},
		{name: "not base64", build: func(*testing.T, *fixture, *Attempt) string { return "<Response/>" }, want: ReasonResponse},
		{name: "not XML", build: func(*testing.T, *fixture, *Attempt) string { return "bm90IHhtbA==" }, want: ReasonResponse},

		// XML signature wrapping.
		{name: "wrap: second unsigned assertion before the signed one", build: func(t *testing.T, f *fixture, a *Attempt) string {
			o := ok(issue{now: f.clock.Now(), requestID: a.RequestID})
			evil := o
			evil.signAssertion, evil.nameID = false, "00u9mallory"
			return encode(t, f.idp.response(t, o, f.idp.assertion(t, evil), f.idp.assertion(t, o)))
		}, want: ReasonResponse, wantIs: crewsaml.ErrMalformedMessage},
		{name: "wrap: second unsigned assertion after the signed one", build: func(t *testing.T, f *fixture, a *Attempt) string {
			o := ok(issue{now: f.clock.Now(), requestID: a.RequestID})
			evil := o
			evil.signAssertion, evil.nameID = false, "00u9mallory"
			return encode(t, f.idp.response(t, o, f.idp.assertion(t, o), f.idp.assertion(t, evil)))
		}, want: ReasonResponse, wantIs: crewsaml.ErrMalformedMessage},
		{name: "wrap: signed assertion moved into an unsigned one with its id", build: func(t *testing.T, f *fixture, a *Attempt) string {
			o := ok(issue{now: f.clock.Now(), requestID: a.RequestID})
			good := f.idp.assertion(t, o)
			evil := o
			evil.signAssertion, evil.nameID = false, "00u9mallory"
			bad := f.idp.assertion(t, evil) // same ID as good
			advice := bad.CreateElement("saml:Advice")
			advice.AddChild(good.Copy())
			return encode(t, f.idp.response(t, o, bad))
		}, want: ReasonResponse, wantCause: "signature element not present"},
		{name: "wrap: signature copied onto an altered assertion", build: func(t *testing.T, f *fixture, a *Attempt) string {
			o := ok(issue{now: f.clock.Now(), requestID: a.RequestID})
			good := f.idp.assertion(t, o)
			nameID := good.FindElement("./Subject/NameID")
			nameID.SetText("00u9mallory")
			return encode(t, f.idp.response(t, o, good))
		}, want: ReasonResponse, wantIs: crewsaml.ErrInvalidSignature},
		{name: "wrap: signed response moved inside an unsigned one", build: func(t *testing.T, f *fixture, a *Attempt) string {
			o := issue{now: f.clock.Now(), requestID: a.RequestID, signReply: true, attributes: testAttrs}
			signed := f.idp.response(t, o, f.idp.assertion(t, o))
			evil := o
			evil.signReply, evil.nameID = false, "00u9mallory"
			outer := f.idp.response(t, evil, f.idp.assertion(t, evil))
			ext := etree.NewElement("samlp:Extensions")
			ext.AddChild(signed)
			outer.InsertChildAt(outer.FindElement("./Status").Index(), ext)
			return encode(t, outer)
		}, want: ReasonResponse, wantCause: "signature element not present"},
		{name: "wrap: the assertion's signature moved to the response", build: func(t *testing.T, f *fixture, a *Attempt) string {
			o := ok(issue{now: f.clock.Now(), requestID: a.RequestID})
			good := f.idp.assertion(t, o)
			sig := good.FindElement("./Signature")
			good.RemoveChild(sig)
			good.FindElement("./Subject/NameID").SetText("00u9mallory")
			resp := f.idp.response(t, o, good)
			resp.InsertChildAt(resp.FindElement("./Status").Index(), sig)
			return encode(t, resp)
		}, want: ReasonResponse, wantIs: crewsaml.ErrInvalidSignature},
		{name: "wrap: unsigned assertion beside a response signature that covers another", build: func(t *testing.T, f *fixture, a *Attempt) string {
			o := issue{now: f.clock.Now(), requestID: a.RequestID, signReply: true, attributes: testAttrs}
			resp := f.idp.response(t, o, f.idp.assertion(t, o))
			evil := o
			evil.nameID = "00u9mallory"
			resp.AddChild(f.idp.assertion(t, evil))
			return encode(t, resp)
		}, want: ReasonResponse, wantIs: crewsaml.ErrInvalidSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			a := f.begin(t)
			f.clock.Advance(tc.advance)
			resp := tc.build(t, f, a)
			f.clock.Advance(tc.later)
			id, err := f.p.Finish(context.Background(), a, resp, a.RelayState)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v (%s)", err, cause(err))
				}
				if id.Subject != "00u1alice" || id.Username != "alice" || id.Email != "alice@corp.example" || id.Name != "Alice Liddell" {
					t.Fatalf("identity = %+v", id)
				}
				return
			}
			var e *connectors.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *connectors.Error %s", err, err, tc.want)
			}
			if e.Reason != tc.want {
				t.Fatalf("reason = %s (%s), want %s", e.Reason, e.Cause(), tc.want)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Fatalf("err = %s, want one of class %v", e.Cause(), tc.wantIs)
			}
			if !strings.Contains(e.Cause(), tc.wantCause) {
				t.Fatalf("cause = %s, want it to say %q", e.Cause(), tc.wantCause)
			}
			if id != nil {
				t.Fatalf("identity returned with an error: %+v", id)
			}
			if strings.Contains(e.Error(), "mallory") || strings.Contains(e.Error(), "alice") {
				t.Fatalf("error for the person carries the assertion: %q", e.Error())
			}
		})
	}
}

func cause(err error) string {
	var e *connectors.Error
	if errors.As(err, &e) {
		return e.Cause()
	}
	return ""
}

// TestFinishReplay: an accepted Response is refused the second time, for
// as long as it could be accepted at all, and another attempt cannot
// carry it either.
func TestFinishReplay(t *testing.T) {
	f := newFixture(t, nil)
	a := f.begin(t)
	o := issue{now: f.clock.Now(), requestID: a.RequestID, signAssertion: true, attributes: testAttrs}
	resp := encode(t, f.idp.response(t, o, f.idp.assertion(t, o)))
	if _, err := f.p.Finish(context.Background(), a, resp, a.RelayState); err != nil {
		t.Fatalf("first: %v (%s)", err, cause(err))
	}
	f.clock.Advance(10 * time.Second)
	_, err := f.p.Finish(context.Background(), a, resp, a.RelayState)
	var e *connectors.Error
	if !errors.As(err, &e) || e.Reason != ReasonReplay {
		t.Fatalf("replay: err = %v (%s), want reason %s", err, cause(err), ReasonReplay)
	}
	// A new attempt has a new request id: the captured Response does not
	// answer it.
	b := f.begin(t)
	if _, err := f.p.Finish(context.Background(), b, resp, b.RelayState); !errors.Is(err, crewsaml.ErrRequestIDMismatch) {
		t.Fatalf("replay into another attempt: err = %v (%s)", err, cause(err))
	}
}

// TestFinishAttempt: the Response is checked against this browser's
// attempt: its RelayState and its connector.
func TestFinishAttempt(t *testing.T) {
	f := newFixture(t, nil)
	a := f.begin(t)
	o := issue{now: f.clock.Now(), requestID: a.RequestID, signAssertion: true, attributes: testAttrs}
	resp := encode(t, f.idp.response(t, o, f.idp.assertion(t, o)))
	otherConn := *a
	otherConn.ConnectorID = "other"
	for name, tc := range map[string]struct {
		a     *Attempt
		relay string
	}{
		"no attempt":         {nil, a.RelayState},
		"other RelayState":   {a, a.RelayState + "x"},
		"empty RelayState":   {a, ""},
		"other connector's":  {&otherConn, a.RelayState},
		"attempt without id": {&Attempt{ConnectorID: "corp", RelayState: a.RelayState, Expires: a.Expires}, a.RelayState},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.p.Finish(context.Background(), tc.a, resp, tc.relay)
			var e *connectors.Error
			if !errors.As(err, &e) || e.Reason != ReasonAttempt {
				t.Fatalf("err = %v, want reason %s", err, ReasonAttempt)
			}
		})
	}
	if _, err := f.p.Finish(context.Background(), a, resp, a.RelayState); err != nil {
		t.Fatalf("the attempt itself: %v (%s)", err, cause(err))
	}
}

// TestBeginAuthnRequest: the redirect carries a deflated AuthnRequest for
// the ACS over HTTP-POST, asking for a persistent NameID, and the
// RelayState; each attempt is new.
func TestBeginAuthnRequest(t *testing.T) {
	f := newFixture(t, nil)
	u1, a1, err := f.p.Begin("/x")
	if err != nil {
		t.Fatal(err)
	}
	_, a2, err := f.p.Begin("/x")
	if err != nil {
		t.Fatal(err)
	}
	if a1.RequestID == a2.RequestID || a1.RelayState == a2.RelayState || len(a1.RelayState) != 43 {
		t.Fatalf("attempts not fresh: %+v %+v", a1, a2)
	}
	if a1.Expires != t0.Add(AttemptTTL).Unix() || a1.ReturnTo != "/x" || a1.ConnectorID != "corp" {
		t.Fatalf("attempt = %+v", a1)
	}
	u, err := url.Parse(u1)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != testSSOURL {
		t.Fatalf("redirect to %s", got)
	}
	if u.Query().Get("RelayState") != a1.RelayState {
		t.Fatal("RelayState not in the redirect")
	}
	req := decodeRedirectRequest(t, u.Query().Get("SAMLRequest"))
	if req.ID != a1.RequestID || req.AssertionConsumerServiceURL != testACS ||
		req.ProtocolBinding != crewsaml.HTTPPostBinding || req.Issuer.Value != testMetaURL ||
		req.NameIDPolicy == nil || req.NameIDPolicy.Format == nil || *req.NameIDPolicy.Format != string(crewsaml.PersistentNameIDFormat) {
		t.Fatalf("AuthnRequest = %+v", req)
	}
}
