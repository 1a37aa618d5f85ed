package store

import (
	"context"
	"time"
)

// Token is a stored API token. The store keeps only the SHA-256 hash of
// the token's secret: a stolen database does not hand out credentials.
type Token struct {
	ID        string
	Name      string
	Namespace string // a namespace, or "*" for every one
	Role      string
	Hash      []byte
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
}

// TokenStore keeps API tokens. Both stores implement it.
type TokenStore interface {
	// PutToken adds a token; ErrConflict when its id is taken.
	PutToken(ctx context.Context, t *Token) error
	// GetToken returns a token by id; ErrNotFound when there is none.
	GetToken(ctx context.Context, id string) (*Token, error)
	// ListTokens returns every token, oldest first.
	ListTokens(ctx context.Context) ([]*Token, error)
	// DeleteToken revokes a token; ErrNotFound when there is none.
	DeleteToken(ctx context.Context, id string) error
}

// AuditEntry records one administrative change: who made it, when, to
// what, in which namespace.
type AuditEntry struct {
	Seq       int64 // assigned by the store, increasing
	Time      time.Time
	Subject   string // the principal: "token:ID (name)", "oidc:SUB", ...
	Namespace string
	Action    string // e.g. "PUT /v1/secrets/{name}"
	Target    string // the request path, e.g. /v1/secrets/db
	Status    int    // the HTTP status the change was answered with
}

// AuditFilter selects audit entries. Zero fields match all.
type AuditFilter struct {
	// Namespaces keeps entries of these namespaces; nil keeps all.
	Namespaces []string
	// After skips entries up to this sequence number.
	After int64
	// Limit caps the page; stores apply a default of 100 and a maximum of
	// 1000.
	Limit int
}

// AuditStore keeps the audit log. Both stores implement it.
type AuditStore interface {
	AppendAudit(ctx context.Context, e *AuditEntry) error
	// ListAudit returns entries in sequence order.
	ListAudit(ctx context.Context, f AuditFilter) ([]*AuditEntry, error)
}

// AuditLimit applies the default and maximum page size of ListAudit.
func AuditLimit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return n
}
