package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// TestClientRegistration: the flags of `clients add` become a registration
// that clients.Register validates and stores.
func TestClientRegistration(t *testing.T) {
	resources := []*store.Resource{{
		URI: "https://notes.example.test/mcp", Name: "Notes",
		Scopes: []store.Scope{{Name: "notes.read"}, {Name: "notes.write"}},
	}}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		spec    clientSpec
		wantErr string
		check   func(t *testing.T, c *store.Client, secret string)
	}{
		{
			name: "confidential defaults to client_credentials without redirect URIs",
			spec: clientSpec{name: "job"},
			check: func(t *testing.T, c *store.Client, secret string) {
				if c.TokenEndpointAuthMethod != "client_secret_basic" || !slices.Equal(c.GrantTypes, []string{"client_credentials"}) {
					t.Errorf("method %q grants %v", c.TokenEndpointAuthMethod, c.GrantTypes)
				}
				if len(c.ResponseTypes) != 0 {
					t.Errorf("response types %v for a client without the code grant", c.ResponseTypes)
				}
				if secret == "" || !token.EqualHash(c.SecretHash, token.Hash(secret)) {
					t.Error("secret and its stored hash do not match")
				}
				if c.ApplicationType != "web" || c.RegistrationMethod != store.RegistrationManual || c.TenantID != store.DefaultTenant {
					t.Errorf("got %+v", c)
				}
				if len(c.ID) < 20 {
					t.Errorf("generated id %q is short", c.ID)
				}
				if !c.CreatedAt.Equal(now) || !c.UpdatedAt.Equal(now) {
					t.Error("times not set")
				}
			},
		},
		{
			name: "redirect URIs default to code and refresh",
			spec: clientSpec{name: "a", id: "a-1", redirectURIs: []string{"https://a.example.test/cb"}, authMethod: "client_secret_post"},
			check: func(t *testing.T, c *store.Client, secret string) {
				if !slices.Equal(c.GrantTypes, []string{"authorization_code", "refresh_token"}) || !slices.Equal(c.ResponseTypes, []string{"code"}) {
					t.Errorf("grants %v responses %v", c.GrantTypes, c.ResponseTypes)
				}
				if c.ID != "a-1" || secret == "" {
					t.Errorf("id %q secret set %t", c.ID, secret != "")
				}
			},
		},
		{
			name: "public is native and secretless",
			spec: clientSpec{name: "p", public: true, redirectURIs: []string{"http://localhost:33418/cb"}},
			check: func(t *testing.T, c *store.Client, secret string) {
				if !c.Public() || c.ApplicationType != "native" || secret != "" || c.SecretHash != nil {
					t.Errorf("got %+v, secret %q", c, secret)
				}
			},
		},
		{
			name: "scopes, resource and tags",
			spec: clientSpec{name: "s", scopes: []string{"notes.read notes.write", "notes.read"}, resource: "https://NOTES.example.test/mcp/", tags: []string{"trusted"}},
			check: func(t *testing.T, c *store.Client, _ string) {
				if !slices.Equal(c.Scopes, []string{"notes.read", "notes.write"}) || c.DefaultResource != "https://notes.example.test/mcp" || !slices.Equal(c.Tags, []string{"trusted"}) {
					t.Errorf("got scopes %v resource %q tags %v", c.Scopes, c.DefaultResource, c.Tags)
				}
			},
		},
		{name: "empty name", spec: clientSpec{name: " "}, wantErr: "--name must not be empty"},
		{name: "bad id", spec: clientSpec{name: "x", id: "a/b"}, wantErr: "client_id may contain only"},
		{name: "long id", spec: clientSpec{name: "x", id: strings.Repeat("a", 129)}, wantErr: "1 to 128"},
		{name: "public with secret method", spec: clientSpec{name: "x", public: true, authMethod: "client_secret_basic"}, wantErr: "--public conflicts"},
		{name: "public without redirect", spec: clientSpec{name: "x", public: true}, wantErr: "needs --redirect-uri"},
		{name: "public client credentials", spec: clientSpec{name: "x", authMethod: "none", grantTypes: []string{"client_credentials"}}, wantErr: "requires a confidential"},
		{name: "unknown grant", spec: clientSpec{name: "x", grantTypes: []string{"password"}}, wantErr: "grant type password is not supported"},
		{name: "code without redirect", spec: clientSpec{name: "x", grantTypes: []string{"authorization_code"}}, wantErr: "redirect_uris is required"},
		{name: "unknown scope", spec: clientSpec{name: "x", scopes: []string{"mail.send"}}, wantErr: `scope 'mail.send' is not offered`},
		{name: "bad scope token", spec: clientSpec{name: "x", scopes: []string{`a"b`}}, wantErr: "--scope:"},
		{name: "unregistered resource", spec: clientSpec{name: "x", resource: "https://other.example.test"}, wantErr: "not a registered resource"},
		{name: "invalid resource", spec: clientSpec{name: "x", resource: "ftp://x.example.test"}, wantErr: "default resource:"},
		{name: "bad tag", spec: clientSpec{name: "x", tags: []string{"two words"}}, wantErr: `tag 'two words' must be printable`},
		{name: "http redirect off loopback", spec: clientSpec{name: "x", redirectURIs: []string{"http://a.example.test/cb"}}, wantErr: "invalid client:"},
		{name: "unknown application type", spec: clientSpec{name: "x", applicationType: "desktop", redirectURIs: []string{"https://a.example.test/cb"}}, wantErr: "invalid client:"},
		{name: "private_key_jwt without keys", spec: clientSpec{name: "x", authMethod: "private_key_jwt"}, wantErr: "requires jwks"},
		{name: "private_key_jwt with bad keys", spec: clientSpec{name: "x", authMethod: "private_key_jwt", jwks: []byte(`{"keys":"no"}`)}, wantErr: "invalid client:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, secret, err := registerSpec(t, tt.spec, resources, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c, secret)
		})
	}
}

// registerSpec registers spec as `clients add` does, on a store holding
// resources, under the default policy set at now.
func registerSpec(t *testing.T, spec clientSpec, resources []*store.Resource, now time.Time) (*store.Client, string, error) {
	t.Helper()
	reg, err := clientRegistration(spec)
	if err != nil {
		return nil, "", err
	}
	e, err := policy.New(context.Background(), policy.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	st := &registryStore{resources: resources}
	r, err := clients.New(clients.Options{Store: st, Policy: e, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Register(context.Background(), reg)
	if err != nil {
		return nil, "", registrationError(err, reg.ClientID)
	}
	if len(st.created) != 1 || st.created[0] != res.Client || audit.Check(st.events[0]) != nil {
		t.Fatalf("stored %v with events %v", st.created, st.events)
	}
	return res.Client, res.Secret, nil
}

// registryStore is the part of the store registration uses.
type registryStore struct {
	resources []*store.Resource
	created   []*store.Client
	events    []*store.AuditEvent
}

func (s *registryStore) ListResources(context.Context, string) ([]*store.Resource, error) {
	return s.resources, nil
}

func (s *registryStore) CreateClient(_ context.Context, c *store.Client, ev *store.AuditEvent) error {
	s.created, s.events = append(s.created, c), append(s.events, ev)
	return nil
}

func (s *registryStore) GetClient(context.Context, string, string) (*store.Client, error) {
	return nil, errors.New("not expected")
}

func (s *registryStore) UpdateClient(context.Context, string, string, func(*store.Client) error, *store.AuditEvent) (*store.Client, error) {
	return nil, errors.New("not expected")
}

// TestClientGrantTypesFollowTheTable: the CLI registers a client for
// exactly the grant types the hub's grant table serves, public clients only
// for those open to them.
func TestClientGrantTypesFollowTheTable(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, g := range server.GrantTypes() {
		t.Run(g.Type, func(t *testing.T) {
			spec := clientSpec{name: "x", grantTypes: []string{g.Type}}
			if g.Type == oauth.GrantAuthorizationCode {
				spec.redirectURIs = []string{"http://127.0.0.1/cb"}
			}
			if _, _, err := registerSpec(t, spec, nil, now); err != nil {
				t.Fatalf("confidential client for %s: %v", g.Type, err)
			}
			spec.public = true
			spec.grantTypes = append(spec.grantTypes, oauth.GrantAuthorizationCode)
			spec.redirectURIs = []string{"http://127.0.0.1/cb"}
			_, _, err := registerSpec(t, spec, nil, now)
			if g.Public && err != nil {
				t.Fatalf("public client for %s: %v", g.Type, err)
			}
			if !g.Public && (err == nil || !strings.Contains(err.Error(), "requires a confidential")) {
				t.Fatalf("public client for %s: err = %v, want a refusal", g.Type, err)
			}
		})
	}
	for _, typ := range []string{"urn:ietf:params:oauth:grant-type:device_code", "implicit"} {
		t.Run("not served "+typ, func(t *testing.T) {
			_, _, err := registerSpec(t, clientSpec{name: "x", grantTypes: []string{typ}}, nil, now)
			if err == nil || !strings.Contains(err.Error(), "not supported") && !strings.Contains(err.Error(), "does not serve") {
				t.Fatalf("err = %v, want a refusal of the grant type", err)
			}
		})
	}
}

func TestOutputCell(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty shows dash", "", "-"},
		{"plain", "Notes Agent", "Notes Agent"},
		{"tab cannot add a column", "a\tb", "a b"},
		{"newline cannot add a row", "a\nb", "a b"},
		{"terminal escape", "a\x1b[31mb", "a [31mb"},
		{"C1 control", "a\u009bb", "a b"},
		{"unicode kept", "Notizen ✓", "Notizen ✓"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cell(tt.in); got != tt.want {
				t.Errorf("cell(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func (s *registryStore) ClientsBySoftware(context.Context, string, string, string) ([]*store.Client, error) {
	return nil, nil
}

func (s *registryStore) AppendAudit(_ context.Context, evs ...*store.AuditEvent) error {
	s.events = append(s.events, evs...)
	return nil
}
