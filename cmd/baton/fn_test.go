package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/api"
)

// examplesDir holds the example functions, relative to this package.
var examplesDir = filepath.Join("..", "..", "examples", "functions")

// goEnv passes the go command's caches to `baton fn build`, which the
// tests run with a fresh HOME: without them every build would compile
// the standard library for wasip1 again.
var goEnv = sync.OnceValue(func() []string {
	out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH", "GOPROXY", "GOFLAGS", "GOTOOLCHAIN").Output()
	if err != nil {
		return nil
	}
	names := []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOPROXY", "GOFLAGS", "GOTOOLCHAIN"}
	var env []string
	for i, v := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if i < len(names) && v != "" {
			env = append(env, names[i]+"="+v)
		}
	}
	return env
})

// builtModules caches the modules `baton fn build` made, so each example
// is built once per test binary; they live next to the binary, which
// TestMain removes.
var (
	buildMu      sync.Mutex
	builtModules = map[string]string{}
)

func buildExample(t *testing.T, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if path, ok := builtModules[name]; ok {
		return path
	}
	out := filepath.Join(filepath.Dir(batonBinary), name+".wasm")
	res := baton(t, goEnv(), "fn", "build", filepath.Join(examplesDir, name), "-O", out)
	if res.code != 0 || !strings.HasPrefix(res.stdout, "built "+out+" in ") || res.stderr != "" {
		t.Fatalf("fn build %s: %+v", name, res)
	}
	head := make([]byte, 4)
	if f, err := os.Open(out); err != nil {
		t.Fatal(err)
	} else {
		_, err = io.ReadFull(f, head)
		f.Close()
		if err != nil || string(head) != "\x00asm" {
			t.Fatalf("fn build wrote no WebAssembly module: %q, %v", head, err)
		}
	}
	builtModules[name] = out
	return out
}

func decodeResult(t *testing.T, res result) api.FunctionResult {
	t.Helper()
	if res.code != 0 {
		t.Fatalf("fn invoke: %+v", res)
	}
	var r api.FunctionResult
	if err := json.Unmarshal([]byte(res.stdout), &r); err != nil {
		t.Fatalf("fn invoke -o json printed %q: %v", res.stdout, err)
	}
	return r
}

const greetWorkflow = `document: {dsl: '1.0.0', namespace: default, name: greet, version: '1.0.0'}
do:
  - greet:
      call: hello
      with:
        name: ${ .user.name }
  - shout:
      set:
        loud: ${ .greeting | ascii_upcase }
`

// TestFunctions goes through the life of functions as a user would: build
// the examples, deploy them into a data directory, call them locally and
// from a workflow, then serve the directory and call them warm, with a
// runaway function stopped by its timeout while the others keep serving.
// One data directory serves every step, so each module is compiled once.
func TestFunctions(t *testing.T) {
	data := t.TempDir()
	hello := buildExample(t, "hello-go")
	loop := buildExample(t, "loop")

	t.Run("local", func(t *testing.T) {
		baton(t, nil, "fn", "deploy", "hello", "--wasm", hello, "--memory", "64MiB", "--data", data).
			expect(t, 0, "function hello version 1 deployed\n", "")
		baton(t, nil, "fn", "deploy", "hello", "--wasm", hello, "--memory", "64MiB", "--data", data).
			expect(t, 0, "function hello version 1 deployed\n", "")
		baton(t, nil, "fn", "deploy", "loop", "--wasm", loop, "--timeout", "3s", "--keep-alive", "fixed:30m", "--data", data).
			expect(t, 0, "function loop version 1 deployed\n", "")
		if res := baton(t, nil, "fn", "deploy", "x", "--exec", "true", "--keep-alive", "lru", "--data", data); res.code != 1 ||
			!strings.Contains(res.stderr, `keep-alive "lru" must be one of on-demand, fixed, hybrid, baton, baton+hybrid`) {
			t.Fatalf("deploy with an unknown keep-alive: %+v", res)
		}

		cold := decodeResult(t, baton(t, nil, "fn", "invoke", "hello", "--input", `{"name":"Ada"}`, "-o", "json", "--data", data))
		if compact(cold.Output) != `{"greeting":"Hello, Ada!"}` || !cold.Cold || cold.ColdStart == nil || cold.ColdStart.CompileMs <= 0 {
			t.Fatalf("first local call %+v: want a cold start with a compilation", cold)
		}
		t.Logf("local invoke, empty compile cache: cold start %+v", *cold.ColdStart)
		cached := decodeResult(t, baton(t, nil, "fn", "invoke", "hello", "--input", `{"name":"Ada"}`, "-o", "json", "--data", data))
		if !cached.Cold || cached.ColdStart.CompileMs >= cold.ColdStart.CompileMs {
			t.Fatalf("second local call %+v: want a cold start compiling faster from the disk cache than %vms", cached, cold.ColdStart.CompileMs)
		}
		t.Logf("local invoke, disk compile cache: cold start %+v", *cached.ColdStart)
		baton(t, nil, "fn", "invoke", "hello", "--input", `{"name":"Bob"}`, "--data", data).
			expect(t, 0, "{\"greeting\":\"Hello, Bob!\"}\n", "")

		wf := writeFile(t, t.TempDir(), "greet.yaml", greetWorkflow)
		baton(t, nil, "run", wf, "--input", `{"user":{"name":"Grace"}}`, "--data", data).
			expect(t, 0, "{\"loud\":\"HELLO, GRACE!\"}\n", "")

		res := baton(t, nil, "fn", "list", "--data", data)
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		if res.code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[1], "hello ") || !strings.Contains(lines[1], " wasm ") ||
			!strings.HasPrefix(lines[2], "loop ") {
			t.Fatalf("fn list: %+v", res)
		}
		res = baton(t, nil, "fn", "get", "hello", "--data", data)
		if res.code != 0 || !strings.Contains(squash(res.stdout), "MODULE sha256:") || !strings.Contains(res.stdout, "memory 64MiB, timeout 30s") {
			t.Fatalf("fn get: %+v", res)
		}
		if res := baton(t, nil, "fn", "get", "loop", "--data", data); !strings.Contains(squash(res.stdout), "KEEP-ALIVE fixed:30m") {
			t.Fatalf("fn get loop: %+v", res)
		}
		baton(t, nil, "fn", "get", "nobody", "--data", data).expect(t, 1, "", "baton: function nobody not found\n")
		baton(t, nil, "fn", "invoke", "nobody", "--data", data).expect(t, 1, "", "baton: function nobody not found\n")
		baton(t, nil, "fn", "deploy", "x", "--data", data).
			expect(t, 1, "", "baton: give exactly one of --wasm, --exec and --url\n")
	})

	t.Run("server", func(t *testing.T) {
		srv := startServer(t, data)
		defer srv.stop()
		env := srv.env()

		first := decodeResult(t, baton(t, env, "fn", "invoke", "hello", "--input", `{"name":"Ada"}`, "-o", "json"))
		second := decodeResult(t, baton(t, env, "fn", "invoke", "hello", "--input", `{"name":"Ada"}`, "-o", "json"))
		if !first.Cold || first.ColdStart == nil || second.Cold || second.ColdStart != nil || second.Instance != first.Instance {
			t.Fatalf("calls on a server: %+v then %+v: want cold then warm on the same instance", first, second)
		}
		// The server preloads deployed modules at boot; this call may
		// come before that ends, and then joins the load.
		t.Logf("server: first call cold start %+v, %.3fms in all; second call warm, %.3fms",
			*first.ColdStart, first.DurationMs, second.DurationMs)

		// A runaway call is stopped by its timeout while other calls
		// keep being served.
		runaway := make(chan result, 1)
		begin := time.Now()
		go func() { runaway <- runBaton(env, "fn", "invoke", "loop", "--input", `{}`) }()
		time.Sleep(300 * time.Millisecond) // let the runaway call start
		for i := range 3 {
			res := baton(t, env, "fn", "invoke", "hello", "--input", `{"name":"Eve"}`)
			if res.code != 0 || res.stdout != "{\"greeting\":\"Hello, Eve!\"}\n" {
				t.Fatalf("call %d during the runaway one: %+v", i, res)
			}
		}
		select {
		case res := <-runaway:
			t.Fatalf("the runaway call ended before the others were served: %+v", res)
		default:
		}
		res := <-runaway
		if res.code != 1 || res.stderr != "baton: function loop@1 did not answer within 3s\n" || time.Since(begin) > 15*time.Second {
			t.Fatalf("runaway call: %+v after %s", res, time.Since(begin))
		}
		baton(t, env, "fn", "invoke", "loop", "--input", `{"iterations":1000}`).
			expect(t, 0, "{\"iterations\":1000}\n", "")

		res = baton(t, env, "fn", "get", "loop")
		if res.code != 0 || !strings.Contains(res.stdout, "(unhealthy)") || !strings.Contains(squash(res.stdout), "INSTANCES 0 busy, 1 idle") {
			t.Fatalf("fn get loop: want the timed-out instance evicted as unhealthy and a new one idle: %+v", res)
		}

		metricsReq, _ := http.NewRequest(http.MethodGet, srv.url+"/metrics", nil)
		metricsReq.Header.Set("Authorization", "Bearer "+srv.token)
		resp, err := http.DefaultClient.Do(metricsReq)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`baton_function_invocations_total{function="hello"} 5`,
			`baton_function_errors_total{function="loop",type="timeout"} 1`,
			`baton_function_cold_starts_total{function="loop"} 2`,
			`go_goroutines `,
		} {
			if !bytes.Contains(body, []byte(want)) {
				t.Errorf("/metrics lacks %q", want)
			}
		}

		// Deploying through the server uploads the module.
		baton(t, env, "fn", "deploy", "hello2", "--wasm", hello, "--max-instances", "2", "--env", "GREETING=hi").
			expect(t, 0, "function hello2 version 1 deployed\n", "")
		baton(t, env, "fn", "invoke", "hello2", "--input", `{"name":"Up"}`).
			expect(t, 0, "{\"greeting\":\"Hello, Up!\"}\n", "")
		baton(t, env, "fn", "delete", "hello2").expect(t, 0, "function hello2 deleted\n", "")
		baton(t, env, "fn", "delete", "hello2").expect(t, 1, "", "baton: function hello2 not found\n")
	})

	t.Run("python", func(t *testing.T) {
		if _, err := exec.LookPath("python3"); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("python3 is needed for the process function example")
			}
			t.Skip("python3 is not installed")
		}
		// Process functions are off on a server unless its policy allows them.
		srv := startServerWith(t, data, "--allow-capabilities", "processFunctions")
		defer srv.stop()
		env := srv.env()
		baton(t, env, "fn", "deploy", "hello-py", "--exec", "python3 handler.py", "--dir", filepath.Join(examplesDir, "python")).
			expect(t, 0, "function hello-py version 1 deployed\n", "")
		first := decodeResult(t, baton(t, env, "fn", "invoke", "hello-py", "--input", `{"name":"Py"}`, "-o", "json"))
		second := decodeResult(t, baton(t, env, "fn", "invoke", "hello-py", "--input", `{"name":"Thon"}`, "-o", "json"))
		if compact(first.Output) != `{"greeting":"Hello, Py!","runtime":"python"}` || !first.Cold ||
			compact(second.Output) != `{"greeting":"Hello, Thon!","runtime":"python"}` || second.Cold {
			t.Fatalf("python calls: %+v then %+v", first, second)
		}
		t.Logf("python: cold start %+v, warm call %.3fms", *first.ColdStart, second.DurationMs)
		res := baton(t, env, "fn", "invoke", "hello-py", "--input", `"not an object"`)
		if res.code != 1 || !strings.Contains(res.stderr, "ValueError: input must be an object") {
			t.Fatalf("a failing python call: %+v", res)
		}
	})
}

// compact is JSON output without the indentation of -o json.
func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// squash collapses the blanks of table output, whose column widths
// depend on the longest cell.
func squash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// runBaton runs the binary from any goroutine: unlike baton it reports
// failures to start in the result instead of failing the test.
func runBaton(env []string, args ...string) result {
	cmd := exec.Command(batonBinary, args...)
	cmd.Env = append([]string{"TZ=UTC", "PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		return result{stderr: err.Error(), code: -1}
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func TestSplitCommandLine(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"python3 handler.py", []string{"python3", "handler.py"}, false},
		{"  sh  -c 'echo \"a b\"; exit 1' ", []string{"sh", "-c", `echo "a b"; exit 1`}, false},
		{`node "my fn.js" --flag=a\ b ''`, []string{"node", "my fn.js", "--flag=a b", ""}, false},
		{`a "b\"c"`, []string{"a", `b"c`}, false},
		{"", nil, true},
		{"'open", nil, true},
		{`trailing\`, nil, true},
	}
	for _, tt := range tests {
		got, err := splitCommandLine(tt.in)
		if (err != nil) != tt.err || strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("splitCommandLine(%q) = %q, %v; want %q (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}
