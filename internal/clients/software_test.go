package clients_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

type signer struct {
	iss string
	key any
	alg jose.SignatureAlgorithm
	kid string
}

func (s signer) public() jose.JSONWebKey {
	switch k := s.key.(type) {
	case *ecdsa.PrivateKey:
		return jose.JSONWebKey{Key: &k.PublicKey, KeyID: s.kid, Algorithm: string(s.alg), Use: "sig"}
	case ed25519.PrivateKey:
		return jose.JSONWebKey{Key: k.Public(), KeyID: s.kid, Algorithm: string(s.alg), Use: "sig"}
	}
	panic("key type")
}

func (s signer) sign(t testing.TB, claims map[string]any, hdr ...string) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	key := jose.JSONWebKey{Key: s.key, KeyID: s.kid}
	if len(hdr) > 0 {
		key.KeyID = hdr[0]
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]any{"iss": s.iss}
	for k, v := range claims {
		all[k] = v
	}
	out, err := jwt.Signed(sg).Claims(all).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func newSigner(t testing.TB, iss, kid string) signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{iss: iss, key: k, alg: jose.ES256, kid: kid}
}

// remoteKeys is a KeySource serving one set and counting fetches.
type remoteKeys struct {
	set   *jose.JSONWebKeySet
	fails bool
	uris  []string
}

func (r *remoteKeys) Get(_ context.Context, uri, _ string) (*jose.JSONWebKeySet, error) {
	r.uris = append(r.uris, uri)
	if r.fails {
		return nil, errors.New("fetch failed")
	}
	return r.set, nil
}

// TestStatementVerify: the verifier's table (RFC 7591 §2.3): trusted
// issuers only, asymmetric signatures by the issuer's keys (inline or
// remote), the time claims, and the JWT claims kept out of the metadata.
func TestStatementVerify(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	inline := newSigner(t, "https://inline.example", "k1")
	remote := newSigner(t, "https://remote.example", "r1")
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ed := signer{iss: "https://inline.example", key: edKey, alg: jose.EdDSA, kid: "ed"}
	impostor := newSigner(t, "https://inline.example", "k1")
	stranger := newSigner(t, "https://stranger.example", "k1")
	rk := &remoteKeys{set: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{remote.public()}}}
	v, err := clients.NewStatements([]clients.TrustedIssuer{
		{Issuer: inline.iss, Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{inline.public(), ed.public()}}},
		{Issuer: remote.iss, JWKSURI: "https://remote.example/jwks"},
	}, rk, clock)
	if err != nil {
		t.Fatal(err)
	}
	iat := now.Unix()
	good := []struct {
		name string
		jwt  string
	}{
		{"inline key", inline.sign(t, map[string]any{"software_id": "a", "iat": iat, "exp": iat + 60})},
		{"EdDSA", ed.sign(t, map[string]any{"software_id": "a"})},
		{"remote key", remote.sign(t, map[string]any{"software_id": "a"})},
		{"no kid", inline.sign(t, map[string]any{"software_id": "a"}, "")},
		{"exp within the leeway", inline.sign(t, map[string]any{"software_id": "a", "exp": iat - 30})},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			st, err := v.Verify(context.Background(), tt.jwt)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if string(st.Metadata["software_id"]) != `"a"` {
				t.Errorf("metadata %v", st.Metadata)
			}
			for _, c := range []string{"iss", "iat", "exp"} {
				if _, ok := st.Metadata[c]; ok {
					t.Errorf("JWT claim %s left in the metadata", c)
				}
			}
		})
	}
	bad := []struct {
		name string
		jwt  string
	}{
		{"impostor key", impostor.sign(t, map[string]any{"software_id": "a"})},
		{"unknown kid", inline.sign(t, map[string]any{"software_id": "a"}, "k9")},
		{"untrusted issuer", stranger.sign(t, map[string]any{"software_id": "a"})},
		{"no issuer", signer{key: inline.key, alg: jose.ES256, kid: "k1"}.sign(t, map[string]any{"software_id": "a"})},
		{"expired", inline.sign(t, map[string]any{"exp": iat - 120})},
		{"not yet valid", inline.sign(t, map[string]any{"nbf": iat + 120})},
		{"issued in the future", inline.sign(t, map[string]any{"iat": iat + 120})},
		{"alg none", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2lubGluZS5leGFtcGxlIn0."},
		{"HS256", func() string {
			sg, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(strings.Repeat("k", 32))}, nil)
			s, _ := jwt.Signed(sg).Claims(map[string]any{"iss": inline.iss}).Serialize()
			return s
		}()},
		{"too long", inline.sign(t, map[string]any{"client_name": strings.Repeat("n", 9<<10)})},
		{"garbage", "a.b.c"},
		{"empty", ""},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tt.jwt)
			var oe *oauth.Error
			if !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidSoftwareStatement {
				t.Fatalf("Verify = %v, want invalid_software_statement", err)
			}
			if tt.jwt != "" && strings.Contains(oe.Description, tt.jwt) {
				t.Error("the description quotes the statement")
			}
		})
	}
	t.Run("remote keys unavailable", func(t *testing.T) {
		rk.fails = true
		defer func() { rk.fails = false }()
		_, err := v.Verify(context.Background(), remote.sign(t, nil))
		var oe *oauth.Error
		if !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidSoftwareStatement {
			t.Fatalf("Verify = %v", err)
		}
	})
	var none *clients.Statements
	if _, err := none.Verify(context.Background(), inline.sign(t, nil)); err == nil {
		t.Error("a nil verifier accepted a statement")
	}
}

// TestMergeStatement: the statement's claims win over the request's
// (RFC 7591 §2.3) and the statement itself is dropped.
func TestMergeStatement(t *testing.T) {
	body := []byte(`{"client_name":"Request","redirect_uris":["http://127.0.0.1/cb"],"software_statement":"x","logo_uri":"https://a.example/l.png"}`)
	out, err := clients.MergeStatement(body, &clients.Statement{Issuer: "i", Metadata: map[string]json.RawMessage{
		"client_name": json.RawMessage(`"Statement"`), "software_id": json.RawMessage(`"sw"`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	m, oe := oauth.ParseClientMetadata(out)
	if oe != nil {
		t.Fatal(oe)
	}
	if m.ClientName != "Statement" || m.SoftwareID != "sw" || m.LogoURI != "https://a.example/l.png" || m.SoftwareStatement != "" || len(m.RedirectURIs) != 1 {
		t.Errorf("merged %+v", m)
	}
}

// TestSameRegistration: identical registrations match whatever loopback
// port they name; any other difference does not.
func TestSameRegistration(t *testing.T) {
	base := func() *store.Client {
		return &store.Client{
			RegistrationMethod: store.RegistrationDCR, TokenEndpointAuthMethod: "none", Name: "Agent", SoftwareID: "sw",
			RedirectURIs: []string{"http://127.0.0.1:50123/callback", "http://localhost:50123/callback"},
			GrantTypes:   []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
			ApplicationType: "native", Scopes: []string{"a", "b"}, RequestedScopes: []string{"a", "b"},
		}
	}
	other := base()
	other.RedirectURIs = []string{"http://localhost:61000/callback", "http://127.0.0.1:7/callback"}
	other.GrantTypes = []string{"refresh_token", "authorization_code"}
	if !clients.SameRegistration(base(), other) {
		t.Error("registrations differing in ports and order do not match")
	}
	for name, change := range map[string]func(*store.Client){
		"path": func(c *store.Client) {
			c.RedirectURIs = []string{"http://127.0.0.1:1/other", "http://localhost:1/callback"}
		},
		"https port":    func(c *store.Client) { c.RedirectURIs = []string{"https://a.example:8443/cb"} },
		"one fewer URI": func(c *store.Client) { c.RedirectURIs = c.RedirectURIs[:1] },
		"auth method":   func(c *store.Client) { c.TokenEndpointAuthMethod = "client_secret_basic" },
		"grant types":   func(c *store.Client) { c.GrantTypes = []string{"authorization_code"} },
		"name":          func(c *store.Client) { c.Name = "Other" },
		"version":       func(c *store.Client) { c.SoftwareVersion = "2" },
		"ceiling":       func(c *store.Client) { c.Scopes = []string{"a"} },
		"statement":     func(c *store.Client) { c.SoftwareStatementIssuer = "https://i.example" },
		"disabled":      func(c *store.Client) { c.Disabled = true },
		"method":        func(c *store.Client) { c.RegistrationMethod = store.RegistrationCIMD },
	} {
		c := base()
		change(c)
		if clients.SameRegistration(c, base()) {
			t.Errorf("%s: a different registration matches", name)
		}
	}
}

// FuzzStatementVerify: whatever the statement, Verify returns a statement
// of a trusted issuer or invalid_software_statement, and never panics.
func FuzzStatementVerify(f *testing.F) {
	s := newSigner(f, "https://inline.example", "k1")
	v, err := clients.NewStatements([]clients.TrustedIssuer{{Issuer: s.iss, Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{s.public()}}}}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s.sign(f, map[string]any{"software_id": "a"}))
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2lubGluZS5leGFtcGxlIn0.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		st, err := v.Verify(context.Background(), raw)
		if err != nil {
			var oe *oauth.Error
			if !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidSoftwareStatement {
				t.Fatalf("error %v is not invalid_software_statement", err)
			}
			return
		}
		if st.Issuer != s.iss {
			t.Fatalf("accepted a statement of %q", st.Issuer)
		}
	})
}
