package engine_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/telemetry"
)

// coldFunctions answers every call as a cold start of a wasm function.
type coldFunctions struct{}

func (coldFunctions) Call(_ context.Context, _, _ string, c *core.Call) (function.Result, error) {
	return function.Result{
		Output: map[string]any{"hello": c.Function}, Cold: true, Runtime: function.KindWasm,
		Version: "3", Instance: "greet@3-1",
		ColdStart: function.Phases{Compile: time.Millisecond, Instantiate: 2 * time.Millisecond},
	}, nil
}

// traceparents records the traceparent header of each request it serves.
type traceparents struct {
	mu   sync.Mutex
	seen []string
}

func (t *traceparents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	t.seen = append(t.seen, r.Header.Get("Traceparent"))
	t.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func (t *traceparents) all() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.seen...)
}

func tracedDoc(url string) string {
	return `
document: {dsl: '1.0.0', namespace: default, name: traced, version: '1.0.0'}
do:
  - greet:
      call: greet
  - fetch:
      call: http
      with: {method: get, endpoint: ` + url + `/x}
  - tally:
      set: {done: true}
`
}

func newTracedEngine(t *testing.T, st store.Store, rec sdktrace.SpanProcessor) *engine.Engine {
	t.Helper()
	return newEngine(t, st, func(o *engine.Options) {
		o.Tracer = telemetry.New(sdktrace.WithSpanProcessor(rec))
		o.Executors = map[string]engine.Executor{"*": engine.FunctionExecutor(coldFunctions{})}
	})
}

// spansByName indexes ended spans by name, failing on duplicates.
func spansByName(t *testing.T, spans []sdktrace.ReadOnlySpan) map[string]sdktrace.ReadOnlySpan {
	t.Helper()
	out := make(map[string]sdktrace.ReadOnlySpan)
	for _, s := range spans {
		if _, dup := out[s.Name()]; dup {
			t.Errorf("span %q exported twice", s.Name())
		}
		out[s.Name()] = s
	}
	return out
}

func wantChild(t *testing.T, spans map[string]sdktrace.ReadOnlySpan, child, parent string) {
	t.Helper()
	c, p := spans[child], spans[parent]
	if c == nil || p == nil {
		t.Fatalf("spans %q and %q, have %v", child, parent, names(spans))
	}
	if c.Parent().SpanID() != p.SpanContext().SpanID() || c.SpanContext().TraceID() != p.SpanContext().TraceID() {
		t.Errorf("span %q has parent %s, want %q (%s)", child, c.Parent().SpanID(), parent, p.SpanContext().SpanID())
	}
}

func names(spans map[string]sdktrace.ReadOnlySpan) []string {
	var out []string
	for n := range spans {
		out = append(out, n)
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// TestTraceOfAnInvocation runs a workflow started by a request that
// carries a traceparent: the invocation joins the caller's trace, each
// task is a span under the invocation's, the function call is a span under
// its task with its cold start as an event, and the HTTP call carries the
// call span's context to the server it calls.
func TestTraceOfAnInvocation(t *testing.T) {
	ctx := context.Background()
	var downstream traceparents
	target := httptest.NewServer(&downstream)
	defer target.Close()
	rec := tracetest.NewSpanRecorder()
	st := openStore(t, t.TempDir())
	defer st.Close()
	e := newTracedEngine(t, st, rec)
	defer e.Close()
	if _, err := e.ApplyWorkflow(ctx, "traced.yaml", []byte(tracedDoc(target.URL))); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.NewHandler(e))
	defer srv.Close()

	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/workflows/default/traced/invocations?wait=10s", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", caller)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("invoke: status %d", resp.StatusCode)
	}

	spans := spansByName(t, rec.Ended())
	root := spans["workflow default/traced"]
	if root == nil {
		t.Fatalf("no invocation span among %v", names(spans))
	}
	if got := root.SpanContext().TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("invocation trace %s, want the caller's", got)
	}
	if got := root.Parent().SpanID().String(); got != "00f067aa0ba902b7" || !root.Parent().IsRemote() {
		t.Errorf("invocation span's parent %s (remote %v), want the caller's span", got, root.Parent().IsRemote())
	}
	if got := attr(root, "baton.status"); got != "completed" {
		t.Errorf("invocation status attribute %q", got)
	}
	for _, task := range []string{"task greet", "task fetch", "task tally"} {
		wantChild(t, spans, task, "workflow default/traced")
	}
	wantChild(t, spans, "call greet", "task greet")
	wantChild(t, spans, "call http", "task fetch")

	greet := spans["call greet"]
	if greet.SpanKind() != trace.SpanKindClient {
		t.Errorf("call span kind %v", greet.SpanKind())
	}
	for key, want := range map[string]string{
		"baton.function": "greet", "baton.function.version": "3", "baton.function.runtime": "wasm", "baton.cold_start": "true",
	} {
		if got := attr(greet, key); got != want {
			t.Errorf("call greet: %s = %q, want %q", key, got, want)
		}
	}
	if evs := greet.Events(); len(evs) != 1 || evs[0].Name != "cold start" {
		t.Errorf("call greet events %+v, want one cold start", evs)
	}

	seen := downstream.all()
	if len(seen) != 1 {
		t.Fatalf("downstream saw %d requests", len(seen))
	}
	call := spans["call http"].SpanContext()
	if want := "00-" + call.TraceID().String() + "-" + call.SpanID().String() + "-01"; seen[0] != want {
		t.Errorf("downstream traceparent %q, want the call span's %q", seen[0], want)
	}
}

// TestResumedInvocationContinuesItsTrace stops an engine while an
// invocation waits, resumes it in a new engine and checks that the spans
// of both processes form one trace under one invocation span, with no
// task traced twice.
func TestResumedInvocationContinuesItsTrace(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var downstream traceparents
	target := httptest.NewServer(&downstream)
	defer target.Close()
	doc := `
document: {dsl: '1.0.0', namespace: default, name: pause, version: '1.0.0'}
do:
  - before:
      call: http
      with: {method: post, endpoint: ` + target.URL + `/before}
  - nap:
      wait: {milliseconds: 300}
  - after:
      call: http
      with: {method: post, endpoint: ` + target.URL + `/after}
`
	first := tracetest.NewSpanRecorder()
	st := openStore(t, dir)
	e := newTracedEngine(t, st, first)
	if _, err := e.ApplyWorkflow(ctx, "p.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "default", "pause", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the timer to be scheduled", func() bool {
		hist, _ := e.History(ctx, inv.ID)
		for _, ev := range hist {
			if ev.Type == core.TimerScheduled {
				return true
			}
		}
		return false
	})
	e.Close()
	st.Close()

	second := tracetest.NewSpanRecorder()
	st = openStore(t, dir)
	defer st.Close()
	e = newTracedEngine(t, st, second)
	defer e.Close()
	if done, err := e.Wait(ctx, inv.ID); err != nil || done.Status != core.StatusCompleted {
		t.Fatalf("%+v %v", done, err)
	}

	hist, err := e.History(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	recorded, _ := hist[0].Info[telemetry.InfoTraceparent].(string)
	if recorded == "" {
		t.Fatalf("the start event records no trace: %+v", hist[0].Info)
	}
	before := spansByName(t, first.Ended())
	after := spansByName(t, second.Ended())
	if _, ok := before["workflow default/pause"]; ok {
		t.Error("the first engine exported the invocation span of an invocation it did not finish")
	}
	root := after["workflow default/pause"]
	if root == nil {
		t.Fatalf("no invocation span after the resumption, have %v", names(after))
	}
	sc := root.SpanContext()
	if want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"; recorded != want {
		t.Errorf("resumed invocation span %s, want the recorded %s", want, recorded)
	}
	if !root.StartTime().Equal(inv.StartedAt) {
		t.Errorf("resumed invocation span starts at %v, want the invocation's start %v", root.StartTime(), inv.StartedAt)
	}
	for name, s := range before {
		if s.SpanContext().TraceID() != sc.TraceID() {
			t.Errorf("first engine's span %q is in trace %s, want %s", name, s.SpanContext().TraceID(), sc.TraceID())
		}
	}
	if s := before["task before"]; s == nil || s.Parent().SpanID() != sc.SpanID() {
		t.Errorf("the task that ran before the stop is not under the invocation span: %v", names(before))
	}
	if _, twice := after["task before"]; twice {
		t.Error("the task that ran before the stop was traced again by the resumed engine")
	}
	wantChild(t, after, "task nap", "workflow default/pause")
	wantChild(t, after, "task after", "workflow default/pause")
	if attr(after["task nap"], "baton.resumed") != "true" {
		t.Error("the wait cut by the stop is not marked resumed")
	}
}

// TestEmittedEventCarriesTheTrace: an `emit` task puts its call span's
// context into the event (the CloudEvents Distributed Tracing extension),
// and the run the event starts through schedule.on joins that trace under
// the emitting call.
func TestEmittedEventCarriesTheTrace(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	rec := tracetest.NewSpanRecorder()
	e := newEngine(t, st, func(o *engine.Options) {
		o.Tracer = telemetry.New(sdktrace.WithSpanProcessor(rec))
		o.EventLog = events.NewLog(st.(store.EventLog), nil, nil)
	})
	defer e.Close()
	producer := `
document: {dsl: '1.0.0', namespace: shop, name: producer, version: '1.0.0'}
do:
  - announce:
      emit:
        event:
          with: {source: /shop, type: order.placed, data: {orderId: "7"}}
`
	for _, doc := range []string{producer, onDoc} {
		if _, err := e.ApplyWorkflow(ctx, "doc.yaml", []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := e.Invoke(ctx, "shop", "producer", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitEnded(t, e, inv.ID)
	starts := waitStarts(t, st, 1)
	if len(starts) != 1 {
		t.Fatalf("schedule.on started %d runs", len(starts))
	}
	for id := range starts {
		waitEnded(t, e, id)
	}
	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		spans[s.Name()] = s
	}
	emit, consumer := spans["call emit"], spans["workflow shop/onorder"]
	if emit == nil || consumer == nil {
		t.Fatalf("spans %v", names(spans))
	}
	if consumer.SpanContext().TraceID() != emit.SpanContext().TraceID() || consumer.Parent().SpanID() != emit.SpanContext().SpanID() {
		t.Errorf("the started run is in trace %s under %s, want the emitting call's %s/%s",
			consumer.SpanContext().TraceID(), consumer.Parent().SpanID(), emit.SpanContext().TraceID(), emit.SpanContext().SpanID())
	}
}
