package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/internal/rowcodec"
)

// GetState implements store.Store.
func (s *Store) GetState(ctx context.Context, key string) ([]byte, error) {
	var value []byte
	err := s.readDB.QueryRowContext(ctx, `SELECT value FROM state WHERE key = ?`, key).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
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

// PutState implements store.Store. It goes through the writer like every
// other write, so that it never contends with group commits for the
// database lock.
func (s *Store) PutState(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return rowcodec.BadRequest("state key must not be empty")
	}
	if value == nil {
		value = []byte{}
	}
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		if _, err := conn.ExecContext(ctx, `INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
			key, value, rowcodec.Nanos(time.Now())); err != nil {
			return fmt.Errorf("put state %s: %w", key, err)
		}
		return nil
	})
}
