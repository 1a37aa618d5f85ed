package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// failingBody fails the test that reads it: a refusal must be decided
// before the request's body is read.
type failingBody struct{ t testing.TB }

func (b failingBody) Read([]byte) (int, error) {
	b.t.Error("the body of a refused start was read")
	return 0, io.ErrUnexpectedEOF
}

func (failingBody) Close() error { return nil }

// refusingEngine is a real engine with QoS whose one wasm seat is held and
// whose queue is long, so that a start with a 200ms deadline is infeasible.
func refusingEngine(tb testing.TB) (*engine.Engine, http.Handler, *qos.Scheduler, func()) {
	ctx := context.Background()
	release := make(chan struct{})
	blocked := engine.ExecutorFunc(func(ctx context.Context, req *engine.CallRequest) (engine.CallResult, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return engine.CallResult{Output: "done"}, nil
	})
	sched := qos.New(qos.Options{Seats: map[string]int{qos.PoolWasm: 1}, BacklogTarget: 1, DefaultCost: 100 * time.Millisecond})
	eng, srv := startRealEngine(tb, engine.Options{QoS: sched, Executors: map[string]engine.Executor{"*": blocked}})
	doc := strings.NewReplacer("NS", "default", "NAME", "work").Replace(qosCallDoc)
	if _, err := eng.ApplyWorkflow(ctx, "w.yaml", []byte(doc)); err != nil {
		tb.Fatal(err)
	}
	// One start holds the seat, one waits for a seat at G2; the next ones
	// queue at G1 behind it.
	for range 2 {
		if _, err := eng.Invoke(ctx, "default", "work", "1.0.0", nil); err != nil {
			tb.Fatal(err)
		}
	}
	for range 3 {
		go func() {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() { <-release; cancel() }()
			_, _ = eng.Invoke(qos.WithRequest(ctx, qos.Request{}), "default", "work", "1.0.0", nil)
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if st := sched.Status(); len(st.Admission.Queued) > 0 && st.Admission.Queued[0].Count == 3 {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the starts did not queue: %+v", sched.Status())
		}
	}
	return eng, srv.Config.Handler, sched, func() { close(release) }
}

// TestQoSRefusalBeforeTheBody: a start the server would refuse at once is
// refused before its body is read, with the same problem document and
// Retry-After as any refusal; a keyed start goes the ordinary way.
func TestQoSRefusalBeforeTheBody(t *testing.T) {
	_, h, sched, stop := refusingEngine(t)
	defer stop()
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/v1/workflows/default/work/invocations?version=1.0.0", nil)
	req.Body = failingBody{t}
	req.Header.Set(qos.HeaderTimeout, "200ms")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var p api.RejectionProblem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	secs, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	if err != nil || secs < 1 || p.RetryAfter != secs || p.Reason != qos.ReasonInfeasible || p.Class != "standard" ||
		p.Namespace != "default" || p.Type != api.TypeOverloaded || rec.Header().Get(qos.HeaderFlow) != "default" {
		t.Errorf("refusal %v %+v", rec.Header(), p)
	}
	if st := sched.Status(); len(st.Rejected) != 1 || st.Rejected[0].Count != 1 || st.Rejected[0].Reason != qos.ReasonInfeasible {
		t.Errorf("rejections counted %+v", st.Rejected)
	}

	// A keyed start may be a retry the key answers: it is read and goes
	// through the engine (which refuses it there, the key being new).
	req = httptest.NewRequest(http.MethodPost, "http://127.0.0.1/v1/workflows/default/work/invocations?version=1.0.0", strings.NewReader("{}"))
	req.Header.Set(qos.HeaderTimeout, "200ms")
	req.Header.Set(api.IdempotencyKeyHeader, "k1")
	req.Header.Set("Content-Type", "application/json")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), string(qos.ReasonInfeasible)) {
		t.Fatalf("keyed start: %d %s", rec.Code, rec.Body)
	}
}

// hideRefuseEarly hides the engine's RefuseEarly: every start takes the
// ordinary way (body, workflow, policy, G1 under its lock).
type hideRefuseEarly struct{ api.Engine }

// BenchmarkQoSRefusal is the server's time to refuse a start it cannot
// serve in time, through the HTTP handler chain, from parallel clients
// while the gates are busy seating calls: early (before the body and the
// workflow, without the gates' lock) and the ordinary way. It reports the
// p50 and p99 of the refusals besides their mean.
func BenchmarkQoSRefusal(b *testing.B) {
	eng, h, sched, stop := refusingEngine(b)
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		go func() {
			for ctx.Err() == nil {
				if seat, err := sched.Seat(ctx, qos.Call{Pool: qos.PoolHTTP, Class: qos.Critical, Flow: "h"}); err == nil {
					seat.Release()
				}
			}
		}()
	}
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"early", h}, {"ordinary", api.NewHandler(hideRefuseEarly{eng})}} {
		b.Run(bc.name, func(b *testing.B) {
			var mu sync.Mutex
			var took []time.Duration
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/v1/workflows/default/work/invocations?version=1.0.0", strings.NewReader("{}"))
					req.Header.Set(qos.HeaderTimeout, "200ms")
					req.Header.Set("Content-Type", "application/json")
					rec := httptest.NewRecorder()
					began := time.Now()
					bc.h.ServeHTTP(rec, req)
					mine = append(mine, time.Since(began))
					if rec.Code != http.StatusServiceUnavailable {
						panic(fmt.Sprintf("status %d: %s", rec.Code, rec.Body))
					}
				}
				mu.Lock()
				took = append(took, mine...)
				mu.Unlock()
			})
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
		})
	}
}
