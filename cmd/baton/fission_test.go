package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fissionExamples is the Fission Workflows examples folder beside the repo.
func fissionExamples(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "spec", "fission-workflows", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		// ../shared sits beside the repository on the project's machines;
		// CI must have it, a clone elsewhere skips what reads it.
		if os.Getenv("CI") == "true" {
			t.Fatalf("the Fission examples are missing: %v", err)
		}
		t.Skipf("the Fission examples are not beside the repository: %v", err)
	}
	return dir
}

func TestFissionDocuments(t *testing.T) {
	examples := fissionExamples(t)
	files, _ := filepath.Glob(filepath.Join(examples, "*", "*.wf.yaml"))
	if len(files) < 15 {
		t.Fatalf("found only %d examples", len(files))
	}
	if res := baton(t, nil, append([]string{"validate"}, files...)...); res.code != 0 {
		t.Fatalf("validate: exit %d\n%s", res.code, res.stderr)
	}

	// A broken document names its file, line and column.
	dir := t.TempDir()
	broken := writeFile(t, dir, "broken.wf.yaml", "apiVersion: 1\noutput: A\ntasks:\n  A:\n    run: noop\n    requires: [Nope]\n")
	res := baton(t, nil, "validate", broken)
	if res.code != 1 || !strings.HasPrefix(res.stderr, broken+":4:3: tasks.A.requires:") || strings.Count(res.stderr, "\n") != 1 {
		t.Fatalf("broken document: exit %d\n%s", res.code, res.stderr)
	}
	// --format forces the language.
	if res := baton(t, nil, "validate", "--format", "dsl", filepath.Join(examples, "misc", "inputs.wf.yaml")); res.code != 1 {
		t.Fatalf("a Fission document read as DSL must fail: exit %d", res.code)
	}

	// convert writes a DSL document that validates, with warnings apart.
	out := filepath.Join(dir, "foreach.yaml")
	res = baton(t, nil, "convert", filepath.Join(examples, "whales", "foreachwhale.wf.yaml"), "--out", out)
	if res.code != 0 || !strings.Contains(res.stderr, "warning:") {
		t.Fatalf("convert: exit %d\n%s", res.code, res.stderr)
	}
	if res := baton(t, nil, "validate", out); res.code != 0 {
		t.Fatalf("the converted document does not validate:\n%s", res.stderr)
	}

	// run executes a Fission workflow built from built-in functions.
	doc := writeFile(t, dir, "double.wf.yaml", `
apiVersion: 1
output: Sum
tasks:
  Double:
    run: javascript
    inputs:
      expr: "{ $.Invocation.Inputs.default * 2 }"
  Triple:
    run: javascript
    inputs:
      expr: "{ $.Invocation.Inputs.default * 3 }"
  Sum:
    run: javascript
    inputs:
      expr: "{ output('Double') + output('Triple') }"
    requires: [Double, Triple]
`)
	res = baton(t, nil, "run", doc, "--input", "7", "--data", filepath.Join(dir, "data"))
	if res.code != 0 || strings.TrimSpace(res.stdout) != "35" {
		t.Fatalf("run: exit %d, stdout %q\n%s", res.code, res.stdout, res.stderr)
	}
}

// TestFissionCrashRecovery kills a server while a Fission workflow sleeps
// in two parallel branches and checks that a restarted server finishes it.
func TestFissionCrashRecovery(t *testing.T) {
	data := t.TempDir()
	srv := startServer(t, data)
	doc := `
apiVersion: 1
output: Join
tasks:
  Left:
    run: sleep
    inputs: 1500ms
  Right:
    run: sleep
    inputs: 1500ms
  Join:
    run: compose
    inputs: "{ 'joined' }"
    requires: [Left, Right]
`
	if code := srv.do(t, "POST", "/v1/workflows?filename=sleepy.wf.yaml", doc, nil); code != http.StatusCreated {
		t.Fatalf("apply: %d\n%s", code, srv.logs)
	}
	var started struct{ ID string }
	if code := srv.do(t, "POST", "/v1/workflows/default/sleepy/invocations", "{}", &started); code != http.StatusAccepted {
		t.Fatalf("invoke: %d", code)
	}
	waitForEvent(t, srv, started.ID, "TimerScheduled")
	began := time.Now()
	srv.kill(t)

	srv = startServer(t, data)
	defer srv.stop()
	var done struct {
		Status string
		Output any
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		srv.do(t, "GET", "/v1/invocations/"+started.ID, "", &done)
		if done.Status != "running" || time.Now().After(deadline) {
			break
		}
	}
	if done.Status != "completed" || fmt.Sprint(done.Output) != "joined" {
		t.Fatalf("invocation %+v\n%s", done, srv.logs)
	}
	// Both sleeps ran side by side, and the restart kept their deadlines:
	// each timer was scheduled once, with one deadline, and fired once, not
	// before it. (How long the restart took is the machine's business.)
	var hist struct {
		Items []struct {
			Type   string
			Timer  string
			Time   time.Time
			FireAt time.Time
		}
	}
	srv.do(t, "GET", "/v1/invocations/"+started.ID+"/history", "", &hist)
	scheduled, fired := map[string]time.Time{}, map[string]int{}
	for _, ev := range hist.Items {
		switch ev.Type {
		case "TimerScheduled":
			if _, again := scheduled[ev.Timer]; again || ev.FireAt.IsZero() {
				t.Fatalf("timer %s scheduled again or without a deadline: %+v", ev.Timer, hist.Items)
			}
			scheduled[ev.Timer] = ev.FireAt
		case "TimerFired":
			fired[ev.Timer]++
			if fireAt, ok := scheduled[ev.Timer]; !ok || ev.Time.Before(fireAt) {
				t.Fatalf("timer %s fired at %v, before its deadline %v", ev.Timer, ev.Time, fireAt)
			}
		}
	}
	if len(scheduled) != 2 || len(fired) != 2 {
		t.Fatalf("timers scheduled %v, fired %v; want both branches' sleeps", scheduled, fired)
	}
	setBeforeKill := false
	for timer, fireAt := range scheduled {
		if fired[timer] != 1 {
			t.Fatalf("timer %s fired %d times", timer, fired[timer])
		}
		setBeforeKill = setBeforeKill || !fireAt.After(began.Add(1500*time.Millisecond))
	}
	if !setBeforeKill {
		t.Fatalf("no deadline %v was set before the kill at %v", scheduled, began)
	}
}
