package sim

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/batonflow/baton/bench"
)

func small(seed uint64) Options {
	return Options{
		Functions: 60, MaxPerMinute: 4,
		Synthetic: bench.SyntheticTraceOptions{Minutes: 6 * 60},
		Seed:      seed,
		Workers:   2,
	}
}

func TestSimulationIsDeterministic(t *testing.T) {
	ctx := context.Background()
	a, err := Run(ctx, small(7))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(ctx, small(7))
	if err != nil {
		t.Fatal(err)
	}
	a.Elapsed, b.Elapsed = 0, 0
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two runs with one seed differ:\n%+v\n%+v", a.Policies, b.Policies)
	}
	if a.Functions != 60 {
		t.Fatalf("functions: %d", a.Functions)
	}
	c, err := Run(ctx, small(8))
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(a.Policies[0].Invocations, c.Policies[0].Invocations) && a.Policies[0].ColdStarts == c.Policies[0].ColdStarts {
		t.Fatal("another seed gives the same run")
	}
}

func TestPoliciesOrderAsExpected(t *testing.T) {
	res, err := Run(context.Background(), small(3))
	if err != nil {
		t.Fatal(err)
	}
	by := map[Policy]PolicyResult{}
	for _, p := range res.Policies {
		by[p.Policy] = p
		t.Logf("%-9s inv %d cold %.4f idle %.0fs", p.Policy, p.Invocations, p.ColdRate, p.IdleInstanceS)
	}
	inv := by[OnDemand].Invocations
	for _, p := range res.Policies {
		if p.Invocations != inv {
			t.Fatalf("policies saw different traffic: %d vs %d", p.Invocations, inv)
		}
	}
	if by[OnDemand].IdleInstanceS != 0 {
		t.Fatalf("on-demand kept instances idle: %v", by[OnDemand].IdleInstanceS)
	}
	if !(by[Fixed].ColdRate < by[OnDemand].ColdRate) {
		t.Fatalf("fixed keep-alive does not reduce cold starts: %v vs %v", by[Fixed].ColdRate, by[OnDemand].ColdRate)
	}
	if !(by[BatonHybrid].ColdRate < by[Hybrid].ColdRate) {
		t.Fatalf("baton+hybrid %v not below hybrid %v", by[BatonHybrid].ColdRate, by[Hybrid].ColdRate)
	}
	// Just in time with on-demand entries: fewer cold starts than on
	// demand, and far less idle memory than any keep-alive.
	if !(by[Baton].ColdRate < by[OnDemand].ColdRate) || !(by[Baton].IdleInstanceS < by[Fixed].IdleInstanceS/10) {
		t.Fatalf("baton: cold %v (on-demand %v), idle %v (fixed %v)", by[Baton].ColdRate, by[OnDemand].ColdRate, by[Baton].IdleInstanceS, by[Fixed].IdleInstanceS)
	}
}

func TestTraceReplay(t *testing.T) {
	tr := &bench.Trace{Minutes: 30, Rows: []bench.TraceRow{{Function: "a", Counts: make([]int, 30)}}}
	for m := 0; m < 30; m += 3 {
		tr.Rows[0].Counts[m] = 1
	}
	res, err := Run(context.Background(), Options{Trace: tr, MaxChain: 1, Policies: []Policy{OnDemand, Fixed}, ColdMedian: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Policies[0].ColdStarts != 10 || res.Policies[1].ColdStarts != 1 {
		t.Fatalf("cold starts on-demand %d, fixed %d", res.Policies[0].ColdStarts, res.Policies[1].ColdStarts)
	}
}

func TestParsePoliciesWithSettings(t *testing.T) {
	got, err := ParsePolicies("fixed:30m, hybrid:95,baton")
	if err != nil || len(got) != 3 {
		t.Fatalf("ParsePolicies = %v, %v", got, err)
	}
	if set, _ := got[0].settings(); set.kind != Fixed || set.keepAlive != 30*time.Minute {
		t.Fatalf("fixed:30m = %+v", set)
	}
	if set, _ := got[1].settings(); set.kind != Hybrid || set.tail != 95 {
		t.Fatalf("hybrid:95 = %+v", set)
	}
	for _, bad := range []string{"fixed:soon", "hybrid:100", "baton:3", "lru"} {
		if _, err := ParsePolicies(bad); err == nil {
			t.Errorf("ParsePolicies(%q) accepted", bad)
		}
	}

	// The settings take effect: a longer keep-alive holds more memory
	// and starts cold less often, a lower tail percentile less memory.
	opts := small(5)
	opts.Policies = []Policy{"fixed:1m", "fixed:30m", "hybrid:80", "hybrid"}
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Policies
	if !(p[1].IdleInstanceS > p[0].IdleInstanceS && p[1].ColdStarts < p[0].ColdStarts) {
		t.Errorf("fixed:30m against fixed:1m: %+v vs %+v", p[1], p[0])
	}
	if !(p[2].IdleInstanceS < p[3].IdleInstanceS) {
		t.Errorf("hybrid:80 against hybrid (99): idle %v vs %v", p[2].IdleInstanceS, p[3].IdleInstanceS)
	}
}
