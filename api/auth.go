package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/batonflow/baton/auth"
	"github.com/batonflow/baton/lang"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// nsFrom says where a route finds the namespace its access is checked in.
type nsFrom int

const (
	// nsPublic routes need no credentials (health, the API's own document).
	nsPublic nsFrom = iota
	// nsServer routes concern the whole server: the role is needed in
	// every namespace ("*").
	nsServer
	// nsPath reads the {namespace} path value.
	nsPath
	// nsQuery reads ?namespace=, "default" when absent.
	nsQuery
	// nsDefault routes act on what is not namespaced yet (the event log):
	// they belong to the default namespace.
	nsDefault
	// nsDocument reads the namespace of the workflow document in the body.
	nsDocument
	// nsInvocation looks up the {id} invocation's namespace.
	nsInvocation
	// nsTrigger looks up the {name} trigger's namespace; nsTriggerBody
	// reads the namespace of the trigger in the body.
	nsTrigger
	nsTriggerBody
	// nsHook looks up the namespace of the trigger serving the {path} hook.
	nsHook
	// nsToken looks up the {id} token's namespace; nsTokenBody reads the
	// namespace of the token requested in the body.
	nsToken
	nsTokenBody
	// nsList routes list across namespaces: the caller needs the role in
	// at least one, and the handler shows only those (see visible).
	nsList
)

// access is what a route requires: a role in the namespace found in ns.
// audit marks administrative changes, recorded in the audit log when they
// succeed.
type access struct {
	role  auth.Role
	ns    nsFrom
	audit bool
}

// DefaultNamespace is the namespace of resources named without one.
const DefaultNamespace = "default"

// accessRules maps each route ("METHOD path", as in routes()) to what it
// requires. A route missing here is refused to everyone, and the
// route × role × namespace test fails, so a new route cannot be served
// unchecked by accident.
var accessRules = map[string]access{
	"GET /healthz":         {ns: nsPublic},
	"GET /readyz":          {ns: nsPublic},
	"GET /v1/openapi.json": {ns: nsPublic},

	"POST /v1/workflows":                                         {auth.Developer, nsDocument, true},
	"GET /v1/workflows":                                          {auth.Viewer, nsList, false},
	"GET /v1/workflows/{namespace}/{name}":                       {auth.Viewer, nsPath, false},
	"DELETE /v1/workflows/{namespace}/{name}":                    {auth.Developer, nsPath, true},
	"GET /v1/workflows/{namespace}/{name}/versions/{version}":    {auth.Viewer, nsPath, false},
	"DELETE /v1/workflows/{namespace}/{name}/versions/{version}": {auth.Developer, nsPath, true},
	"POST /v1/workflows/{namespace}/{name}/invocations":          {auth.Operator, nsPath, false},

	"GET /v1/invocations":              {auth.Viewer, nsList, false},
	"GET /v1/invocations/{id}":         {auth.Viewer, nsInvocation, false},
	"GET /v1/invocations/{id}/history": {auth.Viewer, nsInvocation, false},
	"GET /v1/invocations/{id}/stream":  {auth.Viewer, nsInvocation, false},
	"POST /v1/invocations/{id}/cancel": {auth.Operator, nsInvocation, false},
	"POST /v1/invocations/{id}/retry":  {auth.Operator, nsInvocation, false},
	"POST /v1/invocations/{id}/rerun":  {auth.Operator, nsInvocation, false},
	"GET /v1/invocations/{id}/events":  {auth.Viewer, nsInvocation, false},
	"DELETE /v1/invocations/{id}":      {auth.Developer, nsInvocation, true},

	"GET /v1/namespaces/{namespace}/policy": {auth.Viewer, nsPath, false},
	"PUT /v1/namespaces/{namespace}/policy": {auth.Admin, nsPath, true},

	"GET /v1/secrets":           {auth.Viewer, nsQuery, false},
	"PUT /v1/secrets/{name}":    {auth.Developer, nsQuery, true},
	"DELETE /v1/secrets/{name}": {auth.Developer, nsQuery, true},

	"POST /v1/functions":                             {auth.Developer, nsQuery, true},
	"GET /v1/functions":                              {auth.Viewer, nsQuery, false},
	"GET /v1/functions/{name}":                       {auth.Viewer, nsQuery, false},
	"DELETE /v1/functions/{name}":                    {auth.Developer, nsQuery, true},
	"GET /v1/functions/{name}/versions/{version}":    {auth.Viewer, nsQuery, false},
	"DELETE /v1/functions/{name}/versions/{version}": {auth.Developer, nsQuery, true},
	"POST /v1/functions/{name}/invoke":               {auth.Operator, nsQuery, false},
	"GET /metrics":                                   {auth.Viewer, nsServer, false},

	"POST /v1/events":            {auth.Operator, nsDefault, false},
	"GET /v1/events":             {auth.Viewer, nsDefault, false},
	"POST /v1/triggers":          {auth.Developer, nsTriggerBody, true},
	"GET /v1/triggers":           {auth.Viewer, nsList, false},
	"GET /v1/triggers/{name}":    {auth.Viewer, nsTrigger, false},
	"DELETE /v1/triggers/{name}": {auth.Developer, nsTrigger, true},
	"POST /v1/hooks/{path}":      {auth.Operator, nsHook, false},

	"POST /v1/tokens":        {auth.Admin, nsTokenBody, true},
	"GET /v1/tokens":         {auth.Admin, nsList, false},
	"DELETE /v1/tokens/{id}": {auth.Admin, nsToken, true},
	"GET /v1/audit":          {auth.Admin, nsList, false},
}

// WithAuth makes every route but /healthz and /v1/openapi.json require
// credentials that a recognises, and checks the role each route needs in
// its namespace. Without it the handler trusts every caller as an admin of
// every namespace: only for embedders that authenticate in front of it and
// for tests. `baton server` always sets it.
func WithAuth(a auth.Authenticator) Option {
	return func(c *config) { c.authn = a }
}

// WithAudit records every administrative change (workflows, functions,
// secrets, triggers, tokens, policies) in a, and serves GET /v1/audit.
func WithAudit(a store.AuditStore) Option {
	return func(c *config) { c.audit = a }
}

// unauthenticated is the principal of requests to a handler without
// WithAuth.
var unauthenticated = &auth.Principal{Subject: "unauthenticated", Grants: []auth.Grant{{Namespace: auth.AllNamespaces, Role: auth.Admin}}}

func unauthorized(format string, args ...any) *problem.Problem {
	return problem.Newf(problem.TypeBadRequest, http.StatusUnauthorized, "Unauthorized", format, args...)
}

func forbidden(format string, args ...any) *problem.Problem {
	return problem.Newf(problem.TypeBadRequest, http.StatusForbidden, "Forbidden", format, args...)
}

// authenticate identifies the caller; requests without credentials go on
// anonymously, for the public routes.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.authn == nil {
			next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), unauthenticated)))
			return
		}
		p, err := s.authn.Authenticate(r)
		switch {
		case errors.Is(err, auth.ErrNoCredentials):
			next.ServeHTTP(w, r)
		case errors.Is(err, auth.ErrInvalidCredentials):
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			s.writeProblem(w, r, unauthorized("%v", err))
		case err != nil:
			s.fail(w, r, err, "checking the credentials")
		default:
			next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
		}
	})
}

// authorize wraps a route's handler with the check its access rule asks
// for, and records administrative changes in the audit log.
func (s *server) authorize(rt route, next http.Handler) http.Handler {
	rule, known := accessRules[rt.method+" "+rt.path]
	action := rt.method + " " + rt.path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !known {
			s.writeProblem(w, r, forbidden("%s declares no access rule", action))
			return
		}
		if rule.ns == nsPublic {
			next.ServeHTTP(w, r)
			return
		}
		p := auth.PrincipalFrom(r.Context())
		if p == nil {
			w.Header().Set("WWW-Authenticate", `Bearer`)
			s.writeProblem(w, r, unauthorized("this route needs credentials: send Authorization: Bearer TOKEN (baton: --token or $BATON_TOKEN)"))
			return
		}
		ns, done := s.namespaceOf(w, r, rule)
		if done {
			return
		}
		if rule.ns == nsList {
			if nss, all := p.Namespaces(rule.role); !all && len(nss) == 0 {
				s.writeProblem(w, r, forbidden("%s needs the %s role in some namespace", action, rule.role))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if ns == missing {
			next.ServeHTTP(w, r)
			return
		}
		if lookup := rule.ns == nsInvocation || rule.ns == nsTrigger || rule.ns == nsToken || rule.ns == nsHook; lookup && !p.Can(auth.Viewer, ns) {
			// Whoever may not look into the namespace learns nothing of
			// what it holds, not even that it exists.
			s.writeProblem(w, r, notFound("%s not found", r.URL.Path))
			return
		}
		if !p.Can(rule.role, ns) {
			if rule.ns == nsServer {
				s.writeProblem(w, r, forbidden("%s needs the %s role in every namespace (*)", action, rule.role))
				return
			}
			s.writeProblem(w, r, forbidden("%s needs the %s role in namespace %q", action, rule.role, ns))
			return
		}
		if !rule.audit || s.audit == nil {
			next.ServeHTTP(w, r)
			return
		}
		rec := &responseRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status >= 400 || rec.status == 0 {
			return
		}
		entry := &store.AuditEntry{Subject: p.Subject, Namespace: ns, Action: action, Target: r.URL.Path, Status: rec.status}
		// The change is made; the request's own context may end now, the
		// record of it must still be written.
		if err := s.audit.AppendAudit(context.WithoutCancel(r.Context()), entry); err != nil {
			s.logger.LogAttrs(r.Context(), slog.LevelError, "recording an audit entry failed",
				slog.String("subject", p.Subject), slog.String("action", action), slog.String("target", r.URL.Path), slog.Any("error", err))
		}
	})
}

// namespaceOf finds the namespace a request acts in, by its route's rule.
// done is true when it answered the request itself (a lookup failed).
func (s *server) namespaceOf(w http.ResponseWriter, r *http.Request, rule access) (ns string, done bool) {
	ctx := r.Context()
	switch rule.ns {
	case nsServer:
		return auth.AllNamespaces, false
	case nsPath:
		return r.PathValue("namespace"), false
	case nsQuery:
		return queryNamespace(r), false
	case nsDefault:
		return DefaultNamespace, false
	case nsList:
		return "", false
	case nsDocument:
		body, ok := s.peekBody(w, r)
		if !ok {
			return "", true
		}
		opts := lang.Options{Format: r.URL.Query().Get("format"), Namespace: r.URL.Query().Get("namespace")}
		def, _, err := lang.Parse(DefaultFilename, body, opts)
		if err != nil || def == nil || def.Document.Namespace == "" {
			// An invalid document is refused by the handler with the
			// parser's findings; those reveal nothing of other namespaces.
			return queryNamespace(r), false
		}
		return def.Document.Namespace, false
	case nsTriggerBody, nsTokenBody:
		body, ok := s.peekBody(w, r)
		if !ok {
			return "", true
		}
		// Decoded as the handler decodes it (the first JSON value, keys
		// matched as encoding/json matches them); the handler checks the
		// namespace it decoded again (see allowedIn).
		var v struct {
			Namespace string `json:"namespace"`
		}
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&v); err != nil {
			s.writeProblem(w, r, badRequest("the request body is not a JSON object with a namespace"))
			return "", true
		}
		if v.Namespace == "" {
			return DefaultNamespace, false
		}
		return v.Namespace, false
	case nsInvocation:
		inv, err := s.engine.GetInvocation(ctx, r.PathValue("id"))
		return s.lookedUp(w, r, err, func() string { return inv.Namespace })
	case nsTrigger:
		te, ok := s.engine.(triggerEngine)
		if !ok {
			return DefaultNamespace, false
		}
		t, err := te.GetTrigger(ctx, r.PathValue("name"))
		return s.lookedUp(w, r, err, func() string { return t.Namespace })
	case nsHook:
		te, ok := s.engine.(triggerEngine)
		if !ok {
			return DefaultNamespace, false
		}
		all, err := te.ListTriggers(ctx)
		if err != nil {
			s.fail(w, r, err, "hook "+r.PathValue("path"))
			return "", true
		}
		path := strings.Trim(r.PathValue("path"), "/")
		for _, t := range all {
			if t.Kind == "http" && t.Spec == path {
				return t.Namespace, false
			}
		}
		return missing, false
	case nsToken:
		if s.tokens == nil {
			return auth.AllNamespaces, false
		}
		t, err := s.tokens.Get(ctx, r.PathValue("id"))
		return s.lookedUp(w, r, err, func() string { return t.Namespace })
	}
	return auth.AllNamespaces, false
}

// missing stands for the namespace of a resource a lookup did not find:
// the handler answers 404 to whoever asks, as it would without auth.
const missing = "\x00missing"

// lookedUp turns a lookup into a namespace.
func (s *server) lookedUp(w http.ResponseWriter, r *http.Request, err error, ns func() string) (string, bool) {
	if errors.Is(err, store.ErrNotFound) {
		return missing, false
	}
	if err != nil {
		s.fail(w, r, err, r.URL.Path)
		return "", true
	}
	return ns(), false
}

// peekBody reads the request body for an access check and leaves it for
// the handler to read again.
func (s *server) peekBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.fail(w, r, err, "reading the request")
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, true
}

func queryNamespace(r *http.Request) string {
	if ns := r.URL.Query().Get("namespace"); ns != "" {
		return ns
	}
	return DefaultNamespace
}

// visible reports whether the caller may see resources of ns with role;
// list handlers keep only those.
func visible(r *http.Request, role auth.Role, ns string) bool {
	return auth.PrincipalFrom(r.Context()).Can(role, ns)
}

// scopeInvocations keeps an invocation listing inside the caller's
// namespaces. Listing pages through the store, so a caller who sees
// several namespaces (but not all) names one with ?namespace=.
func scopeInvocations(r *http.Request, f *store.InvocationFilter) *problem.Problem {
	p := auth.PrincipalFrom(r.Context())
	if f.Namespace != "" {
		if !p.Can(auth.Viewer, f.Namespace) {
			return forbidden("listing the invocations of namespace %q needs the viewer role there", f.Namespace)
		}
		return nil
	}
	namespaces, all := p.Namespaces(auth.Viewer)
	switch {
	case all:
		return nil
	case len(namespaces) == 1:
		f.Namespace = namespaces[0]
		return nil
	}
	return badRequest("name the namespace to list with ?namespace= (one of %s)", strings.Join(namespaces, ", "))
}

// allowedIn checks, in a handler, that the caller holds role in the
// namespace the handler is about to act in, for routes whose namespace
// comes from the body: the access rule read the body once, the handler
// reads it again, and they must not disagree.
func (s *server) allowedIn(w http.ResponseWriter, r *http.Request, role auth.Role, ns string) bool {
	if auth.PrincipalFrom(r.Context()).Can(role, ns) {
		return true
	}
	s.writeProblem(w, r, forbidden("this needs the %s role in namespace %q", role, ns))
	return false
}
