package config

import (
	"bytes"
	"crypto/sha256"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsLoadOfNothing(t *testing.T) {
	got, err := load(nil, nil, noFiles)
	if err != nil {
		t.Fatalf("load(nothing): %v", err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("load(nothing) = %+v\nDefault() = %+v", got, want)
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

func TestDefaultValues(t *testing.T) {
	c := Default()
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"issuer", c.Issuer, "http://127.0.0.1:8080"},
		{"listen", c.Listen, "127.0.0.1:8080"},
		{"data_dir", c.DataDir, "./agentid-data"},
		{"store.dsn", c.Store.DSN, "agentid-data/agentid.db"},
		{"store.auto_migrate", c.Store.AutoMigrate, true},
		{"kek.file", c.KEK.File, "agentid-data/kek.key"},
		{"kek.value", c.KEK.Value, ""},
		{"tokens.access_token_ttl", c.Tokens.AccessTokenTTL, Duration(10 * time.Minute)},
		{"tokens.refresh_token_ttl", c.Tokens.RefreshTokenTTL, Duration(720 * time.Hour)},
		{"tokens.refresh_token_reuse_interval", c.Tokens.RefreshTokenReuseInterval, Duration(10 * time.Second)},
		{"tokens.auth_code_ttl", c.Tokens.AuthCodeTTL, Duration(60 * time.Second)},
		{"tokens.signing_alg", c.Tokens.SigningAlg, "ES256"},
		{"tokens.key_pre_publish", c.Tokens.KeyPrePublish, Duration(10 * time.Minute)},
		{"registration.enabled", c.Registration.Enabled, true},
		{"registration.open", c.Registration.Open, true},
		{"login.session_ttl", c.Login.SessionTTL, Duration(12 * time.Hour)},
		{"login.max_attempts_per_user", c.Login.MaxAttemptsPerUser, 5},
		{"login.max_attempts_per_ip", c.Login.MaxAttemptsPerIP, 20},
		{"login.attempt_window", c.Login.AttemptWindow, Duration(15 * time.Minute)},
		{"login.insecure_cookies", c.Login.InsecureCookies, false},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	if c.IsPostgres() {
		t.Error("default store is PostgreSQL, want SQLite")
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		out     string
		wantErr bool
	}{
		{in: "10m", want: 10 * time.Minute, out: "10m"},
		{in: "1h30m", want: 90 * time.Minute, out: "1h30m"},
		{in: "720h", want: 720 * time.Hour, out: "720h"},
		{in: "60s", want: time.Minute, out: "1m"},
		{in: "90s", want: 90 * time.Second, out: "1m30s"},
		{in: "1.5s", want: 1500 * time.Millisecond, out: "1.5s"},
		{in: "250ms", want: 250 * time.Millisecond, out: "250ms"},
		{in: "0s", want: 0, out: "0s"},
		{in: "1h0m1s", want: time.Hour + time.Second, out: "1h0m1s"},
		{in: "", wantErr: true},
		{in: "600", wantErr: true},
		{in: "10 minutes", wantErr: true},
		{in: "1d", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := d.UnmarshalText([]byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("UnmarshalText(%q) = %v, want error", tt.in, time.Duration(d))
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalText(%q): %v", tt.in, err)
			}
			if time.Duration(d) != tt.want {
				t.Errorf("UnmarshalText(%q) = %v, want %v", tt.in, time.Duration(d), tt.want)
			}
			out, _ := d.MarshalText()
			if string(out) != tt.out {
				t.Errorf("MarshalText = %q, want %q", out, tt.out)
			}
			var back Duration
			if err := back.UnmarshalText(out); err != nil || back != d {
				t.Errorf("round trip %q → %v (%v), want %v", out, time.Duration(back), err, time.Duration(d))
			}
		})
	}
}

func TestIssuerFromListen(t *testing.T) {
	tests := []struct {
		listen, want string
	}{
		{"127.0.0.1:8080", "http://127.0.0.1:8080"},
		{":9000", "http://127.0.0.1:9000"},
		{"0.0.0.0:8080", "http://127.0.0.1:8080"},
		{"[::]:8080", "http://127.0.0.1:8080"},
		{"[::1]:8443", "http://[::1]:8443"},
		{"localhost:8080", "http://localhost:8080"},
		{"10.0.0.5:8080", "http://10.0.0.5:8080"},
		{"127.0.0.1:0", ""},
		{"no-port", ""},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			if got := issuerFromListen(tt.listen); got != tt.want {
				t.Errorf("issuerFromListen(%q) = %q, want %q", tt.listen, got, tt.want)
			}
		})
	}
}

func TestIsPostgres(t *testing.T) {
	tests := []struct {
		dsn  string
		want bool
	}{
		{"postgres://agent@db/agentid", true},
		{"postgresql://agent@db/agentid", true},
		{"POSTGRES://agent@db/agentid", true},
		{"./agentid-data/agentid.db", false},
		{"file:agentid.db", false},
		{"mysql://x", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			c := &Config{Store: StoreConfig{DSN: tt.dsn}}
			if got := c.IsPostgres(); got != tt.want {
				t.Errorf("IsPostgres() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSecureCookies(t *testing.T) {
	tests := []struct {
		name     string
		issuer   string
		insecure bool
		want     bool
	}{
		{"https", "https://auth.example.com", false, true},
		{"http loopback v4", "http://127.0.0.1:8080", false, false},
		{"http loopback v6", "http://[::1]:8080", false, false},
		{"http localhost", "http://localhost:8080", false, false},
		{"http elsewhere", "http://10.0.0.5:8080", false, true},
		{"https forced insecure", "https://auth.example.com", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{Issuer: tt.issuer, Login: LoginConfig{InsecureCookies: tt.insecure}}
			if got := c.SecureCookies(); got != tt.want {
				t.Errorf("SecureCookies() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLoginLimits(t *testing.T) {
	tests := []struct {
		name          string
		l             LoginConfig
		userPerMinute float64
		userBurst     int
		ipPerMinute   float64
		ipBurst       int
	}{
		{"defaults", Default().Login, 5.0 / 15, 5, 20.0 / 15, 20},
		{"one a minute", LoginConfig{MaxAttemptsPerUser: 1, MaxAttemptsPerIP: 2, AttemptWindow: Duration(time.Minute)}, 1, 1, 2, 2},
		{"no window", LoginConfig{MaxAttemptsPerUser: 3, MaxAttemptsPerIP: 4}, 0, 3, 0, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pm, b := tt.l.PerUserLimit()
			if math.Abs(pm-tt.userPerMinute) > 1e-9 || b != tt.userBurst {
				t.Errorf("PerUserLimit() = %v, %d, want %v, %d", pm, b, tt.userPerMinute, tt.userBurst)
			}
			pm, b = tt.l.PerIPLimit()
			if math.Abs(pm-tt.ipPerMinute) > 1e-9 || b != tt.ipBurst {
				t.Errorf("PerIPLimit() = %v, %d, want %v, %d", pm, b, tt.ipPerMinute, tt.ipBurst)
			}
		})
	}
}

func TestInitialAccessTokenHashes(t *testing.T) {
	r := RegistrationConfig{InitialAccessTokens: []string{"a", token32}}
	got := r.InitialAccessTokenHashes()
	if len(got) != 2 {
		t.Fatalf("got %d hashes, want 2", len(got))
	}
	for i, tok := range r.InitialAccessTokens {
		want := sha256.Sum256([]byte(tok))
		if !bytes.Equal(got[i], want[:]) {
			t.Errorf("hash %d = %x, want %x", i, got[i], want)
		}
	}
	if n := len((RegistrationConfig{}).InitialAccessTokenHashes()); n != 0 {
		t.Errorf("no tokens gave %d hashes", n)
	}
}

func TestSlogLevel(t *testing.T) {
	tests := []struct {
		level string
		want  slog.Level
	}{
		{"debug", slog.LevelDebug},
		{"info", slog.LevelInfo},
		{"warn", slog.LevelWarn},
		{"error", slog.LevelError},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			if got := (LogConfig{Level: tt.level}).SlogLevel(); got != tt.want {
				t.Errorf("SlogLevel() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSchemaFieldsTagged keeps every exported field of the schema reachable
// from the file (and so from an env override): a field must carry a yaml
// name or say yaml:"-" on purpose.
func TestSchemaFieldsTagged(t *testing.T) {
	var check func(t *testing.T, typ reflect.Type, path string)
	check = func(t *testing.T, typ reflect.Type, path string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag, ok := f.Tag.Lookup("yaml")
			if !ok || tag == "" {
				t.Errorf("%s%s has no yaml tag", path, f.Name)
				continue
			}
			if tag != "-" && isSection(f.Type) {
				check(t, f.Type, path+tag+".")
			}
		}
	}
	check(t, reflect.TypeFor[Config](), "")
}

func TestSettingsKinds(t *testing.T) {
	sample := map[reflect.Type]string{
		reflect.TypeFor[string]():   "x",
		reflect.TypeFor[bool]():     "true",
		reflect.TypeFor[int]():      "3",
		reflect.TypeFor[Duration](): "3s",
		reflect.TypeFor[float64]():  "0.25",
	}
	for _, s := range settings() {
		t.Run(s.path, func(t *testing.T) {
			text, ok := sample[s.typ]
			if !ok {
				t.Fatalf("setting type %s is not supported by setLeaf", s.typ)
			}
			if err := setLeaf(reflect.New(s.typ).Elem(), text); err != nil {
				t.Errorf("setLeaf(%q): %v", text, err)
			}
		})
	}
}

func TestEnvNames(t *testing.T) {
	seen := map[string]string{}
	for _, s := range settings() {
		t.Run(s.path, func(t *testing.T) {
			want := "AGENTID_" + strings.ToUpper(strings.ReplaceAll(s.path, ".", "_"))
			if s.env != want {
				t.Errorf("env name %q, want %q", s.env, want)
			}
			if other, dup := seen[s.env]; dup {
				t.Errorf("env name %s shared with %s", s.env, other)
			}
			seen[s.env] = s.path
		})
	}
	for path, alias := range envAliases {
		if other, dup := seen[alias]; dup {
			t.Errorf("alias %s of %s collides with the override of %s", alias, path, other)
		}
	}
}
