package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/http"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/internal/oauth"
)

// TestRegistrationJWKSBound: dynamic registration refuses a private_key_jwt
// client whose jwks holds more than oauth.MaxClientKeys keys, so a
// self-registered client cannot make every refused assertion cost a
// signature check per key.
func TestRegistrationJWKSBound(t *testing.T) {
	h := newHub(t)
	set := func(n int) jose.JSONWebKeySet {
		var s jose.JSONWebKeySet
		for i := range n {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			s.Keys = append(s.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: fmt.Sprintf("k%d", i), Algorithm: "ES256", Use: "sig"})
		}
		return s
	}
	for _, tt := range []struct {
		name   string
		keys   int
		status int
	}{
		{"at the bound", oauth.MaxClientKeys, http.StatusCreated},
		{"over the bound", oauth.MaxClientKeys + 1, http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := h.jsonRequest(http.MethodPost, "/register", map[string]any{
				"client_name": "jwt agent", "grant_types": []string{"client_credentials"},
				"token_endpoint_auth_method": "private_key_jwt", "jwks": set(tt.keys),
			}, "")
			if r.status != tt.status {
				t.Fatalf("register with %d keys: %d %v", tt.keys, r.status, r.body)
			}
			if tt.status == http.StatusBadRequest && r.body["error"] != "invalid_client_metadata" {
				t.Fatalf("error = %v, want invalid_client_metadata", r.body)
			}
		})
	}
}
