package prewarm

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

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
	// Just in time: each prepare is sent the cold start and the margin
	// before the predicted call, to be ready by the call.
	clock.Advance(t0.Add(100 * time.Millisecond))
	if len(prep.calls) != 1 || prep.calls[0].fn != "fb" || !prep.calls[0].at.Equal(t0.Add(65*time.Millisecond)) || !prep.calls[0].by.Equal(t0.Add(100*time.Millisecond)) {
		t.Fatalf("prepares by t0+100ms: %+v", prep.calls)
	}
	// The keep-alive side sees the predicted calls, not yet prepared.
	if c, ok := p.NextCall("fc", t0); !ok || !c.At.Equal(t0.Add(300*time.Millisecond)) || !c.Until.Equal(t0.Add(1300*time.Millisecond)) || c.Prob != 1 || c.Prepared {
		t.Fatalf("NextCall fc = %+v %v", c, ok)
	}
	if !p.Inner("fb") || p.Inner("fa") {
		t.Fatalf("inner: fb %v fa %v", p.Inner("fb"), p.Inner("fa"))
	}

	// The next task re-predicts fc at the same time: the prepare stays.
	p.TaskEnded("i1", "/do/0/a", "/do/0/a", "a", clock.Now(), nil)
	p.TaskStarted("i1", "/do/1/b", "/do/1/b", "b", clock.Now())
	clock.Advance(t0.Add(300 * time.Millisecond))
	if len(prep.calls) != 2 || prep.calls[1].fn != "fc" || !prep.calls[1].at.Equal(t0.Add(265*time.Millisecond)) || !prep.calls[1].by.Equal(t0.Add(300*time.Millisecond)) {
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
	clock := NewVirtualClock(t0)
	prep := &fakePreparer{clock: clock}
	p := NewPlanner(Options{Preparer: prep, Clock: clock, Rule: Rule{Margin: 5 * time.Millisecond}})
	m := Compile(def, nil)
	p.Stats().ObserveTask(m.ID, "/do/0/a", 100*time.Millisecond)
	p.Stats().ObserveTask(m.ID, "/do/1/b", 200*time.Millisecond)
	p.Stats().ObserveCold("fb", 30*time.Millisecond)
	p.Stats().ObserveCold("fc", 30*time.Millisecond)

	p.InvocationStarted("i", def)
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
	if last.fn != "fc" || !last.at.Equal(t0.Add(415*time.Millisecond)) || !last.by.Equal(t0.Add(450*time.Millisecond)) {
		t.Fatalf("moved prepare: %+v", prep.calls)
	}

	// In a second invocation the call comes before its prepare is sent:
	// the prepare is dropped rather than start an instance nobody needs.
	p.InvocationEnded("i")
	p.InvocationStarted("j", def)
	start := clock.Now()
	p.TaskStarted("j", "/do/0/a", "/do/0/a", "a", start)
	p.TaskEnded("j", "/do/0/a", "/do/0/a", "a", start.Add(time.Millisecond), nil)
	p.TaskStarted("j", "/do/1/b", "/do/1/b", "b", start.Add(time.Millisecond))
	p.TaskEnded("j", "/do/1/b", "/do/1/b", "b", start.Add(2*time.Millisecond), nil)
	p.TaskStarted("j", "/do/2/c", "/do/2/c", "c", start.Add(2*time.Millisecond))
	n := len(prep.calls)
	clock.Run()
	for _, c := range prep.calls[n:] {
		if c.fn == "fc" {
			t.Fatalf("fc prepared after its call started: %+v", c)
		}
	}
	if _, ok := p.NextCall("fc", clock.Now()); ok {
		t.Fatal("a call made is still predicted")
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
	clock.Advance(at)
	if len(prep.calls) != 0 {
		t.Fatalf("prepares sent long before they are due: %+v", prep.calls)
	}
	clock.Advance(at.Add(300 * time.Millisecond))
	got := map[string]time.Time{}
	for _, c := range prep.calls {
		got[c.fn] = c.by
	}
	if len(got) != 2 || !got["fb"].Equal(at.Add(100*time.Millisecond)) || !got["fc"].Equal(at.Add(200*time.Millisecond)) {
		t.Fatalf("prepares: %+v", prep.calls)
	}
	// The expectation keeps fc's instances through the arrival window,
	// then lapses.
	if c, ok := p.NextCall("fc", at); !ok || !c.Until.Equal(at.Add(200*time.Millisecond+3*time.Second)) {
		t.Fatalf("until %v ok %v", c.Until, ok)
	}
	clock.Run()
	if _, ok := p.NextCall("fc", at); ok {
		t.Fatal("the expectation never lapses")
	}
}
