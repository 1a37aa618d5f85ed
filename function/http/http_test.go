package http

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	stdhttp "net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/problem"
)

type specMap map[string]*function.Spec

func (m specMap) Get(_ context.Context, _, name, version string) (*function.Spec, error) {
	s, ok := m[name]
	if !ok {
		return nil, function.NotFound(name, version)
	}
	return s, nil
}

type secretMap map[string]string

func (s secretMap) Secret(_ context.Context, name string) (string, error) {
	v, ok := s[name]
	if !ok {
		return "", errors.New("no such secret")
	}
	return v, nil
}

func newManager(t *testing.T, opts Options, specs ...*function.Spec) *function.Manager {
	t.Helper()
	byName := specMap{}
	for _, s := range specs {
		s.Runtime, s.Version = function.KindHTTP, "1"
		byName[s.Name] = s
	}
	m, err := function.NewManager(byName, map[function.Kind]function.Runtime{function.KindHTTP: New(opts)}, function.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

func wantProblem(t *testing.T, err error, typ string, status int, detail string) {
	t.Helper()
	var p *problem.Problem
	if !errors.As(err, &p) || p.Type != typ || (status != 0 && p.Status != status) || !strings.Contains(p.Detail, detail) {
		t.Fatalf("err = %v, want a %s problem with status %d mentioning %q", err, typ, status, detail)
	}
}

func TestCallPostsJSONWithHeaders(t *testing.T) {
	var warmups atomic.Int32
	srv := httptest.NewServer(stdhttp.HandlerFunc(func(w stdhttp.ResponseWriter, r *stdhttp.Request) {
		if r.Method == stdhttp.MethodGet && r.URL.Path == "/healthz" {
			warmups.Add(1)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var in map[string]any
		if r.Method != stdhttp.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &in) != nil {
			stdhttp.Error(w, "bad request", 400)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"echo":        in,
			"auth":        r.Header.Get("Authorization"),
			"tenant":      r.Header.Get("X-Tenant"),
			"idempotency": r.Header.Get("Idempotency-Key"),
			"traceparent": r.Header.Get("Traceparent"),
		})
	}))
	defer srv.Close()
	m := newManager(t, Options{Secrets: secretMap{"fn-token": "Bearer s3cret"}}, &function.Spec{
		Name: "remote", URL: srv.URL + "/function/remote", Warmup: "/healthz",
		Headers:       map[string]string{"X-Tenant": "acme"},
		SecretHeaders: map[string]string{"Authorization": "fn-token"},
	})
	if err := m.Prepare(context.Background(), "remote", time.Now()); err != nil {
		t.Fatal(err)
	}
	if warmups.Load() != 1 {
		t.Fatalf("%d warm-up requests, want 1", warmups.Load())
	}
	ctx := function.WithCallInfo(context.Background(), function.CallInfo{IdempotencyKey: "inv-1/do/0/call/1"})
	// The call is made under the workflow call's span, whose context the
	// function receives.
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	res, err := m.Invoke(ctx, "remote", map[string]int{"x": 1})
	if err != nil {
		t.Fatal(err)
	}
	out := res.Output.(map[string]any)
	if out["auth"] != "Bearer s3cret" || out["tenant"] != "acme" || out["idempotency"] != "inv-1/do/0/call/1" || out["echo"].(map[string]any)["x"] != 1.0 {
		t.Errorf("output = %v", out)
	}
	if out["traceparent"] != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("traceparent sent = %v", out["traceparent"])
	}
	if res.Cold {
		t.Error("call on a prepared instance was cold")
	}
}

func TestCallFailures(t *testing.T) {
	srv := httptest.NewServer(stdhttp.HandlerFunc(func(w stdhttp.ResponseWriter, r *stdhttp.Request) {
		switch r.URL.Path {
		case "/unavailable":
			stdhttp.Error(w, "scaling up", stdhttp.StatusServiceUnavailable)
		case "/slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		case "/garbage":
			w.Write([]byte("<html>oops</html>"))
		case "/empty":
		}
	}))
	defer srv.Close()
	// An address nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()

	tests := []struct {
		name     string
		spec     function.Spec
		wantType string
		status   int
		detail   string
	}{
		{"status", function.Spec{URL: srv.URL + "/unavailable"}, problem.TypeCommunication, 503, "scaling up"},
		{"unreachable", function.Spec{URL: closed}, problem.TypeCommunication, 503, "unreachable"},
		{"timeout", function.Spec{URL: srv.URL + "/slow", Limits: function.Limits{Timeout: function.Duration(100 * time.Millisecond)}}, problem.TypeTimeout, 408, "100ms"},
		{"invalid JSON", function.Spec{URL: srv.URL + "/garbage"}, problem.TypeRuntime, 500, "invalid JSON"},
		{"missing secret store", function.Spec{URL: srv.URL, SecretHeaders: map[string]string{"Authorization": "tok"}}, problem.TypeConfiguration, 400, "no secret store"},
		{"warm-up fails", function.Spec{URL: srv.URL + "/empty", Warmup: "/unavailable"}, problem.TypeCommunication, 503, "warm-up"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.Name = "f"
			m := newManager(t, Options{}, &spec, &function.Spec{Name: "ok", URL: srv.URL + "/empty"})
			_, err := m.Invoke(context.Background(), "f", map[string]int{})
			wantProblem(t, err, tc.wantType, tc.status, tc.detail)
			res, err := m.Invoke(context.Background(), "ok", 1)
			if err != nil || res.Output != nil {
				t.Fatalf("another function after the failure: %+v, %v", res, err)
			}
		})
	}
}
