package mcpauth

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// RFC 8693 §2.1 and §3 identifiers.
const (
	grantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
	defaultRefreshBefore   = 30 * time.Second
	defaultExchangeEntries = 1000
	// exchangeTimeout bounds one request to the token endpoint, which runs
	// on after the caller that started it gives up (others may wait on it).
	exchangeTimeout = 30 * time.Second
	// maxDescription bounds the hub's error_description kept in an error.
	maxDescription = 200
)

// ExchangerConfig configures an [Exchanger]. Zero values mean the
// documented defaults.
type ExchangerConfig struct {
	// Issuer is the hub's issuer identifier, as in [Config.Issuer]; the
	// token endpoint is discovered from its RFC 8414 metadata. Required.
	Issuer string
	// ClientID and ClientSecret are this MCP server's own client
	// credentials at the hub (the client linked to its resource), sent with
	// HTTP Basic (RFC 6749 §2.3.1). Only the audience of a token may
	// exchange it, so these must be the credentials of the resource the
	// incoming tokens are issued for. Required.
	ClientID     string
	ClientSecret string
	// HTTPClient sends metadata and token requests. Nil means a client with
	// a 10 second timeout.
	HTTPClient *http.Client
	// RefreshBefore is how long before its expiry a cached token is
	// replaced by a new exchange, so that it does not expire on the way to
	// the downstream resource. Zero means 30 seconds; it never exceeds half
	// the token's lifetime.
	RefreshBefore time.Duration
	// MaxCacheEntries bounds the cache of exchanged tokens; when it is full
	// the entry due for refresh soonest is dropped. Zero means 1000;
	// negative disables caching (concurrent identical calls still share one
	// request).
	MaxCacheEntries int
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger receives exchange events; never a token. Nil discards.
	Logger *slog.Logger
}

// Validate reports every problem with the configuration at once.
func (c *ExchangerConfig) Validate() error {
	var errs []error
	if err := checkHTTPURL(c.Issuer, false); err != nil {
		errs = append(errs, fmt.Errorf("mcpauth: ExchangerConfig.Issuer: %w", err))
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("mcpauth: ExchangerConfig.ClientID: required"))
	}
	if c.ClientSecret == "" {
		errs = append(errs, errors.New("mcpauth: ExchangerConfig.ClientSecret: required"))
	}
	if c.RefreshBefore < 0 {
		errs = append(errs, errors.New("mcpauth: ExchangerConfig.RefreshBefore: must not be negative"))
	}
	return errors.Join(errs...)
}

// Exchanger trades the access token an MCP server received for a token to a
// downstream resource, at the hub's token endpoint (RFC 8693 token
// exchange). The hub keeps the user as sub, names this server as the
// current actor in act with the earlier actors nested, and never widens
// scopes or extends expiry; the downstream resource sees the whole chain
// ([Claims.Actors]). It is safe for concurrent use.
type Exchanger struct {
	issuer        string
	endpoint      string
	clientID      string
	secret        string
	client        *http.Client
	refreshBefore time.Duration
	maxEntries    int // < 0: no cache
	now           func() time.Time
	logger        *slog.Logger

	mu      sync.Mutex
	cache   map[exchangeKey]exchangeEntry
	flights map[exchangeKey]*exchangeFlight
}

// ExchangedToken is an access token obtained by [Exchanger.Exchange].
type ExchangedToken struct {
	// AccessToken is the token to send to the downstream resource as
	// "Authorization: Bearer …". It is a secret: never log it.
	AccessToken string
	// ExpiresAt is when the hub says it expires (zero if it did not say).
	ExpiresAt time.Time
	// Scopes are the scopes granted: the response's scope, or the
	// requested ones when the hub omitted it (RFC 6749 §5.1).
	Scopes []string
}

// ExchangeError is the error of every failed [Exchanger.Exchange]. Its
// message never contains a token.
type ExchangeError struct {
	// Code is the OAuth error code: the hub's (RFC 6749 §5.2, RFC 8693
	// §2.2.2; e.g. invalid_grant when the incoming token may not be
	// exchanged, invalid_target for an unknown or unreachable resource,
	// invalid_scope, unsupported_token_type, invalid_client for wrong
	// credentials), or invalid_request for arguments refused before
	// sending (StatusCode 0). It is empty when the hub could not be
	// reached or gave no usable answer; the error then also matches
	// [ErrUnavailable], as it does for server_error and
	// temporarily_unavailable. It is also empty when the caller's context
	// ended first; the error then matches ctx.Err() instead.
	Code string
	// Description is the hub's error_description, shortened to printable
	// ASCII, or this package's reason.
	Description string
	// StatusCode is the token endpoint's HTTP status (0 if none).
	StatusCode int

	cause     error
	abandoned bool // the caller's context ended; says nothing of the hub
}

func (e *ExchangeError) Error() string {
	msg := "mcpauth: token exchange failed"
	if e.Code != "" {
		msg += ": " + e.Code
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// Unwrap exposes ErrUnavailable when the hub gave no usable answer, and the
// underlying cause.
func (e *ExchangeError) Unwrap() []error {
	var errs []error
	if e.Code == "" && !e.abandoned || e.Code == "server_error" || e.Code == "temporarily_unavailable" {
		errs = append(errs, ErrUnavailable)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

type exchangeKey [sha256.Size]byte

// exchangeEntry is a cached result: an exchanged token or a retrieved
// credential (an exchanged token is a credential without provider fields).
type exchangeEntry struct {
	cred      Credential
	refreshAt time.Time
}

// exchangeFlight is one token request that identical concurrent calls share.
type exchangeFlight struct {
	done chan struct{}
	cred Credential
	err  error
}

// postFunc performs one token request and returns its result and when to
// refresh it (zero: do not cache).
type postFunc func(ctx context.Context) (Credential, time.Time, error)

// NewExchanger validates cfg and discovers the hub's token endpoint from
// its RFC 8414 metadata within ctx.
func NewExchanger(ctx context.Context, cfg ExchangerConfig) (*Exchanger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: defaultTimeout}
	}
	md, err := discover(ctx, client, cfg.Issuer)
	if err != nil {
		return nil, err
	}
	if err := checkHTTPURL(md.TokenEndpoint, true); err != nil {
		return nil, fmt.Errorf("mcpauth: hub metadata token_endpoint: %w", err)
	}
	e := &Exchanger{
		issuer:        strings.TrimSuffix(cfg.Issuer, "/"),
		endpoint:      md.TokenEndpoint,
		clientID:      cfg.ClientID,
		secret:        cfg.ClientSecret,
		client:        client,
		refreshBefore: cfg.RefreshBefore,
		maxEntries:    cfg.MaxCacheEntries,
		now:           cfg.Now,
		logger:        cfg.Logger,
		cache:         make(map[exchangeKey]exchangeEntry),
		flights:       make(map[exchangeKey]*exchangeFlight),
	}
	if e.refreshBefore == 0 {
		e.refreshBefore = defaultRefreshBefore
	}
	if e.maxEntries == 0 {
		e.maxEntries = defaultExchangeEntries
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.logger == nil {
		e.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return e, nil
}

// Exchange returns an access token for resource (a downstream MCP server or
// API registered at the hub, RFC 8707) on behalf of the user of
// subjectToken, the token this server received ([Claims.Token]). scopes,
// when given, narrow the result (RFC 8693 §2.1 scope); without them the hub
// grants what the subject token and the resource allow.
//
// The request is RFC 8693 §2.1: grant_type token-exchange, subject_token
// with subject_token_type access_token, requested_token_type access_token,
// resource, scope, authenticated as this server's client. The result is
// cached per (subjectToken, resource, set of scopes) until RefreshBefore
// ahead of its expiry; concurrent identical calls share one request, and a
// caller whose ctx ends stops waiting without failing the others. Every
// error is an [*ExchangeError].
func (e *Exchanger) Exchange(ctx context.Context, subjectToken, resource string, scopes ...string) (*ExchangedToken, error) {
	if subjectToken == "" || len(subjectToken) > maxTokenBytes || !isToken68(subjectToken) {
		return nil, &ExchangeError{Code: "invalid_request", Description: "subject token missing or malformed"}
	}
	if err := checkHTTPURL(resource, true); err != nil {
		return nil, &ExchangeError{Code: "invalid_request", Description: "resource: " + err.Error()}
	}
	scopes = slices.Clone(scopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	for _, s := range scopes {
		if !validScopeToken(s) {
			return nil, &ExchangeError{Code: "invalid_request", Description: "malformed scope"}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, &ExchangeError{Description: "context ended", cause: err, abandoned: true}
	}
	key := exchangeKeyOf(kindExchange, subjectToken, resource, scopes)
	cred, err := e.do(ctx, key, key, func(ctx context.Context) (Credential, time.Time, error) {
		return e.post(ctx, subjectToken, resource, scopes)
	})
	if err != nil {
		return nil, err
	}
	return &ExchangedToken{AccessToken: cred.AccessToken, ExpiresAt: cred.ExpiresAt, Scopes: cred.Scopes}, nil
}

// do returns the cached result for cacheKey, or joins or starts the flight
// flightKey (which stores its result under cacheKey). The request outlives
// a caller whose ctx ends, for the others; that caller gets an
// *ExchangeError matching ctx.Err().
func (e *Exchanger) do(ctx context.Context, cacheKey, flightKey exchangeKey, post postFunc) (*Credential, error) {
	e.mu.Lock()
	if cacheKey == flightKey {
		if ent, ok := e.cache[cacheKey]; ok {
			if e.now().Before(ent.refreshAt) {
				e.mu.Unlock()
				return ent.cred.clone(), nil
			}
			delete(e.cache, cacheKey)
		}
	}
	f, shared := e.flights[flightKey]
	if !shared {
		f = &exchangeFlight{done: make(chan struct{})}
		e.flights[flightKey] = f
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), exchangeTimeout)
		go func() {
			defer cancel()
			e.run(rctx, cacheKey, flightKey, f, post)
		}()
	}
	e.mu.Unlock()

	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, &ExchangeError{Description: "gave up waiting for the token endpoint", cause: ctx.Err(), abandoned: true}
	}
	if f.err != nil {
		return nil, f.err
	}
	return f.cred.clone(), nil
}

func (c *Credential) clone() *Credential {
	cc := *c
	cc.Scopes = slices.Clone(c.Scopes)
	return &cc
}

// run performs one token request for all callers waiting on f and caches
// its result under cacheKey.
func (e *Exchanger) run(ctx context.Context, cacheKey, flightKey exchangeKey, f *exchangeFlight, post postFunc) {
	cred, refreshAt, err := post(ctx)
	e.mu.Lock()
	delete(e.flights, flightKey)
	f.cred, f.err = cred, err
	if err == nil && e.maxEntries > 0 && !refreshAt.IsZero() && e.now().Before(refreshAt) {
		e.makeRoom()
		e.cache[cacheKey] = exchangeEntry{cred: cred, refreshAt: refreshAt}
	}
	e.mu.Unlock()
	close(f.done)
	what := "token exchange"
	if cred.Provider != "" || errors.Is(err, ErrConnectionRequired) {
		what = "credential retrieval"
	}
	if err != nil {
		e.logger.InfoContext(ctx, "mcpauth: "+what+" failed", "err", err)
	} else {
		e.logger.DebugContext(ctx, "mcpauth: "+what+" done", "provider", cred.Provider, "scope", strings.Join(cred.Scopes, " "))
	}
}

// makeRoom keeps the cache below its bound: expired entries go first, then
// the one due for refresh soonest. Called with e.mu held.
func (e *Exchanger) makeRoom() {
	if len(e.cache) < e.maxEntries {
		return
	}
	now := e.now()
	var soonest exchangeKey
	var soonestAt time.Time
	for k, ent := range e.cache {
		if !now.Before(ent.refreshAt) {
			delete(e.cache, k)
			continue
		}
		if soonestAt.IsZero() || ent.refreshAt.Before(soonestAt) {
			soonest, soonestAt = k, ent.refreshAt
		}
	}
	if len(e.cache) >= e.maxEntries {
		delete(e.cache, soonest)
	}
}

// Kinds of cached results, the first part of their key.
const (
	kindExchange   = "exchange"
	kindConnection = "connection"
	kindForced     = "connection-forced" // a flight only, never cached
)

// exchangeKeyOf hashes the cache key, so that the cache holds no incoming
// token; each part is length-prefixed so no two keys collide by
// concatenation.
func exchangeKeyOf(kind, subjectToken, resource string, scopes []string) exchangeKey {
	h := sha256.New()
	write := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	write(kind)
	write(subjectToken)
	write(resource)
	for _, s := range scopes {
		write(s)
	}
	var k exchangeKey
	h.Sum(k[:0])
	return k
}

// tokenResponse is RFC 8693 §2.2.1 (and the error fields of RFC 6749 §5.2).
type tokenResponse struct {
	AccessToken     string      `json:"access_token"`
	IssuedTokenType string      `json:"issued_token_type"`
	TokenType       string      `json:"token_type"`
	ExpiresIn       json.Number `json:"expires_in"`
	Scope           *string     `json:"scope"`
	Error           string      `json:"error"`
	ErrorDesc       string      `json:"error_description"`
}

// post sends the exchange request and returns the token and when to
// refresh it (zero: do not cache).
func (e *Exchanger) post(ctx context.Context, subjectToken, resource string, scopes []string) (Credential, time.Time, error) {
	form := url.Values{
		"grant_type":           {grantTokenExchange},
		"subject_token":        {subjectToken},
		"subject_token_type":   {tokenTypeAccessToken},
		"requested_token_type": {tokenTypeAccessToken},
		"resource":             {resource},
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	status, body, received, err := e.postForm(ctx, form)
	if err != nil {
		return Credential{}, time.Time{}, err
	}
	tok, refreshAt, err := parseTokenResponse(status, body, received, scopes, e.refreshBefore)
	if err != nil {
		return Credential{}, time.Time{}, err
	}
	return Credential{AccessToken: tok.AccessToken, TokenType: "Bearer", ExpiresAt: tok.ExpiresAt, Scopes: tok.Scopes}, refreshAt, nil
}

// postForm sends form to the token endpoint, authenticated as this
// server's client, and returns the answer's status and body and when it
// arrived. Its errors are *ExchangeError.
func (e *Exchanger) postForm(ctx context.Context, form url.Values) (int, []byte, time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, time.Time{}, &ExchangeError{Description: "token request failed", cause: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: client_id and secret are form-urlencoded before Basic.
	req.SetBasicAuth(url.QueryEscape(e.clientID), url.QueryEscape(e.secret))
	resp, err := e.client.Do(req)
	if err != nil {
		// The transport error may quote the endpoint, never a token: those
		// travel only in the body.
		return 0, nil, time.Time{}, &ExchangeError{Description: "token endpoint unreachable", cause: err}
	}
	defer resp.Body.Close()
	received := e.now()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocBytes+1))
	if err != nil {
		return 0, nil, time.Time{}, &ExchangeError{StatusCode: resp.StatusCode, Description: "token response unreadable", cause: err}
	}
	return resp.StatusCode, body, received, nil
}

// parseTokenResponse reads a token endpoint's answer (RFC 8693 §2.2, RFC
// 6749 §5.2) and returns the token and when to refresh it (zero: do not
// cache).
func parseTokenResponse(status int, body []byte, received time.Time, requested []string, refreshBefore time.Duration) (ExchangedToken, time.Time, error) {
	var tr tokenResponse
	var decodeErr error
	if len(body) > maxDocBytes {
		decodeErr = errors.New("document too large")
	} else {
		decodeErr = json.Unmarshal(body, &tr)
	}
	if status != http.StatusOK {
		xe := &ExchangeError{StatusCode: status, Description: "token endpoint refused"}
		if decodeErr == nil && tr.Error != "" && validScopeToken(tr.Error) {
			xe.Code = tr.Error
			xe.Description = cleanDescription(tr.ErrorDesc)
		}
		return ExchangedToken{}, time.Time{}, xe
	}
	bad := func(why string) (ExchangedToken, time.Time, error) {
		return ExchangedToken{}, time.Time{}, &ExchangeError{StatusCode: status, Description: why, cause: decodeErr}
	}
	switch {
	case decodeErr != nil:
		return bad("token response malformed")
	// It goes into an Authorization header as is (RFC 6750 §2.1).
	case len(tr.AccessToken) > maxTokenBytes || !isToken68(tr.AccessToken):
		return bad("token response has no usable access_token")
	// RFC 8693 §2.2.1: issued_token_type is REQUIRED; anything but an
	// access token cannot be sent to a resource.
	case tr.IssuedTokenType != tokenTypeAccessToken:
		return bad("token response issued_token_type is not access_token")
	// A DPoP-bound token (RFC 9449) would need a proof this helper does
	// not make.
	case !strings.EqualFold(tr.TokenType, "Bearer"):
		return bad("token response token_type is not Bearer")
	}
	tok := ExchangedToken{AccessToken: tr.AccessToken, Scopes: slices.Clone(requested)}
	if tr.Scope != nil {
		tok.Scopes = strings.Fields(*tr.Scope)
	}
	var refreshAt time.Time
	if tr.ExpiresIn != "" {
		secs, err := tr.ExpiresIn.Int64()
		if err != nil || secs < 0 || secs > 1e9 {
			return bad("token response expires_in malformed")
		}
		life := time.Duration(secs) * time.Second
		tok.ExpiresAt = received.Add(life)
		refreshAt = tok.ExpiresAt.Add(-min(refreshBefore, life/2))
	}
	return tok, refreshAt, nil
}

func cleanDescription(s string) string {
	s = quoteSafe(s)
	if len(s) > maxDescription {
		s = s[:maxDescription]
	}
	return s
}
