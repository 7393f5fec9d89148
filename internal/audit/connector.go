package audit

import (
	"strconv"

	"github.com/agentid/agentid/internal/store"
)

// Upstream sign-in event types (agentid connectors, internal/connectors).
const (
	ConnectorCreated = "connector.created"
	ConnectorUpdated = "connector.updated"
	// UserSignedIn: a person signed in to the hub through a connector
	// (provisioned on their first sign-in, refreshed from the provider's
	// claims on every one).
	UserSignedIn = "user.signed_in"
)

// How a connector authenticates to its provider (ConnectorFields.ClientAuth).
const (
	ConnectorSecretFile   = "secret_file"
	ConnectorSealedSecret = "sealed_secret"
	ConnectorPublic       = "public"
)

func init() {
	for typ, spec := range map[string]struct {
		fields  []field
		details []string
	}{
		ConnectorCreated: {nil, []string{"connector", "connector_type", "issuer"}},
		ConnectorUpdated: {nil, []string{"connector", "issuer", "change"}},
		UserSignedIn:     {[]field{fUser}, []string{"connector", "provisioned"}},
	} {
		required[typ] = spec
	}
}

// ConnectorFields is what a connector event says of a connector: its
// settings, never its client secret (only how it is kept).
type ConnectorFields struct {
	ConnectorID      string
	Type             string
	Issuer           string
	UpstreamClientID string
	EmailDomains     []string
	// ClientAuth: ConnectorSecretFile, ConnectorSealedSecret or ConnectorPublic.
	ClientAuth string
	Disabled   bool
}

// ConnectorFieldsOf describes c for an event.
func ConnectorFieldsOf(c *store.Connector) ConnectorFields {
	f := ConnectorFields{ConnectorID: c.ID, Type: c.Type, Issuer: c.Issuer, UpstreamClientID: c.ClientID,
		EmailDomains: c.EmailDomains, ClientAuth: ConnectorPublic, Disabled: c.Disabled}
	switch {
	case c.ClientSecretFile != "":
		f.ClientAuth = ConnectorSecretFile
	case len(c.ClientSecretSealed) > 0:
		f.ClientAuth = ConnectorSealedSecret
	}
	return f
}

func putConnector(d map[string]string, f ConnectorFields) {
	set(d, "connector", f.ConnectorID)
	set(d, "connector_type", f.Type)
	set(d, "issuer", f.Issuer)
	set(d, "upstream_client_id", f.UpstreamClientID)
	setList(d, "email_domains", f.EmailDomains)
	set(d, "client_auth", f.ClientAuth)
	d["disabled"] = strconv.FormatBool(f.Disabled)
}

// NewConnectorCreated records that an administrator (or the config file)
// added a connector to an upstream identity provider.
func NewConnectorCreated(m Meta, f ConnectorFields) *store.AuditEvent {
	ev := event(m, ConnectorCreated)
	putConnector(ev.Details, f)
	return ev
}

// NewConnectorUpdated records a change to a connector (change: ChangeEnabled,
// ChangeDisabled or "settings"), with its settings after the change.
func NewConnectorUpdated(m Meta, f ConnectorFields, change string) *store.AuditEvent {
	ev := event(m, ConnectorUpdated)
	putConnector(ev.Details, f)
	set(ev.Details, "change", change)
	return ev
}

// NewUserSignedIn records that a person signed in through a connector;
// provisioned says this sign-in created their account.
func NewUserSignedIn(m Meta, userID, connectorID string, provisioned bool) *store.AuditEvent {
	ev := event(m, UserSignedIn)
	ev.UserID = userID
	set(ev.Details, "connector", connectorID)
	ev.Details["provisioned"] = strconv.FormatBool(provisioned)
	return ev
}
