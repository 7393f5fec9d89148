// Package storetest is the conformance suite of the store contract. Every
// backend runs Run against a fresh, migrated, empty store per test, so the
// semantics written in store.Store's doc comments are checked once, the same
// way, for SQLite and PostgreSQL alike.
//
// Where the contract leaves a choice open, the suite pins it down:
//
//   - Times come back in UTC, truncated to microseconds; the zero time stays
//     zero. Nil and empty slices and maps are interchangeable.
//   - Ids (client, user, resource id and URI) are unique per tenant; the same
//     id may exist in two tenants.
//   - Updating or deleting a missing row (client, resource, user, signing
//     key, policy version) is ErrNotFound.
//   - A method that returns an error writes nothing, its audit event
//     included, except ErrAlreadyUsed from ConsumeAuthCode and RotateRefresh,
//     which keep the grant revocation and the event.
//   - A consumed code or a rotated/revoked refresh token presented again is
//     ErrAlreadyUsed even after it expired: the replay is what RFC 6749
//     §4.1.2 and RFC 9700 §4.14.2 ask the server to answer by revoking the
//     grant.
//   - Revocation keeps the first RevokedAt.
//   - Expiry is exclusive: a row is live while now is before ExpiresAt (as in
//     RefreshToken.Active); UseJTI accepts a jti again from its exp on.
//   - RevokeConsents without a resource cascades to the user's and client's
//     tokens for every resource. It writes its event only when it revoked a
//     grant or a token.
//   - RevokeGrant refuses an empty grant id (ErrInvalid): grant-less tokens
//     are never swept up.
//   - AppendAudit sets the event's ID; ListAudit's newest first is by
//     decreasing ID, Ascending by increasing ID. A type prefix compares
//     bytes (no wildcards, case sensitive); Until is exclusive.
//   - Vault: provider and connection ids are unique per tenant, and a
//     connection's provider must exist in its tenant. A refresh lease is
//     valid while now is before RefreshLeaseUntil (it can be taken over at
//     that instant); its holder renews it. ConnectionFilter's time bounds
//     are exclusive, a never-refreshed connection counts as refreshed at
//     CreatedAt, and pages are by ID. ResealSigningKey compares the whole
//     ciphertext.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// Run runs the conformance suite. newStore must return a fresh, empty,
// migrated store and arrange (with t.Cleanup) for it to be closed; it is
// called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Schema", testSchema},
		{"ClientRoundTrip", testClientRoundTrip},
		{"ClientErrors", testClientErrors},
		{"ClientUpdate", testClientUpdate},
		{"ClientUpdateAborts", testClientUpdateAborts},
		{"ClientUpdateFillsEvent", testClientUpdateFillsEvent},
		{"ClientUpdateConcurrent", testClientUpdateConcurrent},
		{"ClientList", testClientList},
		{"ClientDeleteCascade", testClientDeleteCascade},
		{"Resources", testResources},
		{"ResourceErrors", testResourceErrors},
		{"Users", testUsers},
		{"UserAttributes", testUserAttributes},
		{"SCIM", testSCIM},
		{"ResourceUserClaims", testResourceUserClaims},
		{"SigningKeys", testSigningKeys},
		{"Sessions", testSessions},
		{"AuthCode", testAuthCode},
		{"AuthCodeReplay", testAuthCodeReplay},
		{"AuthCodeConcurrentConsume", testAuthCodeConcurrent},
		{"IssueTokens", testIssueTokens},
		{"IssueTokensAtomic", testIssueTokensAtomic},
		{"IssueTokensConcurrent", testIssueTokensConcurrent},
		{"RotateRefresh", testRotateRefresh},
		{"RotateRefreshReuse", testRotateRefreshReuse},
		{"RotateRefreshErrors", testRotateRefreshErrors},
		{"RotateRefreshConcurrent", testRotateRefreshConcurrent},
		{"RotateRefreshReuseInterval", testRotateRefreshReuseInterval},
		{"RotateRefreshReuseConcurrent", testRotateRefreshReuseConcurrent},
		{"IssuanceConsentUse", testIssuanceConsentUse},
		{"RevokeGrant", testRevokeGrant},
		{"RevokeGrantEmpty", testRevokeGrantEmpty},
		{"RevokeGrantRecordsOnce", testRevokeGrantRecordsOnce},
		{"RevokeAccessToken", testRevokeAccessToken},
		{"IssueLiveCheck", testIssueLiveCheck},
		{"ExchangeIssuance", testExchangeIssuance},
		{"AccessTokenDigest", testAccessTokenDigest},
		{"ExchangeRacesRevocation", testExchangeRacesRevocation},
		{"RevokeClientTokens", testRevokeClientTokens},
		{"RevokeUserAccess", testRevokeUserAccess},
		{"DisableRacesIssuance", testDisableRacesIssuance},
		{"UseJTI", testUseJTI},
		{"UseJTIConcurrent", testUseJTIConcurrent},
		{"Consents", testConsents},
		{"ConsentRevokeCascade", testConsentRevokeCascade},
		{"RevokeConsentsNothing", testRevokeConsentsNothing},
		{"RevokeConsentsReachesExchanged", testRevokeConsentsReachesExchanged},
		{"PolicySets", testPolicySets},
		{"Audit", testAudit},
		{"AuditFilter", testAuditFilter},
		{"AuditPages", testAuditPages},
		{"AuditFilterInvalid", testAuditFilterInvalid},
		{"AuditBatch", testAuditBatch},
		{"AuditOnce", testAuditOnce},
		{"AuditChain", testAuditChain},
		{"AuditSealUpTo", testAuditSealUpTo},
		{"PruneAudit", testPruneAudit},
		{"SealedAudit", testSealedAudit},
		{"AuditSinkLease", testAuditSinkLease},
		{"AuditSinkHealth", testAuditSinkHealth},
		{"DeleteExpired", testDeleteExpired},
		{"TenantIsolation", testTenantIsolation},
		{"ClientGovernanceFields", testClientGovernanceFields},
		{"ClientTouch", testClientTouch},
		{"ClientsBySoftware", testClientsBySoftware},
		{"Domains", testDomains},
		{"RevokeInstallation", testRevokeInstallation},
		{"Installations", testInstallations},
		{"PruneClients", testPruneClients},
		{"PruneRacesIssuance", testPruneRacesIssuance},
		{"Issuers", testIssuers},
		{"Connectors", testConnectors},
		{"ConnectorSignIn", testConnectorSignIn},
		{"GetAccessToken", testGetAccessToken},
		{"AccessTokenStanding", testAccessTokenStanding},
		{"UserProfile", testUserProfile},
		{"Providers", testProviders},
		{"ProviderErrors", testProviderErrors},
		{"ProviderDeleteCascade", testProviderDeleteCascade},
		{"ConnectionRoundTrip", testConnectionRoundTrip},
		{"ConnectionErrors", testConnectionErrors},
		{"ConnectionUpdate", testConnectionUpdate},
		{"ConnectionUpdateConcurrent", testConnectionUpdateConcurrent},
		{"RefreshLease", testRefreshLease},
		{"RefreshLeaseRace", testRefreshLeaseRace},
		{"TouchConnection", testTouchConnection},
		{"ConnectionFilter", testConnectionFilter},
		{"ResealSigningKey", testResealSigningKey},
		{"ResourceProviders", testResourceProviders},
		{"ConnectionDeleteExpired", testConnectionDeleteExpired},
		{"Leases", testLeases},
		{"LeaseRace", testLeaseRace},
		{"ExpireConsents", testExpireConsents},
		{"SweepsConcurrent", testSweepsConcurrent},
		{"ChangesRecorded", testChangesRecorded},
		{"ChangesRollback", testChangesRollback},
		{"ChangesOrder", testChangesOrder},
		{"ChangesPrune", testChangesPrune},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// base is the suite's reference instant. It carries nanoseconds and a
// non-UTC zone on purpose: stores keep microseconds and return UTC.
func base() time.Time {
	return time.Date(2031, 3, 14, 15, 9, 26, 535897932, time.FixedZone("UTC+2", 2*3600))
}

// hash returns SHA-256 of s, the shape every stored bearer secret has.
func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// uniq returns a fresh random identifier.
func uniq(prefix string) string { return prefix + "-" + rand.Text()[:12] }

func ctx(t *testing.T) context.Context { return t.Context() }

// ---- comparison ------------------------------------------------------------

// checkEqual fails t unless got equals want under the store's storage rules:
// times are compared at microsecond precision and must come back in UTC,
// and nil and empty slices and maps are the same.
func checkEqual(t *testing.T, what string, want, got any) {
	t.Helper()
	var diffs []string
	compare(what, reflect.ValueOf(want), reflect.ValueOf(got), &diffs)
	if len(diffs) > 0 {
		t.Errorf("%s differs:\n  %s", what, strings.Join(diffs, "\n  "))
	}
}

var timeType = reflect.TypeFor[time.Time]()

func compare(path string, w, g reflect.Value, out *[]string) {
	if !w.IsValid() || !g.IsValid() {
		if w.IsValid() != g.IsValid() {
			*out = append(*out, fmt.Sprintf("%s: want %v, got %v", path, w, g))
		}
		return
	}
	if w.Type() != g.Type() {
		*out = append(*out, fmt.Sprintf("%s: type %s vs %s", path, w.Type(), g.Type()))
		return
	}
	if w.Type() == timeType {
		wt, gt := w.Interface().(time.Time), g.Interface().(time.Time)
		switch {
		case wt.IsZero():
			if !gt.IsZero() {
				*out = append(*out, fmt.Sprintf("%s: want zero time, got %v", path, gt))
			}
		case !gt.Equal(wt.Truncate(time.Microsecond)):
			*out = append(*out, fmt.Sprintf("%s: want %v, got %v", path, wt.Truncate(time.Microsecond).UTC(), gt))
		case gt.Location() != time.UTC:
			*out = append(*out, fmt.Sprintf("%s: time %v not in UTC", path, gt))
		}
		return
	}
	switch w.Kind() {
	case reflect.Pointer:
		if w.IsNil() || g.IsNil() {
			if w.IsNil() != g.IsNil() {
				*out = append(*out, fmt.Sprintf("%s: want nil=%v, got nil=%v", path, w.IsNil(), g.IsNil()))
			}
			return
		}
		compare(path, w.Elem(), g.Elem(), out)
	case reflect.Struct:
		for i := range w.NumField() {
			f := w.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			compare(path+"."+f.Name, w.Field(i), g.Field(i), out)
		}
	case reflect.Slice:
		if w.Len() == 0 && g.Len() == 0 {
			return
		}
		if w.Type().Elem().Kind() == reflect.Uint8 {
			if !bytes.Equal(w.Bytes(), g.Bytes()) {
				*out = append(*out, fmt.Sprintf("%s: want %x, got %x", path, w.Bytes(), g.Bytes()))
			}
			return
		}
		if w.Len() != g.Len() {
			*out = append(*out, fmt.Sprintf("%s: want %d elements %v, got %d %v", path, w.Len(), w, g.Len(), g))
			return
		}
		for i := range w.Len() {
			compare(fmt.Sprintf("%s[%d]", path, i), w.Index(i), g.Index(i), out)
		}
	case reflect.Map:
		if w.Len() == 0 && g.Len() == 0 {
			return
		}
		if w.Len() != g.Len() {
			*out = append(*out, fmt.Sprintf("%s: want %v, got %v", path, w, g))
			return
		}
		for _, k := range w.MapKeys() {
			gv := g.MapIndex(k)
			if !gv.IsValid() {
				*out = append(*out, fmt.Sprintf("%s: key %v missing", path, k))
				continue
			}
			compare(fmt.Sprintf("%s[%v]", path, k), w.MapIndex(k), gv, out)
		}
	default:
		if !reflect.DeepEqual(w.Interface(), g.Interface()) {
			*out = append(*out, fmt.Sprintf("%s: want %#v, got %#v", path, w.Interface(), g.Interface()))
		}
	}
}

// sameTime reports whether a stored time equals want at microsecond precision.
func sameTime(want, got time.Time) bool {
	if want.IsZero() {
		return got.IsZero()
	}
	return got.Equal(want.Truncate(time.Microsecond))
}

// wantErr fails t unless errors.Is(err, target) (target nil: err must be nil).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	switch {
	case target == nil && err != nil:
		t.Fatalf("%s: unexpected error %v", what, err)
	case target != nil && !errors.Is(err, target):
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	wantErr(t, what, err, nil)
}

// ---- audit helpers ---------------------------------------------------------

// event returns a fresh audit event of type typ whose RequestID identifies it.
func event(tenant, typ string) *store.AuditEvent {
	return &store.AuditEvent{
		TenantID:  tenant,
		Time:      base(),
		Type:      typ,
		RequestID: uniq("req"),
		ClientID:  "client-" + typ,
		UserID:    "user-1",
		Resource:  "https://mcp.example.com/",
		Scopes:    []string{"files:read", "files:write"},
		IP:        "192.0.2.7",
		Outcome:   "success",
		Details:   map[string]string{"grant_type": "authorization_code", "jti": "j-" + typ},
	}
}

// findAudit returns the stored events whose RequestID is ev's.
func findAudit(t *testing.T, s store.Store, ev *store.AuditEvent) []*store.AuditEvent {
	t.Helper()
	list, err := s.ListAudit(ctx(t), store.AuditFilter{TenantID: ev.TenantID, Type: ev.Type, Limit: 10000})
	must(t, "ListAudit", err)
	var found []*store.AuditEvent
	for _, e := range list {
		if e.RequestID == ev.RequestID {
			found = append(found, e)
		}
	}
	return found
}

// wantAudit fails t unless ev was written exactly once, with every field.
func wantAudit(t *testing.T, s store.Store, ev *store.AuditEvent) {
	t.Helper()
	found := findAudit(t, s, ev)
	if len(found) != 1 {
		t.Fatalf("audit event %q written %d times, want 1", ev.Type, len(found))
	}
	if found[0].ID == 0 {
		t.Errorf("audit event %q has no ID", ev.Type)
	}
	want := *ev
	want.ID = found[0].ID
	checkEqual(t, "audit event "+ev.Type, &want, found[0])
}

// wantNoAudit fails t if ev was written.
func wantNoAudit(t *testing.T, s store.Store, ev *store.AuditEvent) {
	t.Helper()
	if found := findAudit(t, s, ev); len(found) != 0 {
		t.Fatalf("audit event %q written %d times by a failed write, want 0", ev.Type, len(found))
	}
}

// ---- fixtures ----------------------------------------------------------------

func fullClient(tenant, id string) *store.Client {
	b := base()
	return &store.Client{
		TenantID:                tenant,
		ID:                      id,
		Name:                    "Agent " + id,
		SecretHash:              hash("secret-" + id),
		SecretExpiresAt:         b.Add(90 * 24 * time.Hour),
		RedirectURIs:            []string{"https://agent.example.com/cb", "http://127.0.0.1/cb"},
		GrantTypes:              []string{"authorization_code", "refresh_token", "client_credentials"},
		ResponseTypes:           []string{"code"},
		TokenEndpointAuthMethod: "client_secret_basic",
		ApplicationType:         "web",
		Scopes:                  []string{"files:read", "files:write", "mail:send"},
		RequestedScopes:         []string{"files:read", "files:write", "files:delete", "mail:send"},
		DefaultResource:         "https://mcp.example.com/",
		JWKS:                    `{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}`,
		JWKSURI:                 "https://agent.example.com/jwks.json",
		ClientURI:               "https://agent.example.com/",
		LogoURI:                 "https://agent.example.com/logo.png",
		TOSURI:                  "https://agent.example.com/tos",
		PolicyURI:               "https://agent.example.com/policy",
		Contacts:                []string{"ops@example.com", "sec@example.com"},
		SoftwareID:              "4NRB1-0XZABZI9E6-5SM3R",
		SoftwareVersion:         "2.1.0",
		RegistrationMethod:      store.RegistrationDCR,
		RegistrationTokenHash:   hash("rat-" + id),
		CreatedIP:               "2001:db8::1",
		Tags:                    []string{"trusted", "beta"},
		OwnerUserID:             "user-1",
		Disabled:                false,
		Status:                  store.ClientActive,
		LastUsedAt:              b.Add(time.Hour),
		SoftwareStatementIssuer: "https://statements.example.com",
		FederatedIssuer:         "k8s-prod",
		CreatedAt:               b,
		UpdatedAt:               b.Add(time.Second),
	}
}

func minimalClient(tenant, id string) *store.Client {
	return &store.Client{
		TenantID:                tenant,
		ID:                      id,
		TokenEndpointAuthMethod: "none",
		RegistrationMethod:      store.RegistrationManual,
		Status:                  store.ClientActive,
		CreatedAt:               base(),
		UpdatedAt:               base(),
	}
}

func refreshToken(tenant, grant, client, user, resource string, scopes ...string) *store.RefreshToken {
	b := base()
	return &store.RefreshToken{
		Hash:      hash(uniq("rt")),
		TenantID:  tenant,
		GrantID:   grant,
		ClientID:  client,
		UserID:    user,
		Scopes:    scopes,
		Resource:  resource,
		AuthTime:  b.Add(-time.Minute),
		CreatedAt: b,
		ExpiresAt: b.Add(30 * 24 * time.Hour),
	}
}

func accessToken(tenant, grant, client, user, resource string, scopes ...string) *store.AccessToken {
	return &store.AccessToken{
		JTI:       uniq("jti"),
		TenantID:  tenant,
		GrantID:   grant,
		ClientID:  client,
		UserID:    user,
		Resource:  resource,
		Scopes:    scopes,
		ExpiresAt: base().Add(10 * time.Minute),
	}
}

// issue persists tokens with IssueTokens and no events.
func issue(t *testing.T, s store.Store, rt *store.RefreshToken, at *store.AccessToken) {
	t.Helper()
	must(t, "IssueTokens", s.IssueTokens(ctx(t), &store.Issuance{AccessToken: at, RefreshToken: rt}))
}

// refreshRevokedAt returns the stored RevokedAt of a refresh token.
func refreshState(t *testing.T, s store.Store, rt *store.RefreshToken) *store.RefreshToken {
	t.Helper()
	got, err := s.GetRefreshToken(ctx(t), rt.Hash)
	must(t, "GetRefreshToken", err)
	return got
}

func revoked(t *testing.T, s store.Store, at *store.AccessToken) bool {
	t.Helper()
	r, err := s.AccessTokenRevoked(ctx(t), at.JTI)
	must(t, "AccessTokenRevoked", err)
	return r
}

func sortedIDs[T any](items []T, id func(T) string) []string {
	ids := make([]string, 0, len(items))
	for _, it := range items {
		ids = append(ids, id(it))
	}
	sort.Strings(ids)
	return ids
}

func wantIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	want = slices.Clone(want)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
