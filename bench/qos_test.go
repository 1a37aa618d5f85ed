package bench

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/lang"
	"github.com/batonflow/baton/qos"
)

func TestSpinWorkflowParses(t *testing.T) {
	for _, steps := range []int{1, 3} {
		src := spinWorkflow(Tenant{Name: "h", Class: "critical"}, steps, 1234)
		def, _, err := lang.Parse("w.yaml", []byte(src), lang.Options{})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if c, ok := engine.DefaultClass(def); !ok || c.String() != "critical" || len(def.Do) != steps || engine.Durable(def) {
			t.Errorf("steps %d: class %v %v, %d tasks, durable %v", steps, c, ok, len(def.Do), engine.Durable(def))
		}
	}
}

func TestTenantStats(t *testing.T) {
	h := Tenant{Name: "h", Deadline: 200 * time.Millisecond}
	recs := []*qosRecord{
		{arrival: 100 * time.Millisecond, latency: 50 * time.Millisecond, outcome: "completed", attempts: 1},
		{arrival: 1500 * time.Millisecond, latency: 300 * time.Millisecond, outcome: "completed", attempts: 1},
		{arrival: 1600 * time.Millisecond, outcome: "rejected:deadline_infeasible", attempts: 1},
		{arrival: 1700 * time.Millisecond, outcome: "failed", attempts: 2},
		{arrival: 1800 * time.Millisecond, outcome: "unfinished", attempts: 1},
	}
	ts := tenantStats(h, recs, 2*time.Second)
	if ts.Offered != 5 || ts.Completed != 2 || ts.FailedMidway != 1 || ts.Unfinished != 1 || ts.Retries != 1 ||
		ts.Rejected["deadline_infeasible"] != 1 {
		t.Fatalf("%+v", ts)
	}
	if ts.DeadlineMet != 0.2 || ts.Completions[0] != 1 || ts.Completions[1] != 1 {
		t.Errorf("%+v", ts)
	}
	// Seen in the first second: the first start's 50 ms; in the second:
	// the second's 300 ms and the unfinished one's age at 2 s, 200 ms.
	if want := []float64{50, 300}; !slices.Equal(ts.SeenP99Series, want) || ts.P99EarlyMs != 50 || ts.P99LateMs != 300 {
		t.Errorf("seen p99 %v (early %v, late %v), want %v", ts.SeenP99Series, ts.P99EarlyMs, ts.P99LateMs, want)
	}
}

// TestSeenLatencyGrows: a backlog that keeps growing shows in the latency
// seen over the run's time, although by arrival time the latencies fall
// (the last starts to arrive are served as the run drains) and the
// starts never answered have none.
func TestSeenLatencyGrows(t *testing.T) {
	h := Tenant{Name: "h"}
	var recs []*qosRecord
	const run = 20 * time.Second
	for i := range 200 {
		arrival := time.Duration(i) * 100 * time.Millisecond
		r := &qosRecord{arrival: arrival, attempts: 1, outcome: "completed"}
		switch {
		case arrival < 10*time.Second:
			// Waited as long as the run had run: the backlog's age.
			r.latency = arrival + 100*time.Millisecond
		case i%2 == 0:
			// Answered quickly once arrivals stopped: by arrival time the
			// second half looks better than the first.
			r.latency = 200 * time.Millisecond
		default:
			r.outcome = "unfinished"
		}
		recs = append(recs, r)
	}
	ts := tenantStats(h, recs, run)
	if ts.P99LateMs < 2*ts.P99EarlyMs {
		t.Errorf("seen p99 early %v ms, late %v ms: the growth does not show (%v)", ts.P99EarlyMs, ts.P99LateMs, ts.SeenP99Series)
	}
	res := &QoSResults{Runs: []QoSRun{{Name: "FIFO", Tenants: []TenantStats{ts}}}}
	if lines := strings.Join(qosTargets(res), "\n"); !strings.Contains(lines, "PASS  under FIFO, H p99 grows") {
		t.Errorf("targets:\n%s", lines)
	}
	// A steady tenant's latency does not grow.
	for _, r := range recs {
		r.outcome, r.latency = "completed", 50*time.Millisecond
	}
	ts = tenantStats(h, recs, run)
	res.Runs[0].Tenants[0] = ts
	if lines := strings.Join(qosTargets(res), "\n"); !strings.Contains(lines, "MISS  under FIFO, H p99 grows") {
		t.Errorf("a steady latency passed as growing: %v\n%s", ts.SeenP99Series, lines)
	}
}

// TestGoodputCountsTheLoadsWindow: goodput counts the calls of the
// workflows that ended while the load lasted, after its first fifth,
// and h's only within their deadline; what ends in the drain does not
// count, however much of it there is.
func TestGoodputCountsTheLoadsWindow(t *testing.T) {
	h := Tenant{Name: "h", Deadline: 200 * time.Millisecond}
	s := Tenant{Name: "s1"}
	const arrivals = 10 * time.Second
	done := func(at, took time.Duration, steps int) *qosRecord {
		return &qosRecord{arrival: at, latency: took, steps: steps, outcome: "completed", attempts: 1}
	}
	records := [][]*qosRecord{
		{
			done(3*time.Second, 100*time.Millisecond, 3),        // counts 3 calls
			done(4*time.Second, 300*time.Millisecond, 1),        // past its deadline
			done(1*time.Second, 50*time.Millisecond, 3),         // ended in the warm-up
			done(9990*time.Millisecond, 50*time.Millisecond, 1), // ended in the drain
		},
		{
			done(5*time.Second, 2*time.Second, 1), // counts
			done(9*time.Second, 3*time.Second, 1), // ended in the drain
			{arrival: 6 * time.Second, steps: 1, outcome: "rejected:overloaded", attempts: 3},
			{arrival: 7 * time.Second, latency: time.Second, steps: 1, outcome: "failed", attempts: 1},
		},
	}
	calls, workflows := goodput([]Tenant{h, s}, records, arrivals)
	// 4 calls and 2 workflows over the 8 s from 2 s to 10 s.
	if calls != 0.5 || workflows != 0.25 {
		t.Errorf("goodput %v calls/s, %v workflows/s; want 0.5 and 0.25", calls, workflows)
	}
	// By the second each useful workflow ended, drain included, the
	// one that ended at 12 s past the timeline's end dropped.
	want := []int{0, 3, 0, 3, 0, 0, 0, 1, 0, 0, 1, 0}
	if got := usefulByEnd([]Tenant{h, s}, records, 12); !slices.Equal(got, want) {
		t.Errorf("useful calls by end %v, want %v", got, want)
	}
}

func TestQoSTargets(t *testing.T) {
	res := &QoSResults{Mu: 100, Runs: []QoSRun{
		{Name: "L0", Tenants: []TenantStats{{Tenant: "h", P99Ms: 100}}},
		{Name: "QoS", Goodput: 96, RetryAfterOK: true, RejectP99Ms: 2, Tenants: []TenantStats{
			{Tenant: "h", P99Ms: 120, DeadlineMet: 0.995}, {Tenant: "s1", Completed: 100}, {Tenant: "s2", Completed: 95}}},
	}}
	lines := strings.Join(qosTargets(res), "\n")
	if strings.Contains(lines, "MISS") || strings.Count(lines, "PASS") != 7 {
		t.Errorf("targets:\n%s", lines)
	}
	res.Runs[1].Tenants[0].P99Ms = 200
	if !strings.Contains(strings.Join(qosTargets(res), "\n"), "MISS  H p99") {
		t.Error("a p99 over 1.25 × L0 passed")
	}
}

func TestGateWaits(t *testing.T) {
	s := qos.New(qos.Options{})
	ctx := context.Background()
	if w, err := gateWaits(s, "critical", "h"); err != nil || w != nil {
		t.Fatalf("waits before any: %+v %v", w, err)
	}
	tk, err := s.Admit(ctx, qos.Start{Class: qos.Critical, Namespace: "h"})
	if err != nil {
		t.Fatal(err)
	}
	seat, err := s.Seat(ctx, qos.Call{Pool: qos.PoolWasm, Class: qos.Critical, Flow: "h", Admission: tk})
	if err != nil {
		t.Fatal(err)
	}
	seat.Release()
	w, err := gateWaits(s, "critical", "h")
	if err != nil {
		t.Fatal(err)
	}
	// No wait at either gate: the first bucket, 0.5 ms.
	if w == nil || w.G1P50Ms != 0.5 || w.G1P99Ms != 0.5 || w.G2P50Ms != 0.5 || w.G2P99Ms != 0.5 {
		t.Errorf("waits %+v, want every quantile in the first bucket", w)
	}
	if w, _ := gateWaits(s, "standard", "s1"); w != nil {
		t.Errorf("waits of a tenant that made no start: %+v", w)
	}
}
