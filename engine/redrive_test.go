package engine_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
)

// flaky answers /a, fails /b until told otherwise, and holds /b while
// gate is closed; it counts hits by path and keeps their idempotency keys.
type flaky struct {
	mu    sync.Mutex
	hits  map[string]int
	keys  []string
	fail  bool
	block chan struct{}
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits[r.URL.Path]++
	f.keys = append(f.keys, r.Header.Get("Idempotency-Key"))
	fail, block := f.fail, f.block
	f.mu.Unlock()
	if r.URL.Path == "/b" && block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	if r.URL.Path == "/b" && fail {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"path": "` + r.URL.Path + `"}`))
}

func (f *flaky) set(fail bool, block chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail, f.block = fail, block
}

func (f *flaky) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

func redriveDoc(url string) string {
	return `document: {dsl: '1.0.0', namespace: default, name: redrive, version: '1.0.0'}
do:
  - a:
      call: http
      with: {method: get, endpoint: '` + url + `/a'}
  - b:
      call: http
      with: {method: get, endpoint: '` + url + `/b'}
  - c:
      set: {done: true}
`
}

// TestRedriveInvocation: a faulted invocation retried goes on as the same
// invocation from the failed call, which gets a new idempotency key; the
// call that completed is not run again. The redrive survives a restart in
// the middle, and a completed or running invocation is not redriven.
func TestRedriveInvocation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	svc := &flaky{hits: map[string]int{}, fail: true}
	srv := httptest.NewServer(svc)
	defer srv.Close()
	e := newEngine(t, st)
	if _, err := e.ApplyWorkflow(ctx, "r.yaml", []byte(redriveDoc(srv.URL))); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "default", "redrive", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if done, _ := e.Wait(ctx, inv.ID); done.Status != core.StatusFaulted {
		t.Fatalf("first run: %s, want faulted", done.Status)
	}
	if _, err := e.RedriveInvocation(ctx, "nope", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("redrive of an unknown invocation: %v", err)
	}

	// Retried while /b hangs, then the engine stops: the redrive is
	// recorded, and the next engine goes on with it.
	gate := make(chan struct{})
	svc.set(false, gate)
	redriven, err := e.RedriveInvocation(ctx, inv.ID, "b is back")
	if err != nil || redriven.ID != inv.ID || redriven.Status != core.StatusRunning {
		t.Fatalf("RedriveInvocation = %+v, %v", redriven, err)
	}
	if _, err := e.RedriveInvocation(ctx, inv.ID, ""); !errors.Is(err, store.ErrConflict) {
		t.Errorf("redrive of a running invocation: %v, want ErrConflict", err)
	}
	waitUntil(t, func() bool { return svc.count("/b") == 2 })
	e.Close()

	e = newEngine(t, st)
	defer e.Close()
	close(gate)
	done, err := e.Wait(ctx, inv.ID)
	if err != nil || done.Status != core.StatusCompleted {
		t.Fatalf("after the redrive and a restart: %+v, %v", done, err)
	}
	if got := done.Output.(map[string]any)["done"]; got != true {
		t.Errorf("output %v", done.Output)
	}
	if a, b := svc.count("/a"), svc.count("/b"); a != 1 || b != 3 {
		t.Errorf("hits /a %d, /b %d; want 1 and 3 (failed, redriven and cut by the stop, resumed)", a, b)
	}
	svc.mu.Lock()
	keys := append([]string(nil), svc.keys...)
	svc.mu.Unlock()
	if !strings.HasSuffix(keys[1], "/do/1/b/1") || !strings.HasSuffix(keys[2], "/do/1/b/1/redrive-1") || keys[3] != keys[2] {
		t.Errorf("idempotency keys %v: the redriven call needs a key of its own, kept across the restart", keys)
	}
	history, err := e.History(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range history {
		if ev.Type == core.InvocationRedriven && ev.Info["reason"] != "b is back" {
			t.Errorf("redrive info %v, want the reason", ev.Info)
		}
		if ev.Type != core.TaskStarted {
			types = append(types, string(ev.Type))
		}
	}
	want := "InvocationStarted TaskCompleted TaskFailed InvocationFaulted InvocationRedriven TaskCompleted TaskEnded InvocationCompleted"
	if strings.Join(types, " ") != want {
		t.Errorf("history %v\nwant      %s", types, want)
	}
	if _, err := e.RedriveInvocation(ctx, inv.ID, ""); !errors.Is(err, store.ErrConflict) {
		t.Errorf("redrive of a completed invocation: %v, want ErrConflict", err)
	}
	// The lifecycle events rebuild from the redriven history.
	if _, err := e.LifecycleEvents(ctx, inv.ID); err != nil {
		t.Errorf("LifecycleEvents: %v", err)
	}
}

// TestRerunInvocation: a rerun is a new invocation of the same version,
// with the same input or another, that names the one it reruns.
func TestRerunInvocation(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	e := newEngine(t, st)
	defer e.Close()
	if _, err := e.ApplyWorkflow(ctx, "hello.yaml", []byte(hello)); err != nil {
		t.Fatal(err)
	}
	first, err := e.Invoke(ctx, "default", "hello", "", map[string]any{"name": "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	e.Wait(ctx, first.ID)
	for _, tc := range []struct {
		input     any
		withInput bool
		want      string
	}{
		{nil, false, "Hello, Ada!"},
		{map[string]any{"name": "Bo"}, true, "Hello, Bo!"},
	} {
		again, err := e.RerunInvocation(ctx, first.ID, tc.input, tc.withInput)
		if err != nil {
			t.Fatal(err)
		}
		done, err := e.Wait(ctx, again.ID)
		if err != nil || again.ID == first.ID || done.Version != first.Version ||
			done.Output.(map[string]any)["greeting"] != tc.want {
			t.Errorf("rerun %+v, %v; want a new invocation greeting %q", done, err, tc.want)
		}
		h, err := e.History(ctx, again.ID)
		if err != nil || h[0].Info["rerunOf"] != first.ID {
			t.Errorf("rerun's InvocationStarted info %v, want rerunOf %s", h[0].Info, first.ID)
		}
	}
}
