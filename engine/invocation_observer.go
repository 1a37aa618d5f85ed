package engine

import (
	"time"

	"github.com/batonflow/baton/dsl"
)

// InvocationObserver is an optional extension of TaskObserver: an
// Options.Observer that implements it also hears when an invocation
// becomes live in this engine (started, or resumed after a restart) with
// the definition it runs and the time the invocation was created (its
// arrival; long past for a resumed one), and when it ends. A prewarm
// planner needs the definition to know which functions a task can reach
// next (task events alone carry only JSON pointers into it) and the
// arrivals to predict the next invocation.
type InvocationObserver interface {
	InvocationStarted(invocation string, def *dsl.Workflow, arrived time.Time)
	InvocationEnded(invocation string)
}

func (e *Engine) invocationStarted(id string, def *dsl.Workflow, arrived time.Time) {
	if o, ok := e.opts.Observer.(InvocationObserver); ok {
		o.InvocationStarted(id, def, arrived)
	}
}

func (e *Engine) invocationEnded(id string) {
	if o, ok := e.opts.Observer.(InvocationObserver); ok {
		o.InvocationEnded(id)
	}
}
