package writequeue

import (
	"sync/atomic"
	"time"
)

// CommitHook holds the function that hears a writer's commits (see
// store.CommitObserver); the zero value hears nothing. The writer reads it
// once per commit, so setting it needs no coordination with the writer.
type CommitHook struct {
	f atomic.Pointer[func(writes int, took time.Duration)]
}

// Set replaces the function; nil removes it.
func (h *CommitHook) Set(f func(writes int, took time.Duration)) {
	if f == nil {
		h.f.Store(nil)
		return
	}
	h.f.Store(&f)
}

// Committed reports a commit of writes requests that took since began.
func (h *CommitHook) Committed(writes int, began time.Time) {
	if f := h.f.Load(); f != nil {
		(*f)(writes, time.Since(began))
	}
}
