package store

import (
	"context"

	"github.com/batonflow/baton/core"
)

// IdempotencyRecord is what a used idempotency key names: the invocation
// its first request created and a hash of that request.
type IdempotencyRecord struct {
	Key          string
	RequestHash  string
	InvocationID string
}

// IdempotentStarts creates invocations under client-chosen idempotency
// keys, so that a client that lost an answer can retry without starting
// twice. Both stores implement it.
type IdempotentStarts interface {
	// CreateInvocationOnce is a waited CreateInvocation that also claims
	// rec.Key for rec.InvocationID (inv.ID) in the same transaction. When
	// the key is taken already, it writes nothing and returns the record
	// that holds it; otherwise it returns nil once the invocation is
	// durable. Keys are unique across every engine sharing the store.
	CreateInvocationOnce(ctx context.Context, rec IdempotencyRecord, inv *Invocation, events []core.Event) (*IdempotencyRecord, error)
}
