package core_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
)

// echo answers a call with its arguments.
func echo(c *core.Call) (any, *problem.Problem) { return c.Args, nil }

// TestScenarios runs one workflow per row to its end, checks the outcome,
// then replays the recorded history into a fresh machine and checks that
// it ends the same way without redoing any call.
func TestScenarios(t *testing.T) {
	type row struct {
		name     string
		doc      string
		input    string
		handlers map[string]handler
		status   core.Status
		output   string // YAML; checked when status is completed
		errType  string // checked when faulted
		errInst  string
		check    func(t *testing.T, s *sim)
	}
	rows := []row{
		{
			name: "set replaces the data",
			doc: `
do:
  - a:
      set:
        greeting: '${ "Hello, " + .name + "!" }'`,
			input:  `name: Ada`,
			status: core.StatusCompleted, output: `greeting: Hello, Ada!`,
		},
		{
			name: "implicit sequence threads outputs",
			doc: `
do:
  - red:
      set:
        colors: '${ .colors + ["red"] }'
  - green:
      set:
        colors: '${ .colors + ["green"] }'`,
			status: core.StatusCompleted, output: `colors: [red, green]`,
		},
		{
			name: "then jumps, then end stops",
			doc: `
do:
  - red:
      set:
        colors: '${ .colors + ["red"] }'
      then: green
  - blue:
      set:
        colors: '${ .colors + ["blue"] }'
      then: end
  - green:
      set:
        colors: '${ .colors + ["green"] }'
      then: blue
  - never:
      set: {colors: [never]}`,
			status: core.StatusCompleted, output: `colors: [red, green, blue]`,
		},
		{
			name: "exit leaves the enclosing do only",
			doc: `
do:
  - inner:
      do:
        - one:
            set: {n: 1}
            then: exit
        - two:
            set: {n: 2}
  - after:
      set: '${ {n: (.n + 10)} }'`,
			status: core.StatusCompleted, output: `n: 11`,
		},
		{
			name: "data flow: input.from, output.as, export.as and $context",
			doc: `
input:
  from: '${ {user: .user} }'
do:
  - pick:
      input:
        from: .user
      set:
        name: '${ .name }'
        age: '${ .age }'
      output:
        as: '${ {name: .name, raw: $task.output.age} }'
      export:
        as: '${ $context + {seen: $output.name} }'
  - useContext:
      set:
        who: '${ $context.seen }'
        input: '${ $input.name }'
output:
  as: '${ {result: .who, input: .input} }'`,
			input:  `{user: {name: Ada, age: 36}, noise: true}`,
			status: core.StatusCompleted, output: `{result: Ada, input: Ada}`,
		},
		{
			name: "if skips a task and passes its input on",
			doc: `
do:
  - maybe:
      if: .go
      set: {went: true}
  - last:
      set: '${ . + {done: true} }'`,
			input:  `go: false`,
			status: core.StatusCompleted, output: `{go: false, done: true}`,
		},
		{
			name: "switch routes to the matching case",
			doc: `
do:
  - route:
      switch:
        - red:
            when: '.color == "red"'
            then: setRed
        - fallback:
            then: setOther
  - setRed:
      set: {picked: red}
      then: end
  - setOther:
      set: {picked: other}`,
			input:  `color: red`,
			status: core.StatusCompleted, output: `picked: red`,
		},
		{
			name: "switch default case",
			doc: `
do:
  - route:
      switch:
        - red:
            when: '.color == "red"'
            then: setRed
        - fallback:
            then: setOther
  - setRed:
      set: {picked: red}
      then: end
  - setOther:
      set: {picked: other}`,
			input:  `color: green`,
			status: core.StatusCompleted, output: `picked: other`,
		},
		{
			name: "switch without a match follows the task's own then",
			doc: `
do:
  - route:
      switch:
        - red:
            when: '.color == "red"'
            then: setRed
      then: end
  - setRed:
      set: {picked: red}`,
			input:  `color: green`,
			status: core.StatusCompleted, output: `color: green`,
		},
		{
			name: "for accumulates over items with each and at",
			doc: `
do:
  - loop:
      for:
        each: color
        in: .colors
      do:
        - mark:
            set:
              processed: '${ {colors: (.processed.colors + [$color]), indexes: (.processed.indexes + [$index])} }'`,
			input:  `colors: [red, green, blue]`,
			status: core.StatusCompleted, output: `processed: {colors: [red, green, blue], indexes: [0, 1, 2]}`,
		},
		{
			name: "for stops when while turns false",
			doc: `
do:
  - loop:
      for:
        in: .items
      while: '(.count // 0) < 2'
      do:
        - count:
            set: '${ {count: ((.count // 0) + 1), last: $item} }'`,
			input:  `items: [a, b, c, d]`,
			status: core.StatusCompleted, output: `{count: 2, last: b}`,
		},
		{
			name: "calls inside a loop get one key per iteration",
			doc: `
do:
  - loop:
      for:
        in: .items
      do:
        - get:
            call: http
            with:
              method: get
              endpoint: '${ "http://x/" + $item }'`,
			input:    `items: [a, b]`,
			handlers: map[string]handler{"http": echo},
			status:   core.StatusCompleted,
			check: func(t *testing.T, s *sim) {
				if len(s.calls) != 2 || s.calls[0].Task == s.calls[1].Task {
					t.Fatalf("want two calls with distinct keys, got %v", keys(s.calls))
				}
				if s.calls[0].Task != "/do/0/loop/do/0/get[0]" || s.calls[1].Args["endpoint"] != "http://x/b" {
					t.Errorf("unexpected calls: %v %v", keys(s.calls), s.calls[1].Args)
				}
			},
		},
		{
			name: "fork collects branch outputs in declaration order",
			doc: `
do:
  - both:
      fork:
        branches:
          - slow:
              call: http
              with: {method: get, endpoint: 'http://x/slow'}
          - quick:
              set: {branch: quick}`,
			handlers: map[string]handler{"http": func(c *core.Call) (any, *problem.Problem) { return map[string]any{"branch": "slow"}, nil }},
			status:   core.StatusCompleted, output: `[{branch: slow}, {branch: quick}]`,
		},
		{
			name: "compete takes the first branch to finish and cancels the rest",
			doc: `
do:
  - race:
      fork:
        compete: true
        branches:
          - never:
              call: http
              with: {method: get, endpoint: 'http://x/never'}
          - soon:
              call: http
              with: {method: get, endpoint: 'http://x/soon'}`,
			handlers: map[string]handler{"http": func(c *core.Call) (any, *problem.Problem) {
				if c.Name == "never" {
					return nil, hold
				}
				return map[string]any{"winner": c.Name}, nil
			}},
			status: core.StatusCompleted, output: `winner: soon`,
			check: func(t *testing.T, s *sim) {
				if !reflect.DeepEqual(s.cancelled, []string{"/do/0/race/fork/branches/0/never"}) {
					t.Errorf("cancelled %v", s.cancelled)
				}
			},
		},
		{
			name: "raise faults with the error and its instance",
			doc: `
do:
  - check:
      raise:
        error:
          type: https://example.com/errors/bad
          status: 422
          title: Bad
          detail: '${ "bad " + .what }'`,
			input:  `what: input`,
			status: core.StatusFaulted, errType: "https://example.com/errors/bad", errInst: "/do/0/check",
			check: func(t *testing.T, s *sim) {
				if e := s.finish.Error; e.Status != 422 || e.Detail != "bad input" {
					t.Errorf("error %+v", e)
				}
			},
		},
		{
			name: "raise a reusable error",
			doc: `
use:
  errors:
    notFound:
      type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
      status: 404
do:
  - fail:
      raise:
        error: notFound`,
			status: core.StatusFaulted, errType: problem.TypeCommunication, errInst: "/do/0/fail",
		},
		{
			name: "try catches a matching error and runs catch.do with the error",
			doc: `
do:
  - attempt:
      try:
        - get:
            call: http
            with: {method: get, endpoint: 'http://x/pet'}
      catch:
        errors:
          with:
            type: https://serverlessworkflow.io/dsl/errors/types/communication
            status: 404
        as: err
        do:
          - keep:
              set:
                error: '${ $err }'`,
			handlers: map[string]handler{"http": func(c *core.Call) (any, *problem.Problem) {
				return nil, problem.Communication(404, "no pet")
			}},
			status: core.StatusCompleted,
			check: func(t *testing.T, s *sim) {
				got := s.finish.Output.(map[string]any)["error"].(map[string]any)
				if got["instance"] != "/do/0/attempt/try/0/get" || got["status"] != float64(404) {
					t.Errorf("caught error %v", got)
				}
			},
		},
		{
			name: "try lets other errors through",
			doc: `
do:
  - attempt:
      try:
        - get:
            call: http
            with: {method: get, endpoint: 'http://x/pet'}
      catch:
        errors:
          with:
            status: 503`,
			handlers: map[string]handler{"http": func(c *core.Call) (any, *problem.Problem) {
				return nil, problem.Communication(404, "no pet")
			}},
			status: core.StatusFaulted, errType: problem.TypeCommunication, errInst: "/do/0/attempt/try/0/get",
		},
		{
			name: "retry with exponential backoff until it works",
			doc: `
do:
  - attempt:
      try:
        - get:
            call: http
            with: {method: get, endpoint: 'http://x/flaky'}
      catch:
        errors:
          with: {status: 503}
        retry:
          delay: {seconds: 1}
          backoff: {exponential: {}}
          limit:
            attempt: {count: 5}`,
			handlers: flaky(3),
			status:   core.StatusCompleted, output: `ok: 4`,
			check: func(t *testing.T, s *sim) {
				want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
				if !reflect.DeepEqual(s.waits, want) {
					t.Errorf("delays %v, want %v", s.waits, want)
				}
				if len(s.calls) != 4 || s.calls[3].Attempt != 4 || s.calls[3].Task == s.calls[0].Task {
					t.Errorf("calls %v", keys(s.calls))
				}
			},
		},
		{
			name: "retry gives up after count retries",
			doc: `
use:
  retries:
    twice:
      delay: {milliseconds: 100}
      backoff: {linear: {}}
      limit:
        attempt: {count: 2}
do:
  - attempt:
      try:
        - get:
            call: http
            with: {method: get, endpoint: 'http://x/down'}
      catch:
        errors:
          with: {status: 503}
        retry: twice`,
			handlers: flaky(100),
			status:   core.StatusFaulted, errType: problem.TypeCommunication,
			check: func(t *testing.T, s *sim) {
				// count 2: the first attempt and two retries.
				if len(s.calls) != 3 {
					t.Errorf("%d calls (%v), want 3", len(s.calls), keys(s.calls))
				}
			},
		},
		{
			name: "wait starts a timer and passes the input on",
			doc: `
do:
  - pause:
      wait: {seconds: 5}`,
			input:  `x: 1`,
			status: core.StatusCompleted, output: `x: 1`,
			check: func(t *testing.T, s *sim) {
				if !reflect.DeepEqual(s.waits, []time.Duration{5 * time.Second}) {
					t.Errorf("waits %v", s.waits)
				}
			},
		},
		{
			name: "a task timeout cancels its call and faults",
			doc: `
do:
  - slow:
      call: http
      with: {method: get, endpoint: 'http://x/slow'}
      timeout:
        after: {seconds: 2}`,
			handlers: map[string]handler{"http": func(c *core.Call) (any, *problem.Problem) { return nil, hold }},
			status:   core.StatusFaulted, errType: problem.TypeTimeout, errInst: "/do/0/slow",
			check: func(t *testing.T, s *sim) {
				if !reflect.DeepEqual(s.cancelled, []string{"/do/0/slow"}) {
					t.Errorf("cancelled %v", s.cancelled)
				}
				if s.calls[0].Timeout != 2*time.Second {
					t.Errorf("call timeout %v", s.calls[0].Timeout)
				}
			},
		},
		{
			name: "a timeout caught by try",
			doc: `
do:
  - guarded:
      try:
        - slow:
            wait: {minutes: 5}
            timeout:
              after: {seconds: 1}
      catch:
        errors:
          with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout}
        do:
          - note:
              set: {timedOut: true}`,
			status: core.StatusCompleted, output: `timedOut: true`,
		},
		{
			name: "the workflow timeout faults the invocation",
			doc: `
timeout:
  after: {seconds: 3}
do:
  - pause:
      wait: {hours: 1}`,
			status: core.StatusFaulted, errType: problem.TypeTimeout, errInst: "/",
		},
		{
			name: "a then loop without a wait is stopped",
			doc: `
do:
  - a:
      set: {x: 1}
      then: b
  - b:
      set: {x: 2}
      then: a`,
			status: core.StatusFaulted, errType: problem.TypeRuntime,
		},
		{
			name: "an expression error names its task",
			doc: `
do:
  - bad:
      set: '${ .a.b.c + 1 }'`,
			input:  `a: {b: {c: text}}`,
			status: core.StatusFaulted, errType: problem.TypeExpression, errInst: "/do/0/bad/set",
		},
		{
			name: "reusable function called with arguments",
			doc: `
use:
  functions:
    greet:
      set:
        greeting: '${ "Hi " + .who }'
do:
  - hello:
      call: greet
      with:
        who: '${ .name }'`,
			input:  `name: Bo`,
			status: core.StatusCompleted, output: `greeting: Hi Bo`,
		},
		{
			name: "workflow input.schema rejects a bad input",
			doc: `
input:
  schema:
    format: json
    document:
      type: object
      properties:
        name: {type: string}
      required: [name]
do:
  - greet:
      set: {ok: true}`,
			input:  `name: 42`,
			status: core.StatusFaulted, errType: problem.TypeValidation, errInst: "/input/schema",
			check: func(t *testing.T, s *sim) {
				if !strings.Contains(s.finish.Error.Detail, "at /name") {
					t.Errorf("detail does not say where: %q", s.finish.Error.Detail)
				}
			},
		},
		{
			name: "schemas that hold let the data through",
			doc: `
input:
  schema:
    document: {type: object, required: [name]}
do:
  - greet:
      input:
        schema:
          document: {type: object, properties: {name: {type: string}}}
      set: {greeting: '${ "hi " + .name }'}
      output:
        schema:
          document: {type: object, required: [greeting]}
      export:
        as: '${ {greeted: true} }'
        schema:
          document: {type: object, properties: {greeted: {const: true}}}
output:
  schema:
    document: {type: object, required: [greeting]}`,
			input:  `name: Ada`,
			status: core.StatusCompleted, output: `greeting: hi Ada`,
		},
		{
			name: "task output.schema faults the task, which try can catch",
			doc: `
do:
  - guarded:
      try:
        - make:
            set: {count: many}
            output:
              schema:
                document: {type: object, properties: {count: {type: number}}}
      catch:
        errors:
          with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/validation}
        as: e
        do:
          - report:
              set: '${ {instance: $e.instance} }'`,
			status: core.StatusCompleted, output: `instance: /do/0/guarded/try/0/make/output/schema`,
		},
		{
			name: "listen keeps its event filters as written and evaluates expect",
			doc: `
do:
  - wait4order:
      listen:
        to:
          one:
            with:
              type: com.example.order.placed
              data: '${ .amount > 100 }'
            correlate:
              customer:
                from: '${ .data.customer }'
                expect: '${ .customer }'`,
			input:    `customer: c-7`,
			handlers: map[string]handler{"listen": echo},
			status:   core.StatusCompleted,
			check: func(t *testing.T, s *sim) {
				one := s.calls[0].Args["to"].(map[string]any)["one"].(map[string]any)
				if one["with"].(map[string]any)["data"] != "${ .amount > 100 }" {
					t.Errorf("the filter was evaluated against the task's input: %v", one["with"])
				}
				corr := one["correlate"].(map[string]any)["customer"].(map[string]any)
				if corr["expect"] != "c-7" || corr["from"] != "${ .data.customer }" {
					t.Errorf("correlation %v", corr)
				}
			},
		},
		{
			name: "listen foreach processes each event in turn",
			doc: `
do:
  - gossip:
      listen:
        to:
          any: []
          until: '${ false }'
      foreach:
        item: event
        at: i
        do:
          - tag:
              set: '${ {n: .n, i: $i, id: $event.id} }'
        output:
          as: '${ .n * 10 }'
        export:
          as: '${ $context + {last: $output} }'
  - total:
      set: '${ {sum: (. | add), last: $context.last} }'`,
			handlers: stream(3),
			status:   core.StatusCompleted, output: `{sum: 60, last: 30}`,
			check: func(t *testing.T, s *sim) {
				if len(s.calls) != 4 || s.calls[3].Args["after"] != float64(3) || s.calls[0].Args["after"] != nil {
					t.Errorf("calls %v, args of the last %v", keys(s.calls), s.calls[len(s.calls)-1].Args)
				}
			},
		},
		{
			name: "workflow and task descriptors",
			doc: `
do:
  - describe:
      set:
        id: '${ $workflow.id }'
        ref: '${ $task.reference }'
        name: '${ $task.name }'
        runtime: '${ $runtime.name }'
        started: '${ $workflow.startedAt.iso8601 }'`,
			status: core.StatusCompleted,
			output: `{id: inv-1, ref: /do/0/describe, name: describe, runtime: null, started: "` + start + `"}`,
		},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			s := newSim(t, wf(r.doc), r.handlers)
			var input any
			if r.input != "" {
				input = yamlValue(t, r.input)
			}
			f := s.run(input)
			if f == nil {
				t.Fatalf("the invocation did not finish; calls %v, timers %v", keys(s.calls), s.timers)
			}
			if f.Status != r.status {
				t.Fatalf("status %s (error %v, output %v), want %s", f.Status, f.Error, f.Output, r.status)
			}
			if r.status == core.StatusCompleted && r.output != "" {
				want := yamlValue(t, r.output)
				if !reflect.DeepEqual(jsonValue(f.Output), want) {
					t.Errorf("output %s, want %s", dump(f.Output), dump(want))
				}
			}
			if r.errType != "" && f.Error.Type != r.errType {
				t.Errorf("error type %s, want %s (%v)", f.Error.Type, r.errType, f.Error)
			}
			if r.errInst != "" && f.Error.Instance != r.errInst {
				t.Errorf("error instance %q, want %q", f.Error.Instance, r.errInst)
			}
			if r.check != nil {
				r.check(t, s)
			}
			s.replay()
		})
	}
}

// stream answers foreach listens with n events {id, n}, then done; it
// serves the event after the position the call names, as the engine does.
func stream(n int) map[string]handler {
	return map[string]handler{"listen": func(c *core.Call) (any, *problem.Problem) {
		after := 0.0
		if v, ok := c.Args["after"].(float64); ok {
			after = v
		}
		if after >= float64(n) {
			return map[string]any{"done": true}, nil
		}
		next := after + 1
		return map[string]any{
			"event": map[string]any{"id": fmt.Sprintf("e%d", int(next)), "n": next},
			"start": 0.0, "after": next,
		}, nil
	}}
}

// flaky fails with 503 n times, then answers {ok: attempt}.
func flaky(n int) map[string]handler {
	calls := 0
	return map[string]handler{"http": func(c *core.Call) (any, *problem.Problem) {
		calls++
		if calls <= n {
			return nil, problem.Communication(503, "try again")
		}
		return map[string]any{"ok": float64(c.Attempt)}, nil
	}}
}

func keys(calls []*core.Call) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = fmt.Sprintf("%s#%d", c.Task, c.Attempt)
	}
	return out
}

// TestReplayResumesPendingWork cuts a history in the middle, as a crash
// does, and checks that a fresh machine asks again for exactly the call
// that was in flight and keeps the timer's recorded deadline.
func TestReplayResumesPendingWork(t *testing.T) {
	doc := wf(`
do:
  - first:
      call: http
      with: {method: get, endpoint: 'http://x/1'}
  - pause:
      wait: {minutes: 10}
  - second:
      call: http
      with: {method: get, endpoint: 'http://x/2'}`)
	s := newSim(t, doc, map[string]handler{"http": echo})
	s.run(nil)
	if s.finish == nil || s.finish.Status != core.StatusCompleted {
		t.Fatalf("live run: %+v", s.finish)
	}
	cut := func(pred func(core.Event) bool) []core.Event {
		for i, ev := range s.history {
			if pred(ev) {
				return s.history[:i]
			}
		}
		t.Fatal("cut point not found")
		return nil
	}

	// Crash while the timer runs: the deadline comes back as recorded.
	history := cut(func(ev core.Event) bool { return ev.Type == core.TimerFired })
	m := core.New(s.def, core.Options{ID: "inv-1"})
	for _, ev := range history {
		if err := m.Step(ev); err != nil {
			t.Fatal(err)
		}
	}
	cmds := m.Ready()
	if len(cmds) != 1 {
		t.Fatalf("want one pending command, got %d: %s", len(cmds), dump(cmds))
	}
	st, ok := cmds[0].(*core.StartTimer)
	if !ok || st.FireAt.IsZero() || !st.FireAt.Equal(s.timers0()) {
		t.Fatalf("want the timer with its recorded deadline, got %s", dump(cmds[0]))
	}

	// Crash during the second call: that call, same key, and nothing else.
	history = cut(func(ev core.Event) bool { return ev.Type == core.TaskCompleted && strings.HasSuffix(ev.Task, "second") })
	m = core.New(s.def, core.Options{ID: "inv-1"})
	for _, ev := range history {
		if err := m.Step(ev); err != nil {
			t.Fatal(err)
		}
	}
	cmds = m.Ready()
	if len(cmds) != 1 {
		t.Fatalf("want one pending command, got %s", dump(cmds))
	}
	if c, ok := cmds[0].(*core.Call); !ok || c.Task != "/do/2/second" || c.Attempt != 1 {
		t.Fatalf("want the second call again, got %s", dump(cmds[0]))
	}
}

// timers0 is the deadline the live run recorded for its only timer.
func (s *sim) timers0() time.Time {
	for _, ev := range s.history {
		if ev.Type == core.TimerScheduled {
			return ev.FireAt
		}
	}
	return time.Time{}
}

func TestCancelRequested(t *testing.T) {
	s := newSim(t, wf(`
do:
  - slow:
      call: http
      with: {method: get, endpoint: 'http://x/slow'}`), map[string]handler{"http": func(*core.Call) (any, *problem.Problem) { return nil, hold }})
	s.run(nil)
	if s.finish != nil {
		t.Fatal("finished before cancel")
	}
	s.step(core.Event{Type: core.CancelRequested})
	if s.finish == nil || s.finish.Status != core.StatusCancelled {
		t.Fatalf("want cancelled, got %+v", s.finish)
	}
	if !reflect.DeepEqual(s.cancelled, []string{"/do/0/slow"}) {
		t.Errorf("cancelled calls %v", s.cancelled)
	}
	// Late results are ignored.
	s.step(core.Event{Type: core.TaskCompleted, Task: "/do/0/slow", Attempt: 1})
	if s.m.Status() != core.StatusCancelled {
		t.Errorf("status changed to %s", s.m.Status())
	}
}

// TestCancelRequestReason: the reason given for a cancellation is on the
// event and in the error the invocation ends with.
func TestCancelRequestReason(t *testing.T) {
	s := newSim(t, wf(`
do:
  - slow:
      call: http
      with: {method: get, endpoint: 'http://x/slow'}`), map[string]handler{"http": func(*core.Call) (any, *problem.Problem) { return nil, hold }})
	s.run(nil)
	ev := core.CancelRequest("stuck on a dead endpoint")
	if ev.Type != core.CancelRequested || ev.Info["reason"] != "stuck on a dead endpoint" {
		t.Fatalf("event %+v", ev)
	}
	s.step(ev)
	if s.finish == nil || s.finish.Status != core.StatusCancelled {
		t.Fatalf("want cancelled, got %+v", s.finish)
	}
	if s.finish.Error == nil || s.finish.Error.Detail != "the invocation was cancelled: stuck on a dead endpoint" {
		t.Errorf("error %+v", s.finish.Error)
	}
	if plain := core.CancelRequest(""); plain.Info != nil || plain.Error != nil {
		t.Errorf("a cancellation without a reason carries %+v", plain)
	}
}

// TestDeterministic runs the same workflow twice and compares the command
// streams: nothing in the machine may depend on map order or the clock.
func TestDeterministic(t *testing.T) {
	doc := wf(`
do:
  - fan:
      fork:
        branches:
          - a:
              call: http
              with: {method: get, endpoint: 'http://x/a', body: {k1: 1, k2: 2, k3: 3}}
          - b:
              for:
                in: '.items'
              do:
                - c:
                    call: http
                    with: {method: get, endpoint: '${ "http://x/" + $item }'}
          - d:
              try:
                - e:
                    call: http
                    with: {method: get, endpoint: 'http://x/e'}
              catch:
                retry:
                  delay: {milliseconds: 10}
                  jitter: {from: {milliseconds: 1}, to: {milliseconds: 50}}
                  limit: {attempt: {count: 3}}`)
	var streams [2]string
	for i := range streams {
		s := newSim(t, doc, flaky(2))
		s.run(yamlValue(t, `items: [p, q, r]`))
		streams[i] = dump(keys(s.calls)) + dump(s.waits) + dump(s.finish)
	}
	if streams[0] != streams[1] {
		t.Fatalf("two runs differ:\n%s\n%s", streams[0], streams[1])
	}
}
