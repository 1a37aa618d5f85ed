package engine

import (
	"context"
	"fmt"

	"github.com/batonflow/baton/store"
)

// repeatedHook answers a hook request whose Idempotency-Key an earlier
// request used: it returns the invocation that request started, with
// conflict (wrapping store.ErrConflict), so that the API can answer the
// repetition as it answered the first request.
func (e *Engine) repeatedHook(ctx context.Context, id string, conflict error) (*store.Invocation, error) {
	inv, err := e.GetInvocation(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("%w (and the invocation it started cannot be read: %v)", conflict, err)
	}
	return inv, conflict
}
