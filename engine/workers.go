package engine

import (
	"context"
	"time"
)

// callWorkers runs calls on goroutines that outlive them. A call's
// goroutine goes on to step its invocation's machine with the result,
// which needs a deep stack: a fresh goroutine per call would grow (copy)
// its stack every time, a reused one has grown it already.
type callWorkers struct {
	ctx   context.Context
	tasks chan func()
}

// callWorkerIdle is how long a worker waits for another call before it
// ends, so that a burst's goroutines do not stay around.
const callWorkerIdle = 5 * time.Second

func newCallWorkers(ctx context.Context) *callWorkers {
	return &callWorkers{ctx: ctx, tasks: make(chan func())}
}

// run runs f on an idle worker, or on a new one when none is idle.
func (w *callWorkers) run(f func()) {
	select {
	case w.tasks <- f:
	default:
		go w.work(f)
	}
}

func (w *callWorkers) work(f func()) {
	idle := time.NewTimer(callWorkerIdle)
	defer idle.Stop()
	for {
		f()
		f = nil // not kept alive while idle
		idle.Reset(callWorkerIdle)
		select {
		case f = <-w.tasks:
		case <-idle.C:
			return
		case <-w.ctx.Done():
			return
		}
	}
}
