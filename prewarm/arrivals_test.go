package prewarm

import (
	"testing"
	"time"
)

func TestArrivalPatternPredictsOnlyRegularArrivals(t *testing.T) {
	tests := []struct {
		name    string
		gaps    []time.Duration
		regular bool
		next    time.Duration // after the last arrival
	}{
		{"too few", []time.Duration{time.Second, time.Second, time.Second}, false, 0},
		{"periodic", []time.Duration{time.Second, time.Second, time.Second, time.Second}, true, time.Second},
		{"jitter within tolerance", []time.Duration{1000, 1010, 990, 1005, 995}, true, 1000},
		{"one missed tick is an outlier", []time.Duration{1000, 1000, 2000, 1000, 1000}, true, 1000},
		{"irregular", []time.Duration{100, 2000, 700, 50, 1300}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a arrivalPattern
			at := t0
			a.observe(at)
			for _, g := range tt.gaps {
				at = at.Add(g * scaleFor(tt.gaps))
				a.observe(at)
			}
			next, _, ok := a.predict(0.05)
			if ok != tt.regular {
				t.Fatalf("regular = %v, want %v", ok, tt.regular)
			}
			if ok && !next.Equal(at.Add(tt.next*scaleFor(tt.gaps))) {
				t.Fatalf("next arrival %v after the last, want %v", next.Sub(at), tt.next*scaleFor(tt.gaps))
			}
		})
	}
	var a arrivalPattern
	a.observe(t0.Add(time.Second))
	a.observe(t0) // a resumed invocation: out of order, ignored
	if a.n != 0 || !a.last.Equal(t0.Add(time.Second)) {
		t.Fatalf("an arrival out of order was recorded: %+v", a)
	}
}

// scaleFor reads bare numbers as milliseconds.
func scaleFor(gaps []time.Duration) time.Duration {
	if gaps[0] < time.Microsecond {
		return time.Millisecond
	}
	return 1
}

const fanDoc = `do:
  - fan:
      fork:
        branches:
          - b0: {call: f0}
          - b1: {call: f1}
  - join: {call: fj}
`

// A workflow invoked every two seconds has its entry functions prepared
// just in time for the next invocation, which takes the prepared calls
// over, so that they are not prepared twice.
func TestPlannerPreparesRegularArrivals(t *testing.T) {
	def := parse(t, fanDoc)
	p, clock, prep := newTestPlanner(Options{PrepareSlots: 1})
	m := Compile(def, nil)
	p.Stats().ObserveTask(m.ID, "/do/0/fan/fork/branches/0/b0", 10*time.Millisecond)
	p.Stats().ObserveTask(m.ID, "/do/0/fan/fork/branches/1/b1", 10*time.Millisecond)
	for _, fn := range []string{"f0", "f1", "fj"} {
		p.Stats().ObserveCold(fn, 5*time.Millisecond)
	}
	const period = 2 * time.Second
	run := func(k int) {
		at := t0.Add(time.Duration(k) * period)
		clock.Advance(at)
		id := "i" + string(rune('0'+k))
		p.InvocationStarted(id, def, at)
		p.TaskStarted(id, "/do/0/fan", "/do/0/fan", "fan", at)
		p.TaskStarted(id, "/do/0/fan/fork/branches/0/b0", "/do/0/fan/fork/branches/0/b0", "b0", at)
		p.TaskStarted(id, "/do/0/fan/fork/branches/1/b1", "/do/0/fan/fork/branches/1/b1", "b1", at)
		p.TaskEnded(id, "/do/0/fan", "/do/0/fan", "fan", at.Add(10*time.Millisecond), nil)
		p.TaskStarted(id, "/do/1/join", "/do/1/join", "join", at.Add(10*time.Millisecond))
		p.InvocationEnded(id)
	}
	for k := range 5 {
		run(k)
	}
	// Four gaps seen: the sixth arrival, at 10s, is expected. Its entry
	// functions are prepared before it, one after the other (one prepare
	// slot), each ready by the margin before its call. (The fifth
	// invocation's own prepares, sent as its tasks started, go out first.)
	clock.Advance(t0.Add(4 * period))
	prep.calls = nil
	clock.Advance(t0.Add(5*period - time.Millisecond))
	got := map[string]prepareCall{}
	for _, c := range prep.calls {
		if _, dup := got[c.fn]; dup {
			t.Fatalf("%s prepared twice: %+v", c.fn, prep.calls)
		}
		got[c.fn] = c
	}
	arrival := t0.Add(5 * period)
	for _, fn := range []string{"f0", "f1"} {
		c, ok := got[fn]
		if !ok || c.by.After(arrival.Add(-2*time.Millisecond)) || !c.at.Equal(c.by.Add(-5*time.Millisecond)) {
			t.Fatalf("%s: %+v (all: %+v)", fn, c, prep.calls)
		}
	}
	if got["f0"].at.Equal(got["f1"].at) {
		t.Fatalf("prepares sharing one slot start together: %+v", prep.calls)
	}
	if _, ok := got["fj"]; ok {
		t.Fatalf("the join, due 10ms after the arrival, was prepared 1ms before it: %+v", prep.calls)
	}
	// The arrival takes the expected calls over: the branches' calls are
	// held for it, and the join is prepared once, just in time.
	clock.Advance(arrival)
	p.InvocationStarted("i5", def, arrival)
	p.TaskStarted("i5", "/do/0/fan", "/do/0/fan", "fan", arrival)
	if c, ok := p.NextCall("f0", arrival); !ok || !c.Prepared {
		t.Fatalf("the arrival did not take the prepared call over: %+v %v", c, ok)
	}
	clock.Advance(arrival.Add(20 * time.Millisecond))
	n := 0
	for _, c := range prep.calls {
		if c.fn == "fj" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("join prepared %d times: %+v", n, prep.calls)
	}
}

// TestPlannerExpectsNothingOfAWorkflowCallingNothing checks that regular
// arrivals of a workflow that calls no Baton function (only the engine's
// own baton.noop) leave no expected arrival behind: there would be
// nothing to prepare for it.
func TestPlannerExpectsNothingOfAWorkflowCallingNothing(t *testing.T) {
	def := parse(t, "do:\n  - a: {call: baton.noop}\n  - b: {call: baton.noop}\n")
	p, clock, prep := newTestPlanner(Options{})
	const period = 2 * time.Second
	for k := range 6 {
		at := t0.Add(time.Duration(k) * period)
		clock.Advance(at)
		id := "i" + string(rune('0'+k))
		p.InvocationStarted(id, def, at)
		p.TaskStarted(id, "/do/0/a", "/do/0/a", "a", at)
		p.TaskEnded(id, "/do/0/a", "/do/0/a", "a", at.Add(time.Millisecond), nil)
		p.TaskStarted(id, "/do/1/b", "/do/1/b", "b", at.Add(time.Millisecond))
		p.TaskEnded(id, "/do/1/b", "/do/1/b", "b", at.Add(2*time.Millisecond), nil)
		p.InvocationEnded(id)
	}
	p.mu.Lock()
	pending, live := len(p.pending), len(p.invocations)
	p.mu.Unlock()
	if pending != 0 || live != 0 {
		t.Fatalf("%d expected arrivals and %d invocations left for a workflow calling nothing", pending, live)
	}
	clock.Advance(t0.Add(20 * period))
	if len(prep.calls) != 0 {
		t.Fatalf("prepares: %+v", prep.calls)
	}
}
