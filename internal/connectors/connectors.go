// Package connectors signs people in through upstream identity providers:
// OpenID Connect discovery from a connector's issuer, the authorization
// code flow with PKCE (S256) and a nonce, ID token verification with
// go-oidc, and the mapping of the token's claims to a person's username,
// email, name, groups, roles and attributes. It decides no scopes: the
// person it returns signs in to the hub like any other, and policy decides.
package connectors

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// Options configure a Registry. Zero values mean the documented defaults.
type Options struct {
	// Keyring opens sealed client secrets (store.Connector.ClientSecretSealed);
	// nil: only secret files and public clients work.
	Keyring *keyring.Keyring
	// HTTPClient talks to the providers (discovery, keys, token endpoint).
	// nil: a client with a 10 s timeout, no redirects, responses capped at
	// 1 MiB. Providers are chosen by administrators, not strangers, and a
	// company's provider often lives on a private address, so the
	// stranger-URL rules of internal/fetch (public addresses, GET only) do
	// not apply; the issuer rules below do.
	HTTPClient *http.Client
	// AllowHTTPLoopback accepts http issuers on loopback hosts (tests and
	// development only); otherwise an issuer must be https.
	AllowHTTPLoopback bool
	// DiscoveryTTL is how long a provider's discovery document is used
	// before it is fetched again (default 1 h).
	DiscoveryTTL time.Duration
	Now          func() time.Time
	Rand         io.Reader
}

// Registry signs people in through connectors. It caches each connector's
// discovery (and with it the provider's remote key set) and is safe for
// concurrent use.
type Registry struct {
	opts Options

	mu        sync.Mutex
	providers map[string]*cachedProvider
}

type cachedProvider struct {
	issuer  string
	fetched time.Time
	p       *oidc.Provider
}

// maxResponse caps a provider's response bodies.
const maxResponse = 1 << 20

// New returns a Registry.
func New(opts Options) *Registry {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{
			Timeout:       10 * time.Second,
			Transport:     capped{http.DefaultTransport},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if opts.DiscoveryTTL <= 0 {
		opts.DiscoveryTTL = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	return &Registry{opts: opts, providers: map[string]*cachedProvider{}}
}

// capped limits every response body to maxResponse bytes: a provider
// cannot make the hub read without end.
type capped struct{ next http.RoundTripper }

func (c capped) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, maxResponse), resp.Body}
	return resp, nil
}

// Reasons of an Error.
const (
	ReasonConfig    = "config"    // the connector cannot be used as configured
	ReasonDiscovery = "discovery" // the provider's discovery failed
	ReasonDenied    = "denied"    // the provider answered with an error
	ReasonExchange  = "exchange"  // the code exchange failed
	ReasonIDToken   = "id_token"  // the ID token is missing or does not verify
	ReasonNonce     = "nonce"     // the ID token's nonce is not the attempt's
	ReasonClaims    = "claims"    // the claims lack what the mapping needs
)

// Error is a failed sign-in. Its message reads well on the login page and
// never carries a secret, a code or a token; the cause is for logs.
type Error struct {
	Reason string
	msg    string
	err    error
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.err }

// Cause is the cause's text, for logs.
func (e *Error) Cause() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func fail(reason, msg string, err error) *Error { return &Error{Reason: reason, msg: msg, err: err} }

// NewError is a refusal of a sign-in through another kind of connector
// (internal/connectors/saml), so that the server answers every connector's
// refusals alike: msg for the login page, err for the log.
func NewError(reason, msg string, err error) *Error { return fail(reason, msg, err) }

// CheckIssuer reports whether issuer may be a connector's: an absolute
// https URL without query or fragment (http only on a loopback host when
// allowHTTPLoopback).
func CheckIssuer(issuer string, allowHTTPLoopback bool) error {
	u, err := url.Parse(issuer)
	switch {
	case err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("issuer %q: an absolute URL without user, query or fragment is required", issuer)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && allowHTTPLoopback && oauth.IsLoopbackHost(u.Hostname()):
		return nil
	case u.Scheme == "http" && oauth.IsLoopbackHost(u.Hostname()):
		return fmt.Errorf("issuer %q: http is allowed only for loopback issuers in development (login.allow_loopback_connectors)", issuer)
	}
	return fmt.Errorf("issuer %q: must be https", issuer)
}

// provider returns the connector's discovered provider, fetching the
// discovery document when it is not cached or older than DiscoveryTTL.
// go-oidc checks the document's issuer is the connector's exactly
// (OpenID Connect Discovery 1.0 §4.3).
func (r *Registry) provider(ctx context.Context, c *store.Connector) (*oidc.Provider, error) {
	if err := CheckIssuer(c.Issuer, r.opts.AllowHTTPLoopback); err != nil {
		return nil, fail(ReasonConfig, "This sign-in option is not configured correctly.", err)
	}
	now := r.opts.Now()
	r.mu.Lock()
	cp := r.providers[c.ID]
	r.mu.Unlock()
	if cp != nil && cp.issuer == c.Issuer && now.Sub(cp.fetched) < r.opts.DiscoveryTTL {
		return cp.p, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, r.opts.HTTPClient), c.Issuer)
	if err != nil {
		return nil, fail(ReasonDiscovery, "The identity provider could not be reached. Try again in a moment.", err)
	}
	r.mu.Lock()
	r.providers[c.ID] = &cachedProvider{issuer: c.Issuer, fetched: now, p: p}
	r.mu.Unlock()
	return p, nil
}

// Attempt is one sign-in through a connector, from sending the person to
// the provider to the provider sending them back: the state, nonce and
// PKCE verifier the answer must match. The caller keeps it (sealed, in
// the browser that started it) and hands it back to Finish.
type Attempt struct {
	ConnectorID string `json:"c"`
	State       string `json:"s"`
	Nonce       string `json:"n"`
	Verifier    string `json:"v"`
	// ReturnTo is where the person goes after signing in.
	ReturnTo string `json:"r,omitempty"`
	// Expires is when the attempt ends (Unix seconds).
	Expires int64 `json:"e"`
}

// AttemptTTL bounds the time from leaving for the provider to coming back.
const AttemptTTL = 10 * time.Minute

// Begin starts a sign-in: it discovers the provider and returns the
// authorization request URL (code flow, PKCE S256, 256-bit state and
// nonce; login_hint passed on when given) and the attempt to keep.
func (r *Registry) Begin(ctx context.Context, c *store.Connector, redirectURI, loginHint, returnTo string) (string, *Attempt, error) {
	if c.Disabled {
		return "", nil, fail(ReasonConfig, "This sign-in option is turned off.", nil)
	}
	p, err := r.provider(ctx, c)
	if err != nil {
		return "", nil, err
	}
	a := &Attempt{ConnectorID: c.ID, ReturnTo: returnTo, Expires: r.opts.Now().Add(AttemptTTL).Unix()}
	for _, f := range []*string{&a.State, &a.Nonce, &a.Verifier} {
		if *f, err = random(r.opts.Rand); err != nil {
			return "", nil, err
		}
	}
	cfg := r.oauth2Config(c, p, redirectURI, "")
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(a.Verifier), oidc.Nonce(a.Nonce)}
	if loginHint != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", loginHint))
	}
	return cfg.AuthCodeURL(a.State, opts...), a, nil
}

// random is 256 bits, base64url.
func random(r io.Reader) (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func (r *Registry) oauth2Config(c *store.Connector, p *oidc.Provider, redirectURI, secret string) *oauth2.Config {
	scopes := []string{oidc.ScopeOpenID}
	if len(c.Scopes) == 0 {
		scopes = append(scopes, "profile", "email")
	}
	for _, s := range c.Scopes {
		if s != oidc.ScopeOpenID {
			scopes = append(scopes, s)
		}
	}
	return &oauth2.Config{ClientID: c.ClientID, ClientSecret: secret, Endpoint: p.Endpoint(), RedirectURL: redirectURI, Scopes: scopes}
}

// Callback is what the provider sent back to the redirect URI.
type Callback struct {
	State            string
	Code             string
	Error            string
	ErrorDescription string
	// Iss is the RFC 9207 issuer identifier, when the provider sends one.
	Iss string
}

// CheckState reports whether the callback's state is the attempt's
// (RFC 6749 §10.12), in constant time, and the attempt has not expired.
func (r *Registry) CheckState(a *Attempt, state string) bool {
	return a != nil && state != "" &&
		subtle.ConstantTimeCompare([]byte(a.State), []byte(state)) == 1 &&
		r.opts.Now().Before(time.Unix(a.Expires, 0))
}

// Finish completes a sign-in whose state the caller has checked
// (CheckState) and made single-use: it exchanges the code with the PKCE
// verifier, verifies the ID token (signature under the provider's keys,
// iss, aud = the client id, exp, the nonce of the attempt) and maps its
// claims.
func (r *Registry) Finish(ctx context.Context, c *store.Connector, a *Attempt, redirectURI string, cb Callback) (*Identity, error) {
	if c.Disabled || a.ConnectorID != c.ID {
		return nil, fail(ReasonConfig, "This sign-in option is turned off.", nil)
	}
	if cb.Error != "" {
		if cb.Error == "access_denied" {
			return nil, fail(ReasonDenied, "The identity provider did not sign you in.", errors.New(cb.Error))
		}
		return nil, fail(ReasonDenied, "The identity provider refused the sign-in.", fmt.Errorf("%s: %s", cb.Error, cb.ErrorDescription))
	}
	if cb.Code == "" {
		return nil, fail(ReasonExchange, "The identity provider sent no authorization code.", nil)
	}
	p, err := r.provider(ctx, c)
	if err != nil {
		return nil, err
	}
	// RFC 9207 §2.4: an iss that is not the provider's is a mix-up, and
	// so is none from a provider whose metadata says it sends one.
	var meta struct {
		IssSupported bool `json:"authorization_response_iss_parameter_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, fail(ReasonDiscovery, "The identity provider could not be reached. Try again in a moment.", err)
	}
	if (cb.Iss != "" || meta.IssSupported) && cb.Iss != c.Issuer {
		return nil, fail(ReasonDenied, "The answer came from another identity provider.", fmt.Errorf("iss %q", cb.Iss))
	}
	secret, err := r.secret(c)
	if err != nil {
		return nil, fail(ReasonConfig, "This sign-in option is not configured correctly.", err)
	}
	hc := oidc.ClientContext(ctx, r.opts.HTTPClient)
	hc = context.WithValue(hc, oauth2.HTTPClient, r.opts.HTTPClient)
	tok, err := r.oauth2Config(c, p, redirectURI, secret).Exchange(hc, cb.Code, oauth2.VerifierOption(a.Verifier))
	if err != nil {
		return nil, fail(ReasonExchange, "The identity provider did not accept the sign-in.", scrub(err))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, fail(ReasonIDToken, "The identity provider sent no ID token.", nil)
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: c.ClientID, Now: r.opts.Now}).Verify(hc, raw)
	if err != nil {
		return nil, fail(ReasonIDToken, "The identity provider's answer could not be verified.", err)
	}
	// OIDC Core §3.1.3.7 step 11.
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(a.Nonce)) != 1 {
		return nil, fail(ReasonNonce, "The identity provider's answer does not belong to this sign-in.", errors.New("nonce mismatch"))
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fail(ReasonIDToken, "The identity provider's answer could not be read.", err)
	}
	// OpenID Connect Core §2: sub is at most 255 ASCII characters. It keys
	// the person here (a unique index), so it is bounded and plain.
	if len(idt.Subject) > 255 || !PlainText(idt.Subject) {
		return nil, fail(ReasonClaims, "The identity provider did not say who you are: the subject is too long or not plain text.", errors.New("sub too long or not plain text"))
	}
	id, err := MapClaims(c.Claims, claims)
	if err != nil {
		return nil, fail(ReasonClaims, "The identity provider did not say who you are: "+err.Error()+".", err)
	}
	id.Subject = idt.Subject
	return id, nil
}

// scrub keeps a token-endpoint failure's status and OAuth error code,
// dropping the body (which a provider might fill with anything).
func scrub(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Errorf("token endpoint: status %d, error %q", status, re.ErrorCode)
	}
	return err
}

// SecretAAD binds a sealed client secret to its connector: a sealed value
// copied to another connector's row does not open.
func SecretAAD(tenantID, id string) string {
	return "connector-secret\x00" + tenantID + "\x00" + id
}

// SealSecret seals a connector's client secret with the keyring.
func SealSecret(kr *keyring.Keyring, r io.Reader, tenantID, id, secret string) ([]byte, error) {
	return kr.Seal(r, []byte(secret), SecretAAD(tenantID, id))
}

// secret returns the connector's client secret: read from its file (a
// trailing newline dropped), opened with the keyring, or "" for a public
// client.
func (r *Registry) secret(c *store.Connector) (string, error) {
	switch {
	case c.ClientSecretFile != "":
		b, err := os.ReadFile(c.ClientSecretFile)
		if err != nil {
			return "", fmt.Errorf("connector %q: client secret file: %w", c.ID, err)
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return "", fmt.Errorf("connector %q: client secret file %s is empty", c.ID, c.ClientSecretFile)
		}
		return s, nil
	case len(c.ClientSecretSealed) > 0:
		if r.opts.Keyring == nil {
			return "", fmt.Errorf("connector %q: sealed client secret but no keyring", c.ID)
		}
		b, err := r.opts.Keyring.Open(c.ClientSecretSealed, SecretAAD(c.TenantID, c.ID))
		if err != nil {
			return "", fmt.Errorf("connector %q: client secret: %w", c.ID, err)
		}
		return string(b), nil
	}
	return "", nil
}

// AttemptCookieSuffix derives the name suffix of the cookie that keeps an
// attempt from its state: each attempt has its own cookie (two tabs can
// sign in at once), and the name reveals nothing the state does not.
func AttemptCookieSuffix(state string) string {
	sum := sha256.Sum256([]byte("agentid connector attempt v1\x00" + state))
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}

// StateKey is the single-use key of an attempt's state (store.UseJTI):
// a callback is accepted once, on any replica.
func StateKey(state string) string {
	sum := sha256.Sum256([]byte("agentid connector state v1\x00" + state))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
