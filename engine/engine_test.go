package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/sqlite"
)

func openStore(t testing.TB, dir string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newEngine(t testing.TB, st store.Store, opts ...func(*engine.Options)) *engine.Engine {
	t.Helper()
	o := engine.Options{Store: st}
	for _, f := range opts {
		f(&o)
	}
	e, err := engine.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// counter is an HTTP endpoint that counts hits per idempotency key.
type counter struct {
	mu    sync.Mutex
	hits  map[string]int
	total int
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	if c.hits == nil {
		c.hits = map[string]int{}
	}
	c.hits[r.Header.Get("Idempotency-Key")]++
	c.total++
	n := c.total
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "n": n})
}

func (c *counter) snapshot() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.hits))
	for k, v := range c.hits {
		m[k] = v
	}
	return m, c.total
}

const hello = `
document: {dsl: '1.0.0', namespace: default, name: hello, version: '1.0.0'}
do:
  - greet:
      set:
        greeting: '${ "Hello, " + .name + "!" }'
`

func TestInvokeAndWait(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	if _, err := e.ApplyWorkflow(ctx, "hello.yaml", []byte(hello)); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "default", "hello", "", map[string]any{"name": "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	done, err := e.Wait(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != core.StatusCompleted || done.Output.(map[string]any)["greeting"] != "Hello, Ada!" {
		t.Fatalf("got %+v", done)
	}
	stored, err := e.GetInvocation(ctx, inv.ID)
	if err != nil || stored.Status != core.StatusCompleted || stored.EndedAt.IsZero() {
		t.Fatalf("stored row %+v, %v", stored, err)
	}
	hist, err := e.History(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The set task made no call: its TaskEnded record shows it ran.
	if len(hist) != 3 || hist[0].Type != core.InvocationStarted || hist[2].Type != core.InvocationCompleted ||
		hist[1].Type != core.TaskEnded || hist[1].Ref != "/do/0/greet" || hist[1].Error != nil {
		t.Fatalf("history %+v", hist)
	}
}

func TestApplyRejectsInvalidDocument(t *testing.T) {
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	_, err := e.ApplyWorkflow(context.Background(), "bad.yaml", []byte("document: {dsl: '1.0.0'}\ndo: 3\n"))
	var list dsl.ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("want a dsl.ErrorList, got %v", err)
	}
	if !strings.HasPrefix(list[0].Error(), "bad.yaml:") {
		t.Errorf("error without file name: %v", list[0])
	}
}

func TestVersionsAndConflicts(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	v2 := strings.Replace(hello, "'1.0.0'}", "'2.0.0'}", 1)
	v2 = strings.Replace(v2, `"Hello, "`, `"Hi, "`, 1)
	for _, doc := range []string{hello, v2} {
		if _, err := e.ApplyWorkflow(ctx, "w.yaml", []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	conflicting := strings.Replace(hello, "Hello", "Howdy", 1)
	if _, err := e.ApplyWorkflow(ctx, "w.yaml", []byte(conflicting)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("re-applying a version with new content: want ErrConflict, got %v", err)
	}
	for version, want := range map[string]string{"": "Hi, Ada!", "1.0.0": "Hello, Ada!"} {
		inv, err := e.Invoke(ctx, "default", "hello", version, map[string]any{"name": "Ada"})
		if err != nil {
			t.Fatal(err)
		}
		done, _ := e.Wait(ctx, inv.ID)
		if got := done.Output.(map[string]any)["greeting"]; got != want {
			t.Errorf("version %q: %v, want %v", version, got, want)
		}
	}
	if _, err := e.Invoke(ctx, "default", "nope", "", nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown workflow: %v", err)
	}
}

func chainDoc(url string, n int, durability string) string {
	var b strings.Builder
	b.WriteString("document: {dsl: '1.0.0', namespace: default, name: chain, version: '1.0.0'")
	if durability != "" {
		b.WriteString(", metadata: {baton.durability: " + durability + "}")
	}
	b.WriteString("}\ndo:\n")
	for i := 0; i < n; i++ {
		b.WriteString("  - step" + string(rune('a'+i)) + ":\n      call: http\n      with:\n        method: get\n        endpoint: " + url + "/" + string(rune('a'+i)) + "\n")
	}
	return b.String()
}

func TestHTTPChainDurableAndNot(t *testing.T) {
	for _, durability := range []string{"", "none"} {
		t.Run("durability="+durability, func(t *testing.T) {
			ctx := context.Background()
			var c counter
			srv := httptest.NewServer(&c)
			defer srv.Close()
			st := openStore(t, t.TempDir())
			e := newEngine(t, st)
			defer e.Close()
			if _, err := e.ApplyWorkflow(ctx, "chain.yaml", []byte(chainDoc(srv.URL, 3, durability))); err != nil {
				t.Fatal(err)
			}
			inv, err := e.Invoke(ctx, "default", "chain", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			done, err := e.Wait(ctx, inv.ID)
			if err != nil || done.Status != core.StatusCompleted {
				t.Fatalf("%+v %v", done, err)
			}
			if out := done.Output.(map[string]any); out["path"] != "/c" {
				t.Errorf("output %v", out)
			}
			hits, total := c.snapshot()
			if total != 3 || len(hits) != 3 {
				t.Errorf("hits %v", hits)
			}
			for key := range hits {
				if !strings.HasPrefix(key, inv.ID+"/") || !strings.HasSuffix(key, "/1") {
					t.Errorf("idempotency key %q", key)
				}
			}
			hist, err := e.History(ctx, inv.ID)
			if err != nil {
				t.Fatal(err)
			}
			completed := 0
			for _, ev := range hist {
				if ev.Type == core.TaskCompleted {
					completed++
				}
			}
			if completed != 3 {
				t.Errorf("%d TaskCompleted events in %d", completed, len(hist))
			}
			// Non-durable invocations reach the store once they end.
			deadline := time.Now().Add(5 * time.Second)
			for {
				row, err := st.GetInvocation(ctx, inv.ID)
				if err == nil && row.Status == core.StatusCompleted {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("row never completed: %+v %v", row, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	doc := `
document: {dsl: '1.0.0', namespace: default, name: sleepy, version: '1.0.0'}
do:
  - nap:
      wait: {hours: 1}
`
	if _, err := e.ApplyWorkflow(ctx, "s.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "default", "sleepy", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.CancelInvocation(ctx, inv.ID, "no longer needed"); err != nil {
		t.Fatal(err)
	}
	done, err := e.Wait(ctx, inv.ID)
	if err != nil || done.Status != core.StatusCancelled {
		t.Fatalf("%+v %v", done, err)
	}
	if done.Error == nil || done.Error.Detail != "the invocation was cancelled: no longer needed" {
		t.Errorf("the cancelled invocation's error: %+v", done.Error)
	}
	wantCancelReason(t, e, inv.ID, "no longer needed")
	if err := e.CancelInvocation(ctx, inv.ID, ""); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second cancel: %v", err)
	}
}

// wantCancelReason checks that the history of id records one cancellation,
// for reason.
func wantCancelReason(t *testing.T, e *engine.Engine, id, reason string) {
	t.Helper()
	h, err := e.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var got []any
	for _, ev := range h {
		if ev.Type == core.CancelRequested {
			got = append(got, ev.Info["reason"])
		}
	}
	if len(got) != 1 || got[0] != reason {
		t.Errorf("the reasons of the cancellations of %s: %v, want [%q]", id, got, reason)
	}
}

// TestRecoveryAfterRestart stops an engine while an invocation waits on a
// timer, starts a new engine on the same store, and checks that the
// invocation completes, keeps the timer's deadline, and calls each endpoint
// exactly once.
func TestRecoveryAfterRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var c counter
	srv := httptest.NewServer(&c)
	defer srv.Close()
	doc := `
document: {dsl: '1.0.0', namespace: default, name: pause, version: '1.0.0'}
do:
  - before:
      call: http
      with: {method: post, endpoint: ` + srv.URL + `/before}
  - nap:
      wait: {milliseconds: 700}
  - after:
      call: http
      with: {method: post, endpoint: ` + srv.URL + `/after}
`
	st := openStore(t, dir)
	e := newEngine(t, st)
	if _, err := e.ApplyWorkflow(ctx, "p.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "default", "pause", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the timer is scheduled, then stop everything.
	var fireAt time.Time
	for deadline := time.Now().Add(5 * time.Second); fireAt.IsZero(); {
		hist, _ := e.History(ctx, inv.ID)
		for _, ev := range hist {
			if ev.Type == core.TimerScheduled {
				fireAt = ev.FireAt
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("timer never scheduled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.Close()
	st.Close()

	st = openStore(t, dir)
	defer st.Close()
	e = newEngine(t, st)
	defer e.Close()
	done, err := e.Wait(ctx, inv.ID)
	if err != nil || done.Status != core.StatusCompleted {
		t.Fatalf("%+v %v", done, err)
	}
	if done.EndedAt.Before(fireAt) {
		t.Errorf("ended at %v, before the recorded deadline %v", done.EndedAt, fireAt)
	}
	if late := done.EndedAt.Sub(fireAt); late > 2*time.Second {
		t.Errorf("ended %v after the deadline", late)
	}
	hits, total := c.snapshot()
	if total != 2 {
		t.Errorf("endpoints hit %d times (%v), want 2", total, hits)
	}
}
