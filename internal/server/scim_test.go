package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

const scimError = "urn:ietf:params:scim:api:messages:2.0:Error"

// scimHub registers the SCIM endpoint as a resource with the sensitive
// agentid:scim scope and a provisioning client "idp" that may take it by
// client credentials, and returns the client's token.
func scimHub(t *testing.T, h *hub) (base, idpToken string) {
	t.Helper()
	base = h.URL + "/scim/v2"
	if err := h.Store.CreateResource(context.Background(), &store.Resource{
		TenantID: store.DefaultTenant, ID: "agentid-scim", URI: base, Name: "agentid SCIM", CreatedAt: time.Now(),
		Scopes: []store.Scope{
			{Name: server.ScopeSCIM, Description: "Provision people and groups", Sensitive: true},
			{Name: "scim.read", Description: "Not the SCIM scope"},
		},
	}, nil); err != nil {
		t.Fatal(err)
	}
	secret := h.AddClient(&store.Client{ID: "idp", GrantTypes: []string{"client_credentials"}, Scopes: []string{server.ScopeSCIM},
		RequestedScopes: []string{server.ScopeSCIM}, Tags: []string{"cc:" + server.ScopeSCIM}, DefaultResource: base})
	tok, err := adminToken(t, h, "idp", secret, base, server.ScopeSCIM)
	if err != nil {
		t.Fatal(err)
	}
	return base, tok
}

type scimResp struct {
	status int
	header http.Header
	body   map[string]any
}

// bearerDo sends a request with an optional bearer token and body and
// returns the response with its body read.
func bearerDo(t *testing.T, method, u, bearer, contentType, body string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

// scimDo sends a SCIM request and checks the media type (RFC 7644 §3.1)
// and, for errors, the §3.12 error body.
func scimDo(t *testing.T, bearer, method, u, body string) scimResp {
	t.Helper()
	ct := ""
	if body != "" {
		ct = "application/scim+json"
	}
	resp, raw := bearerDo(t, method, u, bearer, ct, body)
	r := scimResp{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode == http.StatusNoContent {
		return r
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/scim+json" {
		t.Fatalf("%s %s: %d with Content-Type %q: %s", method, u, resp.StatusCode, ct, raw)
	}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("%s %s: %v: %s", method, u, err, raw)
	}
	if resp.StatusCode >= 400 {
		if s, _ := r.body["schemas"].([]any); len(s) != 1 || s[0] != scimError || r.body["status"] != strconv.Itoa(resp.StatusCode) {
			t.Fatalf("%s %s: error body %v is not an RFC 7644 §3.12 error for %d", method, u, r.body, resp.StatusCode)
		}
	}
	return r
}

// member reports whether the user is in the group name in the store.
func member(t *testing.T, st store.Store, userID, name string) bool {
	t.Helper()
	u, err := st.GetUser(context.Background(), store.DefaultTenant, userID)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(u.Groups, name)
}

func memberIDs(r scimResp) []string {
	var ids []string
	for _, m := range asList(r.body["members"]) {
		ids = append(ids, m.(map[string]any)["value"].(string))
	}
	slices.Sort(ids)
	return ids
}

func asList(v any) []any { l, _ := v.([]any); return l }

func patchOps(ops ...string) string {
	return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[` + strings.Join(ops, ",") + `]}`
}

// TestSCIMProtocol runs RFC 7644's request examples against the
// endpoint: discovery (§4), creating a user (§3.3) and a group, the
// filter of §3.4.2.2 with pagination (§3.4.2.4), PATCH (§3.5.2: members
// add, remove by value filter, remove all; replace without a path;
// active), PUT (§3.5.1), DELETE (§3.6), and the §3.12 errors
// (uniqueness, mutability of the read-only groups, noTarget,
// invalidFilter, 404). Each write lands in the store, and its events
// name the provisioning client (actor scim).
func TestSCIMProtocol(t *testing.T) { forEachBackend(t, testSCIMProtocol) }

func testSCIMProtocol(t *testing.T, h *hub) {
	ctx := context.Background()
	base, tok := scimHub(t, h)
	do := func(method, path, body string) scimResp { t.Helper(); return scimDo(t, tok, method, base+path, body) }

	t.Run("discovery", func(t *testing.T) {
		r := do("GET", "/ServiceProviderConfig", "")
		if r.status != 200 || r.body["patch"].(map[string]any)["supported"] != true || r.body["filter"].(map[string]any)["supported"] != true {
			t.Fatalf("ServiceProviderConfig: %d %v", r.status, r.body)
		}
		if s := asList(r.body["authenticationSchemes"]); len(s) != 1 || s[0].(map[string]any)["type"] != "oauthbearertoken" {
			t.Fatalf("authenticationSchemes %v", r.body["authenticationSchemes"])
		}
		r = do("GET", "/ResourceTypes", "")
		if r.status != 200 || r.body["totalResults"] != float64(2) {
			t.Fatalf("ResourceTypes: %d %v", r.status, r.body)
		}
		r = do("GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", "")
		if r.status != 200 || r.body["id"] != "urn:ietf:params:scim:schemas:core:2.0:User" {
			t.Fatalf("User schema: %d %v", r.status, r.body)
		}
	})

	// §3.3's example, verbatim.
	r := do("POST", "/Users", `{
     "schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
     "userName":"bjensen",
     "externalId":"bjensen",
     "name":{
       "formatted":"Ms. Barbara J Jensen III",
       "familyName":"Jensen",
       "givenName":"Barbara"
     }
   }`)
	if r.status != http.StatusCreated {
		t.Fatalf("create user: %d %v", r.status, r.body)
	}
	bj := r.body["id"].(string)
	meta := r.body["meta"].(map[string]any)
	if loc := base + "/Users/" + bj; r.header.Get("Location") != loc || meta["location"] != loc || meta["resourceType"] != "User" ||
		meta["created"] == nil || meta["lastModified"] == nil || r.body["externalId"] != "bjensen" || r.body["active"] != true || r.body["userName"] != "bjensen" {
		t.Fatalf("created user: Location %q, %v", r.header.Get("Location"), r.body)
	}
	u, err := h.Store.GetUser(ctx, store.DefaultTenant, bj)
	if err != nil || u.Username != "bjensen" || u.Name != "Ms. Barbara J Jensen III" || u.Disabled || u.PasswordHash != "" {
		t.Fatalf("stored user %+v, %v", u, err)
	}
	wantSCIMEvent(t, h.Store, audit.UserCreated, bj, "")

	t.Run("uniqueness", func(t *testing.T) {
		r := do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bjensen"}`)
		if r.status != http.StatusConflict || r.body["scimType"] != "uniqueness" {
			t.Fatalf("duplicate userName: %d %v", r.status, r.body)
		}
		r = do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"Barbara Jensen"}`)
		if r.status != http.StatusBadRequest || r.body["scimType"] != "invalidValue" {
			t.Fatalf("a userName the hub cannot take: %d %v", r.status, r.body)
		}
	})

	var others []string
	for _, n := range []string{"jsmith", "mlee"} {
		r := do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"`+n+`","emails":[{"value":"`+n+`@example.com","primary":true}]}`)
		if r.status != http.StatusCreated {
			t.Fatalf("create %s: %d %v", n, r.status, r.body)
		}
		others = append(others, r.body["id"].(string))
	}

	t.Run("filter and pages", func(t *testing.T) {
		// §3.4.2.2: operators are case-insensitive, userName's values too.
		r := do("GET", "/Users?filter="+url.QueryEscape(`userName Eq "BJensen"`), "")
		if r.status != 200 || r.body["totalResults"] != float64(1) || asList(r.body["Resources"])[0].(map[string]any)["id"] != bj {
			t.Fatalf("filter: %d %v", r.status, r.body)
		}
		r = do("GET", "/Users?filter="+url.QueryEscape(`emails[value co "@example.com"] and active eq true`), "")
		if r.status != 200 || r.body["totalResults"] != float64(3) { // alice, jsmith, mlee
			t.Fatalf("filter on emails: %d %v", r.status, r.body)
		}
		all := do("GET", "/Users", "")
		n := int(all.body["totalResults"].(float64))
		if n < 4 { // alice, bjensen, jsmith, mlee
			t.Fatalf("list: %v", all.body)
		}
		r = do("GET", "/Users?startIndex=2&count=1", "")
		if r.status != 200 || r.body["totalResults"] != float64(n) || r.body["startIndex"] != float64(2) || r.body["itemsPerPage"] != float64(1) ||
			asList(r.body["Resources"])[0].(map[string]any)["id"] != asList(all.body["Resources"])[1].(map[string]any)["id"] {
			t.Fatalf("page 2 of 1: %v", r.body)
		}
		for _, f := range []string{`userName eq`, `name eq ""`} {
			r = do("GET", "/Users?filter="+url.QueryEscape(f), "")
			if r.status != 400 || r.body["scimType"] != "invalidFilter" {
				t.Fatalf("filter %s: %d %v", f, r.status, r.body)
			}
		}
	})

	// A group with a member, then §3.5.2.1's add and §3.5.2.2's removes.
	// Alice had the name from the CLI: a group is created with exactly
	// the members given.
	editUser(t, h.Store, func(u *store.User) { u.Groups = []string{"Tour Guides"} })
	r = do("POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Tour Guides",
		"members":[{"value":"`+bj+`","$ref":"`+base+`/Users/`+bj+`","display":"Babs Jensen"}]}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create group: %d %v", r.status, r.body)
	}
	g := r.body["id"].(string)
	if !slices.Equal(memberIDs(r), []string{bj}) || !member(t, h.Store, bj, "Tour Guides") || member(t, h.Store, "u-alice", "Tour Guides") {
		t.Fatalf("created group %v", r.body)
	}
	wantSCIMEvent(t, h.Store, audit.UserUpdated, bj, "groups")
	if r := do("GET", "/Users/"+bj, ""); asList(r.body["groups"])[0].(map[string]any)["value"] != g {
		t.Fatalf("user's read-only groups: %v", r.body["groups"])
	}
	r = do("PATCH", "/Groups/"+g, patchOps(`{"op":"add","path":"members","value":[{"display":"John Smith","$ref":"`+base+`/Users/`+others[0]+`","value":"`+others[0]+`"}]}`))
	if r.status != 200 || !slices.Equal(memberIDs(r), sorted(bj, others[0])) || !member(t, h.Store, others[0], "Tour Guides") {
		t.Fatalf("PATCH add member: %d %v", r.status, r.body)
	}
	r = do("PATCH", "/Groups/"+g, patchOps(`{"op":"remove","path":"members[value eq \"`+bj+`\"]"}`))
	if r.status != 200 || !slices.Equal(memberIDs(r), []string{others[0]}) || member(t, h.Store, bj, "Tour Guides") {
		t.Fatalf("PATCH remove member: %d %v", r.status, r.body)
	}
	wantSCIMEvent(t, h.Store, audit.UserUpdated, bj, "groups")
	r = do("PATCH", "/Groups/"+g, patchOps(`{"op":"replace","path":"members","value":[{"value":"`+others[1]+`"}]}`, `{"op":"replace","path":"displayName","value":"Guides"}`))
	if r.status != 200 || !slices.Equal(memberIDs(r), []string{others[1]}) || r.body["displayName"] != "Guides" ||
		member(t, h.Store, others[0], "Tour Guides") || !member(t, h.Store, others[1], "Guides") {
		t.Fatalf("PATCH replace members and rename: %d %v", r.status, r.body)
	}
	r = do("PATCH", "/Groups/"+g, patchOps(`{"op":"remove","path":"members"}`))
	if r.status != 200 || len(memberIDs(r)) != 0 || member(t, h.Store, others[1], "Guides") {
		t.Fatalf("PATCH remove all members: %d %v", r.status, r.body)
	}
	if r := do("GET", "/Groups?filter="+url.QueryEscape(`displayName eq "Guides"`), ""); r.body["totalResults"] != float64(1) {
		t.Fatalf("group filter: %v", r.body)
	}

	t.Run("patch user", func(t *testing.T) {
		// §3.5.2.3's replace without a path (nickname is not kept).
		r := do("PATCH", "/Users/"+bj, patchOps(`{"op":"replace","value":{"emails":[{"value":"bjensen@example.com","type":"work","primary":true}],"nickname":"Babs"}}`))
		if r.status != 200 || asList(r.body["emails"])[0].(map[string]any)["value"] != "bjensen@example.com" {
			t.Fatalf("replace emails: %d %v", r.status, r.body)
		}
		r = do("PATCH", "/Users/"+bj, patchOps(`{"op":"replace","path":"name.givenName","value":"Babs"}`, `{"op":"remove","path":"name.formatted"}`))
		if u, _ := h.Store.GetUser(ctx, store.DefaultTenant, bj); r.status != 200 || u.Name != "Babs" || u.Email != "bjensen@example.com" {
			t.Fatalf("name patch: %d %v; stored %+v", r.status, r.body, u)
		}
		r = do("PATCH", "/Users/"+bj, patchOps(`{"op":"replace","path":"displayName","value":"Babs Jensen"}`))
		if u, _ := h.Store.GetUser(ctx, store.DefaultTenant, bj); r.status != 200 || u.Name != "Babs Jensen" || r.body["displayName"] != "Babs Jensen" {
			t.Fatalf("displayName patch: %d %v; stored %+v", r.status, r.body, u)
		}
		for name, op := range map[string]string{
			"groups are read-only":    `{"op":"add","path":"groups","value":[{"value":"` + g + `"}]}`,
			"id is read-only":         `{"op":"replace","path":"id","value":"x"}`,
			"no such email":           `{"op":"replace","path":"emails[type eq \"home\"].value","value":"x@example.com"}`,
			"an email taken":          `{"op":"replace","path":"emails","value":[{"value":"jsmith@example.com"}]}`,
			"active is a boolean":     `{"op":"replace","path":"active","value":"sometimes"}`,
			"no userName left":        `{"op":"remove","path":"userName"}`,
			"an unknown attribute":    `{"op":"replace","path":"shoeSize","value":"9"}`,
			"a path that won't parse": `{"op":"remove","path":"emails[type eq"}`,
		} {
			r := do("PATCH", "/Users/"+bj, patchOps(op))
			if r.status/100 != 4 {
				t.Errorf("%s: %d %v", name, r.status, r.body)
			}
		}
		if r := do("PATCH", "/Users/"+bj, patchOps(`{"op":"add","path":"groups","value":[{"value":"`+g+`"}]}`)); r.body["scimType"] != "mutability" {
			t.Errorf("groups on a user: %v", r.body)
		}
		if r := do("PATCH", "/Users/"+bj, patchOps(`{"op":"replace","path":"emails[type eq \"home\"].value","value":"x@example.com"}`)); r.body["scimType"] != "noTarget" {
			t.Errorf("filter matching nothing: %v", r.body)
		}
	})

	t.Run("put", func(t *testing.T) {
		r := do("PUT", "/Users/"+others[0], `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"jsmith","externalId":"e-7",
			"name":{"givenName":"John","familyName":"Smith"},"active":true}`)
		u, _ := h.Store.GetUser(ctx, store.DefaultTenant, others[0])
		if r.status != 200 || r.body["externalId"] != "e-7" || u.Username != "jsmith" || u.Name != "John Smith" || u.Email != "" {
			t.Fatalf("PUT: %d %v; stored %+v", r.status, r.body, u)
		}
		r = do("PUT", "/Users/"+others[0], `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bjensen"}`)
		if r.status != http.StatusBadRequest || r.body["scimType"] != "mutability" {
			t.Fatalf("PUT with another userName: %d %v", r.status, r.body)
		}
	})

	t.Run("delete", func(t *testing.T) {
		do("PATCH", "/Groups/"+g, patchOps(`{"op":"add","path":"members","value":[{"value":"`+bj+`"}]}`))
		if r := do("DELETE", "/Groups/"+g, ""); r.status != http.StatusNoContent || member(t, h.Store, bj, "Guides") {
			t.Fatalf("DELETE group: %d", r.status)
		}
		if r := do("GET", "/Groups/"+g, ""); r.status != 404 {
			t.Fatalf("deleted group: %d", r.status)
		}
		// The group's own events, oldest first, by the SCIM client.
		evs, err := h.Store.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, TypePrefix: "group.", Ascending: true})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ev := range evs {
			if ev.Details["group_id"] != g || ev.Details["actor"] != audit.ActorSCIM || ev.Details["actor_id"] != "idp" {
				t.Fatalf("group event %s %v", ev.Type, ev.Details)
			}
			got = append(got, ev.Type+" "+ev.Details["change"]+" "+ev.Details["group"]+" "+ev.Details["previous_group"])
		}
		want := []string{"group.created  Tour Guides ", "group.updated members Tour Guides ", "group.updated members Tour Guides ",
			"group.updated renamed Guides Tour Guides", "group.updated members Guides ", "group.updated members Guides ", "group.deleted  Guides "}
		if !slices.Equal(got, want) {
			t.Fatalf("group events\n%q\nwant\n%q", got, want)
		}
		if r := do("DELETE", "/Users/"+bj, ""); r.status != http.StatusNoContent {
			t.Fatalf("DELETE user: %d %v", r.status, r.body)
		}
		for _, m := range []string{"GET", "DELETE"} {
			if r := do(m, "/Users/"+bj, ""); r.status != 404 {
				t.Fatalf("%s deleted user: %d", m, r.status)
			}
		}
		if r := do("GET", "/Users?filter="+url.QueryEscape(`userName eq "bjensen"`), ""); r.body["totalResults"] != float64(0) {
			t.Fatalf("a deleted user listed: %v", r.body)
		}
		if u, _ := h.Store.GetUser(ctx, store.DefaultTenant, bj); !u.Disabled {
			t.Fatal("a deleted user is not disabled")
		}
		wantSCIMEvent(t, h.Store, audit.UserAccessRevoked, bj, "")
	})
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// wantSCIMEvent finds the newest event of type typ about userID (with
// details change, if given) and checks it names the SCIM client.
func wantSCIMEvent(t *testing.T, st store.Store, typ, userID, change string) {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{TenantID: store.DefaultTenant, UserID: userID, Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs { // newest first
		if change != "" && ev.Details["change"] != change {
			continue
		}
		if ev.Details["actor"] != audit.ActorSCIM || ev.Details["actor_id"] != "idp" {
			t.Fatalf("%s event for %s: actor %q %q, want scim idp", typ, userID, ev.Details["actor"], ev.Details["actor_id"])
		}
		return
	}
	t.Fatalf("no %s event (change %q) for %s", typ, change, userID)
}

// TestSCIMOffboarding: people and groups provisioned by SCIM decide what
// agents get, and a deactivation by SCIM ends everything mid-session. A
// person created by SCIM signs in and authorizes an agent; their SCIM
// group eng-oncall is what lets policy grant deploy.write; PATCHing them
// out of the group drops the scope at the very next refresh (the hub
// forgets its cached copy of the person) and back in restores it; PATCHing active to false then at once revokes the consent,
// the refresh token (invalid_grant), the access token (introspection
// inactive) and the browser session (the account page asks to sign in),
// with events naming the SCIM client. Reactivating enables the account
// but brings nothing back.
func TestSCIMOffboarding(t *testing.T) { forEachPolicyBackend(t, testSCIMOffboarding) }

func testSCIMOffboarding(t *testing.T, h *policyHub) {
	ctx := context.Background()
	secret, rsSecret := workforceHub(t, h)
	base, tok := scimHub(t, h.hub)
	do := func(method, path, body string) scimResp { t.Helper(); return scimDo(t, tok, method, base+path, body) }

	const pw = "correct horse battery staple"
	r := do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"carol","password":"`+pw+`",
		"name":{"givenName":"Carol","familyName":"Ng"},"emails":[{"value":"carol@example.com","primary":true}]}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create carol: %d %v", r.status, r.body)
	}
	if _, ok := r.body["password"]; ok {
		t.Fatal("the response returns the password")
	}
	carol := r.body["id"].(string)
	r = do("POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"eng-oncall","members":[{"value":"`+carol+`"}]}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create eng-oncall: %d %v", r.status, r.body)
	}
	oncall := r.body["id"].(string)
	h.settle()

	both := []string{"deploy.read", "deploy.write"}
	b := h.Browser()
	offered, tk := h.authorizeAs(t, b, h.oauth2Config("agent-1", secret, both...), h.Resource, "carol", pw)
	if !slices.Equal(offered, both) || jwtClaims(t, tk.AccessToken)["scope"] != "deploy.read deploy.write" {
		t.Fatalf("an on-call member was offered %v and got %v", offered, jwtClaims(t, tk.AccessToken)["scope"])
	}
	refresh := func(rt string) jsonResp {
		t.Helper()
		return h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "agent-1", secret)
	}

	// Out of the group by SCIM, then back in.
	if r := do("PATCH", "/Groups/"+oncall, patchOps(`{"op":"remove","path":"members[value eq \"`+carol+`\"]"}`)); r.status != 200 {
		t.Fatalf("remove from eng-oncall: %d %v", r.status, r.body)
	}
	// No settling: the hub forgets its cached copy of the person at once.
	rr := refresh(tk.RefreshToken)
	if rr.status != 200 || rr.body["scope"] != "deploy.read" {
		t.Fatalf("refresh after leaving eng-oncall: %d %v", rr.status, rr.body)
	}
	checkDecisions(t, lastIssued(t, h.Store, "agent-1"), map[string]string{
		"deploy.read": "granted:user-consent", "deploy.write": "denied:deploy-write-oncall-only",
	})
	if r := do("PATCH", "/Groups/"+oncall, patchOps(`{"op":"add","path":"members","value":[{"value":"`+carol+`"}]}`)); r.status != 200 {
		t.Fatalf("add to eng-oncall: %d %v", r.status, r.body)
	}
	rr = refresh(rr.body["refresh_token"].(string))
	if rr.status != 200 || rr.body["scope"] != "deploy.read deploy.write" {
		t.Fatalf("refresh after rejoining eng-oncall: %d %v", rr.status, rr.body)
	}
	access, rt := rr.body["access_token"].(string), rr.body["refresh_token"].(string)
	if a := b.Get(h.URL + "/account"); strings.Contains(a.Body, `action="/login"`) {
		t.Fatal("no session before the deactivation")
	}

	// Deactivated mid-session.
	r = do("PATCH", "/Users/"+carol, patchOps(`{"op":"replace","path":"active","value":false}`))
	if r.status != 200 || r.body["active"] != false {
		t.Fatalf("deactivate: %d %v", r.status, r.body)
	}
	if rr := refresh(rt); rr.status != http.StatusBadRequest || rr.body["error"] != "invalid_grant" {
		t.Fatalf("refresh after deactivation: %d %v", rr.status, rr.body)
	}
	if in := h.introspect(access, "mcp-rs", rsSecret); in["active"] != false {
		t.Fatalf("introspection after deactivation: %v", in)
	}
	grants, err := h.Store.ListConsents(ctx, store.ConsentFilter{TenantID: store.DefaultTenant, UserID: carol})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range grants {
		if g.Live(h.clock.Now()) {
			t.Fatalf("a consent outlived the deactivation: %+v", g)
		}
	}
	if a := b.Get(h.URL + "/account"); !strings.Contains(a.Body, `action="/login"`) {
		t.Fatalf("the browser session outlived the deactivation: %d", a.Status)
	}
	wantSCIMEvent(t, h.Store, audit.UserUpdated, carol, audit.ChangeDisabled)
	wantSCIMEvent(t, h.Store, audit.UserAccessRevoked, carol, "")
	wantSCIMEvent(t, h.Store, audit.ConsentRevoked, carol, "")

	// A PUT that leaves active out keeps the person offboarded.
	if r := do("PUT", "/Users/"+carol, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"carol","name":{"formatted":"Carol Ng"}}`); r.status != 200 || r.body["active"] != false {
		t.Fatalf("PUT without active: %d %v", r.status, r.body)
	}

	// Active again: the person may sign in; what was revoked stays so.
	if r := do("PATCH", "/Users/"+carol, patchOps(`{"op":"replace","value":{"active":true}}`)); r.status != 200 || r.body["active"] != true {
		t.Fatalf("reactivate: %d %v", r.status, r.body)
	}
	if rr := refresh(rt); rr.status != http.StatusBadRequest {
		t.Fatalf("an old refresh token after reactivation: %d %v", rr.status, rr.body)
	}
	wantSCIMEvent(t, h.Store, audit.UserUpdated, carol, audit.ChangeEnabled)
}

// TestSCIMRefusedTokens: only the hub's own token for the SCIM resource
// with agentid:scim, of a live client acting for itself, is let in; the
// refusals are RFC 6750 challenges with SCIM error bodies.
func TestSCIMRefusedTokens(t *testing.T) {
	h := newHub(t)
	base, good := scimHub(t, h)
	adminURI, adminSecret := adminHub(t, h)
	adminTok, err := adminToken(t, h, "siem", adminSecret, adminURI, server.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	readSecret := h.AddClient(&store.Client{ID: "reader", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:scim.read"}, DefaultResource: base})
	readTok, err := adminToken(t, h, "reader", readSecret, base, "scim.read")
	if err != nil {
		t.Fatal(err)
	}
	// A self-registered agent tagged for the scope gets no token: the
	// sensitive scope is kept from it.
	dcrSecret := h.AddClient(&store.Client{ID: "self-made", RegistrationMethod: store.RegistrationDCR, GrantTypes: []string{"client_credentials"},
		Tags: []string{"cc:" + server.ScopeSCIM}, DefaultResource: base})
	if tok, err := adminToken(t, h, "self-made", dcrSecret, base, server.ScopeSCIM); err == nil {
		t.Errorf("a self-registered client got a SCIM token: %s", tok)
	}
	// A token a person delegated to an agent for the SCIM resource, with
	// the scope: the person's consent does not make the agent a
	// provisioning client.
	agentSecret := h.AddClient(&store.Client{ID: "agent-x", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	_, delegated := h.authorizeAs(t, h.Browser(), h.oauth2Config("agent-x", agentSecret, server.ScopeSCIM), base, servertest.TestUser, servertest.TestPassword)
	if c := jwtClaims(t, delegated.AccessToken); c["scope"] != server.ScopeSCIM || c["sub"] == "agent-x" {
		t.Fatalf("the delegated token: %v", c)
	}

	tests := []struct {
		name, bearer string
		status       int
		challenge    string
	}{
		{"no token", "", 401, `Bearer realm="agentid"`},
		{"garbage", "not-a-jwt", 401, `error="invalid_token"`},
		{"the admin API's token", adminTok, 401, `error="invalid_token"`},
		{"without the scope", readTok, 403, `error="insufficient_scope"`},
		{"delegated by a person", delegated.AccessToken, 403, `error="insufficient_scope"`},
		{"good", good, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := scimDo(t, tc.bearer, "GET", base+"/Users", "")
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %v", r.status, tc.status, r.body)
			}
			got := r.header.Get("WWW-Authenticate")
			if !strings.Contains(got, tc.challenge) || (tc.bearer == "" && strings.Contains(got, "error=")) {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if tc.status == 403 && !strings.Contains(got, `scope="agentid:scim"`) {
				t.Errorf("WWW-Authenticate %q does not name the scope", got)
			}
		})
	}
}

// TestSCIMConcurrentMembership: PATCHes that add one person to several
// groups at once all land (a membership change rewrites the person's
// groups; the handler serializes its writes).
func TestSCIMConcurrentMembership(t *testing.T) {
	h := newHub(t)
	base, tok := scimHub(t, h)
	r := scimDo(t, tok, "POST", base+"/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"dana"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %v", r.status, r.body)
	}
	dana := r.body["id"].(string)
	const n = 8
	ids := make([]string, n)
	for i := range ids {
		r := scimDo(t, tok, "POST", base+"/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"team-`+strconv.Itoa(i)+`"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("create group: %d %v", r.status, r.body)
		}
		ids[i] = r.body["id"].(string)
	}
	var wg sync.WaitGroup
	status := make([]int, n)
	for i, g := range ids {
		wg.Go(func() {
			_, raw := bearerDo(t, "PATCH", base+"/Groups/"+g, tok, "application/scim+json", patchOps(`{"op":"add","path":"members","value":[{"value":"`+dana+`"}]}`))
			var body map[string]any
			_ = json.Unmarshal(raw, &body)
			status[i] = len(asList(body["members"]))
		})
	}
	wg.Wait()
	u, err := h.Store.GetUser(context.Background(), store.DefaultTenant, dana)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Groups) != n {
		t.Fatalf("after %d concurrent adds dana is in %v (answers' member counts %v)", n, u.Groups, status)
	}
}
