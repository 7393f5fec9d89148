package server

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
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
	// continue_ asks a person to confirm a silent re-authorization.
	continue_ *template.Template
	// refused tells a person what an application asked for and will not
	// get, when nothing is left to approve.
	refused *template.Template
	account *template.Template
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
