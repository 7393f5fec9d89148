package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/agentid/agentid/internal/store"
)

// Trusted-issuer event types (agentid issuers).
const (
	IssuerAdded   = "issuer.added"
	IssuerUpdated = "issuer.updated"
	IssuerDeleted = "issuer.deleted"
)

// Issuer changes recorded by issuer.updated.
const (
	IssuerChangeEnabled  = "enabled"
	IssuerChangeDisabled = "disabled"
	// IssuerChangeSettings: keys, audiences, algorithms, uses, lifetime,
	// user claim or rules replaced.
	IssuerChangeSettings = "settings"
)

// maxRulesInEvent bounds the JSON of an issuer's rules copied into an event.
const maxRulesInEvent = 2000

// NewIssuerAdded records that an administrator trusted a new issuer of
// JWTs, with its settings. A static key set is named by its key ids and
// the SHA-256 of the stored set, never by the keys.
func NewIssuerAdded(m Meta, iss *store.Issuer) *store.AuditEvent {
	ev := event(m, IssuerAdded)
	putIssuer(ev.Details, iss)
	return done(ev)
}

// NewIssuerUpdated records a change to a trusted issuer (change is
// IssuerChangeEnabled, IssuerChangeDisabled or IssuerChangeSettings), with
// its settings after the change; keys as NewIssuerAdded.
func NewIssuerUpdated(m Meta, iss *store.Issuer, change string) *store.AuditEvent {
	ev := event(m, IssuerUpdated)
	putIssuer(ev.Details, iss)
	set(ev.Details, "change", change)
	return done(ev)
}

// NewIssuerDeleted records that a trusted issuer was removed: its JWTs are
// no longer accepted, and the workload agents it federated can no longer
// authenticate.
func NewIssuerDeleted(m Meta, iss *store.Issuer) *store.AuditEvent {
	ev := event(m, IssuerDeleted)
	set(ev.Details, "issuer_id", iss.ID)
	set(ev.Details, "issuer", iss.Issuer)
	return done(ev)
}

// putIssuer copies what an event says of an issuer: everything but the
// key material.
func putIssuer(d map[string]string, iss *store.Issuer) {
	set(d, "issuer_id", iss.ID)
	set(d, "issuer", iss.Issuer)
	set(d, "jwks_uri", iss.JWKSURI)
	if iss.JWKS != "" {
		sum := sha256.Sum256([]byte(iss.JWKS))
		d["jwks_sha256"] = hex.EncodeToString(sum[:])
		n, kids := keyIDs(iss.JWKS)
		d["keys"] = strconv.Itoa(n)
		setList(d, "kids", kids)
	}
	setList(d, "audiences", iss.Audiences)
	setList(d, "algorithms", iss.Algorithms)
	setList(d, "uses", iss.Uses)
	if iss.MaxLifetime > 0 {
		d["max_lifetime"] = iss.MaxLifetime.String()
	}
	set(d, "user_claim", iss.UserClaim)
	if len(iss.Rules) > 0 {
		if b, err := json.Marshal(iss.Rules); err == nil {
			d["rules"] = truncate(string(b), maxRulesInEvent)
		}
	}
	d["disabled"] = strconv.FormatBool(iss.Disabled)
}

// keyIDs returns the number of keys of a JSON Web Key Set (RFC 7517 §5)
// and the kids of those that have one; 0 and nil when it does not parse.
func keyIDs(jwks string) (int, []string) {
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if json.Unmarshal([]byte(jwks), &set) != nil {
		return 0, nil
	}
	var ids []string
	for _, k := range set.Keys {
		if k.KID != "" {
			ids = append(ids, truncate(k.KID, maxNameInEvent))
		}
	}
	return len(set.Keys), ids
}
