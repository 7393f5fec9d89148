package server

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/consent"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
	"github.com/agentid/agentid/internal/token"
)

// Test-only grants that prove nothing: their hook returns whatever the test
// put in grantFixture.next, unchecked, the way a careless new grant might.
const (
	carelessGrant             = "urn:example:careless"
	carelessConfidentialGrant = "urn:example:careless-confidential"
	carelessAnonymousGrant    = "urn:example:careless-anonymous"
	testResource              = "https://hub.example/mcp"
)

// grantFixture is a server on a real SQLite store whose grant table has the
// careless grants added, with one resource, an active user (alice), a
// disabled one (bob) and clients of the careless grants.
type grantFixture struct {
	s    *Server
	st   store.Store
	next *authorization
}

func newGrantFixture(t *testing.T, extraPolicy string) *grantFixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "agentid.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if extraPolicy != "" {
		files := policy.DefaultFiles()
		files["test.cedar"] = extraPolicy
		must(policy.Apply(ctx, st, &store.PolicySet{TenantID: store.DefaultTenant, Files: files, CreatedBy: "test", CreatedAt: now}, nil))
	}
	pol, err := policy.New(ctx, policy.Options{Store: st})
	must(err)
	kek, err := keyring.GenerateKEK(rand.Reader)
	must(err)
	ring, err := keyring.NewKeyring(kek)
	must(err)
	keys, err := token.NewKeys(ctx, token.Options{Store: st, Keyring: ring})
	must(err)
	s, err := New(Config{Issuer: "https://hub.example", Store: st, Keys: keys, Policy: pol})
	must(err)
	f := &grantFixture{s: s, st: st}
	prove := func(*Server, context.Context, *http.Request, *store.Client, *oauth.TokenRequest) (*authorization, error) {
		a := *f.next
		return &a, nil
	}
	s.grants = append(s.grants,
		grant{typ: carelessGrant, clientAuth: true, public: true, prove: prove},
		grant{typ: carelessConfidentialGrant, clientAuth: true, public: false, prove: prove},
		grant{typ: carelessAnonymousGrant, clientAuth: false, public: true, prove: prove},
	)
	// The token exchange row keeps its place and flags, with the careless
	// hook in place of its own.
	g, _ := s.grant(oauth.GrantTokenExchange)
	g.prove = prove

	must(st.CreateResource(ctx, &store.Resource{
		TenantID: store.DefaultTenant, ID: "notes", URI: testResource, Name: "Notes", CreatedAt: now,
		Scopes: []store.Scope{{Name: "notes.read"}, {Name: "notes.write"}, {Name: "notes.delete", Sensitive: true}},
	}, nil))
	for _, u := range []*store.User{
		{ID: "u-alice", Username: "alice"},
		{ID: "u-bob", Username: "bob", Disabled: true},
	} {
		u.TenantID, u.PasswordHash, u.CreatedAt, u.UpdatedAt = store.DefaultTenant, "unused", now, now
		must(st.CreateUser(ctx, u, nil))
	}
	all := []string{carelessGrant, carelessConfidentialGrant, carelessAnonymousGrant, oauth.GrantTokenExchange, oauth.GrantRefreshToken}
	for _, c := range []*store.Client{
		// The ceiling is notes.read: notes.write is beyond it.
		{ID: "careless-bot", TokenEndpointAuthMethod: "client_secret_basic", SecretHash: token.Hash("bot-secret"),
			GrantTypes: all, Scopes: []string{"notes.read"}, RequestedScopes: []string{"notes.read", "notes.write"}},
		{ID: "careless-app", TokenEndpointAuthMethod: "none", GrantTypes: all},
		{ID: "code-only", TokenEndpointAuthMethod: "client_secret_basic", SecretHash: token.Hash("code-secret"),
			GrantTypes: []string{oauth.GrantAuthorizationCode}, RedirectURIs: []string{"https://app.example/cb"}},
	} {
		c.TenantID, c.RegistrationMethod, c.CreatedAt, c.UpdatedAt = store.DefaultTenant, store.RegistrationManual, now, now
		must(st.CreateClient(ctx, c, nil))
	}
	// Everyone consented to the bot reading their notes, not writing them:
	// consent alone never stops the tokens the tests expect refused. (u-gone
	// consented before the account was deleted.)
	for _, u := range []string{"u-alice", "u-bob", "u-gone"} {
		must(s.ledger.Grant(ctx, consent.Key{UserID: u, ClientID: "careless-bot", Resource: testResource}, []string{"notes.read"}, time.Time{}, nil))
	}
	return f
}

type tokenReply struct {
	status int
	body   map[string]any
}

func (r tokenReply) errorCode() string { s, _ := r.body["error"].(string); return s }

// token posts form to /token, authenticating as clientID with secret (a
// public client when secret is empty, no client when clientID is empty).
func (f *grantFixture) token(t *testing.T, form url.Values, clientID, secret string) tokenReply {
	t.Helper()
	if clientID != "" && secret == "" {
		form.Set("client_id", clientID)
	}
	req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(clientID, secret)
	}
	return f.do(t, req)
}

func (f *grantFixture) do(t *testing.T, req *http.Request) tokenReply {
	t.Helper()
	w := httptest.NewRecorder()
	f.s.Handler().ServeHTTP(w, req)
	r := tokenReply{status: w.Code}
	if err := json.Unmarshal(w.Body.Bytes(), &r.body); err != nil {
		t.Fatalf("%s %s: %d %q is not JSON", req.Method, req.URL.Path, w.Code, w.Body)
	}
	return r
}

// issuedCount counts token.issued events.
func (f *grantFixture) issuedCount(t *testing.T) int {
	t.Helper()
	evs, err := f.st.ListAudit(context.Background(), store.AuditFilter{Type: audit.TokenIssued, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// TestPipelineRefusesCarelessGrants: a grant hook that checks nothing cannot
// get a token past the pipeline. Each unchecked claim of the hook (an
// unregistered resource, a dead subject, scopes beyond the resource or the
// client's ceiling, consent the person never gave) is refused with the
// OAuth error the pipeline owes, and nothing is issued.
func TestPipelineRefusesCarelessGrants(t *testing.T) {
	f := newGrantFixture(t, `@id("no-exchange") forbid (principal, action == Action::"exchange", resource);`)
	alice := userSubject("u-alice", time.Now().Add(-time.Minute))
	onNotes := []string{testResource}
	withFamily := family{id: "family-1"}
	tests := []struct {
		name     string
		grant    string
		clientID string
		secret   string
		auth     authorization
		want     string // OAuth error code
	}{
		{name: "resource never checked: unregistered", auth: authorization{subject: alice, resource: []string{"https://evil.example/mcp"}, scopes: []string{"notes.read"}, consent: true}, want: oauth.CodeInvalidTarget},
		{name: "resource never checked: not a URI", auth: authorization{subject: alice, resource: []string{"notes"}, scopes: []string{"notes.read"}, consent: true}, want: oauth.CodeInvalidTarget},
		{name: "resource never checked: two of them", auth: authorization{subject: alice, resource: []string{testResource, "https://evil.example/mcp"}, scopes: []string{"notes.read"}, consent: true}, want: oauth.CodeInvalidTarget},
		{name: "disabled user", auth: authorization{subject: userSubject("u-bob", time.Time{}), resource: onNotes, scopes: []string{"notes.read"}, consent: true}, want: oauth.CodeInvalidGrant},
		{name: "deleted user", auth: authorization{subject: userSubject("u-gone", time.Time{}), resource: onNotes, scopes: []string{"notes.read"}, consent: true}, want: oauth.CodeInvalidGrant},
		{name: "scope beyond the resource", auth: authorization{subject: alice, resource: onNotes, scopes: []string{"notes.read", "mail.send"}, consent: true}, want: oauth.CodeInvalidScope},
		{name: "scope beyond the client's ceiling", auth: authorization{subject: alice, resource: onNotes, scopes: []string{"notes.write"}, consent: true}, want: oauth.CodeInvalidScope},
		{name: "sensitive scope beyond the ceiling", auth: authorization{subject: alice, resource: onNotes, scopes: []string{"notes.delete"}, consent: true}, want: oauth.CodeInvalidScope},
		{name: "scope the person never consented to", clientID: "careless-app", auth: authorization{subject: alice, resource: onNotes, scopes: []string{"notes.write"}, consent: true}, want: oauth.CodeInvalidGrant},
		{name: "client itself beyond the policy", auth: authorization{subject: clientSubject(), resource: onNotes, scopes: []string{"notes.read"}}, want: oauth.CodeInvalidScope},
		{name: "policy action follows the grant type", grant: oauth.GrantTokenExchange, auth: authorization{subject: alice, resource: onNotes, scopes: []string{"notes.read"}, consent: true}, want: oauth.CodeInvalidScope},
		{name: "consent claimed for the client itself", auth: authorization{subject: clientSubject(), resource: onNotes, scopes: []string{"notes.read"}, consent: true}, want: oauth.CodeServerError},
		{name: "refresh token without a family", auth: authorization{subject: alice, resource: onNotes, scopes: []string{"notes.read"}, consent: true, refresh: true}, want: oauth.CodeServerError},
		{name: "public client on a confidential grant", grant: carelessConfidentialGrant, clientID: "careless-app", auth: authorization{subject: alice, resource: onNotes, scopes: []string{"notes.read"}, consent: true, family: withFamily}, want: oauth.CodeUnauthorizedClient},
		{name: "client not registered for the grant", clientID: "code-only", secret: "code-secret", auth: authorization{subject: alice, resource: onNotes, scopes: []string{"notes.read"}, consent: true}, want: oauth.CodeUnauthorizedClient},
		{name: "no client at all", grant: carelessAnonymousGrant, clientID: "-", auth: authorization{subject: alice, resource: onNotes, scopes: []string{"notes.read"}, consent: true}, want: oauth.CodeInvalidClient},
		{name: "wrong client secret", secret: "guess", auth: authorization{subject: alice, resource: onNotes, scopes: []string{"notes.read"}, consent: true}, want: oauth.CodeInvalidClient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			grantType, clientID, secret := cmp.Or(tc.grant, carelessGrant), cmp.Or(tc.clientID, "careless-bot"), tc.secret
			if clientID == "careless-bot" && secret == "" {
				secret = "bot-secret"
			}
			if clientID == "-" {
				clientID = ""
			}
			f.next = &tc.auth
			before := f.issuedCount(t)
			r := f.token(t, url.Values{"grant_type": {grantType}, "subject_token": {"x"}, "subject_token_type": {"x"}}, clientID, secret)
			if r.errorCode() != tc.want {
				t.Fatalf("got %d %v, want %s", r.status, r.body, tc.want)
			}
			if _, ok := r.body["access_token"]; ok || f.issuedCount(t) != before {
				t.Fatal("a token was issued")
			}
		})
	}

	// The same careless hook within every invariant gets its token, with
	// what the pipeline allowed and nothing more.
	t.Run("within the invariants", func(t *testing.T) {
		f.next = &authorization{subject: alice, resource: onNotes, scopes: []string{"notes.read", "notes.write"}, consent: true, refresh: true, family: withFamily}
		r := f.token(t, url.Values{"grant_type": {carelessGrant}}, "careless-bot", "bot-secret")
		if r.status != http.StatusOK || r.body["scope"] != "notes.read" || r.body["refresh_token"] == nil {
			t.Fatalf("got %d %v, want notes.read (the ceiling) with a refresh token", r.status, r.body)
		}
		evs, err := f.st.ListAudit(context.Background(), store.AuditFilter{Type: audit.TokenIssued, Limit: 1})
		if err != nil || len(evs) != 1 {
			t.Fatalf("token.issued events: %v %v", evs, err)
		}
		dec, _, err := audit.DecisionOf(evs[0])
		want := audit.Decision{PolicyVersion: 1, Scopes: []audit.ScopeDecision{
			{Scope: "notes.read", Allowed: true, Reason: audit.ReasonPolicy, PolicyIDs: []string{"user-consent"}},
			{Scope: "notes.write", Reason: audit.ReasonCeiling},
		}}
		if err != nil || !reflect.DeepEqual(dec, want) {
			t.Fatalf("token.issued decision %+v (%v), want %+v", dec, err, want)
		}
	})
}

// TestCheckSubject: the pipeline itself finds the subject alive, not only
// the store's check in the issuance transaction behind it (which the
// careless grants above also meet): a disabled or deleted person, or a
// disabled client, ends the request before the policy is asked.
func TestCheckSubject(t *testing.T) {
	f := newGrantFixture(t, "")
	ctx := context.Background()
	bot, err := f.st.GetClient(ctx, store.DefaultTenant, "careless-bot")
	if err != nil {
		t.Fatal(err)
	}
	disabled := *bot
	disabled.Disabled = true
	tests := []struct {
		name   string
		client *store.Client
		sub    subject
		want   string // OAuth error code; "" for alive
	}{
		{"person alive", bot, userSubject("u-alice", time.Now()), ""},
		{"client for itself", bot, clientSubject(), ""},
		{"disabled person", bot, userSubject("u-bob", time.Now()), oauth.CodeInvalidGrant},
		{"deleted person", bot, userSubject("u-gone", time.Now()), oauth.CodeInvalidGrant},
		{"disabled client for a person", &disabled, userSubject("u-alice", time.Now()), oauth.CodeInvalidClient},
		{"disabled client for itself", &disabled, clientSubject(), oauth.CodeInvalidClient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.s.checkSubject(ctx, tc.client, tc.sub)
			if tc.want == "" {
				if err != nil || p.client != tc.client || p.userID() != tc.sub.userID {
					t.Fatalf("checkSubject = %+v, %v; want the subject alive", p, err)
				}
				return
			}
			var oe *oauth.Error
			if !errors.As(err, &oe) || oe.Code != tc.want {
				t.Fatalf("checkSubject error = %v, want %s", err, tc.want)
			}
		})
	}
}

// TestGrantTableAgreement: metadata, registration (RFC 7591 and RFC 7592
// updates) and /token dispatch all follow a server's grant table: every row
// is advertised, registrable (by public clients only where the row allows
// them) and dispatched, and a
// grant type that is not in the table is refused by each with its own error.
// The CLI's side is TestClientGrantTypesFollowTheTable in cmd/agentid.
func TestGrantTableAgreement(t *testing.T) {
	f := newGrantFixture(t, "")
	f.next = &authorization{subject: clientSubject(), resource: []string{testResource}}

	var meta struct {
		GrantTypes []string `json:"grant_types_supported"`
	}
	r := f.do(t, httptest.NewRequest(http.MethodGet, "/.well-known/oauth-authorization-server", nil))
	b, _ := json.Marshal(r.body)
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(meta.GrantTypes, grantTypeNames(f.s.grants)) {
		t.Fatalf("grant_types_supported = %q, want the table %q", meta.GrantTypes, grantTypeNames(f.s.grants))
	}
	if got, want := GrantTypes(), supportedGrants(defaultGrants()); !slices.Equal(got, want) {
		t.Fatalf("GrantTypes() = %v, want the default table %v", got, want)
	}

	register := func(t *testing.T, grantType, method string) tokenReply {
		t.Helper()
		md := map[string]any{"grant_types": []string{grantType}, "token_endpoint_auth_method": method}
		if grantType == oauth.GrantAuthorizationCode || method == "none" {
			md["grant_types"] = []string{grantType, oauth.GrantAuthorizationCode}
			md["redirect_uris"] = []string{"http://127.0.0.1:9999/cb"}
		}
		body, _ := json.Marshal(md)
		req := httptest.NewRequest(http.MethodPost, "/register", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return f.do(t, req)
	}
	// update replaces the metadata of a registered client (RFC 7592 §2.2)
	// with grantTypes and the rest as registered.
	update := func(t *testing.T, reg tokenReply, grantTypes ...string) tokenReply {
		t.Helper()
		md := map[string]any{"client_id": reg.body["client_id"], "grant_types": grantTypes,
			"token_endpoint_auth_method": reg.body["token_endpoint_auth_method"]}
		if uris, ok := reg.body["redirect_uris"]; ok {
			md["redirect_uris"] = uris
		}
		body, _ := json.Marshal(md)
		req := httptest.NewRequest(http.MethodPut, "/register/"+reg.body["client_id"].(string), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+reg.body["registration_access_token"].(string))
		return f.do(t, req)
	}
	// A public client of the code grant, that updates may give more grants.
	publicApp := register(t, oauth.GrantAuthorizationCode, "none")
	if publicApp.status != http.StatusCreated {
		t.Fatalf("public registration: %d %v", publicApp.status, publicApp.body)
	}
	// Enough parameters for every grant's parsing; each hook then fails or
	// succeeds on its own terms.
	form := func(grantType string) url.Values {
		return url.Values{"grant_type": {grantType}, "code": {"no-such-code"}, "code_verifier": {strings.Repeat("v", 43)},
			"refresh_token": {"no-such-token"}, "subject_token": {"x"}, "subject_token_type": {"x"}, "assertion": {"x"}}
	}
	for _, g := range f.s.grants {
		t.Run(g.typ, func(t *testing.T) {
			reg := register(t, g.typ, "client_secret_basic")
			if reg.status != http.StatusCreated {
				t.Fatalf("registration for %s: %d %v", g.typ, reg.status, reg.body)
			}
			id, secret := reg.body["client_id"].(string), reg.body["client_secret"].(string)
			tok := f.token(t, form(g.typ), id, secret)
			switch tok.errorCode() {
			case oauth.CodeUnsupportedGrantType, oauth.CodeUnauthorizedClient, oauth.CodeInvalidClient:
				t.Fatalf("/token for a client registered for %s: %d %v", g.typ, tok.status, tok.body)
			}
			if up := update(t, reg, g.typ); up.status != http.StatusOK {
				t.Fatalf("update for %s: %d %v", g.typ, up.status, up.body)
			}
			pub := register(t, g.typ, "none")
			pubUp := update(t, publicApp, oauth.GrantAuthorizationCode, g.typ)
			switch {
			case g.public && pub.status != http.StatusCreated:
				t.Fatalf("public registration for %s: %d %v", g.typ, pub.status, pub.body)
			case !g.public && pub.errorCode() != oauth.CodeInvalidClientMetadata:
				t.Fatalf("public registration for %s: %d %v, want invalid_client_metadata", g.typ, pub.status, pub.body)
			case g.public && pubUp.status != http.StatusOK:
				t.Fatalf("public update for %s: %d %v", g.typ, pubUp.status, pubUp.body)
			case !g.public && pubUp.errorCode() != oauth.CodeInvalidClientMetadata:
				t.Fatalf("public update for %s: %d %v, want invalid_client_metadata", g.typ, pubUp.status, pubUp.body)
			}
		})
	}
	for _, typ := range []string{"urn:ietf:params:oauth:grant-type:device_code", "urn:example:not-in-the-table", "password"} {
		t.Run("not in the table "+typ, func(t *testing.T) {
			if slices.Contains(meta.GrantTypes, typ) {
				t.Fatalf("metadata advertises %s", typ)
			}
			if reg := register(t, typ, "client_secret_basic"); reg.errorCode() != oauth.CodeInvalidClientMetadata {
				t.Fatalf("registration for %s: %d %v, want invalid_client_metadata", typ, reg.status, reg.body)
			}
			if up := update(t, publicApp, oauth.GrantAuthorizationCode, typ); up.errorCode() != oauth.CodeInvalidClientMetadata {
				t.Fatalf("update for %s: %d %v, want invalid_client_metadata", typ, up.status, up.body)
			}
			if tok := f.token(t, form(typ), "careless-bot", "bot-secret"); tok.errorCode() != oauth.CodeUnsupportedGrantType {
				t.Fatalf("/token for %s: %d %v, want unsupported_grant_type", typ, tok.status, tok.body)
			}
		})
	}
}

// TestDryRunReplaysIssuedTokens: a policy dry run of the policy in force
// over the token.issued events the pipeline wrote changes nothing, because
// each event carries the context its decision was made in (here the
// client's auth method and the age of the person's login, which the policy
// looks at).
func TestDryRunReplaysIssuedTokens(t *testing.T) {
	const rules = `@id("cc-by-secret") permit (principal, action == Action::"grant", resource)
when { context.grant_type == "client_credentials" && context.auth_method == "client_secret_basic" };
@id("write-needs-fresh-login") forbid (principal, action, resource)
when { resource.name == "notes.write" && context has auth_age_seconds && context.auth_age_seconds > 3600 };`
	f := newGrantFixture(t, rules)
	ctx := context.Background()
	now := time.Now()
	if err := f.st.CreateClient(ctx, &store.Client{
		TenantID: store.DefaultTenant, ID: "nightly", RegistrationMethod: store.RegistrationManual, CreatedAt: now, UpdatedAt: now,
		TokenEndpointAuthMethod: "client_secret_basic", SecretHash: token.Hash("nightly-secret"),
		GrantTypes: []string{oauth.GrantClientCredentials}, DefaultResource: testResource,
	}, nil); err != nil {
		t.Fatal(err)
	}
	if r := f.token(t, url.Values{"grant_type": {oauth.GrantClientCredentials}, "scope": {"notes.read"}}, "nightly", "nightly-secret"); r.status != http.StatusOK {
		t.Fatalf("client credentials: %d %v", r.status, r.body)
	}
	if err := f.s.ledger.Grant(ctx, consent.Key{UserID: "u-alice", ClientID: "careless-app", Resource: testResource}, []string{"notes.read", "notes.write"}, time.Time{}, nil); err != nil {
		t.Fatal(err)
	}
	f.next = &authorization{subject: userSubject("u-alice", now.Add(-2*time.Hour)), resource: []string{testResource}, scopes: []string{"notes.read", "notes.write"}, consent: true}
	if r := f.token(t, url.Values{"grant_type": {carelessGrant}}, "careless-app", ""); r.status != http.StatusOK || r.body["scope"] != "notes.read" {
		t.Fatalf("a login two hours old: %d %v, want notes.read alone", r.status, r.body)
	}
	files := policy.DefaultFiles()
	files["test.cedar"] = rules
	rep, err := policy.DryRun(ctx, f.st, files, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Evaluated != 2 || len(rep.Changes) != 0 {
		t.Fatalf("dry run of the policy in force: %s", rep)
	}
}
