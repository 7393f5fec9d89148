package server_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/store"
)

// TestDeprovisionedAgentLosesRegistrationToken: a dynamically registered
// agent keeps its RFC 7592 registration access token after it is
// deprovisioned (or disabled); with it, it must not read, rewrite or
// delete its registration — deleting it would erase the deprovisioned
// record from the inventory, by the agent's own hand.
func TestDeprovisionedAgentLosesRegistrationToken(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	r := h.jsonRequest(http.MethodPost, "/register", map[string]any{
		"client_name": "rogue", "redirect_uris": []string{"http://127.0.0.1/cb"}, "grant_types": []string{"authorization_code", "refresh_token"},
	}, "")
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %v", r.status, r.body)
	}
	id, rat := r.body["client_id"].(string), r.body["registration_access_token"].(string)
	if g := h.jsonRequest(http.MethodGet, "/register/"+id, "", rat); g.status != http.StatusOK {
		t.Fatalf("read before: %d %v", g.status, g.body)
	}
	if _, err := clients.Deprovision(ctx, h.Store, audit.Meta{Actor: audit.ActorCLI}, "", id, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method string
		body   any
	}{
		{http.MethodGet, ""},
		{http.MethodPut, map[string]any{"client_id": id, "client_name": "renamed", "redirect_uris": []string{"http://127.0.0.1/cb2"}}},
		{http.MethodDelete, ""},
	} {
		if a := h.jsonRequest(c.method, "/register/"+id, c.body, rat); a.status != http.StatusUnauthorized || a.body["error"] != "invalid_token" {
			t.Errorf("%s /register/%s after deprovisioning: %d %v, want 401 invalid_token", c.method, id, a.status, a.body)
		}
	}
	cl, err := h.Store.GetClient(ctx, store.DefaultTenant, id)
	if err != nil || cl.Status != store.ClientDeprovisioned || cl.Name != "rogue" {
		t.Fatalf("after the attempts: %+v %v, want the deprovisioned record unchanged", cl, err)
	}
}
