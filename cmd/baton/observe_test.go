package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRunShowsAndKeepsItsInvocation: `baton run` starts stderr with the
// invocation's id, --watch shows each task (those without I/O too), and
// the run can be read back afterwards from its data directory.
func TestRunShowsAndKeepsItsInvocation(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	hello := writeFile(t, dir, "hello.yaml", helloDoc("0.1.0"))
	res := baton(t, nil, "run", hello, "--input", `{"name": "Ada"}`, "--data", data)
	res.expect(t, 0, `{"greeting":"Hello, Ada!"}`+"\n", "")
	if res.invocation == "" {
		t.Fatalf("no invocation id on stderr")
	}
	watched := baton(t, nil, "run", hello, "--input", `{"name": "Bo"}`, "--data", data, "--watch")
	if watched.code != 0 || !regexp.MustCompile(`(?m)^\S+  invocation started\n\S+  done       /do/0/greet\n\S+  invocation completed\n$`).MatchString(watched.stderr) {
		t.Fatalf("run --watch: %+v", watched)
	}

	history := baton(t, nil, "invocation", "history", res.invocation, "--data", data)
	if history.code != 0 || !strings.Contains(history.stdout, "TaskEnded             /do/0/greet") {
		t.Fatalf("history of the run: %+v", history)
	}
	got := baton(t, nil, "invocation", "get", res.invocation, "--data", data, "-o", "json")
	if got.code != 0 || !strings.Contains(got.stdout, `"status": "completed"`) {
		t.Fatalf("get of the run: %+v", got)
	}
	baton(t, nil, "invocation", "cancel", res.invocation, "--data", data).expect(t, 1, "",
		"baton: --data works with invocation get, list and history; baton invocation cancel needs a server\n")
	missing := filepath.Join(dir, "none")
	baton(t, nil, "invocation", "list", "--data", missing).expect(t, 1, "",
		"baton: --data "+missing+": no baton.db there (baton run --data "+missing+" keeps one)\n")
}

// flakyBackend fails its first call, then answers; while hold is set it
// holds calls until hold is closed.
type flakyBackend struct {
	mu    sync.Mutex
	calls map[string]int
	hold  chan struct{}
}

func (b *flakyBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.calls[r.URL.Path]++
	n, hold := b.calls[r.URL.Path], b.hold
	b.mu.Unlock()
	if r.URL.Path == "/b" && hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	if r.URL.Path == "/b" && n == 1 {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"ok": true}`))
}

func (b *flakyBackend) count(path string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[path]
}

// TestWatchRetryRerunCommands drives a real server: invoke --watch shows a
// call failing; invocation retry goes on from it, survives a SIGKILL of the
// server in the middle (the call that completed is not run again), and
// --watch shows it end; rerun starts a new invocation that watch follows;
// event send logs a CloudEvent; completion prints a script.
func TestWatchRetryRerunCommands(t *testing.T) {
	backend := &flakyBackend{calls: map[string]int{}}
	svc := httptest.NewServer(backend)
	defer svc.Close()
	dir := t.TempDir()
	srv := startServer(t, dir)
	env := srv.env()
	doc := writeFile(t, t.TempDir(), "flaky.yaml", `document: {dsl: '1.0.0', namespace: default, name: flaky, version: '1.0.0'}
do:
  - a:
      call: http
      with: {method: get, endpoint: '`+svc.URL+`/a'}
  - b:
      call: http
      with: {method: get, endpoint: '`+svc.URL+`/b'}
  - answer:
      set: {who: '${ $workflow.input.who }'}
`)
	if res := baton(t, env, "workflow", "apply", doc); res.code != 0 {
		t.Fatalf("apply: %+v", res)
	}
	res := baton(t, env, "invoke", "default/flaky", "--input", `{"who": "Ada"}`, "--watch")
	id := strings.TrimPrefix(strings.SplitN(res.stderr, "\n", 2)[0], "invocation ")
	if res.code != 1 || !strings.Contains(res.stderr, "completed  /do/0/a") || !strings.Contains(res.stderr, "failed     /do/1/b") ||
		!strings.Contains(res.stderr, "invocation faulted") || !strings.Contains(res.stdout, "faulted") {
		t.Fatalf("invoke --watch: %+v", res)
	}

	// The retried call hangs; the server is killed and restarted.
	hold := make(chan struct{})
	backend.mu.Lock()
	backend.hold = hold
	backend.mu.Unlock()
	baton(t, env, "invocation", "retry", id, "--reason", "b is back").
		expect(t, 0, "invocation "+id+" is running again\n", "")
	waitUntil(t, 20*time.Second, "the retried call", func() bool { return backend.count("/b") == 2 })
	srv.kill(t)
	srv = startServer(t, dir)
	defer srv.stop()
	env = srv.env()
	close(hold)
	watched := baton(t, env, "invocation", "watch", id)
	if watched.code != 0 || !strings.Contains(watched.stdout, "retried from where it stopped: b is back") ||
		!strings.HasSuffix(watched.stdout, "invocation completed\n") {
		t.Fatalf("watch after the retry: %+v", watched)
	}
	if a := backend.count("/a"); a != 1 {
		t.Errorf("/a was called %d times; a completed call is not run again", a)
	}
	if again := baton(t, env, "invocation", "retry", id); again.code != 1 || !strings.Contains(again.stderr, "completed; run it again instead") {
		t.Errorf("retry of the completed invocation: %+v", again)
	}

	rerun := baton(t, env, "invocation", "rerun", id, "--input", `{"who": "Bo"}`)
	newID := strings.TrimSpace(rerun.stdout)
	if rerun.code != 0 || newID == id || newID == "" {
		t.Fatalf("rerun: %+v", rerun)
	}
	followed := baton(t, env, "invocation", "watch", newID, "-o", "json")
	if followed.code != 0 || !strings.Contains(followed.stdout, `"rerunOf":"`+id+`"`) ||
		!strings.Contains(followed.stdout, `"output":{"who":"Bo"}`) {
		t.Fatalf("watch of the rerun: %+v", followed)
	}

	sent := baton(t, env, "event", "send", "--type", "com.example.ping", "--id", "ping-1", "--data", `{"n": 1}`)
	if sent.code != 0 || !regexp.MustCompile(`ping-1\s+baton-cli\s+\d+\s+false`).MatchString(sent.stdout) {
		t.Fatalf("event send: %+v", sent)
	}
	if res := baton(t, env, "event", "send"); res.code != 1 || !strings.Contains(res.stderr, "--type is required") {
		t.Fatalf("event send without a type: %+v", res)
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if res := baton(t, nil, "completion", shell); res.code != 0 || !strings.Contains(res.stdout, "baton") {
			t.Errorf("completion %s: exit %d, %d bytes", shell, res.code, len(res.stdout))
		}
	}
}

// TestInvocationCancelWithReason drives a real server: invocation cancel
// --reason records why, and history, get and watch show it; too long a
// reason is refused in one line and cancels nothing.
func TestInvocationCancelWithReason(t *testing.T) {
	srv := startServer(t, t.TempDir())
	defer srv.stop()
	env := srv.env()
	doc := writeFile(t, t.TempDir(), "sleepy.yaml", `document: {dsl: '1.0.0', namespace: default, name: sleepy, version: '1.0.0'}
do:
  - nap:
      wait: {hours: 1}
`)
	if res := baton(t, env, "workflow", "apply", doc); res.code != 0 {
		t.Fatalf("apply: %+v", res)
	}
	started := baton(t, env, "invoke", "default/sleepy", "-o", "json")
	var inv struct{ ID string }
	if started.code != 0 || json.Unmarshal([]byte(started.stdout), &inv) != nil || inv.ID == "" {
		t.Fatalf("invoke: %+v", started)
	}
	tooLong := baton(t, env, "invocation", "cancel", inv.ID, "--reason", strings.Repeat("x", 1001))
	if tooLong.code != 1 || tooLong.stderr != "baton: reason: 1001 characters, more than the 1000 allowed\n" {
		t.Fatalf("cancel with too long a reason: %+v", tooLong)
	}
	baton(t, env, "invocation", "cancel", inv.ID, "--reason", "stuck on a dead endpoint").
		expect(t, 0, "cancellation of invocation "+inv.ID+" requested\n", "")
	watched := baton(t, env, "invocation", "watch", inv.ID)
	if watched.code == 0 || !strings.Contains(watched.stdout, "cancellation requested: stuck on a dead endpoint\n") {
		t.Fatalf("watch of the cancelled invocation: %+v", watched)
	}
	history := baton(t, env, "invocation", "history", inv.ID)
	if history.code != 0 || !regexp.MustCompile(`CancelRequested .*Cancelled \(499\): the invocation was cancelled: stuck on a dead endpoint`).MatchString(history.stdout) {
		t.Fatalf("history: %+v", history)
	}
	got := baton(t, env, "invocation", "get", inv.ID)
	if got.code != 0 || !strings.Contains(got.stdout, "STATUS     cancelled\n") ||
		!strings.Contains(got.stdout, "ERROR      Cancelled (499): the invocation was cancelled: stuck on a dead endpoint\n") {
		t.Fatalf("get: %+v", got)
	}
}
