package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func noFiles(name string) ([]byte, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// envMap is a lookupEnv over a fixed map.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// problemsOf extracts the Problems of a Load error, failing the test if
// the error is something else.
func problemsOf(t *testing.T, err error) Problems {
	t.Helper()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v (%T) is not Problems", err, err)
	}
	var one *Problem
	if len(ps) == 0 || !errors.As(err, &one) {
		t.Fatalf("Problems %v is empty or hides its *Problem", ps)
	}
	for _, p := range ps {
		if p.Msg == "" {
			t.Fatalf("problem %#v has no message", p)
		}
	}
	return ps
}

const token32 = "iat-0123456789abcdefghijklmnopqrstuvwxyz"

func TestLoadValidFiles(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		check func(t *testing.T, c *Config)
	}{
		{
			name:  "empty file",
			yaml:  "",
			check: func(t *testing.T, c *Config) { eq(t, c, Default()) },
		},
		{
			name:  "comments only",
			yaml:  "# nothing here\n",
			check: func(t *testing.T, c *Config) { eq(t, c, Default()) },
		},
		{
			name:  "explicit document markers",
			yaml:  "---\nlisten: 127.0.0.1:9090\n...\n",
			check: func(t *testing.T, c *Config) { eq(t, c.Issuer, "http://127.0.0.1:9090") },
		},
		{
			name: "full production file",
			yaml: `issuer: https://auth.example.com
listen: 0.0.0.0:8080
data_dir: /var/lib/agentid
store:
  dsn: env:PG_DSN
  auto_migrate: false
kek:
  value: env:MY_KEK
tokens:
  access_token_ttl: 5m
  refresh_token_ttl: 168h
  refresh_token_reuse_interval: 0s
  auth_code_ttl: 30s
  signing_alg: EdDSA
  key_pre_publish: 1h
  max_delegation_depth: 4
registration:
  open: true
login:
  session_ttl: 8h
  max_attempts_per_user: 3
  max_attempts_per_ip: 50
  attempt_window: 10m
  insecure_cookies: false
log:
  level: warn
  format: text
`,
			env: map[string]string{"PG_DSN": "postgres://agent:pw@db/agentid", "MY_KEK": "kek-bytes"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.Issuer, "https://auth.example.com")
				eq(t, c.Listen, "0.0.0.0:8080")
				eq(t, c.DataDir, "/var/lib/agentid")
				eq(t, c.Store.DSN, "postgres://agent:pw@db/agentid")
				eq(t, c.IsPostgres(), true)
				eq(t, c.Store.AutoMigrate, false)
				eq(t, c.KEK.Value, "kek-bytes")
				eq(t, c.KEK.File, "")
				eq(t, c.Tokens, TokenConfig{
					AccessTokenTTL:  Duration(5 * time.Minute),
					RefreshTokenTTL: Duration(168 * time.Hour),
					// 0 is strict rotation, kept as written.
					RefreshTokenReuseInterval: 0,
					AuthCodeTTL:               Duration(30 * time.Second),
					SigningAlg:                "EdDSA",
					MaxDelegationDepth:        4,
					KeyPrePublish:             Duration(time.Hour),
				})
				eq(t, c.Login, LoginConfig{
					SessionTTL:         Duration(8 * time.Hour),
					MaxAttemptsPerUser: 3,
					MaxAttemptsPerIP:   50,
					AttemptWindow:      Duration(10 * time.Minute),
					Local:              true,
				})
				eq(t, c.Log, LogConfig{Level: "warn", Format: "text"})
				eq(t, c.SecureCookies(), true)
			},
		},
		{
			name: "derived defaults follow data_dir and listen",
			yaml: "data_dir: /srv/hub\nlisten: ':9999'\n",
			check: func(t *testing.T, c *Config) {
				eq(t, c.Store.DSN, "/srv/hub/agentid.db")
				eq(t, c.KEK.File, "/srv/hub/kek.key")
				eq(t, c.Issuer, "http://127.0.0.1:9999")
			},
		},
		{
			name: "empty values and empty sections keep defaults",
			yaml: "issuer:\nstore:\ntokens:\n  signing_alg:\n",
			check: func(t *testing.T, c *Config) {
				eq(t, c, Default())
			},
		},
		{
			name:  "postgres DSN without password may be literal",
			yaml:  "store:\n  dsn: postgres://agent@db:5432/agentid?sslmode=verify-full\n",
			check: func(t *testing.T, c *Config) { eq(t, c.IsPostgres(), true) },
		},
		{
			name: "quoted keys and values",
			yaml: "\"listen\": '127.0.0.1:7000'\nlog: {level: \"debug\"}\n",
			check: func(t *testing.T, c *Config) {
				eq(t, c.Listen, "127.0.0.1:7000")
				eq(t, c.Log.Level, "debug")
			},
		},
		{
			name: "https issuer with a path",
			yaml: "issuer: https://example.com/agentid\n",
			check: func(t *testing.T, c *Config) {
				eq(t, c.Issuer, "https://example.com/agentid")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load([]byte(tt.yaml), envMap(tt.env), noFiles)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func eq[T any](t *testing.T, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// wantProblem is a problem a test expects: the setting it names, its line
// (0 = not from the file) and words its message must contain.
type wantProblem struct {
	setting string
	line    int
	words   []string
}

func TestLoadInvalidFiles(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []wantProblem
	}{
		{
			name: "unknown top-level key",
			yaml: "listen: 127.0.0.1:8080\nfoo: 1\n",
			want: []wantProblem{{"foo", 2, []string{`line 2: unknown key "foo"`}}},
		},
		{
			name: "unknown nested key",
			yaml: "tokens:\n  access_token_ttl: 5m\n  acess_token_ttl: 5m\n",
			want: []wantProblem{{"tokens.acess_token_ttl", 3, []string{`line 3: unknown key "acess_token_ttl" in tokens`}}},
		},
		{
			name: "near miss gets a suggestion",
			yaml: "log:\n  Level: info\n",
			want: []wantProblem{{"log.Level", 2, []string{`unknown key "Level" in log`, `did you mean "level"?`}}},
		},
		{
			name: "dashes instead of underscores",
			yaml: "data-dir: /x\n",
			want: []wantProblem{{"data-dir", 1, []string{`did you mean "data_dir"?`}}},
		},
		{
			name: "a typo gets a suggestion",
			yaml: "tokens:\n  acess_token_ttl: 5m\n",
			want: []wantProblem{{"tokens.acess_token_ttl", 2, []string{`unknown key "acess_token_ttl" in tokens (did you mean "access_token_ttl"?)`}}},
		},
		{
			name: "a transposition gets a suggestion",
			yaml: "tokens:\n  singing_alg: ES256\n",
			want: []wantProblem{{"tokens.singing_alg", 2, []string{`did you mean "signing_alg"?`}}},
		},
		{
			name: "a misspelt section gets a suggestion",
			yaml: "tokns:\n  access_token_ttl: 5m\n",
			want: []wantProblem{{"tokns", 1, []string{`unknown key "tokns" (did you mean "tokens"?)`}}},
		},
		{
			name: "only keys of the same section are suggested",
			yaml: "log:\n  listen: 127.0.0.1:8080\n",
			want: []wantProblem{{"log.listen", 2, []string{`unknown key "listen" in log`}}},
		},
		{
			name: "yaml field name of the Go struct is not a key",
			yaml: "Store:\n  DSN: x\n",
			want: []wantProblem{{"Store", 1, []string{`unknown key "Store"`}}},
		},
		{
			name: "merge keys are unknown keys",
			yaml: "base: &b {level: info}\nlog:\n  <<: *b\n",
			want: []wantProblem{
				{"base", 1, []string{`unknown key "base"`}},
				{"log.<<", 3, []string{`unknown key "<<" in log`}},
			},
		},
		{
			name: "string setting given a number",
			yaml: "data_dir: 2024\n",
			want: []wantProblem{{"data_dir", 1, []string{"line 1: data_dir: expected a string, found an integer (quote it)"}}},
		},
		{
			name: "bool setting given a word",
			yaml: "store:\n  auto_migrate: yes\n",
			want: []wantProblem{{"store.auto_migrate", 2, []string{"line 2: store.auto_migrate: expected true or false"}}},
		},
		{
			name: "bool setting given a quoted bool",
			yaml: "login:\n  insecure_cookies: \"true\"\n",
			want: []wantProblem{{"login.insecure_cookies", 2, []string{"expected true or false, found a string"}}},
		},
		{
			name: "int setting given a string",
			yaml: "login:\n  max_attempts_per_ip: many\n",
			want: []wantProblem{{"login.max_attempts_per_ip", 2, []string{"login.max_attempts_per_ip: expected an integer"}}},
		},
		{
			name: "int overflow",
			yaml: "login:\n  max_attempts_per_ip: 99999999999999999999999\n",
			want: []wantProblem{{"login.max_attempts_per_ip", 2, []string{"expected an integer"}}},
		},
		{
			name: "duration without unit",
			yaml: "tokens:\n  auth_code_ttl: 60\n",
			want: []wantProblem{{"tokens.auth_code_ttl", 2, []string{"tokens.auth_code_ttl: expected a duration with a unit"}}},
		},
		{
			name: "duration garbage",
			yaml: "tokens:\n  access_token_ttl: soon\n",
			want: []wantProblem{{"tokens.access_token_ttl", 2, []string{`invalid duration "soon"`}}},
		},
		{
			name: "section given a scalar",
			yaml: "tokens: 5m\n",
			want: []wantProblem{{"tokens", 1, []string{"tokens: expected a mapping of settings, found a string"}}},
		},
		{
			name: "setting given a list",
			yaml: "listen:\n  - 127.0.0.1:1\n",
			want: []wantProblem{{"listen", 2, []string{"listen: expected a single value, found a list"}}},
		},
		{
			name: "setting given an alias",
			yaml: "log:\n  level: &l info\n  format: *l\n",
			want: []wantProblem{{"log.format", 3, []string{"log.format: expected a single value, found an alias"}}},
		},
		{
			name: "top level is a list",
			yaml: "- a\n- b\n",
			want: []wantProblem{{"", 1, []string{"the config file: expected a mapping"}}},
		},
		{
			name: "non-string key",
			yaml: "? [a, b]\n: 1\n",
			want: []wantProblem{{"", 1, []string{"keys must be plain strings, found a list"}}},
		},
		{
			name: "duplicate key",
			yaml: "log:\n  level: info\n  level: debug\n",
			want: []wantProblem{{"log.level", 3, []string{`duplicate key "level" in log (first at line 2)`}}},
		},
		{
			name: "two documents",
			yaml: "listen: 127.0.0.1:8080\n---\nlisten: 127.0.0.1:9090\n",
			want: []wantProblem{{"", 2, []string{"more than one YAML document"}}},
		},
		{
			name: "syntax error in a second document",
			yaml: "listen: 127.0.0.1:8080\n---\nlisten: [\n",
			want: []wantProblem{{"", 3, []string{"line 3: invalid YAML after the first document"}}},
		},
		{
			name: "syntax error",
			yaml: "log:\n  level: info\n listen: [\n",
			want: []wantProblem{{"", 2, []string{"line 2: invalid YAML: did not find expected key"}}},
		},
		{
			name: "literal KEK in the file",
			yaml: "kek:\n  value: c2VjcmV0LWtleS1tYXRlcmlhbA==\n",
			want: []wantProblem{{"kek.value", 2, []string{"kek.value: in the config file the key may only be an env:NAME reference"}}},
		},
		{
			name: "DSN with password in the file",
			yaml: "store:\n  dsn: postgres://agent:hunter2@db/agentid\n",
			want: []wantProblem{{"store.dsn", 2, []string{"store.dsn: contains a password"}}},
		},
		{
			name: "DSN with password parameter in the file",
			yaml: "store:\n  dsn: postgres://agent@db/agentid?password=hunter2\n",
			want: []wantProblem{{"store.dsn", 2, []string{"store.dsn: contains a password"}}},
		},
		{
			name: "semantic problems after a clean decode",
			yaml: "tokens:\n  access_token_ttl: 2h\n  signing_alg: HS256\n",
			want: []wantProblem{
				{"tokens.access_token_ttl", 0, []string{"tokens.access_token_ttl: must be at most 1h, got 2h"}},
				{"tokens.signing_alg", 0, []string{`tokens.signing_alg: must be one of ES256, EdDSA, RS256, got "HS256"`}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load([]byte(tt.yaml), nil, noFiles)
			if err == nil {
				t.Fatalf("load succeeded with %+v, want problems", c)
			}
			if c != nil {
				t.Errorf("load returned a Config alongside problems")
			}
			assertProblems(t, problemsOf(t, err), tt.want)
		})
	}
}

// assertProblems checks that ps are exactly want, in order.
func assertProblems(t *testing.T, ps Problems, want []wantProblem) {
	t.Helper()
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), ps)
	}
	for i, w := range want {
		p := ps[i]
		if p.Setting != w.setting || p.Line != w.line {
			t.Errorf("problem %d = (setting %q, line %d), want (%q, %d): %v", i, p.Setting, p.Line, w.setting, w.line, p)
		}
		for _, word := range w.words {
			if !strings.Contains(p.Error(), word) {
				t.Errorf("problem %d %q does not contain %q", i, p.Error(), word)
			}
		}
	}
}

func TestLoadReportsEverythingAtOnce(t *testing.T) {
	yaml := `issuer: http://auth.example.com
bogus: 1
tokens:
  access_token_ttl: 90m
  auth_code_ttl: ten
log:
  level: loud
`
	env := map[string]string{
		"AGENTID_LOGIN_MAX_ATTEMPTS_PER_USER": "0",
		"AGENTID_STORE_AUTO_MIGRATE":          "maybe",
		"AGENTID_LOGIN_MAX_ATTEMPTS_PER_IP":   "99999999999999999999999",
	}
	_, err := load([]byte(yaml), envMap(env), noFiles)
	assertProblems(t, problemsOf(t, err), []wantProblem{
		{"bogus", 2, []string{`unknown key "bogus"`}},
		{"tokens.auth_code_ttl", 5, []string{`invalid duration "ten"`}},
		{"store.auto_migrate", 0, []string{"AGENTID_STORE_AUTO_MIGRATE: store.auto_migrate: invalid boolean"}},
		{"login.max_attempts_per_ip", 0, []string{"AGENTID_LOGIN_MAX_ATTEMPTS_PER_IP: login.max_attempts_per_ip: invalid integer"}},
		{"issuer", 0, []string{"issuer: must use https"}},
		{"tokens.access_token_ttl", 0, []string{"at most 1h"}},
		{"login.max_attempts_per_user", 0, []string{"at least 1"}},
		{"log.level", 0, []string{"log.level: must be one of debug, info, warn, error"}},
	})
}

func TestLoadFile(t *testing.T) {
	t.Run("reads the file", func(t *testing.T) {
		p := writeFile(t, "agentid.yaml", "listen: 127.0.0.1:7777\n")
		c, err := Load(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, c.Issuer, "http://127.0.0.1:7777")
	})
	t.Run("no path means defaults and env", func(t *testing.T) {
		c, err := Load("", envMap(map[string]string{"AGENTID_LOG_LEVEL": "debug"}))
		if err != nil {
			t.Fatal(err)
		}
		eq(t, c.Log.Level, "debug")
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("oversized file", func(t *testing.T) {
		p := writeFile(t, "big.yaml", "# "+strings.Repeat("x", maxConfigSize)+"\n")
		if _, err := Load(p, nil); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("err = %v, want size error", err)
		}
	})
	t.Run("problems are Problems", func(t *testing.T) {
		p := writeFile(t, "agentid.yaml", "nope: 1\n")
		_, err := Load(p, nil)
		assertProblems(t, problemsOf(t, err), []wantProblem{{"nope", 1, []string{`line 1: unknown key "nope"`}}})
	})
}

// envSample is a valid, non-default value for one setting's override.
type envSample struct {
	value string
	// extra are further variables the value needs to form a valid config.
	extra func(t *testing.T) map[string]string
}

// envSamples must name every setting: TestEnvOverrideEverySetting fails
// for a setting without one, so a new setting gets its override tested.
func envSamples(t *testing.T) map[string]envSample {
	tokenFile := writeFile(t, "iat.txt", token32+"\n")
	dsnFile := writeFile(t, "dsn", "postgres://agent:pw@db/agentid\n")
	headersFile := writeFile(t, "otlp-headers", "authorization=Bearer%20abc\n")
	return map[string]envSample{
		"issuer":   {value: "https://auth.example.com"},
		"listen":   {value: "127.0.0.1:9191"},
		"data_dir": {value: "/srv/agentid"},
		"tls.cert_file": {value: "/etc/agentid/tls.crt", extra: func(*testing.T) map[string]string {
			return map[string]string{"AGENTID_TLS_KEY_FILE": "/etc/agentid/tls.key"}
		}},
		"tls.key_file": {value: "/etc/agentid/tls.key", extra: func(*testing.T) map[string]string {
			return map[string]string{"AGENTID_TLS_CERT_FILE": "/etc/agentid/tls.crt"}
		}},
		"metrics.listen": {value: "127.0.0.1:9464"},
		"metrics.pprof": {value: "true", extra: func(*testing.T) map[string]string {
			return map[string]string{"AGENTID_METRICS_LISTEN": "127.0.0.1:9464"}
		}},
		"tracing.endpoint": {value: "https://collector.example.com:4318"},
		"tracing.insecure": {value: "true", extra: func(*testing.T) map[string]string {
			return map[string]string{"AGENTID_TRACING_ENDPOINT": "http://otel-collector:4318"}
		}},
		"tracing.sampling_ratio":              {value: "0.125"},
		"tracing.service_name":                {value: "agentid-eu"},
		"tracing.headers":                     {value: "x-api-key=k3y%2Cwith%20comma"},
		"tracing.headers_file":                {value: headersFile},
		"store.dsn":                           {value: "postgres://agent@db.internal/agentid"},
		"store.dsn_file":                      {value: dsnFile},
		"store.auto_migrate":                  {value: "false"},
		"kek.file":                            {value: "/run/secrets/kek"},
		"kek.value":                           {value: "literal-kek-from-the-environment"},
		"kek.previous":                        {value: "literal-old-kek-from-the-environment"},
		"tokens.access_token_ttl":             {value: "15m"},
		"tokens.refresh_token_ttl":            {value: "24h"},
		"tokens.refresh_token_reuse_interval": {value: "3s"},
		"tokens.auth_code_ttl":                {value: "30s"},
		"tokens.signing_alg":                  {value: "RS256"},
		"tokens.key_pre_publish":              {value: "30m"},
		"tokens.max_delegation_depth":         {value: "3"},
		"registration.enabled":                {value: "false"},
		"registration.open": {value: "false", extra: func(*testing.T) map[string]string {
			return map[string]string{"AGENTID_REGISTRATION_INITIAL_ACCESS_TOKEN_FILE": tokenFile}
		}},
		"registration.initial_access_token_file": {value: tokenFile, extra: func(*testing.T) map[string]string { return map[string]string{"AGENTID_REGISTRATION_OPEN": "false"} }},
		"registration.mode":                      {value: "off"},
		"registration.max_per_ip":                {value: "5"},
		"registration.max_total":                 {value: "50"},
		"registration.rate_window":               {value: "10m"},
		"registration.client_expiry":             {value: "48h"},
		"login.session_ttl":                      {value: "1h"},
		"login.max_attempts_per_user":            {value: "9"},
		"login.max_attempts_per_ip":              {value: "99"},
		"login.attempt_window":                   {value: "1h"},
		"login.insecure_cookies":                 {value: "true"},
		"login.local":                            {value: "false"},
		"login.allow_loopback_connectors":        {value: "true"},
		"cimd.enabled":                           {value: "false"},
		"cimd.allow_loopback":                    {value: "true"},
		"consent.self_registered_default":        {value: "2h"},
		"consent.step_up_sensitive_default":      {value: "5m"},
		"identity_assertions.lifetime":           {value: "2m"},
		"log.level":                              {value: "error"},
		"log.format":                             {value: "text"},
	}
}

// TestEnvOverrideEverySetting walks the schema by reflection: every leaf
// setting's AGENTID_ variable must change exactly that setting, over both
// the defaults and a file that sets it otherwise.
func TestEnvOverrideEverySetting(t *testing.T) {
	samples := envSamples(t)
	def := reflect.ValueOf(Default()).Elem()
	for _, s := range settings() {
		t.Run(s.env, func(t *testing.T) {
			sample, ok := samples[s.path]
			if !ok {
				t.Fatalf("no sample value for %s; add one to envSamples", s.path)
			}
			want := reflect.New(s.typ).Elem()
			if err := setLeaf(want, sample.value); err != nil {
				t.Fatalf("sample %q: %v", sample.value, err)
			}
			if reflect.DeepEqual(want.Interface(), def.FieldByIndex(s.index).Interface()) {
				t.Fatalf("sample %q equals the default; the test could not fail", sample.value)
			}
			env := map[string]string{s.env: sample.value}
			if sample.extra != nil {
				for k, v := range sample.extra(t) {
					env[k] = v
				}
			}
			c, err := load(nil, envMap(env), os.ReadFile)
			if err != nil {
				t.Fatalf("load with %v: %v", env, err)
			}
			got := reflect.ValueOf(c).Elem().FieldByIndex(s.index).Interface()
			if !reflect.DeepEqual(got, want.Interface()) {
				t.Errorf("%s=%q: %s = %v, want %v", s.env, sample.value, s.path, got, want.Interface())
			}
		})
	}
}

func TestEnvBeatsFile(t *testing.T) {
	yaml := "listen: 127.0.0.1:1111\ntokens:\n  access_token_ttl: 5m\nlog:\n  format: text\nstore:\n  auto_migrate: true\n"
	env := map[string]string{
		"AGENTID_LISTEN":                  "127.0.0.1:2222",
		"AGENTID_TOKENS_ACCESS_TOKEN_TTL": "20m",
		"AGENTID_LOG_FORMAT":              "json",
		"AGENTID_STORE_AUTO_MIGRATE":      "false",
		"AGENTID_LOG_LEVEL":               "", // empty counts as unset
	}
	c, err := load([]byte(yaml), envMap(env), noFiles)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, c.Listen, "127.0.0.1:2222")
	eq(t, c.Issuer, "http://127.0.0.1:2222")
	eq(t, c.Tokens.AccessTokenTTL, Duration(20*time.Minute))
	eq(t, c.Log.Format, "json")
	eq(t, c.Log.Level, "info")
	eq(t, c.Store.AutoMigrate, false)
}

func TestSecretReferences(t *testing.T) {
	dir := t.TempDir()
	dsnFile := filepath.Join(dir, "dsn")
	if err := os.WriteFile(dsnFile, []byte("  postgres://agent:pw@db/agentid\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, []byte("\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# issued 2026-01-01\n"+token32+"\n\n  "+token32+"X  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badTokens := filepath.Join(dir, "bad-tokens")
	if err := os.WriteFile(badTokens, []byte("short\n"+token32+" with space\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		check func(t *testing.T, c *Config)
		want  []wantProblem
	}{
		{
			name:  "dsn env reference",
			yaml:  "store:\n  dsn: env:PG\n",
			env:   map[string]string{"PG": "postgres://agent:pw@db/agentid"},
			check: func(t *testing.T, c *Config) { eq(t, c.Store.DSN, "postgres://agent:pw@db/agentid") },
		},
		{
			name: "dsn file is read and trimmed",
			yaml: "store:\n  dsn_file: " + dsnFile + "\n",
			check: func(t *testing.T, c *Config) {
				eq(t, c.Store.DSN, "postgres://agent:pw@db/agentid")
				eq(t, c.Store.DSNFile, dsnFile)
			},
		},
		{
			name:  "dsn env override may hold the password directly",
			env:   map[string]string{"AGENTID_STORE_DSN": "postgres://agent:pw@db/agentid"},
			check: func(t *testing.T, c *Config) { eq(t, c.Store.DSN, "postgres://agent:pw@db/agentid") },
		},
		{
			name:  "env override may itself be a reference",
			env:   map[string]string{"AGENTID_STORE_DSN": "env:DATABASE_URL", "DATABASE_URL": "postgres://x@db/y"},
			check: func(t *testing.T, c *Config) { eq(t, c.Store.DSN, "postgres://x@db/y") },
		},
		{
			name: "kek env reference replaces the default file",
			yaml: "kek:\n  value: env:K\n",
			env:  map[string]string{"K": "key-material"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.KEK.Value, "key-material")
				eq(t, c.KEK.File, "")
			},
		},
		{
			name:  "AGENTID_KEK alias",
			env:   map[string]string{"AGENTID_KEK": "key-material"},
			check: func(t *testing.T, c *Config) { eq(t, c.KEK.Value, "key-material") },
		},
		{
			name: "previous KEKs by env reference and files",
			yaml: "kek:\n  previous: env:OLD\n  previous_files: [/run/secrets/kek-2025, /run/secrets/kek-2024]\n",
			env:  map[string]string{"OLD": "old-key-material"},
			check: func(t *testing.T, c *Config) {
				eq(t, c.KEK.Previous, "old-key-material")
				eq(t, c.KEK.PreviousFiles, []string{"/run/secrets/kek-2025", "/run/secrets/kek-2024"})
			},
		},
		{
			name:  "previous KEKs directly in AGENTID_KEK_PREVIOUS",
			env:   map[string]string{"AGENTID_KEK_PREVIOUS": "old-key-material"},
			check: func(t *testing.T, c *Config) { eq(t, c.KEK.Previous, "old-key-material") },
		},
		{
			name: "literal previous KEK in the file",
			yaml: "kek:\n  previous: old-key-material\n",
			want: []wantProblem{{"kek.previous", 2, []string{"kek.previous: in the config file the keys may only be an env:NAME reference"}}},
		},
		{
			name: "previous KEK reference unset",
			yaml: "kek:\n  previous: env:NOPE\n",
			want: []wantProblem{{"kek.previous", 0, []string{"kek.previous: references environment variable NOPE"}}},
		},
		{
			name: "empty previous key file entry",
			yaml: "kek:\n  previous_files: [\"\"]\n",
			want: []wantProblem{{"kek.previous_files", 0, []string{"entry 1 is empty"}}},
		},
		{
			name: "initial access tokens are read",
			yaml: "registration:\n  open: false\n  initial_access_token_file: " + tokens + "\n",
			check: func(t *testing.T, c *Config) {
				eq(t, c.Registration.InitialAccessTokens, []string{token32, token32 + "X"})
			},
		},
		{
			name: "missing env variable",
			yaml: "store:\n  dsn: env:NOPE\nkek:\n  value: env:ALSO_NOPE\n",
			want: []wantProblem{
				{"store.dsn", 0, []string{"store.dsn: references environment variable NOPE, which is not set or empty"}},
				{"kek.value", 0, []string{"kek.value: references environment variable ALSO_NOPE"}},
			},
		},
		{
			name: "bad reference syntax",
			yaml: "kek:\n  value: \"env:not a name\"\n",
			want: []wantProblem{{"kek.value", 0, []string{"invalid reference"}}},
		},
		{
			name: "dsn and dsn_file both set",
			yaml: "store:\n  dsn: ./x.db\n  dsn_file: " + dsnFile + "\n",
			want: []wantProblem{{"store.dsn_file", 0, []string{"store.dsn_file: conflicts with store.dsn"}}},
		},
		{
			name: "dsn file missing is one problem, not two",
			yaml: "store:\n  dsn_file: " + missing + "\n",
			want: []wantProblem{{"store.dsn_file", 0, []string{"store.dsn_file: cannot read", "no such file"}}},
		},
		{
			name: "dsn file empty",
			yaml: "store:\n  dsn_file: " + emptyFile + "\n",
			want: []wantProblem{{"store.dsn_file", 0, []string{"the file is empty"}}},
		},
		{
			name: "kek file and value both set",
			yaml: "kek:\n  file: /k\n  value: env:K\n",
			env:  map[string]string{"K": "key-material"},
			want: []wantProblem{{"kek.value", 0, []string{"kek.value: conflicts with kek.file"}}},
		},
		{
			name: "KEK alias and derived name both set",
			env:  map[string]string{"AGENTID_KEK": "a", "AGENTID_KEK_VALUE": "b"},
			want: []wantProblem{{"kek.value", 0, []string{"AGENTID_KEK: kek.value: both AGENTID_KEK and AGENTID_KEK_VALUE are set"}}},
		},
		{
			name: "bad initial access tokens",
			yaml: "registration:\n  open: false\n  initial_access_token_file: " + badTokens + "\n",
			want: []wantProblem{
				{"registration.initial_access_token_file", 0, []string{"line 1 of the file: token shorter than 32"}},
				{"registration.initial_access_token_file", 0, []string{"line 2 of the file: not a bearer token"}},
			},
		},
		{
			name: "empty initial access token file",
			yaml: "registration:\n  open: false\n  initial_access_token_file: " + emptyFile + "\n",
			want: []wantProblem{{"registration.initial_access_token_file", 0, []string{"holds no tokens"}}},
		},
		{
			name: "closed registration without tokens",
			yaml: "registration:\n  open: false\n",
			want: []wantProblem{{"registration.initial_access_token_file", 0, []string{"required when registration.mode is token"}}},
		},
		{
			name: "token file with open registration",
			yaml: "registration:\n  initial_access_token_file: " + tokens + "\n",
			want: []wantProblem{{"registration.initial_access_token_file", 0, []string{"has no effect while registration.mode is open"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load([]byte(tt.yaml), envMap(tt.env), os.ReadFile)
			if tt.want != nil {
				if err == nil {
					t.Fatalf("load succeeded with %+v, want problems", c)
				}
				assertProblems(t, problemsOf(t, err), tt.want)
				return
			}
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseTokenFile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr int
	}{
		{name: "empty", in: ""},
		{name: "comments and blanks", in: "# a\n\n   \n# b\n"},
		{name: "one token", in: token32, want: []string{token32}},
		{name: "CRLF and padding", in: " " + token32 + "==\r\n", want: []string{token32 + "=="}},
		{name: "b64token alphabet", in: "abcDEF123-._~+/abcDEF123-._~+/abcDEF=", want: []string{"abcDEF123-._~+/abcDEF123-._~+/abcDEF="}},
		{name: "too short", in: "abc\n", wantErr: 1},
		{name: "bad characters", in: token32 + "!\n" + token32 + "\n", want: []string{token32}, wantErr: 1},
		{name: "only padding", in: strings.Repeat("=", 40), wantErr: 1},
		{name: "inner space", in: token32 + " " + token32, wantErr: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := parseTokenFile([]byte(tt.in))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("tokens = %q, want %q", got, tt.want)
			}
			if len(errs) != tt.wantErr {
				t.Errorf("errors = %v, want %d", errs, tt.wantErr)
			}
		})
	}
}

func TestSuggestKey(t *testing.T) {
	tests := []struct {
		name    string
		section reflect.Type
		key     string
		want    string
	}{
		{"case", reflect.TypeFor[LogConfig](), "LEVEL", "level"},
		{"dashes", reflect.TypeFor[Config](), "data-dir", "data_dir"},
		{"missing letter", reflect.TypeFor[TokenConfig](), "acess_token_ttl", "access_token_ttl"},
		{"extra letter", reflect.TypeFor[TokenConfig](), "auth_codee_ttl", "auth_code_ttl"},
		{"transposition", reflect.TypeFor[TokenConfig](), "singing_alg", "signing_alg"},
		{"section name", reflect.TypeFor[Config](), "regsitration", "registration"},
		{"unrelated word", reflect.TypeFor[Config](), "bogus", ""},
		{"key of another section", reflect.TypeFor[LogConfig](), "listen", ""},
		{"too far for a short key", reflect.TypeFor[LogConfig](), "fmt", ""},
		{"a tie suggests nothing", reflect.TypeFor[Config](), "logi", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := suggestKey(tt.section, tt.key); got != tt.want {
				t.Errorf("suggestKey(%s, %q) = %q, want %q", tt.section.Name(), tt.key, got, tt.want)
			}
		})
	}
}
