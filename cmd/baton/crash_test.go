package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests kill a real `baton server` with SIGKILL in the middle of a
// workflow, start it again on the same data directory, and check that the
// invocation completes with every task's endpoint hit once (an in-flight
// call is sent again, with the same idempotency key).

// endpoint counts requests per path and the idempotency keys they carry.
// Requests to /slow block until release is closed, unless it is nil.
type endpoint struct {
	mu      sync.Mutex
	hits    map[string]int
	keys    map[string]map[string]bool
	arrived chan string
	release chan struct{}
}

func newEndpoint() *endpoint {
	return &endpoint{hits: map[string]int{}, keys: map[string]map[string]bool{}, arrived: make(chan string, 100)}
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.hits[r.URL.Path]++
	if e.keys[r.URL.Path] == nil {
		e.keys[r.URL.Path] = map[string]bool{}
	}
	e.keys[r.URL.Path][r.Header.Get("Idempotency-Key")] = true
	release := e.release
	e.mu.Unlock()
	e.arrived <- r.URL.Path
	if r.URL.Path == "/slow" && release != nil {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"at": %q}`, r.URL.Path)
}

func (e *endpoint) counts() (map[string]int, map[string]int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	hits, keys := map[string]int{}, map[string]int{}
	for p, n := range e.hits {
		hits[p] = n
		keys[p] = len(e.keys[p])
	}
	return hits, keys
}

// server is a running `baton server` child process.
type server struct {
	cmd   *exec.Cmd
	url   string
	logs  *bytes.Buffer
	token string // the local admin token the server left in its data directory
}

func startServer(t *testing.T, dataDir string) *server {
	t.Helper()
	return startServerWith(t, dataDir)
}

func (s *server) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.cmd.Wait()
}

// adminToken reads the local admin token a server left in its data
// directory.
func adminToken(t *testing.T, dataDir string) string {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(dataDir, adminTokenFile))
	if err != nil {
		t.Fatalf("the server left no admin token: %v", err)
	}
	return strings.TrimSpace(string(token))
}

// env is what the CLI needs to talk to the server as its admin.
func (s *server) env() []string {
	return []string{"BATON_SERVER=" + s.url, "BATON_TOKEN=" + s.token}
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
}

func (s *server) do(t *testing.T, method, path string, body string, into any) int {
	t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if into != nil {
		if err := json.Unmarshal(data, into); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

const crashWorkflow = `
document: {dsl: '1.0.0', namespace: test, name: crash, version: '1.0.0'}
do:
  - before:
      call: http
      with: {method: post, endpoint: '%[1]s/before'}
  - nap:
      wait: {milliseconds: 1500}
  - slow:
      call: http
      with: {method: post, endpoint: '%[1]s/slow'}
  - after:
      call: http
      with: {method: post, endpoint: '%[1]s/after'}
`

func TestCrashRecovery(t *testing.T) {
	for _, when := range []string{"during a wait", "during an HTTP call"} {
		t.Run(when, func(t *testing.T) {
			ep := newEndpoint()
			if when == "during an HTTP call" {
				ep.release = make(chan struct{})
			}
			target := httptest.NewServer(ep)
			defer target.Close()
			data := t.TempDir()

			srv := startServer(t, data)
			if code := srv.do(t, "POST", "/v1/workflows", fmt.Sprintf(crashWorkflow, target.URL), nil); code != http.StatusCreated {
				t.Fatalf("apply: %d\n%s", code, srv.logs)
			}
			var started struct{ ID string }
			if code := srv.do(t, "POST", "/v1/workflows/test/crash/invocations", "{}", &started); code != http.StatusAccepted {
				t.Fatalf("invoke: %d", code)
			}

			if when == "during a wait" {
				waitFor(t, ep.arrived, "/before")
				// Let the timer's deadline reach the history, then kill.
				waitForEvent(t, srv, started.ID, "TimerScheduled")
			} else {
				waitFor(t, ep.arrived, "/before")
				waitFor(t, ep.arrived, "/slow")
			}
			srv.kill(t)
			if ep.release != nil {
				close(ep.release)
			}

			srv = startServer(t, data)
			defer srv.stop()
			var done struct {
				Status string
				Output map[string]any
				Error  any
			}
			for deadline := time.Now().Add(30 * time.Second); ; {
				srv.do(t, "GET", "/v1/invocations/"+started.ID, "", &done)
				if done.Status != "running" || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if done.Status != "completed" || done.Output["at"] != "/after" {
				t.Fatalf("invocation %+v\nserver log:\n%s", done, srv.logs)
			}
			hits, keys := ep.counts()
			if hits["/before"] != 1 || hits["/after"] != 1 {
				t.Errorf("completed tasks ran again: hits %v", hits)
			}
			if keys["/slow"] != 1 {
				t.Errorf("/slow got %d idempotency keys, want 1 (hits %v)", keys["/slow"], hits)
			}
			wantSlow := 1
			if when == "during an HTTP call" {
				wantSlow = 2 // the in-flight call is delivered again after the crash
			}
			if hits["/slow"] != wantSlow {
				t.Errorf("/slow hit %d times, want %d", hits["/slow"], wantSlow)
			}
		})
	}
}

func waitFor(t *testing.T, arrived chan string, path string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case p := <-arrived:
			if p == path {
				return
			}
		case <-timeout:
			t.Fatalf("no request to %s", path)
		}
	}
}

func waitForEvent(t *testing.T, srv *server, id, typ string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var hist struct {
			Items []struct{ Type string }
		}
		srv.do(t, "GET", "/v1/invocations/"+id+"/history", "", &hist)
		for _, ev := range hist.Items {
			if ev.Type == typ {
				return
			}
		}
	}
	t.Fatalf("no %s event in the history of %s", typ, id)
}
