package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/store"
)

func scheduled(version, schedule string) string {
	return `
document: {dsl: '1.0.0', namespace: sched, name: tick, version: '` + version + `'}
schedule:
  ` + schedule + `
do:
  - note:
      set: {version: '` + version + `'}
`
}

func invocationsOf(t *testing.T, st store.Store, version string) []*store.Invocation {
	t.Helper()
	invs, _, err := st.ListInvocations(context.Background(), store.InvocationFilter{Namespace: "sched", Workflow: "tick", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []*store.Invocation
	for _, inv := range invs {
		if version == "" || inv.Version == version {
			out = append(out, inv)
		}
	}
	return out
}

func TestScheduleEveryRunsRepeatedlyUntilReplacedOrDeleted(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	e := newEngine(t, st, func(o *engine.Options) { o.SchedulePoll = 50 * time.Millisecond })
	defer e.Close()

	applied := time.Now()
	if _, err := e.ApplyWorkflow(ctx, "tick.yaml", []byte(scheduled("1.0.0", "every: {milliseconds: 200}"))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(invocationsOf(t, st, "1.0.0")) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d scheduled runs after 5s with every 200ms", len(invocationsOf(t, st, "1.0.0")))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Slots are 200ms apart, the first one period after the apply, and
	// each slot runs once: however late the scheduler is, it never runs
	// more invocations than slots have come, and each run's history holds
	// one start.
	runs := invocationsOf(t, st, "1.0.0")
	slots := int(time.Since(applied)/(200*time.Millisecond)) + 1
	if len(runs) > slots {
		t.Fatalf("%d runs within %d slots of 200ms", len(runs), slots)
	}
	for _, inv := range runs {
		history, err := st.History(ctx, inv.ID)
		if err != nil {
			t.Fatal(err)
		}
		starts := 0
		for _, ev := range history {
			if ev.Type == core.InvocationStarted {
				starts++
			}
		}
		if starts != 1 {
			t.Fatalf("run %s started %d times", inv.ID, starts)
		}
	}

	// A new version takes the schedule over: version 1 stops.
	if _, err := e.ApplyWorkflow(ctx, "tick.yaml", []byte(scheduled("2.0.0", "every: {milliseconds: 200}"))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a run of version 1 that was starting settles
	before := len(invocationsOf(t, st, "1.0.0"))
	deadline = time.Now().Add(5 * time.Second)
	for len(invocationsOf(t, st, "2.0.0")) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("version 2 did not take the schedule over")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if after := len(invocationsOf(t, st, "1.0.0")); after != before {
		t.Fatalf("version 1 ran %d more times after version 2 replaced it", after-before)
	}
	for _, inv := range invocationsOf(t, st, "") {
		waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		done, err := e.Wait(waitCtx, inv.ID)
		cancel()
		if err != nil || done.Status != core.StatusCompleted {
			t.Fatalf("scheduled run %s: %v, %v", inv.ID, done, err)
		}
	}

	// Deleting the workflow stops its schedule.
	if err := e.DeleteWorkflow(ctx, "sched", "tick", ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	stopped := len(invocationsOf(t, st, ""))
	time.Sleep(600 * time.Millisecond)
	if n := len(invocationsOf(t, st, "")); n != stopped {
		t.Fatalf("%d runs started after the workflow was deleted", n-stopped)
	}
	if all, _ := st.ListSchedules(ctx); len(all) != 0 {
		t.Fatalf("schedules left after delete: %+v", all[0])
	}
}

func TestScheduleAfterWaitsForTheRunToEnd(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	e := newEngine(t, st, func(o *engine.Options) { o.SchedulePoll = 20 * time.Millisecond })
	defer e.Close()
	src := `
document: {dsl: '1.0.0', namespace: sched, name: tick, version: '1.0.0'}
schedule:
  after: {milliseconds: 150}
do:
  - pause:
      wait: {milliseconds: 100}
`
	if _, err := e.ApplyWorkflow(ctx, "after.yaml", []byte(src)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(invocationsOf(t, st, "")) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("fewer than 3 runs of an `after` schedule in 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := e.DeleteWorkflow(ctx, "sched", "tick", ""); err != nil {
		t.Fatal(err)
	}
	runs := invocationsOf(t, st, "")
	// Newest first: each run starts at least `after` past the previous end.
	for i := len(runs) - 1; i > 0; i-- {
		prev, next := runs[i], runs[i-1]
		done, err := e.Wait(ctx, prev.ID)
		if err != nil {
			t.Fatal(err)
		}
		if done.EndedAt.IsZero() {
			continue
		}
		if gap := next.StartedAt.Sub(done.EndedAt); gap < 150*time.Millisecond {
			t.Fatalf("run %s started %v after the previous one ended, want at least 150ms", next.ID, gap)
		}
	}
}
