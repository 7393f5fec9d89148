package config

import (
	"errors"
	"os"
	"reflect"
	"testing"
)

const testJWKS = `{"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"1"}]}`

// TestLoadTrustedIssuers: the list decodes strictly, jwks may be JSON text
// or a YAML mapping, jwks_file is read, and uses is a list of strings.
func TestLoadTrustedIssuers(t *testing.T) {
	yaml := `trusted_issuers:
  - issuer: https://a.example
    jwks: '` + testJWKS + `'
    uses: [software_statement]
  - issuer: https://b.example
    jwks:
      keys:
        - {kty: EC, crv: P-256, kid: "2", x: MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4, y: 4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM}
    uses:
      - software_statement
  - issuer: https://c.example
    jwks_file: /keys/c.json
    uses: [software_statement]
  - issuer: https://d.example
    jwks_uri: https://d.example/jwks
    uses: [software_statement]
`
	files := func(name string) ([]byte, error) {
		if name == "/keys/c.json" {
			return []byte(testJWKS), nil
		}
		return nil, os.ErrNotExist
	}
	c, err := load([]byte(yaml), nil, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.TrustedIssuers) != 4 {
		t.Fatalf("issuers: %+v", c.TrustedIssuers)
	}
	a, b, cc, d := c.TrustedIssuers[0], c.TrustedIssuers[1], c.TrustedIssuers[2], c.TrustedIssuers[3]
	if a.JWKS != testJWKS || !a.Trusts(UseSoftwareStatement) || !reflect.DeepEqual(b.Uses, []string{UseSoftwareStatement}) {
		t.Errorf("a %+v, b %+v", a, b)
	}
	if b.JWKS == "" || b.JWKS[0] != '{' {
		t.Errorf("a YAML mapping jwks did not become JSON: %q", b.JWKS)
	}
	if cc.JWKS != testJWKS || cc.JWKSFile != "" {
		t.Errorf("jwks_file was not read: %+v", cc)
	}
	if d.JWKSURI != "https://d.example/jwks" || d.JWKS != "" {
		t.Errorf("d %+v", d)
	}
	// The rendering loads back to the same configuration.
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	back, err := load(out, nil, noFiles)
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip: %v\n%s", err, out)
	}
}

func TestLoadTrustedIssuerProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []wantProblem
	}{
		{"not a list", "trusted_issuers: https://a.example\n", []wantProblem{{"trusted_issuers", 1, []string{"expected a list of issuers"}}}},
		{"unknown key", "trusted_issuers:\n  - issuer: https://a.example\n    jwks_url: https://a.example/jwks\n    uses: [software_statement]\n",
			[]wantProblem{
				{"trusted_issuers[0].jwks_url", 3, []string{`unknown key "jwks_url"`, `did you mean "jwks_uri"`}},
				{"trusted_issuers[0]", 0, []string{"exactly one of jwks_uri, jwks and jwks_file"}},
			}},
		{"uses not strings", "trusted_issuers:\n  - issuer: https://a.example\n    jwks_uri: https://a.example/jwks\n    uses: [[x]]\n",
			[]wantProblem{{"trusted_issuers[0].uses", 4, []string{"expected a list of strings"}}}},
		{"missing file", "trusted_issuers:\n  - issuer: https://a.example\n    jwks_file: /nope\n    uses: [software_statement]\n",
			[]wantProblem{{"trusted_issuers[0].jwks_file", 0, []string{"cannot read"}}}},
		{"mode beside the old keys", "registration:\n  mode: open\n  open: false\n",
			[]wantProblem{{"registration.open", 0, []string{"replaced by registration.mode"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load([]byte(tt.yaml), nil, noFiles)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("err = %v", err)
			}
			assertProblems(t, ps, tt.want)
		})
	}
}

// TestLoadRegistrationModeFromOldKeys: the older enabled/open keys still
// choose the mode.
func TestLoadRegistrationModeFromOldKeys(t *testing.T) {
	for yaml, want := range map[string]string{
		"":                                  RegistrationOpen,
		"registration:\n  enabled: false\n": RegistrationOff,
		"registration:\n  mode: off\n":      RegistrationOff,
		"registration:\n  mode: open\n":     RegistrationOpen,
	} {
		c, err := load([]byte(yaml), nil, noFiles)
		if err != nil {
			t.Fatalf("%q: %v", yaml, err)
		}
		if c.Registration.Mode != want || c.Registration.Enabled != (want != RegistrationOff) {
			t.Errorf("%q: mode %q enabled %v, want %q", yaml, c.Registration.Mode, c.Registration.Enabled, want)
		}
	}
}
