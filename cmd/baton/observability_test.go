package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpSpans is an OTLP/HTTP trace endpoint that keeps the spans it gets:
// name → trace id (hex).
type otlpSpans struct {
	mu    sync.Mutex
	spans map[string]string
}

func (o *otlpSpans) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req collectortrace.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				o.spans[s.GetName()] = hexOf(s.GetTraceId())
			}
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestServerTracesAndMeasures runs a server whose OTEL_* variables point
// at an OTLP receiver: an invocation started by a request carrying a
// traceparent is exported (at the latest when the server stops) in the
// caller's trace, and /metrics counts it.
func TestServerTracesAndMeasures(t *testing.T) {
	recv := &otlpSpans{spans: map[string]string{}}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	dir := t.TempDir()
	srv := startServerArgs(t, []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + collector.URL, "OTEL_SERVICE_NAME=baton-e2e", "OTEL_TRACES_EXPORTER=",
	}, "--data", filepath.Join(dir, "data"))
	defer srv.stop()
	baton(t, srv.env(), "workflow", "apply", writeFile(t, dir, "hello.yaml", helloDoc("0.1.0"))).
		expect(t, 0, "NAMESPACE   NAME    VERSION\ndefault     hello   0.1.0\n", "")

	req, _ := http.NewRequest(http.MethodPost, srv.url+"/v1/workflows/default/hello/invocations?wait=10s", strings.NewReader(`{"name":"T"}`))
	req.Header.Set("Authorization", "Bearer "+srv.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("invoke: %d", resp.StatusCode)
	}

	req, _ = http.NewRequest(http.MethodGet, srv.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+srv.token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`baton_invocations_started_total{namespace="default",workflow="hello"} 1`,
		`baton_invocations_ended_total{namespace="default",status="completed",workflow="hello"} 1`,
		`baton_task_duration_seconds_count{namespace="default",workflow="hello"} 1`,
		`baton_store_commit_duration_seconds_count `,
		`go_goroutines `, // beside the collectors registered before
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	srv.stop()
	recv.mu.Lock()
	defer recv.mu.Unlock()
	for _, name := range []string{"workflow default/hello", "task greet"} {
		if got := recv.spans[name]; got != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("span %q exported in trace %q, want the caller's; spans %v; logs:\n%s", name, got, recv.spans, srv.logs)
		}
	}
}

// TestTracingConfigurationErrors: an OTEL_* setting Baton cannot honour
// stops the command with one readable line.
func TestTracingConfigurationErrors(t *testing.T) {
	dir := t.TempDir()
	hello := writeFile(t, dir, "hello.yaml", helloDoc("0.1.0"))
	env := []string{"BATON_DATA=" + filepath.Join(dir, "data"), "OTEL_TRACES_EXPORTER=zipkin"}
	baton(t, env, "run", hello, "--input", `{"name":"Z"}`).expect(t, 1, "",
		"baton: telemetry: OTEL_TRACES_EXPORTER=zipkin: Baton exports traces with otlp (or none)\n")
}
