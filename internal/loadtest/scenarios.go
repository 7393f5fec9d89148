package loadtest

import (
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
	// chains are the refresh tokens, one per worker: each worker rotates
	// its own, so no two requests present the same one.
	chains []string
	// subjects are user access tokens for the fixture's resource, which
	// exchange, introspection, retrieval and verification present in turn.
	subjects []string
	next     atomic.Uint64
}

// Prepare readies fx for concurrency workers: a person signs in and runs
// a code flow per worker (each worker's refresh token), the refresh
// tokens are rotated until there are subjects distinct access tokens, and,
// when fx has a provider, the person saves an API key there.
func Prepare(ctx context.Context, fx *Fixture, hc *http.Client, concurrency, subjects int) (*Bench, error) {
	b := &Bench{fx: fx, hc: hc, chains: make([]string, concurrency)}
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
	return b, nil
}

// Subjects is the number of distinct user access tokens the scenarios
// present in turn.
func (b *Bench) Subjects() int { return len(b.subjects) }

func (b *Bench) subject() string {
	return b.subjects[(b.next.Add(1)-1)%uint64(len(b.subjects))]
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
func (b *Bench) Op(ctx context.Context, name string) (Op, error) {
	fx := b.fx
	switch name {
	case ClientCredentials:
		form := url.Values{"grant_type": {oauth.GrantClientCredentials}, "resource": {fx.Resource}, "scope": {fx.Scope}}
		return func(ctx context.Context, _ int) (int, error) {
			_, status, err := token(ctx, b.hc, fx.Issuer, &fx.CC, form)
			return status, err
		}, nil
	case Refresh:
		return func(ctx context.Context, worker int) (int, error) {
			_, status, err := b.refresh(ctx, worker)
			return status, err
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
		return func(ctx context.Context, _ int) (int, error) {
			form := url.Values{
				"grant_type": {oauth.GrantTokenExchange}, "subject_token": {b.subject()},
				"subject_token_type": {oauth.TokenTypeAccessToken}, "resource": {target},
			}
			if scope != "" {
				form.Set("scope", scope)
			}
			_, status, err := token(ctx, b.hc, fx.Issuer, &fx.Server, form)
			return status, err
		}, nil
	case Introspection:
		return func(ctx context.Context, _ int) (int, error) {
			var ans struct {
				Active bool `json:"active"`
			}
			// RFC 7662 §2.1.
			status, err := post(ctx, b.hc, fx.Issuer, "/introspect", &fx.Server, url.Values{"token": {b.subject()}}, &ans)
			if err == nil && !ans.Active {
				err = errors.New("POST /introspect: the token is not active")
			}
			return status, err
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
			_, err := v.Verify(ctx, b.subject())
			return 0, err
		}, nil
	case RawVerify:
		keys, err := b.jwks(ctx)
		if err != nil {
			return nil, err
		}
		return func(context.Context, int) (int, error) {
			return 0, rawVerify(keys, b.subject())
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
