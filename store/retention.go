package store

import (
	"context"
	"time"
)

// Retention removes finished invocations with their histories, so that a
// server's store does not grow forever (see the retention sweeper in
// package engine).
type Retention interface {
	// DeleteInvocation removes an invocation that has ended, with its
	// history: ErrNotFound when there is none, ErrConflict when it is
	// still running.
	DeleteInvocation(ctx context.Context, id string) error
	// DeleteEnded removes at most f.Limit invocations that ended before
	// f.Before, oldest first, with their histories, and reports how many
	// it removed. Running invocations are never removed.
	DeleteEnded(ctx context.Context, f EndedFilter) (int, error)
}

// EndedFilter selects finished invocations to remove.
type EndedFilter struct {
	// Before is the end time that an invocation must have ended before.
	Before time.Time
	// Namespace, when set, restricts the selection to one namespace;
	// Except leaves the listed namespaces out (they have retention
	// periods of their own).
	Namespace string
	Except    []string
	// Limit bounds the work of one call; implementations cap it at 1000
	// and apply 100 when it is zero.
	Limit int
}

// EndedLimit is f.Limit with the default and cap applied.
func (f EndedFilter) EndedLimit() int {
	switch {
	case f.Limit <= 0:
		return 100
	case f.Limit > 1000:
		return 1000
	}
	return f.Limit
}
