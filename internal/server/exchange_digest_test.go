package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/token"
)

// reforge returns tok with its payload changed by edit, signed by a key
// that is not the hub's under the hub's own header (so its kid is the
// hub's), or with no signature when key is nil.
func reforge(t *testing.T, tok string, key *ecdsa.PrivateKey, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	edit(claims)
	if b, err = json.Marshal(claims); err != nil {
		t.Fatal(err)
	}
	signed := parts[0] + "." + base64.RawURLEncoding.EncodeToString(b)
	if key == nil {
		return signed + "."
	}
	digest := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig[:])
}

// TestTokenExchangeRecordedDigest: a subject token byte for byte as the
// hub minted it (its SHA-256 is its record's digest) is exchanged without
// a signature check, by the exchange and the retrieval alike, and the
// token the exchange issues is recorded the same way; a token recorded
// without a digest (as before migration 0020) is verified by its
// signature and exchanged; a forgery naming a real token's jti, re-signed
// by another key or unsigned, is refused without a trace; a revoked token
// is refused though its digest matches.
func TestTokenExchangeRecordedDigest(t *testing.T) {
	h := newRetrievalHub(t, "")
	h.connect("calendar.read")
	checks := func(t *testing.T, want uint64, do func()) {
		t.Helper()
		before := h.Keys.SignatureChecks()
		do()
		if got := h.Keys.SignatureChecks() - before; got != want {
			t.Fatalf("%d signature checks, want %d", got, want)
		}
	}
	exchangeOK := func(t *testing.T, client, tok, resource string) string {
		t.Helper()
		r := h.exchange(client, subjectForm(tok, "resource", resource))
		if r.status != http.StatusOK {
			t.Fatalf("exchange: %d %v", r.status, r.body)
		}
		return r.body["access_token"].(string)
	}

	t.Run("as minted, two hops", func(t *testing.T) {
		tok := h.userToken("notes.read")
		var hop2 string
		checks(t, 0, func() { hop2 = exchangeOK(t, "mcp-a", tok, h.resB) })
		checks(t, 0, func() { exchangeOK(t, "mcp-b", hop2, h.resD) })
	})
	t.Run("as minted, retrieval", func(t *testing.T) {
		tok := h.userToken("notes.read")
		checks(t, 0, func() {
			if r := h.retrieve("mcp-a", tok, "calendar"); r.status != http.StatusOK {
				t.Fatalf("retrieval: %d %v", r.status, r.body)
			}
		})
	})
	t.Run("recorded without a digest", func(t *testing.T) {
		// exchangeHub.mint records the token as the hub did before 0020.
		tok := h.mint(&token.AccessClaims{Subject: "u-alice", Audience: []string{h.resA}, ClientID: "agent", Scope: "notes.read"})
		checks(t, 1, func() { exchangeOK(t, "mcp-a", tok, h.resB) })
	})

	foreign, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	widen := func(c map[string]any) { c["scope"] = "notes.read notes.write files.read" }
	other := func(c map[string]any) { c["sub"] = "u-bob" }
	for name, forge := range map[string]func(string) string{
		"wider scope, foreign key":    func(tok string) string { return reforge(t, tok, foreign, widen) },
		"another person, foreign key": func(tok string) string { return reforge(t, tok, foreign, other) },
		"wider scope, unsigned":       func(tok string) string { return reforge(t, tok, nil, widen) },
		"as minted, unsigned":         func(tok string) string { return reforge(t, tok, nil, func(map[string]any) {}) },
	} {
		t.Run("forged: "+name, func(t *testing.T) {
			forged := forge(h.userToken("notes.read"))
			issued := countEvents(t, h.Store, audit.TokenIssued)
			denied := len(h.denials())
			checks(t, 2, func() {
				r := h.exchange("mcp-a", subjectForm(forged, "resource", h.resB, "scope", "notes.read"))
				if r.status != http.StatusBadRequest || r.body["error"] != oauth.CodeInvalidGrant {
					t.Fatalf("exchange of a forgery: %d %v", r.status, r.body)
				}
				r = h.retrieve("mcp-a", forged, "calendar")
				if r.status != http.StatusBadRequest || r.body["error"] != oauth.CodeInvalidGrant {
					t.Fatalf("retrieval with a forgery: %d %v", r.status, r.body)
				}
			})
			if countEvents(t, h.Store, audit.TokenIssued) != issued || len(h.denials()) != denied {
				t.Fatal("a forgery left an event")
			}
		})
	}

	t.Run("revoked, digest matching", func(t *testing.T) {
		tok := h.userToken("notes.read")
		if r := h.post("/revoke", url.Values{"token": {tok}}, "agent", h.secrets["agent"]); r.status != http.StatusOK {
			t.Fatalf("revoke: %d", r.status)
		}
		checks(t, 0, func() {
			r := h.exchange("mcp-a", subjectForm(tok, "resource", h.resB))
			if r.status != http.StatusBadRequest || r.body["error"] != oauth.CodeInvalidGrant {
				t.Fatalf("exchange of a revoked token: %d %v", r.status, r.body)
			}
			r = h.retrieve("mcp-a", tok, "calendar")
			if r.status != http.StatusBadRequest || r.body["error"] != oauth.CodeInvalidGrant {
				t.Fatalf("retrieval with a revoked token: %d %v", r.status, r.body)
			}
		})
	})
}
