package server

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/agentid/agentid/internal/oauth"
)

//go:embed web/templates/*.html
var templateFS embed.FS

//go:embed web/static
var staticFS embed.FS

// staticHandler serves the embedded stylesheet and icon. It answers only
// files: a directory (including /static/ itself) is a 404, never a listing.
func (s *Server) staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "web/static")
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/static/")
		if st, err := fs.Stat(sub, name); name == "" || !fs.ValidPath(name) || err != nil || st.IsDir() {
			s.notFound(w, r)
			return
		}
		// The assets change only with the binary; an hour of caching spares
		// every page a second request.
		w.Header().Set("Cache-Control", "public, max-age=3600")
		http.ServeFileFS(w, r, sub, name)
	})
}

// serveFavicon answers /favicon.ico, which browsers ask for on their own.
func serveFavicon(w http.ResponseWriter, r *http.Request) {
	b, err := staticFS.ReadFile("web/static/favicon.ico")
	if err != nil {
		http.Error(w, "no icon", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/x-icon")
	h.Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(b)
}

// notFound answers a path the hub does not serve with 404: a readable page
// for a browser (a request that accepts HTML), an OAuth-style JSON error
// for everyone else.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		setPageHeaders(w.Header())
		s.pages.errorPage(w, http.StatusNotFound, "Page not found", "There is nothing at this address. Check the link, or start from this hub's home page.")
		return
	}
	e := oauth.ErrInvalidRequest("there is no endpoint at this path")
	e.Status = http.StatusNotFound
	oauth.WriteError(w, e)
}

// pages renders the embedded templates; each page has a typed method.
type pages struct {
	login_  *template.Template
	consent *template.Template
	// continue_ asks a person to confirm a silent re-authorization.
	continue_ *template.Template
	// refused tells a person what an application asked for and will not
	// get, when nothing is left to approve.
	refused *template.Template
	account *template.Template
	error_  *template.Template
	home    *template.Template
	// The connection pages (connections.go): the list and forms, the page
	// a connect link opens, the page after connecting, and their refusals.
	connections *template.Template
	connect     *template.Template
	connected   *template.Template
	connectErr  *template.Template
}

func newPages() (*pages, error) {
	parse := func(name string) (*template.Template, error) {
		// connlist.html is the connections table the account and
		// connections pages share.
		return template.ParseFS(templateFS, "web/templates/layout.html", "web/templates/connlist.html", "web/templates/"+name)
	}
	var p pages
	var err error
	if p.login_, err = parse("login.html"); err != nil {
		return nil, err
	}
	if p.consent, err = parse("consent.html"); err != nil {
		return nil, err
	}
	if p.continue_, err = parse("continue.html"); err != nil {
		return nil, err
	}
	if p.refused, err = parse("refused.html"); err != nil {
		return nil, err
	}
	if p.account, err = parse("account.html"); err != nil {
		return nil, err
	}
	if p.error_, err = parse("error.html"); err != nil {
		return nil, err
	}
	if p.home, err = parse("home.html"); err != nil {
		return nil, err
	}
	if p.connections, err = parse("connections.html"); err != nil {
		return nil, err
	}
	if p.connect, err = parse("connect.html"); err != nil {
		return nil, err
	}
	if p.connected, err = parse("connected.html"); err != nil {
		return nil, err
	}
	if p.connectErr, err = parse("connecterror.html"); err != nil {
		return nil, err
	}
	return &p, nil
}

func render(w http.ResponseWriter, t *template.Template, status int, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		http.Error(w, "page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type loginView struct {
	Title    string
	CSRF     string
	ReturnTo string
	Username string
	Error    string
	// Local: password sign-in is on (login.local). Connectors are the
	// sign-in buttons; EmailRouting: some connector is chosen by the
	// domain of a typed email address.
	Local        bool
	Connectors   []connectorButton
	EmailRouting bool
}

// connectorButton is a connector the login page offers.
type connectorButton struct {
	ID   string
	Name string
	URL  string
}

func (p *pages) login(w http.ResponseWriter, status int, v loginView) {
	v.Title = "Sign in"
	render(w, p.login_, status, v)
}

type errorView struct {
	Title   string
	Message string
	// Detail is the protocol error, for the application's developer.
	Detail string
	// BackURL, when set, links back to the application App, whose
	// redirect URI is on BackHost.
	BackURL  string
	App      string
	BackHost string
}

func (p *pages) errorPage(w http.ResponseWriter, status int, title, msg string) {
	render(w, p.error_, status, errorView{Title: title, Message: msg})
}

type homeView struct {
	Title string
	// Username is empty for a signed-out visitor.
	Username string
	CSRF     string
}

func (p *pages) homePage(w http.ResponseWriter, v homeView) {
	v.Title = "Home"
	render(w, p.home, http.StatusOK, v)
}
