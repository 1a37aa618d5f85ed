package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/internal/rowcodec"
)

var _ store.EventLog = (*Store)(nil)

// AppendEvents implements store.EventLog. The events go through the
// writer like every other write, so a burst of ingestions shares commits;
// the single writer also makes positions commit in order.
func (s *Store) AppendEvents(ctx context.Context, events []*store.LoggedEvent) error {
	if len(events) == 0 {
		return nil
	}
	for _, ev := range events {
		if ev.ID == "" || ev.Source == "" || ev.Type == "" {
			return rowcodec.BadRequest("an event needs an id, a source and a type")
		}
	}
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		for _, ev := range events {
			received := ev.ReceivedAt
			if received.IsZero() {
				received = time.Now()
			}
			var seq int64
			err := conn.QueryRowContext(ctx, `INSERT INTO events (id, source, type, time, received_at, event)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source, id) DO NOTHING RETURNING seq`,
				ev.ID, ev.Source, ev.Type, rowcodec.Nanos(ev.Time), rowcodec.Nanos(received), ev.Event).Scan(&seq)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				if err := conn.QueryRowContext(ctx, `SELECT seq FROM events WHERE source = ? AND id = ?`, ev.Source, ev.ID).Scan(&seq); err != nil {
					return fmt.Errorf("append event %s from %s: %w", ev.ID, ev.Source, err)
				}
				ev.Duplicate = true
			case err != nil:
				return fmt.Errorf("append event %s from %s: %w", ev.ID, ev.Source, err)
			}
			ev.Seq = seq
		}
		return nil
	})
}

// ListEvents implements store.EventLog.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]*store.LoggedEvent, error) {
	var where []string
	var args []any
	where = append(where, "seq > ?")
	args = append(args, f.After)
	if f.Type != "" {
		where = append(where, "type = ?")
		args = append(args, f.Type)
	}
	if f.Source != "" {
		where = append(where, "source = ?")
		args = append(args, f.Source)
	}
	args = append(args, rowcodec.PageLimit(f.Limit))
	rows, err := s.readDB.QueryContext(ctx, `SELECT seq, id, source, type, time, received_at, event FROM events
		WHERE `+strings.Join(where, " AND ")+` ORDER BY seq LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	out := []*store.LoggedEvent{}
	for rows.Next() {
		var ev store.LoggedEvent
		var at, received int64
		if err := rows.Scan(&ev.Seq, &ev.ID, &ev.Source, &ev.Type, &at, &received, &ev.Event); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		ev.Time, ev.ReceivedAt = rowcodec.FromNanos(at), rowcodec.FromNanos(received)
		out = append(out, &ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return out, nil
}

// LastEventSeq implements store.EventLog.
func (s *Store) LastEventSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.readDB.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("last event position: %w", err)
	}
	return seq, nil
}

// EventCursor implements store.EventLog.
func (s *Store) EventCursor(ctx context.Context, name string, initial int64) (int64, error) {
	var pos int64
	err := s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		if _, err := conn.ExecContext(ctx, `INSERT INTO event_cursors (name, position) VALUES (?, ?) ON CONFLICT DO NOTHING`, name, initial); err != nil {
			return fmt.Errorf("event cursor %s: %w", name, err)
		}
		if err := conn.QueryRowContext(ctx, `SELECT position FROM event_cursors WHERE name = ?`, name).Scan(&pos); err != nil {
			return fmt.Errorf("event cursor %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		// A caller that stopped waiting must not read what the op may
		// still write.
		return 0, err
	}
	return pos, nil
}

// AdvanceEventCursor implements store.EventLog.
func (s *Store) AdvanceEventCursor(ctx context.Context, name string, from, to int64) (bool, error) {
	var moved bool
	err := s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		res, err := conn.ExecContext(ctx, `UPDATE event_cursors SET position = ? WHERE name = ? AND position = ?`, to, name, from)
		if err != nil {
			return fmt.Errorf("advance event cursor %s: %w", name, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("advance event cursor %s: %w", name, err)
		}
		moved = n == 1
		return nil
	})
	if err != nil {
		// A caller that stopped waiting must not read what the op may
		// still write.
		return false, err
	}
	return moved, nil
}

// DeleteEventCursors implements store.EventLog.
func (s *Store) DeleteEventCursors(ctx context.Context, prefix string) error {
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		// substr rather than LIKE: names hold '_' and '%' freely.
		if _, err := conn.ExecContext(ctx, `DELETE FROM event_cursors WHERE substr(name, 1, ?) = ?`, len(prefix), prefix); err != nil {
			return fmt.Errorf("delete event cursors %s*: %w", prefix, err)
		}
		return nil
	})
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
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		return execChanging(ctx, conn, fmt.Sprintf("create trigger %s", t.Name), fmt.Sprintf("trigger %s exists", t.Name), store.ErrConflict,
			`INSERT INTO triggers (name, namespace, workflow, kind, spec, next_run, last_run, last_invocation, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			t.Name, t.Namespace, t.Workflow, t.Kind, t.Spec, rowcodec.Nanos(t.NextRun), rowcodec.Nanos(t.LastRun), t.LastInvocation, rowcodec.Nanos(created))
	})
}

// GetTrigger implements store.EventLog.
func (s *Store) GetTrigger(ctx context.Context, name string) (*store.Trigger, error) {
	t, err := rowcodec.ScanTrigger(s.readDB.QueryRowContext(ctx, `SELECT `+rowcodec.TriggerColumns+` FROM triggers WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("trigger %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get trigger %s: %w", name, err)
	}
	return t, nil
}

// ListTriggers implements store.EventLog.
func (s *Store) ListTriggers(ctx context.Context) ([]*store.Trigger, error) {
	rows, err := s.readDB.QueryContext(ctx, `SELECT `+rowcodec.TriggerColumns+` FROM triggers ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list triggers: %w", err)
	}
	defer rows.Close()
	out, err := rowcodec.Collect(rows, rowcodec.ScanTrigger)
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
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		return execChanging(ctx, conn, fmt.Sprintf("delete trigger %s", name), fmt.Sprintf("trigger %s", name), store.ErrNotFound,
			`DELETE FROM triggers WHERE name = ?`, name)
	})
}

// AdvanceTrigger implements store.EventLog.
func (s *Store) AdvanceTrigger(ctx context.Context, t *store.Trigger, from time.Time) (bool, error) {
	var moved bool
	err := s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		res, err := conn.ExecContext(ctx, `UPDATE triggers SET next_run = ?, last_run = ?, last_invocation = ? WHERE name = ? AND next_run = ?`,
			rowcodec.Nanos(t.NextRun), rowcodec.Nanos(t.LastRun), t.LastInvocation, t.Name, rowcodec.Nanos(from))
		if err != nil {
			return fmt.Errorf("advance trigger %s: %w", t.Name, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("advance trigger %s: %w", t.Name, err)
		}
		moved = n == 1
		return nil
	})
	if err != nil {
		// A caller that stopped waiting must not read what the op may
		// still write.
		return false, err
	}
	return moved, nil
}
