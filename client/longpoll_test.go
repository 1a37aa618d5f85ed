package client_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/batonflow/baton/api/apitest"
	"github.com/batonflow/baton/client"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/lang"
	"github.com/batonflow/baton/store"
)

// TestLongPoll proves that Invoke and WaitInvocation ask the server to
// hold the answer: the fake engine ends an invocation only while a request
// is waiting for it, so a client (or server) that does not wait gets a
// running invocation and fails.
func TestLongPoll(t *testing.T) {
	c, e := newClient(t)
	ctx := context.Background()
	e.Decide = func(*store.Workflow, any) *apitest.Outcome { return nil }
	if _, err := c.ApplyWorkflow(ctx, "", []byte(helloDoc), lang.Options{}); err != nil {
		t.Fatal(err)
	}
	finishWhenWaited := func(id string) {
		go func() { _ = e.Finish(id, apitest.Outcome{Status: core.StatusCompleted, Output: "done"}) }()
	}

	e.Waiting = finishWhenWaited
	inv, err := c.Invoke(ctx, "team-a", "hello", json.RawMessage(`{"n":1}`), client.InvokeOptions{Wait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Status != core.StatusCompleted || inv.Output != "done" || inv.EndedAt == nil {
		t.Fatalf("Invoke with Wait = %+v, want the completed invocation", inv)
	}

	e.Waiting = nil
	running, err := c.Invoke(ctx, "team-a", "hello", nil, client.InvokeOptions{})
	if err != nil || running.Status != core.StatusRunning {
		t.Fatalf("Invoke without Wait = %+v, %v", running, err)
	}
	e.Waiting = finishWhenWaited
	got, err := c.WaitInvocation(ctx, running.ID, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != core.StatusCompleted || got.Output != "done" {
		t.Fatalf("WaitInvocation = %+v, want the completed invocation", got)
	}
}
