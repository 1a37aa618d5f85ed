package main

import (
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/api/apitest"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
)

// TestInvokeLongPolls proves that `baton invoke --wait` long-polls: the
// server caps each wait at 200ms, so the first request answers "running"
// and the CLI must ask again; the fake engine ends the invocation only
// while a second request is waiting for it. A CLI that polls without
// ?wait, or a server that does not hold the answer, never sees it end and
// prints it as still running after the 5s budget.
func TestInvokeLongPolls(t *testing.T) {
	e := apitest.NewEngine()
	e.Decide = func(*store.Workflow, any) *apitest.Outcome { return nil }
	var waits atomic.Int32
	e.Waiting = func(id string) {
		if waits.Add(1) == 2 {
			go func() { _ = e.Finish(id, apitest.Outcome{Status: core.StatusCompleted, Output: "done"}) }()
		}
	}
	srv := httptest.NewServer(api.NewHandler(e, api.WithMaxWait(200*time.Millisecond)))
	t.Cleanup(srv.Close)
	env := []string{"BATON_SERVER=" + srv.URL}
	baton(t, env, "workflow", "apply", writeFile(t, t.TempDir(), "hello.yaml", helloDoc("1.0.0")), "-o", "json")

	start := time.Now()
	res := baton(t, env, "invoke", "hello", "--wait", "5s")
	if res.code != 0 || !strings.Contains(res.stdout, "STATUS     completed\n") || !strings.Contains(res.stdout, "OUTPUT     \"done\"\n") {
		t.Fatalf("invoke --wait 5s: %+v", res)
	}
	if n := waits.Load(); n != 2 {
		t.Fatalf("the server waited %d times, want 2 (the capped POST, then one GET)", n)
	}
	// The first request held for the whole cap before answering.
	if elapsed := time.Since(start); elapsed < 200*time.Millisecond {
		t.Fatalf("invoke returned after %v, before the first long-poll ran out", elapsed)
	}
}
