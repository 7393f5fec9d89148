package mcpauth_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/agentid/agentid/mcpauth"
)

func TestMetadataURL(t *testing.T) {
	tests := []struct {
		resource, want string
		wantErr        bool
	}{
		{resource: "https://mcp.example.com/mcp", want: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"},
		{resource: "http://127.0.0.1:9090/mcp", want: "http://127.0.0.1:9090/.well-known/oauth-protected-resource/mcp"},
		{resource: "https://example.com/public/mcp", want: "https://example.com/.well-known/oauth-protected-resource/public/mcp"},
		{resource: "https://mcp.example.com", want: "https://mcp.example.com/.well-known/oauth-protected-resource"},
		{resource: "https://mcp.example.com/", want: "https://mcp.example.com/.well-known/oauth-protected-resource"},
		{resource: "https://mcp.example.com/mcp/", want: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp/"},
		{resource: "https://mcp.example.com/mcp?tenant=a", want: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp?tenant=a"},
		{resource: "mcp.example.com/mcp", wantErr: true},
		{resource: "https://mcp.example.com/mcp#frag", wantErr: true},
		{resource: "ftp://mcp.example.com/mcp", wantErr: true},
		{resource: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.resource, func(t *testing.T) {
			got, err := mcpauth.MetadataURL(tt.resource)
			if (err != nil) != tt.wantErr {
				t.Fatalf("MetadataURL() error = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("MetadataURL() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHandleMetadata(t *testing.T) {
	md := &mcpauth.ProtectedResourceMetadata{
		Resource:              "http://127.0.0.1:9090/mcp",
		AuthorizationServers:  []string{"http://127.0.0.1:8080"},
		ScopesSupported:       []string{"notes:read"},
		ResourceName:          "Notes",
		ResourceDocumentation: "https://docs.example.com/notes",
	}
	mux := http.NewServeMux()
	u, err := mcpauth.HandleMetadata(mux, md)
	if err != nil {
		t.Fatal(err)
	}
	if u != "http://127.0.0.1:9090/.well-known/oauth-protected-resource/mcp" {
		t.Fatalf("HandleMetadata URL = %q", u)
	}
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		t.Run("GET "+path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
			if rec.Code != 200 {
				t.Fatalf("status = %d", rec.Code)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if o := rec.Header().Get("Access-Control-Allow-Origin"); o != "*" {
				t.Errorf("Access-Control-Allow-Origin = %q", o)
			}
			var got map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{
				"resource":                 "http://127.0.0.1:9090/mcp",
				"authorization_servers":    []any{"http://127.0.0.1:8080"},
				"scopes_supported":         []any{"notes:read"},
				"bearer_methods_supported": []any{"header"},
				"resource_name":            "Notes",
				"resource_documentation":   "https://docs.example.com/notes",
			}
			if len(got) != len(want) {
				t.Errorf("document has %d members, want %d: %v", len(got), len(want), got)
			}
			for k, w := range want {
				gb, _ := json.Marshal(got[k])
				wb, _ := json.Marshal(w)
				if string(gb) != string(wb) {
					t.Errorf("%s = %s, want %s", k, gb, wb)
				}
			}
		})
	}
	methods := []struct {
		method string
		code   int
	}{{"OPTIONS", 204}, {"HEAD", 200}, {"POST", 405}, {"DELETE", 405}}
	for _, m := range methods {
		t.Run(m.method, func(t *testing.T) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(m.method, "/.well-known/oauth-protected-resource/mcp", nil))
			if rec.Code != m.code {
				t.Fatalf("status = %d, want %d", rec.Code, m.code)
			}
			if m.method == "HEAD" && rec.Body.Len() != 0 {
				t.Error("HEAD has a body")
			}
		})
	}
	t.Run("other paths untouched", func(t *testing.T) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/oauth-protected-resource/mcp/extra", nil))
		if rec.Code != 404 {
			t.Fatalf("status = %d, want 404", rec.Code)
		}
	})
	t.Run("second resource on the same mux", func(t *testing.T) {
		other := *md
		other.Resource = "http://127.0.0.1:9090/admin/mcp"
		if _, err := mcpauth.HandleMetadata(mux, &other); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/oauth-protected-resource/admin/mcp", nil))
		var got mcpauth.ProtectedResourceMetadata
		_ = json.Unmarshal(rec.Body.Bytes(), &got)
		if got.Resource != other.Resource {
			t.Errorf("resource = %q", got.Resource)
		}
		if _, err := mcpauth.HandleMetadata(mux, &other); err == nil {
			t.Error("mounting the same resource twice: want an error, not a panic or silence")
		}
	})
}

func TestHandleMetadataOriginResource(t *testing.T) {
	mux := http.NewServeMux()
	u, err := mcpauth.HandleMetadata(mux, &mcpauth.ProtectedResourceMetadata{
		Resource: "https://mcp.example.com", AuthorizationServers: []string{"https://hub.example.com"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if u != "https://mcp.example.com/.well-known/oauth-protected-resource" {
		t.Fatalf("URL = %q", u)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/oauth-protected-resource", nil))
	if rec.Code != 200 {
		t.Fatalf("status = %d", rec.Code)
	}
}

func TestProtectedResourceMetadataValidate(t *testing.T) {
	good := mcpauth.ProtectedResourceMetadata{Resource: "https://mcp.example.com/mcp", AuthorizationServers: []string{"https://hub.example.com"}}
	tests := []struct {
		name    string
		mutate  func(*mcpauth.ProtectedResourceMetadata)
		wantErr bool
	}{
		{"valid", func(*mcpauth.ProtectedResourceMetadata) {}, false},
		{"no resource", func(m *mcpauth.ProtectedResourceMetadata) { m.Resource = "" }, true},
		{"relative resource", func(m *mcpauth.ProtectedResourceMetadata) { m.Resource = "/mcp" }, true},
		{"fragment", func(m *mcpauth.ProtectedResourceMetadata) { m.Resource += "#x" }, true},
		{"pattern characters", func(m *mcpauth.ProtectedResourceMetadata) { m.Resource = "https://mcp.example.com/{x}" }, true},
		{"no authorization servers", func(m *mcpauth.ProtectedResourceMetadata) { m.AuthorizationServers = nil }, true},
		{"bad authorization server", func(m *mcpauth.ProtectedResourceMetadata) { m.AuthorizationServers = []string{"hub"} }, true},
		{"bad scope", func(m *mcpauth.ProtectedResourceMetadata) { m.ScopesSupported = []string{"a b"} }, true},
		{"query bearer method", func(m *mcpauth.ProtectedResourceMetadata) { m.BearerMethodsSupported = []string{"query"} }, true},
		{"bad documentation URL", func(m *mcpauth.ProtectedResourceMetadata) { m.ResourceDocumentation = "docs" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good
			m.AuthorizationServers = slices.Clone(good.AuthorizationServers)
			tt.mutate(&m)
			if err := m.Validate(); (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestProtectedResourceMetadataServeHTTP(t *testing.T) {
	md := &mcpauth.ProtectedResourceMetadata{Resource: "https://mcp.example.com/mcp", AuthorizationServers: []string{"https://hub.example.com"}}
	rec := httptest.NewRecorder()
	md.ServeHTTP(rec, httptest.NewRequest("GET", "/prm", nil))
	var got mcpauth.ProtectedResourceMetadata
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Resource != md.Resource || !slices.Equal(got.BearerMethodsSupported, []string{"header"}) {
		t.Errorf("document = %+v", got)
	}
	if md.BearerMethodsSupported != nil {
		t.Error("serving mutated the struct")
	}
}
