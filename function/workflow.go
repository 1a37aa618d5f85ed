package function

import (
	"context"

	"github.com/batonflow/baton/core"
)

// Call runs a workflow task that calls a Baton function (a DSL `call`
// naming a deployed function rather than one of use.functions):
//
//   - greet:
//     call: hello          # or hello@2 for a pinned version
//     with:
//     name: ${ .user.name }
//
// The task's `with` arguments are the function's input; a task without
// them passes its transformed input. The task's remaining timeout bounds
// the call, and the idempotency key of the step (core.IdempotencyKey)
// goes to runtimes that can pass it
// on. Failures are problems (timeout, runtime, communication,
// configuration) that the workflow's try and retry act on.
func (m *Manager) Call(ctx context.Context, invocation string, c *core.Call) (Result, error) {
	var input any = c.Input
	if len(c.Args) > 0 {
		input = c.Args
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	ctx = WithCallInfo(ctx, CallInfo{
		IdempotencyKey: core.IdempotencyKey(invocation, c.Task, c.Attempt),
		Invocation:     invocation,
	})
	return m.Invoke(ctx, c.Function, input)
}
