package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/internal/rowcodec"
)

// blobsAndKeysSchema is migration 5: function modules by content address,
// and the idempotency keys of starts (see store.IdempotentStarts).
const blobsAndKeysSchema = `
CREATE TABLE blobs (
	digest     TEXT    PRIMARY KEY,
	data       BLOB    NOT NULL,
	created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE idempotency_keys (
	key           TEXT    PRIMARY KEY,
	request_hash  TEXT    NOT NULL,
	invocation_id TEXT    NOT NULL,
	created_at    INTEGER NOT NULL
) WITHOUT ROWID;
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
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		if _, err := conn.ExecContext(ctx, `INSERT INTO blobs (digest, data, created_at) VALUES (?, ?, ?)
			ON CONFLICT (digest) DO NOTHING`, digest, data, rowcodec.Nanos(time.Now())); err != nil {
			return fmt.Errorf("put blob %s: %w", digest, err)
		}
		return nil
	})
}

// GetBlob implements store.Blobs.
func (s *Store) GetBlob(ctx context.Context, digest string) ([]byte, error) {
	var data []byte
	err := s.readDB.QueryRowContext(ctx, `SELECT data FROM blobs WHERE digest = ?`, digest).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("blob %s: %w", digest, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", digest, err)
	}
	return data, nil
}

// ListBlobs implements store.Blobs.
func (s *Store) ListBlobs(ctx context.Context) ([]string, error) {
	rows, err := s.readDB.QueryContext(ctx, `SELECT digest FROM blobs ORDER BY digest`)
	if err != nil {
		return nil, fmt.Errorf("list blobs: %w", err)
	}
	defer rows.Close()
	var digests []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("list blobs: %w", err)
		}
		digests = append(digests, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list blobs: %w", err)
	}
	return digests, nil
}

// DeleteBlob implements store.Blobs.
func (s *Store) DeleteBlob(ctx context.Context, digest string) error {
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		res, err := conn.ExecContext(ctx, `DELETE FROM blobs WHERE digest = ?`, digest)
		if err != nil {
			return fmt.Errorf("delete blob %s: %w", digest, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("blob %s: %w", digest, store.ErrNotFound)
		}
		return nil
	})
}

// CreateInvocationOnce implements store.IdempotentStarts. It runs in the
// writer's goroutine like every write, as one savepoint of a group commit:
// the key and the invocation commit together or not at all.
func (s *Store) CreateInvocationOnce(ctx context.Context, rec store.IdempotencyRecord, inv *store.Invocation, events []core.Event) (*store.IdempotencyRecord, error) {
	if rec.Key == "" || rec.InvocationID != inv.ID {
		return nil, rowcodec.BadRequest("an idempotent start needs a key and the id of the invocation it creates")
	}
	row, enc, term, err := rowcodec.EncodeCreation(inv, events)
	if err != nil {
		return nil, err
	}
	var existing *store.IdempotencyRecord
	err = s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		held := store.IdempotencyRecord{Key: rec.Key}
		err := conn.QueryRowContext(ctx, `SELECT request_hash, invocation_id FROM idempotency_keys WHERE key = ?`, rec.Key).
			Scan(&held.RequestHash, &held.InvocationID)
		if err == nil {
			existing = &held
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("idempotency key %q: %w", rec.Key, err)
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO idempotency_keys (key, request_hash, invocation_id, created_at) VALUES (?, ?, ?, ?)`,
			rec.Key, rec.RequestHash, rec.InvocationID, rowcodec.Nanos(time.Now())); err != nil {
			return fmt.Errorf("idempotency key %q: %w", rec.Key, err)
		}
		reqErr, dbErr := s.w.create(ctx, &request{kind: kindCreate, id: inv.ID, inv: row, events: enc, terminal: term})
		return errors.Join(reqErr, dbErr)
	})
	if err != nil {
		return nil, err
	}
	return existing, nil
}
