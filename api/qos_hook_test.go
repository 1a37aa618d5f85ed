package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/qos"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/sqlite"
)

// TestQoSHooksAreDeferred drives hooks through the API of a real engine
// whose gates are held: a hook is never refused for overload (its start
// waits at G1, past a full admission queue), only over its namespace's
// quota (429 with Retry-After); one whose deadline passes while it waits
// is accepted and recorded as faulted with a deadline error. The queued
// starts and calls show in baton_qos_queue_depth by gate, class and
// namespace.
func TestQoSHooksAreDeferred(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pols := policy.NewService(&policy.Server{}, &memStates{})
	rate := 0.001
	if err := pols.Put(ctx, "limited", &policy.Policy{QoS: policy.QoS{Rate: &rate}}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	released := false
	free := func() {
		if !released {
			released = true
			close(release)
		}
	}
	defer free()
	blocked := engine.ExecutorFunc(func(ctx context.Context, req *engine.CallRequest) (engine.CallResult, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return engine.CallResult{Output: "done"}, nil
	})
	sched := qos.New(qos.Options{Seats: map[string]int{qos.PoolWasm: 1}, BacklogTarget: 1, QueueLimit: 1})
	reg := prometheus.NewRegistry()
	reg.MustRegister(sched)
	eng, err := engine.New(engine.Options{Store: st, EventLog: events.NewLog(st, nil, nil), Policies: pols, QoS: sched,
		Executors: map[string]engine.Executor{"*": blocked}})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	srv := httptest.NewServer(api.NewHandler(eng, api.WithPolicies(pols), api.WithMetrics(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))))
	t.Cleanup(srv.Close)
	for _, ns := range []string{"default", "limited"} {
		doc := strings.NewReplacer("NS", ns, "NAME", "work").Replace(qosCallDoc)
		if _, err := eng.ApplyWorkflow(ctx, "w.yaml", []byte(doc)); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.CreateTrigger(ctx, &store.Trigger{Name: "hook-" + ns, Namespace: ns, Workflow: "work", Kind: engine.TriggerHTTP, Spec: ns}); err != nil {
			t.Fatal(err)
		}
	}
	do := func(method, path string, headers map[string]string) response {
		t.Helper()
		var in io.Reader
		if method == http.MethodPost {
			in = strings.NewReader(`{}`)
		}
		req, _ := http.NewRequest(method, srv.URL+path, in)
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Error(err)
			return response{}
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return response{status: resp.StatusCode, header: resp.Header, body: body}
	}
	later := func(method, path string, headers map[string]string) <-chan response {
		ch := make(chan response, 1)
		go func() { ch <- do(method, path, headers) }()
		return ch
	}
	waitFor := func(what string, cond func(qos.Status) bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(sched.Status()); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s: %+v", what, sched.Status())
			}
		}
	}
	queuedStarts := func(s qos.Status) int {
		n := 0
		for _, q := range s.Admission.Queued {
			n += q.Count
		}
		return n
	}

	// The namespace's one token goes to the first hook, whose call takes
	// the one seat; the next is over the quota: 429, which the sender
	// retries.
	if r := do(http.MethodPost, "/v1/hooks/limited", nil); r.status != http.StatusAccepted {
		t.Fatalf("first hook: %d %s", r.status, r.body)
	}
	r := do(http.MethodPost, "/v1/hooks/limited", nil)
	var p api.RejectionProblem
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || json.Unmarshal(r.body, &p) != nil ||
		p.Reason != qos.ReasonQuota || p.Namespace != "limited" {
		t.Fatalf("a hook over its quota: %d %v %s, want 429 with Retry-After", r.status, r.header, r.body)
	}

	// A second call waits at G2, which holds starts at G1; a client's
	// start fills the admission queue (limit 1).
	if r := do(http.MethodPost, "/v1/workflows/default/work/invocations", nil); r.status != http.StatusAccepted {
		t.Fatalf("second start: %d %s", r.status, r.body)
	}
	waitFor("call queued at G2", func(s qos.Status) bool { return queuedCalls(s) == 1 })
	client := later(http.MethodPost, "/v1/workflows/default/work/invocations", map[string]string{qos.HeaderClass: "batch"})
	waitFor("start queued at G1", func(s qos.Status) bool { return queuedStarts(s) == 1 })
	if r := do(http.MethodPost, "/v1/workflows/default/work/invocations", map[string]string{qos.HeaderClass: "batch"}); r.status != http.StatusServiceUnavailable {
		t.Fatalf("a client's start past the full queue: %d %s, want 503", r.status, r.body)
	}

	// A hook waits past the full queue instead of being refused.
	hook := later(http.MethodPost, "/v1/hooks/default", nil)
	waitFor("hook deferred at G1", func(s qos.Status) bool { return queuedStarts(s) == 2 })
	select {
	case r := <-hook:
		t.Fatalf("a hook answered %d %s while the gates were held, want it deferred", r.status, r.body)
	default:
	}

	var metrics string
	if r := do(http.MethodGet, "/metrics", nil); r.status == http.StatusOK {
		metrics = string(r.body)
	}
	for _, want := range []string{
		`baton_qos_queue_depth{class="batch",gate="g1",namespace="default",pool=""} 1`,
		`baton_qos_queue_depth{class="standard",gate="g1",namespace="default",pool=""} 1`,
		`baton_qos_queue_depth{class="standard",gate="g2",namespace="default",pool="wasm"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", metrics)
	}

	// A hook whose deadline passes while it waits is accepted, and its
	// invocation ends with a deadline error.
	r = do(http.MethodPost, "/v1/hooks/default", map[string]string{qos.HeaderTimeout: "100ms"})
	var id api.InvocationID
	if r.status != http.StatusAccepted || json.Unmarshal(r.body, &id) != nil {
		t.Fatalf("a hook past its deadline: %d %s, want 202", r.status, r.body)
	}
	r = do(http.MethodGet, "/v1/invocations/"+id.ID, nil)
	var inv struct {
		Status core.Status
		Error  *problem.Problem
	}
	if err := json.Unmarshal(r.body, &inv); err != nil || inv.Status != core.StatusFaulted || inv.Error == nil ||
		inv.Error.Type != engine.TypeDeadlineExceeded {
		t.Fatalf("the hook past its deadline: %d %s, want faulted with a deadline error", r.status, r.body)
	}

	// Once the gates move, the deferred hook and the client's start run.
	free()
	for name, ch := range map[string]<-chan response{"hook": hook, "client's start": client} {
		select {
		case r := <-ch:
			if r.status != http.StatusAccepted {
				t.Errorf("%s: %d %s", name, r.status, r.body)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s still waits", name)
		}
	}
}
