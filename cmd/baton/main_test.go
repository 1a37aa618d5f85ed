package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/api/apitest"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// batonBinary is built once by TestMain; the tests run it as a user would.
var batonBinary string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "baton-cli-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		batonBinary = filepath.Join(dir, "baton")
		build := exec.Command("go", "build", "-o", batonBinary, ".")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building baton:", err)
			return 1
		}
		return m.Run()
	}())
}

type result struct {
	stdout, stderr string
	code           int
	// invocation is the id `baton run` printed first on stderr, taken
	// off stderr so that tests compare what follows.
	invocation string
}

// runIDLine is the line `baton run` starts stderr with.
var runIDLine = regexp.MustCompile(`^invocation ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\n`)

// baton runs the binary with a clean environment: no BATON_* variables
// leak in from the developer's shell, and times print in UTC.
func baton(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(batonBinary, args...)
	cmd.Env = append([]string{"TZ=UTC", "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("running baton %v: %v", args, err)
	}
	res := result{stdout: stdout.String(), stderr: stderr.String(), code: code}
	if len(args) > 0 && args[0] == "run" {
		if m := runIDLine.FindStringSubmatch(res.stderr); m != nil {
			res.invocation, res.stderr = m[1], res.stderr[len(m[0]):]
		}
	}
	for _, forbidden := range []string{"goroutine ", "panic:", "Usage:"} {
		if strings.Contains(res.stderr, forbidden) {
			t.Fatalf("baton %v printed %q on stderr:\n%s", args, forbidden, res.stderr)
		}
	}
	return res
}

func (r result) expect(t *testing.T, code int, stdout, stderr string) {
	t.Helper()
	if r.code != code || r.stdout != stdout || r.stderr != stderr {
		t.Fatalf("got exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit %d\nstdout:\n%s\nstderr:\n%s",
			r.code, r.stdout, r.stderr, code, stdout, stderr)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func helloDoc(version string) string {
	return `document:
  dsl: '1.0.0'
  namespace: default
  name: hello
  version: '` + version + `'
do:
  - greet:
      set:
        greeting: ${ "Hello, " + .name + "!" }
`
}

const faultDoc = `document:
  dsl: '1.0.0'
  namespace: default
  name: fault
  version: '0.1.0'
do:
  - boom:
      raise:
        error:
          type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
          status: 500
          title: Boom
          detail: it broke
`

// brokenDoc has two problems: no document.version (line 2) and an unknown
// task type (line 7).
const brokenDoc = `document:
  dsl: '1.0.0'
  namespace: default
  name: broken
do:
  - first:
      frobnicate: true
`

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	hello := writeFile(t, dir, "hello.yaml", helloDoc("0.1.0"))
	broken := writeFile(t, dir, "broken.yaml", brokenDoc)
	badYAML := writeFile(t, dir, "bad.yaml", "document:\n  dsl: [1.0.0\n")
	missing := filepath.Join(dir, "missing.yaml")

	// The expected lines are the parser's findings, one per line, exactly
	// as dsl formats them.
	parserLines := func(file string) string {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, err = dsl.Parse(file, src)
		var list dsl.ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("dsl.Parse(%s) = %v, want errors", file, err)
		}
		var b strings.Builder
		for _, e := range list {
			b.WriteString(e.Error() + "\n")
		}
		return b.String()
	}

	baton(t, nil, "validate", hello).expect(t, 0, "", "")
	baton(t, nil, "validate", hello, hello).expect(t, 0, "", "")

	res := baton(t, nil, "validate", broken)
	res.expect(t, 1, "", parserLines(broken))
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], broken+":2:") || !strings.HasPrefix(lines[1], broken+":7:7: ") {
		t.Fatalf("want one file:line:col line per problem, got:\n%s", res.stderr)
	}

	baton(t, nil, "validate", hello, badYAML, missing, dir).expect(t, 1, "",
		parserLines(badYAML)+
			missing+": cannot read: no such file or directory\n"+
			dir+": cannot read: is a directory\n")
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"validate"}, "baton: requires at least 1 arg(s), only received 0\nRun 'baton validate --help' for usage.\n"},
		{[]string{"frobnicate"}, "baton: unknown command \"frobnicate\" for \"baton\"\nRun 'baton --help' for usage.\n"},
		{[]string{"run", "x.yaml", "--bogus"}, "baton: unknown flag: --bogus\nRun 'baton run --help' for usage.\n"},
		{[]string{"workflow", "get"}, "baton: accepts 1 arg(s), received 0\nRun 'baton workflow get --help' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			baton(t, nil, tt.args...).expect(t, 2, "", tt.stderr)
		})
	}
}

func TestVersion(t *testing.T) {
	res := baton(t, nil, "version")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "baton ") || !strings.Contains(res.stdout, "go1.") {
		t.Fatalf("version: %+v", res)
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	env := []string{"BATON_DATA=" + data}
	hello := writeFile(t, dir, "hello.yaml", helloDoc("0.1.0"))
	input := writeFile(t, dir, "input.json", `{"name": "File"}`)

	baton(t, env, "run", hello, "--input", `{"name": "Ada"}`).expect(t, 0, `{"greeting":"Hello, Ada!"}`+"\n", "")
	baton(t, env, "run", hello, "--input", "@"+input).expect(t, 0, `{"greeting":"Hello, File!"}`+"\n", "")
	if _, err := os.Stat(filepath.Join(data, "baton.db")); err != nil {
		t.Fatalf("BATON_DATA was not used: %v", err)
	}

	// Editing the document without bumping its version runs the edit.
	writeFile(t, dir, "hello.yaml", strings.Replace(helloDoc("0.1.0"), "Hello, ", "Hi, ", 1))
	baton(t, env, "run", hello, "--input", `{"name": "Ada"}`).expect(t, 0, `{"greeting":"Hi, Ada!"}`+"\n", "")

	// --data wins over BATON_DATA.
	other := filepath.Join(dir, "other")
	baton(t, env, "run", hello, "--data", other, "--input", `{"name": "B"}`).expect(t, 0, `{"greeting":"Hi, B!"}`+"\n", "")
	if _, err := os.Stat(filepath.Join(other, "baton.db")); err != nil {
		t.Fatalf("--data was not used: %v", err)
	}

	// A fault prints the problem document on stderr.
	fault := writeFile(t, dir, "fault.yaml", faultDoc)
	res := baton(t, env, "run", fault)
	if res.code != 1 || res.stdout != "" {
		t.Fatalf("fault: %+v", res)
	}
	var p problem.Problem
	if err := json.Unmarshal([]byte(res.stderr), &p); err != nil {
		t.Fatalf("stderr is not a problem document: %q", res.stderr)
	}
	if p.Title != "Boom" || p.Detail != "it broke" || p.Status != 500 || p.Instance != "/do/0/boom" {
		t.Fatalf("problem = %+v", p)
	}

	broken := writeFile(t, dir, "broken.yaml", brokenDoc)
	res = baton(t, env, "run", broken)
	if res.code != 1 || !strings.HasPrefix(res.stderr, broken+":2:") || strings.Count(res.stderr, "\n") != 2 {
		t.Fatalf("invalid document: %+v", res)
	}

	baton(t, env, "run", hello, "--input", "{nope").expect(t, 1, "",
		"baton: --input is not valid JSON: invalid character 'n' looking for beginning of object key string (at byte 2)\n")
	baton(t, env, "run", filepath.Join(dir, "missing.yaml")).expect(t, 1, "",
		"baton: cannot read "+filepath.Join(dir, "missing.yaml")+": no such file or directory\n")
	baton(t, env, "run", hello, "--input", "@"+filepath.Join(dir, "none.json")).expect(t, 1, "",
		"baton: reading the input: open "+filepath.Join(dir, "none.json")+": no such file or directory\n")
}

func TestServer(t *testing.T) {
	data := t.TempDir()
	cmd := exec.Command(batonBinary, "server", "--addr", "127.0.0.1:0", "--data", data)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the address: %v; stderr:\n%s", err, stderr.String())
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok || !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first line %q", line)
	}
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}

	dir := t.TempDir()
	// The CLI finds the local admin token the server left in the data
	// directory, as in the README's first steps.
	env := []string{"BATON_SERVER=" + url, "BATON_DATA=" + data}
	baton(t, env, "workflow", "apply", writeFile(t, dir, "hello.yaml", helloDoc("0.1.0"))).
		expect(t, 0, "NAMESPACE   NAME    VERSION\ndefault     hello   0.1.0\n", "")
	res := baton(t, env, "invoke", "hello", "--input", `{"name":"Srv"}`, "--wait", "-o", "json")
	if res.code != 0 || !strings.Contains(res.stdout, `"greeting": "Hello, Srv!"`) {
		t.Fatalf("invoke against the real server: %+v", res)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("server exited with %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("server did not shut down on SIGTERM")
	}
	if !strings.Contains(stderr.String(), "msg=stopped") {
		t.Fatalf("no shutdown log; stderr:\n%s", stderr.String())
	}
}

// fakeServer serves the API over the in-memory engine with a fixed clock,
// so tables print predictably.
func fakeServer(t *testing.T) (*apitest.Engine, []string) {
	t.Helper()
	e := apitest.NewEngine()
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var tick time.Duration
	e.Now = func() time.Time {
		// Each reading is a second later than the one before.
		tick += time.Second
		return start.Add(tick)
	}
	srv := httptest.NewServer(api.NewHandler(e))
	t.Cleanup(srv.Close)
	return e, []string{"BATON_SERVER=" + srv.URL}
}

func TestWorkflowCommands(t *testing.T) {
	_, env := fakeServer(t)
	dir := t.TempDir()
	v1 := writeFile(t, dir, "v1.yaml", helloDoc("0.1.0"))
	v2 := writeFile(t, dir, "v2.yaml", helloDoc("0.2.0"))
	broken := writeFile(t, dir, "broken.yaml", brokenDoc)
	conflicting := writeFile(t, dir, "conflict.yaml", strings.Replace(helloDoc("0.1.0"), "Hello", "Howdy", 1))

	baton(t, env, "workflow", "apply", v1, v2).
		expect(t, 0, "NAMESPACE   NAME    VERSION\ndefault     hello   0.1.0\ndefault     hello   0.2.0\n", "")

	// Failures are reported per file, the others are still applied.
	res := baton(t, env, "workflow", "apply", broken, conflicting, filepath.Join(dir, "missing.yaml"), v1, "-o", "json")
	if res.code != 1 {
		t.Fatalf("apply with failures: %+v", res)
	}
	var applied []api.WorkflowRef
	if err := json.Unmarshal([]byte(res.stdout), &applied); err != nil || len(applied) != 1 || applied[0].Version != "0.1.0" {
		t.Fatalf("applied = %s (%v)", res.stdout, err)
	}
	errLines := strings.Split(strings.TrimSuffix(res.stderr, "\n"), "\n")
	if len(errLines) != 4 ||
		!strings.HasPrefix(errLines[0], broken+":2:") || !strings.HasPrefix(errLines[1], broken+":7:7: do[0].first: ") ||
		errLines[2] != "baton: "+conflicting+": another document is already stored under the same namespace, name and version; change document.version to store a new version" ||
		errLines[3] != "baton: cannot read "+filepath.Join(dir, "missing.yaml")+": no such file or directory" {
		t.Fatalf("stderr:\n%s", res.stderr)
	}

	baton(t, env, "workflow", "list").expect(t, 0,
		"NAMESPACE   NAME    VERSION   FORMAT   CREATED\n"+
			"default     hello   0.1.0     dsl      2025-03-01T12:00:01Z\n"+
			"default     hello   0.2.0     dsl      2025-03-01T12:00:02Z\n", "")

	baton(t, env, "workflow", "get", "default/hello").expect(t, 0,
		"NAMESPACE   default\n"+
			"NAME        hello\n"+
			"VERSION     0.2.0\n"+
			"VERSIONS    0.1.0, 0.2.0\n"+
			"FORMAT      dsl\n"+
			"CREATED     2025-03-01T12:00:02Z\n", "")

	res = baton(t, env, "workflow", "get", "hello", "--version", "0.1.0", "-o", "json")
	var wf api.Workflow
	if err := json.Unmarshal([]byte(res.stdout), &wf); err != nil || wf.Version != "0.1.0" || wf.Source != helloDoc("0.1.0") {
		t.Fatalf("get -o json: %+v (%v)", res, err)
	}

	// YAML output holds the same data as JSON output.
	res = baton(t, env, "workflow", "get", "hello", "-o", "yaml")
	var fromYAML api.Workflow
	if err := yaml.Unmarshal([]byte(res.stdout), &fromYAML); err != nil {
		t.Fatalf("yaml output %q: %v", res.stdout, err)
	}
	if fromYAML.Version != "0.2.0" || fromYAML.Source != helloDoc("0.2.0") || !strings.HasPrefix(res.stdout, "namespace: default\nname: hello\n") {
		t.Fatalf("yaml output:\n%s", res.stdout)
	}

	baton(t, env, "workflow", "get", "default/nope").expect(t, 1, "", "baton: workflow default/nope not found\n")
	baton(t, env, "workflow", "get", "a/b/c").expect(t, 1, "", "baton: workflow \"a/b/c\": expected NAMESPACE/NAME or NAME\n")
	baton(t, env, "workflow", "list", "-o", "xml").expect(t, 1, "", "baton: unknown output format \"xml\": use table, json or yaml\n")

	baton(t, env, "workflow", "delete", "hello", "--version", "0.1.0").
		expect(t, 0, "deleted workflow default/hello version 0.1.0\n", "")
	baton(t, env, "workflow", "delete", "hello", "--version", "0.1.0").
		expect(t, 1, "", "baton: workflow default/hello version 0.1.0 not found\n")
	baton(t, env, "workflow", "delete", "default/hello").expect(t, 0, "deleted workflow default/hello (all versions)\n", "")
	baton(t, env, "workflow", "list", "-o", "json").expect(t, 0, "{\n  \"items\": []\n}\n", "")
}

func TestInvokeAndInvocationCommands(t *testing.T) {
	e, env := fakeServer(t)
	e.Decide = func(wf *store.Workflow, input any) *apitest.Outcome {
		switch {
		case wf.Name == "fault":
			return &apitest.Outcome{Status: core.StatusFaulted, Error: problem.Runtime("it broke").At("/do/0/boom")}
		case input == nil:
			return nil // stays running
		}
		return &apitest.Outcome{Status: core.StatusCompleted, Output: map[string]any{"echo": input}}
	}
	dir := t.TempDir()
	baton(t, env, "workflow", "apply", writeFile(t, dir, "hello.yaml", helloDoc("0.1.0")),
		writeFile(t, dir, "fault.yaml", faultDoc), "-o", "json")

	// Without --wait the id alone is printed, for scripts.
	baton(t, env, "invoke", "hello", "--input", `{"n":1}`).expect(t, 0, "inv-0001\n", "")
	baton(t, env, "invoke", "hello", "--input", `{"n":1}`, "-o", "json").expect(t, 0, "{\n  \"id\": \"inv-0002\"\n}\n", "")

	baton(t, env, "invoke", "default/hello", "--input", `{"n":3}`, "--wait").expect(t, 0,
		"ID         inv-0003\n"+
			"WORKFLOW   default/hello\n"+
			"VERSION    0.1.0\n"+
			"STATUS     completed\n"+
			"STARTED    2025-03-01T12:00:07Z\n"+
			"ENDED      2025-03-01T12:00:08Z\n"+
			"DURATION   1s\n"+
			"INPUT      {\"n\":3}\n"+
			"OUTPUT     {\"echo\":{\"n\":3}}\n", "")

	input := writeFile(t, dir, "input.json", `[1, 2]`)
	res := baton(t, env, "invoke", "hello", "--input", "@"+input, "--wait", "10s", "-o", "json")
	var inv api.Invocation
	if err := json.Unmarshal([]byte(res.stdout), &inv); err != nil || res.code != 0 || inv.Status != core.StatusCompleted {
		t.Fatalf("invoke --wait 10s -o json: %+v (%v)", res, err)
	}

	res = baton(t, env, "invoke", "fault", "--wait")
	if res.code != 1 || !strings.Contains(res.stdout, "STATUS     faulted\n") ||
		!strings.Contains(res.stdout, "ERROR      /do/0/boom: Runtime Error (500): it broke\n") ||
		res.stderr != "baton: invocation inv-0005 faulted: it broke\n" {
		t.Fatalf("faulted invoke: %+v", res)
	}

	res = baton(t, env, "invoke", "hello", "--wait", "200ms")
	if res.code != 1 || !strings.Contains(res.stdout, "STATUS     running\n") ||
		res.stderr != "baton: invocation inv-0006 is still running after 200ms\n" {
		t.Fatalf("invoke that outlives --wait: %+v", res)
	}

	baton(t, env, "invoke", "nope").expect(t, 1, "", "baton: workflow default/nope not found\n")
	baton(t, env, "invoke", "hello", "--version", "9").expect(t, 1, "", "baton: workflow default/hello version 9 not found\n")
	baton(t, env, "invoke", "hello", "--wait=soon").expect(t, 1, "",
		"baton: --wait \"soon\": use a duration such as 30s or 2m, or a bare --wait to wait until the end\n")
	baton(t, env, "invoke", "hello", "--input", "[1,").expect(t, 1, "",
		"baton: --input is not valid JSON: unexpected end of JSON input (at byte 3)\n")

	baton(t, env, "invocation", "list", "--status", "running").expect(t, 0,
		"ID         WORKFLOW        VERSION   STATUS    STARTED                DURATION\n"+
			"inv-0006   default/hello   0.1.0     running   2025-03-01T12:00:13Z   -\n", "")
	baton(t, env, "invocation", "list", "--workflow", "default/fault").expect(t, 0,
		"ID         WORKFLOW        VERSION   STATUS    STARTED                DURATION\n"+
			"inv-0005   default/fault   0.1.0     faulted   2025-03-01T12:00:11Z   1s\n", "")
	res = baton(t, env, "invocation", "list", "--limit", "2")
	if res.code != 0 || strings.Count(res.stdout, "\n") != 3 || res.stderr != "more invocations: add --cursor 2\n" {
		t.Fatalf("paged list: %+v", res)
	}
	res = baton(t, env, "invocation", "list", "--limit", "2", "--cursor", "2", "-o", "json")
	var page api.InvocationList
	if err := json.Unmarshal([]byte(res.stdout), &page); err != nil || len(page.Items) != 2 ||
		page.Items[0].ID != "inv-0004" || page.NextCursor != "4" {
		t.Fatalf("second page: %+v (%v)", res, err)
	}
	baton(t, env, "invocation", "list", "--status", "asleep").expect(t, 1, "",
		"baton: status=\"asleep\": expected running, completed, faulted or cancelled\n")

	baton(t, env, "invocation", "get", "inv-0005").expect(t, 0,
		"ID         inv-0005\n"+
			"WORKFLOW   default/fault\n"+
			"VERSION    0.1.0\n"+
			"STATUS     faulted\n"+
			"STARTED    2025-03-01T12:00:11Z\n"+
			"ENDED      2025-03-01T12:00:12Z\n"+
			"DURATION   1s\n"+
			"INPUT      null\n"+
			"ERROR      /do/0/boom: Runtime Error (500): it broke\n", "")
	baton(t, env, "invocation", "get", "inv-9999").expect(t, 1, "", "baton: invocation inv-9999 not found\n")

	baton(t, env, "invocation", "cancel", "inv-0006").expect(t, 0, "cancellation of invocation inv-0006 requested\n", "")
	baton(t, env, "invocation", "cancel", "inv-0006").expect(t, 1, "", "baton: invocation inv-0006 has already ended\n")

	baton(t, env, "invocation", "history", "inv-0006").expect(t, 0,
		"SEQ   TIME                   TYPE                  TASK   ATTEMPT   DETAIL\n"+
			"1     2025-03-01T12:00:13Z   InvocationStarted     -      -         input null\n"+
			"2     2025-03-01T12:00:14Z   CancelRequested       -      -         \n"+
			"3     2025-03-01T12:00:15Z   InvocationCancelled   -      -         Cancelled (499): the invocation was cancelled\n", "")
	res = baton(t, env, "invocation", "history", "inv-0006", "-o", "yaml")
	var h api.History
	if err := yaml.Unmarshal([]byte(res.stdout), &h); err != nil || len(h.Items) != 3 || h.Items[2].Type != core.InvocationCancelled {
		t.Fatalf("history -o yaml: %+v (%v)", res, err)
	}
	baton(t, env, "invocation", "history", "nope").expect(t, 1, "", "baton: invocation nope not found\n")
}

func TestUnreachableServer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	res := baton(t, []string{"BATON_SERVER=http://nowhere.invalid"}, "workflow", "list", "--server", url)
	if res.code != 1 || strings.Count(res.stderr, "\n") != 1 ||
		!strings.HasPrefix(res.stderr, "baton: cannot reach the baton server at "+url+": ") {
		t.Fatalf("unreachable: %+v", res)
	}
	baton(t, nil, "invocation", "list", "--server", "localhost:8780").expect(t, 1, "",
		"baton: server URL \"localhost:8780\": want http://HOST:PORT or https://HOST:PORT\n")
}
