package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/federation"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// Limits on failed client authentication, as token buckets that only
// failures fill (see throttle): per client id from one address, and per
// address. Client ids are public, so a limit on the id alone would let
// anyone with a few addresses make a client's own requests wait; as for
// sign-ins, the id is limited per address (docs/tokens.md).
var (
	clientAuthPerID = LoginLimit{PerMinute: 10, Burst: 10}
	clientAuthPerIP = LoginLimit{PerMinute: 20, Burst: 20}
)

// maxAuditedClientID bounds an attacker-chosen client id in the audit trail.
const maxAuditedClientID = 128

// errClientAuth is the one public answer to every failed client
// authentication: whether the client exists, is disabled, or presented the
// wrong secret or a bad assertion is not the caller's to learn (the reason
// is in the audit trail).
var errClientAuth = oauth.ErrInvalidClient("client authentication failed")

// authFailure is a failed authentication: reason is recorded in the audit
// trail and detail (never a secret) in the logs. public, when set, is
// answered instead of errClientAuth.
type authFailure struct {
	reason string
	detail error
	public *oauth.Error
}

func (f *authFailure) Error() string { return "client authentication failed: " + f.reason }

func (f *authFailure) Unwrap() error { return f.detail }

func failed(reason string, detail error) *authFailure {
	return &authFailure{reason: reason, detail: detail}
}

// dummySecretHash is compared against when the client is unknown, so that
// an unknown client costs what a wrong secret costs.
var dummySecretHash = token.Hash("agentid: no such client")

// authenticateClient is the one place every direct endpoint authenticates a
// client (RFC 6749 §2.3, RFC 7523 §3). Every failure is the same
// invalid_client; each is audited (client.auth_failed) and counted per
// client id and address and per address, and a key with too many recent
// failures is answered 429 with Retry-After before any check.
func (s *Server) authenticateClient(r *http.Request, ca oauth.ClientAuth) (*store.Client, error) {
	ctx := r.Context()
	id := ca.ClientID
	workload := s.workloadIssuer(ctx, ca)
	if id == "" && workload != nil {
		id = "workload:" + workload.ID
	}
	if id == "" && ca.Assertion != "" {
		sub, oe := oauth.PeekAssertionSubject(ca.Assertion)
		if oe != nil {
			return nil, oe
		}
		id = sub
	}
	if id == "" {
		return nil, oauth.ErrInvalidClient("client authentication is required")
	}
	addr := addressKey(clientIP(r))
	hIP, ok, wait := s.authIPThrottle.begin(addr)
	if !ok {
		return nil, oauth.ErrTooManyRequests(wait, "too many failed client authentications from this address; retry later")
	}
	hID, ok, wait := s.authIDThrottle.begin(id + "\x00" + addr)
	if !ok {
		s.authIPThrottle.end(hIP, false)
		return nil, oauth.ErrTooManyRequests(wait, "too many failed authentications for this client; retry later")
	}
	var c *store.Client
	var err error
	if workload != nil {
		c, err = s.verifyWorkload(r, ca)
	} else {
		c, err = s.verifyClient(r, id, ca)
	}
	var f *authFailure
	isFailure := errors.As(err, &f)
	s.authIPThrottle.end(hIP, isFailure)
	s.authIDThrottle.end(hID, isFailure)
	if !isFailure {
		return c, err
	}
	ev := audit.NewClientAuthFailed(s.meta(r), audit.ClientAuthFailedFields{
		ClientID: truncate(id, maxAuditedClientID), Reason: f.reason, AuthMethod: authMethod(ca),
	})
	if err := s.st.AppendAudit(ctx, ev); err != nil {
		return nil, err
	}
	if f.public != nil {
		return nil, f.public
	}
	return nil, errClientAuth.WithCause(f)
}

// workloadIssuer is the trusted issuer of a workload identity token sent
// as client_assertion (RFC 7523 §2.2 with the workload identity profile:
// iss is the platform, not the client, so iss differs from sub), or nil
// for every other request, which authenticates as a registered client.
func (s *Server) workloadIssuer(ctx context.Context, ca oauth.ClientAuth) *store.Issuer {
	if ca.Assertion == "" {
		return nil
	}
	iss, _, err := federation.Peek(ca.Assertion)
	if err != nil || iss == "" {
		return nil
	}
	if sub, oe := oauth.PeekAssertionSubject(ca.Assertion); oe != nil || sub == iss {
		return nil
	}
	is, err := s.fed.Lookup(ctx, iss)
	if err != nil || is == nil || !slices.Contains(is.Uses, store.IssuerUseWorkload) {
		return nil
	}
	return is
}

// verifyWorkload authenticates the agent a workload identity token maps to
// (grant_jwtbearer.go): the token passes every federation check, is spent,
// and names the client_id sent, if any. A failure is an *authFailure.
func (s *Server) verifyWorkload(r *http.Request, ca oauth.ClientAuth) (*store.Client, error) {
	ctx := r.Context()
	a, err := s.fed.Verify(ctx, ca.Assertion, federation.Expect{
		Use: store.IssuerUseWorkload, Audiences: s.assertionAudiences(), SingleUse: true,
	})
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return nil, failed("workload_assertion_invalid", err)
	}
	if err != nil {
		return nil, err
	}
	if err := refuseUnhonoured(a); err != nil {
		return nil, failed("workload_assertion_invalid", err)
	}
	if err := s.refuseResourceAudience(ctx, a); err != nil {
		if errors.As(err, &oe) {
			return nil, failed("workload_assertion_invalid", err)
		}
		return nil, err
	}
	c, err := s.workloadAgent(ctx, r, a)
	if errors.As(err, &oe) {
		return nil, failed("workload_unmapped", err)
	}
	if err != nil {
		return nil, err
	}
	if ca.ClientID != "" && ca.ClientID != c.ID {
		return nil, failed("workload_client_mismatch", nil)
	}
	if c.Disabled {
		return nil, failed("client_disabled", nil)
	}
	return c, nil
}

// authMethod names how the request tried to authenticate, for the audit
// trail.
func authMethod(ca oauth.ClientAuth) string {
	switch {
	case ca.Assertion != "":
		return "private_key_jwt"
	case ca.ClientSecret != "":
		return "client_secret"
	default:
		return "none"
	}
}

// verifyClient checks the credentials of client id. A failure is an
// *authFailure; any other error is the store's. A client_id that names a
// Client ID Metadata Document is resolved through its (cached) document;
// one that cannot be used is invalid_client saying why (cimd_blocked,
// cimd_fetch or cimd_invalid in the audit trail).
func (s *Server) verifyClient(r *http.Request, id string, ca oauth.ClientAuth) (*store.Client, error) {
	ctx := r.Context()
	found, err := s.lookupClient(ctx, r, id, true, false)
	var ce *cimdError
	if errors.As(err, &ce) {
		f := failed("cimd_"+ce.reason, err)
		f.public = oauth.ErrInvalidClient("%s", ce.msg)
		return nil, f
	}
	if errors.Is(err, store.ErrNotFound) {
		// The same work as a wrong secret.
		token.EqualHash(token.Hash(ca.ClientSecret), dummySecretHash)
		return nil, failed("unknown_client", nil)
	}
	if err != nil {
		return nil, err
	}
	c, err := s.checkCredentials(ctx, found.client, ca)
	var f *authFailure
	if errors.As(err, &f) && f.reason == "assertion_invalid" && !found.fetched && found.client.RegistrationMethod == store.RegistrationCIMD {
		// The client may have just rotated the keys its document lists:
		// fetch the document again (at most every cimdRefetchGap) and
		// check once more.
		again, lerr := s.lookupClient(ctx, r, id, true, true)
		if lerr == nil && again.fetched {
			return s.checkCredentials(ctx, again.client, ca)
		}
	}
	return c, err
}

// checkCredentials checks the credentials ca against client c.
func (s *Server) checkCredentials(ctx context.Context, c *store.Client, ca oauth.ClientAuth) (*store.Client, error) {
	if c.Disabled {
		return nil, failed("client_disabled", nil)
	}
	switch c.TokenEndpointAuthMethod {
	case "none":
		// Public clients authenticate by client_id alone; an empty Basic
		// password is what x/oauth2's auto-detection sends first.
		if ca.ClientSecret != "" || ca.Assertion != "" {
			return nil, failed("public_client_with_credentials", nil)
		}
		return c, nil
	case "client_secret_basic", "client_secret_post":
		// Both secret methods are accepted whichever was registered, as MCP
		// clients try one and then the other.
		if ca.ClientSecret == "" || len(c.SecretHash) == 0 {
			token.EqualHash(token.Hash(ca.ClientSecret), dummySecretHash)
			return nil, failed("secret_missing", nil)
		}
		if !token.EqualHash(token.Hash(ca.ClientSecret), c.SecretHash) {
			return nil, failed("secret_mismatch", nil)
		}
		if !c.SecretExpiresAt.IsZero() && !s.now().Before(c.SecretExpiresAt) {
			// Only the holder of the right secret learns it has expired.
			f := failed("secret_expired", nil)
			f.public = oauth.ErrInvalidClient("client secret has expired")
			return nil, f
		}
		return c, nil
	case "private_key_jwt":
		if ca.Assertion == "" {
			return nil, failed("assertion_missing", nil)
		}
		keys, err := s.clientKeys(ctx, c, oauth.PeekAssertionKeyID(ca.Assertion))
		if err != nil {
			return nil, failed("no_usable_keys", err)
		}
		claims, oe := oauth.VerifyClientAssertion(ca.Assertion, keys, c.ID, []string{s.issuer, s.issuer + "/token"}, s.now())
		if oe != nil {
			return nil, failed("assertion_invalid", oe)
		}
		// RFC 7523 §3 item 7: a jti is single-use until the assertion expires.
		// The jti is remembered for as long as the assertion verifies: until
		// exp plus the clock-skew leeway.
		if err := s.st.UseJTI(ctx, "client_assertion:"+c.ID, claims.JTI, claims.Expiry.Add(oauth.AssertionReplayWindow), s.now()); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return nil, failed("assertion_replayed", nil)
			}
			return nil, err
		}
		return c, nil
	default:
		return nil, failed("unsupported_auth_method", nil)
	}
}

// keyCache keeps each client's parsed JWKS so that private_key_jwt does not
// parse keys per request; an entry is replaced when the client's JWKS text
// changes.
type keyCache struct {
	mu sync.Mutex
	m  map[string]cachedKeys
}

type cachedKeys struct {
	src  string
	keys *jose.JSONWebKeySet
}

var errNoJWKS = errors.New("client has no jwks")

// clientKeys returns the keys that verify c's assertions: its registered
// jwks, or the set at its jwks_uri, fetched through the hub's fetcher
// (fetch.KeySets: cached, fetched again when kid is not in it, at most
// every 30 s) and bounded as registered sets are.
func (s *Server) clientKeys(ctx context.Context, c *store.Client, kid string) (*jose.JSONWebKeySet, error) {
	if c.JWKS == "" && c.JWKSURI != "" {
		set, err := s.keySets.Get(ctx, c.JWKSURI, kid)
		if err != nil {
			return nil, err
		}
		if len(set.Keys) > oauth.MaxClientKeys {
			return nil, fmt.Errorf("the key set at %s has more than %d keys", c.JWKSURI, oauth.MaxClientKeys)
		}
		return set, nil
	}
	if c.JWKS == "" {
		return nil, errNoJWKS
	}
	s.keyCache.mu.Lock()
	defer s.keyCache.mu.Unlock()
	if e, ok := s.keyCache.m[c.ID]; ok && e.src == c.JWKS {
		return e.keys, nil
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(c.JWKS), &set); err != nil {
		return nil, err
	}
	if s.keyCache.m == nil {
		s.keyCache.m = make(map[string]cachedKeys)
	}
	if len(s.keyCache.m) > 10000 {
		clear(s.keyCache.m)
	}
	s.keyCache.m[c.ID] = cachedKeys{src: c.JWKS, keys: &set}
	return &set, nil
}
