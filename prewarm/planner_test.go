package prewarm

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/function"
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

func TestPlannerPreparesAtPredictedTimes(t *testing.T) {
	def := parse(t, chainDoc)
	clock := NewVirtualClock(t0)
	prep := &fakePreparer{clock: clock}
	p := NewPlanner(Options{Preparer: prep, Clock: clock, Rule: Rule{Margin: 5 * time.Millisecond}})
	m := Compile(def, nil)
	p.Stats().ObserveTask(m.ID, "/do/0/a", 100*time.Millisecond)
	p.Stats().ObserveTask(m.ID, "/do/1/b", 200*time.Millisecond)
	p.Stats().ObserveCold("fb", 30*time.Millisecond)
	p.Stats().ObserveCold("fc", 30*time.Millisecond)

	p.InvocationStarted("i1", def)
	p.TaskStarted("i1", "/do/0/a", "/do/0/a", "a", t0)
	clock.Run()
	want := map[string]time.Time{"fb": t0.Add(95 * time.Millisecond), "fc": t0.Add(295 * time.Millisecond)}
	if len(prep.calls) != 2 {
		t.Fatalf("prepares: %+v", prep.calls)
	}
	for _, c := range prep.calls {
		if !c.by.Equal(want[c.fn]) {
			t.Errorf("%s prepared by %v, want %v", c.fn, c.by.Sub(t0), want[c.fn].Sub(t0))
		}
	}
	// The keep-alive side sees the predicted calls.
	if at, until, prob, ok := p.NextCall("fc", t0); !ok || !at.Equal(t0.Add(300*time.Millisecond)) || !until.Equal(t0.Add(1300*time.Millisecond)) || prob != 1 {
		t.Fatalf("NextCall fc = %v %v %v", at, prob, ok)
	}
	if !p.Inner("fb") || p.Inner("fa") {
		t.Fatalf("inner: fb %v fa %v", p.Inner("fb"), p.Inner("fa"))
	}

	// The next task re-predicts fc at the same time: no second prepare.
	clock.Advance(t0.Add(100 * time.Millisecond))
	p.TaskEnded("i1", "/do/0/a", "/do/0/a", "a", clock.Now(), nil)
	p.TaskStarted("i1", "/do/1/b", "/do/1/b", "b", clock.Now())
	clock.Run()
	if len(prep.calls) != 2 {
		t.Fatalf("duplicate prepares: %+v", prep.calls)
	}
	p.InvocationEnded("i1")
	if _, _, _, ok := p.NextCall("fc", t0); ok {
		t.Fatal("predictions outlive their invocation")
	}
}

func TestPlannerRuleDeclinesUnlikelyCheapCalls(t *testing.T) {
	def := parse(t, `do:
  - route:
      switch:
        - likely: {when: '${ .x }', then: fast}
        - otherwise: {then: slow}
  - fast: {call: ffast, then: end}
  - slow: {call: fslow}
`)
	clock := NewVirtualClock(t0)
	prep := &fakePreparer{clock: clock}
	p := NewPlanner(Options{Preparer: prep, Clock: clock})
	m := Compile(def, nil)
	for range 18 {
		p.Stats().ObserveCase(m.ID, "/do/0/route", "likely")
	}
	p.Stats().ObserveCold("ffast", 20*time.Millisecond)
	p.Stats().ObserveCold("fslow", 20*time.Millisecond)
	p.InvocationStarted("i", def)
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
	p.InvocationStarted("i", def)
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

func TestStatsPersistRoundTrip(t *testing.T) {
	ctx := context.Background()
	state := FileState{Dir: t.TempDir()}
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
	clock := NewVirtualClock(t0)
	prep := &fakePreparer{clock: clock}
	p := NewPlanner(Options{Preparer: prep, Clock: clock, Rule: Rule{Margin: 5 * time.Millisecond}})
	m := Compile(def, nil)
	p.Stats().ObserveTask(m.ID, "/do/0/a", 100*time.Millisecond)
	p.Stats().ObserveTask(m.ID, "/do/1/b", 100*time.Millisecond)
	p.InvocationStarted("i", def) // makes the model known
	p.InvocationEnded("i")

	at := t0.Add(10 * time.Second)
	p.ExpectArrival("fa", at, 2*time.Second)
	clock.Advance(t0)
	got := map[string]time.Time{}
	for _, c := range prep.calls {
		got[c.fn] = c.by
	}
	if len(got) != 2 || !got["fb"].Equal(at.Add(95*time.Millisecond)) || !got["fc"].Equal(at.Add(195*time.Millisecond)) {
		t.Fatalf("prepares: %+v", prep.calls)
	}
	// The expectation keeps fc's instances through the arrival window,
	// then lapses.
	if _, until, _, ok := p.NextCall("fc", at); !ok || !until.Equal(at.Add(200*time.Millisecond+3*time.Second)) {
		t.Fatalf("until %v ok %v", until, ok)
	}
	clock.Run()
	if _, _, _, ok := p.NextCall("fc", at); ok {
		t.Fatal("the expectation never lapses")
	}
}
