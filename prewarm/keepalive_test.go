package prewarm

import (
	"testing"
	"time"

	"github.com/batonflow/baton/function"
)

// feed replays idle times between calls of fn on one instance.
func feed(h *Hybrid, fn string, start time.Time, idles ...time.Duration) time.Time {
	at := start
	for _, d := range idles {
		h.Observe(function.Event{Kind: function.EventBusy, Function: fn, Instance: "i", Time: at})
		at = at.Add(time.Second)
		h.Observe(function.Event{Kind: function.EventIdle, Function: fn, Instance: "i", Time: at})
		at = at.Add(d)
	}
	return at
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestOnDemandAndFixed(t *testing.T) {
	s := function.IdleState{Function: "f", IdleSince: t0, Now: t0}
	if d := (OnDemand{}).Decide(s); !d.Evict {
		t.Fatal("on-demand keeps an idle instance")
	}
	s.PreparedFor = t0.Add(time.Second)
	if d := (OnDemand{}).Decide(s); d.Evict || !d.RecheckAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("on-demand drops a prepared instance: %+v", d)
	}
	f := Fixed(10 * time.Minute)
	if d := f.Decide(function.IdleState{IdleSince: t0, Now: t0.Add(time.Minute)}); d.Evict || !d.RecheckAt.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("fixed: %+v", d)
	}
	if d := f.Decide(function.IdleState{IdleSince: t0, Now: t0.Add(10 * time.Minute)}); !d.Evict {
		t.Fatal("fixed keeps past its timeout")
	}
}

func TestHybridWindows(t *testing.T) {
	tests := []struct {
		name  string
		idles []time.Duration
		want  Windows
	}{
		{"too few samples", repeat(5*time.Minute, 5), Windows{}},
		{"periodic 5 minutes", repeat(5*time.Minute+10*time.Second, 40),
			Windows{Representative: true, PreWarm: 270 * time.Second, KeepAlive: 396*time.Second - 270*time.Second}},
		{"short idle times", repeat(10*time.Second, 40),
			Windows{Representative: true, PreWarm: 0, KeepAlive: 66 * time.Second}},
		{"mostly out of range", repeat(5*time.Hour, 20), Windows{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHybrid(HybridOptions{})
			feed(h, "f", t0, tc.idles...)
			if got := h.Windows("f"); got != tc.want {
				t.Fatalf("windows %+v, want %+v", got, tc.want)
			}
		})
	}
	// A flat histogram (idle times spread evenly over the range) predicts
	// nothing.
	h := NewHybrid(HybridOptions{BinWidth: time.Minute, Range: 20 * time.Minute})
	var spread []time.Duration
	for i := range 40 {
		spread = append(spread, time.Duration(i%20)*time.Minute+time.Second)
	}
	feed(h, "f", t0, spread...)
	if w := h.Windows("f"); w.Representative {
		t.Fatalf("flat histogram is representative: %+v", w)
	}
}

func TestHybridDecisions(t *testing.T) {
	clock := NewVirtualClock(t0)
	prep := &fakePreparer{clock: clock}
	h := NewHybrid(HybridOptions{Preparer: prep, Clock: clock, Fallback: Fixed(10 * time.Minute)})
	// Unknown function: the fallback decides.
	if d := h.Decide(function.IdleState{Function: "g", IdleSince: t0, Now: t0}); d.Evict || !d.RecheckAt.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("fallback: %+v", d)
	}
	end := feed(h, "f", t0, repeat(5*time.Minute+10*time.Second, 40)...)
	idleSince := end.Add(-5*time.Minute - 10*time.Second)
	s := function.IdleState{Function: "f", IdleSince: idleSince, Now: idleSince, Stats: function.Stats{LastInvocation: idleSince.Add(-time.Second)}}
	d := h.Decide(s)
	if !d.Evict {
		t.Fatalf("the instance is kept through the pre-warm window: %+v", d)
	}
	clock.Run()
	if len(prep.calls) != 1 || !prep.calls[0].by.Equal(idleSince.Add(270*time.Second)) {
		t.Fatalf("reload: %+v", prep.calls)
	}
	// The reloaded instance lives through the keep-alive window.
	s.PreparedFor = idleSince.Add(270 * time.Second)
	s.IdleSince, s.Now = s.PreparedFor, s.PreparedFor
	if d := h.Decide(s); d.Evict || !d.RecheckAt.Equal(idleSince.Add(396*time.Second)) {
		t.Fatalf("reloaded instance: %+v", d)
	}
	s.Now = idleSince.Add(397 * time.Second)
	if d := h.Decide(s); !d.Evict {
		t.Fatalf("kept past the tail: %+v", d)
	}
}

func TestPredictiveKeepsOnlyWithinBreakEven(t *testing.T) {
	def := parse(t, chainDoc)
	tests := []struct {
		name  string
		rule  Rule
		now   time.Duration // decision time after t0
		evict bool
	}{
		// fc is predicted at 200ms and costs 50ms to start.
		{"call within the cold start", Rule{}, 150 * time.Millisecond, false},
		{"call due now", Rule{}, 200 * time.Millisecond, false},
		{"call further than the cold start", Rule{}, 100 * time.Millisecond, true},
		{"a larger factor keeps longer", Rule{KeepFactor: 3}, 60 * time.Millisecond, false},
		{"beyond the larger factor", Rule{KeepFactor: 3}, 40 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, _ := newTestPlanner(Options{Rule: tt.rule})
			learnChain(p, def, 100*time.Millisecond, map[string]time.Duration{"fc": 50 * time.Millisecond})
			k := NewPredictive(p, Fixed(time.Minute))
			p.InvocationStarted("i", def, t0)
			p.TaskStarted("i", "/do/0/a", "/do/0/a", "a", t0)
			d := k.Decide(function.IdleState{Function: "fc", IdleSince: t0, Now: t0.Add(tt.now)})
			if d.Evict != tt.evict {
				t.Fatalf("Decide at %v = %+v, want evict %v", tt.now, d, tt.evict)
			}
			// Kept, it is looked at again just after the call is due.
			want := max(200*time.Millisecond, tt.now) + recheckAfterDue
			if !d.Evict && !d.RecheckAt.Equal(t0.Add(want)) {
				t.Fatalf("kept until %v, want %v", d.RecheckAt.Sub(t0), want)
			}
		})
	}
}

func TestPredictiveEvictsAfterUse(t *testing.T) {
	def := parse(t, chainDoc)
	p, clock, _ := newTestPlanner(Options{})
	learnChain(p, def, 100*time.Millisecond, map[string]time.Duration{"fc": 50 * time.Millisecond})
	k := NewPredictive(p, Fixed(time.Minute))
	p.InvocationStarted("i", def, t0)
	p.TaskStarted("i", "/do/0/a", "/do/0/a", "a", t0)

	// Once its prepare is sent (at 148ms), an instance that is ready
	// early is kept for the call it was prepared for, however far.
	clock.Advance(t0.Add(150 * time.Millisecond))
	if d := k.Decide(function.IdleState{Function: "fc", IdleSince: t0, Now: t0.Add(10 * time.Millisecond)}); d.Evict {
		t.Fatalf("instance prepared for a call evicted before it: %+v", d)
	}
	// The call is made: with no further call predicted, the instance is
	// evicted as soon as it is idle again.
	p.TaskEnded("i", "/do/1/b", "/do/1/b", "b", t0.Add(200*time.Millisecond), nil)
	p.TaskStarted("i", "/do/2/c", "/do/2/c", "c", t0.Add(200*time.Millisecond))
	p.Observe(function.Event{Kind: function.EventBusy, Time: t0.Add(201 * time.Millisecond), Function: "fc", Instance: "fc/1"})
	p.Observe(function.Event{Kind: function.EventIdle, Time: t0.Add(205 * time.Millisecond), Function: "fc", Instance: "fc/1"})
	if d := k.Decide(function.IdleState{Function: "fc", IdleSince: t0.Add(205 * time.Millisecond), Now: t0.Add(205 * time.Millisecond)}); !d.Evict {
		t.Fatalf("inner function kept after its call with nothing predicted: %+v", d)
	}
	// Another invocation predicting fc soon (at 251ms: the call reaches
	// the function layer 1ms after its task starts) keeps it instead.
	p.InvocationStarted("j", def, t0)
	p.TaskStarted("j", "/do/1/b", "/do/1/b", "b", t0.Add(150*time.Millisecond))
	if d := k.Decide(function.IdleState{Function: "fc", IdleSince: t0.Add(205 * time.Millisecond), Now: t0.Add(205 * time.Millisecond)}); d.Evict {
		t.Fatalf("instance evicted 45ms before a predicted call that costs 50ms to start: %+v", d)
	}
	p.InvocationEnded("i")
	p.InvocationEnded("j")
	// The entry function is left to the fallback.
	if d := k.Decide(function.IdleState{Function: "fa", IdleSince: t0, Now: t0}); d.Evict || !d.RecheckAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("entry function: %+v", d)
	}
	// With an on-demand fallback, the entry function is evicted at once.
	if d := NewPredictive(p, OnDemand{}).Decide(function.IdleState{Function: "fa", IdleSince: t0, Now: t0}); !d.Evict {
		t.Fatalf("entry function under an on-demand fallback: %+v", d)
	}
	// Per-function selection routes decisions.
	pf := &PerFunction{Default: OnDemand{}, Functions: map[string]function.KeepAlive{"fa": Fixed(time.Minute)}}
	if pf.Decide(function.IdleState{Function: "fa", IdleSince: t0, Now: t0}).Evict || !pf.Decide(function.IdleState{Function: "zz", IdleSince: t0, Now: t0}).Evict {
		t.Fatal("per-function routing")
	}
}

// The engine may invoke a function well after the task calling it
// started; an instance prepared for the call that becomes ready in
// between is held for it until the call takes an instance.
func TestPredictiveHoldsPreparedInstanceUntilTheCallTakesOne(t *testing.T) {
	def := parse(t, chainDoc)
	p, clock, _ := newTestPlanner(Options{})
	learnChain(p, def, 100*time.Millisecond, map[string]time.Duration{"fc": 50 * time.Millisecond})
	k := NewPredictive(p, OnDemand{})
	idleAt := func(at time.Duration) function.IdleState {
		return function.IdleState{Function: "fc", IdleSince: t0.Add(at), Now: t0.Add(at), PreparedFor: t0.Add(200 * time.Millisecond)}
	}

	p.InvocationStarted("i", def, t0)
	p.TaskStarted("i", "/do/0/a", "/do/0/a", "a", t0)
	clock.Advance(t0.Add(40 * time.Millisecond))
	p.Observe(function.Event{Kind: function.EventBusy, Time: clock.Now(), Function: "fa", Instance: "fa/1"})
	clock.Advance(t0.Add(150 * time.Millisecond)) // fc's prepare is sent at 148ms
	p.TaskEnded("i", "/do/1/b", "/do/1/b", "b", t0.Add(200*time.Millisecond), nil)
	p.TaskStarted("i", "/do/2/c", "/do/2/c", "c", t0.Add(200*time.Millisecond))
	// The prepared instance is ready at 230ms, before the call reaches
	// the function layer: evicting it would make the call start cold.
	if d := k.Decide(idleAt(230 * time.Millisecond)); d.Evict || !d.RecheckAt.After(t0.Add(230*time.Millisecond)) {
		t.Fatalf("prepared instance evicted while its call is being dispatched: %+v", d)
	}
	if c, ok := p.NextCall("fc", t0.Add(230*time.Millisecond)); !ok || !c.Prepared || !c.At.Equal(t0.Add(200*time.Millisecond)) {
		t.Fatalf("NextCall fc while its call is dispatched = %+v %v", c, ok)
	}
	// The call takes the instance: nothing is held for it any more.
	p.Observe(function.Event{Kind: function.EventBusy, Time: t0.Add(240 * time.Millisecond), Function: "fc", Instance: "fc/1"})
	if c, ok := p.NextCall("fc", t0.Add(240*time.Millisecond)); ok {
		t.Fatalf("a call that took an instance is still held: %+v", c)
	}
	if d := k.Decide(idleAt(250 * time.Millisecond)); !d.Evict {
		t.Fatalf("instance kept after the call it was prepared for: %+v", d)
	}

	// A call that never reaches the function layer holds the instance
	// only until its prediction lapses, and not past its invocation. Its
	// prepare is sent at 2188ms: the planner learned that calls reach
	// the function layer 40ms after their task starts.
	p.InvocationStarted("j", def, t0)
	p.TaskStarted("j", "/do/0/a", "/do/0/a", "a", t0.Add(2*time.Second))
	clock.Advance(t0.Add(2040 * time.Millisecond))
	p.Observe(function.Event{Kind: function.EventBusy, Time: clock.Now(), Function: "fa", Instance: "fa/1"})
	clock.Advance(t0.Add(2190 * time.Millisecond))
	p.TaskStarted("j", "/do/2/c", "/do/2/c", "c", t0.Add(2200*time.Millisecond))
	if _, ok := p.NextCall("fc", t0.Add(2300*time.Millisecond)); !ok {
		t.Fatal("call being dispatched not held")
	}
	if c, ok := p.NextCall("fc", t0.Add(3300*time.Millisecond)); ok {
		t.Fatalf("hold outlives its grace: %+v", c)
	}
	p.InvocationEnded("j")
	if c, ok := p.NextCall("fc", t0.Add(2300*time.Millisecond)); ok {
		t.Fatalf("hold outlives its invocation: %+v", c)
	}

	// A call whose task starts before its prepare was due has it sent
	// then, and holds that instance like any other; one that was never
	// predicted holds nothing.
	p.InvocationStarted("k", def, t0)
	p.TaskStarted("k", "/do/0/a", "/do/0/a", "a", t0.Add(4*time.Second))
	p.TaskStarted("k", "/do/2/c", "/do/2/c", "c", t0.Add(4*time.Second+time.Millisecond))
	if c, ok := p.NextCall("fc", t0.Add(4*time.Second+2*time.Millisecond)); !ok || !c.Prepared {
		t.Fatalf("call whose prepare was sent as its task started not held: %+v %v", c, ok)
	}
	p.InvocationEnded("k")
	p.InvocationStarted("l", def, t0)
	p.TaskStarted("l", "/do/2/c", "/do/2/c", "c", t0.Add(5*time.Second))
	if c, ok := p.NextCall("fc", t0.Add(5*time.Second+time.Millisecond)); ok {
		t.Fatalf("call never predicted held: %+v", c)
	}
}

func TestVirtualClockOrder(t *testing.T) {
	c := NewVirtualClock(t0)
	var got []int
	c.AfterFunc(2*time.Second, func() { got = append(got, 3) })
	c.AfterFunc(time.Second, func() { got = append(got, 1) })
	c.AfterFunc(time.Second, func() {
		got = append(got, 2)
		c.AfterFunc(0, func() { got = append(got, 25) })
	})
	stop := c.AfterFunc(time.Second, func() { got = append(got, 99) })
	if !stop.Stop() {
		t.Fatal("stop")
	}
	c.Run()
	want := []int{1, 2, 25, 3}
	if len(got) != len(want) {
		t.Fatalf("order %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %v", got)
		}
	}
	if !c.Now().Equal(t0.Add(2 * time.Second)) {
		t.Fatal(c.Now())
	}
}

// countingPolicy records the decisions it makes and the events it hears.
type countingPolicy struct {
	decided, observed int
	verdict           function.Decision
}

func (c *countingPolicy) Decide(function.IdleState) function.Decision {
	c.decided++
	return c.verdict
}
func (c *countingPolicy) Observe(function.Event) { c.observed++ }

func TestBySpecRoutesOnTheSpecsPolicy(t *testing.T) {
	def := &countingPolicy{verdict: function.Decision{Evict: true}}
	hybrid := &countingPolicy{}
	b := NewBySpec(def, map[string]function.KeepAlive{"hybrid": hybrid, "on-demand": OnDemand{}, "default-again": def})
	now := t0.Add(time.Minute)
	if d := b.Decide(function.IdleState{Function: "f", IdleSince: t0, Now: now}); !d.Evict || def.decided != 1 {
		t.Fatalf("no policy named: %+v, default decided %d", d, def.decided)
	}
	b.Decide(function.IdleState{Function: "g", KeepAlive: "hybrid", IdleSince: t0, Now: now})
	if hybrid.decided != 1 || def.decided != 1 {
		t.Fatalf("named policy not used: hybrid %d, default %d", hybrid.decided, def.decided)
	}
	// fixed:DURATION needs no entry.
	if d := b.Decide(function.IdleState{Function: "h", KeepAlive: "fixed:2m", IdleSince: t0, Now: now}); d.Evict || !d.RecheckAt.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("fixed:2m: %+v", d)
	}
	// Every learning policy hears every event, once.
	b.Observe(function.Event{Kind: function.EventBusy, Function: "f"})
	if def.observed != 1 || hybrid.observed != 1 {
		t.Fatalf("events heard: default %d, hybrid %d", def.observed, hybrid.observed)
	}
}
