package audit

import (
	"maps"
	"slices"
	"strconv"

	"github.com/agentid/agentid/internal/store"
)

// OCSF (Open Cybersecurity Schema Framework) is the form in which the trail
// reaches a SIEM: OCSF maps each event to one event class of release
// OCSFVersion, with the attributes that class requires, so that a SIEM
// ingests it without a custom parser. docs/audit-events.md lists the
// mapping per event type; what OCSF has no attribute for stays in
// "unmapped" (every detail, so nothing is lost).

// OCSFVersion is the OCSF schema release the mapping follows.
const OCSFVersion = "1.8.0"

// Product names in every OCSF event's metadata.
const (
	ocsfProduct = "agentid"
	ocsfVendor  = "agentid project"
)

// OCSF event classes (class_uid = category_uid * 1000 + the class's id in
// its category).
const (
	OCSFAccountChange     = 3001
	OCSFAuthentication    = 3002
	OCSFAuthorizeSession  = 3003
	OCSFEntityManagement  = 3004
	OCSFUserAccess        = 3005
	OCSFAPIActivity       = 6003
	OCSFWebResourceAccess = 6004
	// OCSFBaseEvent is the class of an event of a type this package does
	// not define (an old or foreign row): class 0, activity Other.
	OCSFBaseEvent = 0
)

// ocsfClassNames are the captions of the classes and their categories.
var ocsfClassNames = map[int][2]string{
	OCSFAccountChange:     {"Account Change", "Identity & Access Management"},
	OCSFAuthentication:    {"Authentication", "Identity & Access Management"},
	OCSFAuthorizeSession:  {"Authorize Session", "Identity & Access Management"},
	OCSFEntityManagement:  {"Entity Management", "Identity & Access Management"},
	OCSFUserAccess:        {"User Access Management", "Identity & Access Management"},
	OCSFAPIActivity:       {"API Activity", "Application Activity"},
	OCSFWebResourceAccess: {"Web Resource Access Activity", "Application Activity"},
	OCSFBaseEvent:         {"Base Event", "Uncategorized"},
}

// OCSF activity ids used here, by class, with their captions (OCSF 1.8.0
// activity_id enumerations). 99 is Other in every class.
const activityOther = 99

var ocsfActivities = map[int]map[int]string{
	OCSFAccountChange:     {1: "Create", 2: "Enable", 3: "Password Change", 5: "Disable", 6: "Delete"},
	OCSFAuthentication:    {1: "Logon", 2: "Logoff", 3: "Authentication Ticket", 5: "Service Ticket Renew"},
	OCSFAuthorizeSession:  {1: "Assign Privileges"},
	OCSFEntityManagement:  {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 8: "Enable", 9: "Disable"},
	OCSFUserAccess:        {1: "Assign Privileges", 2: "Revoke Privileges"},
	OCSFAPIActivity:       {2: "Read", 3: "Update"},
	OCSFWebResourceAccess: {1: "Access Grant", 2: "Access Deny"},
	OCSFBaseEvent:         {},
}

// OCSF severity_id and status_id values.
const (
	severityInformational = 1
	severityLow           = 2
	severityMedium        = 3
	severityHigh          = 4
	statusSuccess         = 1
	statusFailure         = 2
	statusOther           = 99
)

// OCSF user type_id values.
const (
	userTypeUser    = 1
	userTypeAdmin   = 2
	userTypeService = 4
)

// OCSFRule is how events of one type map to OCSF.
type OCSFRule struct {
	ClassUID   int
	ActivityID int
	// ActivityByChange overrides ActivityID by the event's "change"
	// detail (client.updated: disabled → Disable).
	ActivityByChange map[string]int
	// Severity is the severity_id of the type's failures and denials
	// when it is not Low (a replayed code or a reused refresh token is
	// High); successes are Informational.
	Severity int
	// Activity names an activity that is not one of the class's own
	// (ActivityID 99, Other).
	Activity string
	// entity names what an Entity Management event manages.
	entity func(ev *store.AuditEvent) map[string]any
	// shape adds the class's own attributes beyond the common ones.
	shape func(ev *store.AuditEvent, out map[string]any)
}

// ClassName is the caption of the rule's class.
func (r OCSFRule) ClassName() string { return ocsfClassNames[r.ClassUID][0] }

// ActivityName is the caption of activity id a in the rule's class.
func (r OCSFRule) ActivityName(a int) string {
	if a == activityOther {
		if r.Activity != "" {
			return r.Activity
		}
		return "Other"
	}
	return ocsfActivities[r.ClassUID][a]
}

// OCSFRuleOf returns the rule of event type typ; false for a type this
// package does not define.
func OCSFRuleOf(typ string) (OCSFRule, bool) {
	r, ok := ocsfRules[typ]
	return r, ok
}

// ocsfRules maps every event type (a test checks that none is missing).
var ocsfRules = map[string]OCSFRule{
	// Agents (OAuth clients) are entities the hub manages.
	ClientRegistered: {ClassUID: OCSFEntityManagement, ActivityID: 1, entity: clientEntity},
	ClientUpdated: {ClassUID: OCSFEntityManagement, ActivityID: 3, entity: clientEntity,
		ActivityByChange: map[string]int{ChangeDisabled: 9, ChangeEnabled: 8}},
	ClientDeleted:                  {ClassUID: OCSFEntityManagement, ActivityID: 4, entity: clientEntity},
	ClientExpired:                  {ClassUID: OCSFEntityManagement, ActivityID: 4, entity: clientEntity},
	ClientRegistrationDeduplicated: {ClassUID: OCSFEntityManagement, ActivityID: 2, entity: clientEntity},
	// A client authenticating is a logon of a service account; revoking
	// every token of a client or a person ends their sessions.
	ClientAuthFailed:    {ClassUID: OCSFAuthentication, ActivityID: 1, shape: authShape},
	ClientTokensRevoked: {ClassUID: OCSFAuthentication, ActivityID: 2, shape: authShape},
	UserAccessRevoked:   {ClassUID: OCSFAuthentication, ActivityID: 2, shape: authShape},
	LoginSucceeded:      {ClassUID: OCSFAuthentication, ActivityID: 1, shape: authShape},
	LoginFailed:         {ClassUID: OCSFAuthentication, ActivityID: 1, shape: authShape},
	UserSignedIn:        {ClassUID: OCSFAuthentication, ActivityID: 1, shape: authShape},
	InstallationRevoked: {ClassUID: OCSFAuthentication, ActivityID: 2, shape: authShape},
	TokenRevoked:        {ClassUID: OCSFAuthentication, ActivityID: 2, shape: authShape},
	// A resource server checking a token the hub no longer considers
	// active: a revoked or switched-off agent still presenting it.
	TokenIntrospectedInactive: {ClassUID: OCSFAuthentication, ActivityID: activityOther, Activity: "Introspect",
		Severity: severityMedium, shape: authShape},
	// Refreshing renews a grant's session (a refresh token is its ticket).
	RefreshRotated:              {ClassUID: OCSFAuthentication, ActivityID: 5, shape: authShape},
	RefreshReuse:                {ClassUID: OCSFAuthentication, ActivityID: 5, Severity: severityHigh, shape: authShape},
	RefreshReusedWithinInterval: {ClassUID: OCSFAuthentication, ActivityID: 5, shape: authShape},
	// An ID-JAG is an authentication ticket for another authorization
	// server (its audience is the service).
	IdentityAssertionIssued: {ClassUID: OCSFAuthentication, ActivityID: 3, shape: authShape},
	IdentityAssertionDenied: {ClassUID: OCSFAuthentication, ActivityID: 3, shape: authShape},
	// A person's consent assigns privileges (scopes) to an agent on a
	// resource; revocation and expiry take them back.
	ConsentGiven:   {ClassUID: OCSFUserAccess, ActivityID: 1, shape: userAccessShape},
	ConsentDenied:  {ClassUID: OCSFUserAccess, ActivityID: activityOther, Activity: "Deny Privileges", shape: userAccessShape},
	ConsentRevoked: {ClassUID: OCSFUserAccess, ActivityID: 2, shape: userAccessShape},
	ConsentExpired: {ClassUID: OCSFUserAccess, ActivityID: 2, shape: userAccessShape},
	// A code and an access token each authorize a session with the
	// granted scopes as its privileges.
	CodeIssued:   {ClassUID: OCSFAuthorizeSession, ActivityID: 1, shape: sessionShape},
	CodeReplayed: {ClassUID: OCSFAuthorizeSession, ActivityID: 1, Severity: severityHigh, shape: sessionShape},
	TokenIssued:  {ClassUID: OCSFAuthorizeSession, ActivityID: 1, shape: sessionShape},
	TokenDenied:  {ClassUID: OCSFAuthorizeSession, ActivityID: 1, shape: sessionShape},
	// People's accounts.
	UserCreated: {ClassUID: OCSFAccountChange, ActivityID: 1, shape: accountShape},
	UserUpdated: {ClassUID: OCSFAccountChange, ActivityID: activityOther, Activity: "Update", shape: accountShape,
		ActivityByChange: map[string]int{"password": 3, ChangeDisabled: 5, ChangeEnabled: 2}},
	// The hub's own configuration: entities an administrator manages.
	SigningKeyRotated: {ClassUID: OCSFEntityManagement, ActivityID: 1, entity: detailEntity("signing_key", "kid", "alg")},
	PolicyApplied:     {ClassUID: OCSFEntityManagement, ActivityID: 3, entity: detailEntity("policy_set", "sha256", "operation")},
	ResourceCreated:   {ClassUID: OCSFEntityManagement, ActivityID: 1, entity: resourceEntity},
	ResourceUpdated:   {ClassUID: OCSFEntityManagement, ActivityID: 3, entity: resourceEntity},
	ResourceDeleted:   {ClassUID: OCSFEntityManagement, ActivityID: 4, entity: resourceEntity},
	DomainUpdated:     {ClassUID: OCSFEntityManagement, ActivityID: 3, entity: detailEntity("domain_trust", "", "pattern")},
	DomainRemoved:     {ClassUID: OCSFEntityManagement, ActivityID: 4, entity: detailEntity("domain_trust", "", "pattern")},
	IssuerAdded:       {ClassUID: OCSFEntityManagement, ActivityID: 1, entity: detailEntity("trusted_issuer", "issuer_id", "issuer")},
	IssuerUpdated:     {ClassUID: OCSFEntityManagement, ActivityID: 3, entity: detailEntity("trusted_issuer", "issuer_id", "issuer")},
	IssuerDeleted:     {ClassUID: OCSFEntityManagement, ActivityID: 4, entity: detailEntity("trusted_issuer", "issuer_id", "issuer")},
	ConnectorCreated:  {ClassUID: OCSFEntityManagement, ActivityID: 1, entity: detailEntity("connector", "connector", "issuer")},
	ConnectorUpdated: {ClassUID: OCSFEntityManagement, ActivityID: 3, entity: detailEntity("connector", "connector", "issuer"),
		ActivityByChange: map[string]int{ChangeDisabled: 9, ChangeEnabled: 8}},
	ProviderAdded:   {ClassUID: OCSFEntityManagement, ActivityID: 1, entity: detailEntity("provider", "provider", "kind")},
	ProviderUpdated: {ClassUID: OCSFEntityManagement, ActivityID: 3, entity: detailEntity("provider", "provider", "change")},
	ProviderDeleted: {ClassUID: OCSFEntityManagement, ActivityID: 4, entity: detailEntity("provider", "provider", "")},
	KEKRewrapped:    {ClassUID: OCSFEntityManagement, ActivityID: 3, entity: detailEntity("key_encryption_key", "kek_id", "")},
	GroupCreated:    {ClassUID: OCSFEntityManagement, ActivityID: 1, entity: detailEntity("group", "group_id", "group")},
	GroupUpdated:    {ClassUID: OCSFEntityManagement, ActivityID: 3, entity: detailEntity("group", "group_id", "group")},
	GroupDeleted:    {ClassUID: OCSFEntityManagement, ActivityID: 4, entity: detailEntity("group", "group_id", "group")},
	// The trail's own integrity: its chain is an entity the hub manages.
	AuditCheckpoint: {ClassUID: OCSFEntityManagement, ActivityID: 3, entity: chainEntity},
	AuditPruned:     {ClassUID: OCSFEntityManagement, ActivityID: 4, entity: chainEntity},
	// A break found by verification is evidence of tampering.
	AuditVerified: {ClassUID: OCSFEntityManagement, ActivityID: 2, Severity: severityHigh, entity: chainEntity},
	// A streaming sink's cursor moved past events it could not deliver.
	AuditSinkDeadLettered: {ClassUID: OCSFEntityManagement, ActivityID: 3, Severity: severityHigh, entity: detailEntity("audit_sink", "sink", "sink_type")},
	// A person's connection to a downstream provider.
	ConnectionCreated: {ClassUID: OCSFEntityManagement, ActivityID: 1, entity: connectionEntity},
	ConnectionRotated: {ClassUID: OCSFEntityManagement, ActivityID: 3, entity: connectionEntity},
	ConnectionRevoked: {ClassUID: OCSFEntityManagement, ActivityID: 4, entity: connectionEntity},
	// The vault calling a provider's token endpoint for a connection.
	ConnectionRefreshed:     {ClassUID: OCSFAPIActivity, ActivityID: 3, shape: apiShape("refresh")},
	ConnectionRefreshFailed: {ClassUID: OCSFAPIActivity, ActivityID: 3, shape: apiShape("refresh")},
	ConnectionNeedsReauth:   {ClassUID: OCSFAPIActivity, ActivityID: 3, shape: apiShape("refresh")},
	// An MCP server granted or denied a downstream credential (through
	// POST /token, RFC 8693 token exchange) is access to a web resource.
	ConnectionRetrieved:       {ClassUID: OCSFWebResourceAccess, ActivityID: 1, shape: webAccessShape},
	ConnectionRetrievalDenied: {ClassUID: OCSFWebResourceAccess, ActivityID: 2, shape: webAccessShape},
	// A tool an MCP server ran for an agent is an API call to that server.
	ToolInvoked: {ClassUID: OCSFAPIActivity, ActivityID: activityOther, Activity: "Invoke", shape: toolShape},
}

// baseRule maps events of types this package does not define.
var baseRule = OCSFRule{ClassUID: OCSFBaseEvent, ActivityID: activityOther}

// activity is the activity id of ev under r.
func (r OCSFRule) activity(ev *store.AuditEvent) int {
	if a, ok := r.ActivityByChange[ev.Details["change"]]; ok {
		return a
	}
	return r.ActivityID
}

// OCSF maps ev to an OCSF 1.8.0 event of its type's class, as a JSON
// object: class, category, activity and type ids and names, severity,
// status, time in milliseconds, metadata (version, product, the event id
// as uid, tenant, request id as correlation uid, the agentid type as
// event code), the actor (the agent as app_uid, the person as user, the
// operating-system account of an admin command), the source IP, the
// request's user agent as http_request.user_agent, the class's own
// attributes, and in "unmapped" the resource, scopes and every detail
// (the agent's registration method, client type and CIMD host among them:
// OCSF has no attribute for them).
func OCSF(ev *store.AuditEvent) map[string]any {
	r, ok := ocsfRules[ev.Type]
	if !ok {
		r = baseRule
	}
	activity := r.activity(ev)
	names := ocsfClassNames[r.ClassUID]
	category := r.ClassUID / 1000
	out := map[string]any{
		"class_uid":     r.ClassUID,
		"class_name":    names[0],
		"category_uid":  category,
		"category_name": names[1],
		"activity_id":   activity,
		"activity_name": r.ActivityName(activity),
		"type_uid":      r.ClassUID*100 + activity,
		"type_name":     names[0] + ": " + r.ActivityName(activity),
		"time":          ev.Time.UnixMilli(),
		"metadata":      ocsfMetadata(ev),
		"actor":         ocsfActor(ev),
		"status":        ev.Outcome,
		"unmapped":      ocsfUnmapped(ev),
	}
	sev := severityInformational
	switch ev.Outcome {
	case Success:
		out["status_id"] = statusSuccess
	case Failure, Denied:
		out["status_id"] = statusFailure
		sev = severityLow
		if r.Severity != 0 {
			sev = r.Severity
		}
	default:
		out["status_id"] = statusOther // the status names it
	}
	out["severity_id"] = sev
	if reason := ev.Details["reason"]; reason != "" {
		out["status_detail"] = reason
	}
	if ev.IP != "" {
		out["src_endpoint"] = map[string]any{"ip": ev.IP}
	}
	if r.entity != nil {
		out["entity"] = r.entity(ev)
		if ev.UserID != "" {
			out["user"] = ocsfUser(ev.UserID, userTypeUser)
		}
	}
	if r.shape != nil {
		r.shape(ev, out)
	}
	if ua := ev.Details[DetailUserAgent]; ua != "" {
		// Every class mapped here has http_request (IAM's and the
		// application classes').
		req, _ := out["http_request"].(map[string]any)
		if req == nil {
			req = map[string]any{}
			out["http_request"] = req
		}
		req["user_agent"] = ua
	}
	return out
}

func ocsfMetadata(ev *store.AuditEvent) map[string]any {
	md := map[string]any{
		"version":    OCSFVersion,
		"product":    map[string]any{"name": ocsfProduct, "vendor_name": ocsfVendor},
		"uid":        strconv.FormatInt(ev.ID, 10),
		"event_code": ev.Type,
		"log_name":   "audit",
	}
	if ev.TenantID != "" {
		md["tenant_uid"] = ev.TenantID
	}
	if ev.RequestID != "" {
		md["correlation_uid"] = ev.RequestID
	}
	return md
}

// ocsfActor is who acted: the agent (client) and the person it acts for,
// or the administrator's operating-system account for an admin command,
// or the hub itself.
func ocsfActor(ev *store.AuditEvent) map[string]any {
	a := map[string]any{}
	if ev.ClientID != "" {
		a["app_uid"] = ev.ClientID
	}
	if ev.UserID != "" {
		a["user"] = ocsfUser(ev.UserID, userTypeUser)
	}
	if by := ev.Details["actor"]; by != "" {
		a["app_name"] = ocsfProduct + " " + by
		if os := ev.Details["os_user"]; os != "" {
			a["user"] = map[string]any{"name": os, "type_id": userTypeUser}
		}
		switch id := ev.Details["actor_id"]; {
		case id == "":
		case by == ActorAdminAPI || by == ActorSCIM:
			a["user"] = ocsfUser(id, userTypeService)
		default:
			a["user"] = ocsfUser(id, userTypeAdmin)
		}
	}
	if len(a) == 0 {
		a["app_name"] = ocsfProduct
	}
	return a
}

func ocsfUser(uid string, typeID int) map[string]any {
	return map[string]any{"uid": uid, "type_id": typeID}
}

// ocsfSubject is the user an event is about: the person, or the client
// itself when it acts for itself (client credentials), or, for a failed
// sign-in with an unknown name, an unnamed user (the name typed is never
// recorded).
func ocsfSubject(ev *store.AuditEvent) map[string]any {
	switch {
	case ev.UserID != "":
		return ocsfUser(ev.UserID, userTypeUser)
	case ev.ClientID != "":
		return ocsfUser(ev.ClientID, userTypeService)
	}
	return map[string]any{"name": "unknown", "type_id": 0}
}

func ocsfUnmapped(ev *store.AuditEvent) map[string]any {
	u := map[string]any{}
	if ev.Resource != "" {
		u["resource"] = ev.Resource
	}
	if len(ev.Scopes) > 0 {
		u["scopes"] = slices.Clone(ev.Scopes)
	}
	if d := ev.StoredDetails(); len(d) > 0 {
		u["details"] = maps.Clone(d)
	}
	return u
}

// scopesOf is the event's scopes as OCSF privileges: never null.
func scopesOf(ev *store.AuditEvent) []string {
	if ev.Scopes == nil {
		return []string{}
	}
	return slices.Clone(ev.Scopes)
}

func clientEntity(ev *store.AuditEvent) map[string]any {
	e := map[string]any{"uid": ev.ClientID, "type": "oauth_client"}
	if n := ev.Details["client_name"]; n != "" {
		e["name"] = n
	}
	return e
}

// chainEntity is the tenant's audit chain.
func chainEntity(ev *store.AuditEvent) map[string]any {
	return map[string]any{"uid": ev.TenantID, "name": "audit trail", "type": "audit_chain"}
}

func resourceEntity(ev *store.AuditEvent) map[string]any {
	return map[string]any{"uid": ev.Resource, "type": "protected_resource"}
}

func connectionEntity(ev *store.AuditEvent) map[string]any {
	return map[string]any{"uid": ev.Details["connection_id"], "name": ev.Details["provider"], "type": "connection"}
}

// detailEntity names an entity by two of the event's details.
func detailEntity(typ, uidKey, nameKey string) func(*store.AuditEvent) map[string]any {
	return func(ev *store.AuditEvent) map[string]any {
		e := map[string]any{"type": typ}
		if v := ev.Details[uidKey]; uidKey != "" && v != "" {
			e["uid"] = v
		}
		if v := ev.Details[nameKey]; nameKey != "" && v != "" {
			e["name"] = v
		}
		if len(e) == 1 {
			e["name"] = typ
		}
		return e
	}
}

// authShape: Authentication. The session is the token (by jti) or the
// grant; the service is the resource or, for an ID-JAG, its audience.
func authShape(ev *store.AuditEvent, out map[string]any) {
	out["user"] = ocsfSubject(ev)
	switch ev.Type {
	case LoginSucceeded, LoginFailed:
		out["auth_protocol_id"] = activityOther
		out["auth_protocol"] = "password"
	case UserSignedIn:
		out["auth_protocol_id"] = 4 // OpenID
		out["auth_protocol"] = "OpenID Connect"
	default:
		out["auth_protocol_id"] = 6 // OAUTH 2.0
		out["auth_protocol"] = "OAuth 2.1"
	}
	if s := ocsfSession(ev); s != nil {
		out["session"] = s
	}
	switch {
	case ev.Details["audience"] != "":
		out["service"] = map[string]any{"name": ev.Details["audience"]}
	case ev.Resource != "":
		out["service"] = map[string]any{"name": ev.Resource}
	}
}

func ocsfSession(ev *store.AuditEvent) map[string]any {
	switch {
	case ev.Details["jti"] != "":
		return map[string]any{"uid": ev.Details["jti"]}
	case ev.Details["grant_id"] != "":
		return map[string]any{"uid": ev.Details["grant_id"]}
	}
	return nil
}

// sessionShape: Authorize Session, the scopes as privileges.
func sessionShape(ev *store.AuditEvent, out map[string]any) {
	out["user"] = ocsfSubject(ev)
	out["privileges"] = scopesOf(ev)
	if s := ocsfSession(ev); s != nil {
		out["session"] = s
	}
}

// userAccessShape: User Access Management: the person's consent, the
// scopes as privileges on the resource.
func userAccessShape(ev *store.AuditEvent, out map[string]any) {
	out["user"] = ocsfSubject(ev)
	out["privileges"] = scopesOf(ev)
	if ev.Resource != "" {
		out["resource"] = map[string]any{"uid": ev.Resource, "type": "protected_resource"}
	}
}

// accountShape: Account Change of a person's account.
func accountShape(ev *store.AuditEvent, out map[string]any) {
	out["user"] = ocsfSubject(ev)
}

// apiShape: API Activity: a call the hub made to a provider's API. The
// source is the hub (its address is not recorded).
func apiShape(operation string) func(*store.AuditEvent, map[string]any) {
	return func(ev *store.AuditEvent, out map[string]any) {
		api := map[string]any{"operation": operation}
		if p := ev.Details["provider"]; p != "" {
			api["service"] = map[string]any{"name": p}
		}
		out["api"] = api
		if _, ok := out["src_endpoint"]; !ok {
			out["src_endpoint"] = map[string]any{"name": ocsfProduct}
		}
		if c := ev.Details["connection_id"]; c != "" {
			out["resources"] = []any{map[string]any{"uid": c, "type": "connection"}}
		}
		if ev.UserID != "" {
			out["user"] = ocsfUser(ev.UserID, userTypeUser)
		}
	}
}

// toolShape: API Activity: an agent calling an MCP server's tool, as the
// server reported it.
func toolShape(ev *store.AuditEvent, out map[string]any) {
	out["api"] = map[string]any{"operation": ev.Details["tool"], "service": map[string]any{"name": ev.Resource}}
	out["src_endpoint"] = map[string]any{"name": ev.ClientID}
	if ev.UserID != "" {
		out["user"] = ocsfUser(ev.UserID, userTypeUser)
	}
}

// webAccessShape: Web Resource Access Activity: an MCP server asking the
// hub's token endpoint for a person's downstream credential.
func webAccessShape(ev *store.AuditEvent, out map[string]any) {
	out["http_request"] = map[string]any{"http_method": "POST", "url": map[string]any{"path": "/token"}}
	res := map[string]any{"type": "downstream_credential"}
	if c := ev.Details["connection_id"]; c != "" {
		res["uid"] = c
	}
	res["name"] = ev.Details["provider"]
	if res["name"] == "" {
		res["name"] = "unknown provider"
	}
	out["web_resources"] = []any{res}
	out["user"] = ocsfSubject(ev)
}

// ocsfClassDocs say what each class's own attributes hold.
var ocsfClassDocs = map[int]string{
	OCSFAccountChange:     "`user`: the person's account (`uid`).",
	OCSFAuthentication:    "`user`: the person, or the client as a service account (`type_id` 4) when it acts for itself; `auth_protocol_id` 6 (OAuth 2.0), or 99 with `auth_protocol` `password` for a sign-in; `session.uid`: the token's `jti` or the grant id; `service.name`: the resource, or an ID-JAG's audience.",
	OCSFAuthorizeSession:  "`user`: the person, or the client as a service account; `privileges`: the scopes (granted, or requested when refused); `session.uid`: the access token's `jti`.",
	OCSFEntityManagement:  "`entity`: what was managed (`uid`, `name`, `type`: `oauth_client`, `protected_resource`, `signing_key`, `policy_set`, `domain_trust`, `trusted_issuer`, `provider`, `connection`, `key_encryption_key`, `audit_chain` (`uid` the tenant)); `user`: a connection's owner.",
	OCSFUserAccess:        "`user`: the person who consented; `privileges`: the scopes; `resource.uid`: the resource. The agent is `actor.app_uid`.",
	OCSFAPIActivity:       "`api.operation` `refresh` with `api.service.name` the provider; `src_endpoint.name` `agentid` (the hub called out); `resources`: the connection; `user`: its owner. For `tool.invoked` (activity Other, `Invoke`): `api.operation` the tool, `api.service.name` the MCP server's resource, `src_endpoint.name` the token's client, `user` the person; the reporting server and the duration are in `unmapped`.",
	OCSFWebResourceAccess: "`http_request`: `POST /token` (RFC 8693 exchange); `web_resources`: the downstream credential (`uid` the connection, `name` the provider); `user`: the person; the MCP server is `actor.app_uid`.",
	OCSFBaseEvent:         "Nothing further: a type this version does not define keeps everything in `unmapped`.",
}

// OCSFClassDoc says what the class's own attributes hold in the mapping.
func OCSFClassDoc(classUID int) string { return ocsfClassDocs[classUID] }
