package loadtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/mcpauth"
)

// The scenarios, in the order a full run measures them.
const (
	ClientCredentials = "client-credentials"
	Refresh           = "refresh"
	Exchange          = "exchange"
	Introspection     = "introspection"
	Retrieval         = "retrieval"
	MCPAuthVerify     = "mcpauth-verify"
	// RawVerify is the floor mcpauth-verify is compared with: the same
	// tokens' signatures checked with crypto/ecdsa (or crypto/ed25519)
	// alone, under the same key.
	RawVerify = "raw-verify"
)

// Scenarios lists every scenario name.
var Scenarios = []string{ClientCredentials, Refresh, Exchange, Introspection, Retrieval, MCPAuthVerify, RawVerify}

// Bench is a prepared fixture: what every scenario presents.
type Bench struct {
	fx *Fixture
	hc *http.Client
	// cl makes the scenarios' requests, bufs[worker] is each worker's
	// memory for them.
	cl   *client
	bufs []exchangeBuf
	// chains are the refresh tokens, one per worker: each worker rotates
	// its own, so no two requests present the same one.
	chains []string
	// subjects are user access tokens for the fixture's resource, which
	// exchange, introspection, retrieval and verification present in
	// turn; formSubjects the same, form-encoded.
	subjects     []string
	formSubjects []string
	next         atomic.Uint64
}

// Prepare readies fx for concurrency workers: a person signs in and runs
// a code flow per worker (each worker's refresh token), the refresh
// tokens are rotated until there are subjects distinct access tokens, and,
// when fx has a provider, the person saves an API key there.
func Prepare(ctx context.Context, fx *Fixture, hc *http.Client, concurrency, subjects int) (*Bench, error) {
	hubs := fx.Hubs
	if len(hubs) == 0 {
		hubs = []string{fx.Issuer}
	}
	cl, err := newClient(hubs, concurrency)
	if err != nil {
		return nil, err
	}
	// Cancelling ctx ends the requests under way: their connections close.
	context.AfterFunc(ctx, cl.closeAll)
	b := &Bench{fx: fx, hc: hc, cl: cl, bufs: make([]exchangeBuf, concurrency), chains: make([]string, concurrency)}
	p := newPerson(fx)
	for i := range b.chains {
		tr, err := p.userTokens(ctx, hc)
		if err != nil {
			return nil, fmt.Errorf("the code flow: %w", err)
		}
		b.chains[i] = tr.RefreshToken
		b.subjects = append(b.subjects, tr.AccessToken)
	}
	// More subject tokens by rotating the chains, in parallel.
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for i := range b.chains {
		wg.Go(func() {
			for {
				mu.Lock()
				done := len(b.subjects) >= subjects || firstErr != nil
				mu.Unlock()
				if done {
					return
				}
				tr, _, err := b.refresh(ctx, i)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("refreshing for subject tokens: %w", err)
				} else if err == nil {
					b.subjects = append(b.subjects, tr.AccessToken)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if fx.Provider != "" {
		if err := p.connectAPIKey(ctx); err != nil {
			return nil, fmt.Errorf("connecting the provider: %w", err)
		}
	}
	for _, s := range b.subjects {
		b.formSubjects = append(b.formSubjects, url.QueryEscape(s))
	}
	return b, nil
}

// Close closes the scenarios' connections.
func (b *Bench) Close() { b.cl.closeAll() }

// Subjects is the number of distinct user access tokens the scenarios
// present in turn.
func (b *Bench) Subjects() int { return len(b.subjects) }

// subject is the index of the next subject token.
func (b *Bench) subject() int {
	return int((b.next.Add(1) - 1) % uint64(len(b.subjects)))
}

// refresh rotates worker's refresh token (RFC 6749 §6) and keeps the new one.
func (b *Bench) refresh(ctx context.Context, worker int) (*tokenResponse, int, error) {
	tr, status, err := token(ctx, b.hc, b.fx.Issuer, &b.fx.Agent, url.Values{
		"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {b.chains[worker]},
	})
	if err != nil {
		return nil, status, err
	}
	if tr.RefreshToken == "" {
		return nil, status, errors.New("the refresh grant returned no refresh token")
	}
	b.chains[worker] = tr.RefreshToken
	return tr, status, nil
}

// Op returns the operation of scenario name. The verification scenarios
// fetch the hub's key set first, so that they measure a warm cache.
//
// The HTTP scenarios send requests prebuilt but for the subject or
// refresh token, and read of the answer what decides success: the status,
// and that a /token answer holds an access token (a refresh's, a refresh
// token; an introspection's, "active": true), found without decoding the
// whole JSON unless the compact form is not there.
func (b *Bench) Op(ctx context.Context, name string) (Op, error) {
	fx := b.fx
	switch name {
	case ClientCredentials:
		req := b.cl.newRequest("/token", &fx.CC)
		form := url.Values{"grant_type": {oauth.GrantClientCredentials}, "resource": {fx.Resource}, "scope": {fx.Scope}}.Encode()
		return func(ctx context.Context, worker int) (int, error) {
			ans, err := b.cl.do(ctx, worker, req, &b.bufs[worker], form)
			if err != nil {
				return 0, err
			}
			_, err = tokenAnswer(ans, "")
			return ans.status, err
		}, nil
	case Refresh:
		req := b.cl.newRequest("/token", &fx.Agent)
		prefix := url.Values{"grant_type": {oauth.GrantRefreshToken}}.Encode() + "&refresh_token="
		return func(ctx context.Context, worker int) (int, error) {
			ans, err := b.cl.do(ctx, worker, req, &b.bufs[worker], prefix, url.QueryEscape(b.chains[worker]))
			if err != nil {
				return 0, err
			}
			rt, err := tokenAnswer(ans, "refresh_token")
			if err == nil {
				b.chains[worker] = rt
			}
			return ans.status, err
		}, nil
	case Exchange, Retrieval:
		// RFC 8693 §2.1; a retrieval is an exchange whose resource is a
		// provider of the hub's vault.
		target, scope := fx.Target, fx.TargetScope
		if name == Retrieval {
			if fx.Provider == "" {
				return nil, errors.New("the fixture has no provider for retrieval")
			}
			target, scope = fx.Issuer+"/providers/"+url.PathEscape(fx.Provider), ""
		}
		form := url.Values{"grant_type": {oauth.GrantTokenExchange}, "subject_token_type": {oauth.TokenTypeAccessToken}, "resource": {target}}
		if scope != "" {
			form.Set("scope", scope)
		}
		req := b.cl.newRequest("/token", &fx.Server)
		prefix := form.Encode() + "&subject_token="
		return func(ctx context.Context, worker int) (int, error) {
			ans, err := b.cl.do(ctx, worker, req, &b.bufs[worker], prefix, b.formSubjects[b.subject()])
			if err != nil {
				return 0, err
			}
			_, err = tokenAnswer(ans, "")
			return ans.status, err
		}, nil
	case Introspection:
		// RFC 7662 §2.1.
		req := b.cl.newRequest("/introspect", &fx.Server)
		return func(ctx context.Context, worker int) (int, error) {
			ans, err := b.cl.do(ctx, worker, req, &b.bufs[worker], "token=", b.formSubjects[b.subject()])
			if err != nil {
				return 0, err
			}
			return ans.status, introspectionAnswer(ans)
		}, nil
	case MCPAuthVerify:
		v, err := mcpauth.NewVerifier(ctx, mcpauth.Config{Issuer: fx.Issuer, Resource: fx.Resource, HTTPClient: b.hc})
		if err != nil {
			return nil, err
		}
		// Warm: the first verification fetches the key set.
		if _, err := v.Verify(ctx, b.subjects[0]); err != nil {
			return nil, fmt.Errorf("mcpauth refused the hub's token: %w", err)
		}
		return func(ctx context.Context, _ int) (int, error) {
			_, err := v.Verify(ctx, b.subjects[b.subject()])
			return 0, err
		}, nil
	case RawVerify:
		keys, err := b.jwks(ctx)
		if err != nil {
			return nil, err
		}
		return func(context.Context, int) (int, error) {
			return 0, rawVerify(keys, b.subjects[b.subject()])
		}, nil
	}
	return nil, fmt.Errorf("unknown scenario %q (one of %s)", name, strings.Join(Scenarios, ", "))
}

// jwks fetches the hub's key set.
func (b *Bench) jwks(ctx context.Context) (*jose.JSONWebKeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.fx.Issuer+"/jwks.json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /jwks.json: HTTP %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&set); err != nil {
		return nil, fmt.Errorf("GET /jwks.json: %w", err)
	}
	return &set, nil
}

// rawVerify checks tok's signature and nothing else: the signing input's
// hash and one crypto/ecdsa (ES256) or crypto/ed25519 (EdDSA)
// verification under the key its kid names. The header is read only for
// the kid, as a verifier must; the claims are not decoded.
func rawVerify(keys *jose.JSONWebKeySet, tok string) error {
	dot := strings.IndexByte(tok, '.')
	last := strings.LastIndexByte(tok, '.')
	if dot < 0 || last == dot {
		return errors.New("not a compact JWS")
	}
	hdr, err := base64.RawURLEncoding.DecodeString(tok[:dot])
	if err != nil {
		return err
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(hdr, &h); err != nil {
		return err
	}
	ks := keys.Key(h.Kid)
	if len(ks) == 0 {
		return errors.New("unknown kid")
	}
	sig, err := base64.RawURLEncoding.DecodeString(tok[last+1:])
	if err != nil {
		return err
	}
	input := tok[:last]
	switch k := ks[0].Key.(type) {
	case *ecdsa.PublicKey:
		// RFC 7518 §3.4: R || S, 32 bytes each for P-256.
		if len(sig) != 64 {
			return errors.New("not an ES256 signature")
		}
		sum := sha256.Sum256([]byte(input))
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(k, sum[:], r, s) {
			return errors.New("ES256 signature does not verify")
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(k, []byte(input), sig) {
			return errors.New("EdDSA signature does not verify")
		}
	default:
		return fmt.Errorf("key type %T not measured", k)
	}
	return nil
}

// tokenAnswer checks a /token answer: 200 and an access token in a JSON
// object; with field, it returns that string field too, which must not be
// empty. A failure's error has the OAuth error code and description.
func tokenAnswer(ans answer, field string) (string, error) {
	if ans.status != http.StatusOK {
		return "", answerError("POST /token", ans)
	}
	body := bytes.TrimSpace(ans.body)
	if len(body) >= 2 && body[0] == '{' && body[len(body)-1] == '}' {
		if at, ok := compactString(body, "access_token"); ok && at != "" {
			if field == "" {
				return "", nil
			}
			if v, ok := compactString(body, field); ok && v != "" {
				return v, nil
			}
		}
	}
	// Not in the compact form the hub writes: the whole decode decides.
	var tr map[string]any
	if err := json.Unmarshal(ans.body, &tr); err != nil {
		return "", fmt.Errorf("POST /token: undecodable answer: %w", err)
	}
	if at, _ := tr["access_token"].(string); at == "" {
		return "", errors.New("POST /token: no access_token in the answer")
	}
	if field == "" {
		return "", nil
	}
	v, _ := tr[field].(string)
	if v == "" {
		return "", fmt.Errorf("POST /token: no %s in the answer", field)
	}
	return v, nil
}

// introspectionAnswer checks an introspection answer says the token is
// active (RFC 7662 §2.2).
func introspectionAnswer(ans answer) error {
	if ans.status != http.StatusOK {
		return answerError("POST /introspect", ans)
	}
	body := bytes.TrimSpace(ans.body)
	if len(body) >= 2 && body[0] == '{' && body[len(body)-1] == '}' && bytes.Contains(body, []byte(`"active":true`)) {
		return nil
	}
	var v struct {
		Active *bool `json:"active"`
	}
	if err := json.Unmarshal(ans.body, &v); err != nil || v.Active == nil {
		return fmt.Errorf("POST /introspect: not an introspection answer (%v)", err)
	}
	if !*v.Active {
		return errors.New("POST /introspect: the token is not active")
	}
	return nil
}

// answerError is a failed answer's error: its status and, when the body
// is an OAuth error (RFC 6749 §5.2), the code and description.
func answerError(what string, ans answer) error {
	var oe tokenResponse
	_ = json.Unmarshal(ans.body, &oe)
	return &statusError{what: what, status: ans.status, code: oe.Error, desc: oe.Description}
}

// compactString finds "key":"value" in a JSON object written without
// spaces (as encoding/json writes it) and returns the value when it has no
// escape. A quote inside a JSON string is escaped, so the pattern cannot
// match inside another value; the hub's token answers are flat objects.
func compactString(body []byte, key string) (string, bool) {
	pat := make([]byte, 0, len(key)+5)
	pat = append(append(append(pat, '"'), key...), `":"`...)
	i := bytes.Index(body, pat)
	if i < 0 {
		return "", false
	}
	rest := body[i+len(pat):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return "", false
	}
	return string(rest[:j]), true
}
