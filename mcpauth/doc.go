// Package mcpauth lets an MCP server trust the agentid hub: it is the
// resource-server half of the MCP authorization specification.
//
// A server built with this package
//
//   - verifies RFC 9068 JWT access tokens issued by the hub ([Verifier]):
//     signature against the hub's published keys (discovered through RFC 8414
//     metadata), token type, issuer, audience (RFC 8707), and lifetime;
//     optionally asks the hub whether a token is still active (RFC 7662) for
//     instant revocation;
//   - answers unauthenticated and under-scoped requests with the RFC 6750 §3
//     challenges MCP clients act on ([Middleware]), including the
//     insufficient_scope step-up signal per tool ([ToolScopes]);
//   - publishes its OAuth 2.0 Protected Resource Metadata (RFC 9728) so clients
//     can find the hub ([ProtectedResourceMetadata], [HandleMetadata]);
//   - plugs into github.com/modelcontextprotocol/go-sdk ([Verifier.TokenVerifier],
//     [RequireScopes]).
//
// The package is a leaf: it depends only on the standard library,
// github.com/go-jose/go-jose/v4 and the MCP Go SDK. Package
// [github.com/agentid/agentid/mcpauth/mcpauthtest] provides a hub in a box for
// tests.
package mcpauth
