package server

import (
	"context"
	"net/http"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// proveTokenExchange is RFC 8693 token exchange. PLACEHOLDER on branch
// idjag: helper exchange owns this file; only requested_token_type id-jag
// is routed here (to grant_idjag.go). Take exchange's version on merge.
func (s *Server) proveTokenExchange(ctx context.Context, r *http.Request, c *store.Client, req *oauth.TokenRequest) (*authorization, error) {
	switch req.RequestedTokenType {
	case oauth.TokenTypeIDJAG:
		return s.proveIDJAGExchange(ctx, r, c, req)
	default:
		return nil, oauth.NewError(oauth.CodeUnsupportedTokenType, "requested_token_type %q is not supported", truncate(req.RequestedTokenType, 100))
	}
}
