package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/api/apitest"
	"github.com/batonflow/baton/client"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/lang"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

const helloDoc = `document:
  dsl: '1.0.0'
  namespace: team-a
  name: hello
  version: '0.1.0'
do:
  - greet:
      set:
        greeting: hi
`

func newClient(t *testing.T) (*client.Client, *apitest.Engine) {
	t.Helper()
	e := apitest.NewEngine()
	srv := httptest.NewServer(api.NewHandler(e))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL+"/", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return c, e
}

func asProblem(t *testing.T, err error, status int) *problem.Problem {
	t.Helper()
	var p *problem.Problem
	if !errors.As(err, &p) {
		t.Fatalf("error %v (%T) is not a problem", err, err)
	}
	if p.Status != status {
		t.Fatalf("problem status %d, want %d: %v", p.Status, status, p)
	}
	return p
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, raw := range []string{"", "127.0.0.1:8780", "ftp://host", "http://", "http://host/?q=1", "http://a b"} {
		if _, err := client.New(raw, nil); err == nil {
			t.Errorf("New(%q) succeeded", raw)
		}
	}
	c, err := client.New("http://127.0.0.1:8780/", nil)
	if err != nil || c.BaseURL() != "http://127.0.0.1:8780" {
		t.Fatalf("New: %v, base %q", err, c.BaseURL())
	}
}

func TestWorkflows(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()

	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	ref, err := c.ApplyWorkflow(ctx, "hello.yaml", []byte(helloDoc), lang.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if *ref != (api.WorkflowRef{Namespace: "team-a", Name: "hello", Version: "0.1.0"}) {
		t.Fatalf("ref = %+v", ref)
	}
	list, err := c.ListWorkflows(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "hello" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	wf, err := c.GetWorkflow(ctx, "team-a", "hello", "")
	if err != nil || wf.Source != helloDoc || wf.Versions[0] != "0.1.0" {
		t.Fatalf("get = %+v, %v", wf, err)
	}
	if _, err := c.GetWorkflow(ctx, "team-a", "hello", "0.1.0"); err != nil {
		t.Fatal(err)
	}

	_, err = c.ApplyWorkflow(ctx, "broken.yaml", []byte("document: {}\n"), lang.Options{})
	p := asProblem(t, err, 400)
	if p.Type != problem.TypeValidation || len(p.Errors) == 0 || !strings.HasPrefix(p.Errors[0], "broken.yaml:") {
		t.Fatalf("validation problem = %+v", p)
	}

	if err := c.DeleteWorkflow(ctx, "team-a", "hello", "0.1.0"); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetWorkflow(ctx, "team-a", "hello", "")
	if p := asProblem(t, err, 404); p.Detail != "workflow team-a/hello not found" {
		t.Fatalf("detail = %q", p.Detail)
	}
	asProblem(t, c.DeleteWorkflow(ctx, "team-a", "hello", ""), 404)
}

func TestInvocations(t *testing.T) {
	c, e := newClient(t)
	ctx := context.Background()
	e.Decide = func(_ *store.Workflow, input any) *apitest.Outcome {
		if input == nil {
			return nil // runs until cancelled
		}
		return &apitest.Outcome{Status: core.StatusCompleted, Output: input}
	}
	if _, err := c.ApplyWorkflow(ctx, "", []byte(helloDoc), lang.Options{}); err != nil {
		t.Fatal(err)
	}

	done, err := c.Invoke(ctx, "team-a", "hello", json.RawMessage(`{"n":1}`), client.InvokeOptions{Wait: time.Second, Version: "0.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != core.StatusCompleted || done.EndedAt == nil {
		t.Fatalf("waited invocation = %+v", done)
	}
	if out, _ := json.Marshal(done.Output); string(out) != `{"n":1}` {
		t.Fatalf("output = %s", out)
	}

	running, err := c.Invoke(ctx, "team-a", "hello", nil, client.InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if running.ID == "" || running.Status != core.StatusRunning {
		t.Fatalf("accepted invocation = %+v", running)
	}
	got, err := c.WaitInvocation(ctx, running.ID, 10*time.Millisecond)
	if err != nil || got.Status != core.StatusRunning {
		t.Fatalf("still running: %+v, %v", got, err)
	}

	page, err := c.ListInvocations(ctx, client.ListInvocationsOptions{Workflow: "team-a/hello", Status: core.StatusRunning, Limit: 10})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != running.ID {
		t.Fatalf("list = %+v, %v", page, err)
	}
	page, err = c.ListInvocations(ctx, client.ListInvocationsOptions{Limit: 1})
	if err != nil || len(page.Items) != 1 || page.NextCursor == "" {
		t.Fatalf("first page = %+v, %v", page, err)
	}
	page, err = c.ListInvocations(ctx, client.ListInvocationsOptions{Limit: 1, Cursor: page.NextCursor})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != done.ID || page.NextCursor != "" {
		t.Fatalf("second page = %+v, %v", page, err)
	}
	_, err = c.ListInvocations(ctx, client.ListInvocationsOptions{Status: "asleep"})
	asProblem(t, err, 400)

	if err := c.CancelInvocation(ctx, running.ID, "no longer needed"); err != nil {
		t.Fatal(err)
	}
	if p := asProblem(t, c.CancelInvocation(ctx, running.ID, ""), 409); p.Type != problem.TypeConflict {
		t.Fatalf("second cancel = %+v", p)
	}
	got, err = c.GetInvocation(ctx, running.ID)
	if err != nil || got.Status != core.StatusCancelled {
		t.Fatalf("cancelled invocation = %+v, %v", got, err)
	}
	events, err := c.History(ctx, running.ID)
	if err != nil || len(events) != 3 || events[2].Type != core.InvocationCancelled {
		t.Fatalf("history = %+v, %v", events, err)
	}
	if events[1].Type != core.CancelRequested || events[1].Info["reason"] != "no longer needed" {
		t.Errorf("the cancellation = %+v, want the reason recorded", events[1])
	}

	_, err = c.Invoke(ctx, "team-a", "nope", nil, client.InvokeOptions{})
	asProblem(t, err, 404)
	_, err = c.Invoke(ctx, "team-a", "hello", json.RawMessage(`{`), client.InvokeOptions{})
	asProblem(t, err, 400)
	_, err = c.GetInvocation(ctx, "nope")
	asProblem(t, err, 404)
	_, err = c.History(ctx, "nope")
	asProblem(t, err, 404)
}

func TestErrorsThatAreNotProblemDocuments(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream is down", http.StatusBadGateway)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListWorkflows(context.Background())
	p := asProblem(t, err, http.StatusBadGateway)
	if p.Detail != "upstream is down" || p.Title != "Bad Gateway" {
		t.Fatalf("problem = %+v", p)
	}
}

func TestUnreachableServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := client.New("http://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Health(context.Background())
	var p *problem.Problem
	if err == nil || errors.As(err, &p) || !strings.Contains(err.Error(), "cannot reach the baton server at http://"+addr) {
		t.Fatalf("err = %v", err)
	}
}
