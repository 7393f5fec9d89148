package server

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/agentid/agentid/internal/connectors"
	"github.com/agentid/agentid/internal/connectors/saml"
	"github.com/agentid/agentid/internal/store"
)

// SAML connectors (internal/connectors/saml): GET /login/saml/{id} sends
// the person to the identity provider with an AuthnRequest, the provider
// posts its Response to /login/saml/{id}/acs, and /login/saml/{id}/metadata
// is this hub's service-provider metadata for the provider's administrator.
// After the Response is accepted the person is signed in exactly as through
// an OIDC connector (signInConnectorIdentity).

// samlPathPrefix is where SAML sign-in lives.
const samlPathPrefix = "/login/saml/"

// samlACSPattern is the assertion consumer service: a cross-site POST by
// design (the provider's page posts the form), so it is exempt from the
// cross-origin protection; the sealed attempt bound to the RelayState and
// the Response's signature are what authenticate it.
const samlACSPattern = "POST " + samlPathPrefix + "{id}/acs"

// samlAttemptKey namespaces the single-use attempts in store.UseJTI.
const samlAttemptKey = "saml-attempt"

// samlProvider builds connector c's service provider; its URLs hang off
// the hub's issuer.
func (s *Server) samlProvider(c *store.Connector) (*saml.Provider, error) {
	base := s.issuer + samlPathPrefix + c.ID
	return saml.New(saml.Config{
		ConnectorID: c.ID, EntityID: c.ClientID, ACSURL: base + "/acs", MetadataURL: base + "/metadata",
		IdPMetadataXML: []byte(c.SAMLMetadata), IdPEntityID: c.Issuer,
		Mapping: c.Claims,
	}, saml.Options{Replay: s.st, Now: s.now, Rand: s.rand})
}

// samlConnectorFor is connectorFor for a SAML connector, with its provider.
func (s *Server) samlConnectorFor(w http.ResponseWriter, r *http.Request) (*store.Connector, *saml.Provider, bool) {
	c, ok := s.connectorFor(w, r)
	if !ok {
		return nil, nil, false
	}
	if c.Type != store.ConnectorSAML {
		s.pages.errorPage(w, http.StatusNotFound, "Unknown sign-in option", "This sign-in option does not exist.")
		return nil, nil, false
	}
	p, err := s.samlProvider(c)
	if err != nil {
		// The store holds what was checked when it was configured; this is
		// a hub upgrade or a hand-edited row.
		s.log.ErrorContext(r.Context(), "saml connector misconfigured", "request_id", requestID(r.Context()), "connector", c.ID, "err", err)
		s.pages.errorPage(w, http.StatusServiceUnavailable, "Sign-in option unavailable",
			"This sign-in option cannot be used as configured. Ask your administrator.")
		return nil, nil, false
	}
	return c, p, true
}

// samlCookieName names the attempt cookie for a RelayState.
func (s *Server) samlCookieName(relayState string) string {
	name := saml.AttemptCookieName(relayState)
	if s.secure {
		return "__Secure-" + name
	}
	return name
}

// samlCookiePath confines attempt cookies to the connector's ACS.
func (s *Server) samlCookiePath(id string) string {
	p := samlPathPrefix + id + "/acs"
	if u, err := url.Parse(s.issuer); err == nil {
		return strings.TrimSuffix(u.Path, "/") + p
	}
	return p
}

// handleSAMLStart sends the person to the identity provider, keeping the
// attempt sealed in a cookie of this browser (saml.AttemptCookie).
func (s *Server) handleSAMLStart(w http.ResponseWriter, r *http.Request) {
	c, p, ok := s.samlConnectorFor(w, r)
	if !ok {
		return
	}
	returnTo := safeReturn(r.URL.Query().Get("return_to"))
	to, a, err := p.Begin(returnTo)
	if err != nil {
		s.connectorFailed(w, r, c, returnTo, err)
		return
	}
	sealed, err := saml.SealAttempt(s.cfg.Keyring, s.rand, a)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	ck := saml.AttemptCookie(a, sealed, s.samlCookiePath(c.ID), s.now())
	ck.Name = s.samlCookieName(a.RelayState)
	http.SetCookie(w, ck)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// handleSAMLACS finishes a sign-in through a SAML connector: this
// browser's attempt for the RelayState (single use on every replica), the
// Response's checks (saml.Provider.Finish), then the sign-in.
func (s *Server) handleSAMLACS(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		s.pages.errorPage(w, http.StatusBadRequest, "Sign-in failed", "The identity provider's answer could not be read.")
		return
	}
	relay := r.PostForm.Get("RelayState")
	id := r.PathValue("id")
	var a *saml.Attempt
	if relay != "" && len(relay) <= 80 {
		name := s.samlCookieName(relay)
		if ck, err := r.Cookie(name); err == nil && len(ck.Value) <= maxFlowCookie {
			a, _ = saml.OpenAttempt(s.cfg.Keyring, ck.Value, id)
		}
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: s.samlCookiePath(id), MaxAge: -1,
			HttpOnly: true, Secure: true, SameSite: http.SameSiteNoneMode})
	}
	if a == nil {
		s.pages.errorPage(w, http.StatusBadRequest, "Sign-in expired",
			"This sign-in did not start in this browser or took too long. Go back to the login page and try again.")
		return
	}
	sum := sha256.Sum256([]byte(a.RelayState))
	if !s.spendAttempt(w, r, samlAttemptKey, base64.RawURLEncoding.EncodeToString(sum[:]), a.Expires) {
		return
	}
	c, p, ok := s.samlConnectorFor(w, r)
	if !ok {
		return
	}
	ident, err := p.Finish(ctx, a, r.PostForm.Get("SAMLResponse"), relay)
	if err != nil {
		s.connectorFailed(w, r, c, safeReturn(a.ReturnTo), err)
		return
	}
	s.signInConnectorIdentity(w, r, c, &connectors.Identity{
		Subject: ident.Subject, Username: ident.Username, Email: ident.Email, Name: ident.Name,
		Groups: ident.Groups, Roles: ident.Roles, Attributes: ident.Attributes,
	}, a.ReturnTo)
}

// handleSAMLMetadata serves this hub's service-provider metadata for the
// connector.
func (s *Server) handleSAMLMetadata(w http.ResponseWriter, r *http.Request) {
	_, p, ok := s.samlConnectorFor(w, r)
	if !ok {
		return
	}
	b, err := p.Metadata()
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	_, _ = w.Write(b)
}
