package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/internal/rowcodec"
)

// GetState implements store.Store.
func (s *Store) GetState(ctx context.Context, key string) ([]byte, error) {
	var value []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM state WHERE key = $1`, key).Scan(&value)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("state %s: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get state %s: %w", key, err)
	}
	if value == nil {
		value = []byte{}
	}
	return value, nil
}

// PutState implements store.Store.
func (s *Store) PutState(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return rowcodec.BadRequest("state key must not be empty")
	}
	if value == nil {
		value = []byte{}
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO state (key, value, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		key, value); err != nil {
		return fmt.Errorf("put state %s: %w", key, err)
	}
	return nil
}
