package server

// ConnectIntent is what a test asks a connect link for.
type ConnectIntent struct {
	TenantID, UserID, Provider string
	Scopes                     []string
	ClientID, Resource         string
}

// ConnectURL makes a connect link as retrieval does (connectURL).
func (s *Server) ConnectURL(ci ConnectIntent) (string, error) {
	return s.connectURL(connectIntent{TenantID: ci.TenantID, UserID: ci.UserID, Provider: ci.Provider, Scopes: ci.Scopes, ClientID: ci.ClientID, Resource: ci.Resource})
}
