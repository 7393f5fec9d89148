package policy

import (
	"slices"
	"testing"

	"github.com/agentid/agentid/internal/store"
)

// TestScreen: hold and reject are decided per scope of the registration;
// a permit on any scope decides, context.software_issuer is seen, and the
// default set's forbid on sensitive scopes does not cancel them.
func TestScreen(t *testing.T) {
	files := DefaultFiles()
	files["gov.cedar"] = `@id("hold-unattested")
permit (principal, action == Action::"hold", resource)
when { principal.registration_method == "dcr" && !(context has software_issuer) };

@id("reject-mail")
permit (principal, action == Action::"reject", resource)
when { resource.name == "mail:send" && context has software_issuer && context.software_issuer == "https://bad.example" };`
	s, err := Compile(files)
	if err != nil {
		t.Fatal(err)
	}
	dcr := func(scopes ...string) *store.Client {
		return &store.Client{ID: "c", TenantID: store.DefaultTenant, RegistrationMethod: store.RegistrationDCR, RequestedScopes: scopes}
	}
	tests := []struct {
		name       string
		client     *store.Client
		issuer     string
		hold       bool
		reject     []string
		holdByWant []string
	}{
		{name: "unattested is held", client: dcr("files:read", "files:write"), hold: true, holdByWant: []string{"hold-unattested"}},
		{name: "held on a sensitive scope alone", client: dcr("files:delete"), hold: true, holdByWant: []string{"hold-unattested"}},
		{name: "attested is not held", client: dcr("files:read"), issuer: "https://good.example"},
		{name: "rejected by issuer on one scope", client: dcr("files:read", "mail:send"), issuer: "https://bad.example", reject: []string{"reject-mail"}},
		{name: "other issuer not rejected", client: dcr("files:read", "mail:send"), issuer: "https://good.example"},
		{name: "manual is not held", client: &store.Client{ID: "m", TenantID: store.DefaultTenant, RegistrationMethod: store.RegistrationManual, RequestedScopes: []string{"files:read"}}},
		{name: "no scopes, no verdict", client: dcr()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := s.Screen(tt.client, ceilingResources(), Context{SoftwareIssuer: tt.issuer})
			if err != nil {
				t.Fatal(err)
			}
			if sc.Hold != tt.hold || !slices.Equal(sc.HoldPolicies, tt.holdByWant) {
				t.Errorf("hold %v by %v, want %v by %v", sc.Hold, sc.HoldPolicies, tt.hold, tt.holdByWant)
			}
			if sc.Reject != (len(tt.reject) > 0) || !slices.Equal(sc.RejectPolicies, tt.reject) {
				t.Errorf("reject %v by %v, want %v", sc.Reject, sc.RejectPolicies, tt.reject)
			}
		})
	}
	// The default set alone holds and rejects nothing.
	d := defaultSet(t)
	sc, err := d.Screen(dcr("files:read", "files:delete", "mail:send"), ceilingResources(), Context{})
	if err != nil || sc.Hold || sc.Reject {
		t.Errorf("default set: %+v %v", sc, err)
	}
	// software_issuer is optional: a policy must test it with has.
	bad := DefaultFiles()
	bad["x.cedar"] = `permit (principal, action == Action::"hold", resource) when { context.software_issuer == "x" };`
	if err := Validate(bad); err == nil {
		t.Error("a policy reading context.software_issuer without has validated")
	}
}

// TestCeilingSeesSoftwareIssuer: a register policy reading
// context.software_issuer decides the same when the ceiling is recomputed
// later (from the stored client) as at registration.
func TestCeilingSeesSoftwareIssuer(t *testing.T) {
	files := DefaultFiles()
	files["sw.cedar"] = `@id("attested-only")
forbid (principal, action == Action::"register", resource)
unless { context has software_issuer };`
	s, err := Compile(files)
	if err != nil {
		t.Fatal(err)
	}
	c := &store.Client{ID: "c", TenantID: store.DefaultTenant, RegistrationMethod: store.RegistrationDCR, RequestedScopes: []string{"files:read"}}
	cl, err := s.Ceiling(c, ceilingResources(), Context{})
	if err != nil || len(cl.Scopes) != 0 {
		t.Fatalf("unattested ceiling %v (%v), want none", cl.Scopes, err)
	}
	c.SoftwareStatementIssuer = "https://sw.example"
	cl, err = s.Ceiling(c, ceilingResources(), Context{})
	if err != nil || !slices.Equal(cl.Scopes, []string{"files:read"}) {
		t.Fatalf("attested ceiling %v (%v), want files:read", cl.Scopes, err)
	}
}
