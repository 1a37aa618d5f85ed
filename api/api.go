// Package api serves Baton's REST API: workflow definitions, invocations and
// their histories as JSON over HTTP, with every error an RFC 7807 problem
// document and the API itself described by an OpenAPI 3.1 document at
// /v1/openapi.json.
package api

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"time"

	"github.com/batonflow/baton/auth"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/lang"
	"github.com/batonflow/baton/store"
)

// Engine is what the API needs from the workflow engine. *engine.Engine
// satisfies it; tests substitute a fake.
type Engine interface {
	// ApplyDocument stores a workflow document in any language Baton runs.
	ApplyDocument(ctx context.Context, filename string, src []byte, opts lang.Options) (*store.Workflow, error)
	GetWorkflow(ctx context.Context, namespace, name, version string) (*store.Workflow, error)
	ListWorkflows(ctx context.Context) ([]*store.Workflow, error)
	DeleteWorkflow(ctx context.Context, namespace, name, version string) error
	Invoke(ctx context.Context, namespace, name, version string, input any) (*store.Invocation, error)
	Wait(ctx context.Context, id string) (*store.Invocation, error)
	GetInvocation(ctx context.Context, id string) (*store.Invocation, error)
	ListInvocations(ctx context.Context, f store.InvocationFilter) ([]*store.Invocation, string, error)
	// CancelInvocation records reason (may be empty) on the cancellation.
	CancelInvocation(ctx context.Context, id, reason string) error
	History(ctx context.Context, id string) ([]core.Event, error)
}

// Defaults of the handler's options.
const (
	DefaultMaxBodyBytes = 4 << 20
	DefaultMaxWait      = 5 * time.Minute
)

//go:embed openapi.json
var openAPIDocument []byte

// OpenAPIDocument returns the OpenAPI 3.1 document served at
// /v1/openapi.json.
func OpenAPIDocument() []byte {
	return append([]byte(nil), openAPIDocument...)
}

type config struct {
	logger       *slog.Logger
	maxBodyBytes int64
	maxWait      time.Duration
	shutdown     context.Context
	secrets      Secrets
	// functions, metrics and maxModuleBytes are set by the options in
	// functions.go.
	functions      Functions
	metrics        http.Handler
	maxModuleBytes int64
	// policies is set by WithPolicies (policy.go).
	policies Policies
	// authn, audit, tokens, allowedHosts and allowedOrigins are set by the
	// options in auth.go, tokens.go and browser.go.
	authn          auth.Authenticator
	audit          store.AuditStore
	tokens         TokenIssuer
	allowedHosts   []string
	allowedOrigins []string
	// console is set by WithConsole.
	console http.Handler
	// streamHeartbeat is the idle interval of invocation streams.
	streamHeartbeat time.Duration
}

// Option configures NewHandler.
type Option func(*config)

// WithLogger sets the logger for access logs (debug level) and server-side
// failures (error level). The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithMaxBodyBytes caps request bodies; larger ones are refused with 413.
func WithMaxBodyBytes(n int64) Option {
	return func(c *config) {
		if n > 0 {
			c.maxBodyBytes = n
		}
	}
}

// WithMaxWait caps the ?wait= duration of invocation requests, so that a
// client cannot hold a connection open indefinitely.
func WithMaxWait(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.maxWait = d
		}
	}
}

// WithShutdown ends long waits (?wait=) as soon as ctx is done, answering
// them as if the wait had run out, so that a graceful shutdown is not held
// up by clients waiting for invocations. Pass a context that is cancelled
// when shutdown begins (see http.Server.RegisterOnShutdown).
func WithShutdown(ctx context.Context) Option {
	return func(c *config) {
		if ctx != nil {
			c.shutdown = ctx
		}
	}
}

// WithConsole serves h (the web console, package console) for every
// request outside the API's own paths (/v1/..., /healthz, /readyz,
// /metrics), behind the same host and origin checks and authentication:
// h finds the caller's principal in the request's context, nil when
// anonymous, and applies its own access rules.
func WithConsole(h http.Handler) Option {
	return func(c *config) { c.console = h }
}

type server struct {
	engine Engine
	config
}

// route is one endpoint. The routes table is the single list the mux is
// built from, so the OpenAPI test can compare the document with exactly
// what is served.
type route struct {
	method  string
	path    string // a net/http pattern path, e.g. /v1/invocations/{id}
	handler http.HandlerFunc
}

func (s *server) routes() []route {
	return []route{
		{http.MethodGet, "/healthz", s.health},
		{http.MethodGet, "/readyz", s.ready},
		{http.MethodGet, "/v1/openapi.json", s.openAPI},

		{http.MethodPost, "/v1/workflows", s.applyWorkflow},
		{http.MethodGet, "/v1/workflows", s.listWorkflows},
		{http.MethodGet, "/v1/workflows/{namespace}/{name}", s.getWorkflow},
		{http.MethodDelete, "/v1/workflows/{namespace}/{name}", s.deleteWorkflow},
		{http.MethodGet, "/v1/workflows/{namespace}/{name}/versions/{version}", s.getWorkflow},
		{http.MethodDelete, "/v1/workflows/{namespace}/{name}/versions/{version}", s.deleteWorkflow},
		{http.MethodPost, "/v1/workflows/{namespace}/{name}/invocations", s.invoke},

		{http.MethodGet, "/v1/invocations", s.listInvocations},
		{http.MethodGet, "/v1/invocations/{id}", s.getInvocation},
		{http.MethodGet, "/v1/invocations/{id}/history", s.history},
		{http.MethodGet, "/v1/invocations/{id}/stream", s.streamInvocation},
		{http.MethodPost, "/v1/invocations/{id}/cancel", s.cancelInvocation},
		{http.MethodPost, "/v1/invocations/{id}/retry", s.retryInvocation},
		{http.MethodPost, "/v1/invocations/{id}/rerun", s.rerunInvocation},
		{http.MethodGet, "/v1/invocations/{id}/events", s.lifecycleEvents},
		{http.MethodDelete, "/v1/invocations/{id}", s.deleteInvocation},

		{http.MethodGet, "/v1/namespaces/{namespace}/policy", s.getPolicy},
		{http.MethodPut, "/v1/namespaces/{namespace}/policy", s.putPolicy},

		{http.MethodGet, "/v1/secrets", s.listSecrets},
		{http.MethodPut, "/v1/secrets/{name}", s.putSecret},
		{http.MethodDelete, "/v1/secrets/{name}", s.deleteSecret},

		{http.MethodPost, "/v1/functions", s.deployFunction},
		{http.MethodGet, "/v1/functions", s.listFunctions},
		{http.MethodGet, "/v1/functions/{name}", s.getFunction},
		{http.MethodDelete, "/v1/functions/{name}", s.deleteFunction},
		{http.MethodGet, "/v1/functions/{name}/versions/{version}", s.getFunction},
		{http.MethodDelete, "/v1/functions/{name}/versions/{version}", s.deleteFunction},
		{http.MethodPost, "/v1/functions/{name}/invoke", s.invokeFunction},
		{http.MethodGet, "/metrics", s.serveMetrics},
		{http.MethodGet, "/v1/qos", s.qosStatus},

		{http.MethodPost, "/v1/events", s.postEvents},
		{http.MethodGet, "/v1/events", s.listEvents},
		{http.MethodPost, "/v1/triggers", s.createTrigger},
		{http.MethodGet, "/v1/triggers", s.listTriggers},
		{http.MethodGet, "/v1/triggers/{name}", s.getTrigger},
		{http.MethodDelete, "/v1/triggers/{name}", s.deleteTrigger},
		{http.MethodPost, "/v1/hooks/{path}", s.fireHook},

		{http.MethodPost, "/v1/tokens", s.createToken},
		{http.MethodGet, "/v1/tokens", s.listTokens},
		{http.MethodDelete, "/v1/tokens/{id}", s.revokeToken},
		{http.MethodGet, "/v1/audit", s.listAudit},
	}
}

// NewHandler returns the REST API over e.
func NewHandler(e Engine, opts ...Option) http.Handler {
	s := newServer(e, opts...)
	return s.handler(s.routes())
}

func newServer(e Engine, opts ...Option) *server {
	s := &server{
		engine: e,
		config: config{
			logger:       slog.New(slog.DiscardHandler),
			maxBodyBytes: DefaultMaxBodyBytes,
			maxWait:      DefaultMaxWait,
			shutdown:     context.Background(),
		},
	}
	for _, opt := range opts {
		opt(&s.config)
	}
	return s
}

// handler serves routes with every check around them: browser checks and
// authentication for all requests, then each route's body type and access
// rule.
func (s *server) handler(routes []route) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.method+" "+rt.path, s.checkBodyType(rt, s.authorize(rt, rt.handler)))
	}
	return s.accessLog(s.recoverPanics(s.checkBrowser(s.authenticate(s.problemsForUnrouted(s.limitBodies(joinTrace(mux)), mux)))))
}

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Health{Status: "ok"})
}

func (s *server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPIDocument)
}
