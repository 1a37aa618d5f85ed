package dsl

import (
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
