// Package saml is the SAML 2.0 service-provider side of a connector: a
// person signs in at their company's identity provider (Okta, Entra ID,
// ADFS, Keycloak, Shibboleth…) and comes back with a signed assertion.
//
// The flow is SP-initiated Web Browser SSO (saml-profiles §4.1): Begin
// sends an AuthnRequest with the HTTP-Redirect binding and returns the
// Attempt the caller keeps sealed in the browser (SealAttempt), under a
// cookie named after the attempt's RelayState; the provider answers at the
// assertion consumer service with the HTTP-POST binding, and Finish checks
// the Response against that attempt and returns the person as an Identity.
//
// XML signature and SAML response validation are github.com/crewjam/saml's
// (with github.com/russellhaering/goxmldsig underneath); this package
// configures it strictly and adds what it leaves to the caller: the
// attempt binding, a replay record shared by every replica (the store's
// single-use table), a clock skew bound tighter than the library's, and
// the mapping of attributes to a person. docs/design.md says what is
// checked, in order.
package saml

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	crewsaml "github.com/crewjam/saml"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/agentid/agentid/internal/connectors"
	"github.com/agentid/agentid/internal/store"
)

// Config is one SAML connector's service-provider side.
type Config struct {
	// ConnectorID names the connector (store.ValidConnectorID); it keys
	// the attempt and the replay record.
	ConnectorID string
	// EntityID is this service provider's entity id, the audience the
	// provider must restrict its assertions to. Empty: MetadataURL.
	EntityID string
	// ACSURL is the assertion consumer service, where the provider posts
	// its Response (…/login/saml/{connector}/acs); the Response's
	// Destination and the assertion's Recipient must be exactly this.
	ACSURL string
	// MetadataURL is where this service provider's metadata is served
	// (…/login/saml/{connector}/metadata).
	MetadataURL string

	// The identity provider: its metadata (IdPMetadataXML, an
	// EntityDescriptor, or an EntitiesDescriptor holding one identity
	// provider), or, without metadata, its entity id, single sign-on URL
	// (HTTP-Redirect binding) and certificate. IdPCertificatePEM given with
	// metadata pins the signing certificate: the metadata's are then not
	// trusted.
	IdPMetadataXML    []byte
	IdPEntityID       string
	IdPSSOURL         string
	IdPCertificatePEM []byte

	// Mapping names the SAML attributes (by Name, else FriendlyName) the
	// connector reads, as an OIDC connector names claims; see mapIdentity
	// for the defaults.
	Mapping store.ClaimMapping

	// ClockSkew is how far the provider's clock may be from ours when
	// NotBefore, NotOnOrAfter and IssueInstant are checked: 0 means
	// DefaultClockSkew; at most MaxClockSkew.
	ClockSkew time.Duration
}

// Clock skew bounds.
const (
	DefaultClockSkew = 60 * time.Second
	// MaxClockSkew is the library's own allowance (crewsaml.MaxClockSkew),
	// which this package can only narrow.
	MaxClockSkew = 180 * time.Second
)

// maxResponseSize bounds a posted SAMLResponse (base64), before decoding.
const maxResponseSize = 256 << 10

// ReplayStore keeps single-use ids until they expire; store.Store's
// UseJTI is one, shared by every replica on the same database. A key and
// id already recorded and not expired at now is store.ErrConflict.
type ReplayStore interface {
	UseJTI(ctx context.Context, key, jti string, exp, now time.Time) error
}

// Options are what a Provider needs besides its configuration.
type Options struct {
	// Replay records accepted assertion ids; required.
	Replay ReplayStore
	// Now is the clock (time.Now when nil); Rand is the randomness of
	// RelayState values (crypto/rand when nil).
	Now  func() time.Time
	Rand io.Reader
}

// Provider is one configured SAML connector. It is safe for concurrent use.
type Provider struct {
	cfg  Config
	opts Options
	skew time.Duration
	// sp is the library's service provider as configured; each Finish
	// works on a copy carrying that call's replay record.
	sp crewsaml.ServiceProvider
	// ssoURL is the provider's HTTP-Redirect single sign-on service.
	ssoURL string
}

// New checks cfg and builds the provider. It fetches nothing: the
// identity provider's metadata or certificate is part of the configuration.
func New(cfg Config, opts Options) (*Provider, error) {
	if opts.Replay == nil {
		return nil, errors.New("saml: a replay store is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if cfg.ConnectorID == "" {
		return nil, errors.New("saml: connector id is required")
	}
	acs, err := absoluteURL("ACS URL", cfg.ACSURL)
	if err != nil {
		return nil, err
	}
	meta, err := absoluteURL("metadata URL", cfg.MetadataURL)
	if err != nil {
		return nil, err
	}
	if cfg.EntityID == "" {
		cfg.EntityID = cfg.MetadataURL
	}
	skew := cfg.ClockSkew
	switch {
	case skew == 0:
		skew = DefaultClockSkew
	case skew < 0 || skew > MaxClockSkew:
		return nil, fmt.Errorf("saml: clock skew %s is not between 0 and %s", skew, MaxClockSkew)
	}
	idp, err := idpMetadata(cfg)
	if err != nil {
		return nil, err
	}
	sso := ""
	for _, d := range idp.IDPSSODescriptors {
		for _, s := range d.SingleSignOnServices {
			if s.Binding == crewsaml.HTTPRedirectBinding && sso == "" {
				sso = s.Location
			}
		}
	}
	if sso == "" {
		return nil, errors.New("saml: the identity provider has no single sign-on service with the HTTP-Redirect binding")
	}
	if _, err := absoluteURL("identity provider SSO URL", sso); err != nil {
		return nil, err
	}
	p := &Provider{cfg: cfg, opts: opts, skew: skew, ssoURL: sso}
	p.sp = crewsaml.ServiceProvider{
		EntityID:    cfg.EntityID,
		AcsURL:      *acs,
		MetadataURL: *meta,
		IDPMetadata: idp,
		// Persistent identifiers: the subject must name the same person
		// at every sign-in.
		AuthnNameIDFormat: crewsaml.PersistentNameIDFormat,
		Clock:             dsig.NewFakeClock(funcClock{Clock: clockwork.NewRealClock(), now: opts.Now}),
		// Only HTTP-POST is offered: no artifact resolution back channel.
		AssertionConsumerServiceBindings: []string{crewsaml.HTTPPostBinding},
		AllowIDPInitiated:                false,
		RejectSHA1Signatures:             true,
		RejectUnknownConditions:          true,
		RejectExpiredIDPMetadata:         true,
		LimitRelayStateLength:            true,
	}
	if len(cfg.IdPCertificatePEM) > 0 {
		cert, err := parseCertificatePEM(cfg.IdPCertificatePEM)
		if err != nil {
			return nil, err
		}
		b64 := base64.StdEncoding.EncodeToString(cert.Raw)
		p.sp.IDPCertificate = &b64
	} else if err := checkSigningCertificates(idp); err != nil {
		return nil, err
	}
	return p, nil
}

// funcClock is a clockwork clock whose Now is the provider's clock, so
// the library's time checks and certificate validity follow it.
type funcClock struct {
	clockwork.Clock
	now func() time.Time
}

func (c funcClock) Now() time.Time                  { return c.now() }
func (c funcClock) Since(t time.Time) time.Duration { return c.now().Sub(t) }
func (c funcClock) Until(t time.Time) time.Duration { return t.Sub(c.now()) }

func absoluteURL(what, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
		return nil, fmt.Errorf("saml: %s %q is not an absolute http(s) URL", what, s)
	}
	return u, nil
}

// idpMetadata is the identity provider as configured: its metadata, or
// one built from entity id, SSO URL and certificate.
func idpMetadata(cfg Config) (*crewsaml.EntityDescriptor, error) {
	if len(cfg.IdPMetadataXML) > 0 {
		if cfg.IdPSSOURL != "" {
			return nil, errors.New("saml: identity provider metadata or an SSO URL, not both")
		}
		return parseIdPMetadata(cfg.IdPMetadataXML, cfg.IdPEntityID)
	}
	if cfg.IdPEntityID == "" || cfg.IdPSSOURL == "" || len(cfg.IdPCertificatePEM) == 0 {
		return nil, errors.New("saml: identity provider metadata, or its entity id, SSO URL and certificate, are required")
	}
	return &crewsaml.EntityDescriptor{
		EntityID: cfg.IdPEntityID,
		IDPSSODescriptors: []crewsaml.IDPSSODescriptor{{
			SSODescriptor: crewsaml.SSODescriptor{RoleDescriptor: crewsaml.RoleDescriptor{
				ProtocolSupportEnumeration: "urn:oasis:names:tc:SAML:2.0:protocol",
			}},
			SingleSignOnServices: []crewsaml.Endpoint{{Binding: crewsaml.HTTPRedirectBinding, Location: cfg.IdPSSOURL}},
		}},
	}, nil
}

// parseIdPMetadata reads an EntityDescriptor, or the one identity provider
// of an EntitiesDescriptor (entityID chooses when there are several).
func parseIdPMetadata(data []byte, entityID string) (*crewsaml.EntityDescriptor, error) {
	var root struct{ XMLName xml.Name }
	if err := xml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("saml: identity provider metadata: %w", err)
	}
	var candidates []crewsaml.EntityDescriptor
	switch root.XMLName.Local {
	case "EntityDescriptor":
		var ed crewsaml.EntityDescriptor
		if err := xml.Unmarshal(data, &ed); err != nil {
			return nil, fmt.Errorf("saml: identity provider metadata: %w", err)
		}
		candidates = append(candidates, ed)
	case "EntitiesDescriptor":
		var eds crewsaml.EntitiesDescriptor
		if err := xml.Unmarshal(data, &eds); err != nil {
			return nil, fmt.Errorf("saml: identity provider metadata: %w", err)
		}
		candidates = eds.EntityDescriptors
	default:
		return nil, fmt.Errorf("saml: identity provider metadata: root element %q", root.XMLName.Local)
	}
	var found []crewsaml.EntityDescriptor
	for _, ed := range candidates {
		if len(ed.IDPSSODescriptors) > 0 && (entityID == "" || ed.EntityID == entityID) {
			found = append(found, ed)
		}
	}
	switch {
	case len(found) == 0:
		return nil, errors.New("saml: identity provider metadata: no identity provider (IDPSSODescriptor) in it")
	case len(found) > 1:
		return nil, errors.New("saml: identity provider metadata holds several identity providers: name one by its entity id")
	case found[0].EntityID == "":
		return nil, errors.New("saml: identity provider metadata: no entityID")
	}
	return &found[0], nil
}

// checkSigningCertificates requires the metadata to name at least one
// signing certificate, and every one it names to parse: a broken one
// would otherwise surface only at the first sign-in.
func checkSigningCertificates(ed *crewsaml.EntityDescriptor) error {
	n := 0
	for _, d := range ed.IDPSSODescriptors {
		for _, k := range d.KeyDescriptors {
			if k.Use != "" && k.Use != "signing" {
				continue
			}
			for _, c := range k.KeyInfo.X509Data.X509Certificates {
				der, err := base64.StdEncoding.DecodeString(strings.Map(dropSpace, c.Data))
				if err == nil && len(der) > 0 {
					_, err = x509.ParseCertificate(der)
				}
				if err != nil || len(der) == 0 {
					return fmt.Errorf("saml: a signing certificate in the identity provider's metadata does not parse: %v", err)
				}
				n++
			}
		}
	}
	if n == 0 {
		return errors.New("saml: the identity provider's metadata has no signing certificate")
	}
	return nil
}

func parseCertificatePEM(b []byte) (*x509.Certificate, error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("saml: the identity provider certificate must be one PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("saml: identity provider certificate: %w", err)
	}
	return cert, nil
}

// ID is the connector's id.
func (p *Provider) ID() string { return p.cfg.ConnectorID }

// Metadata is this service provider's metadata (SPSSODescriptor: entity
// id, the HTTP-POST assertion consumer service, signed assertions wanted,
// persistent NameIDs), for the identity provider's administrator.
func (p *Provider) Metadata() ([]byte, error) {
	b, err := xml.MarshalIndent(p.sp.Metadata(), "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), b...), nil
}

// Attempt is one sign-in through a SAML connector, from the AuthnRequest
// to the Response: the request's id the Response must answer and the
// RelayState that finds the attempt's cookie. The caller keeps it sealed
// in the browser that started it (SealAttempt) and hands it to Finish.
type Attempt struct {
	ConnectorID string `json:"c"`
	RequestID   string `json:"i"`
	RelayState  string `json:"s"`
	// ReturnTo is where the person goes after signing in.
	ReturnTo string `json:"r,omitempty"`
	// Expires is when the attempt ends (Unix seconds).
	Expires int64 `json:"e"`
}

// AttemptTTL bounds the time from leaving for the provider to coming back.
const AttemptTTL = 10 * time.Minute

// Begin starts a sign-in: it returns the identity provider's URL with the
// AuthnRequest (HTTP-Redirect binding, deflated, unsigned; it asks for a
// persistent NameID and names the ACS URL and HTTP-POST binding) and a
// 256-bit RelayState, and the attempt to keep.
func (p *Provider) Begin(returnTo string) (string, *Attempt, error) {
	sp := p.sp
	req, err := sp.MakeAuthenticationRequest(p.ssoURL, crewsaml.HTTPRedirectBinding, crewsaml.HTTPPostBinding)
	if err != nil {
		return "", nil, fail(ReasonConfig, "This sign-in option cannot be used right now.", err)
	}
	relay, err := random(p.opts.Rand)
	if err != nil {
		return "", nil, err
	}
	u, err := req.Redirect(relay, &sp)
	if err != nil {
		return "", nil, fail(ReasonConfig, "This sign-in option cannot be used right now.", err)
	}
	a := &Attempt{
		ConnectorID: p.cfg.ConnectorID,
		RequestID:   req.ID,
		RelayState:  relay,
		ReturnTo:    returnTo,
		Expires:     p.opts.Now().Add(AttemptTTL).Unix(),
	}
	return u.String(), a, nil
}

// Finish checks the identity provider's Response (the SAMLResponse and
// RelayState form fields of the HTTP-POST binding) against the attempt,
// records the assertion as used, and returns the person it asserts.
// Refusals are *connectors.Error.
func (p *Provider) Finish(ctx context.Context, a *Attempt, samlResponse, relayState string) (*Identity, error) {
	now := p.opts.Now()
	if a == nil || a.ConnectorID != p.cfg.ConnectorID || a.RequestID == "" ||
		subtle.ConstantTimeCompare([]byte(a.RelayState), []byte(relayState)) != 1 {
		return nil, fail(ReasonAttempt, "This sign-in was not started in this browser, or was already finished. Please sign in again.", nil)
	}
	if now.Unix() >= a.Expires {
		return nil, fail(ReasonAttempt, "This sign-in took too long. Please sign in again.", nil)
	}
	if len(samlResponse) > maxResponseSize {
		return nil, fail(ReasonResponse, "The identity provider's answer is too large.", nil)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Map(dropSpace, samlResponse))
	if err != nil || len(raw) == 0 {
		return nil, fail(ReasonResponse, "The identity provider's answer could not be read.", err)
	}
	sp := p.sp
	sp.ReplayCache = replayCache{ctx: ctx, st: p.opts.Replay, key: replayKey(p.cfg.ConnectorID), now: p.opts.Now}
	assertion, err := sp.ParseXMLResponse(raw, []string{a.RequestID}, sp.AcsURL)
	if err != nil {
		return nil, classifyResponseError(err)
	}
	if err := p.checkTimes(assertion, now); err != nil {
		return nil, err
	}
	id, err := mapIdentity(p.cfg.Mapping, assertion)
	if err != nil {
		return nil, fail(ReasonClaims, "The identity provider did not say who you are in a way this sign-in option can use.", err)
	}
	return id, nil
}

func dropSpace(r rune) rune {
	switch r {
	case ' ', '\t', '\r', '\n':
		return -1
	}
	return r
}

// checkTimes applies the configured clock skew, which is at most the
// library's: the library has already refused anything outside its own.
func (p *Provider) checkTimes(as *crewsaml.Assertion, now time.Time) error {
	notYet := func(t time.Time) bool { return !t.IsZero() && t.Add(-p.skew).After(now) }
	past := func(t time.Time) bool { return !t.IsZero() && !now.Before(t.Add(p.skew)) }
	expired := fail(ReasonResponse, "The identity provider's answer has expired. Please sign in again.",
		fmt.Errorf("%w beyond the %s clock skew", crewsaml.ErrExpired, p.skew))
	if notYet(as.IssueInstant) || notYet(as.Conditions.NotBefore) {
		return fail(ReasonResponse, "The identity provider's answer is not valid yet; its clock may be ahead of ours.",
			fmt.Errorf("%w beyond the %s clock skew", crewsaml.ErrNotYetValid, p.skew))
	}
	if past(as.Conditions.NotOnOrAfter) {
		return expired
	}
	for _, sc := range as.Subject.SubjectConfirmations {
		if sc.Method == "urn:oasis:names:tc:SAML:2.0:cm:bearer" && sc.SubjectConfirmationData != nil && past(sc.SubjectConfirmationData.NotOnOrAfter) {
			return expired
		}
	}
	return nil
}

// classifyResponseError turns the library's refusal into a refusal whose
// message is for the person and whose Cause is for the log.
func classifyResponseError(err error) *connectors.Error {
	var inv *crewsaml.InvalidResponseError
	private := err
	if errors.As(err, &inv) && inv.PrivateErr != nil {
		private = inv.PrivateErr
	}
	var status crewsaml.ErrBadStatus
	switch {
	case errors.As(private, &status):
		return fail(ReasonDenied, "The identity provider did not sign you in.", private)
	case errors.Is(private, crewsaml.ErrAssertionReplayed):
		return fail(ReasonReplay, "This sign-in answer was already used. Please sign in again.", private)
	case errors.Is(private, crewsaml.ErrExpired):
		return fail(ReasonResponse, "The identity provider's answer has expired. Please sign in again.", private)
	}
	return fail(ReasonResponse, "The identity provider's answer could not be accepted.", private)
}

// CheckIdPMetadata checks an identity provider's metadata as a SAML
// connector would use it (entityID chooses among several providers; ""
// when there is one): one identity provider with an HTTP-Redirect single
// sign-on service and signing certificates that parse. It returns the
// provider's entity id.
func CheckIdPMetadata(data []byte, entityID string) (string, error) {
	ed, err := parseIdPMetadata(data, entityID)
	if err != nil {
		return "", err
	}
	if err := checkSigningCertificates(ed); err != nil {
		return "", err
	}
	for _, d := range ed.IDPSSODescriptors {
		for _, s := range d.SingleSignOnServices {
			if s.Binding == crewsaml.HTTPRedirectBinding {
				if _, err := absoluteURL("identity provider SSO URL", s.Location); err != nil {
					return "", err
				}
				return ed.EntityID, nil
			}
		}
	}
	return "", errors.New("saml: the identity provider has no single sign-on service with the HTTP-Redirect binding")
}
