package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/api/apitest"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

func helloDoc(version, greeting string) string {
	return `document:
  dsl: '1.0.0'
  namespace: default
  name: hello
  version: '` + version + `'
do:
  - greet:
      set:
        greeting: ${ "` + greeting + `, " + .name + "!" }
`
}

// brokenDoc lacks document.version and names an unknown task type.
const brokenDoc = `document:
  dsl: '1.0.0'
  namespace: default
  name: broken
do:
  - first:
      frobnicate: true
`

type fixture struct {
	t      *testing.T
	engine *apitest.Engine
	srv    *httptest.Server
}

func newFixture(t *testing.T, opts ...api.Option) *fixture {
	t.Helper()
	e := apitest.NewEngine()
	srv := httptest.NewServer(api.NewHandler(e, opts...))
	t.Cleanup(srv.Close)
	return &fixture{t: t, engine: e, srv: srv}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (f *fixture) do(method, path, body string) response {
	f.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, r)
	if err != nil {
		f.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

func (f *fixture) apply(doc string) {
	f.t.Helper()
	if r := f.do(http.MethodPost, "/v1/workflows", doc); r.status != http.StatusCreated {
		f.t.Fatalf("apply: status %d: %s", r.status, r.body)
	}
}

func decode[T any](t *testing.T, r response, wantStatus int) T {
	t.Helper()
	if r.status != wantStatus {
		t.Fatalf("status = %d, want %d; body: %s", r.status, wantStatus, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
	return v
}

func decodeProblem(t *testing.T, r response, wantStatus int) problem.Problem {
	t.Helper()
	if r.status != wantStatus {
		t.Fatalf("status = %d, want %d; body: %s", r.status, wantStatus, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != api.ProblemContentType {
		t.Fatalf("Content-Type = %q, want %s", ct, api.ProblemContentType)
	}
	var p problem.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decoding problem %s: %v", r.body, err)
	}
	if p.Status != wantStatus || p.Type == "" || p.Title == "" {
		t.Fatalf("problem %+v: want status %d, a type and a title", p, wantStatus)
	}
	return p
}

func TestHealth(t *testing.T) {
	f := newFixture(t)
	got := decode[api.Health](t, f.do(http.MethodGet, "/healthz", ""), http.StatusOK)
	if got.Status != "ok" {
		t.Fatalf("status = %q", got.Status)
	}
}

func TestApplyWorkflow(t *testing.T) {
	f := newFixture(t)

	r := f.do(http.MethodPost, "/v1/workflows", helloDoc("0.1.0", "Hello"))
	ref := decode[api.WorkflowRef](t, r, http.StatusCreated)
	if want := (api.WorkflowRef{Namespace: "default", Name: "hello", Version: "0.1.0"}); ref != want {
		t.Fatalf("ref = %+v, want %+v", ref, want)
	}
	if loc := r.header.Get("Location"); loc != "/v1/workflows/default/hello/versions/0.1.0" {
		t.Fatalf("Location = %q", loc)
	}

	// Re-applying identical content is idempotent.
	decode[api.WorkflowRef](t, f.do(http.MethodPost, "/v1/workflows", helloDoc("0.1.0", "Hello")), http.StatusCreated)

	// The same version with other content conflicts.
	p := decodeProblem(t, f.do(http.MethodPost, "/v1/workflows", helloDoc("0.1.0", "Hi")), http.StatusConflict)
	if p.Type != problem.TypeConflict || !strings.Contains(p.Detail, "document.version") {
		t.Fatalf("conflict problem = %+v", p)
	}

	// A JSON document is accepted as well.
	jsonDoc := `{"document":{"dsl":"1.0.0","namespace":"default","name":"hello","version":"0.2.0"},
		"do":[{"greet":{"set":{"greeting":"hi"}}}]}`
	ref = decode[api.WorkflowRef](t, f.do(http.MethodPost, "/v1/workflows", jsonDoc), http.StatusCreated)
	if ref.Version != "0.2.0" {
		t.Fatalf("JSON document stored as %+v", ref)
	}
}

func TestApplyWorkflowInvalid(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name       string
		path, body string
		status     int
		prefix     string // every listed error starts with it
	}{
		{"invalid document", "/v1/workflows", brokenDoc, 400, "request body:"},
		{"named by filename", "/v1/workflows?filename=broken.yaml", brokenDoc, 400, "broken.yaml:"},
		{"invalid YAML", "/v1/workflows", "document: [unclosed\n", 400, "request body:"},
		{"empty body", "/v1/workflows", "", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decodeProblem(t, f.do(http.MethodPost, tt.path, tt.body), tt.status)
			if tt.prefix == "" {
				if p.Type != problem.TypeBadRequest {
					t.Fatalf("type = %q", p.Type)
				}
				return
			}
			if p.Type != problem.TypeValidation || len(p.Errors) == 0 {
				t.Fatalf("want a validation problem listing errors, got %+v", p)
			}
			for _, line := range p.Errors {
				if !strings.HasPrefix(line, tt.prefix) {
					t.Errorf("error %q does not start with %q", line, tt.prefix)
				}
				// file:line:col: ...
				rest := strings.TrimPrefix(line, tt.prefix)
				if parts := strings.SplitN(rest, ":", 3); len(parts) < 3 {
					t.Errorf("error %q lacks line and column", line)
				}
			}
		})
	}
	list := decode[api.WorkflowList](t, f.do(http.MethodGet, "/v1/workflows", ""), http.StatusOK)
	if len(list.Items) != 0 {
		t.Fatalf("invalid documents were stored: %+v", list.Items)
	}
}

func TestRequestBodyLimit(t *testing.T) {
	f := newFixture(t, api.WithMaxBodyBytes(64))
	p := decodeProblem(t, f.do(http.MethodPost, "/v1/workflows", helloDoc("0.1.0", "Hello")), http.StatusRequestEntityTooLarge)
	if !strings.Contains(p.Detail, "64 bytes") {
		t.Fatalf("detail = %q", p.Detail)
	}
	// A body without a declared length is cut off while it is read.
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(bytes.Repeat([]byte(" "), 1000))
		_ = pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/workflows/default/hello/invocations", pr)
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("streamed body: status %d, want 413", resp.StatusCode)
	}
}

func TestWorkflowReadAndDelete(t *testing.T) {
	f := newFixture(t)
	f.apply(helloDoc("0.1.0", "Hello"))
	f.apply(helloDoc("0.2.0", "Hi"))

	list := decode[api.WorkflowList](t, f.do(http.MethodGet, "/v1/workflows", ""), http.StatusOK)
	if len(list.Items) != 2 || list.Items[0].Version != "0.1.0" || list.Items[1].Version != "0.2.0" ||
		list.Items[0].Format != "dsl" || list.Items[0].CreatedAt.IsZero() {
		t.Fatalf("list = %+v", list.Items)
	}

	newest := decode[api.Workflow](t, f.do(http.MethodGet, "/v1/workflows/default/hello", ""), http.StatusOK)
	if newest.Version != "0.2.0" || strings.Join(newest.Versions, ",") != "0.1.0,0.2.0" ||
		newest.Source != helloDoc("0.2.0", "Hi") || newest.Format != "dsl" {
		t.Fatalf("newest = %+v", newest)
	}
	first := decode[api.Workflow](t, f.do(http.MethodGet, "/v1/workflows/default/hello/versions/0.1.0", ""), http.StatusOK)
	if first.Version != "0.1.0" || first.Source != helloDoc("0.1.0", "Hello") {
		t.Fatalf("version 0.1.0 = %+v", first)
	}

	p := decodeProblem(t, f.do(http.MethodGet, "/v1/workflows/default/nope", ""), http.StatusNotFound)
	if p.Detail != "workflow default/nope not found" || p.Instance != "/v1/workflows/default/nope" {
		t.Fatalf("not found = %+v", p)
	}
	p = decodeProblem(t, f.do(http.MethodGet, "/v1/workflows/default/hello/versions/9.9.9", ""), http.StatusNotFound)
	if p.Detail != "workflow default/hello version 9.9.9 not found" {
		t.Fatalf("not found = %+v", p)
	}

	if r := f.do(http.MethodDelete, "/v1/workflows/default/hello/versions/0.2.0", ""); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("delete version: %d %s", r.status, r.body)
	}
	newest = decode[api.Workflow](t, f.do(http.MethodGet, "/v1/workflows/default/hello", ""), http.StatusOK)
	if newest.Version != "0.1.0" || len(newest.Versions) != 1 {
		t.Fatalf("after deleting 0.2.0: %+v", newest)
	}
	decodeProblem(t, f.do(http.MethodDelete, "/v1/workflows/default/hello/versions/0.2.0", ""), http.StatusNotFound)

	if r := f.do(http.MethodDelete, "/v1/workflows/default/hello", ""); r.status != http.StatusNoContent {
		t.Fatalf("delete all: %d %s", r.status, r.body)
	}
	decodeProblem(t, f.do(http.MethodGet, "/v1/workflows/default/hello", ""), http.StatusNotFound)
	decodeProblem(t, f.do(http.MethodDelete, "/v1/workflows/default/hello", ""), http.StatusNotFound)
}

func TestInvoke(t *testing.T) {
	f := newFixture(t)
	f.apply(helloDoc("0.1.0", "Hello"))
	f.apply(helloDoc("0.2.0", "Hi"))

	t.Run("accepted", func(t *testing.T) {
		r := f.do(http.MethodPost, "/v1/workflows/default/hello/invocations", `{"name":"Ada"}`)
		id := decode[api.InvocationID](t, r, http.StatusAccepted)
		if id.ID == "" || r.header.Get("Location") != "/v1/invocations/"+id.ID {
			t.Fatalf("id %+v, Location %q", id, r.header.Get("Location"))
		}
		inv, err := f.engine.GetInvocation(context.Background(), id.ID)
		if err != nil {
			t.Fatal(err)
		}
		if inv.Version != "0.2.0" {
			t.Fatalf("invoked version %s, want the newest", inv.Version)
		}
	})

	t.Run("finished within wait", func(t *testing.T) {
		r := f.do(http.MethodPost, "/v1/workflows/default/hello/invocations?wait=5s&version=0.1.0", `{"name":"Ada"}`)
		inv := decode[api.Invocation](t, r, http.StatusOK)
		if inv.Status != core.StatusCompleted || inv.Workflow != (api.WorkflowRef{Namespace: "default", Name: "hello", Version: "0.1.0"}) ||
			inv.EndedAt == nil || inv.StartedAt.IsZero() || inv.Error != nil {
			t.Fatalf("invocation = %+v", inv)
		}
		if out, _ := json.Marshal(inv.Output); string(out) != `{"name":"Ada"}` {
			t.Fatalf("output = %s", out)
		}
		if r.header.Get("Location") != "/v1/invocations/"+inv.ID {
			t.Fatalf("Location = %q", r.header.Get("Location"))
		}
	})

	t.Run("empty body is a null input", func(t *testing.T) {
		inv := decode[api.Invocation](t, f.do(http.MethodPost, "/v1/workflows/default/hello/invocations?wait=1s", " \n"), http.StatusOK)
		if inv.Input != nil || inv.Output != nil {
			t.Fatalf("input %v output %v, want null", inv.Input, inv.Output)
		}
	})

	bad := []struct {
		name, path, body string
		status           int
		detail           string
	}{
		{"bad JSON", "/v1/workflows/default/hello/invocations", `{"name":`, 400, "not valid JSON"},
		{"two JSON values", "/v1/workflows/default/hello/invocations", `{} {}`, 400, "not valid JSON"},
		{"bad wait", "/v1/workflows/default/hello/invocations?wait=soon", `{}`, 400, `wait="soon"`},
		{"negative wait", "/v1/workflows/default/hello/invocations?wait=-1s", `{}`, 400, `wait="-1s"`},
		{"unknown workflow", "/v1/workflows/default/nope/invocations", `{}`, 404, "workflow default/nope not found"},
		{"unknown version", "/v1/workflows/default/hello/invocations?version=7", `{}`, 404, "workflow default/hello version 7 not found"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			p := decodeProblem(t, f.do(http.MethodPost, tt.path, tt.body), tt.status)
			if !strings.Contains(p.Detail, tt.detail) {
				t.Fatalf("detail %q does not mention %q", p.Detail, tt.detail)
			}
		})
	}
}

func TestInvokeWaitRunsOut(t *testing.T) {
	f := newFixture(t, api.WithMaxWait(100*time.Millisecond))
	f.engine.Decide = func(*store.Workflow, any) *apitest.Outcome { return nil }
	f.apply(helloDoc("0.1.0", "Hello"))

	start := time.Now()
	// An hour is capped to the handler's maximum wait.
	r := f.do(http.MethodPost, "/v1/workflows/default/hello/invocations?wait=1h", `{}`)
	decode[api.InvocationID](t, r, http.StatusAccepted)
	if elapsed := time.Since(start); elapsed < 100*time.Millisecond {
		t.Fatalf("answered after %v, before the 100ms cap", elapsed)
	}
}

// TestLongPoll proves that ?wait holds the response while the invocation
// runs: the fake engine ends the invocation only once the handler is
// waiting for it, so a handler that answers without waiting sees it
// running and fails the test.
func TestLongPoll(t *testing.T) {
	f := newFixture(t, api.WithMaxWait(time.Minute))
	f.engine.Decide = func(*store.Workflow, any) *apitest.Outcome { return nil }
	f.apply(helloDoc("0.1.0", "Hello"))
	var waits atomic.Int32
	f.engine.Waiting = func(id string) {
		waits.Add(1)
		go func() {
			_ = f.engine.Finish(id, apitest.Outcome{Status: core.StatusFaulted, Error: problem.Runtime("boom")})
		}()
	}

	t.Run("invoke", func(t *testing.T) {
		inv := decode[api.Invocation](t, f.do(http.MethodPost, "/v1/workflows/default/hello/invocations?wait=30s", `{}`), http.StatusOK)
		if inv.Status != core.StatusFaulted || inv.Error == nil || inv.Error.Detail != "boom" {
			t.Fatalf("invocation = %+v", inv)
		}
	})

	t.Run("get", func(t *testing.T) {
		waiting := f.engine.Waiting
		f.engine.Waiting = nil
		id := decode[api.InvocationID](t, f.do(http.MethodPost, "/v1/workflows/default/hello/invocations", `{}`), http.StatusAccepted)
		f.engine.Waiting = waiting
		inv := decode[api.Invocation](t, f.do(http.MethodGet, "/v1/invocations/"+id.ID+"?wait=30s", ""), http.StatusOK)
		if inv.Status != core.StatusFaulted || inv.Error == nil || inv.Error.Detail != "boom" || inv.Output != nil {
			t.Fatalf("invocation = %+v", inv)
		}
	})

	if n := waits.Load(); n != 2 {
		t.Fatalf("the handler waited %d times, want 2", n)
	}
}

func TestGetInvocation(t *testing.T) {
	f := newFixture(t)
	f.apply(helloDoc("0.1.0", "Hello"))
	id := decode[api.InvocationID](t, f.do(http.MethodPost, "/v1/workflows/default/hello/invocations", `[1,2]`), http.StatusAccepted)

	inv := decode[api.Invocation](t, f.do(http.MethodGet, "/v1/invocations/"+id.ID, ""), http.StatusOK)
	if inv.ID != id.ID || inv.Status != core.StatusCompleted {
		t.Fatalf("invocation = %+v", inv)
	}
	p := decodeProblem(t, f.do(http.MethodGet, "/v1/invocations/nope", ""), http.StatusNotFound)
	if p.Detail != "invocation nope not found" {
		t.Fatalf("detail = %q", p.Detail)
	}
	decodeProblem(t, f.do(http.MethodGet, "/v1/invocations/"+id.ID+"?wait=forever", ""), http.StatusBadRequest)
}

func TestListInvocations(t *testing.T) {
	f := newFixture(t)
	f.engine.Decide = func(_ *store.Workflow, input any) *apitest.Outcome {
		if input == "run" {
			return nil
		}
		return &apitest.Outcome{Status: core.StatusCompleted, Output: input}
	}
	f.apply(helloDoc("0.1.0", "Hello"))
	f.apply(strings.Replace(helloDoc("0.1.0", "Hello"), "name: hello", "name: other", 1))
	f.apply(strings.Replace(helloDoc("0.1.0", "Hello"), "namespace: default", "namespace: team", 1))
	for _, call := range []struct{ path, input string }{
		{"/v1/workflows/default/hello/invocations", `"done"`},
		{"/v1/workflows/default/hello/invocations", `"run"`},
		{"/v1/workflows/default/other/invocations", `"done"`},
		{"/v1/workflows/team/hello/invocations", `"done"`},
	} {
		decode[api.InvocationID](t, f.do(http.MethodPost, call.path, call.input), http.StatusAccepted)
	}

	ids := func(l api.InvocationList) string {
		var s []string
		for _, inv := range l.Items {
			s = append(s, inv.ID)
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		query, want, next string
	}{
		{"", "inv-0004,inv-0003,inv-0002,inv-0001", ""},
		{"?workflow=default/hello", "inv-0002,inv-0001", ""},
		{"?workflow=hello", "inv-0004,inv-0002,inv-0001", ""},
		{"?workflow=hello&namespace=team", "inv-0004", ""},
		{"?namespace=default", "inv-0003,inv-0002,inv-0001", ""},
		{"?status=running", "inv-0002", ""},
		{"?status=completed&workflow=default/hello", "inv-0001", ""},
		{"?limit=3", "inv-0004,inv-0003,inv-0002", "3"},
		{"?limit=3&cursor=3", "inv-0001", ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			l := decode[api.InvocationList](t, f.do(http.MethodGet, "/v1/invocations"+tt.query, ""), http.StatusOK)
			if got := ids(l); got != tt.want || l.NextCursor != tt.next {
				t.Fatalf("ids %q next %q, want %q next %q", got, l.NextCursor, tt.want, tt.next)
			}
		})
	}

	// An empty page is an empty list, not null.
	r := f.do(http.MethodGet, "/v1/invocations?workflow=nobody", "")
	if !strings.Contains(string(r.body), `"items":[]`) {
		t.Fatalf("empty page = %s", r.body)
	}

	bad := []struct{ query, detail string }{
		{"?limit=0", "limit"},
		{"?limit=abc", "limit"},
		{"?limit=1001", "limit"},
		{"?status=sleeping", "status"},
		{"?workflow=a/b/c", "workflow"},
		{"?workflow=/hello", "workflow"},
		{"?workflow=default/", "workflow"},
		{"?workflow=default/hello&namespace=team", "namespace"},
	}
	for _, tt := range bad {
		t.Run("bad "+tt.query, func(t *testing.T) {
			p := decodeProblem(t, f.do(http.MethodGet, "/v1/invocations"+tt.query, ""), http.StatusBadRequest)
			if !strings.Contains(p.Detail, tt.detail) {
				t.Fatalf("detail %q does not mention %q", p.Detail, tt.detail)
			}
		})
	}
}

func TestHistoryAndCancel(t *testing.T) {
	f := newFixture(t)
	f.engine.Decide = func(*store.Workflow, any) *apitest.Outcome { return nil }
	f.apply(helloDoc("0.1.0", "Hello"))
	id := decode[api.InvocationID](t, f.do(http.MethodPost, "/v1/workflows/default/hello/invocations", `{}`), http.StatusAccepted).ID

	h := decode[api.History](t, f.do(http.MethodGet, "/v1/invocations/"+id+"/history", ""), http.StatusOK)
	if len(h.Items) != 1 || h.Items[0].Type != core.InvocationStarted {
		t.Fatalf("history = %+v", h.Items)
	}

	r := f.do(http.MethodPost, "/v1/invocations/"+id+"/cancel", "")
	if got := decode[api.InvocationID](t, r, http.StatusAccepted); got.ID != id {
		t.Fatalf("cancel answered %+v", got)
	}
	inv := decode[api.Invocation](t, f.do(http.MethodGet, "/v1/invocations/"+id, ""), http.StatusOK)
	if inv.Status != core.StatusCancelled {
		t.Fatalf("status = %s", inv.Status)
	}
	h = decode[api.History](t, f.do(http.MethodGet, "/v1/invocations/"+id+"/history", ""), http.StatusOK)
	var types []string
	for _, ev := range h.Items {
		types = append(types, string(ev.Type))
	}
	if got := strings.Join(types, ","); got != "InvocationStarted,CancelRequested,InvocationCancelled" {
		t.Fatalf("history types = %s", got)
	}

	p := decodeProblem(t, f.do(http.MethodPost, "/v1/invocations/"+id+"/cancel", ""), http.StatusConflict)
	if p.Detail != "invocation "+id+" has already ended" {
		t.Fatalf("detail = %q", p.Detail)
	}
	decodeProblem(t, f.do(http.MethodPost, "/v1/invocations/nope/cancel", ""), http.StatusNotFound)
	decodeProblem(t, f.do(http.MethodGet, "/v1/invocations/nope/history", ""), http.StatusNotFound)
}

func TestUnroutedRequests(t *testing.T) {
	f := newFixture(t)
	p := decodeProblem(t, f.do(http.MethodGet, "/v2/everything", ""), http.StatusNotFound)
	if p.Type != problem.TypeNotFound || p.Instance != "/v2/everything" {
		t.Fatalf("404 = %+v", p)
	}
	r := f.do(http.MethodPut, "/v1/workflows", "x")
	p = decodeProblem(t, r, http.StatusMethodNotAllowed)
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Fatalf("Allow = %q", allow)
	}
	if !strings.Contains(p.Detail, "PUT") {
		t.Fatalf("405 detail = %q", p.Detail)
	}
	decodeProblem(t, f.do(http.MethodPatch, "/v1/invocations/x", ""), http.StatusMethodNotAllowed)
}

// panickingEngine fails the way a bug would.
type panickingEngine struct{ *apitest.Engine }

func (panickingEngine) ListWorkflows(context.Context) ([]*store.Workflow, error) {
	panic("the engine broke")
}

// lockedBuffer collects log output written from the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestPanicsBecomeProblemsAndRequestsAreLogged(t *testing.T) {
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httptest.NewServer(api.NewHandler(panickingEngine{apitest.NewEngine()}, api.WithLogger(logger)))
	defer srv.Close()
	f := &fixture{t: t, srv: srv}

	p := decodeProblem(t, f.do(http.MethodGet, "/v1/workflows", ""), http.StatusInternalServerError)
	if p.Type != problem.TypeInternal || strings.Contains(p.Detail, "the engine broke") {
		t.Fatalf("500 = %+v (the panic value must stay in the log)", p)
	}
	// The server survived.
	decode[api.Health](t, f.do(http.MethodGet, "/healthz", ""), http.StatusOK)

	var sawPanic, sawAccess bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch rec["msg"] {
		case "panic serving request":
			sawPanic = rec["level"] == "ERROR" && rec["panic"] == "the engine broke"
		case "http request":
			if rec["path"] == "/healthz" {
				sawAccess = rec["level"] == "DEBUG" && rec["status"] == float64(200) && rec["method"] == "GET"
			}
		}
	}
	if !sawPanic || !sawAccess {
		t.Fatalf("logs lack the panic or the access record:\n%s", logs.String())
	}
}

func TestShutdownEndsWaits(t *testing.T) {
	shutdown, begin := context.WithCancel(context.Background())
	defer begin()
	f := newFixture(t, api.WithShutdown(shutdown))
	f.engine.Decide = func(*store.Workflow, any) *apitest.Outcome { return nil }
	f.apply(helloDoc("0.1.0", "Hello"))

	time.AfterFunc(50*time.Millisecond, begin)
	start := time.Now()
	decode[api.InvocationID](t, f.do(http.MethodPost, "/v1/workflows/default/hello/invocations?wait=1m", `{}`), http.StatusAccepted)
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("the wait outlived the shutdown by %v", elapsed)
	}
}
