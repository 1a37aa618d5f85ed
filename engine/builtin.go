package engine

import (
	"context"

	"github.com/batonflow/baton/openapicall"
)

// Function names of the calls the core makes for tasks that are not
// `call`: `emit` and the four kinds of `run`.
const (
	FunctionEmit         = "emit"
	FunctionRunShell     = "run.shell"
	FunctionRunScript    = "run.script"
	FunctionRunContainer = "run.container"
	FunctionRunWorkflow  = "run.workflow"
)

// FunctionNoop is a function every engine has: `call: baton.noop` answers
// at once with a null output, so that a benchmark of a server measures
// the engine and its API alone (see `baton bench --functions noop`).
const FunctionNoop = "baton.noop"

var noopExecutor = ExecutorFunc(func(context.Context, *CallRequest) (CallResult, error) {
	return CallResult{}, nil
})

// withBuiltinExecutors returns the engine's own executors merged with the
// caller's, whose entries win so that an embedder can replace any of them
// (a sandboxed shell, say). The caller's map is not modified.
func (e *Engine) withBuiltinExecutors(user map[string]Executor) map[string]Executor {
	merged := map[string]Executor{
		FunctionEmit:         &emitExecutor{events: e.opts.Events, log: e.opts.EventLog},
		FunctionRunShell:     &shellExecutor{base: e.ctx, log: e.log},
		FunctionRunScript:    &scriptExecutor{base: e.ctx, http: e.opts.HTTPClient, log: e.log},
		FunctionRunContainer: &containerExecutor{runtime: e.opts.ContainerRuntime, base: e.ctx, log: e.log},
		FunctionRunWorkflow:  &subflowExecutor{e: e},
		FunctionOpenAPI: &openAPIExecutor{
			client: &openapicall.Client{HTTP: e.http, Documents: e.opts.HTTPClient},
		},
		FunctionGRPC: &grpcExecutor{client: e.grpc},
		FunctionNoop: noopExecutor,
	}
	if e.opts.EventLog != nil {
		merged[FunctionListen] = &listenExecutor{log: e.opts.EventLog, eval: e.eval, evalFor: e.evaluatorFor, logger: e.log}
	}
	for name, ex := range user {
		merged[name] = ex
	}
	return merged
}
