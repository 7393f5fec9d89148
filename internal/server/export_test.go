package server

// ThrottleSizes reports how many keys the per-(user, address) and the
// per-address login throttles hold.
func (s *Server) ThrottleSizes() (user, address int) {
	return s.userThrottle.len(), s.ipThrottle.len()
}

// IdentityNote is identityNote, for the consent screen's wording test.
var IdentityNote = identityNote

// IntrospectionMemoHits is how many introspections were answered from the
// memo of what introspected tokens say (introspect_memo.go).
func (s *Server) IntrospectionMemoHits() uint64 { return s.introMemo.hits.Load() }
