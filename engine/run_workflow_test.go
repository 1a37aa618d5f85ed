package engine_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

const childDoc = `
document: {dsl: '1.0.3', namespace: test, name: child, version: '1.0.0'}
do:
  - check:
      switch:
        - bad:
            when: .fail
            then: explode
        - slow:
            when: .sleep
            then: nap
  - greet:
      set:
        greeting: '${ "Hello, " + .name }'
      then: end
  - nap:
      wait: {seconds: 30}
      then: end
  - explode:
      raise:
        error:
          type: https://example.com/errors/child
          status: 418
          title: Child Failed
`

func parentDoc(name, extra string) string {
	return `
document: {dsl: '1.0.3', namespace: test, name: ` + name + `, version: '1.0.0'}
do:
  - callChild:
      run:
        workflow:
          namespace: test
          name: child
          version: latest
          input:
            name: ${ .who }
            fail: ${ .fail == true }
            sleep: ${ .sleep == true }
` + extra
}

func childOf(t *testing.T, e *engine.Engine, parent string) *store.Invocation {
	t.Helper()
	list, _, err := e.ListInvocations(context.Background(), store.InvocationFilter{Namespace: "test", Workflow: "child"})
	if err != nil {
		t.Fatal(err)
	}
	var found *store.Invocation
	for _, inv := range list {
		if inv.Parent == parent {
			if found != nil {
				t.Fatalf("two subflows of %s: %s and %s", parent, found.ID, inv.ID)
			}
			found = inv
		}
	}
	if found == nil {
		t.Fatalf("no subflow of %s among %d child invocations", parent, len(list))
	}
	return found
}

func TestRunWorkflowSubflow(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	if _, err := e.ApplyWorkflow(ctx, "child.yaml", []byte(childDoc)); err != nil {
		t.Fatal(err)
	}
	inv := runDoc(t, e, parentDoc("parent", ""), map[string]any{"who": "Ada"})
	if got := mustComplete(t, inv); !reflect.DeepEqual(got, map[string]any{"greeting": "Hello, Ada"}) {
		t.Fatalf("output %v", got)
	}
	child := childOf(t, e, inv.ID)
	if child.Status != core.StatusCompleted || child.Version != "1.0.0" {
		t.Fatalf("child %+v", child)
	}
	hist, err := e.History(ctx, child.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The child's two set tasks show as TaskEnded records.
	if len(hist) != 4 || hist[0].Type != core.InvocationStarted || hist[3].Type != core.InvocationCompleted ||
		!reflect.DeepEqual(hist[0].Input, map[string]any{"name": "Ada", "fail": false, "sleep": false}) {
		t.Fatalf("child history %+v", hist)
	}
}

func TestRunWorkflowChildFaultPropagates(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	if _, err := e.ApplyWorkflow(ctx, "child.yaml", []byte(childDoc)); err != nil {
		t.Fatal(err)
	}
	inv := runDoc(t, e, parentDoc("parent", ""), map[string]any{"who": "Ada", "fail": true})
	p := mustFault(t, inv, "https://example.com/errors/child")
	if p.Status != 418 || p.Title != "Child Failed" {
		t.Fatalf("error %+v", p)
	}
	if child := childOf(t, e, inv.ID); child.Status != core.StatusFaulted {
		t.Fatalf("child %+v", child)
	}
}

func TestRunWorkflowUnknownWorkflow(t *testing.T) {
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	inv := runDoc(t, e, parentDoc("orphan", ""), map[string]any{"who": "Ada"})
	mustFault(t, inv, problem.TypeConfiguration)
}

func waitStatus(t *testing.T, e *engine.Engine, id string, want core.Status) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		inv, err := e.GetInvocation(context.Background(), id)
		if err == nil && inv.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("invocation %s: status %v (%v), want %s", id, inv, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunWorkflowCancellingParentCancelsChild(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	if _, err := e.ApplyWorkflow(ctx, "child.yaml", []byte(childDoc)); err != nil {
		t.Fatal(err)
	}
	wf, err := e.ApplyWorkflow(ctx, "parent.yaml", []byte(parentDoc("parent", "")))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, wf.Namespace, wf.Name, wf.Version, map[string]any{"who": "Ada", "sleep": true})
	if err != nil {
		t.Fatal(err)
	}
	var child *store.Invocation
	deadline := time.Now().Add(10 * time.Second)
	for child == nil {
		list, _, _ := e.ListInvocations(ctx, store.InvocationFilter{Workflow: "child"})
		for _, c := range list {
			if c.Parent == inv.ID {
				child = c
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the subflow did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := e.CancelInvocation(ctx, inv.ID, ""); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, inv.ID, core.StatusCancelled)
	waitStatus(t, e, child.ID, core.StatusCancelled)
	wantChildCancelled(t, e, child.ID, inv.ID)
}

// wantChildCancelled checks that a subflow's cancellation names its parent
// in its reason.
func wantChildCancelled(t *testing.T, e *engine.Engine, child, parent string) {
	t.Helper()
	h, err := e.History(context.Background(), child)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range h {
		if ev.Type == core.CancelRequested {
			if reason, _ := ev.Info["reason"].(string); !strings.HasPrefix(reason, "parent "+parent+" ") {
				t.Errorf("the subflow's cancellation says %q, want it to name parent %s", reason, parent)
			}
			return
		}
	}
	t.Errorf("no CancelRequested in the history of %s", child)
}

func TestRunWorkflowTimeoutCancelsChild(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	if _, err := e.ApplyWorkflow(ctx, "child.yaml", []byte(childDoc)); err != nil {
		t.Fatal(err)
	}
	inv := runDoc(t, e, parentDoc("impatient", "      timeout: {after: {milliseconds: 300}}\n"), map[string]any{"who": "Ada", "sleep": true})
	mustFault(t, inv, problem.TypeTimeout)
	child := childOf(t, e, inv.ID).ID
	waitStatus(t, e, child, core.StatusCancelled)
	wantChildCancelled(t, e, child, inv.ID)
}

func TestRunWorkflowDetached(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	if _, err := e.ApplyWorkflow(ctx, "child.yaml", []byte(childDoc)); err != nil {
		t.Fatal(err)
	}
	inv := runDoc(t, e, parentDoc("launcher", "        await: false\n"), map[string]any{"who": "Bo"})
	if got := mustComplete(t, inv); !reflect.DeepEqual(got, map[string]any{"who": "Bo"}) {
		t.Fatalf("output %v, want the input", got)
	}
	child := childOf(t, e, inv.ID)
	done, err := e.Wait(ctx, child.ID)
	if err != nil || done.Status != core.StatusCompleted {
		t.Fatalf("child %+v, %v", done, err)
	}
}

// TestSubflowOtherNamespaceRefused keeps subflows inside the parent's
// namespace: a tenant cannot run another's workflow through run.workflow.
func TestSubflowOtherNamespaceRefused(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	child := "document: {dsl: '1.0.3', namespace: team-b, name: child, version: '1.0.0'}\ndo:\n  - hi:\n      set: {secret: b}\n"
	if _, err := e.ApplyWorkflow(ctx, "child.yaml", []byte(child)); err != nil {
		t.Fatal(err)
	}
	done := runDoc(t, e, `
document: {dsl: '1.0.3', namespace: team-a, name: parent, version: '1.0.0'}
do:
  - steal:
      run:
        workflow:
          namespace: team-b
          name: child
          version: '1.0.0'
`, map[string]any{})
	if done.Status != core.StatusFaulted || done.Error == nil || !strings.Contains(done.Error.Detail, "another namespace") {
		t.Fatalf("status %s, error %+v; want a fault naming the other namespace", done.Status, done.Error)
	}
	children, _, err := e.ListInvocations(ctx, store.InvocationFilter{Namespace: "team-b"})
	if err != nil || len(children) != 0 {
		t.Fatalf("team-b invocations %v %v, want none", children, err)
	}
}
