package prewarm

import (
	"time"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/problem"
)

// TaskObserver is engine.TaskObserver, restated so that this package does
// not depend on the engine.
type TaskObserver interface {
	TaskStarted(invocation, key, ref, name string, at time.Time)
	TaskEnded(invocation, key, ref, name string, at time.Time, err *problem.Problem)
}

// Observers composes task observers into one for engine.Options.Observer;
// members that also implement InvocationStarted/InvocationEnded (the
// engine's InvocationObserver) hear those too.
type Observers []TaskObserver

func (o Observers) TaskStarted(invocation, key, ref, name string, at time.Time) {
	for _, x := range o {
		x.TaskStarted(invocation, key, ref, name, at)
	}
}

func (o Observers) TaskEnded(invocation, key, ref, name string, at time.Time, err *problem.Problem) {
	for _, x := range o {
		x.TaskEnded(invocation, key, ref, name, at, err)
	}
}

type invocationObserver interface {
	InvocationStarted(invocation string, def *dsl.Workflow, arrived time.Time)
	InvocationEnded(invocation string)
}

func (o Observers) InvocationStarted(invocation string, def *dsl.Workflow, arrived time.Time) {
	for _, x := range o {
		if io, ok := x.(invocationObserver); ok {
			io.InvocationStarted(invocation, def, arrived)
		}
	}
}

func (o Observers) InvocationEnded(invocation string) {
	for _, x := range o {
		if io, ok := x.(invocationObserver); ok {
			io.InvocationEnded(invocation)
		}
	}
}
