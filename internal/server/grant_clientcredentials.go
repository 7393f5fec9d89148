package server

import (
	"context"
	"net/http"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// proveClientCredentials is the client credentials grant (RFC 6749 §4.4):
// the client's authentication is the whole proof, and the client acts for
// itself, on the resource and scopes the request names (or its defaults).
func (s *Server) proveClientCredentials(_ context.Context, _ *http.Request, _ *store.Client, req *oauth.TokenRequest) (*authorization, error) {
	return &authorization{
		subject:  clientSubject(),
		resource: req.Resources,
		scopes:   req.Scopes,
	}, nil
}
