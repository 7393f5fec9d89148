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
//   - sees who acted for the user when a token was obtained by delegation
//     ([Claims.Actors], [Claims.MayAct]) and can bound that chain
//     ([Config.MaxDelegationDepth], [Config.FirstActors]);
//   - calls a downstream resource for the user with a token of its own,
//     exchanged at the hub for the one it received ([Exchanger], RFC 8693);
//   - calls a downstream provider (a calendar, a CRM, an internal API) with
//     the person's credential from the hub's vault, which never reaches the
//     agent ([Exchanger.Connection], [Exchanger.HTTPClient]), and asks the
//     person to connect the provider when they have not ([ConnectTool]);
//   - plugs into github.com/modelcontextprotocol/go-sdk ([Verifier.TokenVerifier],
//     [RequireScopes]).
//
// # MCP revisions
//
// The middleware serves every MCP revision the same way: the session-based
// ones up to 2025-11-25 and the stateless 2026-07-28. Each request is
// authenticated by its own bearer token; an Mcp-Session-Id or a state handle
// is never taken as authentication. With [ToolScopes], a 2026-07-28
// request's Mcp-Method and Mcp-Name headers (SEP-2243) must agree with its
// body, which is what the MCP server executes; a request whose headers
// disagree is refused with 400 before any scope is considered. The Go SDK
// (v1.8) answers 2026-07-28 only from a handler built with
// StreamableHTTPOptions{Stateless: true}; such a handler serves older
// clients too, without sessions.
//
// # Delegation across hops
//
// An MCP server that calls another service for the user never forwards the
// token it received: that token's audience is this server (RFC 8707), and
// forwarding it would make every downstream service a place where it can
// be replayed. [Exchanger.Exchange] trades it at the hub's token endpoint
// (RFC 8693 §2) for a token to the downstream resource, authenticated as
// this server's own client. The new token keeps the user as sub and nests
// the actors in act, current actor outermost (RFC 8693 §4.1); the hub never
// widens its scopes or extends its expiry. The downstream server reads the
// chain with [Claims.Actors]. Access control should rest on the current
// actor (the first element) and the top-level claims; [Config.FirstActors]
// and [Config.MaxDelegationDepth] add limits on the rest of the chain, and a
// token that breaks them is answered 401 invalid_token
// ([ErrDelegationRefused]), as one for another audience would be.
//
// # Connections: the hub's vault
//
// The hub keeps people's downstream credentials (OAuth 2 tokens, API keys)
// in its vault. [Exchanger.Connection] retrieves the one for the user of the
// current request: an RFC 8693 exchange of the token this server received,
// with resource <issuer>/providers/<id>, authenticated as this server's own
// client. The hub hands it out only to the resource server the token was
// issued for, within the person's consent and policy, and refreshes it at
// the provider when needed; mcpauth caches it until shortly before it
// expires. [Exchanger.HTTPClient] puts it on requests and, when the
// provider answers 401, retrieves it again with force_refresh and retries
// once.
//
// When the person has not connected the provider, the hub answers
// connection_required with a connect URL made for that person
// ([ConnectRequiredError]). [ConnectTool] hands it to the person through
// the MCP client: at 2026-07-28 as a URL elicitation in an input-required
// result whose requestState is MAC-protected (any replica with the same
// [ConnectOptions.StateSecret] verifies it), at 2025-11-25 as the
// URLElicitationRequired error (-32042) with an elicitationId, and to
// clients without URL elicitation as a tool error carrying the URL. The
// connect URL goes to the person, never into logs.
//
// # Per-tool scopes and tool annotations
//
// MCP tool annotations (readOnlyHint, destructiveHint, idempotentHint,
// openWorldHint) tell a client what a tool does; they are hints, and a
// client cannot verify them. Per-tool scopes are what enforces the
// difference: give every tool whose annotations say it writes or destroys
// a scope of its own, so that a person consents to it separately and a token
// for reading cannot run it. A destructive tool should need a scope no
// read-only tool needs, and that scope should be marked sensitive at the hub.
// State every hint explicitly: an absent destructiveHint or openWorldHint
// means true.
//
// The package is a leaf: it depends only on the standard library,
// github.com/go-jose/go-jose/v4 and the MCP Go SDK. Package
// [github.com/agentid/agentid/mcpauth/mcpauthtest] provides a hub in a box for
// tests.
package mcpauth
