package mcpauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// wellKnownPRM is the RFC 9728 §3 well-known URI suffix.
const wellKnownPRM = "/.well-known/oauth-protected-resource"

// ProtectedResourceMetadata is an OAuth 2.0 Protected Resource Metadata
// document (RFC 9728 §2): what an MCP client fetches to learn which hub
// issues tokens for this server. It is an http.Handler serving itself; use
// [HandleMetadata] to mount it where clients look.
type ProtectedResourceMetadata struct {
	// Resource is this server's canonical resource URI, exactly the MCP
	// endpoint URL clients use (RFC 9728 §3.3: clients reject a document
	// whose resource differs from the URL they requested). Required.
	Resource string `json:"resource"`
	// AuthorizationServers lists the hub's issuer. Required by the MCP
	// authorization specification (at least one entry).
	AuthorizationServers []string `json:"authorization_servers"`
	// ScopesSupported should be the minimal set of scopes for basic use;
	// clients request it when the challenge names none, and get more by
	// step-up. Do not list offline_access.
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	// BearerMethodsSupported defaults to ["header"], the only method
	// [Middleware] accepts (RFC 6750 §2.1).
	BearerMethodsSupported []string `json:"bearer_methods_supported,omitempty"`
	// ResourceName is a human-readable name for consent screens.
	ResourceName string `json:"resource_name,omitempty"`
	// ResourceDocumentation is a URL of developer documentation.
	ResourceDocumentation string `json:"resource_documentation,omitempty"`
	// ResourcePolicyURI and ResourceTOSURI are URLs of the data-use policy
	// and terms of service.
	ResourcePolicyURI string `json:"resource_policy_uri,omitempty"`
	ResourceTOSURI    string `json:"resource_tos_uri,omitempty"`
}

// Validate reports every problem with the document at once.
func (m *ProtectedResourceMetadata) Validate() error {
	var errs []error
	if err := checkHTTPURL(m.Resource, true); err != nil {
		errs = append(errs, fmt.Errorf("mcpauth: metadata resource: %w", err))
	} else if u, _ := url.Parse(m.Resource); strings.ContainsAny(u.Path, "{} ") {
		errs = append(errs, errors.New("mcpauth: metadata resource: path must not contain '{', '}' or spaces"))
	}
	if len(m.AuthorizationServers) == 0 {
		errs = append(errs, errors.New("mcpauth: metadata authorization_servers: at least one issuer required"))
	}
	for _, as := range m.AuthorizationServers {
		if err := checkHTTPURL(as, false); err != nil {
			errs = append(errs, fmt.Errorf("mcpauth: metadata authorization_servers: %w", err))
		}
	}
	for _, s := range m.ScopesSupported {
		if !validScopeToken(s) {
			errs = append(errs, fmt.Errorf("mcpauth: metadata scopes_supported: %q is not a scope token", s))
		}
	}
	for _, b := range m.BearerMethodsSupported {
		if b != "header" {
			errs = append(errs, fmt.Errorf("mcpauth: metadata bearer_methods_supported: %q is not supported by this package", b))
		}
	}
	for name, u := range map[string]string{
		"resource_documentation": m.ResourceDocumentation,
		"resource_policy_uri":    m.ResourcePolicyURI,
		"resource_tos_uri":       m.ResourceTOSURI,
	} {
		if u != "" {
			if err := checkHTTPURL(u, true); err != nil {
				errs = append(errs, fmt.Errorf("mcpauth: metadata %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (m *ProtectedResourceMetadata) document() ([]byte, error) {
	doc := *m
	if doc.BearerMethodsSupported == nil {
		doc.BearerMethodsSupported = []string{"header"}
	}
	return json.Marshal(doc)
}

// ServeHTTP serves the document as application/json (RFC 9728 §3.2), open to
// every origin so browser-based clients can discover the hub.
func (m *ProtectedResourceMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := m.document()
	if err != nil {
		http.Error(w, "metadata unavailable", http.StatusInternalServerError)
		return
	}
	serveDocument(w, r, body)
}

func serveDocument(w http.ResponseWriter, r *http.Request, body []byte) {
	h := w.Header()
	// The document is public (RFC 9728 §3), so any origin may read it.
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, MCP-Protocol-Version")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// MetadataURL returns the path-suffixed well-known URL of a resource's
// metadata (RFC 9728 §3.1): "/.well-known/oauth-protected-resource" inserted
// between the host and the path, a lone terminating "/" dropped; so
// "https://mcp.example.com/mcp" → "https://mcp.example.com/.well-known/oauth-protected-resource/mcp".
// MCP clients try it first, and [Middleware] puts it in resource_metadata.
func MetadataURL(resource string) (string, error) {
	if err := checkHTTPURL(resource, true); err != nil {
		return "", fmt.Errorf("mcpauth: resource: %w", err)
	}
	u, _ := url.Parse(resource)
	path := u.EscapedPath()
	if path == "/" {
		path = ""
	}
	out := u.Scheme + "://" + u.Host + wellKnownPRM + path
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out, nil
}

// HandleMetadata validates m and mounts it on mux at both discovery
// locations of the MCP authorization specification: the path-suffixed
// well-known path (RFC 9728 §3.1) and the root
// "/.well-known/oauth-protected-resource" (once, if they coincide). It
// returns the path-suffixed URL, the one to advertise in challenges.
//
// The root document carries the same resource. Clients that check the root
// document against the bare origin (RFC 9728 §3.3 read strictly) skip it,
// which is harmless: they find the path-suffixed document first, or through
// the challenge.
func HandleMetadata(mux *http.ServeMux, m *ProtectedResourceMetadata) (string, error) {
	if err := m.Validate(); err != nil {
		return "", err
	}
	body, err := m.document()
	if err != nil {
		return "", err
	}
	metadataURL, err := MetadataURL(m.Resource)
	if err != nil {
		return "", err
	}
	u, _ := url.Parse(m.Resource)
	path := u.Path
	if path == "/" {
		path = ""
	}
	serve := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveDocument(w, r, body) })
	if err := handle(mux, exactPattern(wellKnownPRM+path), serve); err != nil {
		return "", err
	}
	// Several resources on one mux share the root location: the first wins.
	if path != "" && !hasPattern(mux, wellKnownPRM) {
		if err := handle(mux, wellKnownPRM, serve); err != nil {
			return "", err
		}
	}
	return metadataURL, nil
}

// handle registers h, turning ServeMux's panic on a conflicting pattern into
// an error.
func handle(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("mcpauth: mounting metadata at %s: %v", pattern, p)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

func hasPattern(mux *http.ServeMux, path string) bool {
	r, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		return false
	}
	_, pattern := mux.Handler(r)
	return pattern == path
}

// exactPattern makes a ServeMux pattern match only p itself, even when p
// ends in "/" (which would otherwise match the whole subtree).
func exactPattern(p string) string {
	if strings.HasSuffix(p, "/") {
		return p + "{$}"
	}
	return p
}
