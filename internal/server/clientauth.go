package server

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// authenticateClient is the one place every direct endpoint authenticates a
// client (RFC 6749 §2.3, RFC 7523 §3). Any failure is invalid_client.
func (s *Server) authenticateClient(ctx context.Context, ca oauth.ClientAuth) (*store.Client, error) {
	id := ca.ClientID
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
	c, err := s.clients.get(id, func() (*store.Client, error) { return s.st.GetClient(ctx, s.tenant, id) })
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.ErrInvalidClient("unknown client")
	}
	if err != nil {
		return nil, err
	}
	if c.Disabled {
		return nil, oauth.ErrInvalidClient("client is disabled")
	}
	switch c.TokenEndpointAuthMethod {
	case "none":
		// Public clients authenticate by client_id alone; an empty Basic
		// password is what x/oauth2's auto-detection sends first.
		if ca.ClientSecret != "" || ca.Assertion != "" {
			return nil, oauth.ErrInvalidClient("public clients must not present credentials")
		}
		return c, nil
	case "client_secret_basic", "client_secret_post":
		// Both secret methods are accepted whichever was registered, as MCP
		// clients try one and then the other.
		if ca.ClientSecret == "" || len(c.SecretHash) == 0 {
			return nil, oauth.ErrInvalidClient("client secret is required")
		}
		if !token.EqualHash(token.Hash(ca.ClientSecret), c.SecretHash) {
			return nil, oauth.ErrInvalidClient("client authentication failed")
		}
		if !c.SecretExpiresAt.IsZero() && !s.now().Before(c.SecretExpiresAt) {
			return nil, oauth.ErrInvalidClient("client secret has expired")
		}
		return c, nil
	case "private_key_jwt":
		if ca.Assertion == "" {
			return nil, oauth.ErrInvalidClient("this client authenticates with private_key_jwt")
		}
		keys, err := s.clientKeys(c)
		if err != nil {
			return nil, oauth.ErrInvalidClient("client has no usable keys").WithCause(err)
		}
		claims, oe := oauth.VerifyClientAssertion(ca.Assertion, keys, c.ID, []string{s.issuer, s.issuer + "/token"}, s.now())
		if oe != nil {
			return nil, oe
		}
		// RFC 7523 §3 item 7: a jti is single-use until the assertion expires.
		// The jti is remembered for as long as the assertion verifies: until
		// exp plus the clock-skew leeway.
		if err := s.st.UseJTI(ctx, "client_assertion:"+c.ID, claims.JTI, claims.Expiry.Add(oauth.AssertionReplayWindow), s.now()); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return nil, oauth.ErrInvalidClient("client assertion was already used")
			}
			return nil, err
		}
		return c, nil
	default:
		return nil, oauth.ErrInvalidClient("client has an unsupported authentication method")
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

func (s *Server) clientKeys(c *store.Client) (*jose.JSONWebKeySet, error) {
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
