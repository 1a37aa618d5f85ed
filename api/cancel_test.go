package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/problem"
)

// TestCancelWithReason drives the real engine through the API: a cancel
// body that is not JSON, has an unknown field or too long a reason is a
// 400 problem and cancels nothing; {"reason"} is recorded on the
// CancelRequested event and in the error the invocation ends with.
func TestCancelWithReason(t *testing.T) {
	ctx := context.Background()
	eng, srv := startRealEngine(t, engine.Options{})
	if _, err := eng.ApplyWorkflow(ctx, "sleepy.yaml", []byte(`document: {dsl: '1.0.0', namespace: default, name: sleepy, version: '1.0.0'}
do:
  - nap:
      wait: {hours: 1}
`)); err != nil {
		t.Fatal(err)
	}
	inv, err := eng.Invoke(ctx, "default", "sleepy", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	cancelURL := srv.URL + "/v1/invocations/" + inv.ID + "/cancel"

	for _, bad := range []struct{ name, body, detail string }{
		{"not JSON", `stop`, "invalid character"},
		{"an unknown field", `{"reasn": "typo"}`, "reasn"},
		{"a reason that is not a string", `{"reason": 42}`, "reason"},
		{"too long a reason", `{"reason": "` + strings.Repeat("é", api.MaxCancelReason+1) + `"}`, "1001 characters"},
	} {
		r := post(t, cancelURL, "", bad.body)
		var p problem.Problem
		if r.status != http.StatusBadRequest || json.Unmarshal(r.body, &p) != nil || p.Type != problem.TypeBadRequest ||
			!strings.Contains(p.Detail, bad.detail) {
			t.Errorf("cancel with %s: %d %s", bad.name, r.status, r.body)
		}
	}
	if got, _ := eng.GetInvocation(ctx, inv.ID); got.Status != core.StatusRunning {
		t.Fatalf("a refused cancel stopped the invocation: %s", got.Status)
	}

	// The longest reason allowed is taken.
	reason := "stuck: " + strings.Repeat("é", api.MaxCancelReason-len("stuck: "))
	if r := post(t, cancelURL, "", `{"reason": "`+reason+`"}`); r.status != http.StatusAccepted {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	done, err := eng.Wait(ctx, inv.ID)
	if err != nil || done.Status != core.StatusCancelled {
		t.Fatalf("after the cancel: %+v %v", done, err)
	}
	res, err := http.Get(srv.URL + "/v1/invocations/" + inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got api.Invocation
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got.Error == nil || got.Error.Detail != "the invocation was cancelled: "+reason {
		t.Errorf("the cancelled invocation's error: %+v", got.Error)
	}
	res, err = http.Get(srv.URL + "/v1/invocations/" + inv.ID + "/history")
	if err != nil {
		t.Fatal(err)
	}
	var h api.History
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var reasons []any
	for _, ev := range h.Items {
		if ev.Type == core.CancelRequested {
			reasons = append(reasons, ev.Info["reason"])
		}
	}
	if len(reasons) != 1 || reasons[0] != reason {
		t.Errorf("the history's cancellations: %v", reasons)
	}
}
