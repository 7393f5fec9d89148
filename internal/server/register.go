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
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// handleRegister is RFC 7591 dynamic client registration.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	reg := s.cfg.Registration
	if reg.Disabled {
		s.writeProtocolError(w, r, &oauth.Error{Code: oauth.CodeAccessDenied, Description: "dynamic registration is disabled", Status: http.StatusForbidden})
		return
	}
	if len(reg.InitialAccessTokenHashes) > 0 {
		// RFC 7591 §3: the initial access token is a bearer token.
		tok, ok := bearer(r)
		if !ok || !slices.ContainsFunc(reg.InitialAccessTokenHashes, func(h []byte) bool { return token.EqualHash(h, token.Hash(tok)) }) {
			writeBearerError(w, "a valid initial access token is required")
			return
		}
	}
	m, oe := s.readMetadata(r)
	if oe != nil {
		s.writeProtocolError(w, r, oe)
		return
	}
	now := s.now()
	c := &store.Client{
		TenantID:           s.tenant,
		ID:                 token.NewID(s.rand),
		RegistrationMethod: store.RegistrationDCR,
		CreatedIP:          clientIP(r),
		CreatedAt:          now,
		UpdatedAt:          now,
	}
	secret, ceiling, err := s.applyMetadata(ctx, r, c, m)
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	regToken, err := token.NewHandle(s.rand, "")
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	c.RegistrationTokenHash = token.Hash(regToken)
	ev := audit.NewClientRegistered(s.meta(r), audit.ClientRegisteredFields{
		ClientID: c.ID, Name: c.Name, Method: store.RegistrationDCR, AuthMethod: c.TokenEndpointAuthMethod,
		Ceiling: c.Scopes, Policy: ceiling.Audit(),
	})
	if err := s.st.CreateClient(ctx, c, ev); err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	info := s.clientInformation(c)
	info.ClientSecret = secret
	info.RegistrationAccessToken = regToken
	w.Header().Set("Location", info.RegistrationClientURI)
	oauth.WriteJSON(w, http.StatusCreated, info)
}

func (s *Server) readMetadata(r *http.Request) (*oauth.ClientMetadata, *oauth.Error) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return nil, oauth.ErrInvalidClientMetadata("the request body must be application/json")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, oauth.ErrInvalidRequest("the request body is too large or unreadable")
	}
	m, oe := oauth.ParseClientMetadata(body)
	if oe != nil {
		return nil, oe
	}
	if oe := m.Validate(supportedGrants(s.grants)); oe != nil {
		return nil, oe
	}
	return m, nil
}

// applyMetadata copies validated metadata onto c, computes the scope
// ceiling through the central policy, and issues a secret when the auth
// method needs one and c has none. It returns the new secret, if any, and
// the policy's verdict on the ceiling.
func (s *Server) applyMetadata(ctx context.Context, r *http.Request, c *store.Client, m *oauth.ClientMetadata) (string, *policy.Ceiling, error) {
	if m.JWKSURI != "" {
		return "", nil, oauth.ErrInvalidClientMetadata("jwks_uri is not supported yet: register the keys inline with jwks")
	}
	c.Name = m.ClientName
	c.RedirectURIs = m.RedirectURIs
	c.GrantTypes = m.GrantTypes
	c.ResponseTypes = m.ResponseTypes
	c.ApplicationType = m.ApplicationType
	c.ClientURI, c.LogoURI, c.TOSURI, c.PolicyURI = m.ClientURI, m.LogoURI, m.TOSURI, m.PolicyURI
	c.Contacts = m.Contacts
	c.SoftwareID, c.SoftwareVersion = m.SoftwareID, m.SoftwareVersion
	c.JWKS = string(m.JWKS)
	c.JWKSURI = m.JWKSURI
	c.TokenEndpointAuthMethod = m.TokenEndpointAuthMethod
	requested, _, oe := oauth.ParseRequestedScope(m.Scope)
	if oe != nil {
		return "", nil, oe
	}
	asked, ceiling, err := s.registrationCeiling(ctx, r, c, requested)
	if err != nil {
		return "", nil, err
	}
	c.RequestedScopes, c.Scopes = asked, ceiling.Scopes
	var secret string
	switch c.TokenEndpointAuthMethod {
	case "client_secret_basic", "client_secret_post":
		if len(c.SecretHash) == 0 {
			secret, err = token.NewHandle(s.rand, "")
			if err != nil {
				return "", nil, err
			}
			c.SecretHash = token.Hash(secret)
		}
	default:
		c.SecretHash = nil
	}
	return secret, ceiling, nil
}

// registrationCeiling runs the register action of the central policy and
// returns the scopes the client is recorded as asking for and the allowed
// ones, its ceiling. Requested scopes must exist. The ceiling is taken over
// every scope of every resource, not only those in the registration's
// scope: MCP clients register with the scopes of their first challenge and
// step up later (MCP authorization, scope selection and step-up), so the
// registered scope is where a client starts, not the most it may ever ask
// for. What it may hold is what the register policy allows (no sensitive
// scope for a self-registered agent by default), then each token is
// decided by policy and the person's consent. The recorded scopes let the
// ceiling be recomputed when the policy or the client's tags change.
func (s *Server) registrationCeiling(ctx context.Context, r *http.Request, c *store.Client, requested []string) (asked []string, ceiling *policy.Ceiling, err error) {
	resources, err := s.st.ListResources(ctx, s.tenant)
	if err != nil {
		return nil, nil, err
	}
	var offered []string
	for _, res := range resources {
		for _, sc := range res.Scopes {
			if !slices.Contains(offered, sc.Name) {
				offered = append(offered, sc.Name)
			}
		}
	}
	for _, sc := range requested {
		if !slices.Contains(offered, sc) {
			return nil, nil, oauth.ErrInvalidClientMetadata("scope %q is not offered by any registered resource", truncate(sc, 100))
		}
	}
	probe := *c
	probe.RequestedScopes = offered
	cl, err := s.policy.Ceiling(ctx, &probe, resources, policy.Context{IP: clientIP(r), Time: s.now()})
	if err != nil {
		return nil, nil, err
	}
	if len(cl.Scopes) == 0 {
		return nil, nil, oauth.ErrInvalidClientMetadata("none of the offered scopes may be held by this client")
	}
	return offered, cl, nil
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
// whether the client exists.
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
	body, err := io.ReadAll(r.Body)
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
	if oe := m.Validate(supportedGrants(s.grants)); oe != nil {
		s.writeProtocolError(w, r, oe)
		return
	}
	var stored *store.Client
	var secret string
	for attempt := 1; ; attempt++ {
		updated := *c
		var ceiling *policy.Ceiling
		if secret, ceiling, err = s.applyMetadata(ctx, r, &updated, m); err != nil {
			s.writeProtocolError(w, r, err)
			return
		}
		updated.UpdatedAt = s.now()
		decision := ceiling.Audit()
		ev := audit.NewClientUpdated(s.meta(r), audit.ClientUpdatedFields{
			ClientID: c.ID, Change: audit.ChangeMetadata, Method: c.RegistrationMethod, Ceiling: updated.Scopes, Policy: &decision,
		})
		// The ceiling was computed from c (its tags): if an admin changed
		// the client meanwhile, compute again rather than overwrite.
		stored, err = s.st.UpdateClient(ctx, c.TenantID, c.ID, func(fresh *store.Client) error {
			if !fresh.UpdatedAt.Equal(c.UpdatedAt) {
				return errClientChanged
			}
			*fresh = updated
			return nil
		}, ev)
		if errors.Is(err, errClientChanged) && attempt < 3 {
			if c, err = s.st.GetClient(ctx, c.TenantID, c.ID); err == nil {
				continue
			}
		}
		if err != nil {
			s.writeProtocolError(w, r, err)
			return
		}
		break
	}
	s.clients.invalidate(c.ID)
	info := s.clientInformation(stored)
	info.ClientSecret = secret
	oauth.WriteJSON(w, http.StatusOK, info)
}

// errClientChanged: the client changed between reading and updating it.
var errClientChanged = errors.New("the client changed during the update")

func (s *Server) handleRegistrationDelete(w http.ResponseWriter, r *http.Request) {
	c := s.registeredClient(w, r)
	if c == nil {
		return
	}
	ev := audit.NewClientDeleted(s.meta(r), c.ID)
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
