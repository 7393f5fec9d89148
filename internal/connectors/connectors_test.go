package connectors_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/connectors"
	"github.com/agentid/agentid/internal/connectors/connectorstest"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store"
)

const redirectURI = "https://hub.example.com/login/connectors/corp/callback"

// clock is a moving test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func setup(t *testing.T) (*connectorstest.Provider, *connectors.Registry, *store.Connector, *clock) {
	t.Helper()
	p := connectorstest.New(t, "agentid", "s3cret")
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &store.Connector{TenantID: store.DefaultTenant, ID: "corp", Type: store.ConnectorOIDC, Issuer: p.URL,
		ClientID: "agentid", ClientSecretFile: secret,
		Claims: store.ClaimMapping{Groups: "groups", Attributes: map[string]string{"department": "dept"}}}
	clk := &clock{time.Now()}
	reg := connectors.New(connectors.Options{AllowHTTPLoopback: true, Now: clk.now})
	p.SignIn("sub-alice", map[string]any{"preferred_username": "alice", "email": "alice@corp.example",
		"email_verified": true, "name": "Alice Example", "groups": []any{"eng", "eng-oncall"}, "dept": "R&D"})
	return p, reg, c, clk
}

// signIn runs the browser's part: Begin, the provider's authorization
// endpoint, and returns the callback it sent back.
func signIn(t *testing.T, reg *connectors.Registry, c *store.Connector, hint string) (*connectors.Attempt, connectors.Callback) {
	t.Helper()
	authURL, a, err := reg.Begin(t.Context(), c, redirectURI, hint, "/account")
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), redirectURI) {
		t.Fatalf("provider sent the browser to %q (%v)", resp.Header.Get("Location"), err)
	}
	q := loc.Query()
	return a, connectors.Callback{State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"), Iss: q.Get("iss")}
}

// TestSignIn: the code flow with PKCE and nonce through a provider found
// by discovery yields the person with the mapped claims; the request
// carried S256, the nonce and the login hint.
func TestSignIn(t *testing.T) {
	p, reg, c, _ := setup(t)
	a, cb := signIn(t, reg, c, "alice@corp.example")
	q := p.LastAuthorize()
	if q.Get("code_challenge_method") != "S256" || q.Get("nonce") != a.Nonce || q.Get("login_hint") != "alice@corp.example" ||
		q.Get("scope") != "openid profile email" || q.Get("state") != a.State {
		t.Fatalf("authorization request %v", q)
	}
	if !reg.CheckState(a, cb.State) {
		t.Fatal("CheckState refused the attempt's own state")
	}
	id, err := reg.Finish(t.Context(), c, a, redirectURI, cb)
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	want := &connectors.Identity{Subject: "sub-alice", Username: "alice", Email: "alice@corp.example", EmailVerified: true,
		Name: "Alice Example", Groups: []string{"eng", "eng-oncall"}, Attributes: map[string]string{"department": "R&D"}}
	if !reflect.DeepEqual(id, want) {
		t.Fatalf("identity = %+v, want %+v", id, want)
	}
}

// TestSealedSecret: a secret sealed for the connector opens; sealed for
// another connector it does not, and the exchange is not attempted.
func TestSealedSecret(t *testing.T) {
	p, _, c, clk := setup(t)
	kek, err := keyring.GenerateKEK(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.NewKeyring(kek)
	if err != nil {
		t.Fatal(err)
	}
	reg := connectors.New(connectors.Options{AllowHTTPLoopback: true, Now: clk.now, Keyring: kr})
	c.ClientSecretFile = ""
	if c.ClientSecretSealed, err = connectors.SealSecret(kr, rand.Reader, c.TenantID, c.ID, p.ClientSecret); err != nil {
		t.Fatal(err)
	}
	a, cb := signIn(t, reg, c, "")
	if _, err := reg.Finish(t.Context(), c, a, redirectURI, cb); err != nil {
		t.Fatalf("Finish with a sealed secret: %v", err)
	}
	c.ClientSecretSealed, _ = connectors.SealSecret(kr, rand.Reader, c.TenantID, "other", p.ClientSecret)
	a, cb = signIn(t, reg, c, "")
	_, err = reg.Finish(t.Context(), c, a, redirectURI, cb)
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Reason != connectors.ReasonConfig || strings.Contains(err.Error(), p.ClientSecret) {
		t.Fatalf("Finish with another connector's sealed secret: %v", err)
	}
}

// TestRefusals: every answer that must not sign anyone in is refused
// with its reason, and the message names no secret.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		arrange func(p *connectorstest.Provider, clk *clock)
		edit    func(a *connectors.Attempt, cb *connectors.Callback)
		reason  string
	}{
		{"bad signature", func(p *connectorstest.Provider, _ *clock) { p.SignWithForeignKey(true) }, nil, connectors.ReasonIDToken},
		{"wrong aud", func(p *connectorstest.Provider, _ *clock) {
			p.Tamper(func(c map[string]any) { c["aud"] = "someone-else" })
		}, nil, connectors.ReasonIDToken},
		{"wrong issuer", func(p *connectorstest.Provider, _ *clock) {
			p.Tamper(func(c map[string]any) { c["iss"] = "https://evil.example" })
		}, nil, connectors.ReasonIDToken},
		{"expired", func(p *connectorstest.Provider, clk *clock) { clk.t = clk.t.Add(6 * time.Minute) }, nil, connectors.ReasonIDToken},
		{"wrong nonce", func(p *connectorstest.Provider, _ *clock) {
			p.Tamper(func(c map[string]any) { c["nonce"] = "another-attempts-nonce" })
		}, nil, connectors.ReasonNonce},
		{"no nonce", func(p *connectorstest.Provider, _ *clock) {
			p.Tamper(func(c map[string]any) { delete(c, "nonce") })
		}, nil, connectors.ReasonNonce},
		{"wrong PKCE verifier", nil, func(a *connectors.Attempt, _ *connectors.Callback) { a.Verifier = "x" + a.Verifier[1:] }, connectors.ReasonExchange},
		{"replayed code", nil, func(_ *connectors.Attempt, cb *connectors.Callback) { cb.Code = "made-up" }, connectors.ReasonExchange},
		{"mix-up iss", nil, func(_ *connectors.Attempt, cb *connectors.Callback) { cb.Iss = "https://other-idp.example" }, connectors.ReasonDenied},
		{"iss missing though the provider sends it", nil, func(_ *connectors.Attempt, cb *connectors.Callback) { cb.Iss = "" }, connectors.ReasonDenied},
		{"provider error", nil, func(_ *connectors.Attempt, cb *connectors.Callback) { cb.Code, cb.Error = "", "access_denied" }, connectors.ReasonDenied},
		{"no username or email", func(p *connectorstest.Provider, _ *clock) {
			p.Tamper(func(c map[string]any) { delete(c, "preferred_username"); delete(c, "email") })
		}, nil, connectors.ReasonClaims},
		{"sub too long", func(p *connectorstest.Provider, _ *clock) {
			p.Tamper(func(c map[string]any) { c["sub"] = strings.Repeat("s", 256) })
		}, nil, connectors.ReasonClaims},
		{"sub with a control character", func(p *connectorstest.Provider, _ *clock) {
			p.Tamper(func(c map[string]any) { c["sub"] = "sub\x1balice" })
		}, nil, connectors.ReasonClaims},
		{"groups not strings", func(p *connectorstest.Provider, _ *clock) {
			p.Tamper(func(c map[string]any) { c["groups"] = []any{1, 2} })
		}, nil, connectors.ReasonClaims},
		{"another connector's attempt", nil, func(a *connectors.Attempt, _ *connectors.Callback) { a.ConnectorID = "other" }, connectors.ReasonConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, reg, c, clk := setup(t)
			a, cb := signIn(t, reg, c, "")
			if tc.arrange != nil {
				tc.arrange(p, clk)
			}
			if tc.edit != nil {
				tc.edit(a, &cb)
			}
			id, err := reg.Finish(t.Context(), c, a, redirectURI, cb)
			var ce *connectors.Error
			if !errors.As(err, &ce) || ce.Reason != tc.reason {
				t.Fatalf("Finish = %+v, %v; want reason %q", id, err, tc.reason)
			}
			if strings.Contains(err.Error(), p.ClientSecret) || strings.Contains(err.Error(), cb.Code) && cb.Code != "" {
				t.Fatalf("error %q shows a secret or the code", err)
			}
		})
	}
}

// TestCheckState: the state must be the attempt's and the attempt young.
func TestCheckState(t *testing.T) {
	_, reg, c, clk := setup(t)
	a, cb := signIn(t, reg, c, "")
	for _, tc := range []struct {
		name  string
		state string
		skew  time.Duration
		want  bool
	}{
		{"own state", cb.State, 0, true},
		{"state mismatch", cb.State[:len(cb.State)-1] + "x", 0, false},
		{"empty state", "", 0, false},
		{"attempt expired", cb.State, connectors.AttemptTTL + time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved := clk.t
			clk.t = clk.t.Add(tc.skew)
			defer func() { clk.t = saved }()
			if got := reg.CheckState(a, tc.state); got != tc.want {
				t.Fatalf("CheckState = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCheckIssuer: https only, http on loopback only when allowed.
func TestCheckIssuer(t *testing.T) {
	for _, tc := range []struct {
		issuer   string
		loopback bool
		ok       bool
	}{
		{"https://idp.example.com", false, true},
		{"https://idp.example.com/realms/corp", false, true},
		{"http://idp.example.com", true, false},
		{"http://127.0.0.1:8080", false, false},
		{"http://127.0.0.1:8080", true, true},
		{"http://localhost:8080", true, true},
		{"https://idp.example.com?x=1", false, false},
		{"https://user@idp.example.com", false, false},
		{"idp.example.com", false, false},
	} {
		if err := connectors.CheckIssuer(tc.issuer, tc.loopback); (err == nil) != tc.ok {
			t.Errorf("CheckIssuer(%q, %v) = %v, want ok %v", tc.issuer, tc.loopback, err, tc.ok)
		}
	}
}

// TestDiscoveryIssuerMismatch: a discovery document naming another issuer
// is refused (OpenID Connect Discovery §4.3).
func TestDiscoveryIssuerMismatch(t *testing.T) {
	p, reg, c, _ := setup(t)
	c.Issuer = strings.Replace(p.URL, "127.0.0.1", "localhost", 1)
	_, _, err := reg.Begin(t.Context(), c, redirectURI, "", "/account")
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Reason != connectors.ReasonDiscovery {
		t.Fatalf("Begin with a mismatched issuer: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	c.Issuer = "https://unreachable.invalid"
	if _, _, err := reg.Begin(ctx, c, redirectURI, "", "/account"); !errors.As(err, &ce) || ce.Reason != connectors.ReasonDiscovery {
		t.Fatalf("Begin with an unreachable issuer: %v", err)
	}
}
