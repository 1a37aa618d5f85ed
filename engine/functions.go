package engine

import (
	"context"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/function"
)

// FunctionCaller runs a workflow task that calls a registered function;
// *function.Manager is the implementation. Call receives the whole task
// (not only its arguments) so that it can apply the task's remaining
// timeout and pass the step's idempotency key on to the runtime.
type FunctionCaller interface {
	// namespace is the invocation's: the one a function name resolves in.
	Call(ctx context.Context, namespace, invocation string, c *core.Call) (function.Result, error)
}

// FunctionExecutor makes registered functions callable from workflows:
// `call: NAME` with `with:` arguments calls function NAME with those
// arguments as its JSON input (the task's input when it has none).
// Register it as the "*" executor so that it claims every call no built-in
// executor knows.
//
// Whether the call was cold, and its cold start by phase, go into the
// history's Info, where benchmarks and the prewarm planner read them.
func FunctionExecutor(fns FunctionCaller) Executor {
	return ExecutorFunc(func(ctx context.Context, req *CallRequest) (CallResult, error) {
		res, err := fns.Call(ctx, req.Namespace, req.Invocation, req.Call)
		if err != nil {
			return CallResult{}, err
		}
		info := map[string]any{
			"function": req.Function,
			"version":  res.Version,
			"instance": res.Instance,
			"cold":     res.Cold,
		}
		if res.Runtime != "" {
			info["runtime"] = string(res.Runtime)
		}
		if res.StartWait > 0 {
			info["startWaitMs"] = ms(res.StartWait)
		}
		if res.Cold {
			info["coldStartMs"] = ms(res.ColdStart.Total())
			info["coldStart"] = map[string]any{
				"compileMs":     ms(res.ColdStart.Compile),
				"instantiateMs": ms(res.ColdStart.Instantiate),
				"initMs":        ms(res.ColdStart.Init),
			}
		}
		return CallResult{Output: res.Output, Info: info}, nil
	})
}

// ms expresses a duration in milliseconds, the unit of history Info.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
