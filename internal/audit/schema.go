package audit

import (
	"maps"
	"slices"
)

// The event schema. Every stored event has the same columns (store.AuditEvent):
// a sortable id, time, tenant, type, outcome, client, user, resource,
// scopes, IP, request id, and details — further facts, per type, under the
// keys below. docs/audit-events.md is generated from this dictionary, the
// required map and the constructors (go test ./internal/audit -run
// TestAuditEventsDoc -update), and a test fails when it drifts or when a
// constructor writes a key the dictionary does not explain.

// Columns of every event, in the order the schema lists them, with what
// each holds.
var columnDocs = [][2]string{
	{"id", "Assigned by the store when the event is written; increases in commit order, so it sorts the trail and is the cursor of pagination and tail, and the de-duplication key of a sink."},
	{"time", "When the change happened (UTC; microseconds stored)."},
	{"tenant_id", "The tenant the event belongs to."},
	{"type", "The event type, `<subject>.<what happened>`; the types are listed below."},
	{"outcome", "`success`, `failure` (something went wrong or was refused for cause: a bad secret, a replay) or `denied` (a decision said no: policy, consent)."},
	{"client_id", "The agent — the OAuth client the event is about or that acted; for a credential retrieval, the MCP server's own client (the agent is in `agent`)."},
	{"user_id", "The person the event is about or that the agent acted for; empty for client credentials and admin changes."},
	{"resource", "The protected resource (MCP server URI, RFC 8707) the event concerns."},
	{"scopes", "The scopes the event concerns: granted (issuance, consent given), requested (refusals), withdrawn (revocation), a client's ceiling (registration), a resource's offer."},
	{"ip", "The address of the request's peer; empty for background work and admin commands."},
	{"request_id", "The hub's own id of the request (also its `X-Request-Id` response header and the key of its log lines)."},
	{"details", "Further facts per type: a JSON object of strings, keys below. Never a token, code, secret, assertion or key: tokens appear by `jti`, key sets by digest."},
}

// detailDocs explains every details key a constructor writes.
var detailDocs = map[string]string{
	"sink":                       "The name of a streaming sink in the hub's configuration (`audit.sinks`).",
	"sink_type":                  "The kind of a streaming sink: `webhook`, `splunk_hec`, `syslog`, `file` or `stdout`.",
	"first_id":                   "The first event id of a batch a sink gave up on.",
	"last_id":                    "The last event id of a batch a sink gave up on; the sink resumed after it.",
	"dead_events":                "How many events of the trail a sink gave up on in that batch (they stay in the trail; `agentid audit export` replays them).",
	"attempts":                   "How many times the sink tried to deliver the batch.",
	"sink_error":                 "The last delivery attempt's error: an HTTP status or a network failure, without URLs' credentials or tokens.",
	"anchor_id":                  "The first event a prune kept, whose `prev_hash` the signed `audit.pruned` event vouches for.",
	"anchor_prev_hash":           "The `prev_hash` (hex) of the anchor a prune kept.",
	"before":                     "The cut-off a prune was asked for (RFC 3339): events before it were deleted, up to the anchor.",
	"break_id":                   "The event where verification found the chain broken.",
	"break_reason":               "What verification found wrong at `break_id`.",
	"checkpoints":                "How many checkpoint signatures verification checked.",
	"deleted":                    "How many events a prune deleted.",
	"events":                     "How many sealed events verification checked.",
	"head_hash":                  "The hash (hex) of the chain head a checkpoint signs.",
	"head_id":                    "The event a checkpoint's chain head is.",
	"signature":                  "A checkpoint's compact JWS, signed by the hub's signing key `kid` over the chain head or anchor: public and verifiable, not a credential.",
	"unsealed":                   "How many of the newest events were not linked into the chain yet when verification ran.",
	"act_chain":                  "The delegation chain (RFC 8693 `act`): the actors' client ids, the current actor first, separated by spaces.",
	"activate_at":                "When a new signing key starts to sign (RFC 3339).",
	"actor":                      "Who acted when it is not the client or person the event is about: `cli` (an admin command), `demo`, `hub` (the hub's own background work), `console` (an administrator in the admin console), `admin_api` (an admin client of the admin API), `scim` (a provisioning client of the SCIM endpoint).",
	"actor_id":                   "The administrator who acted: the user id of a console administrator (`actor` `console`) or the client id of an admin API client (`actor` `admin_api`) or SCIM provisioning client (`actor` `scim`).",
	"agent":                      "The agent (the first actor) the subject token of a credential retrieval was issued to.",
	"added":                      "What a user change added: roles or groups, or the attribute keys set (never their values); space-separated, each escaped as a URL path segment.",
	"alg":                        "A signing key's JWS algorithm.",
	"algorithms":                 "The JWS algorithms accepted from a trusted issuer, space-separated.",
	"allow_text_plain":           "Whether Client ID Metadata Documents of the domain may be served as text/plain.",
	"audience":                   "The authorization server an ID-JAG is for (its issuer).",
	"audiences":                  "The `aud` values accepted from a trusted issuer, space-separated.",
	"auth_age_seconds":           "Seconds since the person signed in, as the policy saw it.",
	"auth_method":                "How the client authenticated (`client_secret_basic`, `private_key_jwt`, `none`, …), as the policy saw it.",
	"by":                         "Who withdrew consent when it was not the consent screen: `user` (the account page).",
	"ceiling_added":              "Scopes a recomputed ceiling gained, space-separated.",
	"ceiling_removed":            "Scopes a recomputed ceiling lost, space-separated.",
	"change":                     "What changed: for clients `metadata`, `disabled`, `enabled`, `tag`, `untag`, `ceiling`, `secret`, `document`, `approved`, `deprovisioned` (agentid agents deprovision); for users `password`, `profile`, `disabled`, `enabled`, `roles`, `groups`, `attributes`; for issuers, providers and connectors `enabled`, `disabled`, `settings`, `secret`; for groups `renamed`, `external_id`, `members`.",
	"client_name":                "The client's display name, truncated to 100 bytes.",
	"client_request_id":          "The `X-Request-Id` the client sent, when well-formed (1–64 of `[A-Za-z0-9._-]`), for correlation with the client's logs.",
	"comment":                    "The administrator's comment on a policy set.",
	"connection_id":              "The vault connection.",
	"connections":                "How many connections a KEK rotation re-wrapped.",
	"disabled":                   "Whether a trusted issuer or a connector is disabled after the change.",
	"duration":                   "The consent duration the person chose on the consent screen.",
	"duration_ms":                "How long a reported tool call ran, in milliseconds.",
	"reporting_client":           "The client of the MCP server that reported a tool call (the resource server of the token's audience).",
	"tool_outcome":               "How a reported tool call ended: `success`, `error` (the tool failed) or `denied` (the server refused it before it ran); the event's outcome is `success`, `failure` or `denied` accordingly.",
	"tool":                       "The name of the MCP tool called (as the server reported it).",
	"expires_at":                 "When a consent or an ID-JAG ends (RFC 3339), `never` for consent until revoked.",
	"extent":                     "`agent` when every scope of the agent on every resource was revoked.",
	"failures":                   "How many refreshes of the connection failed in a row.",
	"fields":                     "The client metadata fields a Client ID Metadata Document change touched, space-separated.",
	"files":                      "The policy files of a set, space-separated.",
	"grant_id":                   "The grant (one authorization: its code, refresh tokens and access tokens).",
	"grant_type":                 "The OAuth `grant_type` of the token request.",
	"granted":                    "The scopes approved on the same consent screen as a partial denial, space-separated.",
	"hold_policies":              "The policies that held a registration for approval, space-separated.",
	"issuer":                     "A trusted issuer's or a connector's `iss` value.",
	"issuer_id":                  "A trusted issuer's short name.",
	"group_id":                   "A SCIM group's id (SCIM provisioning).",
	"group":                      "A SCIM group's display name: the group name its members' policy reads.",
	"jti":                        "The `jti` of the access token or ID-JAG issued or revoked — the token itself is never recorded.",
	"jwks_sha256":                "The SHA-256 (hex) of a trusted issuer's static key set; the keys themselves are not recorded.",
	"jwks_uri":                   "Where a trusted issuer's keys are fetched from.",
	"kek_id":                     "The key-encryption key everything is wrapped by after a rotation.",
	"keys":                       "How many keys a trusted issuer's static key set holds.",
	"kid":                        "A signing key's id (of a rotation, or the key that signed a checkpoint).",
	"kids":                       "The key ids of a trusted issuer's static key set, space-separated.",
	"client_auth":                "How a connector authenticates to its identity provider: `secret_file`, `sealed_secret` or `public` (the secret itself is never recorded).",
	"connector":                  "The connector (agentid connectors) a person signed in through, or that changed.",
	"connector_type":             "A connector's type: `oidc`.",
	"email_domains":              "The email domains that route people to a connector, space-separated.",
	"provisioned":                "`true` when this sign-in through a connector created the person's account.",
	"upstream_client_id":         "The client id the hub is registered under at a connector's identity provider.",
	"kind":                       "A provider's kind: `oauth2` or `api_key`.",
	"max_lifetime":               "The longest lifetime accepted for a trusted issuer's JWTs.",
	"method":                     "How the client was registered: `manual`, `dcr` (RFC 7591), `cimd` (Client ID Metadata Document), `demo`, `workload`.",
	"noticed_by":                 "`sweep` when the periodic sweep found an expired consent rather than a request.",
	"operation":                  "A policy set operation: `apply` or `rollback`.",
	"os_user":                    "The operating-system account that ran an admin command.",
	"owner_id":                   "A connection's owner: the user id, or the tenant for an org-wide credential.",
	"owner_kind":                 "`user` or `tenant`.",
	"partial":                    "`true` when some scopes on the consent screen were approved and the rest refused.",
	"pattern":                    "A domain pattern of Client ID Metadata Document hosts.",
	"policies":                   "How many policies a policy set holds.",
	"policy_decisions":           "The verdict per requested scope, in request order: a JSON array of `{scope, allowed, reason (policy, ceiling, consent), policies (the deciding policy ids), errors}`.",
	"policy_version":             "The policy set version that decided (0: the built-in default).",
	"previous_group":             "A SCIM group's display name before a rename.",
	"previous_trust":             "A domain pattern's trust before the change.",
	"previous_until":             "When a rotated-out API key stops working (RFC 3339).",
	"provider":                   "The downstream provider (vault); `--provider` and the API's `provider` filter match it.",
	"providers":                  "How many providers' client secrets a KEK rotation re-wrapped.",
	"removed":                    "What a user change removed: roles, groups or attribute keys; space-separated, each escaped as a URL path segment.",
	"reason":                     "Why: the failure, refusal or revocation cause (`secret_mismatch`, `disabled`, `no_connection`, `invalid_grant`, …); never a provider's raw error text.",
	"redirect_uri":               "The redirect URI naming one installation of a Client ID Metadata Document client.",
	"remote_client_id":           "The client's `client_id` at the authorization server an ID-JAG is for.",
	"rotated_at":                 "When the refresh token presented again had been rotated (RFC 3339).",
	"rules":                      "A trusted issuer's workload rules as JSON, truncated to 2000 bytes.",
	"sha256":                     "The SHA-256 of a whole policy set.",
	"signing_keys":               "How many signing keys a KEK rotation re-wrapped.",
	"software_issuer":            "The issuer of the verified software statement a registration carried.",
	"status":                     "A client's status when not active (`pending`: held for approval).",
	"subject_jti":                "The `jti` of the token a token exchange or retrieval presented as its subject.",
	"tags":                       "The client's admin tags after a tag change, space-separated.",
	"tags_added":                 "Tags added, space-separated.",
	"tags_removed":               "Tags removed, space-separated.",
	"token_endpoint_auth_method": "The client's registered `token_endpoint_auth_method`.",
	"token_type":                 "The kind of token revoked: `access_token` or `refresh_token`.",
	"trigger":                    "What started a refresh: `on_demand`, `forced` or `background`.",
	"trust":                      "A domain pattern's trust: `trusted`, `allowed` or `blocked`.",
	"unused_since":               "The last use of an expired client, or its registration when never used (RFC 3339).",
	"user_claims":                "The user claims a resource update set (`NAME=SOURCE`) or removed (`-NAME`), comma-separated.",
	"user_claim":                 "The claim of a trusted issuer's JWTs that names a local user.",
	"uses":                       "What a trusted issuer's JWTs may be used for, space-separated.",
	"version":                    "The policy set version a rollback made active.",
	"user_agent":                 "The request's `User-Agent` header (control characters dropped, at most 256 bytes): which software the agent or browser ran. Absent for background work and admin commands.",
	"registration_method":        "How the event's agent (its `client_id`) was registered: `manual`, `dcr` (RFC 7591), `cimd` (Client ID Metadata Document), `workload`; present wherever the hub had the client's record when it recorded the event.",
	"client_type":                "The OAuth client type of the event's agent (OAuth 2.1 §2.1): `confidential` (it authenticates at the token endpoint) or `public`.",
	"cimd_host":                  "For a Client ID Metadata Document agent, the host of its client id URL: where the hub fetched and verified its document over HTTPS.",
	"report_id":                  "The reporting MCP server's own id of a tool call report; one event per reporting client and report id, so a batch sent again is not recorded twice.",
	"introspecting_client":       "The resource server's client that introspected a token no longer active.",
}

// Columns returns the columns every event has, in schema order, each with
// its description.
func Columns() [][2]string { return slices.Clone(columnDocs) }

// DetailDocs returns the details dictionary: every key a constructor
// writes, with its meaning.
func DetailDocs() map[string]string { return maps.Clone(detailDocs) }

// Required returns what every event of type typ must carry beyond the
// tenant, time, type and outcome (what Check verifies): its columns and
// its details keys; false for a type this package does not define.
func Required(typ string) (columns, details []string, ok bool) {
	spec, ok := required[typ]
	if !ok {
		return nil, nil, false
	}
	for _, f := range spec.fields {
		columns = append(columns, string(f))
	}
	return columns, slices.Clone(spec.details), true
}
