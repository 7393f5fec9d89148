package server_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
)

// TestDedupSquatterLosesControl: the first registrant of a
// piece of software holds the registration access token of the client that
// deduplication later hands to every other installation of that software.
// With it the squatter can rewrite the shared client (add its own redirect
// URI, rename it) or delete it, for everyone who was deduplicated onto it
// and whose consents it now inherits.
func TestDedupSquatterLosesControl(t *testing.T) {
	h := newGovHub(t, nil)
	first := h.register("192.0.2.1", nativeClient("Popular Agent", 50000))
	if first.status != http.StatusCreated {
		t.Fatalf("squatter: %d %v", first.status, first.body)
	}
	id := first.body["client_id"].(string)
	rat := first.body["registration_access_token"].(string)
	victim := h.register("198.51.100.7", nativeClient("Popular Agent", 50001))
	if victim.body["client_id"] != id {
		t.Skipf("not deduplicated: %v", victim.body)
	}
	md := nativeClient("Popular Agent", 50000)
	md["client_id"] = id
	md["redirect_uris"] = []string{"http://127.0.0.1:50000/callback", "https://attacker.example/cb"}
	r := h.jsonRequest(http.MethodPut, "/register/"+id, md, rat)
	if r.status == http.StatusOK {
		t.Errorf("the first registrant rewrote the client other installations were deduplicated onto: %v", r.body["redirect_uris"])
	}
}

// TestUpdateMeetsRegistrationLimits: RFC 7592 update skips the limits
// applied at registration (redirect URI count and length, name length).
func TestUpdateMeetsRegistrationLimits(t *testing.T) {
	h := newGovHub(t, nil)
	r := h.register("192.0.2.1", nativeClient("Updater", 50000))
	id, rat := r.body["client_id"].(string), r.body["registration_access_token"].(string)
	many := make([]string, 15)
	for i := range many {
		many[i] = fmt.Sprintf("http://127.0.0.1/cb%d", i)
	}
	md := nativeClient("Updater", 50000)
	md["client_id"] = id
	md["redirect_uris"] = many
	u := h.jsonRequest(http.MethodPut, "/register/"+id, md, rat)
	t.Logf("update: %d %v", u.status, u.body)
	if u.status == http.StatusOK {
		t.Errorf("update accepted 15 redirect URIs (registration allows 10)")
	}
}

// TestUpdateDropsStatementIssuer: a client registered with a trusted
// software statement keeps SoftwareStatementIssuer (what policy's
// software_issuer sees) after an RFC 7592 update that replaces the
// statement's claims with anything.
func TestUpdateDropsStatementIssuer(t *testing.T) {
	good := newStatementIssuer(t, "https://software.example")
	h := newGovHub(t, &server.RegistrationConfig{Statements: good.statements(t, nil)})
	md := nativeClient("Request Name", 1)
	md["software_statement"] = good.sign(t, map[string]any{
		"software_id": "sw-stmt", "client_name": "Statement Name", "exp": time.Now().Add(time.Hour).Unix(),
	})
	r := h.register("192.0.2.1", md)
	id, rat := r.body["client_id"].(string), r.body["registration_access_token"].(string)
	upd := nativeClient("Not The Attested App", 1)
	upd["client_id"] = id
	upd["software_id"] = "something-else"
	u := h.jsonRequest(http.MethodPut, "/register/"+id, upd, rat)
	c, err := h.Store.GetClient(context.Background(), store.DefaultTenant, id)
	if err != nil {
		t.Fatal(err)
	}
	if u.status == http.StatusOK && c.SoftwareStatementIssuer != "" && c.Name != "Statement Name" {
		t.Errorf("after update the client is %q / %q but still attested by %s", c.Name, c.SoftwareID, c.SoftwareStatementIssuer)
	}
}

// TestCIMDFloodFromOneAddress: with dynamic registration off and a
// per-address limit of 2, one anonymous address still makes the hub fetch
// and store a new client (and a client.registered event) for every
// distinct metadata-document URL it names at /authorize: CIMD first
// sight is a registration that no rate limit, mode or hold policy governs.
func TestCIMDFloodFromOneAddress(t *testing.T) {
	d := newDocHost(t)
	h, _ := cimdHub(t, d, func(c *server.Config) {
		c.Registration = &server.RegistrationConfig{Disabled: true, PerIP: server.LoginLimit{PerMinute: 1, Burst: 2}, Total: server.LoginLimit{PerMinute: 1, Burst: 2}}
	})
	const n = 20
	for i := range n {
		id := d.url(fmt.Sprintf("/c%d.json", i))
		d.put(fmt.Sprintf("/c%d.json", i), clientDoc(id, redirectURI), "")
		resp, err := http.Get(authorizeURL(h, id, redirectURI))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	all, err := h.Store.ListClients(context.Background(), store.DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	cimd := 0
	for _, c := range all {
		if c.RegistrationMethod == store.RegistrationCIMD {
			cimd++
		}
	}
	if cimd > 2 {
		t.Errorf("%d metadata-document clients stored from one address with registration off and a limit of 2", cimd)
	}
}

// TestUpdateScreenedByRejectPolicy: an RFC 7592 update is not screened by
// the reject (or hold) policies: a client registered with an approved
// statement updates itself into what registration would refuse.
func TestUpdateScreenedByRejectPolicy(t *testing.T) {
	iss := newStatementIssuer(t, "https://software.example")
	h := newGovHub(t, &server.RegistrationConfig{Statements: iss.statements(t, nil)})
	applyPolicy(t, h.Store, h.engine, `@id("require-statement")
permit (principal, action == Action::"reject", resource)
when { !(context has software_issuer) };

@id("no-beta")
permit (principal, action == Action::"reject", resource)
when { principal.software_id == "sw-beta" };`)
	h.settle()
	md := nativeClient("Attested Agent", 1)
	md["software_statement"] = iss.sign(t, map[string]any{"software_id": "sw-attested"})
	r := h.register("192.0.2.1", md)
	if r.status != http.StatusCreated {
		t.Fatalf("with a statement: %d %v", r.status, r.body)
	}
	id, rat := r.body["client_id"].(string), r.body["registration_access_token"].(string)
	upd := nativeClient("Beta Agent", 1)
	upd["client_id"] = id
	upd["software_id"] = "sw-beta"
	if u := h.jsonRequest(http.MethodPut, "/register/"+id, upd, rat); u.status == http.StatusOK {
		t.Errorf("update to an unattested sw-beta client accepted (registration refuses it by require-statement and no-beta)")
	}
}
