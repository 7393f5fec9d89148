package token

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func idjagClaims(now time.Time, ttl time.Duration) *IDJAGClaims {
	return &IDJAGClaims{
		Issuer: testIssuer, Subject: "user-1", Audience: "https://as.example.com", ClientID: "remote-1",
		JTI: NewID(nil), IssuedAt: now.Unix(), Expiry: now.Add(ttl).Unix(), Resource: "https://mcp.example.com/mcp", Scope: "a b",
	}
}

// TestIDJAGAndIDTokenTypes: each token kind of the hub verifies only as
// itself. An ID-JAG (typ oauth-id-jag+jwt) is neither an access token nor
// an ID token; an access token is not an ID token; an ID token verifies
// with VerifyIDToken, for its issuer only and untampered.
func TestIDJAGAndIDTokenTypes(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		t.Run(alg, func(t *testing.T) {
			clk := newClock()
			k := newTestKeys(t, newMemStore(), testKeyring(t), clk, alg)
			now := clk.Now()
			jag, err := k.MintIDJAG(idjagClaims(now, 5*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if h := header(t, jag); h["typ"] != TypIDJAG || h["alg"] != alg || h["kid"] == "" {
				t.Fatalf("header %v", h)
			}
			payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(jag, ".")[1])
			var c map[string]any
			if err := json.Unmarshal(payload, &c); err != nil {
				t.Fatal(err)
			}
			if c["aud"] != "https://as.example.com" || c["client_id"] != "remote-1" || c["resource"] != "https://mcp.example.com/mcp" {
				t.Fatalf("claims %v", c)
			}
			idt, err := k.MintIDToken(&IDClaims{Issuer: testIssuer, Subject: "user-1", Audience: "client-1", IssuedAt: now.Unix(), Expiry: now.Add(5 * time.Minute).Unix()}, "")
			if err != nil {
				t.Fatal(err)
			}
			at := mint(t, k, now)
			if _, err := k.Verify(jag, testIssuer); err == nil {
				t.Error("an ID-JAG verifies as an access token")
			}
			for name, raw := range map[string]string{"ID-JAG": jag, "access token": at, "tampered": idt[:len(idt)-4] + "AAAA", "alg none": noneToken(t, idt)} {
				if _, err := k.VerifyIDToken(raw, testIssuer); !errors.Is(err, ErrInvalidIDToken) {
					t.Errorf("%s verifies as an ID token: %v", name, err)
				}
			}
			got, err := k.VerifyIDToken(idt, testIssuer)
			if err != nil || got.Subject != "user-1" || got.Audience != "client-1" {
				t.Fatalf("VerifyIDToken = %+v, %v", got, err)
			}
			if _, err := k.VerifyIDToken(idt, "https://other.example.com"); err == nil {
				t.Error("an ID token verifies for another issuer")
			}
			if _, err := k.MintIDJAG(idjagClaims(now, 48*time.Hour)); err == nil {
				t.Error("an ID-JAG outliving the key's publication was minted")
			}
			bad := idjagClaims(now, time.Minute)
			bad.ClientID = ""
			if _, err := k.MintIDJAG(bad); err == nil {
				t.Error("an ID-JAG without client_id was minted")
			}
		})
	}
}

// noneToken is raw with its header replaced by alg none and no signature.
func noneToken(t *testing.T, raw string) string {
	t.Helper()
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	return h + "." + strings.Split(raw, ".")[1] + "."
}

// FuzzVerifyIDToken: arbitrary subject tokens never panic, and whatever
// verifies carries the claims the hub signed (a non-canonical encoding of
// the same signed token may verify; different claims never do).
func FuzzVerifyIDToken(f *testing.F) {
	clk := newClock()
	k := newTestKeys(f, newMemStore(), testKeyring(f), clk, AlgES256)
	now := clk.Now()
	idt, err := k.MintIDToken(&IDClaims{Issuer: testIssuer, Subject: "u", Audience: "c", IssuedAt: now.Unix(), Expiry: now.Add(time.Minute).Unix()}, "")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(idt)
	f.Add("a.b.c")
	f.Add("")
	f.Add(strings.Repeat("e", 20000))
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := k.VerifyIDToken(raw, testIssuer)
		if err == nil && (c.Subject != "u" || c.Audience != "c" || c.Issuer != testIssuer) {
			t.Fatalf("claims the hub did not sign verified: %+v", c)
		}
	})
}
