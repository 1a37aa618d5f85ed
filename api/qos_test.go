package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/qos"
)

const qosCallDoc = `
document: {dsl: '1.0.0', namespace: NS, name: NAME, version: '1.0.0'}
do:
  - work:
      call: fn
`

// TestQoSRejectionsOverHTTP drives the real engine with QoS through the
// API: a namespace over its rate quota gets 429, a deadline that cannot be
// met 503, a start queued past its deadline 504; each with a jittered
// Retry-After and a problem document naming reason, class and namespace.
func TestQoSRejectionsOverHTTP(t *testing.T) {
	ctx := context.Background()
	pols := policy.NewService(&policy.Server{}, &memStates{})
	rate := 0.001
	if err := pols.Put(ctx, "limited", &policy.Policy{QoS: policy.QoS{Rate: &rate}}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	blocked := engine.ExecutorFunc(func(ctx context.Context, req *engine.CallRequest) (engine.CallResult, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return engine.CallResult{Output: "done"}, nil
	})
	sched := qos.New(qos.Options{Seats: map[string]int{qos.PoolWasm: 1}, BacklogTarget: 1})
	eng, srv := startRealEngine(t, engine.Options{Policies: pols, QoS: sched, Executors: map[string]engine.Executor{"*": blocked}}, api.WithPolicies(pols))
	for _, ns := range []string{"default", "limited"} {
		doc := strings.NewReplacer("NS", ns, "NAME", "work").Replace(qosCallDoc)
		if _, err := eng.ApplyWorkflow(ctx, "w.yaml", []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	start := func(ns string, headers map[string]string) response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/workflows/"+ns+"/work/invocations", nil)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return response{status: resp.StatusCode, header: resp.Header, body: body}
	}
	check := func(name string, r response, status int, reason qos.Reason, class, ns string) {
		t.Helper()
		if r.status != status {
			t.Fatalf("%s: status %d, want %d: %s", name, r.status, status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != api.ProblemContentType {
			t.Errorf("%s: Content-Type %q", name, ct)
		}
		secs, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || secs < 1 {
			t.Errorf("%s: Retry-After %q", name, r.header.Get("Retry-After"))
		}
		var p api.RejectionProblem
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Reason != reason || p.Class != class || p.Namespace != ns || p.Status != status || p.RetryAfter != secs || p.Type == "" {
			t.Errorf("%s: problem %+v", name, p)
		}
		if r.header.Get(qos.HeaderClass) != class || r.header.Get(qos.HeaderFlow) != ns {
			t.Errorf("%s: headers %v", name, r.header)
		}
	}

	// The namespace's one token goes to the first start; the next is 429.
	if r := start("limited", nil); r.status != http.StatusAccepted {
		t.Fatalf("first start: %d %s", r.status, r.body)
	}
	check("quota", start("limited", map[string]string{qos.HeaderClass: "batch"}), 429, qos.ReasonQuota, "batch", "limited")

	// A deadline already passed cannot be met: 503 at once.
	past := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	check("infeasible", start("default", map[string]string{qos.HeaderDeadline: past}), 503, qos.ReasonInfeasible, "standard", "default")

	// The limited start holds the one seat; a second waits at G2, which
	// holds new starts at G1 past a 100ms deadline: 504.
	if r := start("default", nil); r.status != http.StatusAccepted {
		t.Fatalf("second start: %d %s", r.status, r.body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for queuedCalls(sched.Status()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no call queued at G2")
		}
		time.Sleep(5 * time.Millisecond)
	}
	check("deadline", start("default", map[string]string{qos.HeaderTimeout: "100ms"}), 504, qos.ReasonDeadline, "standard", "default")

	// Bad headers are the client's error.
	if r := start("default", map[string]string{qos.HeaderClass: "urgent"}); r.status != http.StatusBadRequest {
		t.Errorf("unknown class: %d %s", r.status, r.body)
	}

	// GET /v1/qos shows the queue and the rejections.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/qos", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var status qos.Status
	if err := json.NewDecoder(resp.Body).Decode(&status); err != nil || !status.Enabled {
		t.Fatalf("GET /v1/qos: %v %+v", err, status)
	}
	if queuedCalls(status) != 1 || len(status.Rejected) != 3 {
		t.Errorf("status %+v", status)
	}
}

func queuedCalls(s qos.Status) int {
	n := 0
	for _, p := range s.Pools {
		for _, q := range p.Queued {
			n += q.Count
		}
	}
	return n
}
