package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batonflow/baton/cluster"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/internal/rowcodec"
)

// blobsAndKeysSchema is migration 5: function modules by content address,
// and the idempotency keys of starts (see store.IdempotentStarts).
const blobsAndKeysSchema = `
CREATE TABLE blobs (
	digest     text        PRIMARY KEY,
	data       bytea       NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE idempotency_keys (
	key           text        PRIMARY KEY,
	request_hash  text        NOT NULL,
	invocation_id text        NOT NULL,
	created_at    timestamptz NOT NULL DEFAULT now()
);
`

var (
	_ store.Blobs            = (*Store)(nil)
	_ store.IdempotentStarts = (*Store)(nil)
)

// PutBlob implements store.Blobs.
func (s *Store) PutBlob(ctx context.Context, digest string, data []byte) error {
	if data == nil {
		data = []byte{}
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO blobs (digest, data) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING`,
		digest, data); err != nil {
		return fmt.Errorf("put blob %s: %w", digest, err)
	}
	return nil
}

// GetBlob implements store.Blobs.
func (s *Store) GetBlob(ctx context.Context, digest string) ([]byte, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT data FROM blobs WHERE digest = $1`, digest).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("blob %s: %w", digest, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", digest, err)
	}
	return data, nil
}

// ListBlobs implements store.Blobs.
func (s *Store) ListBlobs(ctx context.Context) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `SELECT digest FROM blobs ORDER BY digest`)
	digests, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list blobs: %w", err)
	}
	return digests, nil
}

// DeleteBlob implements store.Blobs.
func (s *Store) DeleteBlob(ctx context.Context, digest string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM blobs WHERE digest = $1`, digest)
	return deleted(tag, err, "blob "+digest)
}

// CreateInvocationOnce implements store.IdempotentStarts in a transaction
// of its own: the key's primary key makes a concurrent claim of the same
// key, from this or another replica, wait for this one's outcome and then
// see the key taken.
func (s *Store) CreateInvocationOnce(ctx context.Context, rec store.IdempotencyRecord, inv *store.Invocation, events []core.Event) (*store.IdempotencyRecord, error) {
	if rec.Key == "" || rec.InvocationID != inv.ID {
		return nil, rowcodec.BadRequest("an idempotent start needs a key and the id of the invocation it creates")
	}
	row, enc, term, err := rowcodec.EncodeCreation(inv, events)
	if err != nil {
		return nil, err
	}
	if err := rowcodec.CheckSeqs(inv.ID, 0, enc); err != nil {
		return nil, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres store: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	tag, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (key, request_hash, invocation_id) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO NOTHING`, rec.Key, rec.RequestHash, rec.InvocationID)
	if err != nil {
		return nil, fmt.Errorf("idempotency key %q: %w", rec.Key, err)
	}
	if tag.RowsAffected() == 0 {
		held := store.IdempotencyRecord{Key: rec.Key}
		if err := tx.QueryRow(ctx, `SELECT request_hash, invocation_id FROM idempotency_keys WHERE key = $1`, rec.Key).
			Scan(&held.RequestHash, &held.InvocationID); err != nil {
			return nil, fmt.Errorf("idempotency key %q: %w", rec.Key, err)
		}
		return &held, nil
	}
	status, ended := row.Status, time.Time{}
	var output, errJSON []byte
	if term != nil {
		status, output, errJSON, ended = term.Status, term.Output, term.Error, term.EndedAt
	}
	tag, err = tx.Exec(ctx, `INSERT INTO invocations
		(id, namespace, workflow, version, status, input, output, error, started_at, ended_at, durable, parent, partition)
		VALUES ($1, $2, $3, $4, $5, $6::json, $7::json, $8::json, $9, $10, $11, $12, $13) ON CONFLICT (id) DO NOTHING`,
		inv.ID, row.Namespace, row.Workflow, row.Version, string(status), row.Input, output, errJSON,
		row.StartedAt, optionalTime(ended), row.Durable, row.Parent, int32(cluster.PartitionOf(inv.ID, s.partitions)))
	if err != nil {
		return nil, fmt.Errorf("insert invocation %s: %w", inv.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return nil, fmt.Errorf("invocation %s already exists: %w", inv.ID, store.ErrConflict)
	}
	for i, ev := range enc {
		if _, err := tx.Exec(ctx, `INSERT INTO history (invocation_id, seq, event) VALUES ($1, $2, $3::json)`,
			inv.ID, int64(i+1), ev.Data); err != nil {
			return nil, fmt.Errorf("insert event %d of %s: %w", i+1, inv.ID, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("postgres store: commit: %w", err)
	}
	return nil, nil
}
