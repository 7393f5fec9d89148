package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestRedactDSN(t *testing.T) {
	tests := []struct {
		name, dsn, want string
	}{
		{"sqlite path", "./agentid-data/agentid.db", "./agentid-data/agentid.db"},
		{"sqlite file URI", "file:agentid.db?_pragma=busy_timeout(5000)", "file:agentid.db?_pragma=busy_timeout(5000)"},
		{"no userinfo", "postgres://db:5432/agentid", "postgres://db:5432/agentid"},
		{"user only", "postgres://agent@db/agentid", "postgres://agent@db/agentid"},
		{"user and password", "postgres://agent:hunter2@db:5432/agentid?sslmode=require", "postgres://agent:REDACTED@db:5432/agentid?sslmode=require"},
		{"empty password", "postgres://agent:@db/agentid", "postgres://agent:REDACTED@db/agentid"},
		{"escaped password", "postgres://agent:p%40ss%2Fw@db/agentid", "postgres://agent:REDACTED@db/agentid"},
		{"unescaped @ / ? in password", "postgres://agent:a@b/c?d@db/agentid", "postgres://agent:REDACTED@db/agentid"},
		{"password query", "postgres://agent@db/agentid?sslmode=require&password=hunter2", "postgres://agent@db/agentid?sslmode=require&password=REDACTED"},
		{"sslpassword query", "postgres://agent@db/agentid?sslpassword=hunter2", "postgres://agent@db/agentid?sslpassword=REDACTED"},
		{"escaped query key", "postgres://agent@db/agentid?pass%77ord=hunter2", "postgres://agent@db/agentid?pass%77ord=REDACTED"},
		{"multi host", "postgres://agent:hunter2@db1:5432,db2:5432/agentid", "postgres://agent:REDACTED@db1:5432,db2:5432/agentid"},
		{"keyword form", "host=db user=agent password=hunter2", "REDACTED"},
		{"unknown scheme", "mysql://agent:hunter2@db/agentid", "mysql://agent:REDACTED@db/agentid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redactDSN(tt.dsn); got != tt.want {
				t.Errorf("redactDSN(%q) = %q, want %q", tt.dsn, got, tt.want)
			}
			if got, want := dsnHasPassword(tt.dsn), tt.dsn != tt.want; got != want {
				t.Errorf("dsnHasPassword(%q) = %v, want %v", tt.dsn, got, want)
			}
		})
	}
}

// TestRedactedNeverLeaks loads configurations holding secrets by every
// route (env override, env: reference, dsn_file, AGENTID_KEK, token file)
// and checks that the printed config holds none of them, yet still
// reloads as YAML of the same schema.
func TestRedactedNeverLeaks(t *testing.T) {
	const (
		pw     = "Pa55-w0rd-sekrit"
		pwEsc  = "Pa55%2Dw0rd%2Dsekrit"
		qpw    = "query-sekrit-77"
		kek    = "S0VLLWtleS1tYXRlcmlhbC0xMjM0NTY3ODkwMTI="
		tokSec = "iat-sekrit-0123456789abcdefghijklmnopqrstuvwxyz"
		oldKEK = "kek-old:T0xELWtleS1tYXRlcmlhbC0xMjM0NTY3ODkwMTI="
	)
	dir := t.TempDir()
	dsnFile := filepath.Join(dir, "dsn")
	if err := os.WriteFile(dsnFile, []byte("postgres://agent:"+pw+"@db/agentid\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokenFile, []byte(tokSec+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := []string{pw, pwEsc, url.QueryEscape(pw), qpw, kek, tokSec, oldKEK}

	tests := []struct {
		name string
		yaml string
		env  map[string]string
	}{
		{
			name: "env overrides",
			env: map[string]string{
				"AGENTID_STORE_DSN":    "postgres://agent:" + pw + "@db:5432/agentid?sslmode=require&password=" + qpw,
				"AGENTID_KEK":          kek,
				"AGENTID_KEK_PREVIOUS": oldKEK,
			},
		},
		{
			name: "escaped password",
			env: map[string]string{
				"AGENTID_STORE_DSN": "postgres://agent:" + pwEsc + "@db/agentid",
				"AGENTID_KEK_VALUE": kek,
			},
		},
		{
			name: "env references",
			yaml: "store:\n  dsn: env:PG\nkek:\n  value: env:K\n  previous: env:OLD\n",
			env:  map[string]string{"PG": "postgresql://agent:" + pw + "@db/agentid?sslpassword=" + qpw, "K": kek, "OLD": oldKEK},
		},
		{
			name: "dsn file and token file",
			yaml: "store:\n  dsn_file: " + dsnFile + "\nregistration:\n  open: false\n  initial_access_token_file: " + tokenFile + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load([]byte(tt.yaml), envMap(tt.env), os.ReadFile)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			out, err := c.Redacted()
			if err != nil {
				t.Fatalf("Redacted: %v", err)
			}
			for _, s := range secrets {
				if strings.Contains(string(out), s) {
					t.Errorf("Redacted output contains secret %q:\n%s", s, out)
				}
			}
			if !strings.Contains(string(out), "REDACTED") {
				t.Errorf("Redacted output marks nothing as REDACTED:\n%s", out)
			}
			if !strings.Contains(string(out), "@db") {
				t.Errorf("Redacted output lost the DSN's host:\n%s", out)
			}
			// The output is the file schema: it decodes without unknown keys.
			var back Config
			dec := yaml.NewDecoder(strings.NewReader(string(out)))
			dec.KnownFields(true)
			if err := dec.Decode(&back); err != nil {
				t.Fatalf("Redacted output does not decode as a Config: %v\n%s", err, out)
			}
			if back.Listen != c.Listen || back.Tokens != c.Tokens || back.Login != c.Login {
				t.Errorf("Redacted output changed non-secret settings:\n%s", out)
			}
			// Redacted works on a copy.
			if c.KEK.Value != "" && c.KEK.Value != kek {
				t.Errorf("Redacted modified the Config")
			}
		})
	}
}

// TestProblemsNeverQuoteSecrets feeds secrets into places that produce
// problems and checks the problem text does not repeat them.
func TestProblemsNeverQuoteSecrets(t *testing.T) {
	const secret = "T0p-S3cret-value-XYZ"
	tests := []struct {
		name string
		yaml string
		env  map[string]string
	}{
		{name: "literal kek in file", yaml: "kek:\n  value: " + secret + "\n"},
		{name: "dsn with password in file", yaml: "store:\n  dsn: postgres://u:" + secret + "@h/db\n"},
		{name: "dsn keyword form via env", env: map[string]string{"AGENTID_STORE_DSN": "host=h password=" + secret}},
		{name: "dsn bad scheme via env", env: map[string]string{"AGENTID_STORE_DSN": "mysql://u:" + secret + "@h/db"}},
		{name: "kek conflicts with file", yaml: "kek:\n  file: /k\n", env: map[string]string{"AGENTID_KEK": secret}},
		{name: "kek alias conflict", env: map[string]string{"AGENTID_KEK": secret, "AGENTID_KEK_VALUE": secret}},
		{name: "bad tokens", yaml: "registration:\n  open: false\n  initial_access_token_file: /tokens\n"},
	}
	readFile := func(string) ([]byte, error) { return []byte(secret + "!\nshort-" + secret[:3] + "\n"), nil }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load([]byte(tt.yaml), envMap(tt.env), readFile)
			if err == nil {
				t.Fatal("load succeeded, want problems")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("problem text leaks the secret: %v", err)
			}
		})
	}
}

// FuzzRedactDSN checks that a password placed in a URL DSN never survives
// redaction, whatever bytes surround it.
func FuzzRedactDSN(f *testing.F) {
	f.Add("agent", "hunter2", "db:5432/agentid?sslmode=require")
	f.Add("a:b", "p@ss/w?rd", "db1,db2/x")
	f.Add("", "pw", "")
	f.Add("u", "x", "h/db?password=other")
	f.Add("u@v", "s3cr3t", "@h")
	f.Fuzz(func(t *testing.T, user, pw, rest string) {
		dsn := "postgres://" + user + ":" + pw + "@" + rest
		got := redactDSN(dsn)
		if !dsnHasPassword(dsn) {
			t.Fatalf("dsnHasPassword(%q) = false", dsn)
		}
		// Only meaningful when pw is not also part of what may be shown.
		// Query redaction may add "=REDACTED" to a bare parameter name.
		visible := "postgres://" + user + ":" + redacted + "@" + rest + "=" + redacted
		if pw != "" && !strings.Contains(visible, pw) && strings.Contains(got, pw) {
			t.Fatalf("redactDSN(%q) = %q leaks %q", dsn, got, pw)
		}
	})
}

func TestFormattingRedacts(t *testing.T) {
	const (
		pw  = "fmt-sekrit-pw"
		kek = "fmt-sekrit-kek"
		tok = "fmt-sekrit-token-0123456789abcdefghijklmnop"
		old = "fmt-sekrit-old-kek"
	)
	c := Default()
	c.Store.DSN = "postgres://agent:" + pw + "@db/agentid"
	c.KEK = KEKConfig{Value: kek, Previous: old}
	c.Registration = RegistrationConfig{Enabled: true, InitialAccessTokens: []string{tok}}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		t.Run(verb, func(t *testing.T) {
			for _, v := range []any{c, *c, c.Store, c.KEK, c.Registration} {
				out := fmt.Sprintf(verb, v)
				for _, s := range []string{pw, kek, tok, old} {
					if strings.Contains(out, s) {
						t.Errorf("fmt %s of %T leaks %q: %s", verb, v, s, out)
					}
				}
			}
		})
	}
}
