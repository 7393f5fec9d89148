package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
)

// TestSCIMIdentityProviderRequests: what Microsoft Entra ID's and Okta's
// provisioning actually send is understood, and an offboarding is never
// lost to another attribute of the same request:
//   - Entra deactivates with {"op":"Replace","path":"active","value":"False"}
//     (a string), and reactivates with a path-less {"active":"True"};
//   - a path-less replace whose keys are attribute paths (name.givenName,
//     the schema-qualified displayName; RFC 7644 §3.5.2.3);
//   - Entra updates the address with emails[type eq "work"].value, so the
//     one address the hub keeps is answered as the work address;
//   - Okta's PUT that renames (refused: userName is immutable here) and
//     deactivates in one request still offboards the person;
//   - list responses' itemsPerPage is what the page holds (RFC 7644
//     §3.4.2), and the ServiceProviderConfig says passwords can be set.
func TestSCIMIdentityProviderRequests(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	base, tok := scimHub(t, h)
	do := func(method, path, body string) scimResp { t.Helper(); return scimDo(t, tok, method, base+path, body) }
	create := func(name string) string {
		t.Helper()
		r := do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"`+name+`",
			"emails":[{"value":"`+name+`@example.com","primary":true}]}`)
		if r.status != http.StatusCreated {
			t.Fatalf("create %s: %d %v", name, r.status, r.body)
		}
		return r.body["id"].(string)
	}
	stored := func(id string) *store.User {
		t.Helper()
		u, err := h.Store.GetUser(ctx, store.DefaultTenant, id)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}

	t.Run("Entra's string booleans", func(t *testing.T) {
		id := create("entra1")
		r := do("PATCH", "/Users/"+id, patchOps(`{"op":"Replace","path":"active","value":"False"}`))
		if r.status != 200 || r.body["active"] != false || !stored(id).Disabled {
			t.Fatalf("deactivation with \"False\": %d %v", r.status, r.body)
		}
		wantSCIMEvent(t, h.Store, audit.UserAccessRevoked, id, "")
		r = do("PATCH", "/Users/"+id, patchOps(`{"op":"Replace","value":{"active":"True"}}`))
		if r.status != 200 || r.body["active"] != true || stored(id).Disabled {
			t.Fatalf("reactivation with \"True\": %d %v", r.status, r.body)
		}
		r = do("PATCH", "/Users/"+id, patchOps(`{"op":"replace","path":"emails[value eq \"entra1@example.com\"].primary","value":"true"}`))
		if r.status != 200 {
			t.Fatalf("a sub-attribute's string boolean: %d %v", r.status, r.body)
		}
		for _, v := range []string{`"no"`, `"0"`, `1`} {
			if r := do("PATCH", "/Users/"+id, patchOps(`{"op":"Replace","path":"active","value":`+v+`}`)); r.status != 400 || r.body["scimType"] != "invalidValue" {
				t.Errorf("active %s: %d %v", v, r.status, r.body)
			}
		}
		if stored(id).Disabled {
			t.Fatal("a refused value deactivated the person")
		}
	})

	t.Run("path-less replace with attribute paths", func(t *testing.T) {
		id := create("paths1")
		r := do("PATCH", "/Users/"+id, patchOps(`{"op":"replace","value":{"name.givenName":"Pat","name.familyName":"Hsu"}}`))
		if r.status != 200 || stored(id).Name != "Pat Hsu" {
			t.Fatalf("name.givenName as a key: %d %v; stored %q", r.status, r.body, stored(id).Name)
		}
		r = do("PATCH", "/Users/"+id, patchOps(`{"op":"replace","value":{"urn:ietf:params:scim:schemas:core:2.0:User:displayName":"P. Hsu"}}`))
		if r.status != 200 || stored(id).Name != "P. Hsu" {
			t.Fatalf("a schema-qualified key: %d %v; stored %q", r.status, r.body, stored(id).Name)
		}
		if r := do("PATCH", "/Users/"+id, patchOps(`{"op":"replace","value":{"shoeSize":"9"}}`)); r.status != 400 {
			t.Fatalf("an unknown key: %d %v", r.status, r.body)
		}
	})

	t.Run("the work address", func(t *testing.T) {
		id := create("work1")
		r := do("GET", "/Users/"+id, "")
		if e := asList(r.body["emails"]); len(e) != 1 || e[0].(map[string]any)["type"] != "work" {
			t.Fatalf("emails %v", r.body["emails"])
		}
		r = do("PATCH", "/Users/"+id, patchOps(`{"op":"Replace","path":"emails[type eq \"work\"].value","value":"w1@example.com"}`))
		if r.status != 200 || stored(id).Email != "w1@example.com" {
			t.Fatalf("Entra's address update: %d %v", r.status, r.body)
		}
	})

	t.Run("Okta's rename and deactivation in one PUT", func(t *testing.T) {
		id := create("okta1")
		now := time.Now()
		if err := h.Store.CreateSession(ctx, &store.Session{Hash: []byte("okta1-session"), TenantID: store.DefaultTenant, UserID: id,
			AuthTime: now, ExpiresAt: now.Add(time.Hour)}, nil); err != nil {
			t.Fatal(err)
		}
		r := do("PUT", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"okta1.renamed","active":false}`)
		if r.status != 400 || r.body["scimType"] != "mutability" {
			t.Fatalf("PUT renaming: %d %v", r.status, r.body)
		}
		if !stored(id).Disabled {
			t.Fatal("the refused rename kept the person active")
		}
		if _, err := h.Store.GetSession(ctx, []byte("okta1-session"), now); err == nil {
			t.Fatal("the person's session outlived the deactivation")
		}
		wantSCIMEvent(t, h.Store, audit.UserAccessRevoked, id, "")
	})

	t.Run("the enterprise extension", func(t *testing.T) {
		const ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
		r := do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","`+ent+`"],"userName":"ent1",
			"`+ent+`":{"department":"Eng","employeeNumber":"701984","manager":{"value":"u-alice"}}}`)
		if r.status != http.StatusCreated {
			t.Fatalf("create with the extension: %d %v", r.status, r.body)
		}
		id := r.body["id"].(string)
		if a := stored(id).Attributes; a["department"] != "Eng" || a["employeeNumber"] != "701984" || a["manager"] != "u-alice" {
			t.Fatalf("stored attributes %v", a)
		}
		if e, _ := r.body[ent].(map[string]any); e["department"] != "Eng" || e["manager"].(map[string]any)["value"] != "u-alice" {
			t.Fatalf("answered extension %v", r.body[ent])
		}
		// Entra ID's updates: by path, and the manager as a bare id.
		r = do("PATCH", "/Users/"+id, patchOps(`{"op":"Replace","path":"`+ent+`:department","value":"Sales"}`,
			`{"op":"Add","path":"`+ent+`:manager","value":"`+id+`"}`, `{"op":"Replace","path":"active","value":"True"}`))
		if a := stored(id).Attributes; r.status != 200 || a["department"] != "Sales" || a["manager"] != id {
			t.Fatalf("PATCH by path: %d %v; stored %v", r.status, r.body, a)
		}
		wantSCIMEvent(t, h.Store, audit.UserUpdated, id, audit.ChangeAttributes)
		if r := do("GET", "/Users?filter="+url.QueryEscape(ent+`:department eq "Sales"`), ""); r.status != 200 || r.body["totalResults"] != float64(1) {
			t.Errorf("filter on the extension: %d %v", r.status, r.body)
		}
		r = do("PATCH", "/Users/"+id, patchOps(`{"op":"replace","value":{"`+ent+`":{"costCenter":"4130"}}}`, `{"op":"remove","path":"`+ent+`:employeeNumber"}`))
		if a := stored(id).Attributes; r.status != 200 || a["costCenter"] != "4130" || a["employeeNumber"] != "" || a["department"] != "Sales" {
			t.Fatalf("PATCH without a path, and remove: %d %v; stored %v", r.status, r.body, a)
		}
		// A PUT replaces the extension's attributes, and only those.
		u := stored(id)
		u.Attributes["employment"] = "staff"
		if err := h.Store.UpdateUser(ctx, u, nil); err != nil {
			t.Fatal(err)
		}
		r = do("PUT", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ent1"}`)
		if a := stored(id).Attributes; r.status != 200 || len(a) != 1 || a["employment"] != "staff" {
			t.Fatalf("PUT without the extension: %d %v; stored %v", r.status, r.body, a)
		}
		if r := do("GET", "/Schemas/"+ent, ""); r.status != 200 {
			t.Errorf("the extension's schema: %d", r.status)
		}
	})

	t.Run("filters on multi-valued attributes", func(t *testing.T) {
		id := create("member1")
		r := do("POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"filters","members":[{"value":"`+id+`"}]}`)
		if r.status != http.StatusCreated {
			t.Fatalf("create group: %d %v", r.status, r.body)
		}
		g := r.body["id"].(string)
		for f, want := range map[string]float64{
			// Entra ID's membership check.
			`id eq "` + g + `" and members eq "` + id + `"`:    1,
			`id eq "` + g + `" and members eq "u-alice"`:       0,
			`members.value eq "` + id + `"`:                    1,
			`not (members eq "` + id + `") and displayName pr`: 0,
		} {
			if r := do("GET", "/Groups?excludedAttributes=members&filter="+url.QueryEscape(f), ""); r.status != 200 || r.body["totalResults"] != want {
				t.Errorf("Groups filter %s: %d %v", f, r.status, r.body)
			}
		}
		for f, want := range map[string]float64{`emails.value eq "member1@example.com"`: 1, `emails.value co "@nowhere.example"`: 0, `groups eq "` + g + `"`: 1} {
			if r := do("GET", "/Users?filter="+url.QueryEscape(f), ""); r.status != 200 || r.body["totalResults"] != want {
				t.Errorf("Users filter %s: %d %v", f, r.status, r.body)
			}
		}
	})

	t.Run("pages and configuration", func(t *testing.T) {
		r := do("GET", "/Users?count=150", "")
		n := len(asList(r.body["Resources"]))
		if r.status != 200 || n == 0 || n >= 150 || r.body["itemsPerPage"] != float64(n) {
			t.Fatalf("itemsPerPage %v for %d resources", r.body["itemsPerPage"], n)
		}
		r = do("GET", "/Users?startIndex=1000", "")
		if r.body["itemsPerPage"] != float64(0) || r.body["totalResults"] == float64(0) {
			t.Fatalf("past the end: %v", r.body)
		}
		r = do("GET", "/ServiceProviderConfig", "")
		if r.body["changePassword"].(map[string]any)["supported"] != true {
			t.Fatalf("changePassword %v", r.body["changePassword"])
		}
	})
}

// TestSCIMUserValues: what a provisioning client writes into a person is
// held to the bounds the hub's other paths keep: a userName that differs
// from another's only in case is taken (userName is caseExact false,
// RFC 7643 §4.1.1: one account under any case); a name with control or
// direction-override characters, or over 256 bytes, and an email that is
// not a plain address are invalidValue; a body over the hub's limit is
// 413 with a SCIM error (RFC 7644 §3.12).
func TestSCIMUserValues(t *testing.T) { forEachBackend(t, testSCIMUserValues) }

func testSCIMUserValues(t *testing.T, h *hub) {
	base, tok := scimHub(t, h)
	do := func(method, path, body string) scimResp { t.Helper(); return scimDo(t, tok, method, base+path, body) }
	user := func(extra string) string {
		return `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]` + extra + `}`
	}
	if r := do("POST", "/Users", user(`,"userName":"dora"`)); r.status != http.StatusCreated {
		t.Fatalf("create: %d %v", r.status, r.body)
	}
	for _, name := range []string{"DORA", "Dora", "ALICE"} {
		if r := do("POST", "/Users", user(`,"userName":"`+name+`"`)); r.status != http.StatusConflict || r.body["scimType"] != "uniqueness" {
			t.Errorf("userName %s: %d %v", name, r.status, r.body)
		}
	}
	if r := do("GET", "/Users?filter="+url.QueryEscape(`userName eq "dora"`), ""); r.body["totalResults"] != float64(1) {
		t.Errorf("userName eq finds %v", r.body["totalResults"])
	}
	refused := map[string]string{
		"a NUL in the name":               `,"userName":"v1","displayName":"Eve\u0000Smith"`,
		"a right-to-left override":        `,"userName":"v2","name":{"formatted":"Eve \u202eevilA"}`,
		"a name over 256 bytes":           `,"userName":"v3","displayName":"` + strings.Repeat("n", 257) + `"`,
		"an email with a display name":    `,"userName":"v4","emails":[{"value":"Eve <eve@example.com>"}]`,
		"an email with a control":         `,"userName":"v5","emails":[{"value":"eve\u0007@example.com"}]`,
		"an email without a domain":       `,"userName":"v6","emails":[{"value":"eve"}]`,
		"an email with an invisible char": `,"userName":"v7","emails":[{"value":"e\u200bve@example.com"}]`,
	}
	for name, extra := range refused {
		if r := do("POST", "/Users", user(extra)); r.status != 400 || r.body["scimType"] != "invalidValue" {
			t.Errorf("%s: %d %v", name, r.status, r.body)
		}
	}
	// A Persian name needs its zero-width non-joiner.
	if r := do("POST", "/Users", user(`,"userName":"v8","displayName":"می\u200cخواهم","emails":[{"value":"v8@example.com"}]`)); r.status != http.StatusCreated {
		t.Errorf("a name with a joiner: %d %v", r.status, r.body)
	}
	resp, raw := bearerDo(t, "POST", base+"/Users", tok, "application/scim+json", user(`,"userName":"big","displayName":"`+strings.Repeat("a", 70<<10)+`"`))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Content-Type") != "application/scim+json" || !strings.Contains(string(raw), `"status":"413"`) {
		t.Errorf("a body over the limit: %d %s %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
}

// TestSCIMAdministratorPassword: a provisioning client cannot set the
// password of a person holding the hub's admin role (by PATCH or PUT), so
// a SCIM token is no way into the admin console; it still offboards them.
func TestSCIMAdministratorPassword(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	base, tok := scimHub(t, h)
	editUser(t, h.Store, func(u *store.User) { u.Roles = []string{server.AdminRole} })
	before, err := h.Store.GetUser(ctx, store.DefaultTenant, "u-alice")
	if err != nil {
		t.Fatal(err)
	}
	for name, req := range map[string][2]string{
		"PATCH": {"PATCH", patchOps(`{"op":"replace","path":"password","value":"attacker's choice 123"}`)},
		"PUT": {"PUT", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice","password":"attacker's choice 123",
			"name":{"formatted":"Alice Example"},"emails":[{"value":"alice@example.com"}]}`},
	} {
		r := scimDo(t, tok, req[0], base+"/Users/u-alice", req[1])
		if r.status != http.StatusForbidden {
			t.Errorf("%s: %d %v", name, r.status, r.body)
		}
	}
	after, err := h.Store.GetUser(ctx, store.DefaultTenant, "u-alice")
	if err != nil {
		t.Fatal(err)
	}
	if after.PasswordHash != before.PasswordHash {
		t.Fatal("a provisioning client changed an administrator's password")
	}
	r := scimDo(t, tok, "PATCH", base+"/Users/u-alice", patchOps(`{"op":"replace","path":"active","value":false}`))
	if u, _ := h.Store.GetUser(ctx, store.DefaultTenant, "u-alice"); r.status != 200 || !u.Disabled {
		t.Fatalf("deactivating an administrator: %d %v", r.status, r.body)
	}
}

// TestSCIMTokenLifetime: the provisioning token stops working when it
// expires (on the hub's moving clock), when the client revokes it, when
// the client is disabled, and a token of another hub for the same path
// is never taken; each refusal is a 401 challenge with a SCIM error.
func TestSCIMTokenLifetime(t *testing.T) {
	clk := newFakeClock()
	h := newHub(t, withClock(clk))
	other := newHub(t)
	base, tok := scimHub(t, h)
	_, otherTok := scimHub(t, other)
	refused := func(name, bearer string) {
		t.Helper()
		r := scimDo(t, bearer, "GET", base+"/Users", "")
		if r.status != http.StatusUnauthorized || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: %d %q %v", name, r.status, r.header.Get("WWW-Authenticate"), r.body)
		}
	}
	if r := scimDo(t, tok, "GET", base+"/Users", ""); r.status != 200 {
		t.Fatalf("fresh token: %d %v", r.status, r.body)
	}
	refused("another hub's token", otherTok)
	clk.Advance(time.Hour + time.Minute)
	refused("expired", tok)

	secret := h.AddClient(&store.Client{ID: "idp-2", GrantTypes: []string{"client_credentials"}, Scopes: []string{server.ScopeSCIM},
		RequestedScopes: []string{server.ScopeSCIM}, Tags: []string{"cc:" + server.ScopeSCIM}, DefaultResource: base})
	fresh := func() string {
		t.Helper()
		tok, err := adminToken(t, h, "idp-2", secret, base, server.ScopeSCIM)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	revoked := fresh()
	form := url.Values{"token": {revoked}}
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("idp-2", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	refused("revoked", revoked)
	live := fresh()
	if _, err := h.Store.UpdateClient(context.Background(), store.DefaultTenant, "idp-2", func(c *store.Client) error { c.Disabled = true; return nil }, nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(3 * time.Second) // past the client cache
	refused("a disabled client's", live)
}
