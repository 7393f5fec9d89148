package server

import "net/http"

// handleHome is the hub's front page: what it is, and the way to sign in or
// to the signed-in person's agents. It shows a stranger nothing else.
func (s *Server) handleHome(w http.ResponseWriter, r *http.Request) {
	v := homeView{CSRF: s.csrfToken(w, r)}
	if _, u := s.currentSession(r); u != nil {
		v.Username = u.Username
	}
	s.pages.homePage(w, v)
}
