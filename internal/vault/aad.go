package vault

import "github.com/agentid/agentid/internal/store"

// dataKeyAAD binds a connection's wrapped data key to its row: tenant,
// provider, owner, connection id and purpose. A data key copied to another
// connection does not open.
func dataKeyAAD(c *store.Connection) string {
	return "connections|" + c.TenantID + "|" + c.ProviderID + "|" + c.OwnerKind + ":" + c.OwnerID + "|" + c.ID + "|data_key"
}

// providerSecretAAD binds a provider's sealed client secret to the
// provider's row.
func providerSecretAAD(tenantID, providerID string) string {
	return "providers|" + tenantID + "|" + providerID + "|client_secret"
}
