package clients_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

const docURL = "https://app.example.com/oauth/client.json"

// document parses a Client ID Metadata Document built from fields, as the
// server does before it syncs one.
func document(t *testing.T, edit func(map[string]any)) *oauth.ClientMetadata {
	t.Helper()
	m := map[string]any{
		"client_id": docURL, "client_name": "Example MCP Client",
		"redirect_uris": []string{"http://127.0.0.1:3000/callback"},
		"grant_types":   []string{"authorization_code", "refresh_token"},
	}
	if edit != nil {
		edit(m)
	}
	b, _ := json.Marshal(m)
	md, oe := oauth.ParseClientMetadataDocument(docURL, b)
	if oe != nil {
		t.Fatal(oe)
	}
	return md
}

// TestSyncDocumentAuditsChanges: the first sight of a document registers a
// public cimd client; the same document again writes nothing; a changed
// document updates the client with one client.updated event naming exactly
// the fields that changed; a key makes it confidential.
func TestSyncDocumentAuditsChanges(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	st := &recorder{resources: resources()}
	r := newRegistrar(t, st, clk)
	ctx := context.Background()
	sync := func(md *oauth.ClientMetadata) *clients.Synced {
		t.Helper()
		clk.t = clk.t.Add(time.Minute)
		out, err := r.SyncDocument(ctx, &clients.Document{URL: docURL, Metadata: md, GrantTypes: served, IP: "192.0.2.9", Audit: audit.Meta{RequestID: "r"}})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	first := sync(document(t, nil))
	c := first.Client
	if !first.New || c.ID != docURL || c.RegistrationMethod != store.RegistrationCIMD || !c.Public() || c.CreatedIP != "192.0.2.9" ||
		!slices.Equal(c.Scopes, []string{"notes.read", "notes.write"}) {
		t.Fatalf("first sight: %+v %+v", first, c)
	}
	if len(st.writes) != 1 || st.writes[0].ev.Type != audit.ClientRegistered || st.writes[0].ev.Details["method"] != store.RegistrationCIMD {
		t.Fatalf("writes = %+v", st.writes)
	}

	again := sync(document(t, nil))
	if again.New || len(again.Changed) != 0 || len(st.writes) != 1 {
		t.Fatalf("unchanged document: %+v, %d writes", again, len(st.writes))
	}

	changes := []struct {
		name   string
		edit   func(map[string]any)
		fields []string
		public bool
	}{
		{"a new redirect URI", func(m map[string]any) {
			m["redirect_uris"] = []string{"http://127.0.0.1:3000/callback", "http://localhost:4000/cb"}
		}, []string{"redirect_uris"}, true},
		{"only the name", func(m map[string]any) {
			m["redirect_uris"] = []string{"http://127.0.0.1:3000/callback", "http://localhost:4000/cb"}
			m["client_name"] = "Renamed"
		}, []string{"client_name"}, true},
		{"keys and auth method", func(m map[string]any) {
			m["client_name"] = "Renamed"
			m["token_endpoint_auth_method"] = "private_key_jwt"
			m["jwks_uri"] = "https://app.example.com/jwks.json"
		}, []string{"redirect_uris", "token_endpoint_auth_method", "jwks_uri"}, false},
		{"grant types", func(m map[string]any) {
			m["client_name"] = "Renamed"
			m["token_endpoint_auth_method"] = "private_key_jwt"
			m["jwks_uri"] = "https://app.example.com/jwks.json"
			m["grant_types"] = []string{"authorization_code"}
		}, []string{"grant_types"}, false},
	}
	for _, ch := range changes {
		n := len(st.writes)
		out := sync(document(t, ch.edit))
		if !slices.Equal(out.Changed, ch.fields) || len(st.writes) != n+1 {
			t.Fatalf("%s: changed %v, want %v (%d writes)", ch.name, out.Changed, ch.fields, len(st.writes)-n)
		}
		w := st.writes[n]
		if err := audit.Check(w.ev); err != nil {
			t.Fatal(err)
		}
		if w.op != "update" || w.ev.Type != audit.ClientUpdated || w.ev.ClientID != docURL || w.ev.Details["change"] != audit.ChangeDocument ||
			w.ev.Details["fields"] != joined(ch.fields) || !w.ev.Time.Equal(clk.t) {
			t.Fatalf("%s: write %s event %+v", ch.name, w.op, w.ev)
		}
		if out.Client.Public() != ch.public || out.Client.ID != docURL || !out.Client.CreatedAt.Equal(c.CreatedAt) {
			t.Fatalf("%s: client %+v", ch.name, out.Client)
		}
	}
}

func joined(xs []string) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += " "
		}
		s += x
	}
	return s
}

// TestSyncDocumentRefusesInvalid: a document the registration rules refuse
// changes nothing, and neither does a document over an admin's client.
func TestSyncDocumentRefusesInvalid(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	st := &recorder{resources: resources()}
	r := newRegistrar(t, st, clk)
	md := document(t, func(m map[string]any) { m["redirect_uris"] = []string{"http://evil.example/cb"} })
	_, err := r.SyncDocument(context.Background(), &clients.Document{URL: docURL, Metadata: md, GrantTypes: served})
	if oe, ok := err.(*oauth.Error); !ok || oe.Code != oauth.CodeInvalidRedirectURI || len(st.writes) != 0 {
		t.Fatalf("err = %v, writes %d", err, len(st.writes))
	}
	md = document(t, func(m map[string]any) { m["token_endpoint_auth_method"] = "private_key_jwt" })
	if _, err := r.SyncDocument(context.Background(), &clients.Document{URL: docURL, Metadata: md, GrantTypes: served}); err == nil || len(st.writes) != 0 {
		t.Fatalf("private_key_jwt without keys: err = %v", err)
	}
}
