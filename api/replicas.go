package api

import (
	"context"
	"net/http"

	"github.com/batonflow/baton/store"
)

// IdempotencyKeyHeader makes a start idempotent (see OnceInvoker).
const IdempotencyKeyHeader = "Idempotency-Key"

// OnceInvoker is an engine that starts invocations under idempotency keys.
// *engine.Engine satisfies it; without it, starts with an Idempotency-Key
// header are refused rather than started unprotected.
type OnceInvoker interface {
	// InvokeOnce starts an invocation, or, for a key used before with the
	// same request, returns the invocation it started (created false).
	InvokeOnce(ctx context.Context, key, namespace, name, version string, input any) (*store.Invocation, bool, error)
}

// Readiness is an engine that can tell whether it should be sent work.
// *engine.Engine satisfies it.
type Readiness interface {
	Ready(ctx context.Context) error
}

// start runs the start of an invocation for the invoke handler, under the
// request's idempotency key when it has one.
func (s *server) start(r *http.Request, namespace, name, version string, input any) (inv *store.Invocation, created bool, err error) {
	key := r.Header.Get(IdempotencyKeyHeader)
	if key == "" {
		inv, err := s.engine.Invoke(r.Context(), namespace, name, version, input)
		return inv, err == nil, err
	}
	once, ok := s.engine.(OnceInvoker)
	if !ok {
		return nil, false, notImplemented("this server does not keep idempotency keys")
	}
	return once.InvokeOnce(r.Context(), key, namespace, name, version, input)
}

// ready answers GET /readyz: 200 while the engine takes work, 503 while it
// drains, its store is unreachable or (a cluster replica) it holds and may
// take no partitions.
func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	if rd, ok := s.engine.(Readiness); ok {
		if err := rd.Ready(r.Context()); err != nil {
			s.writeProblem(w, r, unavailable("not ready: %v", err))
			return
		}
	}
	writeJSON(w, http.StatusOK, Health{Status: "ready"})
}
