package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/batonflow/baton/problem"
)

// clearEnv unsets every variable FromEnv and the exporter read, for the
// test's duration.
func clearEnv(t *testing.T) {
	for _, k := range []string{envDisabled, envExporter, envEndpoint, envTracesEndpoint, envProtocol, envTracesProtocol,
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"} {
		t.Setenv(k, "")
	}
}

func TestFromEnvIsOffUnlessAsked(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		env     map[string]string
		on      bool
		wantErr string
	}{
		{name: "nothing set"},
		{name: "endpoint", env: map[string]string{envEndpoint: "http://127.0.0.1:1"}, on: true},
		{name: "traces endpoint", env: map[string]string{envTracesEndpoint: "http://127.0.0.1:1/v1/traces"}, on: true},
		{name: "exporter otlp", env: map[string]string{envExporter: "otlp"}, on: true},
		{name: "exporter none wins", env: map[string]string{envExporter: "none", envEndpoint: "http://127.0.0.1:1"}},
		{name: "sdk disabled", env: map[string]string{envDisabled: "true", envExporter: "otlp"}},
		{name: "unknown exporter", env: map[string]string{envExporter: "zipkin"}, wantErr: "OTEL_TRACES_EXPORTER=zipkin"},
		{name: "grpc protocol", env: map[string]string{envExporter: "otlp", envProtocol: "grpc"}, wantErr: "OTLP/HTTP only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			tr, err := FromEnv(ctx, "test", nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (tr != nil) != tc.on {
				t.Fatalf("tracer %v, want on=%v", tr, tc.on)
			}
			if err := tr.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// otlpReceiver is an OTLP/HTTP trace endpoint that keeps what it receives.
type otlpReceiver struct {
	mu       sync.Mutex
	requests []*collectortrace.ExportTraceServiceRequest
	problems []string
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		o.problems = append(o.problems, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
	}
	body, _ := io.ReadAll(r.Body)
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		o.problems = append(o.problems, err.Error())
	}
	o.requests = append(o.requests, &req)
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

// TestOTLPExportReachesTheEndpoint points OTEL_EXPORTER_OTLP_ENDPOINT at a
// receiver and checks that an invocation's spans arrive there, under the
// service name OTEL_SERVICE_NAME gives.
func TestOTLPExportReachesTheEndpoint(t *testing.T) {
	ctx := context.Background()
	var recv otlpReceiver
	srv := httptest.NewServer(&recv)
	defer srv.Close()
	clearEnv(t)
	t.Setenv(envEndpoint, srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "baton-under-test")
	tr, err := FromEnv(ctx, "test", nil)
	if err != nil || tr == nil {
		t.Fatalf("tracer %v, err %v", tr, err)
	}
	at := time.Now()
	inv := tr.Open(tr.Plan(ctx), Attributes{ID: "inv-1", Namespace: "default", Workflow: "hello", Version: "1"}, at)
	inv.TaskStarted("/do/0", "/do/0", "greet", at)
	inv.TaskEnded("/do/0", "/do/0", "greet", at.Add(time.Millisecond), nil)
	inv.End("completed", nil, at.Add(2*time.Millisecond))
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.problems) > 0 {
		t.Fatalf("receiver: %v", recv.problems)
	}
	var spans []string
	service := ""
	for _, req := range recv.requests {
		for _, rs := range req.GetResourceSpans() {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					service = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					spans = append(spans, s.GetName())
				}
			}
		}
	}
	if strings.Join(spans, ",") != "task greet,workflow default/hello" {
		t.Errorf("received spans %v", spans)
	}
	if service != "baton-under-test" {
		t.Errorf("service.name %q, want OTEL_SERVICE_NAME's", service)
	}
}

func TestPlanJoinsTheCallersTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr := New(sdktrace.WithSpanProcessor(rec))
	h := http.Header{}
	h.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	h.Set("Tracestate", "vendor=x")
	info := tr.Plan(Extract(context.Background(), h))
	if info[InfoCaller] != "b7ad6b7169203331" || info[InfoTracestate] != "vendor=x" ||
		!strings.HasPrefix(info[InfoTraceparent].(string), "00-0af7651916cd43dd8448eb211c80319c-") {
		t.Fatalf("plan %v", info)
	}
	inv := tr.Open(info, Attributes{Namespace: "n", Workflow: "w"}, time.Now())
	inv.End("faulted", &problem.Problem{Type: "https://example/err", Status: 500, Title: "Boom"}, time.Now())
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[0]
	if got := traceparent(s.SpanContext().TraceID(), s.SpanContext().SpanID(), s.SpanContext().TraceFlags()); got != info[InfoTraceparent] {
		t.Errorf("span %s, planned %s", got, info[InfoTraceparent])
	}
	if s.Parent().SpanID().String() != "b7ad6b7169203331" || s.Parent().TraceState().String() != "vendor=x" {
		t.Errorf("parent %+v", s.Parent())
	}
	if s.Status().Description != "Boom" {
		t.Errorf("status %+v", s.Status())
	}
}

// TestNestedTasksNestSpans checks that a task inside a loop iteration is a
// child of the loop's span, and one in a try's retry of the try's.
func TestNestedTasksNestSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr := New(sdktrace.WithSpanProcessor(rec))
	at := time.Now()
	inv := tr.Open(nil, Attributes{Namespace: "n", Workflow: "w"}, at)
	steps := []struct{ key, ref, name string }{
		{"/do/0", "/do/0", "loop"},
		{"/do/0/for/do/0[1]", "/do/0/for/do/0", "guard"},
		{"/do/0/for/do/0/try/0[1]#2", "/do/0/for/do/0/try/0", "attempt"},
	}
	for _, s := range steps {
		inv.TaskStarted(s.key, s.ref, s.name, at)
	}
	for i := len(steps) - 1; i >= 0; i-- {
		inv.TaskEnded(steps[i].key, steps[i].ref, steps[i].name, at, nil)
	}
	inv.End("completed", nil, at)
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byName[s.Name()] = s
	}
	for child, parent := range map[string]string{"task guard": "task loop", "task attempt": "task guard", "task loop": "workflow n/w"} {
		if byName[child].Parent().SpanID() != byName[parent].SpanContext().SpanID() {
			t.Errorf("%s is not under %s", child, parent)
		}
	}
}

// TestReplayTracesOnlyWhatIsLeftOpen replays a history as a resumed
// invocation does: tasks that started and ended in it are not traced
// again, a task left open is, from its recorded start, and the call the
// replay leaves pending (executed before the replay is declared over) is
// its child.
func TestReplayTracesOnlyWhatIsLeftOpen(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr := New(sdktrace.WithSpanProcessor(rec))
	began := time.Now().Add(-time.Minute)
	inv := tr.Open(tr.Plan(context.Background()), Attributes{Namespace: "n", Workflow: "w"}, began)
	inv.Replaying(true)
	inv.TaskStarted("/do/0", "/do/0", "done", began)
	inv.TaskEnded("/do/0", "/do/0", "done", began.Add(time.Second), nil)
	inv.TaskStarted("/do/1", "/do/1", "inflight", began.Add(2*time.Second))
	_, call := inv.StartCall(context.Background(), "/do/1", "http", 1)
	call.End(nil, nil)
	inv.Replaying(false)
	inv.TaskEnded("/do/1", "/do/1", "inflight", time.Now(), nil)
	inv.End("completed", nil, time.Now())
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byName[s.Name()] = s
	}
	if _, ok := byName["task done"]; ok {
		t.Error("a task that ended within the replay was traced again")
	}
	open := byName["task inflight"]
	if open == nil || !open.StartTime().Equal(began.Add(2*time.Second)) {
		t.Fatalf("the task left open is not traced from its recorded start: %v", open)
	}
	if byName["call http"].Parent().SpanID() != open.SpanContext().SpanID() {
		t.Error("the pending call is not under its resumed task")
	}
}

// TestOffPathAllocatesNothing: with tracing off no span is in the
// contexts, and what the call paths do for tracing costs no allocation.
func TestOffPathAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	h := http.Header{"Accept": {"application/json"}}
	for name, f := range map[string]func(){
		"Inject":    func() { Inject(ctx, h) },
		"InjectMap": func() { InjectMap(ctx, func(string, string) {}) },
		"Extract":   func() { _ = Extract(ctx, h) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s allocates %v times per call with tracing off", name, n)
		}
	}
	if len(h) != 1 {
		t.Errorf("Inject wrote headers without a span: %v", h)
	}
}

func TestInjectWritesTheSpansContext(t *testing.T) {
	tr := New()
	ctx, span := tr.tracer.Start(context.Background(), "x")
	defer span.End()
	h := http.Header{}
	Inject(ctx, h)
	sc := span.SpanContext()
	if want := traceparent(sc.TraceID(), sc.SpanID(), trace.FlagsSampled); h.Get("Traceparent") != want {
		t.Errorf("traceparent %q, want %q", h.Get("Traceparent"), want)
	}
	got := map[string]string{}
	InjectMap(ctx, func(k, v string) { got[k] = v })
	if got["traceparent"] != h.Get("Traceparent") {
		t.Errorf("InjectMap wrote %v", got)
	}
}

func FuzzParseTraceparent(f *testing.F) {
	f.Add("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	f.Add("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
	f.Add("01-xyz")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tid, sid, flags, err := parseTraceparent(s)
		if err != nil {
			return
		}
		if !tid.IsValid() || !sid.IsValid() {
			t.Fatalf("%q parsed into invalid ids", s)
		}
		if again := traceparent(tid, sid, flags); !strings.EqualFold(again, s) {
			t.Fatalf("%q reads back as %q", s, again)
		}
	})
}

// BenchmarkTaskSpans is tracing's cost per task of a call: the task's span,
// its call's span and their ends, exported through the batch processor to
// an exporter that drops them.
func BenchmarkTaskSpans(b *testing.B) {
	tr := New(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	defer tr.Shutdown(context.Background())
	ctx := context.Background()
	at := time.Now()
	inv := tr.Open(tr.Plan(ctx), Attributes{ID: "i", Namespace: "default", Workflow: "chain", Version: "1"}, at)
	info := map[string]any{"version": "1", "runtime": "wasm", "instance": "f@1-1", "cold": false}
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		inv.TaskStarted("/do/3", "/do/3", "stepd", at)
		_, call := inv.StartCall(ctx, "/do/3", "http", 1)
		call.End(info, nil)
		inv.TaskEnded("/do/3", "/do/3", "stepd", at, nil)
	}
	// CPU time, the exporting goroutine's included, is less distorted than
	// wall time on a loaded machine.
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/task")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkOffPath is what a call path pays for tracing when it is off.
func BenchmarkOffPath(b *testing.B) {
	ctx := context.Background()
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		Inject(ctx, h)
	}
}
