package engine_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
)

// recorder is an EventPublisher that keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	events []map[string]any
}

func (r *recorder) Publish(_ context.Context, ev map[string]any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return nil
}

func (r *recorder) of(source string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, ev := range r.events {
		if ev["source"] == source {
			out = append(out, ev)
		}
	}
	return out
}

type lifecycleStep struct{ typ, task string }

func steps(events []map[string]any) []lifecycleStep {
	out := make([]lifecycleStep, len(events))
	for i, ev := range events {
		data, _ := ev["data"].(map[string]any)
		task, _ := data["task"].(string)
		out[i] = lifecycleStep{typ: ev["type"].(string), task: task}
	}
	return out
}

// jsonRoundTrip gives events the form they have after the API encodes them.
func jsonRoundTrip(t *testing.T, v any) any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLifecycleEvents(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"pong": true}`))
	}))
	defer srv.Close()
	st := openStore(t, t.TempDir())
	defer st.Close()
	bus := &recorder{}
	e := newEngine(t, st, func(o *engine.Options) { o.Events = bus })

	src := `
document: {dsl: '1.0.0', namespace: default, name: lifecycle, version: '1.0.0'}
do:
  - prepare:
      set: {n: 1}
  - ping:
      call: http
      with:
        method: get
        endpoint: ` + srv.URL + `
  - check:
      switch:
        - bad:
            when: ${ .pong != true }
            then: fail
        - good:
            then: end
  - fail:
      raise:
        error: {type: https://example.com/errors/bad, status: 400}
`
	if _, err := e.ApplyWorkflow(ctx, "lifecycle.yaml", []byte(src)); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "default", "lifecycle", "", map[string]any{"x": 1})
	if err != nil {
		t.Fatal(err)
	}
	done, err := e.Wait(ctx, inv.ID)
	if err != nil || done.Status != core.StatusCompleted {
		t.Fatalf("invocation: %v, %v", done, err)
	}
	rebuilt, err := e.LifecycleEvents(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []lifecycleStep{
		{engine.EventWorkflowStarted, ""},
		{engine.EventTaskStarted, "/do/0/prepare"},
		{engine.EventTaskCompleted, "/do/0/prepare"},
		{engine.EventTaskStarted, "/do/1/ping"},
		{engine.EventTaskCompleted, "/do/1/ping"},
		{engine.EventTaskStarted, "/do/2/check"},
		{engine.EventTaskCompleted, "/do/2/check"},
		{engine.EventWorkflowCompleted, ""},
	}
	if got := steps(rebuilt); !reflect.DeepEqual(got, want) {
		t.Fatalf("rebuilt lifecycle:\n got  %v\n want %v", got, want)
	}
	last := rebuilt[len(rebuilt)-1]
	if data := last["data"].(map[string]any); data["name"] != "lifecycle-"+inv.ID+".default" || data["output"] == nil {
		t.Fatalf("workflow.completed data = %v, want the qualified name and the output", data)
	}
	for _, ev := range rebuilt {
		for _, attr := range []string{"specversion", "id", "source", "type", "time"} {
			if _, ok := ev[attr].(string); !ok {
				t.Fatalf("event %v lacks the CloudEvents attribute %s", ev, attr)
			}
		}
	}

	// Close drains the publisher, so the live events are all in.
	e.Close()
	live := bus.of("/v1/invocations/" + inv.ID)
	if !reflect.DeepEqual(jsonRoundTrip(t, live), jsonRoundTrip(t, rebuilt)) {
		t.Fatalf("live and rebuilt events differ:\n live    %v\n rebuilt %v", live, rebuilt)
	}
}

func TestLifecycleEventsFaultAndCancel(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	e := newEngine(t, st)
	defer e.Close()
	faulty := `
document: {dsl: '1.0.0', namespace: default, name: faulty, version: '1.0.0'}
do:
  - boom:
      raise:
        error: {type: https://example.com/errors/boom, status: 400, title: Boom}
`
	slow := `
document: {dsl: '1.0.0', namespace: default, name: slow, version: '1.0.0'}
do:
  - nap:
      wait: {seconds: 30}
`
	for _, src := range []string{faulty, slow} {
		if _, err := e.ApplyWorkflow(ctx, "wf.yaml", []byte(src)); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := e.Invoke(ctx, "default", "faulty", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Wait(ctx, inv.ID); err != nil {
		t.Fatal(err)
	}
	events, err := e.LifecycleEvents(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []lifecycleStep{
		{engine.EventWorkflowStarted, ""},
		{engine.EventTaskStarted, "/do/0/boom"},
		{engine.EventTaskFaulted, "/do/0/boom"},
		{engine.EventWorkflowFaulted, ""},
	}
	if got := steps(events); !reflect.DeepEqual(got, want) {
		t.Fatalf("faulted lifecycle:\n got  %v\n want %v", got, want)
	}
	errData, _ := events[3]["data"].(map[string]any)["error"].(map[string]any)
	if errData["type"] != "https://example.com/errors/boom" {
		t.Fatalf("workflow.faulted error = %v", errData)
	}

	inv, err = e.Invoke(ctx, "default", "slow", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := e.CancelInvocation(ctx, inv.ID, "too slow"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Wait(ctx, inv.ID); err != nil {
		t.Fatal(err)
	}
	events, err = e.LifecycleEvents(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	want = []lifecycleStep{
		{engine.EventWorkflowStarted, ""},
		{engine.EventTaskStarted, "/do/0/nap"},
		{engine.EventTaskCancelled, "/do/0/nap"},
		{engine.EventWorkflowCancelled, ""},
	}
	if got := steps(events); !reflect.DeepEqual(got, want) {
		t.Fatalf("cancelled lifecycle:\n got  %v\n want %v", got, want)
	}
	// The reason given is in workflow.cancelled's error.
	errData, _ = events[3]["data"].(map[string]any)["error"].(map[string]any)
	if errData["detail"] != "the invocation was cancelled: too slow" {
		t.Fatalf("workflow.cancelled error = %v", errData)
	}
	if _, err := e.LifecycleEvents(ctx, "no-such-invocation"); err == nil {
		t.Fatal("LifecycleEvents of an unknown invocation succeeded")
	}
}
