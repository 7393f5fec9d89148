package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []wantProblem // nil: valid
	}{
		{name: "defaults", mutate: func(*Config) {}},
		{name: "https issuer", mutate: func(c *Config) { c.Issuer = "https://auth.example.com" }},
		{name: "https issuer with path", mutate: func(c *Config) { c.Issuer = "https://example.com/tenants/a" }},
		{name: "http localhost", mutate: func(c *Config) { c.Issuer = "http://localhost:8080" }},
		{name: "http v6 loopback", mutate: func(c *Config) { c.Issuer = "http://[::1]:8080" }},
		{name: "postgres", mutate: func(c *Config) { c.Store.DSN = "postgresql://agent@db/agentid" }},
		{name: "sqlite file URI", mutate: func(c *Config) { c.Store.DSN = "file:agentid.db?_pragma=busy_timeout(5000)" }},
		{name: "kek value instead of file", mutate: func(c *Config) { c.KEK.File, c.KEK.Value = "", "k" }},
		{name: "closed registration with tokens", mutate: func(c *Config) {
			c.Registration.Mode = RegistrationToken
			c.Registration.InitialAccessTokens = []string{token32}
		}},
		{name: "registration disabled", mutate: func(c *Config) { c.Registration.Mode = RegistrationOff }},
		{name: "client expiry off", mutate: func(c *Config) { c.Registration.ClientExpiry = 0 }},
		{name: "trusted issuer with inline keys", mutate: func(c *Config) {
			c.TrustedIssuers = []TrustedIssuer{{Issuer: "https://issuer.example", JWKS: `{"keys":[{"kty":"EC"}]}`, Uses: []string{UseSoftwareStatement}}}
		}},
		{name: "maximum TTLs", mutate: func(c *Config) {
			c.Tokens.AccessTokenTTL = Duration(time.Hour)
			c.Tokens.AuthCodeTTL = Duration(60 * time.Second)
		}},
		{name: "listen any port", mutate: func(c *Config) { c.Listen = ":0" }},
		{name: "tls, metrics and proxies", mutate: func(c *Config) {
			c.TLS = TLSConfig{CertFile: "/etc/agentid/tls.crt", KeyFile: "/etc/agentid/tls.key"}
			c.Metrics.Listen = "127.0.0.1:9464"
			c.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"}
		}},
		{name: "tls, metrics and proxies problems", mutate: func(c *Config) {
			c.TLS.KeyFile = "/etc/agentid/tls.key"
			c.Metrics.Listen = c.Listen
			c.TrustedProxies = []string{"10.0.0.0/33", "proxy.internal", "0.0.0.0/0"}
		}, want: []wantProblem{
			{"tls.cert_file", 0, []string{"required when tls.key_file is set"}},
			{"metrics.listen", 0, []string{"must differ from listen"}},
			{"trusted_proxies[0]", 0, []string{"want an IP address or CIDR prefix"}},
			{"trusted_proxies[1]", 0, []string{`got "proxy.internal"`}},
			{"trusted_proxies[2]", 0, []string{"trusts every address"}},
		}},
		{name: "pprof on the metrics listener", mutate: func(c *Config) { c.Metrics.Listen = "127.0.0.1:9464"; c.Metrics.Pprof = true }},
		{name: "pprof without a metrics listener", mutate: func(c *Config) { c.Metrics.Pprof = true }, want: []wantProblem{
			{"metrics.pprof", 0, []string{"needs metrics.listen"}},
		}},
		{name: "metrics listen malformed", mutate: func(c *Config) { c.Metrics.Listen = "9464" }, want: []wantProblem{
			{"metrics.listen", 0, []string{"want host:port"}},
		}},
		{name: "cimd loopback allowance on loopback", mutate: func(c *Config) { c.CIMD.AllowLoopback = true }},
		{name: "cimd loopback allowance on [::1]", mutate: func(c *Config) { c.Listen = "[::1]:8080"; c.CIMD.AllowLoopback = true }},
		{name: "cimd off", mutate: func(c *Config) { c.CIMD.Enabled = false }},
		{name: "connector", mutate: func(c *Config) {
			c.Login.Local = false
			c.Connectors = []ConnectorConfig{{ID: "corp", Issuer: "https://idp.corp.example", ClientID: "agentid",
				ClientSecretFile: "/run/secrets/corp", EmailDomains: []string{"corp.example"}, Claims: ConnectorClaims{Groups: "groups"}}}
		}},
		{name: "saml connector", mutate: func(c *Config) {
			c.Connectors = []ConnectorConfig{{ID: "corp-saml", Type: "saml", IdPMetadataFile: "/etc/agentid/idp.xml",
				EmailDomains: []string{"corp.example"}, Claims: ConnectorClaims{Groups: "memberOf"}}}
		}},
		{name: "saml connector problems", mutate: func(c *Config) {
			c.Connectors = []ConnectorConfig{
				{ID: "s", Type: "saml", ClientSecretFile: "/s", Scopes: []string{"groups"}},
				{ID: "o", Issuer: "https://o.example", ClientID: "x", IdPMetadataFile: "/m.xml"},
			}
		}, want: []wantProblem{
			{"connectors[0].idp_metadata_file", 0, []string{"required for type saml"}},
			{"connectors[0].client_secret_file", 0, []string{"no client secret"}},
			{"connectors[0].scopes", 0, []string{"no scopes"}},
			{"connectors[1].idp_metadata_file", 0, []string{"only for type saml"}},
		}},
		{name: "loopback connector in development", mutate: func(c *Config) {
			c.Login.AllowLoopbackConnectors = true
			c.Connectors = []ConnectorConfig{{ID: "dev", Issuer: "http://127.0.0.1:5556", ClientID: "agentid"}}
		}},
		{name: "connector problems", mutate: func(c *Config) {
			c.Connectors = []ConnectorConfig{
				{ID: "Corp", Type: "ldap", Issuer: "http://idp.corp.example", EmailDomains: []string{"Corp.example"}},
				{ID: "b", Issuer: "https://b.example?x=1", ClientID: "x", EmailDomains: []string{"b.example"}},
				{ID: "b", Issuer: "http://127.0.0.1:1", ClientID: "x", EmailDomains: []string{"b.example"}},
			}
		}, want: []wantProblem{
			{"connectors[0].id", 0, []string{"lower-case"}},
			{"connectors[0].type", 0, []string{"must be oidc or saml"}},
			{"connectors[0].issuer", 0, []string{"must be https"}},
			{"connectors[0].client_id", 0, []string{"required"}},
			{"connectors[0].email_domains", 0, []string{"lower-case domain"}},
			{"connectors[1].issuer", 0, []string{"without user, query or fragment"}},
			{"connectors[2].id", 0, []string{"the same id as connectors[1]"}},
			{"connectors[2].issuer", 0, []string{"login.allow_loopback_connectors"}},
			{"connectors[2].email_domains", 0, []string{"already routes to connectors[1]"}},
		}},
		{name: "loopback connectors on every interface", mutate: func(c *Config) { c.Listen = ":8080"; c.Login.AllowLoopbackConnectors = true },
			want: []wantProblem{{"login.allow_loopback_connectors", 0, []string{"only while listen is a loopback address"}}}},
		{name: "cimd loopback allowance on every interface", mutate: func(c *Config) { c.Listen = ":8080"; c.CIMD.AllowLoopback = true },
			want: []wantProblem{{"cimd.allow_loopback", 0, []string{"only while listen is a loopback address"}}}},
		{name: "cimd loopback allowance on a public address", mutate: func(c *Config) { c.Listen = "192.0.2.1:8080"; c.CIMD.AllowLoopback = true },
			want: []wantProblem{{"cimd.allow_loopback", 0, []string{"192.0.2.1:8080"}}}},

		{name: "issuer missing", mutate: func(c *Config) { c.Issuer = "" },
			want: []wantProblem{{"issuer", 0, []string{"issuer: required"}}}},
		{name: "issuer http remote", mutate: func(c *Config) { c.Issuer = "http://auth.example.com" },
			want: []wantProblem{{"issuer", 0, []string{"must use https"}}}},
		{name: "issuer ftp", mutate: func(c *Config) { c.Issuer = "ftp://auth.example.com" },
			want: []wantProblem{{"issuer", 0, []string{"must be an https URL"}}}},
		{name: "issuer relative", mutate: func(c *Config) { c.Issuer = "/auth" },
			want: []wantProblem{{"issuer", 0, []string{"must be an https URL"}}, {"issuer", 0, []string{"missing host"}}}},
		{name: "issuer opaque", mutate: func(c *Config) { c.Issuer = "https:auth" },
			want: []wantProblem{{"issuer", 0, []string{"not a valid URL"}}}},
		{name: "issuer query", mutate: func(c *Config) { c.Issuer = "https://a.example?x=1" },
			want: []wantProblem{{"issuer", 0, []string{"RFC 8414 §2", "query"}}}},
		{name: "issuer empty query", mutate: func(c *Config) { c.Issuer = "https://a.example?" },
			want: []wantProblem{{"issuer", 0, []string{"query"}}}},
		{name: "issuer fragment", mutate: func(c *Config) { c.Issuer = "https://a.example#" },
			want: []wantProblem{{"issuer", 0, []string{"fragment"}}}},
		{name: "issuer userinfo", mutate: func(c *Config) { c.Issuer = "https://u@a.example" },
			want: []wantProblem{{"issuer", 0, []string{"user information"}}}},
		{name: "issuer trailing slash", mutate: func(c *Config) { c.Issuer = "https://a.example/" },
			want: []wantProblem{{"issuer", 0, []string{`must not end with "/"`}}}},
		{name: "listen without port", mutate: func(c *Config) { c.Listen = "127.0.0.1" },
			want: []wantProblem{{"listen", 0, []string{"want host:port"}}}},
		{name: "listen bad port", mutate: func(c *Config) { c.Listen = "127.0.0.1:http" },
			want: []wantProblem{{"listen", 0, []string{"invalid port"}}}},
		{name: "listen port too big", mutate: func(c *Config) { c.Listen = "127.0.0.1:65536" },
			want: []wantProblem{{"listen", 0, []string{"invalid port"}}}},
		{name: "data dir", mutate: func(c *Config) { c.DataDir = "" },
			want: []wantProblem{{"data_dir", 0, []string{"data_dir: required"}}}},
		{name: "dsn missing", mutate: func(c *Config) { c.Store.DSN = "" },
			want: []wantProblem{{"store.dsn", 0, []string{"store.dsn: required"}}}},
		{name: "dsn other scheme", mutate: func(c *Config) { c.Store.DSN = "mysql://u@h/db" },
			want: []wantProblem{{"store.dsn", 0, []string{"unsupported scheme"}}}},
		{name: "dsn keyword form", mutate: func(c *Config) { c.Store.DSN = "host=db user=agent" },
			want: []wantProblem{{"store.dsn", 0, []string{"keyword/value"}}}},
		{name: "no kek", mutate: func(c *Config) { c.KEK.File = "" },
			want: []wantProblem{{"kek.file", 0, []string{"kek.file: required"}}}},
		{name: "access token ttl too long", mutate: func(c *Config) { c.Tokens.AccessTokenTTL = Duration(61 * time.Minute) },
			want: []wantProblem{{"tokens.access_token_ttl", 0, []string{"at most 1h, got 1h1m"}}}},
		{name: "access token ttl zero", mutate: func(c *Config) { c.Tokens.AccessTokenTTL = 0 },
			want: []wantProblem{{"tokens.access_token_ttl", 0, []string{"at least 1s, got 0s"}}}},
		{name: "auth code ttl too long", mutate: func(c *Config) { c.Tokens.AuthCodeTTL = Duration(61 * time.Second) },
			want: []wantProblem{{"tokens.auth_code_ttl", 0, []string{"at most 1m"}}}},
		{name: "reuse interval over a minute", mutate: func(c *Config) { c.Tokens.RefreshTokenReuseInterval = Duration(2 * time.Minute) },
			want: []wantProblem{{"tokens.refresh_token_reuse_interval", 0, []string{"at most 1m"}}}},
		{name: "reuse interval negative", mutate: func(c *Config) { c.Tokens.RefreshTokenReuseInterval = Duration(-time.Second) },
			want: []wantProblem{{"tokens.refresh_token_reuse_interval", 0, []string{"at least 0s"}}}},
		{name: "delegation depth zero", mutate: func(c *Config) { c.Tokens.MaxDelegationDepth = 0 },
			want: []wantProblem{{"tokens.max_delegation_depth", 0, []string{"between 1 and 16, got 0"}}}},
		{name: "delegation depth too deep", mutate: func(c *Config) { c.Tokens.MaxDelegationDepth = 17 },
			want: []wantProblem{{"tokens.max_delegation_depth", 0, []string{"between 1 and 16, got 17"}}}},
		{name: "refresh ttl negative", mutate: func(c *Config) { c.Tokens.RefreshTokenTTL = Duration(-time.Hour) },
			want: []wantProblem{{"tokens.refresh_token_ttl", 0, []string{"at least 1m"}}}},
		{name: "key pre-publish zero", mutate: func(c *Config) { c.Tokens.KeyPrePublish = 0 },
			want: []wantProblem{{"tokens.key_pre_publish", 0, []string{"at least 1s"}}}},
		{name: "signing alg case", mutate: func(c *Config) { c.Tokens.SigningAlg = "es256" },
			want: []wantProblem{{"tokens.signing_alg", 0, []string{"must be one of"}}}},
		{name: "signing alg none", mutate: func(c *Config) { c.Tokens.SigningAlg = "none" },
			want: []wantProblem{{"tokens.signing_alg", 0, []string{"must be one of"}}}},
		{name: "closed registration without tokens", mutate: func(c *Config) { c.Registration.Mode = RegistrationToken },
			want: []wantProblem{{"registration.initial_access_token_file", 0, []string{"required"}}}},
		{name: "token file while disabled", mutate: func(c *Config) {
			c.Registration.Mode = RegistrationOff
			c.Registration.InitialAccessTokenFile = "/t"
		}, want: []wantProblem{{"registration.initial_access_token_file", 0, []string{"registration.mode is off"}}}},
		{name: "unknown mode", mutate: func(c *Config) { c.Registration.Mode = "closed" },
			want: []wantProblem{{"registration.mode", 0, []string{"must be one of open, token, off"}}}},
		{name: "registration limits", mutate: func(c *Config) {
			c.Registration.MaxPerIP, c.Registration.MaxTotal, c.Registration.RateWindow, c.Registration.ClientExpiry = 0, 0, 0, Duration(time.Minute)
		}, want: []wantProblem{
			{"registration.max_per_ip", 0, []string{"at least 1"}},
			{"registration.max_total", 0, []string{"at least 1"}},
			{"registration.rate_window", 0, []string{"at least 1s"}},
			{"registration.client_expiry", 0, []string{"at least 1h"}},
		}},
		{name: "trusted issuer problems", mutate: func(c *Config) {
			c.TrustedIssuers = []TrustedIssuer{
				{Issuer: "https://a.example", JWKSURI: "http://a.example/jwks", Uses: []string{"jwt_bearer"}},
				{Issuer: "https://a.example", JWKS: `{"keys":[]}`, JWKSURI: "https://a.example/jwks"},
			}
		}, want: []wantProblem{
			{"trusted_issuers[0].jwks_uri", 0, []string{"https URL"}},
			{"trusted_issuers[0].uses", 0, []string{`unknown use "jwt_bearer"`}},
			{"trusted_issuers[1].issuer", 0, []string{"same issuer as trusted_issuers[0]"}},
			{"trusted_issuers[1]", 0, []string{"exactly one of jwks_uri, jwks and jwks_file"}},
			{"trusted_issuers[1].jwks", 0, []string{"not a JWK set"}},
			{"trusted_issuers[1].uses", 0, []string{"required"}},
		}},
		{name: "session ttl", mutate: func(c *Config) { c.Login.SessionTTL = Duration(time.Second) },
			want: []wantProblem{{"login.session_ttl", 0, []string{"at least 1m"}}}},
		{name: "attempt window", mutate: func(c *Config) { c.Login.AttemptWindow = 0 },
			want: []wantProblem{{"login.attempt_window", 0, []string{"at least 1s"}}}},
		{name: "attempts per user", mutate: func(c *Config) { c.Login.MaxAttemptsPerUser = 0 },
			want: []wantProblem{{"login.max_attempts_per_user", 0, []string{"at least 1"}}}},
		{name: "attempts per ip", mutate: func(c *Config) { c.Login.MaxAttemptsPerIP = -1 },
			want: []wantProblem{{"login.max_attempts_per_ip", 0, []string{"at least 1"}}}},
		{name: "log level", mutate: func(c *Config) { c.Log.Level = "INFO" },
			want: []wantProblem{{"log.level", 0, []string{`got "INFO"`}}}},
		{name: "log format", mutate: func(c *Config) { c.Log.Format = "xml" },
			want: []wantProblem{{"log.format", 0, []string{"json, text"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want problems")
			}
			assertProblems(t, problemsOf(t, err), tt.want)
		})
	}
}

// TestValidateReportsEveryProblem breaks one setting of each section and
// expects one problem per broken setting, each naming its setting.
func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Issuer = "http://auth.example.com"
	c.Listen = "nowhere"
	c.Store.DSN = "mysql://x"
	c.KEK.File = ""
	c.Tokens.AccessTokenTTL = Duration(2 * time.Hour)
	c.Tokens.SigningAlg = "HS256"
	c.Registration.Mode = RegistrationToken
	c.Login.MaxAttemptsPerIP = 0
	c.Log.Format = "xml"

	err := c.Validate()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Validate() = %v, want Problems", err)
	}
	want := []string{
		"issuer", "listen", "store.dsn", "kek.file", "tokens.access_token_ttl", "tokens.signing_alg",
		"registration.initial_access_token_file", "login.max_attempts_per_ip", "log.format",
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, s := range want {
		t.Run(s, func(t *testing.T) {
			if ps[i].Setting != s {
				t.Errorf("problem %d names %q, want %q", i, ps[i].Setting, s)
			}
		})
	}
}

func TestValidateNilWhenValid(t *testing.T) {
	// A typed-nil Problems inside an error interface would read as failure.
	if err := Default().Validate(); err != nil {
		t.Fatalf("Validate() = %#v", err)
	}
}

// TestOperationsDerived: with TLS a derived issuer is https; trusted
// proxies become prefixes, a bare address its own host prefix.
func TestOperationsDerived(t *testing.T) {
	c := Default()
	c.Issuer = ""
	c.TLS = TLSConfig{CertFile: "c", KeyFile: "k"}
	c.fillDerived()
	if c.Issuer != "https://127.0.0.1:8080" {
		t.Errorf("derived issuer %q", c.Issuer)
	}
	c.TrustedProxies = []string{"192.0.2.7", "10.1.2.3/8", "::ffff:192.0.2.8", "2001:db8::1"}
	var got []string
	for _, p := range c.TrustedProxyPrefixes() {
		got = append(got, p.String())
	}
	want := []string{"192.0.2.7/32", "10.0.0.0/8", "192.0.2.8/32", "2001:db8::1/128"}
	if !slices.Equal(got, want) {
		t.Errorf("prefixes %v, want %v", got, want)
	}
}

// TestOperationsFromFile: tls, metrics and trusted_proxies load from the
// file (the proxy list is file-only) and from the environment.
func TestOperationsFromFile(t *testing.T) {
	yaml := "tls:\n  cert_file: /etc/agentid/tls.crt\n  key_file: /etc/agentid/tls.key\nmetrics:\n  listen: 127.0.0.1:9464\ntrusted_proxies: [10.0.0.0/8, 192.0.2.7]\n"
	c, err := load([]byte(yaml), envMap(map[string]string{"AGENTID_ISSUER": ""}), noFiles)
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.CertFile != "/etc/agentid/tls.crt" || c.TLS.KeyFile != "/etc/agentid/tls.key" || c.Metrics.Listen != "127.0.0.1:9464" ||
		!slices.Equal(c.TrustedProxies, []string{"10.0.0.0/8", "192.0.2.7"}) {
		t.Fatalf("loaded %+v %+v %v", c.TLS, c.Metrics, c.TrustedProxies)
	}
	if c.Issuer != "https://127.0.0.1:8080" {
		t.Errorf("derived issuer with TLS: %q", c.Issuer)
	}
	_, err = load([]byte("trusted_proxies: 10.0.0.0/8\n"), envMap(nil), noFiles)
	if err == nil || !strings.Contains(err.Error(), "trusted_proxies") {
		t.Errorf("a scalar proxy list: %v", err)
	}
}
