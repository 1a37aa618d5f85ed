package openapicall

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/batonflow/baton/httpcall"
	"github.com/batonflow/baton/problem"
)

// recorded is what the API server saw.
type recorded struct {
	method, path, rawQuery, header, cookie, contentType, body string
}

type api struct {
	mu   sync.Mutex
	last recorded
	docs map[string]string
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if doc, ok := a.docs[r.URL.Path]; ok {
		w.Write([]byte(doc))
		return
	}
	if strings.HasSuffix(r.URL.Path, ".json") {
		http.NotFound(w, r)
		return
	}
	b, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.last = recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("X-Trace"), r.Header.Get("Cookie"), r.Header.Get("Content-Type"), string(b)}
	a.mu.Unlock()
	if strings.HasSuffix(r.URL.Path, "/404") {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"ok": true})
}

const swagger2 = `{
  "swagger": "2.0", "host": "HOST", "basePath": "/v2", "schemes": ["http"],
  "parameters": {"trace": {"name": "X-Trace", "in": "header", "type": "string"}},
  "paths": {
    "/pet/{petId}": {
      "parameters": [{"$ref": "#/parameters/trace"}],
      "get": {"operationId": "getPet", "parameters": [{"name": "petId", "in": "path", "required": true, "type": "integer"}]}
    },
    "/pet/findByStatus": {
      "get": {"operationId": "find", "parameters": [
        {"name": "status", "in": "query", "required": true, "type": "array", "items": {"type": "string"}, "collectionFormat": "multi"},
        {"name": "tags", "in": "query", "type": "array", "items": {"type": "string"}}]}
    },
    "/pet": {"post": {"operationId": "addPet", "consumes": ["application/json"],
      "parameters": [{"in": "body", "name": "pet", "required": true, "schema": {}}]}}
  }
}`

const openapi3 = `
openapi: 3.0.3
servers:
  - url: '{base}/api/v3'
    variables:
      base: {default: ''}
paths:
  /orders/{id}:
    put:
      operationId: putOrder
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - {name: session, in: cookie, schema: {type: string}}
        - {name: ids, in: query, explode: false, schema: {type: array}}
      requestBody:
        content:
          application/json: {schema: {type: object}}
`

func newClient(t *testing.T) (*Client, *api, string) {
	t.Helper()
	a := &api{}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	a.docs = map[string]string{
		"/swagger.json": strings.Replace(swagger2, "HOST", host, 1),
		"/openapi.yaml": openapi3,
	}
	return &Client{HTTP: &httpcall.Client{HTTP: srv.Client()}, Documents: srv.Client()}, a, srv.URL
}

func TestSwagger2Operations(t *testing.T) {
	c, a, base := newClient(t)
	doc := map[string]any{"endpoint": base + "/swagger.json"}
	cases := []struct {
		name   string
		op     string
		params map[string]any
		want   recorded
	}{
		{"path and shared header", "getPet", map[string]any{"petId": 7.0, "X-Trace": "t-1"},
			recorded{method: "GET", path: "/v2/pet/7", header: "t-1"}},
		{"multi and csv query", "find", map[string]any{"status": []any{"available", "sold"}, "tags": []any{"a", "b"}},
			recorded{method: "GET", path: "/v2/pet/findByStatus", rawQuery: "status=available&status=sold&tags=a%2Cb"}},
		{"body parameter", "addPet", map[string]any{"pet": map[string]any{"name": "Rex"}},
			recorded{method: "POST", path: "/v2/pet", contentType: "application/json", body: `{"name":"Rex"}`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, p := c.Do(context.Background(), Request{Args: map[string]any{"document": doc, "operationId": tc.op, "parameters": tc.params}})
			if p != nil {
				t.Fatal(p)
			}
			if !reflect.DeepEqual(out, map[string]any{"ok": true}) {
				t.Fatalf("output %v", out)
			}
			a.mu.Lock()
			got := a.last
			a.mu.Unlock()
			got.body = strings.TrimSpace(got.body)
			if got != tc.want {
				t.Fatalf("request %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestOpenAPI3OperationWithYAMLDocument(t *testing.T) {
	c, a, base := newClient(t)
	out, p := c.Do(context.Background(), Request{Args: map[string]any{
		"document":    map[string]any{"endpoint": map[string]any{"uri": base + "/openapi.yaml"}},
		"operationId": "putOrder",
		"parameters":  map[string]any{"id": "a/b", "session": "s1", "ids": []any{1.0, 2.0}, "body": map[string]any{"qty": 2.0}},
		"output":      "response",
	}})
	if p != nil {
		t.Fatal(p)
	}
	if resp, ok := out.(map[string]any); !ok || fmt.Sprint(resp["statusCode"]) != "200" {
		t.Fatalf("output %v", out)
	}
	a.mu.Lock()
	got := a.last
	a.mu.Unlock()
	want := recorded{method: "PUT", path: "/api/v3/orders/a/b", rawQuery: "ids=1%2C2", cookie: "session=s1",
		contentType: "application/json", body: `{"qty":2}`}
	got.body = strings.TrimSpace(got.body)
	if got != want {
		t.Fatalf("request %+v\nwant %+v", got, want)
	}
}

func TestOperationErrors(t *testing.T) {
	c, _, base := newClient(t)
	doc := map[string]any{"endpoint": base + "/swagger.json"}
	cases := []struct {
		name string
		args map[string]any
		typ  string
		code int
	}{
		{"unknown operation", map[string]any{"document": doc, "operationId": "nope"}, problem.TypeConfiguration, 400},
		{"missing path parameter", map[string]any{"document": doc, "operationId": "getPet"}, problem.TypeConfiguration, 400},
		{"unknown parameter", map[string]any{"document": doc, "operationId": "getPet", "parameters": map[string]any{"petId": 1.0, "petID": 2.0}}, problem.TypeConfiguration, 400},
		{"missing document", map[string]any{"document": map[string]any{"endpoint": base + "/absent.json"}, "operationId": "getPet"}, problem.TypeCommunication, 404},
		{"not found", map[string]any{"document": doc, "operationId": "getPet", "parameters": map[string]any{"petId": 404.0}}, problem.TypeCommunication, 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, p := c.Do(context.Background(), Request{Args: tc.args})
			if p == nil || p.Type != tc.typ || p.Status != tc.code {
				t.Fatalf("got %v, want %s %d", p, tc.typ, tc.code)
			}
		})
	}
}
