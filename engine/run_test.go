package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// runDoc applies a workflow document and runs it to its end.
func runDoc(t *testing.T, e *engine.Engine, doc string, input any) *store.Invocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wf, err := e.ApplyWorkflow(ctx, "test.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	inv, err := e.Invoke(ctx, wf.Namespace, wf.Name, wf.Version, input)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	done, err := e.Wait(ctx, inv.ID)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return done
}

// taskDoc wraps one task definition (YAML, indented for a do list entry)
// into a workflow document with a unique name.
func taskDoc(name, task string) string {
	return fmt.Sprintf("document: {dsl: '1.0.3', namespace: test, name: %s, version: '1.0.0'}\ndo:\n  - %s:\n%s", name, name, task)
}

func mustComplete(t *testing.T, inv *store.Invocation) any {
	t.Helper()
	if inv.Status != core.StatusCompleted {
		t.Fatalf("status %s, error %v", inv.Status, inv.Error)
	}
	return inv.Output
}

func mustFault(t *testing.T, inv *store.Invocation, typ string) *problem.Problem {
	t.Helper()
	if inv.Status != core.StatusFaulted || inv.Error == nil {
		t.Fatalf("status %s, output %v: want a fault", inv.Status, inv.Output)
	}
	if !problem.SameType(inv.Error.Type, typ) {
		t.Fatalf("error type %s (%v), want %s", inv.Error.Type, inv.Error, typ)
	}
	return inv.Error
}

type recordingPublisher struct {
	mu     sync.Mutex
	events []map[string]any
	err    error
}

func (p *recordingPublisher) Publish(_ context.Context, event map[string]any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.events = append(p.events, event)
	return nil
}

const emitTask = `      emit:
        event:
          with:
            source: https://example.com/orders
            type: com.example.order.placed.v1
            subject: ${ .order }
            data:
              order: ${ .order }
`

func TestEmitBuildsAndPublishesCloudEvent(t *testing.T) {
	pub := &recordingPublisher{}
	e := newEngine(t, openStore(t, t.TempDir()), func(o *engine.Options) { o.Events = pub })
	defer e.Close()
	before := time.Now().Add(-time.Second)
	inv := runDoc(t, e, taskDoc("emitter", emitTask), map[string]any{"order": "o-1"})
	event, ok := mustComplete(t, inv).(map[string]any)
	if !ok {
		t.Fatalf("output %T", inv.Output)
	}
	for key, want := range map[string]any{
		"specversion": "1.0", "source": "https://example.com/orders", "type": "com.example.order.placed.v1",
		"subject": "o-1", "datacontenttype": "application/json", "data": map[string]any{"order": "o-1"},
	} {
		if !reflect.DeepEqual(event[key], want) {
			t.Errorf("%s = %v, want %v", key, event[key], want)
		}
	}
	if id, _ := event["id"].(string); len(id) != 36 {
		t.Errorf("id %v is not a UUID", event["id"])
	}
	at, err := time.Parse(time.RFC3339Nano, event["time"].(string))
	if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("time %v (%v)", event["time"], err)
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	// The bus also carries the invocation's lifecycle events.
	var emitted []map[string]any
	for _, ev := range pub.events {
		if typ, _ := ev["type"].(string); !strings.HasPrefix(typ, "io.serverlessworkflow.") {
			emitted = append(emitted, ev)
		}
	}
	if len(emitted) != 1 || !reflect.DeepEqual(emitted[0], event) {
		t.Fatalf("published %v, output %v", pub.events, event)
	}
}

func TestEmitWithoutPublisherRecordsEventInHistory(t *testing.T) {
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	inv := runDoc(t, e, taskDoc("emitter", emitTask), map[string]any{"order": "o-2"})
	out := mustComplete(t, inv).(map[string]any)
	hist, err := e.History(context.Background(), inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range hist {
		if ev.Type == core.TaskCompleted {
			if ev.Output.(map[string]any)["id"] != out["id"] {
				t.Fatalf("history has %v, output %v", ev.Output, out)
			}
			return
		}
	}
	t.Fatalf("no TaskCompleted in %+v", hist)
}

func TestEmitPublisherFailureFaults(t *testing.T) {
	pub := &recordingPublisher{err: errors.New("broker down")}
	e := newEngine(t, openStore(t, t.TempDir()), func(o *engine.Options) { o.Events = pub })
	defer e.Close()
	inv := runDoc(t, e, taskDoc("emitter", emitTask), map[string]any{"order": "o-3"})
	p := mustFault(t, inv, problem.TypeCommunication)
	if !strings.Contains(p.Detail, "broker down") {
		t.Fatalf("detail %q", p.Detail)
	}
}

func TestEmitKeepsGivenAttributes(t *testing.T) {
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	inv := runDoc(t, e, taskDoc("emitter", `      emit:
        event:
          with:
            id: fixed-id
            source: s
            type: t
            time: '2024-01-02T03:04:05Z'
            datacontenttype: text/plain
            data: hello
            traceparent: abc
`), nil)
	out := mustComplete(t, inv).(map[string]any)
	want := map[string]any{"id": "fixed-id", "source": "s", "type": "t", "time": "2024-01-02T03:04:05Z",
		"datacontenttype": "text/plain", "data": "hello", "traceparent": "abc", "specversion": "1.0"}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("got %v\nwant %v", out, want)
	}
}

func shellTask(command, extra string) string {
	return fmt.Sprintf("      run:\n        shell:\n          command: %s\n%s", strconv.Quote(command), extra)
}

func TestRunShell(t *testing.T) {
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	cases := []struct {
		name  string
		task  string
		input any
		want  any
	}{
		{"text stdout", shellTask("echo hello", ""), nil, "hello"},
		{"number stays text", shellTask("echo 007", ""), nil, "007"},
		{"json stdout", shellTask(`echo '{"a": [1, 2]}'`, ""), nil, map[string]any{"a": []any{1.0, 2.0}}},
		{"stderr", shellTask("echo out; echo err >&2", "        return: stderr\n"), nil, "err"},
		{"code", shellTask("exit 3", "        return: code\n"), nil, 3.0},
		{"all", shellTask("echo out; echo err >&2; exit 2", "        return: all\n"), nil,
			map[string]any{"code": 2.0, "stdout": "out", "stderr": "err"}},
		{"stderr of a failed command", shellTask("echo out; echo 'no such file' >&2; exit 1", "        return: stderr\n"), nil, "no such file"},
		{"code of a successful command", shellTask("true", "        return: code\n"), nil, 0.0},
		{"all trims every trailing line break", shellTask("printf 'a\\n\\n'; printf 'b\\r\\n' >&2", "        return: all\n"), nil,
			map[string]any{"code": 0.0, "stdout": "a", "stderr": "b"}},
		{"none", shellTask("echo ignored", "        return: none\n"), nil, nil},
		{"arguments and stdin", shellTask(`input=$(cat); echo "$input $1 $2"`,
			"          stdin: ${ .message }\n          arguments: [Foo, '${ .second }']\n"),
			map[string]any{"message": "Hello", "second": "Bar"}, "Hello Foo Bar"},
		{"environment", shellTask(`echo "$GREETING/$BATON_TEST_PRIVATE"`,
			"          environment:\n            GREETING: ${ .greeting }\n"),
			map[string]any{"greeting": "hi"}, "hi/"},
	}
	t.Setenv("BATON_TEST_PRIVATE", "engine-secret")
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv := runDoc(t, e, taskDoc("shell"+strconv.Itoa(i), c.task), c.input)
			if got := mustComplete(t, inv); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("output %#v, want %#v", got, c.want)
			}
		})
	}
}

func TestRunShellNonZeroExitFaultsWithStderr(t *testing.T) {
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	inv := runDoc(t, e, taskDoc("failing", shellTask("echo partial; echo 'disk full' >&2; exit 4", "")), nil)
	p := mustFault(t, inv, problem.TypeRuntime)
	if !strings.Contains(p.Detail, "code 4") || !strings.Contains(p.Detail, "disk full") || p.Instance != "/do/0/failing" {
		t.Fatalf("error %+v", p)
	}
	// return: none asks for nothing, so the fault is the only news.
	inv = runDoc(t, e, taskDoc("failingQuietly", shellTask("exit 3", "        return: none\n")), nil)
	if p := mustFault(t, inv, problem.TypeRuntime); !strings.Contains(p.Detail, "code 3") {
		t.Fatalf("error %+v", p)
	}
}

func TestRunShellTimeoutKillsProcessGroup(t *testing.T) {
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	pidFile := filepath.Join(t.TempDir(), "pid")
	task := shellTask(fmt.Sprintf("sleep 30 & echo $! > %s; wait", pidFile), "") +
		"      timeout: {after: {milliseconds: 500}}\n"
	started := time.Now()
	inv := runDoc(t, e, taskDoc("sleeper", task), nil)
	mustFault(t, inv, problem.TypeTimeout)
	if time.Since(started) > 10*time.Second {
		t.Fatalf("the timeout took %v", time.Since(started))
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the shell's child %d survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunShellDetached(t *testing.T) {
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	marker := filepath.Join(t.TempDir(), "done")
	task := shellTask(fmt.Sprintf("sleep 0.3; echo ok > %s", marker), "        await: false\n")
	inv := runDoc(t, e, taskDoc("detached", task), map[string]any{"keep": "me"})
	if got := mustComplete(t, inv); !reflect.DeepEqual(got, map[string]any{"keep": "me"}) {
		t.Fatalf("output %v, want the input", got)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the workflow waited for the detached process")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(marker); err == nil && strings.TrimSpace(string(b)) == "ok" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the detached process did not run")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func scriptTask(language, code, extra string) string {
	return fmt.Sprintf("      run:\n        script:\n          language: %s\n          code: %s\n%s", language, strconv.Quote(code), extra)
}

func TestRunScriptJavaScript(t *testing.T) {
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	cases := []struct {
		name  string
		task  string
		input any
		want  any
	}{
		{"console output", scriptTask("js", `console.log("hello", 42)`, ""), nil, "hello 42"},
		{"json console output", scriptTask("javascript", `console.log(JSON.stringify({sum: 1 + 2}))`, ""), nil, map[string]any{"sum": 3.0}},
		{"completion value", scriptTask("js", `const xs = [1, 2, 3]; ({total: xs.reduce((a, b) => a + b, 0)})`, ""), nil, map[string]any{"total": 6.0}},
		{"argv env stdin", scriptTask("js",
			`const [_, __, a, b] = process.argv; console.log(a + b + process.env.foo + process.stdin.read())`,
			"          arguments: [x, '${ .y }']\n          environment: {foo: bar}\n          stdin: in\n"),
			map[string]any{"y": "Y"}, "xYbarin"},
		{"exit code", scriptTask("js", `console.error("bad"); process.exit(5); console.log("never")`, "        return: all\n"), nil,
			map[string]any{"code": 5.0, "stdout": "", "stderr": "bad"}},
		{"stderr of a failed script", scriptTask("js", `console.error("bad input"); process.exit(2)`, "        return: stderr\n"), nil, "bad input"},
		{"stdout write", scriptTask("js", `process.stdout.write("a"); process.stdout.write("b")`, ""), nil, "ab"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv := runDoc(t, e, taskDoc("script"+strconv.Itoa(i), c.task), c.input)
			if got := mustComplete(t, inv); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("output %#v, want %#v", got, c.want)
			}
		})
	}
}

func TestRunScriptJavaScriptFailures(t *testing.T) {
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	t.Run("uncaught exception", func(t *testing.T) {
		inv := runDoc(t, e, taskDoc("throws", scriptTask("js", `throw new Error("no pets today")`, "")), nil)
		if p := mustFault(t, inv, problem.TypeRuntime); !strings.Contains(p.Detail, "no pets today") {
			t.Fatalf("error %+v", p)
		}
	})
	t.Run("syntax error", func(t *testing.T) {
		inv := runDoc(t, e, taskDoc("syntax", scriptTask("js", `function (`, "")), nil)
		mustFault(t, inv, problem.TypeConfiguration)
	})
	t.Run("endless loop is interrupted by the timeout", func(t *testing.T) {
		task := scriptTask("js", `for (;;) {}`, "") + "      timeout: {after: {milliseconds: 300}}\n"
		inv := runDoc(t, e, taskDoc("loop", task), nil)
		mustFault(t, inv, problem.TypeTimeout)
	})
	t.Run("unknown language", func(t *testing.T) {
		inv := runDoc(t, e, taskDoc("cobol", scriptTask("cobol", `DISPLAY 'HI'`, "")), nil)
		mustFault(t, inv, problem.TypeConfiguration)
	})
}

func TestRunScriptSource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "greet.js")
	if err := os.WriteFile(file, []byte(`console.log("from file " + process.argv[2])`), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/greet.js" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`console.log("from http")`))
	}))
	defer srv.Close()
	e := newEngine(t, openStore(t, dir))
	defer e.Close()
	source := func(endpoint string) string {
		return fmt.Sprintf("      run:\n        script:\n          language: js\n          arguments: [arg]\n          source:\n            endpoint: %s\n", endpoint)
	}
	inv := runDoc(t, e, taskDoc("fromfile", source("file://"+file)), nil)
	if got := mustComplete(t, inv); got != "from file arg" {
		t.Fatalf("file: %v", got)
	}
	inv = runDoc(t, e, taskDoc("fromhttp", source(srv.URL+"/greet.js")), nil)
	if got := mustComplete(t, inv); got != "from http" {
		t.Fatalf("http: %v", got)
	}
	inv = runDoc(t, e, taskDoc("missing", source(srv.URL+"/missing.js")), nil)
	if p := mustFault(t, inv, problem.TypeCommunication); p.Status != 404 {
		t.Fatalf("missing source: %+v", p)
	}
}

func TestRunScriptPython(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is required under CI")
		}
		t.Skip("python3 is not installed")
	}
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	code := "import json, os, sys\nprint(json.dumps({'args': sys.argv[1:], 'env': os.environ.get('foo'), 'stdin': sys.stdin.read()}))"
	inv := runDoc(t, e, taskDoc("py", scriptTask("python", code,
		"          arguments: [a, b]\n          environment: {foo: bar}\n          stdin: hello\n")), nil)
	want := map[string]any{"args": []any{"a", "b"}, "env": "bar", "stdin": "hello"}
	if got := mustComplete(t, inv); !reflect.DeepEqual(got, want) {
		t.Fatalf("output %v, want %v", got, want)
	}
	inv = runDoc(t, e, taskDoc("pyfail", scriptTask("python", "raise SystemExit('boom')", "")), nil)
	if p := mustFault(t, inv, problem.TypeRuntime); !strings.Contains(p.Detail, "boom") {
		t.Fatalf("error %+v", p)
	}
}

const containerTask = `      run:
        container:
          image: alpine:3
          command: echo "$1"
          arguments: [hello]
          environment: {TOKEN: '${ .token }'}
          ports: {'8080': 80}
          volumes: {/data: /mnt/data}
          pullPolicy: always
`

func TestRunContainerWithoutRuntimeIsAConfigurationError(t *testing.T) {
	for _, runtime := range []string{"", "no-such-container-runtime"} {
		e := newEngine(t, openStore(t, t.TempDir()), func(o *engine.Options) { o.ContainerRuntime = runtime })
		inv := runDoc(t, e, taskDoc("box", containerTask), map[string]any{"token": "t"})
		p := mustFault(t, inv, problem.TypeConfiguration)
		if !strings.Contains(p.Detail, "container runtime") {
			t.Errorf("runtime %q: %+v", runtime, p)
		}
		e.Close()
	}
}

func TestRunContainerThroughRuntime(t *testing.T) {
	dir := t.TempDir()
	// A stand-in for docker that reports how it was called.
	fake := filepath.Join(dir, "fake-docker")
	script := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\necho \"TOKEN=$TOKEN\"\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, openStore(t, dir), func(o *engine.Options) { o.ContainerRuntime = fake })
	defer e.Close()
	inv := runDoc(t, e, taskDoc("box", containerTask), map[string]any{"token": "s3cret"})
	out, ok := mustComplete(t, inv).(string)
	if !ok {
		t.Fatalf("output %T", inv.Output)
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 4 || lines[0] != "run" || lines[1] != "--rm" || lines[2] != "--name" ||
		!strings.HasPrefix(lines[3], "box-") || !strings.HasSuffix(lines[3], ".test-box") {
		t.Fatalf("argv %q", lines)
	}
	want := []string{"--pull=always", "-e", "TOKEN", "-p", "8080:80", "-v", "/data:/mnt/data",
		"--entrypoint", "/bin/sh", "alpine:3", "-c", `echo "$1"`, "sh", "hello", "TOKEN=s3cret"}
	if !reflect.DeepEqual(lines[4:], want) {
		t.Fatalf("argv tail %q\nwant %q", lines[4:], want)
	}
}
