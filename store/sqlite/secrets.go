package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/internal/rowcodec"
)

// PutSecret implements store.Store.
func (s *Store) PutSecret(ctx context.Context, secret *store.Secret) error {
	if secret.Name == "" {
		return rowcodec.BadRequest("secret name must not be empty")
	}
	updated := secret.UpdatedAt
	if updated.IsZero() {
		updated = time.Now()
	}
	value := secret.Value
	if value == nil {
		value = []byte{}
	}
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		if _, err := conn.ExecContext(ctx, `INSERT INTO secrets (name, value, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
			secret.Name, value, rowcodec.Nanos(updated)); err != nil {
			return fmt.Errorf("put secret %s: %w", secret.Name, err)
		}
		return nil
	})
}

// GetSecrets implements store.Store.
func (s *Store) GetSecrets(ctx context.Context, names []string) ([]*store.Secret, error) {
	if len(names) == 0 {
		return nil, nil
	}
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	placeholders := strings.TrimSuffix(strings.Repeat("?,", len(names)), ",")
	rows, err := s.readDB.QueryContext(ctx, `SELECT name, value, updated_at FROM secrets WHERE name IN (`+placeholders+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("get secrets: %w", err)
	}
	defer rows.Close()
	var out []*store.Secret
	for rows.Next() {
		var sec store.Secret
		var updated int64
		if err := rows.Scan(&sec.Name, &sec.Value, &updated); err != nil {
			return nil, fmt.Errorf("get secrets: %w", err)
		}
		sec.UpdatedAt = rowcodec.FromNanos(updated)
		out = append(out, &sec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get secrets: %w", err)
	}
	return out, nil
}

// ListSecretNames implements store.Store.
func (s *Store) ListSecretNames(ctx context.Context) ([]string, error) {
	rows, err := s.readDB.QueryContext(ctx, `SELECT name FROM secrets ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	defer rows.Close()
	names := []string{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list secrets: %w", err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return names, nil
}

// DeleteSecret implements store.Store.
func (s *Store) DeleteSecret(ctx context.Context, name string) error {
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		return execChanging(ctx, conn, fmt.Sprintf("delete secret %s", name), fmt.Sprintf("secret %s", name), store.ErrNotFound, `DELETE FROM secrets WHERE name = ?`, name)
	})
}

// CreateSchedule implements store.Store.
func (s *Store) CreateSchedule(ctx context.Context, sc *store.Schedule) error {
	if sc.Name == "" || sc.Version == "" {
		return rowcodec.BadRequest("schedule workflow name and version must not be empty")
	}
	created := sc.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		return execChanging(ctx, conn, fmt.Sprintf("create schedule %s/%s@%s", sc.Namespace, sc.Name, sc.Version), fmt.Sprintf("schedule %s/%s@%s exists", sc.Namespace, sc.Name, sc.Version), store.ErrConflict, `INSERT INTO schedules (namespace, name, version, next_run, last_run, last_invocation, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			sc.Namespace, sc.Name, sc.Version, rowcodec.Nanos(sc.NextRun), rowcodec.Nanos(sc.LastRun), sc.LastInvocation, rowcodec.Nanos(created))
	})
}

// ListSchedules implements store.Store.
func (s *Store) ListSchedules(ctx context.Context) ([]*store.Schedule, error) {
	rows, err := s.readDB.QueryContext(ctx, `SELECT namespace, name, version, next_run, last_run, last_invocation, created_at
		FROM schedules ORDER BY namespace, name, version`)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	defer rows.Close()
	var out []*store.Schedule
	for rows.Next() {
		var sc store.Schedule
		var next, last, created int64
		if err := rows.Scan(&sc.Namespace, &sc.Name, &sc.Version, &next, &last, &sc.LastInvocation, &created); err != nil {
			return nil, fmt.Errorf("list schedules: %w", err)
		}
		sc.NextRun, sc.LastRun, sc.CreatedAt = rowcodec.FromNanos(next), rowcodec.FromNanos(last), rowcodec.FromNanos(created)
		out = append(out, &sc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	return out, nil
}

// AdvanceSchedule implements store.Store.
func (s *Store) AdvanceSchedule(ctx context.Context, sc *store.Schedule, from time.Time) (bool, error) {
	var advanced bool
	err := s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		res, err := conn.ExecContext(ctx, `UPDATE schedules SET next_run = ?, last_run = ?, last_invocation = ?
			WHERE namespace = ? AND name = ? AND version = ? AND next_run = ?`,
			rowcodec.Nanos(sc.NextRun), rowcodec.Nanos(sc.LastRun), sc.LastInvocation,
			sc.Namespace, sc.Name, sc.Version, rowcodec.Nanos(from))
		if err != nil {
			return fmt.Errorf("advance schedule %s/%s@%s: %w", sc.Namespace, sc.Name, sc.Version, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("advance schedule %s/%s@%s: %w", sc.Namespace, sc.Name, sc.Version, err)
		}
		advanced = n == 1
		return nil
	})
	if err != nil {
		return false, err
	}
	return advanced, nil
}

// DeleteSchedules implements store.Store.
func (s *Store) DeleteSchedules(ctx context.Context, namespace, name, version string) error {
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		var err error
		if version == "" {
			_, err = conn.ExecContext(ctx, `DELETE FROM schedules WHERE namespace = ? AND name = ?`, namespace, name)
		} else {
			_, err = conn.ExecContext(ctx, `DELETE FROM schedules WHERE namespace = ? AND name = ? AND version = ?`, namespace, name, version)
		}
		if err != nil {
			return fmt.Errorf("delete schedules of %s/%s@%s: %w", namespace, name, version, err)
		}
		return nil
	})
}
