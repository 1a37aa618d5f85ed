package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/google/uuid"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// MaxIdempotencyKey bounds the length of an idempotency key.
const MaxIdempotencyKey = 255

// create stores a new invocation with its first event, under an
// idempotency key when once is not nil (see startOnce).
func (e *Engine) create(ctx context.Context, inv *store.Invocation, started core.Event, once *store.IdempotencyRecord) (*store.IdempotencyRecord, error) {
	if once == nil {
		return nil, e.store.CreateInvocation(ctx, inv, []core.Event{started}, inv.Durable)
	}
	st, ok := e.store.(store.IdempotentStarts)
	if !ok {
		return nil, problem.Configuration("this engine's store does not keep idempotency keys")
	}
	rec := *once
	rec.InvocationID = inv.ID
	// Always waited: the key must not name an invocation that could be
	// lost, even one that keeps no history.
	return st.CreateInvocationOnce(ctx, rec, inv, []core.Event{started})
}

// requestHash identifies a start request: the same key may only be used
// again for the same workflow, version (as asked, "" for the newest) and
// input. The input's JSON encoding sorts object keys, so equal inputs
// hash equally whatever their key order on the wire.
func requestHash(namespace, name, version string, input any) (string, error) {
	data, err := json.Marshal([]any{namespace, name, version, input})
	if err != nil {
		return "", fmt.Errorf("engine: hashing the request: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// InvokeOnce is Invoke under an idempotency key chosen by the client. The
// first request with a key starts an invocation; a later one with the
// same key and the same request (workflow, version and input) starts
// nothing and returns that invocation with created false, on any engine
// sharing the store; the same key with another request fails with a 409
// problem.
func (e *Engine) InvokeOnce(ctx context.Context, key, namespace, name, version string, input any) (inv *store.Invocation, created bool, err error) {
	if key == "" || len(key) > MaxIdempotencyKey {
		return nil, false, problem.Newf(problem.TypeBadRequest, http.StatusBadRequest, "Bad Request",
			"an idempotency key must have 1 to %d characters", MaxIdempotencyKey)
	}
	if err := e.admitting(); err != nil {
		return nil, false, err
	}
	hash, err := requestHash(namespace, name, version, input)
	if err != nil {
		return nil, false, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, false, fmt.Errorf("engine: invocation id: %w", err)
	}
	inv, held, err := e.startOnce(ctx, id.String(), "", namespace, name, version, input,
		&store.IdempotencyRecord{Key: key, RequestHash: hash}, nil)
	if err != nil {
		return nil, false, err
	}
	if held == nil {
		return inv, true, nil
	}
	if held.RequestHash != hash {
		return nil, false, problem.Newf(problem.TypeConflict, http.StatusConflict, "Conflict",
			"idempotency key %q was used for another request (invocation %s); use a new key for a new request", key, held.InvocationID)
	}
	inv, err = e.GetInvocation(ctx, held.InvocationID)
	if err != nil {
		return nil, false, fmt.Errorf("invocation %s of idempotency key %q: %w", held.InvocationID, key, err)
	}
	return inv, false, nil
}
