package engine

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/sqlite"
)

// A parent that executes its run.workflow call again (after a crash) with
// the same idempotency key must attach to the subflow it started, not
// start a second one.
func TestInvokeChildIsIdempotent(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := New(Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	doc := "document: {dsl: '1.0.3', namespace: test, name: child, version: '1.0.0'}\ndo:\n  - nap:\n      wait: {seconds: 30}\n"
	if _, err := e.ApplyWorkflow(ctx, "child.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	first, err := e.invokeChild(ctx, "parent-1", "parent-1//do/0/run/1", "test", "child", "", map[string]any{"n": 1.0})
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.invokeChild(ctx, "parent-1", "parent-1//do/0/run/1", "test", "child", "", map[string]any{"n": 1.0})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || first.Parent != "parent-1" || first.Status != core.StatusRunning {
		t.Fatalf("first %+v, again %+v", first, again)
	}
	other, err := e.invokeChild(ctx, "parent-1", "parent-1//do/0/run/2", "test", "child", "", nil)
	if err != nil || other.ID == first.ID {
		t.Fatalf("another attempt got %+v, %v", other, err)
	}
	if _, err := e.invokeChild(ctx, "intruder", "parent-1//do/0/run/1", "test", "child", "", nil); err == nil {
		t.Fatal("another parent attached to the subflow")
	}
	list, _, err := e.ListInvocations(ctx, store.InvocationFilter{Workflow: "child"})
	if err != nil || len(list) != 2 {
		t.Fatalf("%d invocations (%v), want 2", len(list), err)
	}
	// After a restart the child is not live: the call attaches through
	// the store.
	e.Close()
	e2, err := New(Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if _, err := e2.definition(ctx, "test", "child", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	restarted, err := e2.invokeChild(ctx, "parent-1", "parent-1//do/0/run/1", "test", "child", "", nil)
	if err != nil || restarted.ID != first.ID {
		t.Fatalf("after restart: %+v, %v", restarted, err)
	}
}
