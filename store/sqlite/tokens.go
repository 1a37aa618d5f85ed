package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/internal/rowcodec"
)

const tokensSchema = `
CREATE TABLE tokens (
	id         TEXT    PRIMARY KEY,
	name       TEXT    NOT NULL,
	namespace  TEXT    NOT NULL,
	role       TEXT    NOT NULL,
	hash       BLOB    NOT NULL,
	created_by TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE audit (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	at        INTEGER NOT NULL,
	subject   TEXT    NOT NULL,
	namespace TEXT    NOT NULL,
	action    TEXT    NOT NULL,
	target    TEXT    NOT NULL,
	status    INTEGER NOT NULL
);
CREATE INDEX audit_by_namespace ON audit (namespace, seq);
`

var (
	_ store.TokenStore = (*Store)(nil)
	_ store.AuditStore = (*Store)(nil)
)

const tokenColumns = `id, name, namespace, role, hash, created_by, created_at, expires_at`

type scanner interface{ Scan(dest ...any) error }

func scanToken(row scanner) (*store.Token, error) {
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
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		return execChanging(ctx, conn, fmt.Sprintf("put token %s", t.ID), fmt.Sprintf("token %s exists", t.ID), store.ErrConflict, `INSERT INTO tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			t.ID, t.Name, t.Namespace, t.Role, t.Hash, t.CreatedBy, rowcodec.Nanos(created), rowcodec.Nanos(t.ExpiresAt))
	})
}

// GetToken implements store.TokenStore.
func (s *Store) GetToken(ctx context.Context, id string) (*store.Token, error) {
	t, err := scanToken(s.readDB.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("token %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get token %s: %w", id, err)
	}
	return t, nil
}

// ListTokens implements store.TokenStore.
func (s *Store) ListTokens(ctx context.Context) ([]*store.Token, error) {
	rows, err := s.readDB.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []*store.Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// DeleteToken implements store.TokenStore.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		return execChanging(ctx, conn, fmt.Sprintf("delete token %s", id), fmt.Sprintf("token %s", id), store.ErrNotFound, `DELETE FROM tokens WHERE id = ?`, id)
	})
}

// AppendAudit implements store.AuditStore.
func (s *Store) AppendAudit(ctx context.Context, e *store.AuditEntry) error {
	at := e.Time
	if at.IsZero() {
		at = time.Now()
	}
	return s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
		err := conn.QueryRowContext(ctx, `INSERT INTO audit (at, subject, namespace, action, target, status) VALUES (?, ?, ?, ?, ?, ?) RETURNING seq`,
			rowcodec.Nanos(at), e.Subject, e.Namespace, e.Action, e.Target, e.Status).Scan(&e.Seq)
		if err != nil {
			return fmt.Errorf("append audit entry: %w", err)
		}
		return nil
	})
}

// ListAudit implements store.AuditStore.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]*store.AuditEntry, error) {
	query := `SELECT seq, at, subject, namespace, action, target, status FROM audit WHERE seq > ?`
	args := []any{f.After}
	if f.Namespaces != nil {
		if len(f.Namespaces) == 0 {
			return []*store.AuditEntry{}, nil
		}
		query += ` AND namespace IN (` + strings.TrimSuffix(strings.Repeat("?,", len(f.Namespaces)), ",") + `)`
		for _, ns := range f.Namespaces {
			args = append(args, ns)
		}
	}
	query += ` ORDER BY seq LIMIT ?`
	args = append(args, store.AuditLimit(f.Limit))
	rows, err := s.readDB.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	out := []*store.AuditEntry{}
	for rows.Next() {
		var e store.AuditEntry
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Subject, &e.Namespace, &e.Action, &e.Target, &e.Status); err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		e.Time = rowcodec.FromNanos(at)
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}
