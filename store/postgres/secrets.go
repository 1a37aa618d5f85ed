package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	if _, err := s.pool.Exec(ctx, `INSERT INTO secrets (name, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		secret.Name, value, updated); err != nil {
		return fmt.Errorf("put secret %s: %w", secret.Name, err)
	}
	return nil
}

// GetSecrets implements store.Store.
func (s *Store) GetSecrets(ctx context.Context, names []string) ([]*store.Secret, error) {
	if len(names) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT name, value, updated_at FROM secrets WHERE name = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("get secrets: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Secret, error) {
		var sec store.Secret
		if err := row.Scan(&sec.Name, &sec.Value, &sec.UpdatedAt); err != nil {
			return nil, err
		}
		sec.UpdatedAt = sec.UpdatedAt.UTC()
		return &sec, nil
	})
	if err != nil {
		return nil, fmt.Errorf("get secrets: %w", err)
	}
	return out, nil
}

// ListSecretNames implements store.Store.
func (s *Store) ListSecretNames(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name FROM secrets ORDER BY name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// DeleteSecret implements store.Store.
func (s *Store) DeleteSecret(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM secrets WHERE name = $1`, name)
	return deleted(tag, err, "secret "+name)
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
	tag, err := s.pool.Exec(ctx, `INSERT INTO schedules (namespace, name, version, next_run, last_run, last_invocation, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
		sc.Namespace, sc.Name, sc.Version, rowcodec.Nanos(sc.NextRun), rowcodec.Nanos(sc.LastRun), sc.LastInvocation, created)
	return inserted(tag, err, fmt.Sprintf("schedule %s/%s@%s", sc.Namespace, sc.Name, sc.Version))
}

// ListSchedules implements store.Store.
func (s *Store) ListSchedules(ctx context.Context) ([]*store.Schedule, error) {
	rows, err := s.pool.Query(ctx, `SELECT namespace, name, version, next_run, last_run, last_invocation, created_at
		FROM schedules ORDER BY namespace COLLATE "C", name COLLATE "C", version COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Schedule, error) {
		var sc store.Schedule
		var next, last int64
		if err := row.Scan(&sc.Namespace, &sc.Name, &sc.Version, &next, &last, &sc.LastInvocation, &sc.CreatedAt); err != nil {
			return nil, err
		}
		sc.NextRun, sc.LastRun, sc.CreatedAt = rowcodec.FromNanos(next), rowcodec.FromNanos(last), sc.CreatedAt.UTC()
		return &sc, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	return out, nil
}

// AdvanceSchedule implements store.Store. The conditional update is the
// claim: under READ COMMITTED a concurrent UPDATE of the same row waits for
// the first to commit and then re-checks next_run, so only one replica
// advances a given due run.
func (s *Store) AdvanceSchedule(ctx context.Context, sc *store.Schedule, from time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE schedules SET next_run = $1, last_run = $2, last_invocation = $3
		WHERE namespace = $4 AND name = $5 AND version = $6 AND next_run = $7`,
		rowcodec.Nanos(sc.NextRun), rowcodec.Nanos(sc.LastRun), sc.LastInvocation, sc.Namespace, sc.Name, sc.Version, rowcodec.Nanos(from))
	if err != nil {
		return false, fmt.Errorf("advance schedule %s/%s@%s: %w", sc.Namespace, sc.Name, sc.Version, err)
	}
	return tag.RowsAffected() == 1, nil
}

// DeleteSchedules implements store.Store.
func (s *Store) DeleteSchedules(ctx context.Context, namespace, name, version string) error {
	var err error
	if version == "" {
		_, err = s.pool.Exec(ctx, `DELETE FROM schedules WHERE namespace = $1 AND name = $2`, namespace, name)
	} else {
		_, err = s.pool.Exec(ctx, `DELETE FROM schedules WHERE namespace = $1 AND name = $2 AND version = $3`, namespace, name, version)
	}
	if err != nil {
		return fmt.Errorf("delete schedules of %s/%s@%s: %w", namespace, name, version, err)
	}
	return nil
}
