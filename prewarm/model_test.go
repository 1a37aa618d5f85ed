package prewarm

import (
	"math"
	"testing"
	"time"

	"github.com/batonflow/baton/dsl"
)

// parse reads a workflow of the default namespace, whose functions the
// planner knows by their bare names.
func parse(t *testing.T, src string) *dsl.Workflow {
	return parseIn(t, "default", src)
}

func parseIn(t *testing.T, namespace, src string) *dsl.Workflow {
	t.Helper()
	def, err := dsl.Parse("test.yaml", []byte("document: {dsl: '1.0.0', namespace: "+namespace+", name: w, version: '1.0.0'}\n"+src))
	if err != nil {
		t.Fatal(err)
	}
	return def
}

func byFunction(ps []Prediction) map[string]Prediction {
	out := map[string]Prediction{}
	for _, p := range ps {
		out[p.Function] = p
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// switchDoc branches to one call of ffast or, otherwise, of fslow.
const switchDoc = `do:
  - route:
      switch:
        - likely: {when: '${ .x < 0.9 }', then: fast}
        - otherwise: {then: slow}
  - fast: {call: ffast, then: end}
  - slow: {call: fslow}
`

const chainDoc = `do:
  - a: {call: fa}
  - b: {call: fb}
  - c: {call: fc}
`

func TestPredictChainUsesLearnedDurations(t *testing.T) {
	m := Compile(parse(t, chainDoc), nil)
	st := NewStats()
	st.ObserveTask(m.ID, "/do/0/a", 100*time.Millisecond)
	st.ObserveTask(m.ID, "/do/1/b", 200*time.Millisecond)
	got := byFunction(m.Predict("/do/0/a", "", st, Defaults{}, time.Minute, 0.01))
	if _, ok := got["fa"]; ok {
		t.Fatalf("the observed task's own call is predicted: %v", got)
	}
	if p := got["fb"]; p.After != 100*time.Millisecond || !near(p.Prob, 1) {
		t.Fatalf("fb: %+v", p)
	}
	if p := got["fc"]; p.After != 300*time.Millisecond || !near(p.Prob, 1) {
		t.Fatalf("fc: %+v", p)
	}
	if !m.IsEntry("fa") || m.IsEntry("fb") {
		t.Fatalf("entries: %v", m.entries)
	}
	// The lookahead cuts far calls.
	if got := byFunction(m.Predict("/do/0/a", "", st, Defaults{}, 150*time.Millisecond, 0.01)); len(got) != 1 {
		t.Fatalf("lookahead ignored: %v", got)
	}
}

func TestPredictSwitchOdds(t *testing.T) {
	m := Compile(parse(t, switchDoc), nil)
	st := NewStats()
	got := byFunction(m.Predict("/do/0/route", "", st, Defaults{}, time.Minute, 0.001))
	if !near(got["ffast"].Prob, 0.5) || !near(got["fslow"].Prob, 0.5) {
		t.Fatalf("unlearned switch is not uniform: %v", got)
	}
	for range 8 {
		st.ObserveCase(m.ID, "/do/0/route", "likely")
	}
	got = byFunction(m.Predict("/do/0/route", "", st, Defaults{}, time.Minute, 0.001))
	if !near(got["ffast"].Prob, 0.9) || !near(got["fslow"].Prob, 0.1) {
		t.Fatalf("learned odds: %v", got)
	}
	// From the fast task, the workflow ends: nothing follows.
	if got := m.Predict("/do/1/fast", "", st, Defaults{}, time.Minute, 0.001); len(got) != 0 {
		t.Fatalf("calls after then: end: %v", got)
	}
}

func TestPredictLoopLength(t *testing.T) {
	m := Compile(parse(t, `do:
  - prep: {call: fprep}
  - each:
      for: {each: item, in: '${ .items }'}
      do:
        - work: {call: fwork}
  - after: {call: fafter}
`), nil)
	st := NewStats()
	st.ObserveTask(m.ID, "/do/0/prep", 10*time.Millisecond)
	st.ObserveTask(m.ID, "/do/1/each/do/0/work", 100*time.Millisecond)
	for range 4 {
		st.ObserveLoop(m.ID, "/do/1/each", 3)
	}
	got := byFunction(m.Predict("/do/0/prep", "", st, Defaults{}, time.Minute, 0.01))
	if p := got["fwork"]; p.After != 10*time.Millisecond || !near(p.Prob, 1) {
		t.Fatalf("fwork: %+v", p)
	}
	if p := got["fafter"]; p.After != 310*time.Millisecond {
		t.Fatalf("fafter after three iterations: %+v", p)
	}
	// From the second iteration's call, one iteration remains.
	got = byFunction(m.Predict("/do/1/each/do/0/work", "[1]", st, Defaults{}, time.Minute, 0.01))
	if p := got["fafter"]; p.After != 200*time.Millisecond {
		t.Fatalf("fafter from iteration 1: %+v", p)
	}
}

func TestPredictForkTakesLongestBranch(t *testing.T) {
	m := Compile(parse(t, `do:
  - start: {call: fstart}
  - fan:
      fork:
        branches:
          - quick: {call: fquick}
          - long: {call: flong}
  - join: {call: fjoin}
`), nil)
	st := NewStats()
	st.ObserveTask(m.ID, "/do/0/start", 5*time.Millisecond)
	st.ObserveTask(m.ID, "/do/1/fan/fork/branches/0/quick", 10*time.Millisecond)
	st.ObserveTask(m.ID, "/do/1/fan/fork/branches/1/long", 50*time.Millisecond)
	got := byFunction(m.Predict("/do/0/start", "", st, Defaults{}, time.Minute, 0.01))
	if got["fquick"].After != 5*time.Millisecond || got["flong"].After != 5*time.Millisecond {
		t.Fatalf("branches start together: %v", got)
	}
	if got["fjoin"].After != 55*time.Millisecond {
		t.Fatalf("join after the longest branch: %+v", got["fjoin"])
	}
}

func TestPredictTryCatchOdds(t *testing.T) {
	m := Compile(parse(t, `do:
  - guarded:
      try:
        - risky: {call: frisky}
      catch:
        do:
          - recover: {call: frecover}
  - next: {call: fnext}
`), nil)
	st := NewStats()
	got := byFunction(m.Predict("/do/0/guarded/try/0/risky", "", st, Defaults{}, time.Minute, 0.001))
	if _, ok := got["frecover"]; ok {
		t.Fatalf("catch predicted before any failure: %v", got)
	}
	if !near(got["fnext"].Prob, 1) {
		t.Fatalf("fnext: %v", got)
	}
	for i := range 9 {
		st.ObserveTry(m.ID, "/do/0/guarded", i < 3)
	}
	got = byFunction(m.Predict("/do/0/guarded/try/0/risky", "", st, Defaults{}, time.Minute, 0.001))
	if !near(got["frecover"].Prob, 0.3) {
		t.Fatalf("catch odds: %v", got)
	}
}

// TestModelNamesTheWorkflowsOwnNamespacesFunctions checks that a
// workflow's calls are predicted as its own namespace's functions, the
// references the function Manager prepares.
func TestModelNamesTheWorkflowsOwnNamespacesFunctions(t *testing.T) {
	def := parseIn(t, "team-a", `
do:
  - first:
      call: fa
`)
	m := Compile(def, nil)
	if fn, ok := m.Function("/do/0/first"); !ok || fn != "team-a/fa" {
		t.Fatalf("Function = %q, %v; want team-a/fa", fn, ok)
	}
	if !m.IsEntry("team-a/fa") {
		t.Fatal("team-a/fa is not the workflow's entry function")
	}
}

// TestModelLeavesTheEnginesOwnFunctionsOut checks that a call the engine
// answers itself (baton.noop) is neither a function to prepare nor an
// entry, while the Baton function after it is both predicted and, as the
// first function called, the entry.
func TestModelLeavesTheEnginesOwnFunctionsOut(t *testing.T) {
	def := parse(t, `do:
  - a: {call: baton.noop}
  - b: {call: fb}
`)
	m := Compile(def, nil)
	if fn, ok := m.Function("/do/0/a"); ok {
		t.Fatalf("baton.noop is a Baton function to prepare: %q", fn)
	}
	if m.IsEntry("default/baton.noop") || m.IsEntry("baton.noop") || !m.IsEntry("fb") {
		t.Fatalf("entries: %v", m.entries)
	}
	got := byFunction(m.Predict("/do/0/a", "", NewStats(), Defaults{}, time.Minute, 0.01))
	if len(got) != 1 || got["fb"].Prob != 1 {
		t.Fatalf("predictions after baton.noop: %v", got)
	}
}

// TestModelCallsNothing checks which workflows the planner may skip
// predicting for: those calling no Baton function, directly or through a
// subflow it cannot see into from the index.
func TestModelCallsNothing(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		nothing   bool
	}{
		{"engine's own calls and sets", "do:\n  - a: {call: baton.noop}\n  - b: {set: {x: 1}}\n  - c: {call: http, with: {method: get, endpoint: 'http://x'}}\n", true},
		{"a function in a try", "do:\n  - a: {call: baton.noop}\n  - t:\n      try:\n        - f: {call: fb}\n      catch: {errors: {with: {type: x}}}\n", false},
		{"a subflow", "do:\n  - a: {run: {workflow: {namespace: default, name: child, version: '1.0.0'}}}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Compile(parse(t, tc.src), nil)
			if got := m.callsNothing(); got != tc.nothing {
				t.Fatalf("callsNothing = %v, want %v", got, tc.nothing)
			}
			if tc.nothing {
				if got := m.Predict("/do/0/a", "", NewStats(), Defaults{}, time.Minute, 0.01); len(got) != 0 {
					t.Fatalf("predictions: %v", got)
				}
			}
		})
	}
}
