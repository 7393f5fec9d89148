package server

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

//go:embed web/templates/*.html
var templateFS embed.FS

//go:embed web/static
var staticFS embed.FS

func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "web/static")
	if err != nil {
		panic(err)
	}
	return http.FileServerFS(sub)
}

// pages renders the embedded templates; each page has a typed method.
type pages struct {
	login_  *template.Template
	consent *template.Template
	error_  *template.Template
}

func newPages() (*pages, error) {
	parse := func(name string) (*template.Template, error) {
		return template.ParseFS(templateFS, "web/templates/layout.html", "web/templates/"+name)
	}
	var p pages
	var err error
	if p.login_, err = parse("login.html"); err != nil {
		return nil, err
	}
	if p.consent, err = parse("consent.html"); err != nil {
		return nil, err
	}
	if p.error_, err = parse("error.html"); err != nil {
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
}

func (p *pages) login(w http.ResponseWriter, status int, v loginView) {
	v.Title = "Sign in"
	render(w, p.login_, status, v)
}

type errorView struct {
	Title   string
	Message string
}

func (p *pages) errorPage(w http.ResponseWriter, status int, title, msg string) {
	render(w, p.error_, status, errorView{Title: title, Message: msg})
}

type scopeView struct {
	Name        string
	Description string
	Sensitive   bool
	Granted     bool // already granted and in force
	Checked     bool
}

type consentView struct {
	Title        string
	CSRF         string
	Request      string
	ClientName   string
	ClientID     string
	Registration string // manual | dcr | cimd
	ClientHost   string // verified host of a CIMD client_id
	RedirectHost string
	LocalOnly    bool
	ResourceName string
	ResourceURI  string
	Username     string
	Scopes       []scopeView
}

func (s *Server) renderConsent(w http.ResponseWriter, r *http.Request, a *authz, u *store.User, allowed, live []string) {
	v := consentView{
		Title:        "Allow access?",
		CSRF:         s.csrfToken(w, r),
		Request:      a.query.Encode(),
		ClientName:   a.client.Name,
		ClientID:     a.client.ID,
		Registration: a.client.RegistrationMethod,
		ResourceName: a.resource.Name,
		ResourceURI:  a.resource.URI,
		Username:     u.Username,
	}
	if v.ClientName == "" {
		v.ClientName = a.client.ID
	}
	if ru, err := url.Parse(a.redirectURI); err == nil {
		v.RedirectHost = ru.Hostname()
		if v.RedirectHost == "" {
			v.RedirectHost = ru.Scheme + ":"
		}
		v.LocalOnly = oauth.IsLoopbackHost(ru.Hostname())
	}
	if a.client.RegistrationMethod == store.RegistrationCIMD {
		v.ClientHost = policyAgent(a.client).VerifiedDomain
	}
	for _, name := range allowed {
		i := slices.IndexFunc(a.resource.Scopes, func(sc store.Scope) bool { return sc.Name == name })
		sc := a.resource.Scopes[i]
		granted := slices.Contains(live, name)
		v.Scopes = append(v.Scopes, scopeView{Name: name, Description: sc.Description, Sensitive: sc.Sensitive, Granted: granted, Checked: granted || !sc.Sensitive})
	}
	render(w, s.pages.consent, http.StatusOK, v)
}
