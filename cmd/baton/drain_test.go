package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// slowCounter is an endpoint whose calls wait until release is closed; it
// records, per idempotency key, how often a call was sent and whether one
// had returned before the next was sent.
type slowCounter struct {
	release  chan struct{}
	mu       sync.Mutex
	sent     map[string]int
	returned map[string]bool
	resent   []string // keys sent again after a call with them returned
	inflight int
}

func (c *slowCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	c.mu.Lock()
	c.sent[key]++
	if c.returned[key] {
		c.resent = append(c.resent, key)
	}
	c.inflight++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inflight--
		c.mu.Unlock()
	}()
	select {
	case <-c.release:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"ok": true}`)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	c.mu.Lock()
	c.returned[key] = true
	c.mu.Unlock()
}

func (c *slowCounter) state() (inflight, keys int, resent []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inflight, len(c.sent), append([]string(nil), c.resent...)
}

const drainWorkflow = `
document: {dsl: '1.0.0', namespace: test, name: drain, version: '1.0.0'}
do:
  - one:
      call: http
      with: {method: post, endpoint: '%[1]s/one'}
  - two:
      call: http
      with: {method: post, endpoint: '%[1]s/two'}
  - three:
      call: http
      with: {method: post, endpoint: '%[1]s/three'}
`

// TestSIGTERMDrains stops a server with SIGTERM while hundreds of HTTP
// calls are in flight. The server refuses new starts with a 503 while it
// drains, lets the calls return (the endpoint answers once the 503 is
// seen), records them, holds the calls that follow, and exits 0 without
// an ERROR line; after a restart every invocation completes and no call
// that had returned is sent again: every call is sent exactly once.
func TestSIGTERMDrains(t *testing.T) {
	const invocations = 300
	ep := &slowCounter{release: make(chan struct{}), sent: map[string]int{}, returned: map[string]bool{}}
	target := httptest.NewServer(ep)
	defer target.Close()
	data := t.TempDir()

	srv := startServer(t, data)
	if code := srv.do(t, "POST", "/v1/workflows", fmt.Sprintf(drainWorkflow, target.URL), nil); code != http.StatusCreated {
		t.Fatalf("apply: %d\n%s", code, srv.logs)
	}
	ids := make([]string, invocations)
	for i := range ids {
		var started struct{ ID string }
		if code := srv.do(t, "POST", "/v1/workflows/test/drain/invocations", "{}", &started); code != http.StatusAccepted {
			t.Fatalf("invoke: %d", code)
		}
		ids[i] = started.ID
	}
	// Every invocation's first call is in flight, held by the endpoint.
	for deadline := time.Now().Add(60 * time.Second); ; {
		if inflight, _, _ := ep.state(); inflight == invocations {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the calls did not get in flight")
		}
		time.Sleep(5 * time.Millisecond)
	}

	exited := make(chan error, 1)
	sigterm := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() { exited <- srv.cmd.Wait() }()
	// While it drains, starts are refused with a 503 and Retry-After; then
	// the calls in flight may return.
	refused := false
	defer func() {
		if !refused {
			close(ep.release)
		}
	}()
	for !refused {
		resp, err := postWithToken(http.DefaultClient, srv.url+"/v1/workflows/test/drain/invocations", "application/json", srv.token, "{}")
		if err != nil {
			break // the server has stopped listening
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusServiceUnavailable:
			if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "shutting down") {
				t.Fatalf("503 while draining: %v %s", resp.Header, body)
			}
			refused = true
			close(ep.release)
		case http.StatusAccepted:
			var started struct{ ID string }
			if err := json.Unmarshal(body, &started); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, started.ID) // started before the signal was handled
		default:
			t.Fatalf("start during the drain: %d %s", resp.StatusCode, body)
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the server exited with %v after SIGTERM; log:\n%s", err, srv.logs)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the server did not stop within a minute of SIGTERM")
	}
	if !refused {
		t.Fatalf("no start was refused with a 503 while the server drained; log:\n%s", srv.logs)
	}
	t.Logf("drain: SIGTERM to exit in %v", time.Since(sigterm).Round(time.Millisecond))
	logs := srv.logs.String()
	if strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "msg=drained") {
		t.Fatalf("the stop logged errors or did not drain:\n%s", logs)
	}
	if _, _, resent := ep.state(); len(resent) > 0 {
		t.Fatalf("calls sent again while stopping: %v", resent)
	}

	srv = startServer(t, data)
	defer srv.stop()
	for _, id := range ids {
		var inv struct{ Status string }
		for deadline := time.Now().Add(60 * time.Second); ; {
			srv.do(t, "GET", "/v1/invocations/"+id, "", &inv)
			if inv.Status != "running" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("invocation %s still running after the restart", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if inv.Status != "completed" {
			t.Fatalf("invocation %s ended %s", id, inv.Status)
		}
	}
	_, keys, resent := ep.state()
	if len(resent) > 0 {
		t.Fatalf("%d calls that had returned were sent again after the restart, e.g. %s", len(resent), resent[0])
	}
	if keys != 3*len(ids) {
		t.Fatalf("%d distinct calls for %d invocations of 3 tasks", keys, len(ids))
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	for key, n := range ep.sent {
		if n != 1 {
			t.Errorf("call %s sent %d times", key, n)
		}
	}
}
