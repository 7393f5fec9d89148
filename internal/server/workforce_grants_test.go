package server_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// userFactsPolicy refuses notes.write to a contractor under any action,
// reading the person's attribute from context.user.
const userFactsPolicy = `@id("contractors-no-write")
forbid (principal, action in [Action::"grant", Action::"exchange"], resource)
when {
  resource.name == "notes.write" && context has user &&
  context.user.hasTag("employment") && context.user.getTag("employment") == "contractor"
};`

// TestTokenExchangeReadsCurrentUser: a token exchange decides with the
// person's attributes as stored at the exchange, not at the subject
// token's issuance; the exchanged token carries the user claims of its own
// audience only, read then too.
func TestTokenExchangeReadsCurrentUser(t *testing.T) {
	h := newExchangeHub(t, exchangeOptions{policy: userFactsPolicy})
	ctx := context.Background()
	r, err := h.Store.GetResource(ctx, store.DefaultTenant, h.resB)
	if err != nil {
		t.Fatal(err)
	}
	r.UserClaims = map[string]string{"employment": "attr:employment"}
	if err := h.Store.UpdateResource(ctx, r, nil); err != nil {
		t.Fatal(err)
	}
	editUser(t, h.Store, func(u *store.User) { u.Attributes = map[string]string{"employment": "staff"} })
	t0 := h.userToken("notes.read", "notes.write")
	if _, ok := jwtClaims(t, t0)["employment"]; ok {
		t.Fatal("a token for a resource that mapped no user claim carries one")
	}
	x := h.exchange("mcp-a", subjectForm(t0, "resource", h.resB))
	if x.status != 200 || x.body["scope"] != "notes.read notes.write" {
		t.Fatalf("exchange as staff: %d %v", x.status, x.body)
	}
	if c := jwtClaims(t, x.body["access_token"].(string)); c["employment"] != "staff" {
		t.Fatalf("exchanged token employment %v, want staff", c["employment"])
	}

	editUser(t, h.Store, func(u *store.User) { u.Attributes["employment"] = "contractor" })
	h.clk.Advance(3 * time.Second) // past the resource cache
	x = h.exchange("mcp-a", subjectForm(t0, "resource", h.resB))
	if x.status != 200 || x.body["scope"] != "notes.read" {
		t.Fatalf("exchange as a contractor: %d %v, want notes.write refused", x.status, x.body)
	}
	if c := jwtClaims(t, x.body["access_token"].(string)); c["employment"] != "contractor" {
		t.Fatalf("exchanged token employment %v, want contractor", c["employment"])
	}
}

// TestUserAssertionReadsUserFacts: the jwt-bearer grant with a user
// assertion decides with the local user's attributes, and its token
// carries the resource's user claims.
func TestUserAssertionReadsUserFacts(t *testing.T) {
	h := newPolicyHubOn(t, openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db")))
	applyPolicy(t, h.Store, h.engine, userFactsPolicy)
	ctx := context.Background()
	idp := newTrustedIssuer(t, idpIssuer)
	h.addIssuer(&store.Issuer{ID: "corp", Issuer: idpIssuer, JWKS: idp.jwks(), Uses: []string{store.IssuerUseJWTBearer}, UserClaim: "email"})
	r, err := h.Store.GetResource(ctx, store.DefaultTenant, h.Resource)
	if err != nil {
		t.Fatal(err)
	}
	r.UserClaims = map[string]string{"employment": "attr:employment", "roles": store.UserClaimRoles}
	if err := h.Store.UpdateResource(ctx, r, nil); err != nil {
		t.Fatal(err)
	}
	editUser(t, h.Store, func(u *store.User) {
		u.Email, u.EmailVerified = "alice@example.com", true
		u.Attributes = map[string]string{"employment": "contractor"}
	})
	h.settle()
	secret := h.AddClient(&store.Client{ID: "svc", GrantTypes: []string{oauth.GrantJWTBearer}, DefaultResource: h.Resource})
	now := h.clock.Now()
	assertion := idp.sign("JWT", map[string]any{"iss": idpIssuer, "sub": "00u1", "email": "alice@example.com", "aud": h.URL + "/token",
		"jti": idp.jti(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	x := h.tokenRequest(jwtBearerForm(assertion, "scope", "notes.read notes.write"), "svc", secret)
	if x.status != 200 || x.body["scope"] != "notes.read" {
		t.Fatalf("user assertion for a contractor: %d %v, want notes.write refused", x.status, x.body)
	}
	c := jwtClaims(t, x.body["access_token"].(string))
	if c["employment"] != "contractor" || c["roles"] == nil || len(c["roles"].([]any)) != 0 {
		t.Fatalf("token user claims: employment %v roles %#v", c["employment"], c["roles"])
	}
}
