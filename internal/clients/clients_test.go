package clients_test

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
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

const notes = "https://notes.example.test/mcp"

var served = []oauth.SupportedGrant{{Type: oauth.GrantAuthorizationCode, Public: true}, {Type: oauth.GrantRefreshToken, Public: true}, {Type: oauth.GrantClientCredentials}}

// clock moves only when told to, and moves for real: each call to now may
// be checked against what it returned before.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// recorder is a Store that remembers each write with the event it came
// with; registration can write events no other way.
type recorder struct {
	resources []*store.Resource
	writes    []write
	fail      error
}

type write struct {
	op     string
	client store.Client
	ev     *store.AuditEvent
}

func (r *recorder) ListResources(context.Context, string) ([]*store.Resource, error) {
	return r.resources, nil
}

func (r *recorder) CreateClient(_ context.Context, c *store.Client, ev *store.AuditEvent) error {
	if r.fail != nil {
		return r.fail
	}
	r.writes = append(r.writes, write{"create", *c, ev})
	return nil
}

func (r *recorder) GetClient(_ context.Context, _, id string) (*store.Client, error) {
	for i := len(r.writes) - 1; i >= 0; i-- {
		if c := r.writes[i].client; c.ID == id {
			return &c, nil
		}
	}
	return nil, store.ErrNotFound
}

func (r *recorder) UpdateClient(ctx context.Context, tenantID, id string, update func(*store.Client) error, ev *store.AuditEvent) (*store.Client, error) {
	if r.fail != nil {
		return nil, r.fail
	}
	c, err := r.GetClient(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	if err := update(c); err != nil {
		return nil, err
	}
	r.writes = append(r.writes, write{"update", *c, ev})
	return c, nil
}

func resources() []*store.Resource {
	return []*store.Resource{{
		TenantID: store.DefaultTenant, URI: notes, Name: "Notes",
		Scopes: []store.Scope{{Name: "notes.read"}, {Name: "notes.write"}, {Name: "notes.delete", Sensitive: true}},
	}}
}

func newRegistrar(t *testing.T, st clients.Store, clk *clock) *clients.Registrar {
	t.Helper()
	e, err := policy.New(context.Background(), policy.Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	r, err := clients.New(clients.Options{Store: st, Policy: e, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func publicApp() *oauth.ClientMetadata {
	return &oauth.ClientMetadata{
		ClientName: "Agent", RedirectURIs: []string{"http://127.0.0.1:3000/cb"}, TokenEndpointAuthMethod: "none",
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scope: "notes.read",
	}
}

// TestRegisterByMethod: each method stores the client with its
// client.registered event in one store call, and the ceiling follows the
// method's rule.
func TestRegisterByMethod(t *testing.T) {
	tests := []struct {
		name        string
		reg         *clients.Registration
		wantMethod  string
		wantCeiling []string
		wantAsked   []string
		wantGrants  []string
		wantSecret  bool
	}{
		{
			name:       "dynamic: every offered scope but the sensitive one",
			reg:        &clients.Registration{Method: clients.Dynamic, Metadata: publicApp(), GrantTypes: served, IP: "192.0.2.7"},
			wantMethod: store.RegistrationDCR, wantCeiling: []string{"notes.read", "notes.write"},
			wantAsked: []string{"notes.read", "notes.write", "notes.delete"}, wantGrants: []string{"authorization_code", "refresh_token"},
		},
		{
			name: "admin: the named scopes, sensitive ones included",
			reg: &clients.Registration{Method: clients.Admin, ClientID: "job-1", GrantTypes: served, Tags: []string{"cc:notes.read"},
				DefaultResource: "https://NOTES.example.test/mcp/",
				Metadata:        &oauth.ClientMetadata{ClientName: "Job", GrantTypes: []string{"client_credentials"}, Scope: "notes.read notes.delete"}},
			wantMethod: store.RegistrationManual, wantCeiling: []string{"notes.read", "notes.delete"},
			wantAsked: []string{"notes.read", "notes.delete"}, wantGrants: []string{"client_credentials"}, wantSecret: true,
		},
		{
			name: "admin without scopes: bound only by resources and policy",
			reg: &clients.Registration{Method: clients.Admin, GrantTypes: served,
				Metadata: &oauth.ClientMetadata{ClientName: "Any", GrantTypes: []string{"client_credentials"}}},
			wantMethod: store.RegistrationManual, wantGrants: []string{"client_credentials"}, wantSecret: true,
		},
		{
			name: "demo resource server: no grants, a secret",
			reg: &clients.Registration{Method: clients.Demo, ClientID: "demo-mcp", ResourceServer: true,
				Metadata: &oauth.ClientMetadata{ClientName: "Demo MCP", TokenEndpointAuthMethod: "client_secret_basic"}},
			wantMethod: store.RegistrationManual, wantSecret: true,
		},
		{
			name: "resource server that exchanges: token exchange only",
			reg: &clients.Registration{Method: clients.Demo, ClientID: "demo-mcp", ResourceServer: true,
				Metadata: &oauth.ClientMetadata{ClientName: "Demo MCP", TokenEndpointAuthMethod: "client_secret_basic", GrantTypes: []string{oauth.GrantTokenExchange}}},
			wantMethod: store.RegistrationManual, wantGrants: []string{oauth.GrantTokenExchange}, wantSecret: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
			st := &recorder{resources: resources()}
			tc.reg.Audit = audit.Meta{RequestID: "req-1"}
			out, err := newRegistrar(t, st, clk).Register(context.Background(), tc.reg)
			if err != nil {
				t.Fatal(err)
			}
			c := out.Client
			if len(st.writes) != 1 || st.writes[0].op != "create" || st.writes[0].client.ID != c.ID {
				t.Fatalf("writes = %+v, want one CreateClient", st.writes)
			}
			if c.RegistrationMethod != tc.wantMethod || !slices.Equal(c.Scopes, tc.wantCeiling) ||
				!slices.Equal(c.RequestedScopes, tc.wantAsked) || !slices.Equal(c.GrantTypes, tc.wantGrants) {
				t.Errorf("client = %+v", c)
			}
			if (out.Secret != "") != tc.wantSecret || tc.wantSecret && !token.EqualHash(c.SecretHash, token.Hash(out.Secret)) {
				t.Errorf("secret %q with hash %x", out.Secret, c.SecretHash)
			}
			if !c.CreatedAt.Equal(clk.t) || c.TenantID != store.DefaultTenant {
				t.Errorf("created %v tenant %q", c.CreatedAt, c.TenantID)
			}
			if tc.reg.ClientID != "" && c.ID != tc.reg.ClientID {
				t.Errorf("id %q, want %q", c.ID, tc.reg.ClientID)
			}
			ev := st.writes[0].ev
			if err := audit.Check(ev); err != nil {
				t.Fatal(err)
			}
			d, ok, err := audit.DecisionOf(ev)
			if ev.Type != audit.ClientRegistered || ev.ClientID != c.ID || ev.RequestID != "req-1" || !ev.Time.Equal(clk.t) ||
				ev.Details["method"] != tc.wantMethod || !slices.Equal(ev.Scopes, tc.wantCeiling) ||
				err != nil || !ok || d.PolicyVersion != 0 || !slices.Equal(d.Granted(), tc.wantCeiling) {
				t.Errorf("event %+v, decision %+v", ev, d)
			}
			for k, v := range ev.Details {
				if out.Secret != "" && strings.Contains(v, out.Secret) {
					t.Errorf("the secret is in the event's %s", k)
				}
			}
		})
	}
}

// TestRegisterRefuses: what is refused is an *oauth.Error, and nothing is
// written.
func TestRegisterRefuses(t *testing.T) {
	tests := []struct {
		name string
		reg  *clients.Registration
		code string
	}{
		{"no metadata", &clients.Registration{Method: clients.Admin}, oauth.CodeInvalidClientMetadata},
		{"a grant the hub does not serve", &clients.Registration{Method: clients.Dynamic, GrantTypes: served,
			Metadata: &oauth.ClientMetadata{GrantTypes: []string{oauth.GrantTokenExchange}}}, oauth.CodeInvalidClientMetadata},
		{"an unknown scope", &clients.Registration{Method: clients.Dynamic, GrantTypes: served,
			Metadata: func() *oauth.ClientMetadata { m := publicApp(); m.Scope = "mail.send"; return m }()}, oauth.CodeInvalidClientMetadata},
		{"http redirect off loopback", &clients.Registration{Method: clients.Admin, GrantTypes: served,
			Metadata: &oauth.ClientMetadata{RedirectURIs: []string{"http://agent.example.test/cb"}}}, oauth.CodeInvalidRedirectURI},
		{"jwks_uri over http", &clients.Registration{Method: clients.Dynamic, GrantTypes: served,
			Metadata: &oauth.ClientMetadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKSURI: "http://a.example.test/jwks"}}, oauth.CodeInvalidClientMetadata},
		{"a chosen id on dynamic registration", &clients.Registration{Method: clients.Dynamic, ClientID: "mine", GrantTypes: served, Metadata: publicApp()}, oauth.CodeInvalidClientMetadata},
		{"a bad id", &clients.Registration{Method: clients.Admin, ClientID: "a b", GrantTypes: served, Metadata: publicApp()}, oauth.CodeInvalidClientMetadata},
		{"a bad tag", &clients.Registration{Method: clients.Admin, Tags: []string{""}, GrantTypes: served, Metadata: publicApp()}, oauth.CodeInvalidClientMetadata},
		{"an unregistered default resource", &clients.Registration{Method: clients.Admin, DefaultResource: "https://other.example.test/mcp", GrantTypes: served, Metadata: publicApp()}, oauth.CodeInvalidClientMetadata},
		{"a resource server with a grant", &clients.Registration{Method: clients.Demo, ResourceServer: true,
			Metadata: &oauth.ClientMetadata{GrantTypes: []string{"client_credentials"}}}, oauth.CodeInvalidClientMetadata},
		{"a resource server with exchange and another grant", &clients.Registration{Method: clients.Demo, ResourceServer: true,
			Metadata: &oauth.ClientMetadata{GrantTypes: []string{oauth.GrantTokenExchange, "client_credentials"}}}, oauth.CodeInvalidClientMetadata},
		{"a resource server with redirect URIs", &clients.Registration{Method: clients.Demo, ResourceServer: true,
			Metadata: &oauth.ClientMetadata{GrantTypes: []string{oauth.GrantTokenExchange}, RedirectURIs: []string{"https://a.example.test/cb"}}}, oauth.CodeInvalidClientMetadata},
		{"a public resource server", &clients.Registration{Method: clients.Demo, ResourceServer: true,
			Metadata: &oauth.ClientMetadata{TokenEndpointAuthMethod: "none"}}, oauth.CodeInvalidClientMetadata},
		{"dynamic asking only for a sensitive scope starts from the others", &clients.Registration{Method: clients.Dynamic, GrantTypes: served,
			Metadata: func() *oauth.ClientMetadata { m := publicApp(); m.Scope = "notes.delete"; return m }()}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &recorder{resources: resources()}
			_, err := newRegistrar(t, st, &clock{t: time.Now()}).Register(context.Background(), tc.reg)
			if tc.code == "" {
				// Dynamic: notes.delete alone is a starting point; the
				// ceiling is the other offered scopes.
				if err != nil || len(st.writes) != 1 {
					t.Fatalf("err = %v, writes %d", err, len(st.writes))
				}
				return
			}
			var oe *oauth.Error
			if !errors.As(err, &oe) || oe.Code != tc.code {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
			if len(st.writes) != 0 {
				t.Errorf("a refused registration wrote %+v", st.writes)
			}
		})
	}
}

// TestRegisterConflictWritesNoEvent: on a real store, a taken id is
// store.ErrConflict and leaves no client.registered event behind: the
// event lives and dies with the client.
func TestRegisterConflictWritesNoEvent(t *testing.T) {
	ctx := context.Background()
	st := servertest.New(t).Store
	reg := newRegistrar(t, st, &clock{t: time.Now()})
	register := func() error {
		_, err := reg.Register(ctx, &clients.Registration{Method: clients.Admin, ClientID: "agent-1", GrantTypes: served, Metadata: publicApp()})
		return err
	}
	if err := register(); err != nil {
		t.Fatal(err)
	}
	if err := register(); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second registration: %v, want ErrConflict", err)
	}
	evs, err := st.ListAudit(ctx, store.AuditFilter{Type: audit.ClientRegistered, ClientID: "agent-1"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("client.registered events = %d, %v; want 1", len(evs), err)
	}
}

// TestUpdate: RFC 7592 replaces the metadata, keeps what is not metadata,
// recomputes the ceiling under the client's own method, and records
// client.updated in the same store call.
func TestUpdate(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	st := &recorder{resources: resources()}
	r := newRegistrar(t, st, clk)
	ctx := context.Background()
	out, err := r.Register(ctx, &clients.Registration{Method: clients.Dynamic, Metadata: publicApp(), GrantTypes: served, RegistrationTokenHash: []byte("rat"), IP: "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	cur := out.Client
	cur.Tags, cur.Disabled = []string{"trusted"}, true
	clk.t = clk.t.Add(time.Hour)

	m := publicApp()
	m.ClientName, m.TokenEndpointAuthMethod, m.RedirectURIs = "Renamed", "client_secret_post", []string{"https://agent.example.test/cb"}
	upd, err := r.Update(ctx, cur, &clients.Registration{Metadata: m, GrantTypes: served, ClientID: "ignored", Audit: audit.Meta{RequestID: "req-2"}})
	if err != nil {
		t.Fatal(err)
	}
	c := upd.Client
	if c.ID != cur.ID || c.Name != "Renamed" || c.RegistrationMethod != store.RegistrationDCR || string(c.RegistrationTokenHash) != "rat" ||
		!c.Disabled || c.CreatedIP != "192.0.2.7" || !c.UpdatedAt.Equal(clk.t) || !c.CreatedAt.Equal(cur.CreatedAt) {
		t.Errorf("updated client = %+v", c)
	}
	// Trusted now: the sensitive scope joins the ceiling.
	if !slices.Equal(c.Scopes, []string{"notes.read", "notes.write", "notes.delete"}) {
		t.Errorf("ceiling %v", c.Scopes)
	}
	if upd.Secret == "" || !token.EqualHash(c.SecretHash, token.Hash(upd.Secret)) {
		t.Error("a secret method got no secret")
	}
	w := st.writes[len(st.writes)-1]
	if w.op != "update" || audit.Check(w.ev) != nil || w.ev.Type != audit.ClientUpdated || w.ev.Details["change"] != audit.ChangeMetadata ||
		w.ev.RequestID != "req-2" || w.ev.Details[audit.DetailPolicyVersion] != "0" {
		t.Errorf("update write %+v", w)
	}
	if cur.Name != "Agent" {
		t.Error("Update changed the client it was given")
	}
}

func TestValidTag(t *testing.T) {
	for _, tc := range []struct {
		tag string
		ok  bool
	}{{"trusted", true}, {"cc:notes.read", true}, {"", false}, {"two words", false}, {"é", false}, {string(make([]byte, 65)), false}} {
		if err := clients.ValidTag(tc.tag); (err == nil) != tc.ok {
			t.Errorf("ValidTag(%q) = %v", tc.tag, err)
		}
	}
}

func (r *recorder) ClientsBySoftware(context.Context, string, string, string) ([]*store.Client, error) {
	return nil, nil
}

func (r *recorder) AppendAudit(_ context.Context, evs ...*store.AuditEvent) error {
	for _, ev := range evs {
		r.writes = append(r.writes, write{"audit", store.Client{}, ev})
	}
	return nil
}
