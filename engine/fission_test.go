package engine_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
)

// sleepalotScaled has the shape of the Fission example sleepalot with
// durations in tenths of a second: the critical path A-B-C-D3-E is 1.1s,
// the sum of all sleeps 1.9s.
const sleepalotScaled = `apiVersion: 1
output: F
tasks:
  A: {run: sleep, inputs: 200ms}
  B: {run: sleep, inputs: 100ms, requires: [A]}
  C: {run: sleep, inputs: 100ms, requires: [B]}
  D1: {run: sleep, inputs: 400ms, requires: [C]}
  D2: {run: sleep, inputs: 400ms, requires: [C]}
  D3: {run: sleep, inputs: 600ms, requires: [C]}
  E: {run: sleep, inputs: 100ms, requires: [D1, D2, D3]}
  F:
    run: compose
    inputs: "{ 'done after ' + Object.keys($.Tasks).length + ' tasks' }"
    requires: [E]
`

func TestFissionSleepalotParallelOnTheEngine(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	e := newEngine(t, st)
	defer e.Close()
	ctx := context.Background()
	wf, err := e.ApplyWorkflow(ctx, "sleepalot.wf.yaml", []byte(sleepalotScaled))
	if err != nil {
		t.Fatal(err)
	}
	if wf.Format != "fission" || wf.Namespace != "default" || wf.Name != "sleepalot" {
		t.Fatalf("stored as %s %s/%s", wf.Format, wf.Namespace, wf.Name)
	}
	began := time.Now()
	inv, err := e.Invoke(ctx, wf.Namespace, wf.Name, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done, err := e.Wait(waitCtx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	if done.Status != core.StatusCompleted || done.Output != "done after 8 tasks" {
		t.Fatalf("status %s output %v error %v", done.Status, done.Output, done.Error)
	}
	if took < 1100*time.Millisecond {
		t.Errorf("took %v, less than the critical path of 1.1s", took)
	}
	// That the sleeps ran along the DAG, D1-D3 side by side, shows in the
	// history's order rather than in wall time, which a loaded machine
	// stretches: each timer is scheduled, for its own duration, after the
	// timers of the tasks it requires fired, and all three D timers are
	// scheduled before any of them fires.
	history, err := st.History(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	scheduled, fired := map[string]int{}, map[string]int{}
	for i, ev := range history {
		task := strings.TrimPrefix(ev.Timer, "/tasks/")
		i++ // 0 is "not yet"
		switch ev.Type {
		case core.TimerScheduled:
			want := map[string]time.Duration{"A": 200, "B": 100, "C": 100, "D1": 400, "D2": 400, "D3": 600, "E": 100}[task] * time.Millisecond
			// The deadline is set from a clock reading just before the
			// event's own, so the recorded span is at most the sleep.
			if d := ev.FireAt.Sub(ev.Time); scheduled[task] != 0 || d <= 0 || d > want+10*time.Millisecond {
				t.Fatalf("timer %s scheduled again or for %v, want once for %v", ev.Timer, d, want)
			}
			scheduled[task] = i
		case core.TimerFired:
			fired[task] = i
		}
	}
	requires := map[string][]string{"B": {"A"}, "C": {"B"}, "D1": {"C"}, "D2": {"C"}, "D3": {"C"}, "E": {"D1", "D2", "D3"}}
	for task, deps := range requires {
		for _, dep := range deps {
			if _, ok := fired[dep]; !ok || scheduled[task] < fired[dep] {
				t.Errorf("%s's sleep was scheduled before %s's had fired", task, dep)
			}
		}
	}
	if len(scheduled) != 7 || len(fired) != 7 {
		t.Fatalf("timers scheduled %v, fired %v; want the 7 sleeps", scheduled, fired)
	}
	firstD := min(fired["D1"], fired["D2"], fired["D3"])
	for _, d := range []string{"D1", "D2", "D3"} {
		if scheduled[d] > firstD {
			t.Errorf("%s's sleep started after another D had ended: the branches did not run side by side", d)
		}
	}
}

func TestFissionResumesAfterRestartMidSleep(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	ctx := context.Background()
	e := newEngine(t, st)
	src := `apiVersion: 1
output: Greet
tasks:
  Nap:
    run: sleep
    inputs: 600ms
  Greet:
    run: compose
    inputs:
      greeting: "{ 'hello ' + param() }"
      id: "{ uid() }"
    requires: [Nap]
`
	wf, err := e.ApplyWorkflow(ctx, "nap.wf.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	inv, err := e.Invoke(ctx, wf.Namespace, wf.Name, wf.Version, "ada")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, dir)
	defer st.Close()
	e = newEngine(t, st)
	defer e.Close()
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done, err := e.Wait(waitCtx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != core.StatusCompleted {
		t.Fatalf("status %s error %v", done.Status, done.Error)
	}
	out, _ := done.Output.(map[string]any)
	if out["greeting"] != "hello ada" {
		t.Errorf("output %v", done.Output)
	}
	if since := time.Since(began); since < 600*time.Millisecond {
		t.Errorf("finished after %v, before the recorded deadline of the sleep", since)
	}
	history, err := e.History(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	var scheduled int
	for _, ev := range history {
		if ev.Type == core.TimerScheduled && ev.Timer == "/tasks/Nap" {
			scheduled++
		}
	}
	if scheduled != 1 {
		t.Errorf("the sleep's deadline was recorded %d times; the restart must keep the first", scheduled)
	}
}

func TestFissionExecutorCallsTheRouter(t *testing.T) {
	type seen struct {
		method, path, query, contentType, body, foo string
	}
	got := make(chan seen, 1)
	router := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), string(b), r.Header.Get("Foo")}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Fortune", "good")
		_ = json.NewEncoder(w).Encode(map[string]any{"said": strings.ToUpper(string(b))})
	}))
	defer router.Close()
	ex, err := engine.NewFissionExecutor(router.URL, router.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t, t.TempDir())
	defer st.Close()
	e := newEngine(t, st, func(o *engine.Options) {
		o.Executors = map[string]engine.Executor{engine.FunctionFission: ex}
	})
	defer e.Close()
	ctx := context.Background()
	src := `apiVersion: 1
output: Both
tasks:
  Say:
    run: fission://team/whalesay
    inputs:
      body: "{ param() }"
      method: DELETE
      headers: {foo: bar}
      query: {abc: def}
  Both:
    run: compose
    inputs:
      out: "{ output('Say') }"
      header: "{ outputHeaders('Say')['X-Fortune'] }"
    requires: [Say]
`
	wf, err := e.ApplyWorkflow(ctx, "say.wf.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, wf.Namespace, wf.Name, wf.Version, "hi")
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done, err := e.Wait(waitCtx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != core.StatusCompleted {
		t.Fatalf("status %s error %v", done.Status, done.Error)
	}
	want := seen{"DELETE", "/fission-function/team/whalesay", "abc=def", "text/plain", "hi", "bar"}
	if s := <-got; s != want {
		t.Errorf("router saw %+v, want %+v", s, want)
	}
	wantOut := map[string]any{"out": map[string]any{"said": "HI"}, "header": "good"}
	if !reflect.DeepEqual(done.Output, wantOut) {
		t.Errorf("output %v, want %v", done.Output, wantOut)
	}
}
