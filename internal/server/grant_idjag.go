package server

import (
	"context"
	"net/http"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// proveIDJAGExchange is token exchange for an Identity Assertion JWT
// Authorization Grant (requested_token_type id-jag): the hub as the
// enterprise identity provider. Stub until it is built: the type is
// refused as unsupported.
func (s *Server) proveIDJAGExchange(_ context.Context, _ *http.Request, _ *store.Client, _ *oauth.TokenRequest) (*authorization, error) {
	return nil, oauth.NewError(oauth.CodeUnsupportedTokenType, "requested_token_type %q is not supported", oauth.TokenTypeIDJAG)
}
