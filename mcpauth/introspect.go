package mcpauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// maxCachedTokens bounds the introspection cache; when full it is emptied,
// which costs only extra introspection calls.
const maxCachedTokens = 10000

// introspector asks the hub whether a token is active (RFC 7662 §2) and
// remembers positive answers briefly. Negative answers are never cached, so a
// revocation is seen on the next request once the positive entry expires.
type introspector struct {
	endpoint string
	clientID string
	secret   string
	ttl      time.Duration // <= 0: no cache
	client   *http.Client
	now      func() time.Time

	mu    sync.Mutex
	cache map[[sha256.Size]byte]cached
}

type cached struct {
	claims *Claims
	until  time.Time
}

// introspect returns the response's claims for an active token, or a
// *TokenError. exp, when known from a verified JWT, caps the cache lifetime.
func (in *introspector) introspect(ctx context.Context, token string, exp time.Time) (*Claims, error) {
	key := sha256.Sum256([]byte(token))
	now := in.now()
	if in.ttl > 0 {
		in.mu.Lock()
		e, ok := in.cache[key]
		if ok && now.Before(e.until) {
			in.mu.Unlock()
			return e.claims, nil
		}
		delete(in.cache, key)
		in.mu.Unlock()
	}

	c, err := in.post(ctx, token)
	if err != nil {
		return nil, err
	}

	if in.ttl > 0 {
		until := now.Add(in.ttl)
		if exp.IsZero() {
			exp = c.ExpiresAt
		}
		if !exp.IsZero() && exp.Before(until) {
			until = exp
		}
		in.mu.Lock()
		if len(in.cache) >= maxCachedTokens {
			clear(in.cache)
		}
		in.cache[key] = cached{claims: c, until: until}
		in.mu.Unlock()
	}
	return c, nil
}

func (in *introspector) post(ctx context.Context, token string) (*Claims, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, tokenErr(ErrUnavailable, "introspection request failed", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: client_id and secret are form-urlencoded before Basic.
	req.SetBasicAuth(url.QueryEscape(in.clientID), url.QueryEscape(in.secret))
	resp, err := in.client.Do(req)
	if err != nil {
		// The transport error may quote the endpoint but never the token,
		// which travels only in the body.
		return nil, tokenErr(ErrUnavailable, "introspection endpoint unreachable", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, tokenErr(ErrUnavailable, "introspection endpoint refused", fmt.Errorf("status %d", resp.StatusCode))
	}
	var body json.RawMessage
	if err := decodeJSON(resp.Body, &body); err != nil {
		return nil, tokenErr(ErrUnavailable, "introspection response malformed", err)
	}
	// RFC 7662 §2.2: active is REQUIRED and a boolean; anything but true is
	// inactive.
	var active struct {
		Active    bool   `json:"active"`
		TokenType string `json:"token_type"`
	}
	if err := json.Unmarshal(body, &active); err != nil {
		return nil, tokenErr(ErrUnavailable, "introspection response malformed", err)
	}
	if !active.Active {
		return nil, tokenErr(ErrTokenRevoked, "token is not active", nil)
	}
	// RFC 7662 §2.2 token_type: an active refresh token (which a hub
	// reports to the client that owns it) is not an access token.
	switch strings.ToLower(active.TokenType) {
	case "", "bearer", "access_token", "dpop":
	default:
		return nil, tokenErr(ErrTokenInvalid, "token is not an access token", nil)
	}
	c, err := parseClaims(body)
	if err != nil {
		return nil, tokenErr(ErrUnavailable, "introspection response malformed", err)
	}
	return c, nil
}
