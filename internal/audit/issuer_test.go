package audit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// testJWKS is a static key set; its coordinates must never reach an event.
const testJWKS = `{"keys":[{"kty":"EC","crv":"P-256","kid":"idp-2026","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB"}]}`

func testIssuer() *store.Issuer {
	return &store.Issuer{
		TenantID:    "t1",
		ID:          "okta",
		Issuer:      "https://acme.okta.com",
		JWKS:        testJWKS,
		Audiences:   []string{"https://hub.example.com"},
		Algorithms:  []string{"ES256", "RS256"},
		Uses:        []string{store.IssuerUseIDJAG, store.IssuerUseWorkload},
		MaxLifetime: 5 * time.Minute,
		UserClaim:   "email",
		Rules:       []store.IssuerRule{{Claims: map[string]string{"sub": "repo:acme/*"}, Agent: "ci:{sub}"}},
	}
}

// TestIssuerEventsCarryNoKeys: issuer events name a static key set by its
// kids, its size and the SHA-256 of the set, never by a key's material;
// a key set behind a URL is named by the URL.
func TestIssuerEventsCarryNoKeys(t *testing.T) {
	iss := testIssuer()
	for _, ev := range []*store.AuditEvent{
		audit.NewIssuerAdded(meta, iss),
		audit.NewIssuerUpdated(meta, iss, audit.IssuerChangeSettings),
		audit.NewIssuerDeleted(meta, iss),
	} {
		t.Run(ev.Type, func(t *testing.T) {
			if err := audit.Check(ev); err != nil {
				t.Fatal(err)
			}
			for k, v := range ev.Details {
				for _, secret := range []string{"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "x_FEzRu9m36HLN", "0vx7agoebGcQSuuPiLJXZptN9nndrQmb", `"kty"`} {
					if strings.Contains(v, secret) {
						t.Errorf("detail %s = %q carries key material", k, v)
					}
				}
			}
			if ev.Details["issuer_id"] != "okta" || ev.Details["issuer"] != "https://acme.okta.com" {
				t.Errorf("details = %v", ev.Details)
			}
		})
	}
	ev := audit.NewIssuerAdded(meta, iss)
	want := map[string]string{
		"kids": "idp-2026", "keys": "2", "uses": "id_jag workload", "algorithms": "ES256 RS256",
		"audiences": "https://hub.example.com", "max_lifetime": "5m0s", "user_claim": "email", "disabled": "false",
		"rules": `[{"claims":{"sub":"repo:acme/*"},"agent":"ci:{sub}"}]`,
	}
	for k, v := range want {
		if ev.Details[k] != v {
			t.Errorf("detail %s = %q, want %q", k, ev.Details[k], v)
		}
	}
	if len(ev.Details["jwks_sha256"]) != 64 {
		t.Errorf("jwks_sha256 = %q", ev.Details["jwks_sha256"])
	}
	iss.JWKS, iss.JWKSURI = "", "https://acme.okta.com/oauth2/v1/keys"
	ev = audit.NewIssuerUpdated(meta, iss, audit.IssuerChangeEnabled)
	if ev.Details["jwks_uri"] != iss.JWKSURI || ev.Details["jwks_sha256"] != "" || ev.Details["change"] != "enabled" {
		t.Errorf("details = %v", ev.Details)
	}
}
