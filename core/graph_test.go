package core_test

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl/fission"
	"github.com/batonflow/baton/problem"
)

// fissionExamples is the directory of the Fission Workflows examples.
func fissionExamples(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "shared", "spec", "fission-workflows", "examples")
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the Fission Workflows examples are required under CI: %v", err)
		}
		t.Skipf("Fission Workflows examples not available: %v", err)
	}
	return dir
}

func newFissionSim(t *testing.T, name string, src []byte, handlers map[string]handler) *sim {
	t.Helper()
	def, err := fission.Parse(name, src)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	now, _ := time.Parse(time.RFC3339, start)
	return &sim{
		t: t, def: def, now: now,
		m:        core.New(def, core.Options{ID: "inv-1", MaxSteps: 100_000}),
		handlers: handlers,
		held:     map[string]*core.Call{},
		timers:   map[string]time.Time{},
	}
}

func exampleSim(t *testing.T, rel string, handlers map[string]handler) *sim {
	t.Helper()
	path := filepath.Join(fissionExamples(t), rel)
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return newFissionSim(t, path, src, handlers)
}

// whalesay answers like the cowsay-style function of the examples.
func whalesay(c *core.Call) (any, *problem.Problem) {
	return "whale says: " + toText(c.Args["body"]), nil
}

func toText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return dump(v)
}

func constant(v any) handler {
	return func(*core.Call) (any, *problem.Problem) { return v, nil }
}

// TestFissionExamples runs the examples of Fission Workflows built from the
// built-in functions and checks the outputs their documentation describes;
// each history is then replayed and must end the same way.
func TestFissionExamples(t *testing.T) {
	rows := []struct {
		name     string
		file     string
		input    any
		handlers map[string]handler
		status   core.Status
		output   any
		check    func(t *testing.T, s *sim)
	}{
		{
			name: "foreach multiplies every element", file: "whales/foreachwhale.wf.yaml",
			handlers: map[string]handler{"whalesay": whalesay},
			status:   core.StatusCompleted, output: "whale says: [10,20,30,40,50]",
		},
		{
			name: "while counts to five", file: "whales/whilewhale.wf.yaml",
			status: core.StatusCompleted, output: 5.0,
		},
		{
			name: "switch matches hello", file: "whales/switchwhale.wf.yaml", input: "hello",
			status: core.StatusCompleted, output: "world!",
		},
		{
			name: "switch matches foo", file: "whales/switchwhale.wf.yaml", input: "foo",
			status: core.StatusCompleted, output: "bar",
		},
		{
			name: "switch falls back to the default", file: "whales/switchwhale.wf.yaml", input: "acme",
			status: core.StatusCompleted, output: "right...",
		},
		{
			name: "if runs the inline task when the input is short", file: "whales/maybewhale.wf.yaml",
			input: "a whale can say it!", handlers: map[string]handler{"whalesay": whalesay},
			status: core.StatusCompleted, output: "whale says: a whale can say it!",
		},
		{
			name: "if passes the value on when the input is long", file: "whales/maybewhale.wf.yaml",
			input:  "This sentence is far to complex for a whale!",
			status: core.StatusCompleted, output: "This sentence is far to complex for a whale!",
			check: func(t *testing.T, s *sim) {
				if len(s.calls) != 0 {
					t.Errorf("the else branch is a value, yet %d calls were made", len(s.calls))
				}
			},
		},
		{
			name: "a nested inline workflow runs in its task's place", file: "whales/scopedwhale.wf.yaml",
			handlers: map[string]handler{"fortune": constant("You will be happy."), "whalesay": whalesay},
			status:   core.StatusCompleted, output: "whale says: You will be happy.",
		},
		{
			name: "repeat and javascript compute a Fibonacci number", file: "misc/fibonacci.wf.yaml", input: 5.0,
			status: core.StatusCompleted, output: 8.0,
		},
		{
			name: "fibonacci of nothing is 0", file: "misc/fibonacci.wf.yaml",
			status: core.StatusCompleted, output: 0.0,
		},
		{
			name: "fail faults the workflow and stops what requires it", file: "whales/failwhale.wf.yaml",
			status: core.StatusFaulted,
			check: func(t *testing.T, s *sim) {
				if !strings.Contains(s.finish.Error.Detail, "all has failed") {
					t.Errorf("error %v does not carry the fail message", s.finish.Error)
				}
			},
		},
		{
			name: "fan-out calls run in parallel and fan in", file: "readitlater/parse-article.wf.yaml",
			input: "<html/>",
			handlers: map[string]handler{
				"parse-article-body": constant("body text"),
				"ogp-extract":        constant(map[string]any{"title": "T", "image": "i.png", "description": "D"}),
			},
			status: core.StatusCompleted,
			output: map[string]any{"body": "body text", "title": "T", "image": "i.png", "description": "D",
				"url": map[string]any{"title": "T", "image": "i.png", "description": "D"}},
			check: func(t *testing.T, s *sim) {
				// Both calls went out before either answered: the first
				// history event after the start is a result, and two calls
				// were asked for by then.
				if len(s.calls) != 2 || s.history[1].Type != core.TaskCompleted {
					t.Errorf("calls %d, second event %s: the independent tasks did not start together", len(s.calls), s.history[1].Type)
				}
				if got := s.calls[0].Args["default"]; got != "<html/>" {
					t.Errorf("ParseBody got %v, want the invocation input", got)
				}
			},
		},
		{
			name: "slack weather: if without else gives nothing, compose merges", file: "slackweather/slackweather.wf.yaml",
			input: "San Fransisco, CA",
			handlers: map[string]handler{
				"wunderground-conditions": func(c *core.Call) (any, *problem.Problem) {
					d := c.Args["default"].(map[string]any)
					if d["city"] != "San Fransisco" || d["state"] != "CA" {
						return nil, problem.Runtime("bad split: %v", d)
					}
					return map[string]any{"current_observation": map[string]any{"temp_f": 50.0}}, nil
				},
				"tempconv": constant(map[string]any{"temperature": 10.0}),
			},
			status: core.StatusCompleted,
			output: map[string]any{"celsius": 10.0, "fahrenheit": 50.0, "location": "San Fransisco, CA", "sentSlackMsg": nil},
		},
		{
			name: "outputHeaders reads the headers of an http response", file: "whales/httpwhale.wf.yaml",
			handlers: map[string]handler{
				"http": func(c *core.Call) (any, *problem.Problem) {
					if c.Args["endpoint"] != "http://ifconfig.co" || c.Args["method"] != "GET" || c.Args["output"] != "response" {
						return nil, problem.Runtime("unexpected http args %v", c.Args)
					}
					return map[string]any{"statusCode": 200.0, "headers": map[string]any{"date": "today"}, "content": "1.2.3.4"}, nil
				},
				"whalesay": whalesay,
			},
			status: core.StatusCompleted, output: "whale says: 1.2.3.4",
		},
		{
			name: "fission:// calls carry namespace, name and body", file: "misc/multinamespace.wf.yaml",
			input: "Hello World",
			handlers: map[string]handler{
				"fission": func(c *core.Call) (any, *problem.Problem) {
					want := map[string]any{"namespace": "fission-function", "name": "multinsdump", "method": "POST",
						"body": map[string]any{"default": "Hello World"}}
					if !reflect.DeepEqual(c.Args, want) {
						return nil, problem.Runtime("args %v, want %v", dump(c.Args), dump(want))
					}
					return map[string]any{"statusCode": 200.0, "headers": map[string]any{}, "content": "dumped"}, nil
				},
			},
			status: core.StatusCompleted, output: "dumped",
		},
		{
			name: "metadata: param reads invocation inputs by key", file: "whales/metadatawhale.wf.yaml",
			input:    map[string]any{"headers": map[string]any{"Prefix": "<", "Postfix": ">"}},
			handlers: map[string]handler{"fortune": constant("fortune")},
			status:   core.StatusCompleted, output: "<fortune>",
		},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			s := exampleSim(t, r.file, r.handlers)
			f := s.run(r.input)
			if f == nil {
				t.Fatalf("the workflow did not finish; calls %d, timers %d", len(s.calls), len(s.timers))
			}
			if f.Status != r.status {
				t.Fatalf("status %s (error %v), want %s", f.Status, f.Error, r.status)
			}
			if r.status == core.StatusCompleted && !reflect.DeepEqual(jsonValue(f.Output), jsonValue(r.output)) {
				t.Errorf("output %s, want %s", dump(f.Output), dump(r.output))
			}
			if r.check != nil {
				r.check(t, s)
			}
			s.replay()
		})
	}
}

// TestFissionSleepalotRunsBranchesInParallel checks that the run time of
// sleepalot is its critical path (10+5+5+20+5+5 = 50s), not the sum of its
// sleeps (65s), on the virtual clock.
func TestFissionSleepalotRunsBranchesInParallel(t *testing.T) {
	s := exampleSim(t, "misc/sleepalot.wf.yaml", nil)
	began := s.now
	f := s.run(nil)
	if f == nil || f.Status != core.StatusCompleted {
		t.Fatalf("finish %v", f)
	}
	if got := s.now.Sub(began); got != 50*time.Second {
		t.Errorf("sleepalot took %v on the virtual clock, want the critical path 50s", got)
	}
	var scheduled []string
	for _, ev := range s.history {
		if ev.Type == core.TimerScheduled {
			scheduled = append(scheduled, ev.Timer)
		}
	}
	want := []string{"/tasks/A", "/tasks/B", "/tasks/C", "/tasks/D1", "/tasks/D2", "/tasks/D3", "/tasks/E", "/tasks/F"}
	if !reflect.DeepEqual(scheduled, want) {
		t.Errorf("timers %v, want %v", scheduled, want)
	}
	s.replay()
}

// TestFissionReplayMidway replays a history cut while calls are pending:
// the fresh machine asks for exactly the pending calls again.
func TestFissionReplayMidway(t *testing.T) {
	src := []byte(`
output: Join
tasks:
  Left:
    run: slow
    inputs: left
  Right:
    run: fast
    inputs: right
  Join:
    run: compose
    inputs:
      l: "{ output('Left') }"
      r: "{ output('Right') }"
      id: "{ uid() }"
    requires: [Left, Right]
`)
	s := newFissionSim(t, "join.wf.yaml", src, map[string]handler{
		"slow": func(*core.Call) (any, *problem.Problem) { return nil, hold },
		"fast": echo,
	})
	if f := s.run(nil); f != nil {
		t.Fatalf("finished %s while Left was held", f.Status)
	}
	m := core.New(s.def, core.Options{ID: "inv-1"})
	for _, ev := range s.history {
		if err := m.Step(ev); err != nil {
			t.Fatal(err)
		}
	}
	var pending []string
	for _, c := range m.Ready() {
		if call, ok := c.(*core.Call); ok {
			pending = append(pending, call.Task)
		}
	}
	if !reflect.DeepEqual(pending, []string{"/tasks/Left"}) {
		t.Fatalf("replay asked for %v, want only the pending /tasks/Left", pending)
	}
	// Completing the held call on both machines gives the same output,
	// uid() included.
	done := core.Event{Type: core.TaskCompleted, Task: "/tasks/Left", Attempt: 1, Output: "L", Time: s.now}
	for _, mm := range []*core.Machine{s.m, m} {
		if err := mm.Step(done); err != nil {
			t.Fatal(err)
		}
	}
	a, b := s.m.Result(), m.Result()
	if a == nil || b == nil || a.Status != core.StatusCompleted {
		t.Fatalf("results %v and %v", a, b)
	}
	if !reflect.DeepEqual(jsonValue(a.Output), jsonValue(b.Output)) {
		t.Errorf("live output %s, replayed %s", dump(a.Output), dump(b.Output))
	}
	out := a.Output.(map[string]any)
	if out["l"] != "L" || !reflect.DeepEqual(out["r"], map[string]any{"default": "right"}) {
		t.Errorf("output %s", dump(out))
	}
	if id, _ := out["id"].(string); len(id) != 24 {
		t.Errorf("uid() gave %q", out["id"])
	}
}

// TestFissionBuiltins covers built-in functions and dynamic tasks beyond
// what the examples use.
func TestFissionBuiltins(t *testing.T) {
	rows := []struct {
		name     string
		src      string
		input    any
		handlers map[string]handler
		status   core.Status
		output   any
		errType  string
	}{
		{
			name: "a function that returns a task has it run in its place",
			src: `
output: A
tasks:
  A:
    run: planner
    inputs: 21
`,
			handlers: map[string]handler{"planner": func(c *core.Call) (any, *problem.Problem) {
				return map[string]any{"run": "javascript", "inputs": map[string]any{"expr": "n * 2", "args": map[string]any{"n": c.Args["default"]}}}, nil
			}},
			status: core.StatusCompleted, output: 42.0,
		},
		{
			name: "a function that returns a workflow has it run in its place, seeing the outer tasks",
			src: `
output: B
tasks:
  A:
    run: noop
    inputs: outer
  B:
    run: planner
    requires: [A]
`,
			handlers: map[string]handler{"planner": constant(map[string]any{
				"output": "Y",
				"tasks": map[string]any{
					"X": map[string]any{"run": "noop", "inputs": "{ output('A') + '-x' }"},
					"Y": map[string]any{"run": "compose", "inputs": "{ output('X') + '-y' }", "requires": []any{"X"}},
				},
			})},
			status: core.StatusCompleted, output: "outer-x-y",
		},
		{
			name: "foreach sequential without collect gives nothing",
			src: `
output: F
tasks:
  F:
    run: foreach
    inputs:
      foreach: [1, 2]
      sequential: true
      collect: false
      do:
        run: noop
        inputs: "{ task().Inputs._item }"
`,
			status: core.StatusCompleted, output: nil,
		},
		{
			name: "foreach accepts the documented for spelling",
			src: `
output: F
tasks:
  F:
    run: foreach
    inputs:
      for: [a, b]
      do:
        run: compose
        inputs: "{ task().Inputs._item + task().Inputs._index }"
`,
			status: core.StatusCompleted, output: []any{"a0", "b1"},
		},
		{
			name: "while fails past its limit",
			src: `
output: W
tasks:
  W:
    run: while
    inputs:
      expr: "{ true }"
      limit: 3
      do:
        run: noop
`,
			status: core.StatusFaulted, errType: problem.TypeRuntime,
		},
		{
			name: "compose merges named inputs",
			src: `
output: C
tasks:
  C:
    run: compose
    inputs:
      a: 1
      b: "{ 1 + 1 }"
`,
			status: core.StatusCompleted, output: map[string]any{"a": 1.0, "b": 2.0},
		},
		{
			name: "a JavaScript error faults the task with an expression error",
			src: `
output: C
tasks:
  C:
    run: noop
    inputs: "{ undefinedThing.field }"
`,
			status: core.StatusFaulted, errType: problem.TypeExpression,
		},
		{
			name: "javascript sees its args and the scope",
			src: `
output: J
tasks:
  J:
    run: javascript
    inputs:
      expr: "a ^ b"
      args:
        a: 42
        b: 10
`,
			status: core.StatusCompleted, output: 32.0,
		},
		{
			name: "sleep with a bad duration is a configuration error",
			src: `
output: S
tasks:
  S:
    run: sleep
    inputs: soon
`,
			status: core.StatusFaulted, errType: problem.TypeConfiguration,
		},
		{
			name: "while with a delay waits through timers",
			src: `
output: W
tasks:
  W:
    run: while
    inputs:
      expr: "{ (task().Inputs._prev || 0) < 3 }"
      delay: 1s
      do:
        run: noop
        inputs: "{ (task().Inputs._prev || 0) + 1 }"
`,
			status: core.StatusCompleted, output: 3.0,
		},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			s := newFissionSim(t, "t.wf.yaml", []byte(r.src), r.handlers)
			f := s.run(r.input)
			if f == nil {
				t.Fatal("the workflow did not finish")
			}
			if f.Status != r.status {
				t.Fatalf("status %s (error %v), want %s", f.Status, f.Error, r.status)
			}
			if r.status == core.StatusCompleted && !reflect.DeepEqual(jsonValue(f.Output), jsonValue(r.output)) {
				t.Errorf("output %s, want %s", dump(f.Output), dump(r.output))
			}
			if r.errType != "" && !problem.SameType(f.Error.Type, r.errType) {
				t.Errorf("error %v, want type %s", f.Error, r.errType)
			}
			s.replay()
		})
	}
}
