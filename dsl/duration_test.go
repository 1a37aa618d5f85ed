package dsl

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDurationValue(t *testing.T) {
	good := []struct {
		in   any
		want time.Duration
	}{
		{"PT1S", time.Second},
		{"PT0.5S", 500 * time.Millisecond},
		{"P1DT2H", 26 * time.Hour},
		{map[string]any{"seconds": 1.0}, time.Second},
		{map[string]any{"minutes": 1.0, "milliseconds": 250.0}, time.Minute + 250*time.Millisecond},
		{map[string]any{"days": 0.0}, 0},
	}
	for _, c := range good {
		got, err := DurationValue(c.in)
		if err != nil || got != c.want {
			t.Errorf("DurationValue(%v) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	bad := []struct {
		in   any
		want string
	}{
		{5.0, "unit is ambiguous"},
		{"5s", "invalid ISO 8601 duration"},
		{"P1M", "years and months"},
		{nil, "produced null"},
		{true, "expected an ISO 8601 string"},
		{map[string]any{}, "empty object"},
		{map[string]any{"secs": 1.0}, `"secs" is not a duration property`},
		{map[string]any{"seconds": 1.5}, "must be an integer"},
		{map[string]any{"seconds": "1"}, "must be an integer"},
		{map[string]any{"seconds": -1.0}, "cannot be negative"},
		{map[string]any{"days": 1e12}, "too long"},
	}
	for _, c := range bad {
		_, err := DurationValue(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("DurationValue(%v) = %v; want an error containing %q", c.in, err, c.want)
		}
	}
}

func TestDurationExpressionsParse(t *testing.T) {
	def, err := Parse("t.yaml", []byte(header+`use:
  timeouts:
    fromData: {after: '${ .limit }'}
timeout: {after: '${ .total }'}
do:
  - a:
      wait: '${ .delay }'
      timeout: fromData
  - b:
      try:
        - c: {set: {x: 1}}
      catch:
        retry:
          delay: '${ .retryDelay }'
          limit: {attempt: {count: 2, duration: '${ .each }'}, duration: '${ .all }'}
          jitter: {from: '${ .lo }', to: {seconds: 1}}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := def.Do[0].Task
	r := def.Do[1].Task.Try.Catch.Retry
	for what, d := range map[string]*Duration{
		"workflow timeout": &def.Timeout.After, "wait": a.Wait, "use.timeouts": &a.Timeout.After,
		"delay": r.Delay, "attempt.duration": r.Limit.AttemptDuration, "limit.duration": r.Limit.Duration,
		"jitter.from": &r.Jitter.From,
	} {
		if !d.IsExpr() {
			t.Errorf("%s: %+v is not an expression", what, d)
		}
	}
	if *r.Limit.AttemptCount != 2 || r.Jitter.To.IsExpr() || r.Jitter.To.D != time.Second {
		t.Errorf("retry %+v", r)
	}

	_, err = Parse("t.yaml", []byte(header+`schedule: {every: '${ .x }'}
do:
  - a: {set: {x: 1}}
`))
	if err == nil || !strings.Contains(err.Error(), "schedule.every must be a fixed duration") {
		t.Errorf("schedule.every from an expression: %v", err)
	}
}

// TestVersionedProcessArguments: run.shell/script arguments are a map up
// to DSL 1.0.2 and a list from 1.0.3 on; each version is read as it was.
func TestVersionedProcessArguments(t *testing.T) {
	doc := func(version, kind, args string) string {
		spec := "command: echo"
		if kind == "script" {
			spec = "language: js\n          code: console.log(greeting)"
		}
		return "document: {dsl: '" + version + "', namespace: test, name: t, version: '0.1.0'}\n" +
			"do:\n  - r:\n      run:\n        " + kind + ":\n          " + spec + "\n          arguments: " + args + "\n"
	}
	for _, v := range []string{"1.0.0", "1.0.1", "1.0.2", "1.0.0-alpha5"} {
		for _, kind := range []string{"shell", "script"} {
			def, err := Parse("t.yaml", []byte(doc(v, kind, `{greeting: '${ .name }', b: 2, a: null}`)))
			if err != nil {
				t.Errorf("%s %s with a map: %v", v, kind, err)
				continue
			}
			spec := def.Do[0].Task.Run.Spec
			want := []any{[]any{"greeting", "${ .name }"}, []any{"b", 2.0}, []any{"a", nil}}
			if _, has := spec["arguments"]; has || !reflect.DeepEqual(spec[NamedArgumentsKey], want) {
				t.Errorf("%s %s: spec %v, want named arguments %v in document order", v, kind, spec, want)
			}
		}
	}
	// A list is argv in every version, as 1.0.3 defines it.
	for _, v := range []string{"1.0.0", "1.0.3", "1.1.0"} {
		def, err := Parse("t.yaml", []byte(doc(v, "shell", `[a, b]`)))
		if err != nil || !reflect.DeepEqual(def.Do[0].Task.Run.Spec["arguments"], []any{"a", "b"}) {
			t.Errorf("%s with a list: %v", v, err)
		}
	}
	// No 1.0.x version allowed these.
	rejected := []struct{ version, kind, args, want string }{
		{"1.0.3", "shell", `{a: b}`, "must be a list of strings since DSL 1.0.3"},
		{"1.1.0", "script", `{a: b}`, "must be a list of strings since DSL 1.0.3"},
		{"1.0.2", "script", `{not-a-name: 1}`, `named argument "not-a-name" must be an identifier`},
		{"1.0.2", "shell", `hello`, "expected a list"},
		{"1.0.1", "shell", `{a: '${ .x | }'}`, "invalid runtime expression"},
	}
	for _, r := range rejected {
		_, err := Parse("t.yaml", []byte(doc(r.version, r.kind, r.args)))
		if err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s %s arguments %s: %v, want an error containing %q", r.version, r.kind, r.args, err, r.want)
		}
	}
	// Container arguments appeared in 1.0.3 as a list; a map never was one.
	_, err := Parse("t.yaml", []byte("document: {dsl: '1.0.1', namespace: test, name: t, version: '0.1.0'}\n"+
		"do:\n  - r:\n      run:\n        container:\n          image: alpine\n          arguments: {a: b}\n"))
	if err == nil || !strings.Contains(err.Error(), "expected a list") {
		t.Errorf("container arguments as a map: %v", err)
	}
}
