package server_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// TestAccessTokenTTL: the default lifetime is 10 minutes, a resource may set
// its own, and nothing lives longer than an hour (RFC 9068 tokens carry it
// in exp - iat and expires_in).
func TestAccessTokenTTL(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	for _, r := range []struct {
		id  string
		ttl time.Duration
	}{{"short", 5 * time.Minute}, {"long", 2 * time.Hour}} {
		if err := h.Store.CreateResource(ctx, &store.Resource{TenantID: store.DefaultTenant, ID: r.id, URI: h.URL + "/" + r.id, Name: r.id, AccessTokenTTL: r.ttl, CreatedAt: time.Now(),
			Scopes: []store.Scope{{Name: "notes.read", Description: "Read"}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	secret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}})
	tests := []struct {
		name     string
		resource string
		want     int64
	}{
		{"hub default", h.Resource, 600},
		{"resource's own", h.URL + "/short", 300},
		{"capped at one hour", h.URL + "/long", 3600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.post("/token", url.Values{"grant_type": {"client_credentials"}, "resource": {tc.resource}, "scope": {"notes.read"}}, "bot", secret)
			if r.status != 200 {
				t.Fatalf("%d %v", r.status, r.body)
			}
			c := h.claims(r.body["access_token"].(string))
			if got := int64(c["exp"].(float64) - c["iat"].(float64)); got != tc.want {
				t.Fatalf("exp - iat = %d, want %d", got, tc.want)
			}
			if got := int64(r.body["expires_in"].(float64)); got != tc.want {
				t.Fatalf("expires_in = %d, want %d", got, tc.want)
			}
		})
	}
}
