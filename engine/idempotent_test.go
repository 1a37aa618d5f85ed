package engine_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
)

// TestInvokeOnce starts once per key: the same request again returns the
// first invocation, also from a second engine on the same store after a
// restart; another request under the key is a 409 problem.
func TestInvokeOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	e := newEngine(t, st)
	if _, err := e.ApplyWorkflow(ctx, "hello.yaml", []byte(hello)); err != nil {
		t.Fatal(err)
	}
	first, created, err := e.InvokeOnce(ctx, "order-1", "default", "hello", "", map[string]any{"name": "Ada", "n": 1.0})
	if err != nil || !created {
		t.Fatalf("first InvokeOnce: created %v, %v", created, err)
	}
	if _, err := e.Wait(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	// The same input with its keys in another order is the same request.
	again, created, err := e.InvokeOnce(ctx, "order-1", "default", "hello", "", map[string]any{"n": 1.0, "name": "Ada"})
	if err != nil || created || again.ID != first.ID || again.Status != core.StatusCompleted {
		t.Fatalf("same request again: %+v created %v, %v; want invocation %s, completed", again, created, err, first.ID)
	}
	for _, other := range []struct {
		version string
		input   any
	}{{"", map[string]any{"name": "Bo"}}, {"1.0.0", map[string]any{"name": "Ada", "n": 1.0}}} {
		_, _, err = e.InvokeOnce(ctx, "order-1", "default", "hello", other.version, other.input)
		var p *problem.Problem
		if !errors.As(err, &p) || p.Status != http.StatusConflict {
			t.Fatalf("another request (%+v) under a used key = %v, want a 409 problem", other, err)
		}
	}
	if _, _, err := e.InvokeOnce(ctx, "", "default", "hello", "", nil); err == nil {
		t.Fatal("an empty key was accepted")
	}
	second, created, err := e.InvokeOnce(ctx, "order-2", "default", "hello", "", map[string]any{"name": "Cy"})
	if err != nil || !created || second.ID == first.ID {
		t.Fatalf("a new key: %+v created %v, %v", second, created, err)
	}
	if _, err := e.Wait(ctx, second.ID); err != nil {
		t.Fatal(err)
	}
	e.Close()
	st.Close()

	st = openStore(t, dir)
	defer st.Close()
	e = newEngine(t, st)
	defer e.Close()
	again, created, err = e.InvokeOnce(ctx, "order-1", "default", "hello", "", map[string]any{"name": "Ada", "n": 1.0})
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("after a restart: %+v created %v, %v; want invocation %s", again, created, err, first.ID)
	}
}
