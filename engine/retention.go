package engine

import (
	"context"
	"fmt"

	"github.com/batonflow/baton/store"
)

// DeleteInvocation removes an invocation that has ended, with its history;
// one still running (here or, with a shared store, elsewhere) is refused
// with store.ErrConflict.
func (e *Engine) DeleteInvocation(ctx context.Context, id string) error {
	if e.isLive(id) {
		return fmt.Errorf("invocation %s is running; cancel it first: %w", id, store.ErrConflict)
	}
	return e.store.DeleteInvocation(ctx, id)
}
