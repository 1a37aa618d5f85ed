package bench

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/function"
)

func TestIdleMeterIntegratesIdleAndStartingTime(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(1000, 0).Add(time.Duration(ms) * time.Millisecond) }
	m := newIdleMeter()
	for _, e := range []function.Event{
		// a: starts 4ms (ending at 10), idles 5ms, serves, idles 20ms
		// until evicted.
		{Kind: function.EventCreated, Time: at(10), Function: "a", Instance: "a1", Phases: function.Phases{Instantiate: 3 * time.Millisecond, Init: time.Millisecond}},
		{Kind: function.EventBusy, Time: at(15), Function: "a", Instance: "a1"},
		{Kind: function.EventIdle, Time: at(25), Function: "a", Instance: "a1"},
		{Kind: function.EventEvicted, Time: at(45), Function: "a", Instance: "a1"},
		// b: starts 2ms (ending at 100) and is still idle at the end.
		{Kind: function.EventCreated, Time: at(100), Function: "b", Instance: "b1", Phases: function.Phases{Init: 2 * time.Millisecond}},
	} {
		m.Observe(e)
	}
	m.finish(at(130))

	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
	if got := m.idleSeconds([]string{"a"}, at(0), at(200)); !near(got, 0.025) {
		t.Errorf("a idle %v s, want 0.025", got)
	}
	if got := m.idleSeconds([]string{"a", "b"}, at(0), at(200)); !near(got, 0.055) {
		t.Errorf("a+b idle %v s, want 0.055", got)
	}
	// A window clips the spans: from 30ms, a idles 15ms and b 30ms.
	if got := m.idleSeconds([]string{"a", "b"}, at(30), at(200)); !near(got, 0.045) {
		t.Errorf("idle from 30ms %v s, want 0.045", got)
	}
	if got := m.startSeconds([]string{"a", "b"}, at(0), at(200)); !near(got, 0.006) {
		t.Errorf("starting %v s, want 0.006", got)
	}
	// Starts are counted by when they began: b's, from 98ms.
	if d := m.startDurations(at(50), at(200)); d.Count != 1 || !near(d.P50, 2) {
		t.Errorf("start durations from 50ms: %+v, want one of 2ms", d)
	}
}

// The scenario end to end on a short run: every measured invocation
// completes, on-demand starts every call cold, a fixed keep-alive none
// after the first round but those a busy kept instance forces, Baton fewer
// than on-demand, and the report
// compares Baton with on-demand.
func TestRunColdstartComparesPolicies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm module")
	}
	const interval = 2 * time.Second
	res, err := RunColdstart(context.Background(), ColdstartOptions{
		Shapes: []string{"chain"}, Policies: []string{"on-demand", "fixed", "baton"},
		// Long enough apart that a chain of ten cold starts, slow under
		// the race detector, ends before the next round.
		Rounds: 3, Warmup: 1, Interval: interval,
		CacheDir: t.TempDir(), WasmSource: "../examples/functions/hello-go", Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]ColdstartRow{}
	for _, r := range res.Rows {
		rows[r.Policy] = r
		if r.Invocations != 2 || r.Failed != 0 {
			t.Errorf("%s: %d measured invocations, %d failed; want 2 and 0", r.Policy, r.Invocations, r.Failed)
		}
	}
	// The counts below hold when each round's chains end before the next
	// round starts. On a machine so loaded that a chain of cold starts
	// takes most of the interval (the warm-up round of a keep-alive
	// policy runs cold too), invocations of one workflow overlap and hand
	// instances to each other: the counts then say nothing about the
	// policies.
	if od := rows["on-demand"]; od.P99Ms > float64(interval.Milliseconds())/2 {
		t.Logf("on-demand's chain took up to %.0f ms of the %v interval: rounds may overlap, instance counts not checked", od.P99Ms, interval)
		checkColdstartTable(t, res)
		return
	}
	if r := rows["on-demand"]; r.ColdStarts != 20 || r.ColdPathMs <= 0 || r.InstanceStarts != 30 {
		t.Errorf("on-demand: %d cold starts, %.2f ms cold path, %d instances; want 20, > 0, 30", r.ColdStarts, r.ColdPathMs, r.InstanceStarts)
	}
	// A fixed keep-alive starts the chain's ten instances in the warm-up
	// round and keeps them: a measured call starts an instance only when
	// its kept one is still busy with the previous round, which happens
	// when a loaded machine makes a chain outlast the interval. So every
	// instance beyond the ten is a measured cold start, and there are
	// fewer of those than on demand.
	if r, od := rows["fixed"], rows["on-demand"]; r.InstanceStarts-r.ColdStarts != 10 || r.ColdStarts >= od.ColdStarts ||
		r.ColdPathMs >= od.ColdPathMs || r.IdleInstanceS <= 0 {
		t.Errorf("fixed: %d cold starts, %.2f ms cold path, %d instances, %.3f idle s; want instances = 10 + cold starts, fewer cold starts and less cold path than on-demand's %d and %.2f ms, idle > 0",
			r.ColdStarts, r.ColdPathMs, r.InstanceStarts, r.IdleInstanceS, od.ColdStarts, od.ColdPathMs)
	}
	// Every policy holds memory without serving: on-demand while its
	// instances start, fixed while they idle.
	for _, p := range []string{"on-demand", "fixed"} {
		if r := rows[p]; r.HeldMBs <= 0 {
			t.Errorf("%s: held %.3f MB-s, want > 0 (instances report their linear memory)", p, r.HeldMBs)
		}
	}
	// Baton's planner prepares each chain's next function ahead of its
	// call, so fewer calls start their own instance than on demand, where
	// every call does. (Its latency is not compared: on a loaded machine
	// a prepare may still be starting when the call comes.)
	if b, od := rows["baton"], rows["on-demand"]; b.ColdStarts >= od.ColdStarts || b.InstanceStarts <= b.ColdStarts {
		t.Errorf("baton: %d cold starts of %d instances started, on-demand %d cold starts; want fewer cold starts than on-demand and prepared instances",
			b.ColdStarts, b.InstanceStarts, od.ColdStarts)
	}
	if res.StartMs.Count < 20 || res.StartMs.P50 <= 0 {
		t.Errorf("start durations %+v, want on-demand's 20 starts at least", res.StartMs)
	}
	checkColdstartTable(t, res)
}

// checkColdstartTable checks that the report compares Baton with
// on-demand.
func checkColdstartTable(t *testing.T, res *ColdstartResults) {
	t.Helper()
	var table strings.Builder
	if err := WriteColdstartTable(&table, res); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + table.String())
	for _, want := range []string{"| chain | on-demand | 2 |", "instance starts in the measured rounds:", "chain: baton removes"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// TestStartHogsStops: the hogs run until stopped, and stopping reaps them.
func TestStartHogsStops(t *testing.T) {
	if _, err := startHogs(1, nil); err == nil {
		t.Fatal("a hog without a command started")
	}
	stop, err := startHogs(2, []string{"/bin/sh", "-c", "while :; do :; done"})
	if err != nil {
		t.Fatal(err)
	}
	stop()
}

// The workflows are durable unless asked otherwise; with durability none
// the engine keeps no history for them, so no commit sits between a call
// and the next.
func TestColdstartWorkflowDurability(t *testing.T) {
	for _, shape := range ColdstartShapes {
		for _, durability := range []string{"durable", "none"} {
			src := coldstartWorkflow(shape, "baton", 0.7, 10*time.Millisecond, durability)
			def, err := dsl.Parse("cs.yaml", []byte(src))
			if err != nil {
				t.Fatalf("%s, %s: %v\n%s", shape, durability, err, src)
			}
			if got, want := engine.Durable(def), durability == "durable"; got != want {
				t.Errorf("%s, %s: durable %v, want %v", shape, durability, got, want)
			}
		}
	}
	opts := ColdstartOptions{Durability: "sometimes"}
	if err := opts.defaults(); err == nil || !strings.Contains(err.Error(), "durable or none") {
		t.Errorf("durability %q accepted (err %v)", opts.Durability, err)
	}
	opts = ColdstartOptions{}
	if err := opts.defaults(); err != nil || opts.Durability != "durable" {
		t.Errorf("default durability %q (err %v), want durable", opts.Durability, err)
	}
}

// Without durability the engine keeps no history once an invocation ends:
// the cold starts are read from the calls the harness saw instead, so
// on-demand's still count, one per call.
func TestRunColdstartWithoutDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm module")
	}
	res, err := RunColdstart(context.Background(), ColdstartOptions{
		Shapes: []string{"chain"}, Policies: []string{"on-demand"}, Durability: "none",
		Rounds: 3, Warmup: 1, Interval: 2 * time.Second,
		CacheDir: t.TempDir(), WasmSource: "../examples/functions/hello-go", Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Durability != "none" || len(res.Rows) != 1 {
		t.Fatalf("durability %q, rows %+v", res.Durability, res.Rows)
	}
	if r := res.Rows[0]; r.Invocations != 2 || r.Failed != 0 || r.ColdStarts != 20 || r.ColdPathMs <= 0 {
		t.Errorf("on-demand without durability: %d invocations (%d failed), %d cold starts, %.2f ms cold path; want 2, 0, 20, > 0",
			r.Invocations, r.Failed, r.ColdStarts, r.ColdPathMs)
	}
}
