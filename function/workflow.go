package function

import (
	"context"
	"strings"

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
//
// NAME is resolved in namespace, the invocation's own: a workflow calls
// its namespace's functions and no other's. Another namespace's function
// is "not deployed", whatever its name; a name that tries to spell a
// namespace ("team-b/hello") is not a function name at all.
func (m *Manager) Call(ctx context.Context, namespace, invocation string, c *core.Call) (Result, error) {
	if strings.Contains(c.Function, "/") {
		name, version, _ := strings.Cut(c.Function, "@")
		return Result{}, NotFound(name, version)
	}
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
		IdempotencyKey: c.IdempotencyKey(invocation),
		Invocation:     invocation,
	})
	return m.Invoke(ctx, Qualify(namespace, c.Function), input)
}
