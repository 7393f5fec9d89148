package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// proveAuthorizationCode is the authorization code grant (RFC 6749 §4.1.3,
// OAuth 2.1 §4.1.3): the code is consumed (its one transaction; a replay
// revokes the code's family), and must have been issued to this client for
// this redirect URI and PKCE verifier.
func (s *Server) proveAuthorizationCode(ctx context.Context, r *http.Request, c *store.Client, req *oauth.TokenRequest) (*authorization, error) {
	code, err := s.st.ConsumeAuthCode(ctx, token.Hash(req.Code), s.now(), audit.NewCodeReplayed(s.meta(r).WithAgent(c), c.ID))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, oauth.ErrInvalidGrant("the authorization code is invalid or expired")
	case errors.Is(err, store.ErrAlreadyUsed):
		// RFC 6749 §4.1.2: the store has revoked every token issued from it.
		return nil, oauth.ErrInvalidGrant("the authorization code was already used")
	case err != nil:
		return nil, err
	}
	if code.ClientID != c.ID || code.TenantID != s.tenant {
		return nil, oauth.ErrInvalidGrant("the authorization code was issued to another client")
	}
	// RFC 6749 §4.1.3: redirect_uri must match when it is sent (OAuth 2.1
	// makes it optional, PKCE binding the code to the client instead).
	if req.RedirectURI != "" && req.RedirectURI != code.RedirectURI {
		return nil, oauth.ErrInvalidGrant("redirect_uri does not match the authorization request")
	}
	// RFC 7636 §4.6.
	if !oauth.VerifyPKCE(code.CodeChallenge, code.CodeChallengeMethod, req.CodeVerifier) {
		return nil, oauth.ErrInvalidGrant("code_verifier does not match the code_challenge")
	}
	if err := sameResource(req.Resources, code.Resource, "the authorization request"); err != nil {
		return nil, err
	}
	oidc, scopes := splitOIDC(code.Scopes)
	return &authorization{
		subject:  userSubject(code.UserID, code.AuthTime),
		resource: []string{code.Resource},
		scopes:   scopes,
		oidc:     oidc,
		nonce:    code.Nonce,
		family:   family{id: code.GrantID, scopes: scopes, oidc: oidc, installation: oauth.InstallationURI(code.RedirectURI)},
		consent:  true,
		refresh:  true,
	}, nil
}

// sameResource checks that the resource parameters of a token request, when
// sent, name the resource the grant is bound to (RFC 8707 §2).
func sameResource(raw []string, bound, boundBy string) error {
	uri, err := requestedResource(raw)
	if err != nil {
		return err
	}
	if uri != "" && uri != bound {
		return oauth.ErrInvalidTarget("resource does not match %s", boundBy)
	}
	return nil
}
