package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/client"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store/sqlite"
)

// echoRuntime stands in for every runtime: its instances answer
// {"echo": input}, or, for {"sleep": true}, run until the call's deadline
// and break.
type echoRuntime struct{ starts atomic.Int32 }

var echoPhases = function.Phases{Compile: 2 * time.Millisecond, Instantiate: 3 * time.Millisecond, Init: time.Millisecond}

func (r *echoRuntime) Start(ctx context.Context, spec *function.Spec) (function.Instance, function.Phases, error) {
	r.starts.Add(1)
	return &echoInstance{spec: spec}, echoPhases, nil
}
func (r *echoRuntime) Retire(*function.Spec)       {}
func (r *echoRuntime) Close(context.Context) error { return nil }

type echoInstance struct {
	spec   *function.Spec
	broken bool
}

func (i *echoInstance) Invoke(ctx context.Context, input json.RawMessage) (json.RawMessage, error) {
	var in struct{ Sleep bool }
	_ = json.Unmarshal(input, &in)
	if in.Sleep {
		<-ctx.Done()
		i.broken = true
		return nil, function.CallError(ctx, i.spec, i.spec.EffectiveTimeout(), ctx.Err())
	}
	return json.RawMessage(`{"echo":` + string(input) + `}`), nil
}
func (i *echoInstance) Healthy() bool               { return !i.broken }
func (i *echoInstance) Close(context.Context) error { return nil }

// functionHost is what `baton server` hands the API: a registry and a
// manager on one store.
type functionHost struct {
	*function.Registry
	*function.Manager
}

type functionFixture struct {
	srv     *httptest.Server
	client  *client.Client
	runtime *echoRuntime
	blobs   *function.Blobs
}

func newFunctionFixture(t *testing.T, opts ...api.Option) *functionFixture {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	blobs, err := function.OpenBlobs(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	reg := function.NewRegistry(st, blobs)
	rt := &echoRuntime{}
	metrics := prometheus.NewRegistry()
	mgr, err := function.NewManager(reg, map[function.Kind]function.Runtime{
		function.KindWasm: rt, function.KindProcess: rt, function.KindHTTP: rt,
	}, function.Options{Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Close(context.Background()) })
	opts = append([]api.Option{
		api.WithFunctions(functionHost{reg, mgr}),
		api.WithMetrics(promhttp.HandlerFor(metrics, promhttp.HandlerOpts{})),
	}, opts...)
	srv := httptest.NewServer(api.NewHandler(nil, opts...))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return &functionFixture{srv: srv, client: c, runtime: rt, blobs: blobs}
}

// writeModule writes a file that passes for a WebAssembly module (the
// echo runtime never reads it) of at least size bytes.
func writeModule(t *testing.T, size int, salt string) string {
	t.Helper()
	data := append([]byte("\x00asm\x01\x00\x00\x00"+salt), bytes.Repeat([]byte{0}, size)...)
	path := filepath.Join(t.TempDir(), "fn.wasm")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func wantProblem(t *testing.T, err error, status int, typ string) *problem.Problem {
	t.Helper()
	var p *problem.Problem
	if !errors.As(err, &p) {
		t.Fatalf("error %v: want a problem", err)
	}
	if p.Status != status || p.Type != typ {
		t.Fatalf("problem %+v: want status %d, type %s", p, status, typ)
	}
	return p
}

func TestFunctionsDeployInvokeAndInspect(t *testing.T) {
	f := newFunctionFixture(t)
	ctx := context.Background()

	ref, err := f.client.DeployModule(ctx, function.Spec{Name: "hello", Limits: function.Limits{Timeout: function.Duration(200 * time.Millisecond)}},
		writeModule(t, 1024, "v1"))
	if err != nil || *ref != (api.FunctionRef{Namespace: "default", Name: "hello", Version: "1"}) {
		t.Fatalf("deploy: %+v, %v", ref, err)
	}
	// The same spec and module again is the same version.
	again, err := f.client.DeployModule(ctx, function.Spec{Name: "hello", Limits: function.Limits{Timeout: function.Duration(200 * time.Millisecond)}},
		writeModule(t, 1024, "v1"))
	if err != nil || again.Version != "1" {
		t.Fatalf("deploying the same module again: %+v, %v", again, err)
	}

	first, err := f.client.InvokeFunction(ctx, "hello", "", json.RawMessage(`{"name":"Ada"}`))
	if err != nil {
		t.Fatal(err)
	}
	wantCold := api.ColdStart{CompileMs: 2, InstantiateMs: 3, InitMs: 1, TotalMs: 6}
	if !first.Cold || first.ColdStart == nil || *first.ColdStart != wantCold || first.Version != "1" || first.Instance == "" {
		t.Fatalf("first call %+v: want a cold start of %+v", first, wantCold)
	}
	if string(first.Output) != `{"echo":{"name":"Ada"}}` {
		t.Fatalf("output %s", first.Output)
	}
	second, err := f.client.InvokeFunction(ctx, "hello", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if second.Cold || second.ColdStart != nil || second.Instance != first.Instance || string(second.Output) != `{"echo":null}` {
		t.Fatalf("second call %+v: want a warm call on %s with a null input", second, first.Instance)
	}

	fn, err := f.client.GetFunction(ctx, "hello", "")
	if err != nil {
		t.Fatal(err)
	}
	if fn.Spec.Runtime != function.KindWasm || !strings.HasPrefix(fn.Spec.Artifact, "sha256:") || len(fn.Versions) != 1 {
		t.Fatalf("function %+v: want the stored wasm spec", fn)
	}
	if fn.Pool.ByState["idle"] != 1 || fn.Pool.ByState["busy"] != 0 || len(fn.Pool.Instances) != 1 || fn.Pool.Instances[0].Calls != 2 {
		t.Fatalf("pool %+v: want one idle instance that served 2 calls", fn.Pool)
	}
	kinds := []string{}
	for _, e := range fn.Pool.Events {
		kinds = append(kinds, string(e.Kind))
	}
	if got := strings.Join(kinds, ","); got != "created,busy,idle,busy,idle" || fn.Pool.Events[0].ColdStart == nil {
		t.Fatalf("events %s (%+v): want the instance's life with its cold start", got, fn.Pool.Events)
	}

	// A JSON deploy may reuse the stored module by its address: a new
	// version with other limits.
	spec := *fn.Spec
	spec.Version, spec.CreatedAt, spec.Limits.MaxInstances = "", time.Time{}, 3
	v2, err := f.client.DeployFunction(ctx, spec)
	if err != nil || v2.Version != "2" {
		t.Fatalf("redeploy by address: %+v, %v", v2, err)
	}
	list, err := f.client.ListFunctions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Version != "2" || strings.Join(list[0].Versions, ",") != "1,2" || list[0].Runtime != function.KindWasm {
		t.Fatalf("list %+v: want hello with versions 1 and 2", list)
	}
	pinned, err := f.client.InvokeFunction(ctx, "hello", "1", json.RawMessage(`1`))
	if err != nil || pinned.Version != "1" {
		t.Fatalf("pinned call: %+v, %v", pinned, err)
	}
	v1, err := f.client.GetFunction(ctx, "hello", "1")
	if err != nil || v1.Spec.Version != "1" || v1.Spec.Limits.MaxInstances != 0 {
		t.Fatalf("version 1: %+v, %v", v1, err)
	}

	// Timeouts are 504 timeout problems, and the function keeps serving.
	_, err = f.client.InvokeFunction(ctx, "hello", "", json.RawMessage(`{"sleep":true}`))
	wantProblem(t, err, http.StatusGatewayTimeout, problem.TypeTimeout)
	if _, err := f.client.InvokeFunction(ctx, "hello", "", json.RawMessage(`{}`)); err != nil {
		t.Fatalf("a call after a timeout: %v", err)
	}

	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`baton_function_invocations_total{function="hello"} `,
		`baton_function_errors_total{function="hello",type="timeout"} 1`,
		`baton_function_cold_starts_total{function="hello"} `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}

	if err := f.client.DeleteFunction(ctx, "hello", "1"); err != nil {
		t.Fatal(err)
	}
	_, err = f.client.GetFunction(ctx, "hello", "1")
	wantProblem(t, err, http.StatusNotFound, problem.TypeNotFound)
	if err := f.client.DeleteFunction(ctx, "hello", ""); err != nil {
		t.Fatal(err)
	}
	_, err = f.client.InvokeFunction(ctx, "hello", "", nil)
	wantProblem(t, err, http.StatusNotFound, problem.TypeNotFound)
	err = f.client.DeleteFunction(ctx, "hello", "")
	wantProblem(t, err, http.StatusNotFound, problem.TypeNotFound)
	if entries, _ := os.ReadDir(f.blobs.Dir()); len(entries) != 0 {
		t.Fatalf("blobs left after deleting every version: %v", entries)
	}
}

func TestFunctionsProcessAndHTTPSpecs(t *testing.T) {
	f := newFunctionFixture(t)
	ctx := context.Background()
	for _, spec := range []function.Spec{
		{Name: "py", Runtime: function.KindProcess, Command: "python3", Args: []string{"handler.py"}, Dir: "/srv"},
		{Name: "remote", Runtime: function.KindHTTP, URL: "http://gateway:8080/function/remote", Headers: map[string]string{"X-A": "b"}},
	} {
		ref, err := f.client.DeployFunction(ctx, spec)
		if err != nil || ref.Version != "1" {
			t.Fatalf("deploy %s: %+v, %v", spec.Name, ref, err)
		}
		got, err := f.client.GetFunction(ctx, spec.Name, "1")
		if err != nil {
			t.Fatal(err)
		}
		want := spec
		want.Namespace, want.Version, want.CreatedAt = "default", "1", got.Spec.CreatedAt
		gotJSON, _ := json.Marshal(got.Spec)
		wantJSON, _ := json.Marshal(&want)
		if !bytes.Equal(gotJSON, wantJSON) || got.Spec.CreatedAt.IsZero() {
			t.Fatalf("stored spec %s, want %s", gotJSON, wantJSON)
		}
	}
	res, err := f.client.InvokeFunction(ctx, "py", "", json.RawMessage(`[1,2]`))
	if err != nil || string(res.Output) != `{"echo":[1,2]}` {
		t.Fatalf("invoke py: %+v, %v", res, err)
	}
}

// multipartBody builds a deploy request body from (name, content) parts.
func multipartBody(t *testing.T, parts ...[2]string) (string, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		w, err := mw.CreateFormFile(p[0], p[0])
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(p[1]))
	}
	mw.Close()
	return b.String(), mw.FormDataContentType()
}

func TestFunctionsBadRequests(t *testing.T) {
	f := newFunctionFixture(t, api.WithMaxBodyBytes(1024), api.WithMaxModuleBytes(64<<10))
	module := "\x00asm\x01\x00\x00\x00" + strings.Repeat("x", 8<<10) // above the body cap, below the module cap
	post := func(path, contentType, body string) (int, problem.Problem) {
		t.Helper()
		resp, err := http.Post(f.srv.URL+path, contentType, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p problem.Problem
		if resp.StatusCode >= 400 {
			if ct := resp.Header.Get("Content-Type"); ct != api.ProblemContentType {
				t.Fatalf("%s: error with Content-Type %q", path, ct)
			}
			json.NewDecoder(resp.Body).Decode(&p)
		}
		return resp.StatusCode, p
	}
	multi := func(parts ...[2]string) (int, problem.Problem) {
		body, ct := multipartBody(t, parts...)
		return post("/v1/functions", ct, body)
	}

	tests := []struct {
		name       string
		do         func() (int, problem.Problem)
		wantStatus int
		wantDetail string
	}{
		{"wasm artifact as a server path", func() (int, problem.Problem) {
			return post("/v1/functions", "application/json", `{"name":"x","runtime":"wasm","artifact":"/etc/passwd"}`)
		}, 400, "sha256: address"},
		{"unknown spec field", func() (int, problem.Problem) {
			return post("/v1/functions", "application/json", `{"name":"x","runtime":"http","url":"http://a","bogus":1}`)
		}, 400, "bogus"},
		{"invalid spec", func() (int, problem.Problem) {
			return post("/v1/functions", "application/json", `{"name":"X!","runtime":"process"}`)
		}, 400, "invalid function spec"},
		{"multipart without module", func() (int, problem.Problem) {
			return multi([2]string{"spec", `{"name":"m"}`})
		}, 400, `"module" part`},
		{"multipart with an artifact", func() (int, problem.Problem) {
			return multi([2]string{"spec", `{"name":"m","artifact":"sha256:00"}`}, [2]string{"module", module})
		}, 400, "names no artifact"},
		{"multipart with a stray part", func() (int, problem.Problem) {
			return multi([2]string{"spec", `{"name":"m"}`}, [2]string{"other", "x"})
		}, 400, `unexpected part "other"`},
		{"module that is not wasm", func() (int, problem.Problem) {
			return multi([2]string{"spec", `{"name":"m"}`}, [2]string{"module", "#!/bin/sh"})
		}, 400, "not a WebAssembly module"},
		{"module above the module cap", func() (int, problem.Problem) {
			return multi([2]string{"spec", `{"name":"m"}`}, [2]string{"module", strings.Repeat("x", 2<<20)})
		}, 413, "exceeds"},
		{"JSON above the body cap", func() (int, problem.Problem) {
			return post("/v1/functions", "application/json", `{"name":"m","runtime":"http","url":"http://a/`+strings.Repeat("x", 2048)+`"}`)
		}, 413, "exceeds"},
		{"input that is not JSON", func() (int, problem.Problem) {
			return post("/v1/functions/m/invoke", "application/json", `{nope`)
		}, 400, "not valid JSON"},
		{"NAME@VERSION in the path", func() (int, problem.Problem) {
			return post("/v1/functions/m@1/invoke", "application/json", `{}`)
		}, 400, "?version="},
		{"unknown function", func() (int, problem.Problem) {
			return post("/v1/functions/nobody/invoke", "application/json", `{}`)
		}, 404, "function nobody not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, p := tt.do()
			if status != tt.wantStatus || !strings.Contains(p.Detail, tt.wantDetail) {
				t.Fatalf("status %d, problem %+v: want %d mentioning %q", status, p, tt.wantStatus, tt.wantDetail)
			}
		})
	}

	// A module larger than the ordinary body cap is accepted in a
	// multipart deploy.
	if status, p := multi([2]string{"spec", `{"name":"m"}`}, [2]string{"module", module}); status != http.StatusCreated {
		t.Fatalf("deploying an 8 KiB module: %d %+v", status, p)
	}
}

func TestFunctionsAndMetricsNotConfigured(t *testing.T) {
	srv := httptest.NewServer(api.NewHandler(nil))
	defer srv.Close()
	for _, path := range []string{"/v1/functions", "/v1/functions/x", "/metrics"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotImplemented || resp.Header.Get("Content-Type") != api.ProblemContentType {
			t.Errorf("GET %s: %d %s, want a 501 problem", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}
