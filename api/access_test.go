package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/batonflow/baton/auth"
	"github.com/batonflow/baton/store"
)

// The namespaces of the access test: tokens are granted in own; other is
// a neighbour's.
const (
	ownNS   = DefaultNamespace
	otherNS = "team-b"
)

// staticAuth maps bearer tokens to principals.
type staticAuth map[string]*auth.Principal

func (a staticAuth) Authenticate(r *http.Request) (*auth.Principal, error) {
	token := auth.BearerToken(r)
	if token == "" {
		return nil, auth.ErrNoCredentials
	}
	if p, ok := a[token]; ok {
		return p, nil
	}
	return nil, auth.ErrInvalidCredentials
}

// lookupEngine answers the lookups access rules make: an invocation, a
// trigger and a hook in each namespace.
type lookupEngine struct{ Engine }

func (lookupEngine) GetInvocation(_ context.Context, id string) (*store.Invocation, error) {
	if ns, ok := strings.CutPrefix(id, "inv-"); ok {
		return &store.Invocation{ID: id, Namespace: ns}, nil
	}
	return nil, store.ErrNotFound
}

func (lookupEngine) GetTrigger(_ context.Context, name string) (*store.Trigger, error) {
	if ns, ok := strings.CutPrefix(name, "trigger-"); ok {
		return &store.Trigger{Name: name, Namespace: ns, Kind: "http", Spec: "hook-" + ns}, nil
	}
	return nil, store.ErrNotFound
}

func (e lookupEngine) ListTriggers(ctx context.Context) ([]*store.Trigger, error) {
	a, _ := e.GetTrigger(ctx, "trigger-"+ownNS)
	b, _ := e.GetTrigger(ctx, "trigger-"+otherNS)
	return []*store.Trigger{a, b}, nil
}

func (lookupEngine) CreateTrigger(context.Context, *store.Trigger) (*store.Trigger, error) {
	return nil, errors.New("not in this test")
}
func (lookupEngine) DeleteTrigger(context.Context, string) error {
	return errors.New("not in this test")
}
func (lookupEngine) FireHook(context.Context, string, any, string) (*store.Invocation, error) {
	return nil, errors.New("not in this test")
}

// lookupTokens knows one token in each namespace.
type lookupTokens struct{ TokenIssuer }

func (lookupTokens) Get(_ context.Context, id string) (*store.Token, error) {
	if ns, ok := strings.CutPrefix(id, "tok-"); ok {
		return &store.Token{ID: id, Namespace: ns}, nil
	}
	return nil, store.ErrNotFound
}

// wantAccess is the access model, written down independently of
// accessRules: the weakest role a route needs, and where it applies —
// "ns" in the namespace the request acts in, "list" in any namespace (the
// answer is filtered), "default" in the default namespace (what is not
// namespaced yet), "all" in every namespace, "public" without credentials.
var wantAccess = map[string]string{
	"GET /healthz":         "public",
	"GET /readyz":          "public",
	"GET /v1/openapi.json": "public",

	"POST /v1/workflows":                                         "developer ns",
	"GET /v1/workflows":                                          "viewer list",
	"GET /v1/workflows/{namespace}/{name}":                       "viewer ns",
	"DELETE /v1/workflows/{namespace}/{name}":                    "developer ns",
	"GET /v1/workflows/{namespace}/{name}/versions/{version}":    "viewer ns",
	"DELETE /v1/workflows/{namespace}/{name}/versions/{version}": "developer ns",
	"POST /v1/workflows/{namespace}/{name}/invocations":          "operator ns",

	"GET /v1/invocations":              "viewer list",
	"GET /v1/invocations/{id}":         "viewer ns",
	"GET /v1/invocations/{id}/history": "viewer ns",
	"GET /v1/invocations/{id}/stream":  "viewer ns",
	"POST /v1/invocations/{id}/cancel": "operator ns",
	"POST /v1/invocations/{id}/retry":  "operator ns",
	"POST /v1/invocations/{id}/rerun":  "operator ns",
	"GET /v1/invocations/{id}/events":  "viewer ns",
	"DELETE /v1/invocations/{id}":      "developer ns",

	"GET /v1/namespaces/{namespace}/policy": "viewer ns",
	"PUT /v1/namespaces/{namespace}/policy": "admin ns",

	"GET /v1/secrets":           "viewer ns",
	"PUT /v1/secrets/{name}":    "developer ns",
	"DELETE /v1/secrets/{name}": "developer ns",

	"POST /v1/functions":                             "developer ns",
	"GET /v1/functions":                              "viewer ns",
	"GET /v1/functions/{name}":                       "viewer ns",
	"DELETE /v1/functions/{name}":                    "developer ns",
	"GET /v1/functions/{name}/versions/{version}":    "viewer ns",
	"DELETE /v1/functions/{name}/versions/{version}": "developer ns",
	"POST /v1/functions/{name}/invoke":               "operator ns",
	"GET /metrics":                                   "viewer all",

	"POST /v1/events":            "operator default",
	"GET /v1/events":             "viewer default",
	"POST /v1/triggers":          "developer ns",
	"GET /v1/triggers":           "viewer list",
	"GET /v1/triggers/{name}":    "viewer ns",
	"DELETE /v1/triggers/{name}": "developer ns",
	"POST /v1/hooks/{path}":      "operator ns",

	"POST /v1/tokens":        "admin ns",
	"GET /v1/tokens":         "admin list",
	"DELETE /v1/tokens/{id}": "admin ns",
	"GET /v1/audit":          "admin list",
}

// allowed says whether wantAccess lets a role of ownNS through a request
// acting in ns.
func allowed(spec string, role auth.Role, ns string) bool {
	roleName, scope, _ := strings.Cut(spec, " ")
	need, err := auth.ParseRole(roleName)
	if err != nil || role < need {
		return false
	}
	switch scope {
	case "ns":
		return ns == ownNS
	case "list":
		return true
	case "default":
		return ownNS == DefaultNamespace
	}
	return false // "all": ownNS is not every namespace
}

// reached is the status of the stand-in handlers: the request got past
// every check.
const reached = 299

// accessRequest builds a request to rt acting in namespace ns.
func accessRequest(rt route, ns string) *http.Request {
	path := rt.path
	name := "hello"
	if strings.Contains(path, "/triggers/") {
		name = "trigger-" + ns
	}
	for key, value := range map[string]string{
		"{namespace}": ns, "{name}": name, "{version}": "1.0.0", "{id}": "inv-" + ns, "{path}": "hook-" + ns,
	} {
		path = strings.ReplaceAll(path, key, url.PathEscape(value))
	}
	if strings.HasPrefix(rt.path, "/v1/tokens/") {
		path = "/v1/tokens/tok-" + ns
	}
	body := ""
	switch accessRules[rt.method+" "+rt.path].ns {
	case nsQuery:
		path += "?namespace=" + ns
	case nsDocument:
		body = fmt.Sprintf(`{"document": {"dsl": "1.0.0", "namespace": %q, "name": "x", "version": "1.0.0"}, "do": [{"a": {"set": {"x": 1}}}]}`, ns)
	case nsTriggerBody, nsTokenBody:
		body = fmt.Sprintf(`{"namespace": %q, "name": "t", "role": "viewer"}`, ns)
	}
	if body == "" && isStateChanging(rt.method) {
		body = "{}"
	}
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(rt.method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(rt.method, path, nil)
	}
	r.Host = "127.0.0.1:8780"
	return r
}

// TestAccessEveryRouteRoleNamespace sends a request to every route, as
// every role of the own namespace, acting in the own namespace and in
// another, and checks the request gets through exactly when the route's
// rule allows it. Routes come from the same table the server is built
// from, so a new route without an access rule fails here.
func TestAccessEveryRouteRoleNamespace(t *testing.T) {
	principals := staticAuth{}
	for _, role := range auth.Roles() {
		principals[role.String()] = &auth.Principal{Subject: role.String(), Grants: []auth.Grant{{Namespace: ownNS, Role: role}}}
	}
	principals["root"] = &auth.Principal{Subject: "root", Grants: []auth.Grant{{Namespace: auth.AllNamespaces, Role: auth.Admin}}}
	s := newServer(lookupEngine{}, WithAuth(principals), WithTokens(lookupTokens{}))
	routes := s.routes()
	for i := range routes {
		routes[i].handler = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(reached) }
	}
	h := s.handler(routes)

	for _, rt := range routes {
		_, ok := accessRules[rt.method+" "+rt.path]
		spec, specified := wantAccess[rt.method+" "+rt.path]
		if !ok || !specified {
			t.Errorf("%s %s has no access rule (%v) or no expected access in this test (%v)", rt.method, rt.path, ok, specified)
			continue
		}
		for _, ns := range []string{ownNS, otherNS} {
			r := accessRequest(rt, ns)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if spec == "public" {
				if rec.Code != reached {
					t.Errorf("%s %s without credentials: %d, want the public route served", rt.method, r.URL, rec.Code)
				}
				continue
			}
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("%s %s without credentials: %d, want 401", rt.method, r.URL, rec.Code)
			}
			for _, role := range auth.Roles() {
				r := accessRequest(rt, ns)
				r.Header.Set("Authorization", "Bearer "+role.String())
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				want := allowed(spec, role, ns)
				if got := rec.Code == reached; got != want {
					t.Errorf("%s %s as %s of %s: status %d (%s), want allowed=%v", rt.method, r.URL, role, ownNS, rec.Code, strings.TrimSpace(rec.Body.String()), want)
				}
				if !want && rec.Code != http.StatusForbidden && rec.Code != http.StatusNotFound {
					t.Errorf("%s %s as %s: refused with %d, want 403 or 404", rt.method, r.URL, role, rec.Code)
				}
			}
			// An admin of every namespace passes everywhere.
			r = accessRequest(rt, ns)
			r.Header.Set("Authorization", "Bearer root")
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != reached {
				t.Errorf("%s %s as admin of *: %d %s", rt.method, r.URL, rec.Code, rec.Body.String())
			}
		}
	}
	for key := range accessRules {
		found := false
		for _, rt := range routes {
			found = found || rt.method+" "+rt.path == key
		}
		if !found {
			t.Errorf("access rule %q names no route", key)
		}
	}
}

// TestAccessWrongToken refuses unknown tokens with 401 even on routes a
// valid one would not reach.
func TestAccessWrongToken(t *testing.T) {
	s := newServer(lookupEngine{}, WithAuth(staticAuth{}))
	r := httptest.NewRequest(http.MethodGet, "/v1/workflows", nil)
	r.Host = "localhost:8780"
	r.Header.Set("Authorization", "Bearer nope")
	rec := httptest.NewRecorder()
	s.handler(s.routes()).ServeHTTP(rec, r)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("%d %v %s", rec.Code, rec.Header(), rec.Body.String())
	}
}

// TestAccessBodyNamespaceAgrees refuses bodies whose namespace the access
// check and the handler could read differently: trailing data after the
// JSON value, keys in another case, a namespace of the wrong type.
func TestAccessBodyNamespaceAgrees(t *testing.T) {
	principals := staticAuth{"dev": {Subject: "dev", Grants: []auth.Grant{{Namespace: DefaultNamespace, Role: auth.Admin}}}}
	h := NewHandler(lookupEngine{}, WithAuth(principals), WithTokens(&auth.Tokens{Store: &memoryTokens{}}))
	for _, tc := range []struct{ path, body string }{
		{"/v1/triggers", `{"namespace": "team-b", "name": "t", "workflow": "w", "kind": "http", "spec": "x"} trailing`},
		{"/v1/triggers", `{"NameSpace": "team-b", "name": "t", "workflow": "w", "kind": "http", "spec": "x"}`},
		{"/v1/triggers", `{"namespace": 7}`},
		{"/v1/tokens", `{"namespace": "team-b", "role": "admin"} {"namespace": "default"}`},
		{"/v1/tokens", `{"NAMESPACE": "team-b", "role": "admin"}`},
	} {
		r := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body))
		r.Host = "127.0.0.1"
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer dev")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusForbidden && rec.Code != http.StatusBadRequest {
			t.Errorf("POST %s %s: %d %s, want 403 or 400", tc.path, tc.body, rec.Code, rec.Body.String())
		}
	}
}
