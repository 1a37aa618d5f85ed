package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store/internal/rowcodec"
)

// oldLayoutVersion is the last schema version whose histories are kept
// one event per row in the history table.
const oldLayoutVersion = 8

// seedOldLayout makes a database at schema version 8, as a release before
// history_log left it, holding the invocations and histories given.
func seedOldLayout(t *testing.T, ctx context.Context, path string, histories map[string][]core.Event, status map[string]core.Status) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE schema_version (version INTEGER NOT NULL);
		INSERT INTO schema_version (version) VALUES (0)`); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= oldLayoutVersion; v++ {
		if err := applyMigration(ctx, conn, v); err != nil {
			t.Fatal(err)
		}
	}
	for id, events := range histories {
		st := status[id]
		var endedAt int64
		if st != core.StatusRunning {
			endedAt = time.Now().UnixNano()
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO invocations
			(id, namespace, workflow, version, status, started_at, ended_at, durable)
			VALUES (?, 'ns', 'wf', '1', ?, ?, ?, 1)`, id, string(st), time.Now().UnixNano(), endedAt); err != nil {
			t.Fatal(err)
		}
		enc, _, err := rowcodec.EncodeEvents(id, events)
		if err != nil {
			t.Fatal(err)
		}
		for i, ev := range enc {
			if _, err := conn.ExecContext(ctx, `INSERT INTO history (invocation_id, seq, event) VALUES (?, ?, ?)`,
				id, i+1, ev.Data); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestOldLayoutUpgrade opens a database written before migration 9 and
// checks that its histories read back whole, that a running invocation
// carries on after its last event, that its timers are still found, that
// new invocations work beside the old ones, and that retention removes
// both layouts' rows.
func TestOldLayoutUpgrade(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "baton.db")
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	fireAt := t0.Add(time.Hour)
	running := []core.Event{
		{Type: core.InvocationStarted, Time: t0},
		{Type: core.TimerScheduled, Time: t0, Timer: "wait", FireAt: fireAt},
	}
	done := []core.Event{
		{Type: core.InvocationStarted, Time: t0},
		{Type: core.TaskStarted, Time: t0, Task: "/do/0"},
		{Type: core.TaskCompleted, Time: t0, Task: "/do/0"},
		{Type: core.InvocationCompleted, Time: t0},
	}
	seedOldLayout(t, ctx, path,
		map[string][]core.Event{"old-running": running, "old-done": done},
		map[string]core.Status{"old-running": core.StatusRunning, "old-done": core.StatusCompleted})

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	for id, want := range map[string][]core.Event{"old-running": running, "old-done": done} {
		got, err := s.History(ctx, id)
		if err != nil {
			t.Fatalf("history of %s: %v", id, err)
		}
		checkTypes(t, id, got, want)
	}
	timers, err := s.PendingTimers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if at, ok := timers["old-running"]; !ok || !at.Equal(fireAt) || len(timers) != 1 {
		t.Fatalf("pending timers %v, want old-running at %v", timers, fireAt)
	}

	// The running invocation goes on in the new layout: its timer fires,
	// which PendingTimers must fold with the schedule in the old rows.
	more := []core.Event{
		{Seq: 3, Type: core.TimerFired, Time: t0, Timer: "wait"},
		{Seq: 4, Type: core.TaskStarted, Time: t0, Task: "/do/1"},
	}
	if err := s.Append(ctx, "old-running", more, true); err != nil {
		t.Fatalf("append after the upgrade: %v", err)
	}
	if err := s.Append(ctx, "old-running", []core.Event{{Seq: 4, Type: core.TaskCompleted, Time: t0}}, true); err == nil {
		t.Fatal("an append reusing seq 4 was accepted")
	}
	got, err := s.History(ctx, "old-running")
	if err != nil {
		t.Fatal(err)
	}
	checkTypes(t, "old-running", got, append(append([]core.Event{}, running...), more...))
	if timers, err := s.PendingTimers(ctx); err != nil || len(timers) != 0 {
		t.Fatalf("pending timers after the timer fired: %v (%v), want none", timers, err)
	}

	// A new invocation beside them, with a timer of its own.
	if err := s.CreateInvocation(ctx, testInvocation("new"), started(), true); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "new", []core.Event{{Type: core.TimerScheduled, Time: t0, Timer: "t", FireAt: fireAt}}, true); err != nil {
		t.Fatal(err)
	}
	if timers, err := s.PendingTimers(ctx); err != nil || len(timers) != 1 || !timers["new"].Equal(fireAt) {
		t.Fatalf("pending timers: %v (%v), want new at %v", timers, err, fireAt)
	}

	// Retention takes the ended invocation's rows in both layouts.
	if err := s.Append(ctx, "old-running", []core.Event{{Type: core.InvocationCompleted, Time: t0}}, true); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"old-done", "old-running"} {
		if err := s.DeleteInvocation(ctx, id); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	counted := make(chan [2]int, 1)
	err = s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		var n [2]int
		if err := conn.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM history), (SELECT count(*) FROM history_log)`).Scan(&n[0], &n[1]); err != nil {
			return err
		}
		counted <- n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := <-counted; n != [2]int{0, 2} {
		t.Fatalf("after retention: %d old rows and %d new rows, want none and new's two", n[0], n[1])
	}
	if _, err := s.History(ctx, "old-running"); err == nil {
		t.Fatal("a deleted invocation's history was found")
	}
}

// TestReopenKeepsKeys checks that invocations created in two sessions of
// the store get distinct keys: the second reads where the first stopped.
func TestReopenKeepsKeys(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "baton.db")
	for _, id := range []string{"a", "b"} {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateInvocation(ctx, testInvocation(id), started(), true); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, id, []core.Event{{Type: core.TaskStarted, Time: time.Now(), Task: id}}, true); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range []string{"a", "b"} {
		events, err := s.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 2 || events[1].Task != id {
			t.Fatalf("history of %s: %+v, want its start and its own task", id, events)
		}
	}
}

func checkTypes(t *testing.T, id string, got, want []core.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("history of %s: %d events, want %d", id, len(got), len(want))
	}
	for i := range got {
		if got[i].Seq != int64(i+1) || got[i].Type != want[i].Type || got[i].Timer != want[i].Timer || got[i].Task != want[i].Task {
			t.Fatalf("history of %s, event %d: %+v, want %s at seq %d", id, i, got[i], want[i].Type, i+1)
		}
	}
}
