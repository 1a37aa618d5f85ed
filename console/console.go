// Package console serves Baton's web console: server-rendered pages of
// runs, workflows, functions and events over the engine, with live updates
// by server-sent events and a little plain JavaScript that acts through the
// REST API. There is no JavaScript build step: templates and assets are
// embedded in the binary.
//
// The console is mounted behind the API's handler (api.WithConsole), so
// the same host checks and authentication apply; a browser authenticates
// with a session cookie (see Sessions), which the API accepts too for the
// calls the console's pages make.
package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/batonflow/baton/auth"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/prewarm"
	"github.com/batonflow/baton/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Engine is what the console reads from the workflow engine;
// *engine.Engine satisfies it.
type Engine interface {
	GetWorkflow(ctx context.Context, namespace, name, version string) (*store.Workflow, error)
	ListWorkflows(ctx context.Context) ([]*store.Workflow, error)
	GetInvocation(ctx context.Context, id string) (*store.Invocation, error)
	ListInvocations(ctx context.Context, f store.InvocationFilter) ([]*store.Invocation, string, error)
	History(ctx context.Context, id string) ([]core.Event, error)
	LifecycleEvents(ctx context.Context, id string) ([]map[string]any, error)
}

// Optional parts of the engine, used when it has them.
type (
	invocationCounter interface {
		CountInvocations(ctx context.Context, f store.InvocationFilter) (map[core.Status]int, error)
	}
	triggerLister interface {
		ListTriggers(ctx context.Context) ([]*store.Trigger, error)
	}
	eventLister interface {
		ListEvents(ctx context.Context, f store.EventFilter) ([]events.Logged, error)
	}
)

// Functions is what the console shows of the function layer.
type Functions interface {
	List(ctx context.Context, namespace string) ([]*function.Spec, error)
	Instances(ref string) []function.InstanceInfo
	Events(ref string) []function.Event
}

// Predictor is what the prewarm planner expects next.
type Predictor interface {
	NextCall(fn string, now time.Time) (prewarm.PredictedCall, bool)
	ColdStart(fn string) time.Duration
}

// Console is the web console's handler.
type Console struct {
	engine     Engine
	sessions   *Sessions
	authn      auth.Authenticator
	functions  Functions
	predictor  Predictor
	logger     *slog.Logger
	poll       time.Duration
	pages      map[string]*template.Template
	defs       definitions
	lifecycles lifecycles
	mux        *http.ServeMux
	static     http.Handler
	redrive    bool
}

// Option configures New.
type Option func(*Console)

// WithFunctions shows the function layer on the functions page.
func WithFunctions(f Functions) Option { return func(c *Console) { c.functions = f } }

// WithPredictor shows what the prewarm planner expects next.
func WithPredictor(p Predictor) Option {
	return func(c *Console) {
		if p != nil {
			c.predictor = p
		}
	}
}

// WithRedrive offers "retry from the failed task" on faulted and
// cancelled runs: the API serves POST /v1/invocations/{id}/retry.
func WithRedrive(on bool) Option { return func(c *Console) { c.redrive = on } }

// WithLogger logs failures of pages.
func WithLogger(l *slog.Logger) Option {
	return func(c *Console) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithPollInterval sets how often live views look for changes.
func WithPollInterval(d time.Duration) Option {
	return func(c *Console) {
		if d > 0 {
			c.poll = d
		}
	}
}

// DefaultPollInterval is how often a live view looks at the store for
// changes: well inside the quarter second a change may take to show.
const DefaultPollInterval = 100 * time.Millisecond

// New returns the console over e. sessions seal the login cookie; authn
// checks the tokens users log in with (the API's authenticator without
// the session cookie); nil means the API runs without authentication and
// so does the console.
func New(e Engine, sessions *Sessions, authn auth.Authenticator, opts ...Option) (*Console, error) {
	c := &Console{
		engine: e, sessions: sessions, authn: authn,
		logger: slog.New(slog.DiscardHandler), poll: DefaultPollInterval,
	}
	for _, opt := range opts {
		opt(c)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c.pages = pages
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	c.static = http.StripPrefix("/static/", http.FileServerFS(static))
	c.mux = http.NewServeMux()
	for _, rt := range c.routes() {
		c.mux.Handle(rt.method+" "+rt.path, c.guard(rt))
	}
	return c, nil
}

// access is who may reach a console route; what they see in it is then
// filtered by their roles in each namespace (viewers see, operators act:
// the actions go through the API, which checks the operator role).
type access int

const (
	// public routes need no login: the login page and the assets.
	public access = iota
	// signedIn routes need a login with the viewer role somewhere.
	signedIn
	// bearerOnly routes need an Authorization header: a session cannot
	// mint login codes for itself.
	bearerOnly
)

type route struct {
	method, path string
	access       access
	handler      http.HandlerFunc
}

// routes is the console's route table; the access test walks it.
func (c *Console) routes() []route {
	return []route{
		{http.MethodGet, "/{$}", signedIn, c.runsPage},
		{http.MethodGet, "/runs", signedIn, c.runsPage},
		{http.MethodGet, "/runs/{id}", signedIn, c.runPage},
		{http.MethodGet, "/runs/{id}/task", signedIn, c.taskPanel},
		{http.MethodGet, "/runs/{id}/history", signedIn, c.historyPanel},
		{http.MethodGet, "/runs/{id}/history.json", signedIn, c.historyExport},
		{http.MethodGet, "/live/runs", signedIn, c.liveRuns},
		{http.MethodGet, "/live/runs/{id}", signedIn, c.liveRun},
		{http.MethodGet, "/workflows", signedIn, c.workflowsPage},
		{http.MethodGet, "/workflows/{namespace}/{name}", signedIn, c.workflowPage},
		{http.MethodPost, "/workflows/{namespace}/{name}/input-check", signedIn, c.checkInput},
		{http.MethodGet, "/functions", signedIn, c.functionsPage},
		{http.MethodGet, "/events", signedIn, c.eventsPage},
		{http.MethodGet, "/login", public, c.loginPage},
		{http.MethodPost, "/login", public, c.login},
		{http.MethodPost, "/logout", public, c.logout},
		{http.MethodPost, "/login/code", bearerOnly, c.loginCode},
		{http.MethodGet, "/static/{file...}", public, c.serveStatic},
	}
}

// contentSecurityPolicy lets pages load only the console's own scripts,
// styles and data, and not be framed.
const contentSecurityPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	c.mux.ServeHTTP(w, r)
}

// guard applies a route's access.
func (c *Console) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch rt.access {
		case signedIn:
			p := auth.PrincipalFrom(r.Context())
			if p == nil {
				if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/live/") && r.URL.Query().Get("fragment") == "" {
					http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
					return
				}
				http.Error(w, "log in first", http.StatusUnauthorized)
				return
			}
			if nss, all := p.Namespaces(auth.Viewer); !all && len(nss) == 0 {
				c.errorPage(w, r, http.StatusForbidden, "Your credentials hold no role in any namespace.")
				return
			}
		case bearerOnly:
			if auth.BearerToken(r) == "" || auth.PrincipalFrom(r.Context()) == nil {
				w.Header().Set("WWW-Authenticate", "Bearer")
				http.Error(w, "send Authorization: Bearer TOKEN", http.StatusUnauthorized)
				return
			}
		}
		if isStateChanging(r.Method) {
			r.Body = http.MaxBytesReader(w, r.Body, maxInputBytes)
		}
		rt.handler(w, r)
	})
}

func (c *Console) serveStatic(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	c.static.ServeHTTP(w, r)
}

// frame is what every page's layout shows around its content.
type frame struct {
	Title   string
	Nav     string
	Subject string
	CSRF    string
	// Auth is false when the server runs without authentication: there
	// is no session to end.
	Auth bool
	Page any
}

func (c *Console) frameFor(r *http.Request, title, nav string, page any) frame {
	f := frame{Title: title, Nav: nav, Page: page, Auth: c.authn != nil}
	if p := auth.PrincipalFrom(r.Context()); p != nil {
		f.Subject = p.Subject
	}
	if c.sessions != nil {
		f.CSRF = c.sessions.CSRFToken(r)
	}
	return f
}

// render writes a page, or only its fragment when the request asks for
// one (?fragment=NAME, what live updates and panels fetch).
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page, title, nav string, data any) {
	t := c.pages[page]
	name := "layout"
	var body any = c.frameFor(r, title, nav, data)
	if frag := r.URL.Query().Get("fragment"); frag != "" && t.Lookup(frag) != nil {
		name, body = frag, data
	}
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, name, body); err != nil {
		c.logger.Error("rendering a console page failed", "page", page, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(buf.String()))
}

// errorPage shows a failure as a page.
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, status int, message string) {
	c.render(w, r, status, "error", http.StatusText(status), "", struct {
		Status  int
		Message string
	}{status, message})
}

// fail answers an unexpected error of the engine.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error, what string) {
	if errors.Is(err, store.ErrNotFound) {
		c.errorPage(w, r, http.StatusNotFound, what+" not found.")
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	c.logger.Error("console page failed", "path", r.URL.Path, "what", what, "error", err)
	c.errorPage(w, r, http.StatusInternalServerError, "Reading "+what+" failed: "+err.Error())
}

// canSee reports whether the caller may see what namespace ns holds.
func canSee(r *http.Request, ns string) bool {
	return auth.PrincipalFrom(r.Context()).Can(auth.Viewer, ns)
}

// canOperate reports whether the caller may act on what ns holds (cancel,
// retry, start, send events): the console shows those controls only then.
func canOperate(r *http.Request, ns string) bool {
	return auth.PrincipalFrom(r.Context()).Can(auth.Operator, ns)
}
