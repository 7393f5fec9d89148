package server

import (
	"net/http"
	"time"

	"github.com/agentid/agentid/internal/oauth"
)

// handleToken is the token endpoint (RFC 6749 §3.2): the request is parsed
// once, then answered by the pipeline (pipeline.go).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	req, oe := oauth.ParseTokenRequest(r)
	if oe != nil {
		s.writeProtocolError(w, r, oe)
		return
	}
	resp, err := s.token(r.Context(), r, req)
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	oauth.WriteTokenResponse(w, resp)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func unixTime(sec int64) time.Time { return time.Unix(sec, 0) }
