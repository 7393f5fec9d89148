package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/config"
)

// TestRegistrationConfigGovernance: the mode, the rate limits and the
// client expiry reach the server as configured.
func TestRegistrationConfigGovernance(t *testing.T) {
	tok := strings.Repeat("a", 40)
	rc := config.Default().Registration
	rc.Mode, rc.InitialAccessTokens = config.RegistrationToken, []string{tok}
	rc.MaxPerIP, rc.MaxTotal, rc.RateWindow = 6, 60, config.Duration(time.Hour)
	got, err := registrationConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Disabled || len(got.InitialAccessTokenHashes) != 1 {
		t.Errorf("mode token: %+v", got)
	}
	if got.PerIP.Burst != 6 || got.PerIP.PerMinute != 0.1 || got.Total.Burst != 60 || got.Total.PerMinute != 1 {
		t.Errorf("limits: per IP %+v, total %+v", got.PerIP, got.Total)
	}
	if got.ClientExpiry != 720*time.Hour {
		t.Errorf("client expiry %s, want 720h", got.ClientExpiry)
	}
	rc.Mode, rc.ClientExpiry = config.RegistrationOff, 0
	if got, err = registrationConfig(rc); err != nil || !got.Disabled || got.ClientExpiry >= 0 {
		t.Errorf("mode off, expiry 0: %+v %v, want disabled and never expiring", got, err)
	}
}

// TestSoftwareStatementsConfig: issuers trusted for software statements
// become the verifier; others are left out; bad keys are refused.
func TestSoftwareStatementsConfig(t *testing.T) {
	const ecKey = `{"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"1"}]}`
	v, err := softwareStatements([]config.TrustedIssuer{{Issuer: "https://sw.example", JWKS: ecKey, Uses: []string{config.UseSoftwareStatement}}}, nil)
	if err != nil || v == nil {
		t.Fatalf("verifier %v, %v", v, err)
	}
	if v, err := softwareStatements([]config.TrustedIssuer{{Issuer: "https://other.example", JWKS: ecKey, Uses: []string{"jwt_bearer"}}}, nil); err != nil || v != nil {
		t.Errorf("an issuer not trusted for software statements made a verifier: %v %v", v, err)
	}
	if _, err := softwareStatements([]config.TrustedIssuer{{Issuer: "https://sw.example", JWKSURI: "https://sw.example/jwks", Uses: []string{config.UseSoftwareStatement}}}, nil); err == nil {
		t.Error("a jwks_uri without a fetcher was accepted")
	}
	if _, err := softwareStatements([]config.TrustedIssuer{{Issuer: "https://sw.example", JWKS: `{"keys":[{"kty":"oct","k":"AAAA"}]}`, Uses: []string{config.UseSoftwareStatement}}}, nil); err == nil {
		t.Error("a symmetric key was accepted")
	}
}

// TestHubExpiresClientsHourly: serve's lead jobs include the
// hourly expiry of unused self-registered clients, and it runs.
func TestHubExpiresClientsHourly(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load("", func(k string) (string, bool) {
		v, ok := map[string]string{"AGENTID_DATA_DIR": dir}[k]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := newHub(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, j := range h.leadJobs() {
		if j.Name == "client-expiry" {
			if j.Every != time.Hour {
				t.Errorf("runs every %s, want hourly", j.Every)
			}
			if err := j.Run(t.Context()); err != nil {
				t.Fatalf("run: %v", err)
			}
			return
		}
	}
	t.Fatal("serve has no client expiry task")
}
