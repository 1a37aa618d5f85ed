package sqlite

import (
	"context"
	"fmt"
)

// Ping implements store.Pinger: it runs a query on the read pool.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.readDB.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("sqlite store: ping: %w", err)
	}
	return nil
}
