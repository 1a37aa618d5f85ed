package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/problem"
)

// buildDir holds the modules built for this test binary; each is built
// once, whatever the number of tests using it. cacheDir is the compilation
// cache the tests share, so that a module is compiled once too (compiling
// a Go module takes seconds under the race detector).
var buildDir, cacheDir string

func TestMain(m *testing.M) {
	if v := os.Getenv(freshStartEnv); v != "" {
		// A child of BenchmarkColdStartFreshProcess.
		os.Exit(runFreshStart(v))
	}
	dir, err := os.MkdirTemp("", "baton-wasm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	cacheDir = filepath.Join(dir, "cache")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type build struct {
	once sync.Once
	path string
	err  error
}

var builds sync.Map // source dir → *build

// built builds the Go function in dir (relative to the repository root)
// with function.BuildGo and returns the module's path.
func built(tb testing.TB, dir string) string {
	tb.Helper()
	v, _ := builds.LoadOrStore(dir, &build{})
	b := v.(*build)
	b.once.Do(func() {
		b.path = filepath.Join(buildDir, strings.ReplaceAll(dir, "/", "_")+".wasm")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		b.err = function.BuildGo(ctx, filepath.Join("..", "..", dir), b.path)
	})
	if b.err != nil {
		tb.Fatalf("building %s: %v", dir, b.err)
	}
	return b.path
}

const (
	helloGo   = "examples/functions/hello-go"
	helloWASI = "examples/functions/hello-wasi"
	loopFn    = "examples/functions/loop"
	guestFn   = "function/wasm/testdata/guest"
	commandFn = "function/wasm/testdata/command"
	noopFn    = "function/wasm/testdata/noop"
)

// newRuntime returns a runtime using the given compilation cache, or the
// shared one when cache is "".
func newRuntime(tb testing.TB, cache string) *Runtime {
	tb.Helper()
	if cache == "" {
		cache = cacheDir
	}
	rt, err := New(Options{CacheDir: cache})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

// newManager serves the given specs with a wasm runtime.
func newManager(tb testing.TB, rt *Runtime, specs ...*function.Spec) *function.Manager {
	tb.Helper()
	byName := specMap{}
	for _, s := range specs {
		s.Runtime = function.KindWasm
		if s.Version == "" {
			s.Version = "1"
		}
		byName[s.Name] = s
	}
	m, err := function.NewManager(byName, map[function.Kind]function.Runtime{function.KindWasm: rt}, function.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			tb.Errorf("closing the manager: %v", err)
		}
	})
	return m
}

type specMap map[string]*function.Spec

func (m specMap) Get(_ context.Context, _, name, version string) (*function.Spec, error) {
	s, ok := m[name]
	if !ok {
		return nil, function.NotFound(name, version)
	}
	return s, nil
}

func wantProblem(t *testing.T, err error, typ string, detail ...string) *problem.Problem {
	t.Helper()
	var p *problem.Problem
	if !errors.As(err, &p) {
		t.Fatalf("err = %v (%T), want a %s problem", err, err, typ)
	}
	if p.Type != typ {
		t.Fatalf("problem type %s, want %s: %v", p.Type, typ, p)
	}
	for _, d := range detail {
		if !strings.Contains(p.Detail, d) {
			t.Errorf("problem detail %q does not mention %q", p.Detail, d)
		}
	}
	return p
}

func TestReactorColdThenWarm(t *testing.T) {
	m := newManager(t, newRuntime(t, ""), &function.Spec{Name: "hello", Artifact: built(t, helloGo)})
	ctx := context.Background()
	first, err := m.Invoke(ctx, "hello", map[string]string{"name": "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Output.(map[string]any)["greeting"]; got != "Hello, Ada!" {
		t.Errorf("output = %v", first.Output)
	}
	if !first.Cold || first.ColdStart.Compile <= 0 || first.ColdStart.Instantiate <= 0 || first.ColdStart.Init <= 0 {
		t.Errorf("first call: cold=%v phases=%+v, want cold with all three phases", first.Cold, first.ColdStart)
	}
	for range 3 {
		res, err := m.Invoke(ctx, "hello", map[string]string{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Cold || res.Instance != first.Instance {
			t.Errorf("warm call: cold=%v on %s, want warm on %s", res.Cold, res.Instance, first.Instance)
		}
		if got := res.Output.(map[string]any)["greeting"]; got != "Hello, world!" {
			t.Errorf("output = %v", res.Output)
		}
	}
	created := m.Events("hello")[0]
	if created.Kind != function.EventCreated || created.Phases != first.ColdStart {
		t.Errorf("first event = %+v, want created with the cold start's phases", created)
	}
}

func TestReactorKeepsStateBetweenCalls(t *testing.T) {
	m := newManager(t, newRuntime(t, ""), &function.Spec{Name: "guest", Artifact: built(t, guestFn)})
	for want := 1.0; want <= 3; want++ {
		res, err := m.Invoke(context.Background(), "guest", map[string]any{"op": "echo", "value": []int{1, 2}})
		if err != nil {
			t.Fatal(err)
		}
		out := res.Output.(map[string]any)
		if out["calls"] != want || fmt.Sprint(out["value"]) != "[1 2]" {
			t.Errorf("call %v: output %v", want, out)
		}
	}
}

func TestCommandModule(t *testing.T) {
	m := newManager(t, newRuntime(t, ""), &function.Spec{Name: "hello-wasi", Artifact: built(t, helloWASI)})
	first, err := m.Invoke(context.Background(), "hello-wasi", map[string]string{"name": "Grace"})
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Output.(map[string]any)["greeting"]; got != "Hello, Grace!" || !first.Cold || first.ColdStart.Compile <= 0 {
		t.Errorf("first call: %+v", first)
	}
	second, err := m.Invoke(context.Background(), "hello-wasi", map[string]string{"name": "Linus"})
	if err != nil {
		t.Fatal(err)
	}
	if got := second.Output.(map[string]any)["greeting"]; got != "Hello, Linus!" || second.Cold {
		t.Errorf("second call: %+v", second)
	}
}

func TestTimeoutStopsAnInfiniteLoopWhileOtherCallsSucceed(t *testing.T) {
	m := newManager(t, newRuntime(t, ""), &function.Spec{
		Name: "loop", Artifact: built(t, loopFn),
		Limits: function.Limits{Timeout: function.Duration(300 * time.Millisecond), MaxInstances: 3},
	})
	ctx := context.Background()
	// Warm up so the timeout is not spent on the cold start.
	if _, err := m.Invoke(ctx, "loop", map[string]int{"iterations": 1}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var loopErr error
	var loopTook time.Duration
	go func() {
		defer wg.Done()
		begin := time.Now()
		_, loopErr = m.Invoke(ctx, "loop", map[string]int{})
		loopTook = time.Since(begin)
	}()
	for i := range 20 {
		res, err := m.Invoke(ctx, "loop", map[string]int{"iterations": 1000})
		if err != nil {
			t.Fatalf("bounded call %d: %v", i, err)
		}
		if res.Output.(map[string]any)["iterations"] != 1000.0 {
			t.Fatalf("bounded call %d: %v", i, res.Output)
		}
	}
	wg.Wait()
	wantProblem(t, loopErr, problem.TypeTimeout, "300ms")
	if loopTook > 5*time.Second {
		t.Errorf("the endless call returned after %s", loopTook)
	}
	// The stopped instance was replaced; the function still serves.
	if _, err := m.Invoke(ctx, "loop", map[string]int{"iterations": 10}); err != nil {
		t.Fatal(err)
	}
	evicted := 0
	for _, e := range m.Events("loop") {
		if e.Kind == function.EventEvicted && e.Reason == function.ReasonUnhealthy {
			evicted++
		}
	}
	if evicted != 1 {
		t.Errorf("%d instances evicted as unhealthy, want 1", evicted)
	}
}

// Hand-assembled modules for the failures Go cannot produce.
var (
	// trapModule is a WASI command whose _start executes `unreachable`.
	trapModule = []byte{
		0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
		0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: func()
		0x03, 0x02, 0x01, 0x00, // function 0 has type 0
		0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00, // export _start
		0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b, // body: unreachable; end
	}
	// emptyModule exports nothing.
	emptyModule = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	// foreignImportModule imports env.foo, which Baton does not provide.
	foreignImportModule = []byte{
		0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
		0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
		0x02, 0x0b, 0x01, 0x03, 'e', 'n', 'v', 0x03, 'f', 'o', 'o', 0x00, 0x00,
	}
	// bigMemoryModule declares 100 pages of memory at least.
	bigMemoryModule = []byte{
		0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
		0x05, 0x03, 0x01, 0x00, 0x64, // memory: min 100 pages
	}
)

func TestBadModules(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		content  []byte
		memory   int64
		wantType string
		detail   string
	}{
		{"not wasm", []byte("#!/bin/sh\necho '{}'\n"), 0, problem.TypeConfiguration, "not a WebAssembly module"},
		{"truncated", trapModule[:20], 0, problem.TypeConfiguration, "invalid WebAssembly module"},
		{"no entry point", emptyModule, 0, problem.TypeConfiguration, "neither baton_handle"},
		{"foreign import", foreignImportModule, 0, problem.TypeConfiguration, "env.foo"},
		{"memory over the limit", bigMemoryModule, 1 << 20, problem.TypeConfiguration, "invalid WebAssembly module"},
		{"trap", trapModule, 0, problem.TypeRuntime, "unreachable"},
	}
	rt := newRuntime(t, "")
	var specs []*function.Spec
	for i, tc := range tests {
		path := filepath.Join(dir, fmt.Sprintf("m%d.wasm", i))
		if err := os.WriteFile(path, tc.content, 0o644); err != nil {
			t.Fatal(err)
		}
		specs = append(specs, &function.Spec{Name: fmt.Sprintf("m%d", i), Artifact: path, Limits: function.Limits{Memory: tc.memory}})
	}
	good := &function.Spec{Name: "good", Artifact: built(t, helloWASI)}
	m := newManager(t, rt, append(specs, good)...)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Invoke(context.Background(), specs[i].Name, map[string]any{})
			wantProblem(t, err, tc.wantType, tc.detail)
			// Baton keeps serving other functions.
			if _, err := m.Invoke(context.Background(), "good", map[string]any{}); err != nil {
				t.Fatalf("healthy function after a bad one: %v", err)
			}
		})
	}
}

func TestReactorFailures(t *testing.T) {
	tests := []struct {
		op       string
		memory   int64
		wantType string
		detail   []string
		replaced bool
	}{
		{"panic", 0, problem.TypeRuntime, []string{"panic: handler panicked"}, false},
		{"error", 0, problem.TypeRuntime, []string{"plain failure"}, false},
		{"fail", 0, problem.TypeValidation, []string{"not acceptable"}, false},
		{"crash", 0, problem.TypeRuntime, []string{"trapped", "crash on another goroutine"}, true},
		{"oom", 32 << 20, problem.TypeRuntime, []string{"out of memory"}, true},
	}
	rt := newRuntime(t, "")
	artifact := built(t, guestFn)
	for _, tc := range tests {
		t.Run(tc.op, func(t *testing.T) {
			m := newManager(t, rt, &function.Spec{Name: "guest", Artifact: artifact, Limits: function.Limits{Memory: tc.memory}})
			ctx := context.Background()
			if _, err := m.Invoke(ctx, "guest", map[string]string{"op": "echo"}); err != nil {
				t.Fatal(err)
			}
			_, err := m.Invoke(ctx, "guest", map[string]string{"op": tc.op})
			p := wantProblem(t, err, tc.wantType, tc.detail...)
			if tc.op == "fail" && p.Status != 422 {
				t.Errorf("status %d, want the guest's 422", p.Status)
			}
			res, err := m.Invoke(ctx, "guest", map[string]string{"op": "echo"})
			if err != nil {
				t.Fatalf("call after %s: %v", tc.op, err)
			}
			if res.Cold != tc.replaced {
				t.Errorf("call after %s: cold=%v, want %v", tc.op, res.Cold, tc.replaced)
			}
		})
	}
}

func TestCommandFailures(t *testing.T) {
	m := newManager(t, newRuntime(t, ""), &function.Spec{Name: "cmd", Artifact: built(t, commandFn)})
	ctx := context.Background()
	_, err := m.Invoke(ctx, "cmd", map[string]string{"op": "badjson"})
	wantProblem(t, err, problem.TypeRuntime, "invalid JSON", "this is not JSON")
	_, err = m.Invoke(ctx, "cmd", map[string]string{"op": "exit"})
	wantProblem(t, err, problem.TypeRuntime, "exited with code 3", "giving up on purpose")
	res, err := m.Invoke(ctx, "cmd", map[string]string{"op": "nothing"})
	if err != nil || res.Output != nil {
		t.Fatalf("empty output: %+v, %v; want null", res, err)
	}
	res, err = m.Invoke(ctx, "cmd", map[string]any{"op": "echo", "value": 42})
	if err != nil || res.Output.(map[string]any)["value"] != 42.0 {
		t.Fatalf("echo after failures: %+v, %v", res, err)
	}
}

func TestDefaultDenyAndGrants(t *testing.T) {
	t.Setenv("HOME", "/home/secret")
	t.Setenv("GREETING", "from the host")
	artifact := built(t, guestFn)
	shared := t.TempDir()
	tests := []struct {
		name      string
		spec      function.Spec
		wantEnv   string
		wantFiles string
	}{
		{"nothing granted", function.Spec{}, "|", "denied"},
		{"env and host env", function.Spec{Env: map[string]string{"GREETING": "hi"}, Permissions: function.Permissions{HostEnv: []string{"HOME"}}}, "hi|/home/secret", "denied"},
		{"directory", function.Spec{Permissions: function.Permissions{Dirs: []function.DirGrant{{Host: shared, Guest: "/", ReadOnly: true}}}}, "|", "allowed"},
	}
	rt := newRuntime(t, "")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.Name, spec.Artifact = "guest", artifact
			m := newManager(t, rt, &spec)
			res, err := m.Invoke(context.Background(), "guest", map[string]string{"op": "env"})
			if err != nil {
				t.Fatal(err)
			}
			out := res.Output.(map[string]any)
			if out["env"] != tc.wantEnv && !(tc.wantEnv == "|" && out["env"] == nil) {
				t.Errorf("env = %v, want %q", out["env"], tc.wantEnv)
			}
			if out["files"] != tc.wantFiles {
				t.Errorf("files = %v, want %s", out["files"], tc.wantFiles)
			}
		})
	}
	cmd := newManager(t, rt, &function.Spec{Name: "cmd", Artifact: built(t, commandFn)})
	res, err := cmd.Invoke(context.Background(), "cmd", map[string]string{"op": "files"})
	if err != nil || res.Output.(map[string]any)["denied"] != true {
		t.Fatalf("command module reading /: %+v, %v; want denied", res, err)
	}
}

// TestDiskCacheIsReused checks that a second runtime over the same cache
// directory finds the compiled module there instead of adding its own.
// How much faster that is, BenchmarkColdStart reports (compile-ms/op of
// compile-empty-cache against compile-disk-cache).
func TestDiskCacheIsReused(t *testing.T) {
	cache := t.TempDir()
	spec := &function.Spec{Name: "hello", Version: "1", Runtime: function.KindWasm, Artifact: built(t, helloGo)}
	start := func() {
		rt := newRuntime(t, cache)
		inst, _, err := rt.Start(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		out, err := inst.Invoke(context.Background(), json.RawMessage(`{"name":"cache"}`))
		if err != nil || !strings.Contains(string(out), "Hello, cache!") {
			t.Fatalf("Invoke = %s, %v", out, err)
		}
		inst.Close(context.Background())
		rt.Close(context.Background())
	}
	listing := func() map[string]int64 {
		files := map[string]int64{}
		err := filepath.WalkDir(cache, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			files[path] = info.Size()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return files
	}
	start()
	first := listing()
	if len(first) == 0 {
		t.Fatal("the compilation cache is empty after a compile")
	}
	start()
	if second := listing(); !reflect.DeepEqual(first, second) {
		t.Errorf("the second runtime changed the cache:\nbefore %v\nafter  %v", first, second)
	}
}

func TestRetireReleasesCompiledModule(t *testing.T) {
	rt := newRuntime(t, "")
	spec := &function.Spec{Name: "hello", Version: "1", Runtime: function.KindWasm, Artifact: built(t, helloWASI)}
	inst, _, err := rt.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	rt.Retire(spec)
	rt.mu.Lock()
	kept := len(rt.modules)
	rt.mu.Unlock()
	if kept != 1 {
		t.Fatalf("%d modules cached while an instance runs, want 1", kept)
	}
	// The running instance still works.
	if _, err := inst.Invoke(context.Background(), json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	inst.Close(context.Background())
	rt.mu.Lock()
	kept = len(rt.modules)
	rt.mu.Unlock()
	if kept != 0 {
		t.Errorf("%d modules cached after the last instance closed, want 0", kept)
	}
}

func TestBuildGoRejectsBrokenCode(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module broken\n\ngo 1.26\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { undefined() }\n"), 0o644)
	err := function.BuildGo(context.Background(), dir, filepath.Join(dir, "out.wasm"))
	if err == nil || !strings.Contains(err.Error(), "undefined") {
		t.Fatalf("BuildGo = %v, want the compiler's message", err)
	}
}

func TestPrecompileLeavesOnlyInstantiation(t *testing.T) {
	rt := newRuntime(t, "")
	spec := &function.Spec{Name: "hello", Version: "1", Runtime: function.KindWasm, Artifact: built(t, helloGo)}
	if err := rt.Precompile(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	modules := func() int {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		return len(rt.modules)
	}
	if n := modules(); n != 1 {
		t.Fatalf("%d modules compiled by Precompile, want 1", n)
	}
	// Start finds the compiled module: compiling is a map lookup now, and
	// instantiating and initialising the Go runtime are the cold start
	// (BenchmarkColdStart/after-precompile reports how long each takes).
	inst, _, err := rt.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(context.Background())
	if n := modules(); n != 1 {
		t.Errorf("%d modules after starting the precompiled one, want 1", n)
	}
	bad := &function.Spec{Name: "bad", Version: "1", Runtime: function.KindWasm, Artifact: filepath.Join(t.TempDir(), "missing.wasm")}
	if err := rt.Precompile(context.Background(), bad); err == nil {
		t.Error("Precompile of a missing module succeeded")
	}
}
