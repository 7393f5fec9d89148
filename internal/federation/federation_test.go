package federation_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/internal/federation"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// fakeStore is an in-memory federation.Store.
type fakeStore struct {
	mu      sync.Mutex
	issuers []*store.Issuer
	reads   int
	jtis    map[string]time.Time
}

func (f *fakeStore) ListIssuers(_ context.Context, tenant string) ([]*store.Issuer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	out := make([]*store.Issuer, 0, len(f.issuers))
	for _, is := range f.issuers {
		c := *is
		out = append(out, &c)
	}
	return out, nil
}

func (f *fakeStore) UseJTI(_ context.Context, key, jti string, exp, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.jtis == nil {
		f.jtis = map[string]time.Time{}
	}
	k := key + "\x00" + jti
	if e, ok := f.jtis[k]; ok && now.Before(e) {
		return store.ErrConflict
	}
	f.jtis[k] = exp
	return nil
}

// clock is a moving test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const (
	hub    = "https://hub.example.com"
	idpISS = "https://idp.example.com"
)

type testKey struct {
	priv crypto.Signer
	kid  string
	alg  jose.SignatureAlgorithm
}

func newECKey(t testing.TB, kid string) *testKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{priv: k, kid: kid, alg: jose.ES256}
}

func (k *testKey) jwks(t testing.TB) string {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.priv.Public(), KeyID: k.kid, Use: "sig", Algorithm: string(k.alg)}}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (k *testKey) sign(t testing.TB, typ string, claims map[string]any) string {
	opts := (&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), k.kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unsigned builds a compact JWS with the header and claims given and the
// signature computed by sig over the signing input.
func unsigned(t testing.TB, header, claims map[string]any, sig func(input []byte) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return input + "." + base64.RawURLEncoding.EncodeToString(sig([]byte(input)))
}

type fixture struct {
	st  *fakeStore
	clk *clock
	reg *federation.Registry
	key *testKey
	is  *store.Issuer
}

func newFixture(t testing.TB) *fixture {
	key := newECKey(t, "k1")
	is := &store.Issuer{
		TenantID: store.DefaultTenant, ID: "idp", Issuer: idpISS, JWKS: key.jwks(t),
		Uses: []string{store.IssuerUseIDJAG, store.IssuerUseJWTBearer}, Algorithms: []string{"ES256"},
		MaxLifetime: 10 * time.Minute,
	}
	st := &fakeStore{issuers: []*store.Issuer{is}}
	clk := &clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	return &fixture{st: st, clk: clk, reg: federation.NewRegistry(st, "", nil, clk.now), key: key, is: is}
}

func (f *fixture) claims() map[string]any {
	now := f.clk.now()
	return map[string]any{
		"iss": idpISS, "sub": "alice", "aud": hub, "client_id": "agent",
		"jti": "jti-" + now.Format(time.RFC3339Nano), "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
}

var expectIDJAG = federation.Expect{Use: store.IssuerUseIDJAG, Audiences: []string{hub}, Type: federation.TypeIDJAG, SingleUse: true}

func TestVerifyAccepts(t *testing.T) {
	f := newFixture(t)
	c := f.claims()
	c["aud"] = []string{hub}
	c["scope"] = "read write"
	raw := f.key.sign(t, federation.TypeIDJAG, c)
	a, err := f.reg.Verify(context.Background(), raw, expectIDJAG)
	if err != nil {
		t.Fatal(err)
	}
	if a.Subject != "alice" || a.Audience != hub || a.Issuer.ID != "idp" || a.Type != federation.TypeIDJAG || a.String("scope") != "read write" || a.String("client_id") != "agent" {
		t.Fatalf("assertion = %+v", a)
	}
	if !a.Expiry.Equal(f.clk.now().Add(5*time.Minute)) || !a.IssuedAt.Equal(f.clk.now()) {
		t.Fatalf("times: iat %v exp %v", a.IssuedAt, a.Expiry)
	}
	// The same JWT again: a replay.
	if _, err := f.reg.Verify(context.Background(), raw, expectIDJAG); !isInvalidGrant(err, "already used") {
		t.Fatalf("replay: %v", err)
	}
}

func isInvalidGrant(err error, contains string) bool {
	var oe *oauth.Error
	return errors.As(err, &oe) && oe.Code == oauth.CodeInvalidGrant && strings.Contains(oe.Description, contains)
}

// TestVerifyAdversarial is the table of JWTs that must be refused.
func TestVerifyAdversarial(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		setup  func(f *fixture)
		expect *federation.Expect
		// make returns the JWT; c are valid claims to start from.
		make func(t *testing.T, f *fixture, c map[string]any) string
		want string
	}{
		{name: "expired", want: "expired", make: func(t *testing.T, f *fixture, c map[string]any) string {
			c["iat"], c["exp"] = f.clk.now().Add(-5*time.Minute).Unix(), f.clk.now().Add(-31*time.Second).Unix()
			return f.key.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "iat in the future", want: "iat is in the future", make: func(t *testing.T, f *fixture, c map[string]any) string {
			c["iat"], c["exp"] = f.clk.now().Add(time.Minute).Unix(), f.clk.now().Add(5*time.Minute).Unix()
			return f.key.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "nbf in the future", want: "nbf", make: func(t *testing.T, f *fixture, c map[string]any) string {
			c["nbf"] = f.clk.now().Add(time.Minute).Unix()
			return f.key.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "no exp", want: "no exp", make: func(t *testing.T, f *fixture, c map[string]any) string {
			delete(c, "exp")
			return f.key.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "no iat", want: "no iat", make: func(t *testing.T, f *fixture, c map[string]any) string {
			delete(c, "iat")
			return f.key.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "exp as a string", want: "not a number", make: func(t *testing.T, f *fixture, c map[string]any) string {
			c["exp"] = "2099-01-01"
			return f.key.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "lifetime over the issuer's maximum", want: "lifetime", make: func(t *testing.T, f *fixture, c map[string]any) string {
			c["exp"] = f.clk.now().Add(11 * time.Minute).Unix()
			return f.key.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "wrong audience", want: "aud does not name", make: func(t *testing.T, f *fixture, c map[string]any) string {
			c["aud"] = "https://other.example.com"
			return f.key.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "multi-valued audience", want: "single value", make: func(t *testing.T, f *fixture, c map[string]any) string {
			c["aud"] = []string{hub, "https://other.example.com"}
			return f.key.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "no audience", want: "single value", make: func(t *testing.T, f *fixture, c map[string]any) string {
			delete(c, "aud")
			return f.key.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "no jti", want: "jti", make: func(t *testing.T, f *fixture, c map[string]any) string {
			delete(c, "jti")
			return f.key.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "no sub", want: "no sub", make: func(t *testing.T, f *fixture, c map[string]any) string {
			delete(c, "sub")
			return f.key.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "untrusted issuer", want: "not trusted", make: func(t *testing.T, f *fixture, c map[string]any) string {
			c["iss"] = "https://evil.example.com"
			return f.key.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "issuer spelled differently", want: "not trusted", make: func(t *testing.T, f *fixture, c map[string]any) string {
			c["iss"] = idpISS + "/"
			return f.key.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "disabled issuer", want: "disabled", setup: func(f *fixture) { f.st.issuers[0].Disabled = true },
			make: func(t *testing.T, f *fixture, c map[string]any) string { return f.key.sign(t, federation.TypeIDJAG, c) }},
		{name: "issuer not trusted for the use", want: "not trusted for this use", setup: func(f *fixture) { f.st.issuers[0].Uses = []string{store.IssuerUseWorkload} },
			make: func(t *testing.T, f *fixture, c map[string]any) string { return f.key.sign(t, federation.TypeIDJAG, c) }},
		{name: "alg none", want: "asymmetric", make: func(t *testing.T, f *fixture, c map[string]any) string {
			return unsigned(t, map[string]any{"alg": "none", "typ": federation.TypeIDJAG, "kid": "k1"}, c, func([]byte) []byte { return nil })
		}},
		{name: "HMAC with the public key", want: "asymmetric", make: func(t *testing.T, f *fixture, c map[string]any) string {
			secret := []byte(f.is.JWKS)
			return unsigned(t, map[string]any{"alg": "HS256", "typ": federation.TypeIDJAG, "kid": "k1"}, c, func(in []byte) []byte {
				m := hmac.New(sha256.New, secret)
				m.Write(in)
				return m.Sum(nil)
			})
		}},
		{name: "algorithm outside the issuer's list", want: "algorithm", make: func(t *testing.T, f *fixture, c map[string]any) string {
			k := &testKey{priv: rsaKey, kid: "k1", alg: jose.RS256}
			return k.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "signed by another key with the same kid", want: "signature", make: func(t *testing.T, f *fixture, c map[string]any) string {
			return newECKey(t, "k1").sign(t, federation.TypeIDJAG, c)
		}},
		{name: "unknown kid", want: "kid", make: func(t *testing.T, f *fixture, c map[string]any) string {
			return newECKey(t, "k2").sign(t, federation.TypeIDJAG, c)
		}},
		{name: "tampered payload", want: "signature", make: func(t *testing.T, f *fixture, c map[string]any) string {
			raw := f.key.sign(t, federation.TypeIDJAG, c)
			parts := strings.Split(raw, ".")
			c["sub"] = "admin"
			b, _ := json.Marshal(c)
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
		}},
		{name: "oversize", want: "larger than", make: func(t *testing.T, f *fixture, c map[string]any) string {
			c["pad"] = strings.Repeat("x", federation.MaxSize)
			return f.key.sign(t, federation.TypeIDJAG, c)
		}},
		{name: "JSON serialization", want: "compact", make: func(t *testing.T, f *fixture, c map[string]any) string {
			return `{"payload":"e30","signatures":[]}`
		}},
		{name: "typ confusion: plain JWT where an ID-JAG is required", want: "typ must be", make: func(t *testing.T, f *fixture, c map[string]any) string {
			return f.key.sign(t, "JWT", c)
		}},
		{name: "typ confusion: no typ where an ID-JAG is required", want: "typ must be", make: func(t *testing.T, f *fixture, c map[string]any) string {
			return f.key.sign(t, "", c)
		}},
		{name: "typ confusion: ID-JAG as a user assertion", want: "not accepted here",
			expect: &federation.Expect{Use: store.IssuerUseJWTBearer, Audiences: []string{hub}},
			make: func(t *testing.T, f *fixture, c map[string]any) string {
				return f.key.sign(t, federation.TypeIDJAG, c)
			}},
		{name: "typ confusion: DPoP proof as a user assertion", want: "not accepted here",
			expect: &federation.Expect{Use: store.IssuerUseJWTBearer, Audiences: []string{hub}},
			make: func(t *testing.T, f *fixture, c map[string]any) string {
				return f.key.sign(t, "dpop+jwt", c)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			e := expectIDJAG
			if tc.expect != nil {
				e = *tc.expect
			}
			raw := tc.make(t, f, f.claims())
			a, err := f.reg.Verify(context.Background(), raw, e)
			if !isInvalidGrant(err, tc.want) {
				t.Fatalf("Verify = %+v, %v; want invalid_grant containing %q", a, err, tc.want)
			}
			var oe *oauth.Error
			if errors.As(err, &oe) && strings.Contains(oe.Description, raw[:min(len(raw), 20)]) {
				t.Fatalf("description contains the token: %q", oe.Description)
			}
		})
	}
}

// TestVerifyMovingClock: the same assertion verifies within its lifetime
// (leeway included) and not after; the issuer list is re-read every two
// seconds, so disabling an issuer takes effect without a restart.
func TestVerifyMovingClock(t *testing.T) {
	f := newFixture(t)
	e := expectIDJAG
	e.SingleUse = false
	c := f.claims()
	raw := f.key.sign(t, federation.TypeIDJAG, c)
	ctx := context.Background()
	for _, step := range []struct {
		advance time.Duration
		ok      bool
	}{{0, true}, {4 * time.Minute, true}, {time.Minute + 29*time.Second, true}, {time.Second, false}} {
		f.clk.add(step.advance)
		_, err := f.reg.Verify(ctx, raw, e)
		if (err == nil) != step.ok {
			t.Fatalf("at +%v: err = %v, want ok %v", f.clk.now().Sub(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)), err, step.ok)
		}
	}

	f = newFixture(t)
	raw = f.key.sign(t, federation.TypeIDJAG, f.claims())
	if _, err := f.reg.Verify(ctx, raw, e); err != nil {
		t.Fatal(err)
	}
	f.st.mu.Lock()
	f.st.issuers[0].Disabled = true
	f.st.mu.Unlock()
	f.clk.add(time.Second)
	if _, err := f.reg.Verify(ctx, raw, e); err != nil {
		t.Fatalf("within the cache's two seconds the old copy stands: %v", err)
	}
	f.clk.add(time.Second)
	if _, err := f.reg.Verify(ctx, raw, e); !isInvalidGrant(err, "disabled") {
		t.Fatalf("after two seconds: %v", err)
	}
	if f.st.reads != 2 {
		t.Fatalf("issuers read %d times, want 2", f.st.reads)
	}
}

// TestVerifySingleUseScopedByIssuer: the jti is recorded under the issuer,
// so two issuers may use the same jti, and only until exp (plus leeway).
func TestVerifySingleUseScopedByIssuer(t *testing.T) {
	f := newFixture(t)
	other := newECKey(t, "o1")
	f.st.issuers = append(f.st.issuers, &store.Issuer{ID: "other", Issuer: "https://other-idp.example.com", JWKS: other.jwks(t), Uses: []string{store.IssuerUseIDJAG}})
	c := f.claims()
	c["jti"] = "same"
	if _, err := f.reg.Verify(context.Background(), f.key.sign(t, federation.TypeIDJAG, c), expectIDJAG); err != nil {
		t.Fatal(err)
	}
	c["iss"] = "https://other-idp.example.com"
	if _, err := f.reg.Verify(context.Background(), other.sign(t, federation.TypeIDJAG, c), expectIDJAG); err != nil {
		t.Fatalf("another issuer's jti: %v", err)
	}
	for k := range f.st.jtis {
		if !strings.HasPrefix(k, "jwt:https://") {
			t.Fatalf("jti key %q not namespaced by issuer", k)
		}
	}
}

// TestVerifyAudiences: an issuer's own audiences replace the caller's.
func TestVerifyAudiences(t *testing.T) {
	f := newFixture(t)
	f.st.issuers[0].Audiences = []string{"hub-in-k8s"}
	e := expectIDJAG
	e.SingleUse = false
	c := f.claims()
	if _, err := f.reg.Verify(context.Background(), f.key.sign(t, federation.TypeIDJAG, c), e); !isInvalidGrant(err, "aud") {
		t.Fatalf("the hub's issuer when the issuer names its own audiences: %v", err)
	}
	c["aud"] = "hub-in-k8s"
	if _, err := f.reg.Verify(context.Background(), f.key.sign(t, federation.TypeIDJAG, c), e); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyRemoteKeys: an issuer with a jwks_uri gets its keys from the
// key source, asked with the JWT's kid.
func TestVerifyRemoteKeys(t *testing.T) {
	f := newFixture(t)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(f.is.JWKS), &set); err != nil {
		t.Fatal(err)
	}
	f.st.issuers[0].JWKS, f.st.issuers[0].JWKSURI = "", "https://idp.example.com/jwks"
	src := &fakeKeys{set: &set}
	f.reg = federation.NewRegistry(f.st, "", src, f.clk.now)
	if _, err := f.reg.Verify(context.Background(), f.key.sign(t, federation.TypeIDJAG, f.claims()), expectIDJAG); err != nil {
		t.Fatal(err)
	}
	if src.uri != "https://idp.example.com/jwks" || src.kid != "k1" {
		t.Fatalf("key source asked for %q %q", src.uri, src.kid)
	}
	src.err = errors.New("fetch failed")
	f.clk.add(time.Second)
	if _, err := f.reg.Verify(context.Background(), f.key.sign(t, federation.TypeIDJAG, f.claims()), expectIDJAG); !isInvalidGrant(err, "keys") {
		t.Fatalf("key source failing: %v", err)
	}
}

type fakeKeys struct {
	set      *jose.JSONWebKeySet
	err      error
	uri, kid string
}

func (k *fakeKeys) Get(_ context.Context, uri, kid string) (*jose.JSONWebKeySet, error) {
	k.uri, k.kid = uri, kid
	return k.set, k.err
}

func TestPeek(t *testing.T) {
	f := newFixture(t)
	iss, typ, err := federation.Peek(f.key.sign(t, federation.TypeIDJAG, f.claims()))
	if err != nil || iss != idpISS || typ != federation.TypeIDJAG {
		t.Fatalf("Peek = %q %q %v", iss, typ, err)
	}
	if _, _, err := federation.Peek("a.b.c"); err == nil {
		t.Fatal("Peek accepted garbage")
	}
}

// FuzzVerify: hostile input never panics and never verifies.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.key.sign(f, federation.TypeIDJAG, fx.claims()))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add(`{"payload":"e30","signatures":[]}`)
	f.Fuzz(func(t *testing.T, raw string) {
		// A fresh jti store for every input: the seed itself verifies once.
		fx.st.mu.Lock()
		fx.st.jtis = nil
		fx.st.mu.Unlock()
		a, err := fx.reg.Verify(context.Background(), raw, expectIDJAG)
		if err == nil {
			// Only a JWT the issuer's key really signed may verify.
			if a.Issuer.ID != "idp" || a.Subject == "" || a.JTI == "" {
				t.Fatalf("verified %+v", a)
			}
			return
		}
		var oe *oauth.Error
		if !errors.As(err, &oe) || oe.Code != oauth.CodeInvalidGrant {
			t.Fatalf("error %v is not invalid_grant", err)
		}
		federation.Peek(raw)
	})
}

// TestFollowChanges: a registry following the change feed keeps its copy
// of the issuers however far the clock moves while the feed is fresh,
// reads them on every use while it is not, and again after Invalidate.
func TestFollowChanges(t *testing.T) {
	f := newFixture(t)
	fresh := true
	f.reg.FollowChanges(func() bool { return fresh })
	reusable := expectIDJAG
	reusable.SingleUse = false
	verify := func() {
		t.Helper()
		if _, err := f.reg.Verify(t.Context(), f.key.sign(t, federation.TypeIDJAG, f.claims()), reusable); err != nil {
			t.Fatal(err)
		}
	}
	reads := func() int {
		f.st.mu.Lock()
		defer f.st.mu.Unlock()
		return f.st.reads
	}
	verify()
	verify()
	if n := reads(); n != 1 {
		t.Fatalf("%d reads of the issuers, want 1", n)
	}
	f.clk.add(time.Minute)
	verify()
	if n := reads(); n != 1 {
		t.Fatalf("the clock moving reread the issuers (%d reads)", n)
	}
	f.reg.Invalidate()
	verify()
	if n := reads(); n != 2 {
		t.Fatalf("after Invalidate: %d reads, want 2", n)
	}
	fresh = false
	verify()
	verify()
	if n := reads(); n != 4 {
		t.Fatalf("with the feed stale: %d reads, want 4", n)
	}
}
