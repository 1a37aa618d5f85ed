package engine

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/sqlite"
)

func TestCron(t *testing.T) {
	base := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC) // a Friday
	tests := []struct {
		expr string
		from time.Time
		want time.Time
	}{
		{"* * * * *", base, time.Date(2025, 3, 14, 15, 10, 0, 0, time.UTC)},
		{"*/15 * * * *", base, time.Date(2025, 3, 14, 15, 15, 0, 0, time.UTC)},
		{"5/20 * * * *", base, time.Date(2025, 3, 14, 15, 25, 0, 0, time.UTC)},
		{"0 9-17 * * *", base, time.Date(2025, 3, 14, 16, 0, 0, 0, time.UTC)},
		{"30 2 * * *", base, time.Date(2025, 3, 15, 2, 30, 0, 0, time.UTC)},
		{"0 0 1 * *", base, time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)},
		{"0 0 * * MON", base, time.Date(2025, 3, 17, 0, 0, 0, 0, time.UTC)},
		{"0 0 * * 7", base, time.Date(2025, 3, 16, 0, 0, 0, 0, time.UTC)},
		{"0 0 * * sun", base, time.Date(2025, 3, 16, 0, 0, 0, 0, time.UTC)},
		{"0 12 * JAN,jul *", base, time.Date(2025, 7, 1, 12, 0, 0, 0, time.UTC)},
		{"0 0 29 2 *", base, time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		// Both day fields restricted: either matches (the 20th, or a Monday).
		{"0 0 20 * 1", base, time.Date(2025, 3, 17, 0, 0, 0, 0, time.UTC)},
		{"@hourly", base, time.Date(2025, 3, 14, 16, 0, 0, 0, time.UTC)},
		{"@daily", base, time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC)},
		{"@weekly", base, time.Date(2025, 3, 16, 0, 0, 0, 0, time.UTC)},
		{"@yearly", base, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"0,30 * * * *", time.Date(2025, 3, 14, 15, 30, 0, 0, time.UTC), time.Date(2025, 3, 14, 16, 0, 0, 0, time.UTC)},
		{"0 0 31 2 *", base, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			spec, err := parseCron(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			if got := spec.next(tc.from); !got.Equal(tc.want) {
				t.Fatalf("next(%v) = %v, want %v", tc.from, got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8",
		"5-1 * * * *", "*/0 * * * *", "a * * * *", ",1 * * * *", "@often"} {
		if _, err := parseCron(bad); err == nil {
			t.Errorf("parseCron(%q) succeeded", bad)
		}
	}
}

func TestPlanAfterSkipsMissedSlots(t *testing.T) {
	due := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &schedulePlan{every: time.Minute}
	tests := []struct {
		now, want time.Time
	}{
		{due.Add(time.Second), due.Add(time.Minute)},
		{due.Add(time.Minute), due.Add(2 * time.Minute)},
		{due.Add(10*time.Minute + time.Second), due.Add(11 * time.Minute)},
	}
	for _, tc := range tests {
		if got := p.after(due, tc.now); !got.Equal(tc.want) {
			t.Errorf("after(%v, now %v) = %v, want %v", due, tc.now, got, tc.want)
		}
	}
	if got := (&schedulePlan{delay: time.Minute}).after(due, due); !got.IsZero() {
		t.Errorf("an after schedule's next slot = %v, want none until the run ends", got)
	}
}

const hourly = `
document: {dsl: '1.0.0', namespace: sched, name: hourly, version: '1.0.0'}
schedule:
  every: {hours: 1}
do:
  - note:
      set: {ok: true}
`

// TestScheduleRestart stops an engine with a run due (missed while it was
// down), and one whose run started but whose schedule was not advanced
// (a crash between the two): a restarted engine runs the first once, right
// away, and does not run the second again.
func TestScheduleRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() store.Store {
		st, err := sqlite.Open(ctx, filepath.Join(dir, "baton.db"))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	start := func(st store.Store) *Engine {
		e, err := New(Options{Store: st, SchedulePoll: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return e
	}
	runs := func(st store.Store) []*store.Invocation {
		invs, _, err := st.ListInvocations(ctx, store.InvocationFilter{Namespace: "sched", Workflow: "hourly"})
		if err != nil {
			t.Fatal(err)
		}
		return invs
	}
	schedule := func(st store.Store) *store.Schedule {
		all, err := st.ListSchedules(ctx)
		if err != nil || len(all) != 1 {
			t.Fatalf("ListSchedules = %v, %v; want one", all, err)
		}
		return all[0]
	}

	st := open()
	e := start(st)
	if _, err := e.ApplyWorkflow(ctx, "hourly.yaml", []byte(hourly)); err != nil {
		t.Fatal(err)
	}
	sc := schedule(st)
	if d := time.Until(sc.NextRun); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("first slot of every 1h is %v away, want an hour", d)
	}
	e.Close()

	// While the engine is down, two slots pass.
	missed := time.Now().UTC().Add(-2*time.Hour - time.Minute).Truncate(time.Millisecond)
	moved := *sc
	moved.NextRun = missed
	if ok, err := st.AdvanceSchedule(ctx, &moved, sc.NextRun); err != nil || !ok {
		t.Fatalf("moving the slot back: %v %v", ok, err)
	}
	st.Close()

	st = open()
	e = start(st)
	deadline := time.Now().Add(5 * time.Second)
	for len(runs(st)) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // several scheduler ticks
	got := runs(st)
	if len(got) != 1 {
		t.Fatalf("%d runs after a restart with missed slots, want exactly 1", len(got))
	}
	if want := scheduledID("sched", "hourly", "1.0.0", missed); got[0].ID != want {
		t.Fatalf("the run is %s, want the missed slot's %s", got[0].ID, want)
	}
	sc = schedule(st)
	if !sc.LastRun.Equal(missed) || !sc.NextRun.After(time.Now()) || sc.NextRun.Sub(missed)%time.Hour != 0 {
		t.Fatalf("after the catch-up run the schedule is %+v: want last = the missed slot, next = the first slot after now", sc)
	}
	e.Close()

	// A crash after a run started and before the schedule advanced: the
	// slot is still due and its invocation exists.
	past := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	e3 := start(st)
	if _, err := e3.start(ctx, scheduledID("sched", "hourly", "1.0.0", past), "", "sched", "hourly", "1.0.0", nil); err != nil {
		t.Fatal(err)
	}
	e3.Close()
	moved = *sc
	moved.NextRun = past
	if ok, err := st.AdvanceSchedule(ctx, &moved, sc.NextRun); err != nil || !ok {
		t.Fatalf("moving the slot back: %v %v", ok, err)
	}
	before := len(runs(st))
	e = start(st)
	deadline = time.Now().Add(5 * time.Second)
	for schedule(st).NextRun.Equal(past) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	e.Close()
	if after := len(runs(st)); after != before {
		t.Fatalf("the restarted engine started %d runs for a slot whose run had started, want 0", after-before)
	}
	if sc := schedule(st); !sc.LastRun.Equal(past) || !sc.NextRun.After(time.Now()) {
		t.Fatalf("the schedule did not move past the slot whose run had started: %+v", sc)
	}
	st.Close()
}
