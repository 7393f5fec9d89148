package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes as the config file. Properties: no panic;
// either a Config or non-empty Problems, never both; a returned Config
// validates; and its Redacted rendering (which holds no secrets here, as
// the fuzzer has no environment or files) loads back to the same Config.
func FuzzLoad(f *testing.F) {
	seeds := []string{
		"",
		"---\n",
		"~\n",
		"issuer: https://auth.example.com\nlisten: 0.0.0.0:8080\n",
		"data_dir: /srv\nstore:\n  dsn: postgres://agent@db/agentid\n  auto_migrate: false\n",
		"tokens:\n  access_token_ttl: 5m\n  refresh_token_ttl: 24h\n  auth_code_ttl: 30s\n  signing_alg: EdDSA\n  key_pre_publish: 1h\n",
		"login:\n  session_ttl: 1h\n  max_attempts_per_user: 3\n  max_attempts_per_ip: 9\n  attempt_window: 1m\n  insecure_cookies: true\n",
		"log: {level: debug, format: text}\n",
		"registration:\n  open: false\n  initial_access_token_file: /t\n",
		"kek:\n  value: env:K\n",
		"kek:\n  file: /k\n  value: x\n",
		"store:\n  dsn_file: /d\n",
		"foo: 1\ntokens:\n  bar: 2\n",
		"a: &a [*a]\n",
		"base: &b {level: info}\nlog:\n  <<: *b\n",
		"? [a]\n: b\n",
		"listen: 1\n---\nlisten: 2\n",
		"tokens: [1, 2]\n",
		"log:\n  level: !!binary aGVsbG8=\n",
		"log:\n  level: !custom x\n",
		"login:\n  max_attempts_per_ip: 0x10\n",
		"issuer: \"http://127.0.0.1:8080\"\nissuer: x\n",
		"registration:\n  mode: token\n  max_per_ip: 3\n  rate_window: 1m\n  client_expiry: 0s\n",
		"trusted_issuers:\n  - issuer: https://a.example\n    jwks_uri: https://a.example/jwks\n    uses: [software_statement]\n",
		"trusted_issuers:\n  - issuer: https://a.example\n    jwks: {keys: [{kty: EC}]}\n    uses: [software_statement, x]\n  - [1]\n",
		"identity_assertions:\n  lifetime: 2m\n  targets:\n    - audience: https://a.example\n      resources: [https://a.example/mcp]\n      clients: [{client: a, remote_client_id: r, scopes: [s]}, [1]]\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := load(data, nil, noFiles)
		if err != nil {
			if c != nil {
				t.Fatal("Config returned alongside an error")
			}
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error %v (%T) is not non-empty Problems", err, err)
			}
			for _, p := range ps {
				if strings.TrimSpace(p.Msg) == "" {
					t.Fatalf("empty problem in %v", ps)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("loaded Config does not validate: %v", err)
		}
		out, err := c.Redacted()
		if err != nil {
			t.Fatalf("Redacted: %v", err)
		}
		back, err := load(out, nil, noFiles)
		if err != nil {
			t.Fatalf("Redacted output does not load: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the config:\nfirst  %+v\nsecond %+v\n%s", c, back, out)
		}
	})
}

// FuzzParseTokenFile: no panic, every accepted token is a long enough
// b64token, and no problem repeats a token.
func FuzzParseTokenFile(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("# comment\n" + token32 + "\n"))
	f.Add([]byte("short\n" + token32 + "!\r\n==\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tokens, errs := parseTokenFile(data)
		for _, tok := range tokens {
			if len(tok) < minInitialAccessTokenLen || !isB64Token(tok) {
				t.Fatalf("accepted bad token %q", tok)
			}
		}
		for _, e := range errs {
			for _, line := range strings.Split(string(data), "\n") {
				l := strings.TrimSpace(line)
				if len(l) >= 8 && strings.Contains(e.Error(), l) {
					t.Fatalf("error %q repeats input %q", e, l)
				}
			}
		}
	})
}
