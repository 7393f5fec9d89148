package server

import "github.com/agentid/agentid/internal/consent"

// RetrievalIntent is a connect URL's intent, as the connect page reads it.
type RetrievalIntent = connectIntent

// OpenConnectIntent is openConnectIntent, for the retrieval tests to check
// that a connection_required error's connect_uri opens for the right
// person, provider and scopes.
func (s *Server) OpenConnectIntent(provider, raw string) (*RetrievalIntent, error) {
	return s.openConnectIntent(provider, raw)
}

// ConsentLedgerForTest is the server's consent ledger.
func (s *Server) ConsentLedgerForTest() *consent.Ledger { return s.ledger }
