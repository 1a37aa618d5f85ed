package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
)

// DeleteInvocation implements store.Retention.
func (s *Store) DeleteInvocation(ctx context.Context, id string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM invocations WHERE id = $1 FOR UPDATE`, id).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("invocation %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("delete invocation %s: %w", id, err)
		}
		if core.Status(status) == core.StatusRunning {
			return fmt.Errorf("invocation %s is running; cancel it first: %w", id, store.ErrConflict)
		}
		return deleteInvocations(ctx, tx, []string{id})
	})
}

// DeleteEnded implements store.Retention.
func (s *Store) DeleteEnded(ctx context.Context, f store.EndedFilter) (int, error) {
	query := `SELECT id FROM invocations WHERE ended_at IS NOT NULL AND ended_at < $1 AND status <> $2
		AND ($3 = '' OR namespace = $3) AND NOT (namespace = ANY($4))
		ORDER BY ended_at LIMIT $5 FOR UPDATE SKIP LOCKED`
	except := f.Except
	if except == nil {
		except = []string{}
	}
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, query, f.Before, string(core.StatusRunning), f.Namespace, except, f.EndedLimit())
		if err != nil {
			return fmt.Errorf("select ended invocations: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("select ended invocations: %w", err)
		}
		n = len(ids)
		return deleteInvocations(ctx, tx, ids)
	})
	return n, err
}

func deleteInvocations(ctx context.Context, tx pgx.Tx, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE invocation_id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("delete idempotency keys: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM history WHERE invocation_id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("delete histories: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM invocations WHERE id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("delete invocations: %w", err)
	}
	return nil
}
