package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// TestAssertionReplayWithinLeeway: RFC 7523 §3 item 7 — a client
// assertion's jti is single-use for as long as the server accepts the
// assertion. The verifier accepts it until exp + 30 s leeway, but the jti
// is recorded only until exp, so a replay in that window succeeds.
func TestAssertionReplayWithinLeeway(t *testing.T) {
	clk := &testClock{}
	h := newHub(t, func(c *server.Config) { c.Now = clk.Now })
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	h.AddClient(&store.Client{ID: "jwt-bot", TokenEndpointAuthMethod: "private_key_jwt", JWKS: string(set), GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
	a, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "jwt-bot", Subject: "jwt-bot", Audience: jwt.Audience{h.URL}, ID: "once", Expiry: jwt.NewNumericDate(clk.Now().Add(10 * time.Second))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
	if r := h.post("/token", form, "", ""); r.status != http.StatusOK {
		t.Fatalf("first use: %d %v", r.status, r.body)
	}
	clk.Advance(20 * time.Second) // past exp, within the verifier's leeway
	if r := h.post("/token", form, "", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("replayed assertion 10 s after exp: %d %v, want 401 invalid_client", r.status, r.body)
	}
}

// TestLoginThrottleConcurrent: the per-user limit (burst 5) holds
// against parallel guesses, not only sequential ones.
func TestLoginThrottleConcurrent(t *testing.T) {
	h := newHub(t, func(c *server.Config) {
		c.LoginAttemptsPerIP = server.LoginLimit{PerMinute: 1000, Burst: 1000}
	})
	const n = 30
	pages := make([]*servertest.Page, n)
	browsers := make([]*servertest.Browser, n)
	for i := range n {
		browsers[i] = h.Browser()
		pages[i] = browsers[i].Get(h.URL + "/login")
	}
	statuses := make([]int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			statuses[i] = browsers[i].Login(pages[i], servertest.TestUser, "wrong").Status
		})
	}
	close(start)
	wg.Wait()
	checked := 0
	for _, s := range statuses {
		if s == http.StatusUnauthorized {
			checked++
		}
	}
	if checked > 5 {
		t.Fatalf("%d of %d parallel wrong passwords were checked, want at most the burst of 5", checked, n)
	}
}
