package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// handleRegister is RFC 7591 dynamic client registration, governed
// (gov.go): the mode (off, initial access token, open), the rate limits
// per address and in total, the size limits, a software statement
// verified against the trusted issuers, then the registrar's policy
// screening (reject, hold) and deduplication.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	reg := s.cfg.Registration
	if reg.Disabled {
		s.writeProtocolError(w, r, &oauth.Error{Code: oauth.CodeAccessDenied, Description: "dynamic registration is disabled", Status: http.StatusForbidden})
		return
	}
	if len(reg.InitialAccessTokenHashes) > 0 {
		// RFC 7591 §3: the initial access token is a bearer token. It is
		// checked before the rate limit, so that strangers cannot spend
		// the registrations of the token holders.
		tok, ok := bearer(r)
		if !ok || !slices.ContainsFunc(reg.InitialAccessTokenHashes, func(h []byte) bool { return token.EqualHash(h, token.Hash(tok)) }) {
			writeBearerError(w, "a valid initial access token is required")
			return
		}
	}
	if oe := s.limitRegistration(r); oe != nil {
		s.writeProtocolError(w, r, oe)
		return
	}
	m, issuer, oe := s.readRegistration(ctx, w, r)
	if oe != nil {
		s.writeProtocolError(w, r, oe)
		return
	}
	regToken, err := token.NewHandle(s.rand, "")
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	out, err := s.registrar.Register(ctx, &clients.Registration{
		Method: clients.Dynamic, Metadata: m, GrantTypes: supportedGrants(s.grants),
		RegistrationTokenHash: token.Hash(regToken), IP: clientIP(r), Audit: s.meta(r),
		SoftwareStatementIssuer: issuer,
	})
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	c, secret := out.Client, out.Secret
	info := s.clientInformation(c)
	if out.Deduplicated {
		// The existing client's registration access token is known only
		// by its hash, and a new one would cut off whoever holds it: an
		// answer from deduplication carries none (RFC 7592 is optional).
		info.RegistrationClientURI = ""
		oauth.WriteJSON(w, http.StatusCreated, info)
		return
	}
	info.ClientSecret = secret
	info.RegistrationAccessToken = regToken
	w.Header().Set("Location", info.RegistrationClientURI)
	oauth.WriteJSON(w, http.StatusCreated, info)
}

// readRegistration reads a registration body of at most
// maxRegistrationBody bytes and parses its metadata. A software statement
// is verified, and its claims override the request's (RFC 7591 §2.3); the
// statement's issuer is returned.
func (s *Server) readRegistration(ctx context.Context, w http.ResponseWriter, r *http.Request) (*oauth.ClientMetadata, string, *oauth.Error) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return nil, "", oauth.ErrInvalidClientMetadata("the request body must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRegistrationBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, "", oauth.ErrInvalidClientMetadata("the client metadata is larger than %d KiB", maxRegistrationBody>>10)
	}
	if err != nil {
		return nil, "", oauth.ErrInvalidRequest("the request body is unreadable")
	}
	m, oe := oauth.ParseClientMetadata(body)
	if oe != nil {
		return nil, "", oe
	}
	issuer := ""
	if m.SoftwareStatement != "" {
		st, err := s.cfg.Registration.Statements.Verify(ctx, m.SoftwareStatement)
		if err != nil {
			return nil, "", asOAuth(err)
		}
		merged, err := clients.MergeStatement(body, st)
		if err != nil {
			return nil, "", asOAuth(err)
		}
		if m, oe = oauth.ParseClientMetadata(merged); oe != nil {
			return nil, "", oe
		}
		issuer = st.Issuer
	}
	if oe := dynamicLimits(m); oe != nil {
		return nil, "", oe
	}
	return m, issuer, nil
}

// asOAuth is err as the *oauth.Error to answer.
func asOAuth(err error) *oauth.Error {
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return oe
	}
	return oauth.ErrServer(err)
}

func (s *Server) clientInformation(c *store.Client) *oauth.ClientInformation {
	info := &oauth.ClientInformation{
		ClientID:              c.ID,
		ClientIDIssuedAt:      c.CreatedAt.Unix(),
		RegistrationClientURI: s.issuer + "/register/" + c.ID,
		ClientMetadata: oauth.ClientMetadata{
			RedirectURIs: c.RedirectURIs, TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
			GrantTypes: c.GrantTypes, ResponseTypes: c.ResponseTypes, ClientName: c.Name,
			ClientURI: c.ClientURI, LogoURI: c.LogoURI, Scope: oauth.FormatScope(c.Scopes), Contacts: c.Contacts,
			TOSURI: c.TOSURI, PolicyURI: c.PolicyURI, JWKSURI: c.JWKSURI, SoftwareID: c.SoftwareID,
			SoftwareVersion: c.SoftwareVersion, ApplicationType: c.ApplicationType,
		},
	}
	if c.JWKS != "" {
		info.JWKS = []byte(c.JWKS)
	}
	if len(c.SecretHash) > 0 {
		var exp int64
		if !c.SecretExpiresAt.IsZero() {
			exp = c.SecretExpiresAt.Unix()
		}
		info.ClientSecretExpiresAt = &exp
	}
	return info
}

// registeredClient authenticates an RFC 7592 request by its registration
// access token. Any failure is 401 invalid_token, revealing nothing about
// whether the client exists. A disabled client's token is refused too
// (after it was checked, so the message may say why).
func (s *Server) registeredClient(w http.ResponseWriter, r *http.Request) *store.Client {
	tok, ok := bearer(r)
	if !ok {
		writeBearerError(w, "the registration access token is required")
		return nil
	}
	c, err := s.st.GetClient(r.Context(), s.tenant, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) || err == nil && (len(c.RegistrationTokenHash) == 0 || !token.EqualHash(c.RegistrationTokenHash, token.Hash(tok))) {
		writeBearerError(w, "the registration access token is invalid")
		return nil
	}
	if err != nil {
		s.writeProtocolError(w, r, err)
		return nil
	}
	if c.Disabled {
		// A disabled or deprovisioned agent's registration access token
		// dies with it: it must not rewrite its registration, nor delete
		// the record of its own switching off.
		writeBearerError(w, "the client is disabled; its registration can no longer be managed")
		return nil
	}
	return c
}

func (s *Server) handleRegistrationRead(w http.ResponseWriter, r *http.Request) {
	c := s.registeredClient(w, r)
	if c == nil {
		return
	}
	oauth.WriteJSON(w, http.StatusOK, s.clientInformation(c))
}

// handleRegistrationUpdate is RFC 7592 §2.2: the body replaces the client's
// metadata entirely.
func (s *Server) handleRegistrationUpdate(w http.ResponseWriter, r *http.Request) {
	c := s.registeredClient(w, r)
	if c == nil {
		return
	}
	ctx := r.Context()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		s.writeProtocolError(w, r, oauth.ErrInvalidClientMetadata("the request body must be application/json"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRegistrationBody))
	if err != nil {
		s.writeProtocolError(w, r, oauth.ErrInvalidRequest("the request body is too large or unreadable"))
		return
	}
	var ids struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(body, &ids); err != nil {
		s.writeProtocolError(w, r, oauth.ErrInvalidClientMetadata("the request body must be a JSON object of client metadata"))
		return
	}
	if ids.ClientID != c.ID {
		s.writeProtocolError(w, r, oauth.ErrInvalidRequest("client_id must be present and equal the registered client_id"))
		return
	}
	if ids.ClientSecret != "" && !token.EqualHash(token.Hash(ids.ClientSecret), c.SecretHash) {
		s.writeProtocolError(w, r, oauth.ErrInvalidRequest("client_secret does not match the issued secret"))
		return
	}
	m, oe := oauth.ParseClientMetadata(body)
	if oe != nil {
		s.writeProtocolError(w, r, oe)
		return
	}
	// The same governance as a registration: a statement is verified and
	// its claims override (RFC 7591 §2.3); without one the client is no
	// longer attested, whatever it registered with; the size limits hold.
	issuer := ""
	if m.SoftwareStatement != "" {
		st, err := s.cfg.Registration.Statements.Verify(ctx, m.SoftwareStatement)
		if err != nil {
			s.writeProtocolError(w, r, asOAuth(err))
			return
		}
		merged, err := clients.MergeStatement(body, st)
		if err != nil {
			s.writeProtocolError(w, r, asOAuth(err))
			return
		}
		if m, oe = oauth.ParseClientMetadata(merged); oe != nil {
			s.writeProtocolError(w, r, oe)
			return
		}
		issuer = st.Issuer
	}
	if oe := dynamicLimits(m); oe != nil {
		s.writeProtocolError(w, r, oe)
		return
	}
	out, err := s.registrar.Update(ctx, c, &clients.Registration{
		Metadata: m, GrantTypes: supportedGrants(s.grants), IP: clientIP(r), Audit: s.meta(r),
		SoftwareStatementIssuer: issuer,
	})
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	updated, secret := out.Client, out.Secret
	s.clients.invalidate(c.ID)
	info := s.clientInformation(updated)
	info.ClientSecret = secret
	oauth.WriteJSON(w, http.StatusOK, info)
}

func (s *Server) handleRegistrationDelete(w http.ResponseWriter, r *http.Request) {
	c := s.registeredClient(w, r)
	if c == nil {
		return
	}
	ev := audit.NewClientDeleted(s.meta(r).WithAgent(c), c.ID)
	if err := s.st.DeleteClient(r.Context(), s.tenant, c.ID, s.now(), ev); err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	s.clients.invalidate(c.ID)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// bearer returns the RFC 6750 §2.1 bearer token of the request.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "Bearer ") {
		return "", false
	}
	tok := strings.TrimSpace(h[7:])
	return tok, tok != ""
}

func writeBearerError(w http.ResponseWriter, desc string) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
	oauth.WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": oauth.CodeInvalidToken, "error_description": desc})
}
