// Package vault keeps agentid's connections: the credentials people (and
// tenants) hold for downstream providers, so that agents never see them.
// Each connection's secret is sealed with AES-256-GCM under a data key of
// its own, and the data key is wrapped by the key-encryption key (package
// keyring); the AAD binds every ciphertext to tenant, provider, owner,
// connection id and purpose. The vault runs the provider side of OAuth 2
// (authorization URL with PKCE, code exchange, refresh, revocation), keeps
// access tokens fresh with one refresh at a time per connection across
// processes (a lease in the store), rotates API keys with an overlap and
// re-wraps data keys when the KEK rotates.
//
// It decides nothing about who may retrieve a credential: the server checks
// the MCP server, the subject token, consent and policy first.
package vault

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store"
)

// Errors. They never carry a credential or a provider's response body.
var (
	// ErrNoConnection: the owner holds no usable connection to the
	// provider with the scopes asked for.
	ErrNoConnection = errors.New("vault: no connection")
	// ErrNeedsReauth: the connection exists but the provider no longer
	// honours it (status needs_reauth): the person must connect again.
	ErrNeedsReauth = errors.New("vault: connection needs the person to connect again")
	// ErrProviderUnavailable: the provider failed a refresh (network, 5xx,
	// rate limit) and the access token has expired; try again later.
	ErrProviderUnavailable = errors.New("vault: provider unavailable")
	// ErrDecrypt: a ciphertext does not open (tampered, moved to another
	// row, or sealed under a KEK the keyring lacks).
	ErrDecrypt = errors.New("vault: credential does not open")
)

// Config configures a Vault. Store and Keyring are required.
type Config struct {
	Store   store.Store
	Keyring *keyring.Keyring
	// HTTPClient calls providers' token and revocation endpoints (and
	// discovery). Nil: a client with a 10 second timeout.
	HTTPClient *http.Client
	// Now is the clock (nil: time.Now); Rand the randomness (nil:
	// crypto/rand).
	Now  func() time.Time
	Rand io.Reader
	// Holder names this process in refresh leases ("": a random id).
	Holder string
	// RefreshMargin: an access token expiring within it is refreshed
	// before it is handed out (default 60s). LeaseTTL bounds a refresh
	// lease (default 30s). KeepAlive: a connection not refreshed for this
	// long is refreshed in the background so the provider does not expire
	// an idle refresh token (default and maximum 24h).
	RefreshMargin time.Duration
	LeaseTTL      time.Duration
	KeepAlive     time.Duration
	// KeyOverlap is the default overlap of a rotated API key (24h).
	KeyOverlap time.Duration
	// Logger receives operational messages; never a secret. Nil discards.
	Logger *slog.Logger
	// Tenants are the tenants whose connections RefreshDue looks after
	// (nil: store.DefaultTenant).
	Tenants []string
	// Refreshed, when set, is told the outcome of each refresh this
	// process asked a provider for (metrics): RefreshRefreshed,
	// RefreshNeedsReauth (the provider refused the grant, or there was no
	// refresh token) or RefreshFailed (backing off).
	Refreshed func(outcome string)
}

// Outcomes of a refresh, as Config.Refreshed is told them.
const (
	RefreshRefreshed   = "refreshed"
	RefreshNeedsReauth = "needs_reauth"
	RefreshFailed      = "failed"
)

// Vault is the connection keeper. It is safe for concurrent use.
type Vault struct {
	cfg Config

	// flights are the refreshes running in this process, by connection
	// (single flight across goroutines; the store lease does it across
	// processes).
	flightMu sync.Mutex
	flights  map[string]*flight
}

// Defaults of Config.
const (
	DefaultRefreshMargin = 60 * time.Second
	DefaultLeaseTTL      = 30 * time.Second
	DefaultKeepAlive     = 24 * time.Hour
	DefaultKeyOverlap    = 24 * time.Hour
)

// New checks cfg, fills its defaults and returns a Vault.
func New(cfg Config) (*Vault, error) {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("vault: Config.Store is required"))
	}
	if cfg.Keyring == nil {
		errs = append(errs, errors.New("vault: Config.Keyring is required"))
	}
	if cfg.RefreshMargin < 0 || cfg.LeaseTTL < 0 || cfg.KeepAlive < 0 || cfg.KeyOverlap < 0 {
		errs = append(errs, errors.New("vault: durations must not be negative"))
	}
	if cfg.KeepAlive > DefaultKeepAlive {
		errs = append(errs, fmt.Errorf("vault: Config.KeepAlive must not exceed %s", DefaultKeepAlive))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Holder == "" {
		b := make([]byte, 12)
		if _, err := io.ReadFull(cfg.Rand, b); err != nil {
			return nil, fmt.Errorf("vault: reading randomness: %w", err)
		}
		cfg.Holder = base64.RawURLEncoding.EncodeToString(b)
	}
	if cfg.RefreshMargin == 0 {
		cfg.RefreshMargin = DefaultRefreshMargin
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.KeyOverlap == 0 {
		cfg.KeyOverlap = DefaultKeyOverlap
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Tenants) == 0 {
		cfg.Tenants = []string{store.DefaultTenant}
	}
	return &Vault{cfg: cfg, flights: map[string]*flight{}}, nil
}

// Owner is who a connection belongs to.
type Owner struct {
	Kind string // store.OwnerUser | store.OwnerTenant
	ID   string
}

// Credential is what a retrieval hands an MCP server.
type Credential struct {
	ConnectionID string
	ProviderID   string
	Kind         string // store.ProviderOAuth2 | store.ProviderAPIKey
	// AccessToken and TokenType (OAuth 2), or the API key in AccessToken
	// with Header/HeaderValue or Query telling where it goes.
	AccessToken string
	TokenType   string
	Header      string
	HeaderValue string
	Query       string
	Scopes      []string
	// ExpiresAt is zero when the credential does not expire.
	ExpiresAt time.Time
}

// AuthRequest starts a provider's authorization-code flow. The caller
// keeps State and Verifier bound to the person's browser session and
// sends the person to URL.
type AuthRequest struct {
	URL      string
	State    string
	Verifier string // "" when the provider has PKCE off
	// Scopes are the scopes asked for (all of the provider's when none
	// were named); pass them to CompleteAuth.
	Scopes []string
}
