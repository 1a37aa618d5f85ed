package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/internal/rowcodec"
)

var _ store.EventLog = (*Store)(nil)

// eventsAppendLock serialises appends to the event log. A sequence hands
// out positions when rows are inserted, not when they commit, so two
// concurrent appends could commit 8 before 7 and a reader that saw 8 would
// skip 7 forever; under the lock positions commit in order.
const eventsAppendLock int64 = 0x6261746f6e65 // "batone"

// AppendEvents implements store.EventLog.
func (s *Store) AppendEvents(ctx context.Context, events []*store.LoggedEvent) error {
	if len(events) == 0 {
		return nil
	}
	for _, ev := range events {
		if ev.ID == "" || ev.Source == "" || ev.Type == "" {
			return rowcodec.BadRequest("an event needs an id, a source and a type")
		}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, eventsAppendLock); err != nil {
		return fmt.Errorf("append events: lock: %w", err)
	}
	for _, ev := range events {
		received := ev.ReceivedAt
		if received.IsZero() {
			received = time.Now()
		}
		var seq int64
		err := tx.QueryRow(ctx, `INSERT INTO events (id, source, type, time, received_at, event)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source, id) DO NOTHING RETURNING seq`,
			ev.ID, ev.Source, ev.Type, rowcodec.Nanos(ev.Time), rowcodec.Nanos(received), ev.Event).Scan(&seq)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if err := tx.QueryRow(ctx, `SELECT seq FROM events WHERE source = $1 AND id = $2`, ev.Source, ev.ID).Scan(&seq); err != nil {
				return fmt.Errorf("append event %s from %s: %w", ev.ID, ev.Source, err)
			}
			ev.Duplicate = true
		case err != nil:
			return fmt.Errorf("append event %s from %s: %w", ev.ID, ev.Source, err)
		}
		ev.Seq = seq
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("append events: commit: %w", err)
	}
	return nil
}

// ListEvents implements store.EventLog.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]*store.LoggedEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, id, source, type, time, received_at, event FROM events
		WHERE seq > $1 AND ($2 = '' OR type = $2) AND ($3 = '' OR source = $3) ORDER BY seq LIMIT $4`,
		f.After, f.Type, f.Source, rowcodec.PageLimit(f.Limit))
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.LoggedEvent, error) {
		var ev store.LoggedEvent
		var at, received int64
		if err := row.Scan(&ev.Seq, &ev.ID, &ev.Source, &ev.Type, &at, &received, &ev.Event); err != nil {
			return nil, err
		}
		ev.Time, ev.ReceivedAt = rowcodec.FromNanos(at), rowcodec.FromNanos(received)
		return &ev, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	if out == nil {
		out = []*store.LoggedEvent{}
	}
	return out, nil
}

// LastEventSeq implements store.EventLog.
func (s *Store) LastEventSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("last event position: %w", err)
	}
	return seq, nil
}

// EventCursor implements store.EventLog.
func (s *Store) EventCursor(ctx context.Context, name string, initial int64) (int64, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO event_cursors (name, position) VALUES ($1, $2) ON CONFLICT DO NOTHING`, name, initial); err != nil {
		return 0, fmt.Errorf("event cursor %s: %w", name, err)
	}
	var pos int64
	if err := s.pool.QueryRow(ctx, `SELECT position FROM event_cursors WHERE name = $1`, name).Scan(&pos); err != nil {
		return 0, fmt.Errorf("event cursor %s: %w", name, err)
	}
	return pos, nil
}

// AdvanceEventCursor implements store.EventLog.
func (s *Store) AdvanceEventCursor(ctx context.Context, name string, from, to int64) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE event_cursors SET position = $1 WHERE name = $2 AND position = $3`, to, name, from)
	if err != nil {
		return false, fmt.Errorf("advance event cursor %s: %w", name, err)
	}
	return tag.RowsAffected() == 1, nil
}

// DeleteEventCursors implements store.EventLog.
func (s *Store) DeleteEventCursors(ctx context.Context, prefix string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM event_cursors WHERE left(name, $1) = $2`, len([]rune(prefix)), prefix); err != nil {
		return fmt.Errorf("delete event cursors %s*: %w", prefix, err)
	}
	return nil
}

// CreateTrigger implements store.EventLog.
func (s *Store) CreateTrigger(ctx context.Context, t *store.Trigger) error {
	if t.Name == "" || t.Workflow == "" || t.Kind == "" {
		return rowcodec.BadRequest("a trigger needs a name, a workflow and a kind")
	}
	created := t.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO triggers (name, namespace, workflow, kind, spec, next_run, last_run, last_invocation, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
		t.Name, t.Namespace, t.Workflow, t.Kind, t.Spec, rowcodec.Nanos(t.NextRun), rowcodec.Nanos(t.LastRun), t.LastInvocation, rowcodec.Nanos(created))
	return inserted(tag, err, "trigger "+t.Name)
}

// GetTrigger implements store.EventLog.
func (s *Store) GetTrigger(ctx context.Context, name string) (*store.Trigger, error) {
	t, err := rowcodec.ScanTrigger(s.pool.QueryRow(ctx, `SELECT `+rowcodec.TriggerColumns+` FROM triggers WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("trigger %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get trigger %s: %w", name, err)
	}
	return t, nil
}

// ListTriggers implements store.EventLog.
func (s *Store) ListTriggers(ctx context.Context) ([]*store.Trigger, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+rowcodec.TriggerColumns+` FROM triggers ORDER BY name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list triggers: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Trigger, error) { return rowcodec.ScanTrigger(row) })
	if err != nil {
		return nil, fmt.Errorf("list triggers: %w", err)
	}
	if out == nil {
		out = []*store.Trigger{}
	}
	return out, nil
}

// DeleteTrigger implements store.EventLog.
func (s *Store) DeleteTrigger(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM triggers WHERE name = $1`, name)
	return deleted(tag, err, "trigger "+name)
}

// AdvanceTrigger implements store.EventLog.
func (s *Store) AdvanceTrigger(ctx context.Context, t *store.Trigger, from time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE triggers SET next_run = $1, last_run = $2, last_invocation = $3 WHERE name = $4 AND next_run = $5`,
		rowcodec.Nanos(t.NextRun), rowcodec.Nanos(t.LastRun), t.LastInvocation, t.Name, rowcodec.Nanos(from))
	if err != nil {
		return false, fmt.Errorf("advance trigger %s: %w", t.Name, err)
	}
	return tag.RowsAffected() == 1, nil
}
