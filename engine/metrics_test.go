package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/internal/metricstest"
	"github.com/batonflow/baton/store"
)

// metricValue returns the value of the series of name whose labels include
// labels: a counter's or gauge's value, a histogram's sample count; -1
// when there is no such series.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok, err := metricstest.Value(reg, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return -1
	}
	return v
}

const metricsDoc = `
document: {dsl: '1.0.0', namespace: default, name: measured, version: '1.0.0'}
do:
  - check:
      switch:
        - bad:
            when: ${ .fail == true }
            then: boom
        - otherwise:
            then: pause
  - pause:
      wait: {milliseconds: 20}
  - done:
      set: {ok: true}
      then: end
  - boom:
      raise:
        error:
          type: https://example.com/boom
          status: 500
`

const blockedDoc = `
document: {dsl: '1.0.0', namespace: team, name: blocked, version: '1.0.0'}
do:
  - sleep:
      wait: {hours: 1}
`

// TestEngineMetrics runs invocations that complete, fault and are
// cancelled, and reads the engine's metrics from the registry.
func TestEngineMetrics(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	reg := prometheus.NewRegistry()
	log := events.NewLog(st.(store.EventLog), nil, nil)
	e := newEngine(t, st, func(o *engine.Options) {
		o.Metrics = reg
		o.EventLog = log
	})
	defer e.Close()
	for _, doc := range []string{metricsDoc, blockedDoc} {
		if _, err := e.ApplyWorkflow(ctx, "doc.yaml", []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	measured := map[string]string{"namespace": "default", "workflow": "measured"}
	blockedLabels := map[string]string{"namespace": "team", "workflow": "blocked"}

	blocked, err := e.Invoke(ctx, "team", "blocked", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, reg, "baton_invocations_running", blockedLabels); got != 1 {
		t.Errorf("running invocations of team/blocked = %v, want 1", got)
	}
	for _, input := range []map[string]any{{"fail": false}, {"fail": true}} {
		inv, err := e.Invoke(ctx, "default", "measured", "", input)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Wait(ctx, inv.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.CancelInvocation(ctx, blocked.ID, ""); err != nil {
		t.Fatal(err)
	}
	if done, err := e.Wait(ctx, blocked.ID); err != nil || done.Status != core.StatusCancelled {
		t.Fatalf("%+v %v", done, err)
	}
	if _, err := e.IngestEvents(ctx, []events.Event{{
		"specversion": "1.0", "id": "e1", "source": "test", "type": "com.example.ping",
	}}); err != nil {
		t.Fatal(err)
	}

	with := func(base map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for bk, bv := range base {
			out[bk] = bv
		}
		return out
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"baton_invocations_started_total", measured, 2},
		{"baton_invocations_ended_total", with(measured, "status", "completed"), 1},
		{"baton_invocations_ended_total", with(measured, "status", "faulted"), 1},
		{"baton_invocations_ended_total", with(blockedLabels, "status", "cancelled"), 1},
		{"baton_invocation_duration_seconds", measured, 2},
		// check, pause, done; then check, boom.
		{"baton_task_duration_seconds", measured, 5},
		{"baton_timer_lag_seconds", nil, 1},
		{"baton_events_ingested_total", nil, 1},
	} {
		if got := metricValue(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := metricValue(t, reg, "baton_invocations_running", blockedLabels); got != -1 {
		t.Errorf("running invocations of team/blocked = %v after it ended, want no series", got)
	}
	if got := metricValue(t, reg, "baton_store_commit_duration_seconds", nil); got < 1 {
		t.Errorf("store commits observed: %v", got)
	}
	if got := metricValue(t, reg, "baton_store_commit_writes", nil); got < 1 {
		t.Errorf("store commit sizes observed: %v", got)
	}
}

// TestTaskDurationIsTheTasksTime checks the task histogram's sum against
// a wait's length.
func TestTaskDurationIsTheTasksTime(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	reg := prometheus.NewRegistry()
	e := newEngine(t, st, func(o *engine.Options) { o.Metrics = reg })
	defer e.Close()
	doc := `
document: {dsl: '1.0.0', namespace: default, name: nap, version: '1.0.0'}
do:
  - nap:
      wait: {milliseconds: 50}
`
	if _, err := e.ApplyWorkflow(ctx, "nap.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "default", "nap", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Wait(ctx, inv.ID); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "baton_task_duration_seconds" {
			sum := time.Duration(f.GetMetric()[0].GetHistogram().GetSampleSum() * float64(time.Second))
			if sum < 50*time.Millisecond || sum > 10*time.Second {
				t.Errorf("task durations sum to %v for a 50ms wait", sum)
			}
			return
		}
	}
	t.Error("no task duration histogram")
}
