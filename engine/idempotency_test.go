package engine_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/batonflow/baton/core"
)

// TestIdempotencyKeyFormat checks the key an HTTP call carries: the
// invocation, the task key and the attempt, with no empty segment.
func TestIdempotencyKeyFormat(t *testing.T) {
	c := &counter{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	inv := runDoc(t, e, `
document: {dsl: '1.0.0', namespace: default, name: keyed, version: '1.0.0'}
do:
  - store:
      call: http
      with:
        method: post
        endpoint: `+srv.URL+`/store
`, nil)
	if inv.Status != core.StatusCompleted {
		t.Fatalf("status %s: %v", inv.Status, inv.Error)
	}
	hits, _ := c.snapshot()
	want := inv.ID + "/do/0/store/1"
	if len(hits) != 1 || hits[want] != 1 {
		t.Fatalf("keys %v, want one call with key %q", hits, want)
	}
	for key := range hits {
		if strings.Contains(key, "//") {
			t.Fatalf("key %q has an empty segment", key)
		}
	}
}

// TestSubflowIDsSurviveTheKeyChange pins the id of a subflow to the form
// the idempotency key had before it lost its empty segment: a parent whose
// run.workflow call was in flight across the upgrade finds, executing it
// again, the child it started instead of starting another.
func TestSubflowIDsSurviveTheKeyChange(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	if _, err := e.ApplyWorkflow(ctx, "child.yaml", []byte(childDoc)); err != nil {
		t.Fatal(err)
	}
	inv := runDoc(t, e, parentDoc("parent", ""), map[string]any{"who": "Ada"})
	mustComplete(t, inv)
	child := childOf(t, e, inv.ID)
	// The namespace of subflow ids (engine's childIDSpace) and the key as
	// it was before: invocation, "/", the task key "/do/0/callChild", "/1".
	space := uuid.MustParse("9d7c2f0e-3b1a-4e55-8c6d-2a4f7e9b1c38")
	if want := uuid.NewSHA1(space, []byte(inv.ID+"//do/0/callChild/1")).String(); child.ID != want {
		t.Fatalf("subflow id %s, want %s (derived from the earlier key form)", child.ID, want)
	}
}
