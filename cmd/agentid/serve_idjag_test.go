package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/server"
)

// TestServeIdentityAssertions: the identity_assertions section of the
// config file reaches the server: the metadata advertises ID-JAGs.
func TestServeIdentityAssertions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agentid.yaml")
	if err := os.WriteFile(file, []byte(`identity_assertions:
  lifetime: 2m
  targets:
    - audience: https://as.example.com
      resources: [https://mcp.example.com/mcp]
      clients:
        - {client: agent-1, remote_client_id: remote-1, scopes: [files.read]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"AGENTID_DATA_DIR": filepath.Join(dir, "data"), "AGENTID_LISTEN": "127.0.0.1:0", "AGENTID_ISSUER": "https://auth.example.test"}
	h := startServe(t, env, "--config", file)
	defer h.stop()
	resp, body := get(t, h.url+"/.well-known/oauth-authorization-server")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metadata: %d", resp.StatusCode)
	}
	var md struct {
		Types []string `json:"identity_chaining_requested_token_types_supported"`
	}
	if err := json.Unmarshal(body, &md); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(md.Types, []string{"urn:ietf:params:oauth:token-type:id-jag"}) {
		t.Fatalf("identity_chaining_requested_token_types_supported = %v", md.Types)
	}
}

// TestIdentityAssertionsMapping: every setting of a target reaches the
// server's configuration.
func TestIdentityAssertionsMapping(t *testing.T) {
	got := identityAssertions(config.IdentityAssertionsConfig{Lifetime: config.Duration(2 * time.Minute), Targets: []config.IdentityTarget{{
		Audience: "https://as.example.com", Resources: []string{"https://mcp.example.com/mcp"}, Claims: []string{"email"},
		Clients: []config.IdentityTargetClient{{Client: "a", RemoteClientID: "r", Scopes: []string{"s"}}},
	}}})
	want := server.IdentityAssertions{Lifetime: 2 * time.Minute, Targets: []server.IdentityTarget{{
		Audience: "https://as.example.com", Resources: []string{"https://mcp.example.com/mcp"}, Claims: []string{"email"},
		Clients: []server.IdentityClient{{ClientID: "a", RemoteClientID: "r", Scopes: []string{"s"}}},
	}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
