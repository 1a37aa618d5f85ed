package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/engine"
)

// TestRetryAndRerunRoutes: POST .../retry continues a faulted invocation
// as itself (a second retry of the completed one is a 409 problem), POST
// .../rerun starts a new one with the same or an edited input.
func TestRetryAndRerunRoutes(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok": true}`))
	}))
	defer backend.Close()
	eng, srv := startRealEngine(t, engine.Options{})
	doc := `document: {dsl: '1.0.0', namespace: default, name: flaky, version: '1.0.0'}
do:
  - fetch:
      call: http
      with: {method: get, endpoint: '` + backend.URL + `'}
  - answer:
      set: {who: '${ $workflow.input.who }', ok: '${ .ok }'}
`
	if _, err := eng.ApplyWorkflow(ctx, "flaky.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	first := post(t, srv.URL+"/v1/workflows/default/flaky/invocations?wait=5s", "", `{"who": "Ada"}`)
	var inv api.Invocation
	if first.status != http.StatusOK || json.Unmarshal(first.body, &inv) != nil || inv.Status != "faulted" {
		t.Fatalf("first run: %d %s", first.status, first.body)
	}
	bad := post(t, srv.URL+"/v1/invocations/"+inv.ID+"/retry", "", `{"reasn": "typo"}`)
	if bad.status != http.StatusBadRequest {
		t.Errorf("retry with an unknown field: %d %s", bad.status, bad.body)
	}
	retried := post(t, srv.URL+"/v1/invocations/"+inv.ID+"/retry?wait=5s", "", `{"reason": "backend fixed"}`)
	var after api.Invocation
	if retried.status != http.StatusOK || json.Unmarshal(retried.body, &after) != nil || after.ID != inv.ID || after.Status != "completed" {
		t.Fatalf("retry: %d %s", retried.status, retried.body)
	}
	again := post(t, srv.URL+"/v1/invocations/"+inv.ID+"/retry", "", "")
	if again.status != http.StatusConflict || again.header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("retry of a completed invocation: %d %s", again.status, again.body)
	}
	if r := post(t, srv.URL+"/v1/invocations/nope/retry", "", ""); r.status != http.StatusNotFound {
		t.Errorf("retry of an unknown invocation: %d %s", r.status, r.body)
	}
	for _, tc := range []struct{ body, want string }{
		{"", "Ada"},
		{`{"input": {"who": "Bo"}}`, "Bo"},
	} {
		r := post(t, srv.URL+"/v1/invocations/"+inv.ID+"/rerun?wait=5s", "", tc.body)
		var rerun api.Invocation
		if r.status != http.StatusOK || json.Unmarshal(r.body, &rerun) != nil || rerun.ID == inv.ID ||
			r.header.Get("Location") != "/v1/invocations/"+rerun.ID {
			t.Fatalf("rerun %q: %d %s", tc.body, r.status, r.body)
		}
		if got := rerun.Output.(map[string]any)["who"]; got != tc.want {
			t.Errorf("rerun %q: output %v, want who %s", tc.body, rerun.Output, tc.want)
		}
	}
}
