package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/internal/rowcodec"
)

const tokensSchema = `
CREATE TABLE tokens (
	id         text   PRIMARY KEY,
	name       text   NOT NULL,
	namespace  text   NOT NULL,
	role       text   NOT NULL,
	hash       bytea  NOT NULL,
	created_by text   NOT NULL,
	created_at bigint NOT NULL,
	expires_at bigint NOT NULL DEFAULT 0
);

CREATE TABLE audit (
	seq       bigserial PRIMARY KEY,
	at        bigint    NOT NULL,
	subject   text      NOT NULL,
	namespace text      NOT NULL,
	action    text      NOT NULL,
	target    text      NOT NULL,
	status    integer   NOT NULL
);
CREATE INDEX audit_by_namespace ON audit (namespace, seq);
`

var (
	_ store.TokenStore = (*Store)(nil)
	_ store.AuditStore = (*Store)(nil)
)

const tokenColumns = `id, name, namespace, role, hash, created_by, created_at, expires_at`

func scanToken(row pgx.Row) (*store.Token, error) {
	var t store.Token
	var created, expires int64
	if err := row.Scan(&t.ID, &t.Name, &t.Namespace, &t.Role, &t.Hash, &t.CreatedBy, &created, &expires); err != nil {
		return nil, err
	}
	t.CreatedAt = rowcodec.FromNanos(created)
	t.ExpiresAt = rowcodec.FromNanos(expires)
	return &t, nil
}

// PutToken implements store.TokenStore.
func (s *Store) PutToken(ctx context.Context, t *store.Token) error {
	if t.ID == "" || len(t.Hash) == 0 {
		return rowcodec.BadRequest("a token needs an id and a hash")
	}
	created := t.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
		t.ID, t.Name, t.Namespace, t.Role, t.Hash, t.CreatedBy, rowcodec.Nanos(created), rowcodec.Nanos(t.ExpiresAt))
	return inserted(tag, err, "token "+t.ID)
}

// GetToken implements store.TokenStore.
func (s *Store) GetToken(ctx context.Context, id string) (*store.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("token %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get token %s: %w", id, err)
	}
	return t, nil
}

// ListTokens implements store.TokenStore.
func (s *Store) ListTokens(ctx context.Context) ([]*store.Token, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Token, error) { return scanToken(row) })
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	if out == nil {
		out = []*store.Token{}
	}
	return out, nil
}

// DeleteToken implements store.TokenStore.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM tokens WHERE id = $1`, id)
	return deleted(tag, err, "token "+id)
}

// AppendAudit implements store.AuditStore.
func (s *Store) AppendAudit(ctx context.Context, e *store.AuditEntry) error {
	at := e.Time
	if at.IsZero() {
		at = time.Now()
	}
	err := s.pool.QueryRow(ctx, `INSERT INTO audit (at, subject, namespace, action, target, status) VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq`,
		rowcodec.Nanos(at), e.Subject, e.Namespace, e.Action, e.Target, e.Status).Scan(&e.Seq)
	if err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	return nil
}

// ListAudit implements store.AuditStore.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]*store.AuditEntry, error) {
	query := `SELECT seq, at, subject, namespace, action, target, status FROM audit WHERE seq > $1`
	args := []any{f.After}
	if f.Namespaces != nil {
		if len(f.Namespaces) == 0 {
			return []*store.AuditEntry{}, nil
		}
		query += ` AND namespace = ANY($3)`
		args = append(args, store.AuditLimit(f.Limit), f.Namespaces)
	} else {
		args = append(args, store.AuditLimit(f.Limit))
	}
	query += ` ORDER BY seq LIMIT $2`
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.AuditEntry, error) {
		var e store.AuditEntry
		var at int64
		if err := row.Scan(&e.Seq, &at, &e.Subject, &e.Namespace, &e.Action, &e.Target, &e.Status); err != nil {
			return nil, err
		}
		e.Time = rowcodec.FromNanos(at)
		return &e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	if out == nil {
		out = []*store.AuditEntry{}
	}
	return out, nil
}
