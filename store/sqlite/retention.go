package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/internal/rowcodec"
)

// DeleteInvocation implements store.Retention.
func (s *Store) DeleteInvocation(ctx context.Context, id string) error {
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		var status string
		err := conn.QueryRowContext(ctx, `SELECT status FROM invocations WHERE id = ?`, id).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("invocation %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("delete invocation %s: %w", id, err)
		}
		if core.Status(status) == core.StatusRunning {
			return fmt.Errorf("invocation %s is running; cancel it first: %w", id, store.ErrConflict)
		}
		return deleteInvocations(ctx, conn, []string{id})
	})
}

// DeleteEnded implements store.Retention.
func (s *Store) DeleteEnded(ctx context.Context, f store.EndedFilter) (int, error) {
	query := `SELECT id FROM invocations WHERE ended_at > 0 AND ended_at < ? AND status != ?`
	args := []any{rowcodec.Nanos(f.Before), string(core.StatusRunning)}
	if f.Namespace != "" {
		query += ` AND namespace = ?`
		args = append(args, f.Namespace)
	}
	if len(f.Except) > 0 {
		query += ` AND namespace NOT IN (?` + strings.Repeat(`, ?`, len(f.Except)-1) + `)`
		for _, ns := range f.Except {
			args = append(args, ns)
		}
	}
	query += ` ORDER BY ended_at LIMIT ?`
	args = append(args, f.EndedLimit())
	var n int
	err := s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		rows, err := conn.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("select ended invocations: %w", err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("select ended invocations: %w", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("select ended invocations: %w", err)
		}
		n = len(ids)
		return deleteInvocations(ctx, conn, ids)
	})
	if err != nil {
		// A caller that stopped waiting must not read what the op may
		// still write.
		return 0, err
	}
	return n, nil
}

func deleteInvocations(ctx context.Context, conn *sql.Conn, ids []string) error {
	for _, id := range ids {
		if _, err := conn.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE invocation_id = ?`, id); err != nil {
			return fmt.Errorf("delete the idempotency keys of %s: %w", id, err)
		}
		if _, err := conn.ExecContext(ctx, `DELETE FROM history WHERE invocation_id = ?`, id); err != nil {
			return fmt.Errorf("delete the history of %s: %w", id, err)
		}
		if _, err := conn.ExecContext(ctx, `DELETE FROM history_log WHERE ikey = (SELECT ikey FROM invocations WHERE id = ?)`, id); err != nil {
			return fmt.Errorf("delete the history of %s: %w", id, err)
		}
		if _, err := conn.ExecContext(ctx, `DELETE FROM invocations WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete invocation %s: %w", id, err)
		}
	}
	return nil
}
