package mcpauthtest

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Connection is a downstream credential in the test hub's vault, which it
// hands to the MCP server by the hub's retrieval exchange (resource
// "<issuer>/providers/<provider>").
type Connection struct {
	// AccessToken is the provider's access token, or the API key.
	AccessToken string
	// ExpiresIn is the remaining lifetime the hub reports (zero: none).
	ExpiresIn time.Duration
	// Scopes are the provider scopes the hub reports.
	Scopes []string
	// KeyHeader (with KeyHeaderValue) or KeyQuery make the credential an
	// API key that goes in that header or query parameter.
	KeyHeader, KeyHeaderValue, KeyQuery string
	// NeedsReauth makes retrievals answer connection_required with
	// connection_status needs_reauth.
	NeedsReauth bool
}

type connKey struct{ subject, provider string }

// SetConnection gives the user subject a connection to provider.
func (s *Server) SetConnection(subject, provider string, c Connection) {
	c.Scopes = slices.Clone(c.Scopes)
	s.vaultMu.Lock()
	s.connections[connKey{subject, provider}] = &c
	s.vaultMu.Unlock()
}

// RemoveConnection disconnects the user subject from provider.
func (s *Server) RemoveConnection(subject, provider string) {
	s.vaultMu.Lock()
	delete(s.connections, connKey{subject, provider})
	s.vaultMu.Unlock()
}

// AccessTokenOf returns the access token of the user's connection to
// provider ("" when there is none), as the provider knows it.
func (s *Server) AccessTokenOf(subject, provider string) string {
	s.vaultMu.Lock()
	defer s.vaultMu.Unlock()
	if c := s.connections[connKey{subject, provider}]; c != nil {
		return c.AccessToken
	}
	return ""
}

// Retrievals counts retrieval requests; ForcedRetrievals those with
// force_refresh=true.
func (s *Server) Retrievals() int       { return int(s.retrievals.Load()) }
func (s *Server) ForcedRetrievals() int { return int(s.forced.Load()) }

// serveRetrieval answers the hub's retrieval exchange from the vault. Like
// mcpauthtest's token exchange it skips the hub's audience, consent, policy
// and scope checks; those are the hub's own tests. A forced retrieval of
// an expiring credential "refreshes" it: a new access token.
func (s *Server) serveRetrieval(w http.ResponseWriter, r *http.Request, subject map[string]any, provider string) {
	s.retrievals.Add(1)
	sub, _ := subject["sub"].(string)
	key := connKey{sub, provider}
	force := r.PostFormValue("force_refresh") == "true"
	if force {
		s.forced.Add(1)
	}
	s.vaultMu.Lock()
	c := s.connections[key]
	if c != nil && force && c.KeyHeader == "" && c.KeyQuery == "" && !c.NeedsReauth {
		c.AccessToken = "refreshed-" + randomString(16)
	}
	var cc Connection
	if c != nil {
		cc = *c
	}
	var intent string
	if c == nil || c.NeedsReauth {
		intent = randomString(16)
		s.intents[intent] = key
	}
	s.vaultMu.Unlock()

	if intent != "" {
		status := "missing"
		if c != nil {
			status = "needs_reauth"
		}
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"error": "connection_required", "error_description": "the user has not connected " + provider,
			"connect_uri": s.Issuer() + "/connections/connect/" + url.PathEscape(provider) + "?intent=" + intent,
			"provider":    provider, "connection_status": status,
		})
		return
	}
	resp := map[string]any{
		"access_token": cc.AccessToken, "issued_token_type": tokenTypeAccessToken, "token_type": "Bearer",
		"scope": strings.Join(cc.Scopes, " "), "provider": provider, "connection_id": "conn_" + provider + "_" + sub,
	}
	if cc.KeyHeader != "" || cc.KeyQuery != "" {
		resp["issued_token_type"] = "urn:agentid:params:oauth:token-type:api_key"
		resp["token_type"] = "N_A"
		resp["key_header"], resp["key_header_value"], resp["key_query"] = cc.KeyHeader, cc.KeyHeaderValue, cc.KeyQuery
	}
	if cc.ExpiresIn > 0 {
		resp["expires_in"] = int(cc.ExpiresIn / time.Second)
	}
	writeJSON(w, http.StatusOK, resp)
}

// serveConnect is the connect page a connect URL opens: a GET connects the
// user the URL was made for with a fresh one-hour access token (the person
// approving at the provider, in one step). An intent works once.
func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request) {
	intent := r.URL.Query().Get("intent")
	s.vaultMu.Lock()
	key, ok := s.intents[intent]
	if ok && key.provider == r.PathValue("provider") {
		delete(s.intents, intent)
		s.connections[key] = &Connection{AccessToken: "connected-" + randomString(16), ExpiresIn: time.Hour}
	}
	s.vaultMu.Unlock()
	if !ok || key.provider != r.PathValue("provider") {
		http.Error(w, "The connect link is invalid or has expired.", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Connected %s.\n", key.provider)
}
