package saml

import (
	"errors"
	"fmt"
	"strings"

	crewsaml "github.com/crewjam/saml"

	"github.com/agentid/agentid/internal/connectors"
	"github.com/agentid/agentid/internal/store"
)

// Identity is a person as a SAML identity provider asserts them; it has
// the fields of an OIDC connector's identity, with the NameID as subject.
type Identity struct {
	// Subject is the assertion's NameID: who the person is at the provider.
	Subject string
	// NameIDFormat is the NameID's format ("" when unspecified).
	NameIDFormat string
	Username     string
	Email        string
	Name         string
	// Groups and Roles are nil when the mapping names no attribute for them
	// (the user's stored ones stay); otherwise the attribute's values, empty
	// when it is absent (the user's are cleared).
	Groups []string
	Roles  []string
	// Attributes are the mapped attributes present (several values joined
	// with ","): nil when the mapping names none.
	Attributes map[string]string
	// SessionIndex is the provider's session, for a later logout.
	SessionIndex string
}

// Default attribute names, tried in order: the names in common use, the
// eduPerson/inetOrgPerson OIDs (urn:oid, the SAML V2.0 X.500/LDAP
// attribute profile) and the WS-Federation claim URIs (ADFS, Entra ID).
var (
	DefaultEmailAttributes = []string{
		"email", "mail", "urn:oid:0.9.2342.19200300.100.1.3",
		"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
	}
	DefaultNameAttributes = []string{
		"name", "displayName", "urn:oid:2.16.840.1.113730.3.1.241",
		"cn", "urn:oid:2.5.4.3",
		"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
	}
)

// Bounds of what an assertion may put into a user (those of the OIDC
// connectors' claim mapping).
const (
	maxValue      = 256  // a subject, username, email, name, group or role
	maxAttrValue  = 1024 // an attribute's value
	maxListValues = 256  // groups or roles
)

// attributes are an assertion's attribute values by Name, and by
// FriendlyName where no attribute has that Name.
type attributes map[string][]string

func collect(as *crewsaml.Assertion) attributes {
	byName, byFriendly := attributes{}, attributes{}
	for _, st := range as.AttributeStatements {
		for _, at := range st.Attributes {
			var vals []string
			for _, v := range at.Values {
				if !v.Nil {
					vals = append(vals, v.Value)
				}
			}
			byName[at.Name] = append(byName[at.Name], vals...)
			if at.FriendlyName != "" {
				byFriendly[at.FriendlyName] = append(byFriendly[at.FriendlyName], vals...)
			}
		}
	}
	for k, v := range byFriendly {
		if _, ok := byName[k]; !ok {
			byName[k] = v
		}
	}
	return byName
}

// single is the one value of a named attribute ("" when absent); several
// values are an error.
func (at attributes) single(name string) (string, error) {
	vals := at[name]
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
		return plain(name, vals[0], maxValue)
	}
	return "", fmt.Errorf("attribute %q has %d values, one expected", name, len(vals))
}

// mapped is the value of the attribute named, or when none is named of
// the first of defaults present.
func (at attributes) mapped(name string, defaults []string) (string, error) {
	if name != "" {
		return at.single(name)
	}
	for _, n := range defaults {
		if _, ok := at[n]; ok {
			return at.single(n)
		}
	}
	return "", nil
}

// list is the distinct values of an attribute, empty (not nil) when absent.
func (at attributes) list(name string) ([]string, error) {
	vals := at[name]
	if len(vals) > maxListValues {
		return nil, fmt.Errorf("attribute %q has more than %d values", name, maxListValues)
	}
	out := []string{}
	seen := map[string]bool{}
	for _, v := range vals {
		v, err := plain(name, v, maxValue)
		if err != nil {
			return nil, err
		}
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out, nil
}

// plain trims v and refuses it over limit or when it is not plain text
// (connectors.PlainText).
func plain(name, v string, limit int) (string, error) {
	v = strings.TrimSpace(v)
	if len(v) > limit || !connectors.PlainText(v) {
		return "", fmt.Errorf("attribute %q is too long or not plain text", name)
	}
	return v, nil
}

// mapIdentity reads the person from a verified assertion with the mapping
// m, whose names are SAML attributes. Defaults: the email is the first of
// DefaultEmailAttributes present, else a NameID of the emailAddress
// format; the name the first of DefaultNameAttributes; the username the
// Username attribute, else the email, else the NameID; no groups, roles
// or attributes unless named.
func mapIdentity(m store.ClaimMapping, as *crewsaml.Assertion) (*Identity, error) {
	if as.Subject == nil || as.Subject.NameID == nil {
		return nil, errors.New("assertion has no NameID")
	}
	nid := as.Subject.NameID
	if nid.Format == string(crewsaml.TransientNameIDFormat) {
		// A transient NameID is new at every sign-in: it cannot find the
		// same user twice.
		return nil, errors.New("the NameID is transient; the identity provider must send a persistent, email or unspecified one")
	}
	subject, err := plain("NameID", nid.Value, maxValue)
	if err != nil || subject == "" {
		return nil, errors.New("the NameID is empty, too long or not plain text")
	}
	at := collect(as)
	id := &Identity{Subject: subject, NameIDFormat: nid.Format}
	for _, s := range as.AuthnStatements {
		if s.SessionIndex != "" {
			id.SessionIndex = s.SessionIndex
			break
		}
	}
	if id.Email, err = at.mapped(m.Email, DefaultEmailAttributes); err != nil {
		return nil, err
	}
	if id.Email == "" && nid.Format == string(crewsaml.EmailAddressNameIDFormat) {
		id.Email = subject
	}
	if id.Name, err = at.mapped(m.Name, DefaultNameAttributes); err != nil {
		return nil, err
	}
	if id.Username, err = at.mapped(m.Username, nil); err != nil {
		return nil, err
	}
	for _, fallback := range []string{id.Email, subject} {
		if id.Username == "" {
			id.Username = fallback
		}
	}
	if err := connectors.CheckUsername(id.Username); err != nil {
		return nil, err
	}
	if m.Groups != "" {
		if id.Groups, err = at.list(m.Groups); err != nil {
			return nil, err
		}
	}
	if m.Roles != "" {
		if id.Roles, err = at.list(m.Roles); err != nil {
			return nil, err
		}
	}
	if len(m.Attributes) > 0 {
		id.Attributes = map[string]string{}
	}
	for name, from := range m.Attributes {
		vals, ok := at[from]
		if !ok {
			continue
		}
		v, err := plain(from, strings.Join(vals, ","), maxAttrValue)
		if err != nil {
			return nil, err
		}
		id.Attributes[name] = v
	}
	return id, nil
}
