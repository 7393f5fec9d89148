package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/connectors/scim"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/password"
	"github.com/agentid/agentid/internal/store"
)

// SCIM provisioning (internal/connectors/scim) is, like the admin API, a
// protected resource of the hub itself, at the issuer followed by
// scim.Path: its access tokens are the hub's own with that URI as their
// audience and ScopeSCIM among their scopes, obtained by the identity
// provider's provisioning client through client credentials. An
// operator registers the resource with the scope marked sensitive, and
// the provisioning client manually with the scope in its ceiling and the
// tag cc:agentid:scim (docs/design.md, "SCIM provisioning"). A token a
// person delegated is refused.
const ScopeSCIM = "agentid:scim"

// scimResource is the SCIM endpoint's resource URI (its tokens'
// audience), in the canonical form resources are registered in.
func (s *Server) scimResource() string {
	if uri, err := oauth.CanonicalResource(s.issuer + scim.Path); err == nil {
		return uri
	}
	return s.issuer + scim.Path
}

// scimHandler is the SCIM service provider behind the bearer-token
// check; its events name the provisioning client (audit.ActorSCIM).
func (s *Server) scimHandler() (http.Handler, error) {
	var rv clients.ConnectionRevoker
	if s.cfg.Vault != nil {
		rv = s.cfg.Vault
	}
	h, err := scim.New(scim.Config{
		Store: s.st, Tenant: s.tenant, BaseURL: s.issuer + scim.Path, Now: s.now, Vault: rv, Log: s.log,
		HashPassword: password.Hash,
		Privileged:   func(u *store.User) bool { return slices.Contains(u.Roles, AdminRole) },
		UserChanged:  s.users.invalidate,
	})
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clientID, ref := s.hubClientToken(r, s.scimResource(), ScopeSCIM)
		switch {
		case ref == nil:
			m := s.meta(r)
			m.Actor, m.ActorID = audit.ActorSCIM, clientID
			h.ServeHTTP(w, r.WithContext(scim.WithMeta(r.Context(), m)))
		case ref.err != nil:
			s.log.ErrorContext(r.Context(), "scim request failed", "request_id", requestID(r.Context()), "path", r.URL.Path, "err", ref.err)
			writeSCIMError(w, http.StatusInternalServerError, "the request failed; the hub's log has the details under request id "+requestID(r.Context()))
		default:
			// RFC 6750 §3 challenge; the body is a SCIM error (RFC 7644 §3.12).
			v := `Bearer realm="agentid"`
			if ref.code != "" {
				v += `, error="` + ref.code + `", error_description="` + ref.detail + `"`
				if ref.code == "insufficient_scope" {
					v += `, scope="` + ScopeSCIM + `"`
				}
			}
			w.Header().Set("WWW-Authenticate", v)
			writeSCIMError(w, ref.status, ref.detail)
		}
	}), nil
}

// writeSCIMError writes an RFC 7644 §3.12 error.
func writeSCIMError(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Schemas []string `json:"schemas"`
		Status  string   `json:"status"`
		Detail  string   `json:"detail,omitempty"`
	}{[]string{"urn:ietf:params:scim:api:messages:2.0:Error"}, strconv.Itoa(status), detail})
}
