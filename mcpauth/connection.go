package mcpauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Retrieval identifiers of the hub (its wire contract for connections).
const (
	// tokenTypeAPIKey is the issued_token_type of an API key: not an OAuth
	// access token, so RFC 8693 §2.2.1 token_type is "N_A".
	tokenTypeAPIKey = "urn:agentid:params:oauth:token-type:api_key"
	// errConnectionRequired is the hub's extension error code (RFC 6749
	// §8.5) for a person who has not connected the provider.
	errConnectionRequired = "connection_required"
	// noExpiryTTL is how long a credential that does not expire (an API
	// key) is cached: rotation and disconnection at the hub reach this
	// server within it.
	noExpiryTTL   = time.Minute
	maxProviderID = 63
)

// ErrConnectionRequired matches a [*ConnectRequiredError]: the user the
// agent acts for has no usable connection to the provider, and must
// connect it at the hub first.
var ErrConnectionRequired = errors.New("mcpauth: connection required")

// ConnectRequiredError is what [Exchanger.Connection] returns when the hub
// answers connection_required: the person has not connected the provider
// (Status "missing") or the provider no longer honours the connection
// (Status "needs_reauth"). URL is the hub's connect page for this person,
// provider and scopes; show it to the person, through the MCP client (see
// [ConnectTool]). It works only for the person it was made for and expires
// after a few minutes. errors.Is(err, ErrConnectionRequired) matches it,
// and errors.As finds the hub's [*ExchangeError] behind it.
type ConnectRequiredError struct {
	Provider string
	URL      string
	Status   string

	// scopes are the provider scopes asked for, to ask again after the
	// person connected.
	scopes []string
	cause  *ExchangeError
}

// Connection statuses of a [ConnectRequiredError].
const (
	ConnectionMissing     = "missing"
	ConnectionNeedsReauth = "needs_reauth"
)

func (e *ConnectRequiredError) Error() string {
	if e.Status == ConnectionNeedsReauth {
		return "mcpauth: the person must connect " + e.Provider + " again"
	}
	return "mcpauth: the person has not connected " + e.Provider
}

// Is reports whether target is ErrConnectionRequired.
func (e *ConnectRequiredError) Is(target error) bool { return target == ErrConnectionRequired }

// Unwrap returns the hub's error answer.
func (e *ConnectRequiredError) Unwrap() error {
	if e.cause == nil {
		return nil
	}
	return e.cause
}

// Credential is a downstream credential the hub's vault handed this server
// for the user of the current request: an OAuth 2 access token or an API
// key. It is a secret: it prints redacted, and must never reach the agent.
type Credential struct {
	// Provider is the hub's provider id; ConnectionID names the connection
	// at the hub (safe to log).
	Provider     string
	ConnectionID string
	// AccessToken is the access token or API key.
	AccessToken string
	// TokenType is the token's type as the provider said ("Bearer"), or
	// "N_A" for an API key (RFC 8693 §2.2.1).
	TokenType string
	// KeyHeader and KeyHeaderValue, or KeyQuery, say where an API key goes
	// (set for API keys only): the header KeyHeader with the value
	// KeyHeaderValue (the key alone when empty), or the query parameter
	// KeyQuery.
	KeyHeader      string
	KeyHeaderValue string
	KeyQuery       string
	// ExpiresAt is when the credential expires (zero: it does not, or the
	// hub did not say).
	ExpiresAt time.Time
	// Scopes are the provider scopes the credential carries.
	Scopes []string
}

// IsAPIKey reports whether the credential is an API key rather than an
// OAuth 2 access token.
func (c *Credential) IsAPIKey() bool { return c.KeyHeader != "" || c.KeyQuery != "" }

// Apply puts the credential on r: "Authorization: Bearer …" (RFC 6750
// §2.1) for an access token; the key header or query parameter for an API
// key. It changes r in place; an http.RoundTripper must apply it to a
// clone.
func (c *Credential) Apply(r *http.Request) {
	switch {
	case c.KeyHeader != "":
		v := c.KeyHeaderValue
		if v == "" {
			v = c.AccessToken
		}
		r.Header.Set(c.KeyHeader, v)
	case c.KeyQuery != "":
		q := r.URL.Query()
		q.Set(c.KeyQuery, c.AccessToken)
		r.URL.RawQuery = q.Encode()
	default:
		r.Header.Set("Authorization", "Bearer "+c.AccessToken)
	}
}

// String describes the credential without its secret.
func (c Credential) String() string {
	return fmt.Sprintf("mcpauth.Credential{Provider: %q, ConnectionID: %q, TokenType: %q, Scopes: %q, ExpiresAt: %s, secret redacted}",
		c.Provider, c.ConnectionID, c.TokenType, c.Scopes, c.ExpiresAt.Format(time.RFC3339))
}

// GoString is String, so that %#v redacts too.
func (c Credential) GoString() string { return c.String() }

// LogValue keeps the secret out of slog output.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("provider", c.Provider), slog.String("connection_id", c.ConnectionID),
		slog.String("scope", strings.Join(c.Scopes, " ")), slog.Time("expires_at", c.ExpiresAt))
}

// ProviderResource is the RFC 8707 resource that names provider in a
// retrieval: "<issuer>/providers/<provider>".
func (e *Exchanger) ProviderResource(provider string) string {
	return e.issuer + "/providers/" + provider
}

// Connection returns the downstream credential for provider that the user
// of the current request (the token in ctx's [Claims], as [Middleware]
// or [ConnectTool] put them there) holds in the hub's vault. scopes are
// provider scopes; without them the hub hands out what the token's scopes
// reach.
//
// The request is an RFC 8693 token exchange: subject_token the incoming
// access token, resource [Exchanger.ProviderResource], authenticated as
// this server's client; the hub checks the token was issued for this
// server, consent and policy. The credential is cached per (token,
// provider, set of scopes) until RefreshBefore ahead of its expiry (an API
// key for a minute), and never beyond the incoming token's expiry;
// concurrent identical calls share one request.
//
// A person who has not connected the provider yields a
// [*ConnectRequiredError] (errors.Is [ErrConnectionRequired]); every other
// error is an [*ExchangeError] as [Exchanger.Exchange] reports them.
func (e *Exchanger) Connection(ctx context.Context, provider string, scopes ...string) (*Credential, error) {
	return e.connection(ctx, provider, scopes, false)
}

func (e *Exchanger) connection(ctx context.Context, provider string, scopes []string, force bool) (*Credential, error) {
	subject, notAfter, scopes, err := e.retrievalArgs(ctx, provider, scopes)
	if err != nil {
		return nil, err
	}
	resource := e.ProviderResource(provider)
	cacheKey := exchangeKeyOf(kindConnection, subject, resource, scopes)
	flightKey := cacheKey
	if force {
		flightKey = exchangeKeyOf(kindForced, subject, resource, scopes)
	}
	return e.do(ctx, cacheKey, flightKey, func(ctx context.Context) (Credential, time.Time, error) {
		return e.retrieve(ctx, subject, provider, scopes, notAfter, force)
	})
}

// retrievalArgs checks a retrieval's arguments and returns the incoming
// token, its expiry and the scopes sorted.
func (e *Exchanger) retrievalArgs(ctx context.Context, provider string, scopes []string) (string, time.Time, []string, error) {
	c, ok := ClaimsFromContext(ctx)
	if !ok || c.Token() == "" {
		return "", time.Time{}, nil, &ExchangeError{Code: "invalid_request", Description: "no verified access token in the context"}
	}
	if !validProviderID(provider) {
		return "", time.Time{}, nil, &ExchangeError{Code: "invalid_request", Description: "malformed provider id"}
	}
	scopes = slices.Clone(scopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	for _, s := range scopes {
		if !validScopeToken(s) {
			return "", time.Time{}, nil, &ExchangeError{Code: "invalid_request", Description: "malformed scope"}
		}
	}
	if err := ctx.Err(); err != nil {
		return "", time.Time{}, nil, &ExchangeError{Description: "context ended", cause: err, abandoned: true}
	}
	return c.Token(), c.ExpiresAt, scopes, nil
}

// refreshAfter drops the cached credential stale (which a provider just
// refused with 401) and retrieves a fresh one with force_refresh, unless
// another caller already replaced it.
func (e *Exchanger) refreshAfter(ctx context.Context, provider string, scopes []string, stale string) (*Credential, error) {
	subject, _, sorted, err := e.retrievalArgs(ctx, provider, scopes)
	if err != nil {
		return nil, err
	}
	key := exchangeKeyOf(kindConnection, subject, e.ProviderResource(provider), sorted)
	e.mu.Lock()
	if ent, ok := e.cache[key]; ok {
		if ent.cred.AccessToken != stale && e.now().Before(ent.refreshAt) {
			e.mu.Unlock()
			return ent.cred.clone(), nil
		}
		delete(e.cache, key)
	}
	e.mu.Unlock()
	return e.connection(ctx, provider, sorted, true)
}

// retrievalResponse is the hub's answer to a retrieval: RFC 8693 §2.2 with
// the provider fields, or the connection_required error.
type retrievalResponse struct {
	tokenResponse
	Provider       string `json:"provider"`
	ConnectionID   string `json:"connection_id"`
	KeyHeader      string `json:"key_header"`
	KeyHeaderValue string `json:"key_header_value"`
	KeyQuery       string `json:"key_query"`
	ConnectURI     string `json:"connect_uri"`
	Status         string `json:"connection_status"`
}

func (e *Exchanger) retrieve(ctx context.Context, subject, provider string, scopes []string, notAfter time.Time, force bool) (Credential, time.Time, error) {
	form := url.Values{
		"grant_type":           {grantTokenExchange},
		"subject_token":        {subject},
		"subject_token_type":   {tokenTypeAccessToken},
		"requested_token_type": {tokenTypeAccessToken},
		"resource":             {e.ProviderResource(provider)},
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	if force {
		form.Set("force_refresh", "true")
	}
	status, body, received, err := e.postForm(ctx, form)
	if err != nil {
		return Credential{}, time.Time{}, err
	}
	cred, refreshAt, err := parseRetrievalResponse(status, body, received, e.issuer, provider, scopes, e.refreshBefore)
	if err != nil {
		return Credential{}, time.Time{}, err
	}
	if !notAfter.IsZero() && (refreshAt.IsZero() || notAfter.Before(refreshAt)) {
		refreshAt = notAfter
	}
	return cred, refreshAt, nil
}

// parseRetrievalResponse reads the hub's answer to a retrieval and returns
// the credential and when to refresh it (zero: do not cache). issuer is
// the hub's: a connect_uri must be its connect page for provider.
func parseRetrievalResponse(status int, body []byte, received time.Time, issuer, provider string, requested []string, refreshBefore time.Duration) (Credential, time.Time, error) {
	var rr retrievalResponse
	var decodeErr error
	if len(body) > maxDocBytes {
		decodeErr = errors.New("document too large")
	} else {
		decodeErr = json.Unmarshal(body, &rr)
	}
	if status != http.StatusOK {
		xe := &ExchangeError{StatusCode: status, Description: "token endpoint refused"}
		if decodeErr == nil && rr.Error != "" && validScopeToken(rr.Error) {
			xe.Code = rr.Error
			xe.Description = cleanDescription(rr.ErrorDesc)
		}
		if xe.Code != errConnectionRequired {
			return Credential{}, time.Time{}, xe
		}
		// The connect URL goes to the person's MCP client: only the hub's
		// own connect page for this provider, never a script, a custom
		// scheme or another site (a person asked to sign in there would
		// be phished).
		if !isConnectPage(rr.ConnectURI, issuer, provider) {
			xe.Description = "connection_required without a usable connect_uri"
			return Credential{}, time.Time{}, xe
		}
		st := rr.Status
		if st != ConnectionNeedsReauth {
			st = ConnectionMissing
		}
		return Credential{}, time.Time{}, &ConnectRequiredError{Provider: provider, URL: rr.ConnectURI, Status: st, scopes: slices.Clone(requested), cause: xe}
	}
	bad := func(why string) (Credential, time.Time, error) {
		return Credential{}, time.Time{}, &ExchangeError{StatusCode: status, Description: why, cause: decodeErr}
	}
	if decodeErr != nil {
		return bad("token response malformed")
	}
	cred := Credential{Provider: provider, ConnectionID: rr.ConnectionID, AccessToken: rr.AccessToken, TokenType: rr.TokenType, Scopes: slices.Clone(requested)}
	if rr.Provider != "" && rr.Provider != provider {
		return bad("token response names another provider")
	}
	switch rr.IssuedTokenType {
	case tokenTypeAccessToken:
		// It goes into an Authorization header as is (RFC 6750 §2.1); a
		// DPoP-bound token (RFC 9449) would need a proof this helper does
		// not make.
		if len(rr.AccessToken) > maxTokenBytes || !isToken68(rr.AccessToken) {
			return bad("token response has no usable access_token")
		}
		if !strings.EqualFold(rr.TokenType, "Bearer") {
			return bad("token response token_type is not Bearer")
		}
		cred.TokenType = "Bearer"
	case tokenTypeAPIKey:
		if rr.AccessToken == "" || len(rr.AccessToken) > maxTokenBytes || !headerValueSafe(rr.AccessToken) {
			return bad("token response has no usable API key")
		}
		switch {
		case rr.KeyHeader != "" && rr.KeyQuery == "":
			if !validScopeToken(rr.KeyHeader) || strings.ContainsAny(rr.KeyHeader, `"(),/:;<=>?@[\]{}`) || !headerValueSafe(rr.KeyHeaderValue) {
				return bad("token response key_header malformed")
			}
			cred.KeyHeader, cred.KeyHeaderValue = http.CanonicalHeaderKey(rr.KeyHeader), rr.KeyHeaderValue
		case rr.KeyQuery != "" && rr.KeyHeader == "":
			cred.KeyQuery = rr.KeyQuery
		default:
			return bad("token response names neither or both of key_header and key_query")
		}
	default:
		return bad("token response issued_token_type is neither access_token nor api_key")
	}
	if rr.Scope != nil {
		cred.Scopes = strings.Fields(*rr.Scope)
	}
	refreshAt := received.Add(noExpiryTTL)
	if rr.ExpiresIn != "" {
		secs, err := rr.ExpiresIn.Int64()
		if err != nil || secs < 0 || secs > 1e9 {
			return bad("token response expires_in malformed")
		}
		life := time.Duration(secs) * time.Second
		cred.ExpiresAt = received.Add(life)
		refreshAt = cred.ExpiresAt.Add(-min(refreshBefore, life/2))
	}
	return cred, refreshAt, nil
}

// isConnectPage reports whether raw is the hub's connect page for
// provider: an http(s) URL (https but on loopback) on the issuer's origin
// whose path is <issuer path>/connections/connect/<provider>.
func isConnectPage(raw, issuer, provider string) bool {
	if len(raw) > 8<<10 || checkHTTPURL(raw, true) != nil {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	iss, err := url.Parse(issuer)
	if err != nil {
		return false
	}
	return u.Scheme == iss.Scheme && strings.EqualFold(u.Host, iss.Host) &&
		u.EscapedPath() == strings.TrimSuffix(iss.EscapedPath(), "/")+"/connections/connect/"+provider
}

// headerValueSafe accepts printable ASCII (and spaces inside), what an HTTP
// header value or query parameter may carry without surprise.
func headerValueSafe(s string) bool {
	if strings.TrimSpace(s) != s {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// validProviderID is the hub's provider id syntax: [a-z0-9][a-z0-9_-]{0,62}.
func validProviderID(s string) bool {
	if s == "" || len(s) > maxProviderID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// HTTPClient returns a client for the provider's API that puts the
// credential of ctx's user on every request ([Exchanger.Connection],
// [Credential.Apply]). When the provider answers 401, it drops the cached
// credential, retrieves it again with force_refresh (the hub then refreshes
// it at the provider) and repeats the request once — only requests whose
// body can be replayed (no body, or GetBody set, as http.NewRequest does
// for in-memory bodies). Errors of the retrieval (a
// [*ConnectRequiredError] among them) come back from Do wrapped in a
// *url.Error. Redirects to another origin are refused, so the credential
// never travels to a host the caller did not name.
func (e *Exchanger) HTTPClient(ctx context.Context, provider string, scopes ...string) *http.Client {
	return &http.Client{
		Transport: &credentialTransport{
			e: e, ctx: ctx, provider: provider, scopes: slices.Clone(scopes), base: http.DefaultTransport,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("mcpauth: stopped after 10 redirects")
			}
			if o := via[0].URL; req.URL.Scheme != o.Scheme || req.URL.Host != o.Host {
				return errors.New("mcpauth: refusing a redirect to another origin with a credential")
			}
			return nil
		},
	}
}

// credentialTransport applies the retrieved credential to each request.
type credentialTransport struct {
	e        *Exchanger
	ctx      context.Context // carries the claims; requests carry their own deadlines
	provider string
	scopes   []string
	base     http.RoundTripper
}

func (t *credentialTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	claimsCtx := t.requestContext(req)
	cred, err := t.e.Connection(claimsCtx, t.provider, t.scopes...)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	first := req.Clone(req.Context())
	cred.Apply(first)
	resp, err := t.base.RoundTrip(first)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if !replayable {
		return resp, nil
	}
	fresh, err := t.e.refreshAfter(claimsCtx, t.provider, t.scopes, cred.AccessToken)
	if err != nil {
		// The provider's 401 says more than a failed refresh would.
		return resp, nil
	}
	second := req.Clone(req.Context())
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		second.Body = body
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	fresh.Apply(second)
	return t.base.RoundTrip(second)
}

// requestContext is the request's context (its deadline and cancellation)
// with the claims the client was made for.
func (t *credentialTransport) requestContext(req *http.Request) context.Context {
	c, ok := ClaimsFromContext(t.ctx)
	if !ok {
		return req.Context()
	}
	return withClaims(req.Context(), c)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
