package saml

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	crewsaml "github.com/crewjam/saml"

	"github.com/agentid/agentid/internal/connectors"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store"
)

// Reasons of a refusal (a *connectors.Error, like an OIDC connector's),
// for the audit log.
const (
	ReasonConfig   = connectors.ReasonConfig // the connector cannot be used as configured
	ReasonDenied   = connectors.ReasonDenied // the provider answered with a non-success status
	ReasonClaims   = connectors.ReasonClaims // the assertion lacks what the mapping needs
	ReasonAttempt  = "attempt"               // no attempt of this browser matches, or it expired
	ReasonResponse = "response"              // the Response or its assertion does not verify
	ReasonReplay   = "replay"                // the assertion was already used
)

func fail(reason, msg string, err error) *connectors.Error {
	return connectors.NewError(reason, msg, err)
}

// random is 256 bits, base64url: 43 characters, inside the 80 bytes the
// bindings allow a RelayState (saml-bindings §3.4.3).
func random(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [32]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// attemptAAD binds a sealed attempt to its purpose and connector.
func attemptAAD(connectorID string) string { return "saml-attempt|" + connectorID }

// AttemptCookieName is the name of the cookie that keeps the attempt whose
// RelayState is relayState: each attempt has its own (two tabs can sign in
// at once), and the name reveals nothing of the RelayState.
func AttemptCookieName(relayState string) string {
	sum := sha256.Sum256([]byte("agentid saml attempt v1\x00" + relayState))
	return "agentid_saml_" + base64.RawURLEncoding.EncodeToString(sum[:9])
}

// SealAttempt seals a with the hub's keyring for the attempt cookie.
func SealAttempt(kr *keyring.Keyring, r io.Reader, a *Attempt) (string, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return "", err
	}
	sealed, err := kr.Seal(r, b, attemptAAD(a.ConnectorID))
	if err != nil {
		return "", err
	}
	return string(sealed), nil
}

// errAttempt: the cookie does not open as an attempt of this connector.
var errAttempt = errors.New("saml attempt cookie does not open")

// OpenAttempt opens a sealed attempt of the connector; Finish checks the
// rest (RelayState, expiry).
func OpenAttempt(kr *keyring.Keyring, sealed, connectorID string) (*Attempt, error) {
	b, err := kr.Open([]byte(sealed), attemptAAD(connectorID))
	if err != nil {
		return nil, errAttempt
	}
	var a Attempt
	if err := json.Unmarshal(b, &a); err != nil || a.ConnectorID != connectorID {
		return nil, errAttempt
	}
	return &a, nil
}

// AttemptCookie is the cookie that keeps a sealed attempt until the
// provider posts back to path (the connector's ACS). The provider's POST
// is a cross-site request, which a SameSite=Lax or Strict cookie does not
// reach, so it is SameSite=None, which browsers take only with Secure:
// the hub must be served over https (loopback http is the exception
// browsers make for Secure). What makes it safe to send cross-site is
// that it opens only with the hub's key and only for the RelayState the
// provider echoes, and is good for one Response of one AuthnRequest.
func AttemptCookie(a *Attempt, sealed, path string, now time.Time) *http.Cookie {
	return &http.Cookie{
		Name: AttemptCookieName(a.RelayState), Value: sealed, Path: path,
		MaxAge: int(AttemptTTL / time.Second), Expires: now.Add(AttemptTTL),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteNoneMode,
	}
}

// replayKey namespaces a connector's assertion ids in the single-use table.
func replayKey(connectorID string) string { return "saml-assertion:" + connectorID }

// replayCache is the library's replay hook over the store's single-use
// table, for one Finish: an assertion id is kept until the assertion
// could no longer be accepted anyway, on every replica.
type replayCache struct {
	ctx context.Context
	st  ReplayStore
	key string
	now func() time.Time
}

func (c replayCache) Consume(id string, expiresAt time.Time) error {
	// Ids are the provider's xs:ID values, of any length: keep a digest.
	sum := sha256.Sum256([]byte(id))
	err := c.st.UseJTI(c.ctx, c.key, base64.RawURLEncoding.EncodeToString(sum[:]), expiresAt, c.now())
	if errors.Is(err, store.ErrConflict) {
		return crewsaml.ErrAssertionReplayed
	}
	return err
}
