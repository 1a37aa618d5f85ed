package core_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
)

// runAndReplay runs a workflow to its end in the simulator, then replays
// its history into a fresh machine, as TestScenarios does.
func runAndReplay(t *testing.T, doc, input string, handlers map[string]handler) (*sim, *core.Finish) {
	t.Helper()
	s := newSim(t, wf(doc), handlers)
	var in any
	if input != "" {
		in = yamlValue(t, input)
	}
	f := s.run(in)
	if f == nil {
		t.Fatalf("the invocation did not finish; calls %v, timers %v", keys(s.calls), s.timers)
	}
	s.replay()
	return s, f
}

func held(map[string]handler) map[string]handler {
	return map[string]handler{"http": func(c *core.Call) (any, *problem.Problem) { return nil, hold }}
}

// TestRetryLimits: limit.attempt.count counts retries after the first
// attempt; limit.duration and limit.attempt.duration bound the retrying.
func TestRetryLimits(t *testing.T) {
	policy := func(limit string) string {
		return `
do:
  - attempt:
      try:
        - get:
            call: http
            with: {method: get, endpoint: 'http://x/down'}
      catch:
        retry:
          delay: {seconds: 1}
          limit: ` + limit
	}
	cases := []struct {
		name     string
		limit    string
		handlers map[string]handler
		calls    int
		errType  string
	}{
		{"count 0 never retries", `{attempt: {count: 0}}`, flaky(100), 1, problem.TypeCommunication},
		{"count 1 retries once", `{attempt: {count: 1}}`, flaky(100), 2, problem.TypeCommunication},
		{"count 2 runs, retries, retries, then faults", `{attempt: {count: 2}}`, flaky(100), 3, problem.TypeCommunication},
		// Attempts fail at 0s, 1s, 2s and 3s; at 3s the 2.5s are spent.
		{"limit.duration stops retrying", `{duration: {milliseconds: 2500}}`, flaky(100), 4, problem.TypeCommunication},
		// Each attempt hangs and is cut after 2s; one retry is allowed.
		{"attempt.duration cuts each attempt", `{attempt: {count: 1, duration: PT2S}}`, held(nil), 2, problem.TypeTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, f := runAndReplay(t, policy(c.limit), "", c.handlers)
			if f.Status != core.StatusFaulted || f.Error.Type != c.errType {
				t.Fatalf("finished %s with %v, want a %s fault", f.Status, f.Error, c.errType)
			}
			if len(s.calls) != c.calls {
				t.Errorf("%d calls %v, want %d", len(s.calls), keys(s.calls), c.calls)
			}
		})
	}
}

// TestDurationExpressions: every duration may be a runtime expression,
// evaluated when the task runs against its input.
func TestDurationExpressions(t *testing.T) {
	t.Run("wait from the input, as a string and as an object", func(t *testing.T) {
		s, f := runAndReplay(t, `
do:
  - first:
      wait: '${ .delay }'
  - second:
      wait: '${ {seconds: .n} }'`, `{delay: PT3S, n: 2}`, nil)
		if f.Status != core.StatusCompleted {
			t.Fatalf("finished %s: %v", f.Status, f.Error)
		}
		if want := []time.Duration{3 * time.Second, 2 * time.Second}; !reflect.DeepEqual(s.waits, want) {
			t.Errorf("waits %v, want %v", s.waits, want)
		}
	})
	t.Run("a computed zero wait is still a recorded timer", func(t *testing.T) {
		s, f := runAndReplay(t, `
do:
  - none:
      wait: '${ "PT0S" }'`, ``, nil)
		if f.Status != core.StatusCompleted || !reflect.DeepEqual(s.waits, []time.Duration{0}) {
			t.Errorf("finished %s, waits %v", f.Status, s.waits)
		}
	})
	t.Run("retry delay from data with exponential backoff", func(t *testing.T) {
		s, f := runAndReplay(t, `
do:
  - attempt:
      try:
        - get:
            call: http
            with: {method: get, endpoint: 'http://x/flaky'}
      catch:
        retry:
          delay: '${ .retryDelay }'
          backoff: {exponential: {}}
          limit: {attempt: {count: 5}}`, `retryDelay: {milliseconds: 100}`, flaky(3))
		if f.Status != core.StatusCompleted {
			t.Fatalf("finished %s: %v", f.Status, f.Error)
		}
		want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
		if !reflect.DeepEqual(s.waits, want) {
			t.Errorf("delays %v, want %v", s.waits, want)
		}
	})
	t.Run("retry delay sees the caught error", func(t *testing.T) {
		s, _ := runAndReplay(t, `
do:
  - attempt:
      try:
        - get:
            call: http
            with: {method: get, endpoint: 'http://x/flaky'}
      catch:
        as: failure
        retry:
          delay: '${ if $failure.status == 503 then "PT7S" else "PT1S" end }'
          limit: {attempt: {count: 1}}`, ``, flaky(1))
		if !reflect.DeepEqual(s.waits, []time.Duration{7 * time.Second}) {
			t.Errorf("delays %v, want [7s]", s.waits)
		}
	})
	t.Run("a task timeout from data, through use.timeouts", func(t *testing.T) {
		s, f := runAndReplay(t, `
use:
  timeouts:
    perRequest: {after: '${ .limits.request }'}
do:
  - slow:
      call: http
      with: {method: get, endpoint: 'http://x/slow'}
      timeout: perRequest`, `limits: {request: PT4S}`, held(nil))
		if f.Status != core.StatusFaulted || f.Error.Type != problem.TypeTimeout || f.Error.Instance != "/do/0/slow" {
			t.Fatalf("finished %s: %v", f.Status, f.Error)
		}
		if s.calls[0].Timeout != 4*time.Second || !strings.Contains(f.Error.Detail, "4s") {
			t.Errorf("call timeout %v, error %q", s.calls[0].Timeout, f.Error.Detail)
		}
	})
	t.Run("a listen timeout from data", func(t *testing.T) {
		s, f := runAndReplay(t, `
do:
  - awaitOrder:
      listen:
        to:
          one:
            with: {type: order.placed}
      timeout:
        after: '${ .patience }'`, `patience: {minutes: 1}`, map[string]handler{
			"listen": func(c *core.Call) (any, *problem.Problem) { return nil, hold },
		})
		if f.Status != core.StatusFaulted || f.Error.Type != problem.TypeTimeout {
			t.Fatalf("finished %s: %v", f.Status, f.Error)
		}
		if !reflect.DeepEqual(s.waits, []time.Duration{time.Minute}) || s.calls[0].Timeout != time.Minute {
			t.Errorf("waits %v, call timeout %v", s.waits, s.calls[0].Timeout)
		}
	})
	t.Run("the workflow timeout from the input", func(t *testing.T) {
		_, f := runAndReplay(t, `
timeout:
  after: '${ .deadline }'
do:
  - long:
      wait: {hours: 1}`, `deadline: PT10S`, nil)
		if f.Status != core.StatusFaulted || f.Error.Type != problem.TypeTimeout || !strings.Contains(f.Error.Detail, "10s") {
			t.Fatalf("finished %s: %v", f.Status, f.Error)
		}
	})
	bad := []struct{ name, value, want string }{
		{"not ISO 8601", `soon`, `"soon" is not a valid duration`},
		{"a bare number", `5`, "unit is ambiguous"},
		{"negative", `{seconds: -1}`, "cannot be negative"},
		{"null", `null`, "produced null"},
	}
	for _, b := range bad {
		t.Run("invalid: "+b.name, func(t *testing.T) {
			_, f := runAndReplay(t, `
do:
  - pause:
      wait: '${ .delay }'`, `delay: `+b.value, nil)
			if f.Status != core.StatusFaulted || f.Error.Type != problem.TypeExpression {
				t.Fatalf("finished %s: %v", f.Status, f.Error)
			}
			if f.Error.Instance != "/do/0/pause/wait" || !strings.Contains(f.Error.Detail, "task pause: wait:") || !strings.Contains(f.Error.Detail, b.want) {
				t.Errorf("error %s at %s, want it to name task pause and say %q", f.Error.Detail, f.Error.Instance, b.want)
			}
		})
	}
}

// TestDurationReplayKeepsRecordedDeadline: on replay the deadline recorded
// in TimerScheduled wins, whatever evaluating the expression again gives.
func TestDurationReplayKeepsRecordedDeadline(t *testing.T) {
	def := parse(t, wf(`
do:
  - pause:
      wait: '${ .delay }'`))
	t0, _ := time.Parse(time.RFC3339, start)
	recorded := t0.Add(42 * time.Second)
	m := core.New(def, core.Options{ID: "inv-1"})
	for _, ev := range []core.Event{
		{Seq: 1, Type: core.InvocationStarted, Time: t0, Input: map[string]any{"delay": "PT5S"}},
		{Seq: 2, Type: core.TimerScheduled, Time: t0, Timer: "/do/0/pause", FireAt: recorded},
	} {
		if err := m.Step(ev); err != nil {
			t.Fatal(err)
		}
	}
	cmds := m.Ready()
	if len(cmds) != 1 {
		t.Fatalf("commands %s", dump(cmds))
	}
	st, ok := cmds[0].(*core.StartTimer)
	if !ok || !st.FireAt.Equal(recorded) {
		t.Fatalf("replay asks for %s, want the recorded deadline %v", dump(cmds[0]), recorded)
	}
}
