// Package writequeue is the hand-off between callers and a store backend's
// single writer goroutine: a queue that can be closed while callers send
// on it, and the bookkeeping that reports failed unwaited writes to the
// next caller who waits. The backends differ in how they write a batch,
// not in how requests reach the writer or how failures come back.
package writequeue

import (
	"context"
	"sync"
)

// Queue carries requests to one writer goroutine. Its lock lets Close
// close the channel without racing a caller that is sending on it, which
// would panic.
type Queue[R any] struct {
	mu        sync.RWMutex
	closed    bool
	ch        chan R
	errClosed error
}

// New makes a queue that holds size requests before senders block and
// answers errClosed to sends after Close.
func New[R any](size int, errClosed error) *Queue[R] {
	return &Queue[R]{ch: make(chan R, size), errClosed: errClosed}
}

// Requests is what the writer ranges over; it ends once the queue is
// closed and drained.
func (q *Queue[R]) Requests() <-chan R { return q.ch }

// Close stops further sends and lets the writer drain what is queued. It
// reports false when the queue was already closed, so that closing a store
// twice is harmless.
func (q *Queue[R]) Close() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.closed = true
	close(q.ch)
	return true
}

// Submit queues r and, when done is not nil, waits for the writer's
// outcome on it. done must be the channel r carries to the writer, with
// room for one value so that the writer never blocks on a caller who
// stopped waiting.
func (q *Queue[R]) Submit(ctx context.Context, r R, done <-chan error) error {
	q.mu.RLock()
	if q.closed {
		q.mu.RUnlock()
		return q.errClosed
	}
	select {
	case q.ch <- r:
	case <-ctx.Done():
		q.mu.RUnlock()
		return ctx.Err()
	}
	q.mu.RUnlock()
	if done == nil {
		return nil
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// The write stays queued and will most likely commit; the caller
		// only stops waiting for it.
		return ctx.Err()
	}
}

// DoneChan is the channel a request carries when its caller waits, and nil
// when it does not: the writer reports to unwaited requests through
// Unwaited instead.
func DoneChan(wait bool) chan error {
	if !wait {
		return nil
	}
	return make(chan error, 1)
}
