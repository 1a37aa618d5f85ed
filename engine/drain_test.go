package engine_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/problem"
)

// gate is an endpoint whose calls block until released; it records the
// idempotency keys of calls that returned.
type gate struct {
	arrived  chan string
	release  chan struct{}
	mu       sync.Mutex
	returned map[string]int
	sent     map[string]int
}

func newGate() *gate {
	return &gate{arrived: make(chan string, 100), release: make(chan struct{}), returned: map[string]int{}, sent: map[string]int{}}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	g.mu.Lock()
	g.sent[key]++
	g.mu.Unlock()
	g.arrived <- r.URL.Path
	select {
	case <-g.release:
	case <-r.Context().Done():
		return
	}
	g.mu.Lock()
	g.returned[key]++
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"ok": true}`))
}

// TestDrainLetsCallsInFlightReturn drains an engine while a call is in
// flight: new starts are refused with a 503 problem, the call returns and
// its result is recorded, the next call is held rather than sent, and an
// engine started afterwards on the same store sends only that next call.
func TestDrainLetsCallsInFlightReturn(t *testing.T) {
	ctx := context.Background()
	g := newGate()
	srv := httptest.NewServer(g)
	defer srv.Close()
	dir := t.TempDir()
	st := openStore(t, dir)
	e := newEngine(t, st)
	if _, err := e.ApplyWorkflow(ctx, "chain.yaml", []byte(chainDoc(srv.URL, 2, ""))); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "default", "chain", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if path := <-g.arrived; path != "/a" {
		t.Fatalf("first call to %s", path)
	}

	drained := make(chan error, 1)
	go func() { drained <- e.Drain(ctx) }()
	for !e.Draining() {
		time.Sleep(time.Millisecond)
	}
	_, err = e.Invoke(ctx, "default", "chain", "", nil)
	var p *problem.Problem
	if !errors.As(err, &p) || p.Status != http.StatusServiceUnavailable || !errors.Is(err, engine.ErrDraining) {
		t.Fatalf("Invoke while draining = %v, want the 503 ErrDraining", err)
	}
	if _, _, err := e.InvokeOnce(ctx, "k", "default", "chain", "", nil); !errors.Is(err, engine.ErrDraining) {
		t.Fatalf("InvokeOnce while draining = %v, want ErrDraining", err)
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) while a call was in flight", err)
	default:
	}
	close(g.release)
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if len(g.arrived) != 0 {
		t.Fatalf("a call was sent during the drain: %s", <-g.arrived)
	}

	st = openStore(t, dir)
	defer st.Close()
	e = newEngine(t, st)
	defer e.Close()
	done, err := e.Wait(ctx, inv.ID)
	if err != nil || done.Status != core.StatusCompleted {
		t.Fatalf("after restart: %+v, %v", done, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.sent) != 2 {
		t.Fatalf("calls sent per key: %v, want one each for two tasks", g.sent)
	}
	for key, n := range g.sent {
		if n != 1 {
			t.Errorf("call %s sent %d times", key, n)
		}
	}
}

// TestDrainBoundedByContext gives up when a call outlasts the grace.
func TestDrainBoundedByContext(t *testing.T) {
	ctx := context.Background()
	g := newGate()
	defer close(g.release)
	srv := httptest.NewServer(g)
	defer srv.Close()
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	if _, err := e.ApplyWorkflow(ctx, "chain.yaml", []byte(chainDoc(srv.URL, 1, ""))); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Invoke(ctx, "default", "chain", "", nil); err != nil {
		t.Fatal(err)
	}
	<-g.arrived
	grace, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := e.Drain(grace); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain past its grace = %v, want DeadlineExceeded", err)
	}
}
