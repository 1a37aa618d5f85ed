package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/lang"
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
	if ts.DeadlineMet != 0.2 || ts.P99FirstHalfMs != 50 || ts.P99SecondHalfMs != 300 || ts.Completions[0] != 1 || ts.Completions[1] != 1 {
		t.Errorf("%+v", ts)
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
