package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// drainPoll is how often Drain looks whether recorded results have been
// taken in by their invocations.
const drainPoll = 5 * time.Millisecond

// drainState is what a graceful stop needs: whether the engine is
// draining, and the calls executing.
type drainState struct {
	draining atomic.Bool
	mu       sync.Mutex
	inflight int
	idle     chan struct{} // closed when inflight drops to 0 while draining
}

// waitsForOthers reports whether a call waits on something other than
// the callee doing work (an event, a subflow): such a call may wait for
// longer than any grace, and cutting it short loses nothing, since it
// resumes from durable positions. A drain does not wait for it.
func waitsForOthers(function string) bool {
	return function == FunctionListen || function == FunctionRunWorkflow
}

// callStarted counts a call about to execute (unless it waits for others);
// false while draining, when the call is held for the next start of the
// engine instead.
func (d *drainState) callStarted(function string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.draining.Load() {
		return false
	}
	if !waitsForOthers(function) {
		d.inflight++
	}
	return true
}

func (d *drainState) callEnded(function string) {
	if waitsForOthers(function) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inflight--
	if d.inflight == 0 && d.idle != nil {
		close(d.idle)
		d.idle = nil
	}
}

// ErrDraining is the problem new starts get while the engine drains.
var ErrDraining = problem.New(problem.TypeInternal, http.StatusServiceUnavailable, "Service Unavailable",
	"the server is shutting down and starts no new invocations; retry shortly or on another server")

// admitting returns ErrDraining once Drain has begun.
func (e *Engine) admitting() error {
	if e.drain.draining.Load() {
		return ErrDraining
	}
	return nil
}

// Draining reports whether Drain has begun.
func (e *Engine) Draining() bool { return e.drain.draining.Load() }

// Drain prepares a graceful stop: new starts through Invoke and InvokeOnce
// are refused with ErrDraining, calls that are not executing yet are held
// (the next start of the engine sends them), and Drain waits until the
// calls in flight have returned and their results are recorded, or until
// ctx ends. Then Close stops the engine: after a Drain that returned nil,
// no call that returned is sent again. Invocations still running stay so
// in the store, to resume on the next start.
func (e *Engine) Drain(ctx context.Context) error {
	e.drain.mu.Lock()
	e.drain.draining.Store(true)
	var idle chan struct{}
	if e.drain.inflight > 0 {
		if e.drain.idle == nil {
			e.drain.idle = make(chan struct{})
		}
		idle = e.drain.idle
	}
	e.drain.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// The last results are in their invocations' inboxes or being
	// appended; wait until every invocation has taken its inbox in.
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for !e.quiescent() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// quiescent reports whether no live invocation has events to record.
func (e *Engine) quiescent() bool {
	e.mu.Lock()
	live := make([]*instance, 0, len(e.live))
	for _, in := range e.live {
		live = append(live, in)
	}
	e.mu.Unlock()
	for _, in := range live {
		in.mu.Lock()
		busy := in.draining && !in.stopped && !in.ended
		in.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

// closing reports whether err comes from the engine being closed, which
// is how a stop cuts appends and calls short: nothing to report.
func (e *Engine) closing(err error) bool {
	return e.ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

// Ready reports whether the engine should be sent work: it is not
// draining, its store answers and, in a cluster, it is a member that holds
// or may take partitions. It returns why not otherwise.
func (e *Engine) Ready(ctx context.Context) error {
	if e.drain.draining.Load() {
		return errors.New("draining: the server is shutting down")
	}
	if p, ok := e.store.(store.Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return fmt.Errorf("the store is unreachable: %w", err)
		}
	}
	if e.cluster != nil {
		return e.cluster.ready()
	}
	return nil
}
