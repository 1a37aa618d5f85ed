package engine

import (
	"context"
	"errors"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/httpcall"
	"github.com/batonflow/baton/problem"
)

// CallRequest is one execution of a call: the machine's command plus what
// the executor may need around it.
type CallRequest struct {
	*core.Call
	Invocation string
	// Namespace is the invocation's: the tenancy unit the call acts for.
	Namespace string
	// IdempotencyKey is the same every time this call is executed again
	// (after a crash, say): see core.IdempotencyKey. Ids derived from the
	// call are computed from core.CallIDSeed instead.
	IdempotencyKey string
	Workflow       *dsl.Workflow
	// Secrets are the invocation's secrets (the workflow's use.secrets),
	// for authentication policies that name one with `use: secret`.
	Secrets map[string]any
	// Redact masks the values of Secrets in a string, for executors that
	// record or log something built from them (a request's URL, say).
	Redact func(string) string
}

// CallResult is what an executor returns: the task's raw output and facts
// about the execution (cold start, instance...) recorded in the history's
// Info for benchmarks and prewarming.
type CallResult struct {
	Output any
	Info   map[string]any
}

// Executor runs calls of some functions. An error that is a
// *problem.Problem reaches the workflow as it is; any other becomes a
// runtime error.
type Executor interface {
	Execute(ctx context.Context, req *CallRequest) (CallResult, error)
}

// ExecutorFunc adapts a function to Executor.
type ExecutorFunc func(ctx context.Context, req *CallRequest) (CallResult, error)

func (f ExecutorFunc) Execute(ctx context.Context, req *CallRequest) (CallResult, error) {
	return f(ctx, req)
}

func (e *Engine) execute(ctx context.Context, in *instance, c *core.Call) (CallResult, *problem.Problem) {
	ctx, cancel, p := e.checkCall(ctx, in, c)
	defer cancel()
	if p != nil {
		return CallResult{}, p
	}
	seat, p := e.seat(ctx, in, c)
	if p != nil {
		return CallResult{}, p
	}
	defer seat.Release()
	if seat.Yield {
		ctx = function.WithLowPriority(ctx)
	}
	res, p := e.executeAllowed(ctx, in, c)
	if p != nil {
		if lp := scriptLimitProblem(ctx, in, c); lp != nil {
			return CallResult{}, lp
		}
	}
	return res, p
}

func (e *Engine) executeAllowed(ctx context.Context, in *instance, c *core.Call) (CallResult, *problem.Problem) {
	key := c.IdempotencyKey(in.inv.ID)
	if c.Function == "http" {
		var auths map[string]any
		if in.def.Use != nil {
			auths = in.def.Use.Authentications
		}
		out, p := e.http.Do(ctx, httpcall.Request{
			Args: c.Args, Input: c.Input, IdempotencyKey: key,
			Authentications: auths, Secrets: in.secrets, Redact: in.redact.String,
		})
		return CallResult{Output: out}, p
	}
	ex := e.opts.Executors[c.Function]
	if ex == nil {
		ex = e.opts.Executors["*"]
	}
	if ex == nil {
		return CallResult{}, problem.Configuration("%s: this engine has no executor for %q", c.Name, c.Function)
	}
	res, err := ex.Execute(ctx, &CallRequest{
		Call: c, Invocation: in.inv.ID, Namespace: in.inv.Namespace, IdempotencyKey: key, Workflow: in.def,
		Secrets: in.secrets, Redact: in.redact.String,
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return CallResult{}, problem.Timeout("%s: %v", c.Name, err)
		}
		return CallResult{}, problem.FromError(err)
	}
	return res, nil
}
