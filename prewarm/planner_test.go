package prewarm

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/store"
)

type prepareCall struct {
	fn     string
	by, at time.Time
}

type fakePreparer struct {
	clock *VirtualClock
	mu    sync.Mutex
	calls []prepareCall
}

func (f *fakePreparer) Prepare(_ context.Context, fn string, by time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, prepareCall{fn: fn, by: by, at: f.clock.Now()})
	return nil
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// newTestPlanner returns a planner on a virtual clock standing at t0 that
// prepares through a recording preparer.
func newTestPlanner(opts Options) (*Planner, *VirtualClock, *fakePreparer) {
	clock := NewVirtualClock(t0)
	prep := &fakePreparer{clock: clock}
	opts.Preparer, opts.Clock = prep, clock
	return NewPlanner(opts), clock, prep
}

// learnChain teaches p the timing of chainDoc (def): task a takes 100ms,
// task b takes b, and the functions' cold starts are the given ones.
func learnChain(p *Planner, def *dsl.Workflow, b time.Duration, cold map[string]time.Duration) *Model {
	m := Compile(def, nil)
	p.Stats().ObserveTask(m.ID, "/do/0/a", 100*time.Millisecond)
	p.Stats().ObserveTask(m.ID, "/do/1/b", b)
	for fn, d := range cold {
		p.Stats().ObserveCold(fn, d)
	}
	return m
}

func TestPlannerPreparesAtPredictedTimes(t *testing.T) {
	def := parse(t, chainDoc)
	p, clock, prep := newTestPlanner(Options{Rule: Rule{Margin: 5 * time.Millisecond}})
	learnChain(p, def, 200*time.Millisecond, map[string]time.Duration{"fb": 30 * time.Millisecond, "fc": 30 * time.Millisecond})

	p.InvocationStarted("i1", def, t0)
	p.TaskStarted("i1", "/do/0/a", "/do/0/a", "a", t0)
	// Just in time: each prepare is sent the cold start and the margin
	// before the predicted call, to be ready the margin before it.
	clock.Advance(t0.Add(100 * time.Millisecond))
	if len(prep.calls) != 1 || prep.calls[0].fn != "fb" || !prep.calls[0].at.Equal(t0.Add(65*time.Millisecond)) || !prep.calls[0].by.Equal(t0.Add(95*time.Millisecond)) {
		t.Fatalf("prepares by t0+100ms: %+v", prep.calls)
	}
	// The keep-alive side sees the predicted calls, not yet prepared; a
	// live invocation's call, predicted 300ms ahead, lapses only when
	// overdue by four times that.
	if c, ok := p.NextCall("fc", t0); !ok || !c.At.Equal(t0.Add(300*time.Millisecond)) || !c.Until.Equal(t0.Add(1500*time.Millisecond)) || c.Prob != 1 || c.Prepared {
		t.Fatalf("NextCall fc = %+v %v", c, ok)
	}
	if !p.Inner("fb") || p.Inner("fa") {
		t.Fatalf("inner: fb %v fa %v", p.Inner("fb"), p.Inner("fa"))
	}

	// The next task re-predicts fc at the same time: the prepare stays.
	p.TaskEnded("i1", "/do/0/a", "/do/0/a", "a", clock.Now(), nil)
	p.TaskStarted("i1", "/do/1/b", "/do/1/b", "b", clock.Now())
	clock.Advance(t0.Add(300 * time.Millisecond))
	if len(prep.calls) != 2 || prep.calls[1].fn != "fc" || !prep.calls[1].at.Equal(t0.Add(265*time.Millisecond)) || !prep.calls[1].by.Equal(t0.Add(295*time.Millisecond)) {
		t.Fatalf("prepares by t0+300ms: %+v", prep.calls)
	}
	if c, ok := p.NextCall("fc", clock.Now()); !ok || !c.Prepared {
		t.Fatalf("NextCall fc after its prepare = %+v %v", c, ok)
	}
	clock.Run()
	if len(prep.calls) != 2 {
		t.Fatalf("duplicate prepares: %+v", prep.calls)
	}
	p.InvocationEnded("i1")
	if _, ok := p.NextCall("fc", t0); ok {
		t.Fatal("predictions outlive their invocation")
	}
}

func TestPlannerMovesAndCancelsPreparesNotSent(t *testing.T) {
	def := parse(t, chainDoc)
	p, clock, prep := newTestPlanner(Options{Rule: Rule{Margin: 5 * time.Millisecond}})
	learnChain(p, def, 200*time.Millisecond, map[string]time.Duration{"fb": 30 * time.Millisecond, "fc": 30 * time.Millisecond})

	p.InvocationStarted("i", def, t0)
	p.TaskStarted("i", "/do/0/a", "/do/0/a", "a", t0)
	// a runs late: b starts at 250ms, so fc is now due at 450ms and its
	// prepare, not sent yet (it was due at 265ms), moves to 415ms.
	clock.Advance(t0.Add(250 * time.Millisecond))
	p.TaskEnded("i", "/do/0/a", "/do/0/a", "a", clock.Now(), nil)
	p.TaskStarted("i", "/do/1/b", "/do/1/b", "b", clock.Now())
	clock.Advance(t0.Add(400 * time.Millisecond))
	for _, c := range prep.calls {
		if c.fn == "fc" {
			t.Fatalf("fc prepared for its stale time: %+v", c)
		}
	}
	clock.Advance(t0.Add(450 * time.Millisecond))
	last := prep.calls[len(prep.calls)-1]
	if last.fn != "fc" || !last.at.Equal(t0.Add(415*time.Millisecond)) || !last.by.Equal(t0.Add(445*time.Millisecond)) {
		t.Fatalf("moved prepare: %+v", prep.calls)
	}

	// In a second invocation the call's task starts before its prepare
	// is due: the prepare is sent at once, for an instance ready as soon
	// as it can be, rather than dropped: the call reaches the function
	// layer a dispatch later and would only then start its own. Until
	// the call takes an instance (or the grace passes) the prepared one
	// is held for it.
	p.InvocationEnded("i")
	p.InvocationStarted("j", def, t0)
	start := clock.Now()
	n := len(prep.calls)
	p.TaskStarted("j", "/do/0/a", "/do/0/a", "a", start)
	p.TaskEnded("j", "/do/0/a", "/do/0/a", "a", start.Add(time.Millisecond), nil)
	p.TaskStarted("j", "/do/1/b", "/do/1/b", "b", start.Add(time.Millisecond))
	p.TaskEnded("j", "/do/1/b", "/do/1/b", "b", start.Add(2*time.Millisecond), nil)
	clock.Advance(start.Add(2 * time.Millisecond))
	p.TaskStarted("j", "/do/2/c", "/do/2/c", "c", start.Add(2*time.Millisecond))
	clock.Advance(start.Add(3 * time.Millisecond))
	var fc []prepareCall
	for _, c := range prep.calls[n:] {
		if c.fn == "fc" {
			fc = append(fc, c)
		}
	}
	if len(fc) != 1 || !fc[0].at.Equal(start.Add(2*time.Millisecond)) || !fc[0].by.Equal(start.Add(2*time.Millisecond)) {
		t.Fatalf("fc's prepares once its task started: %+v, want one sent at once, for at once", fc)
	}
	if c, ok := p.NextCall("fc", clock.Now()); !ok || !c.Prepared {
		t.Fatalf("the call whose task started does not hold its prepared instance: %+v %v", c, ok)
	}
	clock.Run()
	for _, c := range prep.calls[n:] {
		if c.fn == "fc" && c != fc[0] {
			t.Fatalf("fc prepared twice: %+v", prep.calls[n:])
		}
	}
	if _, ok := p.NextCall("fc", clock.Now().Add(time.Second)); ok {
		t.Fatal("a call made is still predicted past its grace")
	}
}

func TestPlannerRuleDeclinesUnlikelyCheapCalls(t *testing.T) {
	def := parse(t, switchDoc)
	p, clock, prep := newTestPlanner(Options{})
	m := Compile(def, nil)
	for range 18 {
		p.Stats().ObserveCase(m.ID, "/do/0/route", "likely")
	}
	p.Stats().ObserveCold("ffast", 20*time.Millisecond)
	p.Stats().ObserveCold("fslow", 20*time.Millisecond)
	p.InvocationStarted("i", def, t0)
	p.TaskStarted("i", "/do/0/route", "/do/0/route", "route", t0)
	clock.Run()
	if len(prep.calls) != 1 || prep.calls[0].fn != "ffast" {
		t.Fatalf("prepares: %+v", prep.calls)
	}
	r := p.Rule()
	if !r.Worth(0.95, 20*time.Millisecond) || r.Worth(0.05, 20*time.Millisecond) {
		t.Fatal("rule thresholds")
	}
}

func TestPlannerLearnsFromEvents(t *testing.T) {
	def := parse(t, `do:
  - route:
      switch:
        - a: {when: '${ .x }', then: fa}
        - b: {then: fb}
  - fa: {call: f1, then: end}
  - fb: {call: f2}
  - each:
      for: {in: '${ .items }'}
      do:
        - work: {call: f3}
`)
	p := NewPlanner(Options{Preparer: &fakePreparer{clock: NewVirtualClock(t0)}, Clock: NewVirtualClock(t0)})
	p.InvocationStarted("i", def, t0)
	at := t0
	step := func(start bool, key string) {
		at = at.Add(10 * time.Millisecond)
		if start {
			p.TaskStarted("i", key, stripMarks(key), "", at)
		} else {
			p.TaskEnded("i", key, stripMarks(key), "", at, nil)
		}
	}
	step(true, "/do/0/route")
	step(false, "/do/0/route")
	step(true, "/do/2/fb")
	step(false, "/do/2/fb")
	step(true, "/do/3/each")
	for i := range 3 {
		k := "/do/3/each/do/0/work[" + string(rune('0'+i)) + "]"
		step(true, k)
		step(false, k)
	}
	step(false, "/do/3/each")
	p.InvocationEnded("i")
	m := Compile(def, nil)
	sw, _ := p.Stats().Task(m.ID, "/do/0/route")
	if sw.Cases["b"] != 1 || sw.Cases["a"] != 0 {
		t.Fatalf("switch cases: %v", sw.Cases)
	}
	loop, _ := p.Stats().Task(m.ID, "/do/3/each")
	if loop.Loops[3] != 1 {
		t.Fatalf("loop lengths: %v", loop.Loops)
	}
	if d, _ := p.Stats().Task(m.ID, "/do/2/fb"); d.Duration.Median() != 10*time.Millisecond {
		t.Fatalf("task duration: %v", d.Duration.Median())
	}

	p.Observe(function.Event{Kind: function.EventCreated, Function: "f3", Phases: function.Phases{Instantiate: 7 * time.Millisecond}})
	p.Observe(function.Event{Kind: function.EventBusy, Function: "f3", Instance: "x", Time: t0})
	p.Observe(function.Event{Kind: function.EventIdle, Function: "f3", Instance: "x", Time: t0.Add(3 * time.Millisecond)})
	fs, _ := p.Stats().Function("f3")
	if fs.Cold.Median() != 7*time.Millisecond || fs.Exec.Median() != 3*time.Millisecond {
		t.Fatalf("function stats: %+v", fs)
	}
}

func stripMarks(key string) string {
	for i, c := range key {
		if c == '[' {
			return key[:i]
		}
	}
	return key
}

// memState is a StateStore in memory, missing keys reported as the
// stores report them.
type memState map[string][]byte

func (m memState) GetState(_ context.Context, key string) ([]byte, error) {
	v, ok := m[key]
	if !ok {
		return nil, fmt.Errorf("state %s: %w", key, store.ErrNotFound)
	}
	return v, nil
}

func (m memState) PutState(_ context.Context, key string, value []byte) error {
	m[key] = value
	return nil
}

func TestStatsPersistRoundTrip(t *testing.T) {
	ctx := context.Background()
	state := memState{}
	p := NewPlanner(Options{State: state, Preparer: &fakePreparer{clock: NewVirtualClock(t0)}})
	if err := p.Load(ctx); err != nil {
		t.Fatalf("load without saved state: %v", err)
	}
	p.Stats().ObserveCold("f", 40*time.Millisecond)
	p.Stats().ObserveExec("f", 2*time.Millisecond)
	p.Stats().ObserveCase("w", "/do/0/s", "a")
	p.Stats().ObserveLoop("w", "/do/1/l", 4)
	if err := p.Save(ctx); err != nil {
		t.Fatal(err)
	}
	q := NewPlanner(Options{State: state, Preparer: &fakePreparer{clock: NewVirtualClock(t0)}})
	if err := q.Load(ctx); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(p.Stats())
	b, _ := json.Marshal(q.Stats())
	if string(a) != string(b) {
		t.Fatalf("round trip:\n%s\n%s", a, b)
	}
	if f, ok := q.Stats().Function("f"); !ok || f.Cold.Median() != 40*time.Millisecond {
		t.Fatalf("loaded: %+v", f)
	}
	if err := q.Stats().UnmarshalJSON([]byte(`{"version":99}`)); err == nil {
		t.Fatal("a future version is accepted")
	}
}

func TestExpectArrivalPreparesTheWorkflowBehindAnEntry(t *testing.T) {
	def := parse(t, chainDoc)
	p, clock, prep := newTestPlanner(Options{Rule: Rule{Margin: 5 * time.Millisecond}})
	learnChain(p, def, 100*time.Millisecond, map[string]time.Duration{"fb": 150 * time.Millisecond}) // fc: the default 50ms
	p.InvocationStarted("i", def, t0)                                                                // makes the model known
	p.InvocationEnded("i")

	// A reload of fa announces an arrival at 10s. fb, due 100ms after
	// it, takes 150ms to start: it is prepared ahead, ready 5ms before
	// its call. fc, due at 200ms, can be prepared once the invocation has
	// come, and is not prepared for an arrival that may not come.
	at := t0.Add(10 * time.Second)
	p.ExpectArrival("fa", at, 2*time.Second)
	clock.Advance(at.Add(-60 * time.Millisecond))
	if len(prep.calls) != 0 {
		t.Fatalf("prepares sent long before they are due: %+v", prep.calls)
	}
	clock.Advance(at.Add(300 * time.Millisecond))
	if len(prep.calls) != 1 || prep.calls[0].fn != "fb" || !prep.calls[0].at.Equal(at.Add(-55*time.Millisecond)) || !prep.calls[0].by.Equal(at.Add(95*time.Millisecond)) {
		t.Fatalf("prepares: %+v", prep.calls)
	}
	// The expectation keeps fb's instance through the arrival window,
	// then lapses.
	if c, ok := p.NextCall("fb", at); !ok || !c.Until.Equal(at.Add(100*time.Millisecond+2*time.Second+100*time.Millisecond)) {
		t.Fatalf("until %v ok %v", c.Until, ok)
	}
	clock.Run()
	if _, ok := p.NextCall("fb", at); ok {
		t.Fatal("the expectation never lapses")
	}
}

// Once an invocation takes one path of a switch, the calls predicted on
// the other path are dropped: an instance prepared for one of them is no
// longer held for it.
func TestPlannerDropsCallsOnPathsNotTaken(t *testing.T) {
	def := parse(t, switchDoc)
	p, clock, _ := newTestPlanner(Options{})
	m := Compile(def, nil)
	for range 9 {
		p.Stats().ObserveCase(m.ID, "/do/0/route", "likely")
	}
	p.Stats().ObserveTask(m.ID, "/do/0/route", 100*time.Millisecond)
	p.Stats().ObserveCold("ffast", 50*time.Millisecond)
	p.Stats().ObserveCold("fslow", 50*time.Millisecond)
	p.InvocationStarted("i", def, t0)
	p.TaskStarted("i", "/do/0/route", "/do/0/route", "route", t0)
	clock.Advance(t0.Add(60 * time.Millisecond))
	if c, ok := p.NextCall("ffast", clock.Now()); !ok || !c.Prepared {
		t.Fatalf("likely path not prepared: %+v %v", c, ok)
	}
	// The unlikely path is taken.
	p.TaskEnded("i", "/do/0/route", "/do/0/route", "route", t0.Add(100*time.Millisecond), nil)
	p.TaskStarted("i", "/do/2/slow", "/do/2/slow", "slow", t0.Add(100*time.Millisecond))
	if c, ok := p.NextCall("ffast", t0.Add(100*time.Millisecond)); ok {
		t.Fatalf("a call on the path not taken is still predicted: %+v", c)
	}
}

// The planner learns how early its prepared instances are against their
// aim, and aims the next prepares accordingly.
func TestPlannerLearnsHowEarlyPreparedInstancesAre(t *testing.T) {
	def := parse(t, chainDoc)
	p, clock, prep := newTestPlanner(Options{})
	learnChain(p, def, 200*time.Millisecond, map[string]time.Duration{"fb": 30 * time.Millisecond, "fc": 30 * time.Millisecond})

	// fb is due at 100ms, aimed ready 2ms before (the rule's margin):
	// prepared at 68ms. Its instance is ready at 80ms, the call takes it
	// at 101ms: 21ms idle, 19ms more than aimed.
	p.InvocationStarted("i", def, t0)
	p.TaskStarted("i", "/do/0/a", "/do/0/a", "a", t0)
	clock.Advance(t0.Add(80 * time.Millisecond))
	if len(prep.calls) != 1 || !prep.calls[0].at.Equal(t0.Add(68*time.Millisecond)) {
		t.Fatalf("prepares: %+v", prep.calls)
	}
	p.Observe(function.Event{Kind: function.EventCreated, Time: clock.Now(), Function: "fb", Instance: "fb/1", Phases: function.Phases{Instantiate: 30 * time.Millisecond}})
	p.Observe(function.Event{Kind: function.EventIdle, Time: clock.Now(), Function: "fb", Instance: "fb/1"})
	p.TaskEnded("i", "/do/0/a", "/do/0/a", "a", t0.Add(100*time.Millisecond), nil)
	p.TaskStarted("i", "/do/1/b", "/do/1/b", "b", t0.Add(100*time.Millisecond))
	p.Observe(function.Event{Kind: function.EventBusy, Time: t0.Add(101 * time.Millisecond), Function: "fb", Instance: "fb/1"})
	st, _ := p.Stats().Function("fb")
	if st.Readiness.Samples != 1 || st.Readiness.Recent[0] != 19*time.Millisecond {
		t.Fatalf("readiness learned: %+v", st.Readiness)
	}
	p.InvocationEnded("i")

	// A prepared call that waited 4ms for its instance was 6ms later than
	// aimed. (The call above reached the function layer 1ms after its
	// task started: fc is predicted at 281ms, aimed ready at 279ms.)
	p.InvocationStarted("j", def, t0)
	p.TaskStarted("j", "/do/1/b", "/do/1/b", "b", clock.Now())
	p.Observe(function.Event{Kind: function.EventBusy, Time: clock.Now(), Function: "fb", Instance: "fb/2"})
	clock.Advance(t0.Add(300 * time.Millisecond))
	p.TaskEnded("j", "/do/1/b", "/do/1/b", "b", clock.Now(), nil)
	p.TaskStarted("j", "/do/2/c", "/do/2/c", "c", clock.Now())
	p.Observe(function.Event{Kind: function.EventBusy, Time: clock.Now(), Function: "fc", Instance: "fc/1", Waited: 4 * time.Millisecond})
	if st, _ := p.Stats().Function("fc"); st.Readiness.Samples != 1 || st.Readiness.Recent[0] != -6*time.Millisecond {
		t.Fatalf("readiness of a call that waited: %+v", st.Readiness)
	}
	p.InvocationEnded("j")

	// With enough samples saying fb's instances are ready 19ms earlier
	// than aimed, its prepares aim 19ms later (so that, by the rule's idle
	// cost, about one call in twenty waits).
	for range minReadinessSamples {
		p.Stats().ObserveReadiness("fb", 19*time.Millisecond)
	}
	prep.calls = nil
	at := clock.Now()
	p.InvocationStarted("k", def, at)
	p.TaskStarted("k", "/do/0/a", "/do/0/a", "a", at)
	p.Observe(function.Event{Kind: function.EventBusy, Time: at, Function: "fa", Instance: "fa/1"})
	clock.Advance(at.Add(100 * time.Millisecond))
	if len(prep.calls) != 1 || !prep.calls[0].at.Equal(at.Add(100*time.Millisecond-30*time.Millisecond+19*time.Millisecond)) {
		t.Fatalf("prepare after learning: %+v (want sent at %v)", prep.calls, at.Add(89*time.Millisecond))
	}
}

// With one prepare slot, prepares whose starts would overlap are placed
// one after another, the earlier one ready before the later one is sent; prepares that do not overlap stay just in time, even
// when the odd start was slow.
func TestPlannerStaggersPreparesOverSlots(t *testing.T) {
	def := parse(t, chainDoc)
	for _, tc := range []struct {
		name             string
		slots            int
		b                time.Duration
		wantFb, wantFc   time.Duration // when each prepare is sent, after t0
		readyFb, readyFc time.Duration
	}{
		// fb is due at 100ms, fc at 120ms, each starts in 30ms: on one
		// slot fb must be ready before fc's prepare is sent at 85ms, by
		// the run's margin (5ms × √2) less fc's own (5ms): 2.07ms.
		{"overlapping, one slot", 1, 20 * time.Millisecond, 85*time.Millisecond - 2071067 - 30*time.Millisecond, 85 * time.Millisecond, 85*time.Millisecond - 2071067, 115 * time.Millisecond},
		{"overlapping, two slots", 2, 20 * time.Millisecond, 65 * time.Millisecond, 85 * time.Millisecond, 95 * time.Millisecond, 115 * time.Millisecond},
		// fc is due at 140ms; its prepare is sent at 105ms, after fb's
		// is done.
		{"apart, one slot", 1, 40 * time.Millisecond, 65 * time.Millisecond, 105 * time.Millisecond, 95 * time.Millisecond, 135 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, clock, prep := newTestPlanner(Options{Rule: Rule{Margin: 5 * time.Millisecond}, PrepareSlots: tc.slots})
			learnChain(p, def, tc.b, map[string]time.Duration{"fc": 30 * time.Millisecond})
			for i := range 10 {
				d := 30 * time.Millisecond
				if i%5 == 4 {
					d = 200 * time.Millisecond // the odd slow start
				}
				p.Stats().ObserveCold("fb", d)
			}

			p.InvocationStarted("i", def, t0)
			p.TaskStarted("i", "/do/0/a", "/do/0/a", "a", t0)
			clock.Advance(t0.Add(time.Second))
			want := []prepareCall{
				{fn: "fb", at: t0.Add(tc.wantFb), by: t0.Add(tc.readyFb)},
				{fn: "fc", at: t0.Add(tc.wantFc), by: t0.Add(tc.readyFc)},
			}
			if len(prep.calls) != 2 {
				t.Fatalf("prepares %+v, want %+v", prep.calls, want)
			}
			for i, w := range want {
				if c := prep.calls[i]; c.fn != w.fn || !c.at.Equal(w.at) || !c.by.Equal(w.by) {
					t.Errorf("prepare %d: %s at %v by %v, want %s at %v by %v", i, c.fn, c.at.Sub(t0), c.by.Sub(t0), w.fn, w.at.Sub(t0), w.by.Sub(t0))
				}
			}
		})
	}
}
