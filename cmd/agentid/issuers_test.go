package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// issuerTestJWKS is a public key set written with extra whitespace and a
// member go-jose drops, to show the stored set is re-encoded.
const issuerTestJWKS = `{
  "keys": [
    {"use":"sig","kty":"EC","kid":"idp-2026","crv":"P-256","alg":"ES256",
     "x":"5xXeYs-y6N89-bXQbaKDYw8Co8DuYIGAnhenibJzurA","y":"JnWnGCR9mimuByYJfd05QMGftyZrIxCTvChPn1TtVSU"}
  ],
  "comment": "exported from the IdP"
}`

// TestIssuersAuditCarriesNoKeys: adding, disabling and deleting an issuer
// with a static key set writes issuer.added, issuer.updated and
// issuer.deleted, attributed to the CLI, naming the key set by its kids and
// digest but never carrying a coordinate of a key; the store holds the set
// re-encoded, public keys only.
func TestIssuersAuditCarriesNoKeys(t *testing.T) {
	work := t.TempDir()
	dir := filepath.Join(work, "data")
	env := map[string]string{"AGENTID_DATA_DIR": dir}
	keys := filepath.Join(work, "jwks.json")
	if err := os.WriteFile(keys, []byte(issuerTestJWKS), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"issuers", "add", "acme", "--issuer", "https://idp.acme.example", "--jwks-file", keys, "--use", "id_jag"},
		{"issuers", "disable", "acme"},
		{"issuers", "delete", "acme"},
	} {
		if code, stdout, stderr := runCLI(t, env, args...); code != 0 {
			t.Fatalf("%v: %d\n%s%s", args, code, stdout, stderr)
		}
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "agentid.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ev := range evs {
		if !strings.HasPrefix(ev.Type, "issuer.") {
			continue
		}
		seen[ev.Type] = true
		if err := audit.Check(ev); err != nil {
			t.Errorf("%s: %v", ev.Type, err)
		}
		if ev.Details["actor"] != audit.ActorCLI || ev.Details["issuer_id"] != "acme" {
			t.Errorf("%s details = %v", ev.Type, ev.Details)
		}
		for k, v := range ev.Details {
			if strings.Contains(v, "5xXeYs") || strings.Contains(v, "JnWnGC") {
				t.Errorf("%s detail %s carries key material: %q", ev.Type, k, v)
			}
		}
		if ev.Type != audit.IssuerDeleted && (ev.Details["kids"] != "idp-2026" || len(ev.Details["jwks_sha256"]) != 64) {
			t.Errorf("%s names the key set as kids %q, digest %q", ev.Type, ev.Details["kids"], ev.Details["jwks_sha256"])
		}
	}
	for _, typ := range []string{audit.IssuerAdded, audit.IssuerUpdated, audit.IssuerDeleted} {
		if !seen[typ] {
			t.Errorf("no %s event", typ)
		}
	}

	// Added again, the stored set is the file's keys re-encoded.
	if code, stdout, stderr := runCLI(t, env, "issuers", "add", "acme", "--issuer", "https://idp.acme.example", "--jwks-file", keys, "--use", "id_jag"); code != 0 {
		t.Fatalf("add again: %d\n%s%s", code, stdout, stderr)
	}
	st2, err := sqlite.Open(ctx, filepath.Join(dir, "agentid.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	iss, err := st2.GetIssuer(ctx, store.DefaultTenant, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(iss.JWKS, "comment") || strings.Contains(iss.JWKS, "\n") {
		t.Errorf("stored JWKS not re-encoded: %s", iss.JWKS)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(iss.JWKS), &set); err != nil || len(set.Keys) != 1 || !set.Keys[0].IsPublic() || set.Keys[0].KeyID != "idp-2026" {
		t.Errorf("stored JWKS = %s (%v)", iss.JWKS, err)
	}
}

// TestParseIssuerRule: the --rule syntax, its claims and its agent
// template.
func TestParseIssuerRule(t *testing.T) {
	tests := []struct {
		in      string
		want    *store.IssuerRule
		wantErr string
	}{
		{in: "sub=system:serviceaccount:agents:*->k8s.{sub}",
			want: &store.IssuerRule{Claims: map[string]string{"sub": "system:serviceaccount:agents:*"}, Agent: "k8s.{sub}"}},
		{in: " repository = acme/* , ref = refs/heads/main -> ci.{repository} ",
			want: &store.IssuerRule{Claims: map[string]string{"repository": "acme/*", "ref": "refs/heads/main"}, Agent: "ci.{repository}"}},
		// A pattern may hold '=' and '->': the last '->' ends the claims.
		{in: "sub=a=b->c->agent", want: &store.IssuerRule{Claims: map[string]string{"sub": "a=b->c"}, Agent: "agent"}},
		{in: "sub=*", wantErr: "want 'CLAIM=PATTERN"},
		{in: "->agent", wantErr: "at least one CLAIM=PATTERN"},
		{in: "sub->agent", wantErr: "is not CLAIM=PATTERN"},
		{in: "=x->agent", wantErr: "is not CLAIM=PATTERN"},
		{in: "sub=*,sub=x->agent", wantErr: "appears twice"},
		{in: "sub=a b->agent", wantErr: "without spaces"},
		{in: "sub=*->", wantErr: "is empty"},
		{in: "sub=*->a}", wantErr: "} without {"},
		{in: "sub=*->{a{b}}", wantErr: "{ without }"},
		{in: "sub=*->a b", wantErr: "without spaces"},
		{in: "sub=*->" + strings.Repeat("a", maxAgentTemplateLen+1), wantErr: "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseIssuerRule(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, *tc.want)
			}
		})
	}
}
