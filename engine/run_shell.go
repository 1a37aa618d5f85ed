package engine

import (
	"context"
	"log/slog"

	"github.com/batonflow/baton/problem"
)

// shellExecutor runs `run: shell`: the command goes to `sh -c`, with the
// task's arguments as the positional parameters $1, $2..., so that the
// DSL's examples (`echo "ARGS are $1 $2"`) work as written.
type shellExecutor struct {
	// base bounds detached processes: they outlive their task but not
	// the engine.
	base context.Context
	log  *slog.Logger
}

// shellPath is the POSIX shell that runs commands.
const shellPath = "/bin/sh"

func (x *shellExecutor) Execute(ctx context.Context, req *CallRequest) (CallResult, error) {
	run, err := parseRunArgs("shell", req.Args)
	if err != nil {
		return CallResult{}, err
	}
	command, ok := run.spec["command"].(string)
	if !ok || command == "" {
		return CallResult{}, problem.Configuration("run.shell: command must be a non-empty string, got %T", run.spec["command"])
	}
	args, env, stdin, err := processArgs("shell", run.spec)
	if err != nil {
		return CallResult{}, err
	}
	named, err := namedArguments("shell", run.spec)
	if err != nil {
		return CallResult{}, err
	}
	words, err := shellWords(named)
	if err != nil {
		return CallResult{}, err
	}
	command += words
	p := &process{argv: append([]string{shellPath, "-c", command, "sh"}, args...), env: env, stdin: stdin}
	return runProcessTask(ctx, x.base, x.log, req, "shell command", p, run)
}

// runProcessTask runs a process for a `run` task, awaited or detached, and
// shapes its result.
func runProcessTask(ctx, base context.Context, log *slog.Logger, req *CallRequest, what string, p *process, run runArgs) (CallResult, error) {
	if !run.await {
		if base == nil {
			base = context.Background()
		}
		invocation, task := req.Invocation, req.Task
		err := p.startDetached(base, func(res processResult, err error) {
			if err != nil || res.Code != 0 {
				log.Warn("detached process ended badly", "invocation", invocation, "task", task,
					"code", res.Code, "err", err, "stderr", stderrTail(res.Stderr))
			}
		})
		if err != nil {
			return CallResult{}, err
		}
		// Nobody waits for the result: the task outputs its input.
		return CallResult{Output: req.Input, Info: map[string]any{"detached": true}}, nil
	}
	res, err := p.run(ctx)
	if err != nil {
		return CallResult{}, err
	}
	out, err := processOutput(what, res, run.ret)
	if err != nil {
		return CallResult{}, err
	}
	return CallResult{Output: out, Info: map[string]any{"exitCode": float64(res.Code)}}, nil
}
