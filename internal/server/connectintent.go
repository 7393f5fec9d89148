package server

import (
	"encoding/json"
	"errors"
	"net/url"
	"time"
)

// connectIntent is what a connect URL carries: the hub made it when an MCP
// server asked for a credential the person lacks, for that person, that
// provider and those scopes. It is sealed by the keyring (so every replica
// opens it and nobody can forge or alter one) and expires after
// connectIntentTTL. The page it opens connects only for the signed-in
// person it names: a link forwarded to someone else connects nothing.
type connectIntent struct {
	TenantID string   `json:"t"`
	UserID   string   `json:"u"`
	Provider string   `json:"p"`
	Scopes   []string `json:"s,omitempty"`
	// ClientID is the agent and Resource the MCP server that asked, for
	// the page to say who wants the connection.
	ClientID string `json:"c,omitempty"`
	Resource string `json:"r,omitempty"`
	Expires  int64  `json:"e"`
}

// connectIntentTTL is how long a connect URL works.
const connectIntentTTL = 15 * time.Minute

// connectIntentAAD binds a sealed intent to its purpose.
const connectIntentAAD = "connect-intent"

var errBadIntent = errors.New("the connect link is invalid or has expired")

// connectURL seals ci (its Expires set from now) into the URL of the
// connect page: <issuer>/connections/connect/<provider>?intent=<sealed>.
func (s *Server) connectURL(ci connectIntent) (string, error) {
	ci.Expires = s.now().Add(connectIntentTTL).Unix()
	b, err := json.Marshal(ci)
	if err != nil {
		return "", err
	}
	sealed, err := s.cfg.Keyring.Seal(s.rand, b, connectIntentAAD)
	if err != nil {
		return "", err
	}
	return s.issuer + "/connections/connect/" + url.PathEscape(ci.Provider) + "?intent=" + url.QueryEscape(string(sealed)), nil
}

// openConnectIntent opens the intent of a connect URL for provider:
// errBadIntent unless it opens, names that provider and has not expired.
func (s *Server) openConnectIntent(provider, raw string) (*connectIntent, error) {
	if raw == "" || len(raw) > 4096 || s.cfg.Keyring == nil {
		return nil, errBadIntent
	}
	b, err := s.cfg.Keyring.Open([]byte(raw), connectIntentAAD)
	if err != nil {
		return nil, errBadIntent
	}
	var ci connectIntent
	if err := json.Unmarshal(b, &ci); err != nil || ci.Provider != provider || ci.UserID == "" {
		return nil, errBadIntent
	}
	if !s.now().Before(time.Unix(ci.Expires, 0)) {
		return nil, errBadIntent
	}
	return &ci, nil
}
