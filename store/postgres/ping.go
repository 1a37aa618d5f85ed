package postgres

import (
	"context"
	"fmt"
)

// Ping implements store.Pinger: it runs a query on a pooled connection.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("postgres store: ping: %w", err)
	}
	return nil
}
