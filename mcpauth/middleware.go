package mcpauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// MiddlewareOptions configures [Middleware]. Zero values mean defaults.
type MiddlewareOptions struct {
	// ResourceMetadataURL is sent as resource_metadata in every challenge
	// (RFC 9728 §5.1) so clients can find the hub. Empty means the
	// path-suffixed well-known URL of the verifier's resource, which is where
	// [HandleMetadata] serves it.
	ResourceMetadataURL string
	// Scopes is the scope attribute of 401 challenges (RFC 6750 §3): the
	// scopes a client should ask for first, usually the metadata's
	// ScopesSupported. Empty omits the attribute.
	Scopes []string
	// ToolScopes are enforced on JSON-RPC tools/call requests (single or
	// batched) before they reach the MCP server. With ToolScopes set, the
	// middleware reads every POST body, and so also checks the Mcp-Method
	// and Mcp-Name headers (MCP 2026-07-28) against it.
	ToolScopes ToolScopes
	// MaxBodyBytes bounds a POST body read to find the called tools (only
	// when ToolScopes or Reporter is set); a larger body gets 413. Zero
	// means 4 MiB.
	MaxBodyBytes int64
	// Reporter, when set, is told of the tool calls the middleware refuses
	// itself, as [ToolDenied]: a tools/call lacking the tool's scopes
	// (403), and one made with a token that verified but the hub reports
	// inactive in introspection mode (401, a revoked token or a switched
	// off agent). Calls refused with no verified token are not reported:
	// nothing links them to a token of the hub. The calls that pass are
	// reported by [Reporter.Middleware] in the MCP server.
	Reporter *Reporter
}

const defaultMaxBodyBytes = 4 << 20

// Middleware protects an MCP endpoint, for every MCP revision: the
// session-based ones up to 2025-11-25 and the stateless 2026-07-28. Every
// request except a CORS preflight (OPTIONS, which by definition carries no
// credentials) must carry a valid bearer token in the Authorization header
// ([Verifier.Check]), whatever Mcp-Session-Id or state handle it also
// carries: those are never taken as authentication (MCP security best
// practices, "Session hijacking"); the token's
// claims are then in the request context ([ClaimsFromContext]) and, for the
// MCP Go SDK, its auth.TokenInfo is set as auth.RequireBearerToken would
// (so tool handlers see it in req.Extra.TokenInfo and the SDK binds sessions
// to the token's subject).
//
// Failures are answered with a small JSON body and a challenge:
//
//   - no token: 401, WWW-Authenticate: Bearer scope="…", resource_metadata="…"
//     (RFC 6750 §3, RFC 9728 §5.1);
//   - a bad token: 401 with error="invalid_token" and error_description;
//   - a malformed Authorization header or a token in the query: 400 with
//     error="invalid_request";
//   - a tools/call lacking the tool's scopes: 403 with
//     error="insufficient_scope" and scope= every scope the call needs
//     (the token's scopes plus the missing ones), the MCP step-up signal;
//   - (with ToolScopes) a POST whose Mcp-Method or Mcp-Name header
//     disagrees with its body, or a 2026-07-28 request without them: 400
//     with the JSON-RPC error HeaderMismatch (-32020, SEP-2243). The tool
//     a request calls is read from Mcp-Name once it is proven to match the
//     body, which is what the MCP server will execute;
//   - the hub unreachable when it had to be asked: 503 without a challenge,
//     so clients do not re-authorize in vain.
func Middleware(v *Verifier, opts MiddlewareOptions) func(http.Handler) http.Handler {
	prmURL := opts.ResourceMetadataURL
	if prmURL == "" {
		// The resource was validated by NewVerifier, so this cannot fail.
		prmURL, _ = MetadataURL(v.resource)
	}
	maxBody := opts.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = defaultMaxBodyBytes
	}
	scopes := slices.Clone(opts.Scopes)
	tools := maps.Clone(opts.ToolScopes)
	ch := challenger{resourceMetadata: prmURL, scopes: scopes}

	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodOptions {
				next.ServeHTTP(w, r)
				return
			}
			claims, err := v.Check(r)
			if err != nil {
				v.logger.DebugContext(r.Context(), "mcpauth: request rejected", "err", err)
				if te, ok := errors.AsType[*TokenError](err); ok && te.claims != nil && opts.Reporter != nil && r.Method == http.MethodPost {
					// The body is read only to name the refused tools; a
					// body that cannot be read names none.
					if msgs, _, status := peekMessages(w, r, maxBody); status == 0 {
						reportDenied(r.Context(), opts.Reporter, te.claims, calledTools(msgs))
					}
				}
				ch.write(w, err)
				return
			}
			if len(tools) > 0 && r.Method == http.MethodPost {
				msgs, batch, status := peekMessages(w, r, maxBody)
				if status != 0 {
					writeJSONRPCError(w, status, nil)
					return
				}
				names := calledTools(msgs)
				tool, reason := mirroredTool(r.Header, msgs, batch)
				if reason != "" {
					v.logger.InfoContext(r.Context(), "mcpauth: MCP headers disagree with the body",
						"jti", claims.JTI, "client_id", claims.ClientID, "reason", reason)
					var id any
					if len(msgs) == 1 {
						id = msgs[0].id
					}
					writeHeaderMismatch(w, id, reason)
					return
				}
				if tool != "" {
					// The headers name the tool, and they agree with the body.
					names = []string{tool}
				}
				need := tools.required(names)
				if missing := missingScopes(claims.Scopes, need); len(missing) > 0 {
					v.logger.InfoContext(r.Context(), "mcpauth: insufficient scope for tool call",
						"jti", claims.JTI, "client_id", claims.ClientID, "missing", missing)
					reportDenied(r.Context(), opts.Reporter, claims, names)
					ch.write(w, &TokenError{
						Kind:        ErrInsufficientScope,
						Description: "the token lacks scopes this tool requires",
						Scopes:      challengeScopes(claims.Scopes, need),
					})
					return
				}
			}
			r = r.WithContext(withClaims(r.Context(), claims))
			serveWithTokenInfo(next, w, r, claims)
		})
	}
}

// reportDenied reports each tool a refused request called as denied (no
// reporter: nothing).
func reportDenied(ctx context.Context, rep *Reporter, claims *Claims, tools []string) {
	if rep == nil {
		return
	}
	now := rep.now()
	for _, tool := range tools {
		rep.Report(ctx, ToolCallOf(claims, tool, ToolDenied, now, 0))
	}
}

// peekMessages reads the body (restoring it for the next handler) and
// parses its JSON-RPC messages, or returns a non-zero HTTP status to fail
// with.
func peekMessages(w http.ResponseWriter, r *http.Request, limit int64) ([]rpcMessage, bool, int) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, false, http.StatusRequestEntityTooLarge
		}
		return nil, false, http.StatusBadRequest
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	msgs, batch, err := parseRPC(body)
	if err != nil {
		// The body cannot be checked, so it must not pass (fail closed).
		return nil, false, http.StatusBadRequest
	}
	return msgs, batch, 0
}

// writeJSONRPCError answers a body that could not be read or parsed
// (JSON-RPC 2.0 §5.1: -32700 parse error, -32600 invalid request).
func writeJSONRPCError(w http.ResponseWriter, status int, id any) {
	code, msg := int64(-32700), "Parse error"
	if status == http.StatusRequestEntityTooLarge {
		code, msg = -32600, "Request body too large"
	}
	writeRPCError(w, status, id, code, msg)
}

// writeHeaderMismatch refuses a request whose MCP headers disagree with its
// body: HTTP 400 with the JSON-RPC error HeaderMismatch (MCP 2026-07-28,
// SEP-2243).
func writeHeaderMismatch(w http.ResponseWriter, id any, reason string) {
	writeRPCError(w, http.StatusBadRequest, id, mcp.CodeHeaderMismatch, "Header mismatch: "+reason)
}

func writeRPCError(w http.ResponseWriter, status int, id any, code int64, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"jsonrpc": "2.0",
		"id":      id,
		"error":   map[string]any{"code": code, "message": msg},
	})
}

// serveWithTokenInfo hands the request on with the go-sdk's auth.TokenInfo
// in its context. The SDK keeps that context key private, so the only way to
// set it is its own middleware, run here with a verifier that returns the
// already-verified result. Its own expiry test is made moot with a clock
// skew covering the time since expiry: expiry was already checked, against
// the configured clock and leeway.
func serveWithTokenInfo(next http.Handler, w http.ResponseWriter, r *http.Request, c *Claims) {
	ti := tokenInfo(c)
	skew := time.Minute
	if d := time.Since(ti.Expiration); d > 0 {
		skew += d
	}
	verify := func(context.Context, string, *http.Request) (*auth.TokenInfo, error) { return ti, nil }
	// RequireBearerToken re-reads the header; Check accepted only
	// "Bearer <token68>", which it splits the same way.
	auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{ClockSkew: skew})(next).ServeHTTP(w, r)
}

// challenger writes error responses with RFC 6750 §3 challenges.
type challenger struct {
	resourceMetadata string
	scopes           []string
}

func (ch challenger) write(w http.ResponseWriter, err error) {
	status, code := status(err)
	desc := "authorization failed"
	var te *TokenError
	if errors.As(err, &te) && te.Description != "" {
		desc = te.Description
	}
	scopes := ch.scopes
	if te != nil && te.Scopes != nil {
		scopes = te.Scopes
	}
	if status != http.StatusServiceUnavailable {
		var params []string
		if code != "" {
			params = append(params, `error="`+code+`"`, `error_description="`+quoteSafe(desc)+`"`)
		}
		if s := joinScopes(scopes); s != "" {
			params = append(params, `scope="`+s+`"`)
		}
		params = append(params, `resource_metadata="`+quoteSafe(ch.resourceMetadata)+`"`)
		w.Header().Set("WWW-Authenticate", "Bearer "+strings.Join(params, ", "))
	} else {
		w.Header().Set("Retry-After", "5")
	}
	if code == "" {
		code, desc = "unauthorized", "a bearer token is required"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// quoteSafe keeps only characters RFC 6750 §3 allows in error_description
// (%x20-21 / %x23-5B / %x5D-7E), which are also safe in any quoted-string.
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r == '\\' || r > 0x7e {
			return -1
		}
		return r
	}, s)
}
