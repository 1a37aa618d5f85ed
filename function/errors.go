package function

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// notFoundError is a problem that also matches store.ErrNotFound, so that
// workflow code sees a DSL configuration error and API code can test
// errors.Is(err, store.ErrNotFound) to answer 404.
type notFoundError struct{ p *problem.Problem }

func (e *notFoundError) Error() string   { return e.p.Error() }
func (e *notFoundError) Unwrap() []error { return []error{e.p, store.ErrNotFound} }

// NotFound is the error for a function (or version) that is not deployed:
// a DSL configuration error with status 404.
func NotFound(name, version string) error {
	p := problem.Configuration("function %q is not deployed", name)
	if version != "" {
		p = problem.Configuration("function %q has no version %q", name, version)
	}
	p.Status = 404
	return &notFoundError{p: p}
}

// CallError turns the failure of a call into a problem, for runtimes: when
// the call's context ended, the failure is a timeout (or a cancellation)
// whatever the runtime saw; otherwise err is kept if it is a problem and
// becomes a runtime error if not.
func CallError(ctx context.Context, spec *Spec, timeout time.Duration, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return problem.Timeout("function %s did not answer within %s", spec.Ref(), timeout)
	case errors.Is(ctx.Err(), context.Canceled):
		return Cancelled(spec)
	}
	var p *problem.Problem
	if errors.As(err, &p) {
		return p
	}
	return problem.Runtime("function %s failed: %v", spec.Ref(), err)
}

// Cancelled is the error of a call whose caller went away.
func Cancelled(spec *Spec) *problem.Problem {
	return problem.New(problem.TypeCancelled, 499, "Cancelled", fmt.Sprintf("the call of function %s was cancelled", spec.Ref()))
}
