package mcpauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// claimsExtraKey is the auth.TokenInfo.Extra key holding *Claims.
const claimsExtraKey = "mcpauth.claims"

// TokenVerifier adapts v to the MCP Go SDK's auth.TokenVerifier, for servers
// that use auth.RequireBearerToken rather than [Middleware]. Token errors
// wrap auth.ErrInvalidToken (the SDK answers 401); ErrUnavailable does not
// (the SDK answers 500). The SDK's own challenges carry no error attribute,
// so MCP clients will not step up scopes from them; prefer [Middleware].
//
// The TokenInfo carries Scopes, Expiration, UserID (the token's sub) and
// Extra with "sub", "client_id", "iss", "jti", "aud", and the full claims for
// [ClaimsFromTokenInfo].
func (v *Verifier) TokenVerifier() auth.TokenVerifier {
	return func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		c, err := v.Verify(ctx, token)
		if err != nil {
			if errors.Is(err, ErrTokenInvalid) || errors.Is(err, ErrNoToken) {
				return nil, fmt.Errorf("%w: %w", auth.ErrInvalidToken, err)
			}
			return nil, err
		}
		return tokenInfo(c), nil
	}
}

func tokenInfo(c *Claims) *auth.TokenInfo {
	return &auth.TokenInfo{
		Scopes:     c.Scopes,
		Expiration: c.ExpiresAt,
		UserID:     c.Subject,
		Extra: map[string]any{
			"sub":          c.Subject,
			"client_id":    c.ClientID,
			"iss":          c.Issuer,
			"jti":          c.JTI,
			"aud":          c.Audience,
			claimsExtraKey: c,
		},
	}
}

// ClaimsFromTokenInfo returns the claims behind a TokenInfo made by
// [Middleware] or [Verifier.TokenVerifier], e.g. from a tool handler's
// req.Extra.TokenInfo.
func ClaimsFromTokenInfo(ti *auth.TokenInfo) (*Claims, bool) {
	if ti == nil {
		return nil, false
	}
	c, ok := ti.Extra[claimsExtraKey].(*Claims)
	return c, ok && c != nil
}

// RequireScopes wraps an MCP tool handler so it runs only when the request's
// token carries every one of scopes; otherwise the call returns a tool error
// result (IsError) naming the missing scopes, and a call without any token
// information is refused the same way. It is defence in depth behind
// [Middleware]'s [ToolScopes], which already answers such calls with an HTTP
// 403 step-up challenge before they reach the MCP server; use both, with the
// same scopes.
func RequireScopes[In, Out any](h mcp.ToolHandlerFor[In, Out], scopes ...string) mcp.ToolHandlerFor[In, Out] {
	scopes = append([]string(nil), scopes...)
	return func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
		var granted []string
		ok := false
		if req != nil && req.Extra != nil && req.Extra.TokenInfo != nil {
			granted, ok = req.Extra.TokenInfo.Scopes, true
		}
		if !ok {
			var zero Out
			return nil, zero, errors.New("unauthenticated: this tool requires an access token")
		}
		if missing := missingScopes(granted, scopes); len(missing) > 0 {
			markDenied(ctx)
			var zero Out
			return nil, zero, fmt.Errorf("insufficient scope: this tool requires %s", strings.Join(missing, " "))
		}
		return h(ctx, req, in)
	}
}
