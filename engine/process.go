package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/batonflow/baton/problem"
)

// maxProcessOutput bounds what is kept of a process's stdout and of its
// stderr: a task's output lands in history, and one chatty process must not
// exhaust the engine's memory.
const maxProcessOutput = 4 << 20

// processKillGrace is how long a cancelled process's pipes may stay open
// after the kill before the engine stops waiting for them.
const processKillGrace = 2 * time.Second

// inheritedEnv lists the variables a process inherits from the engine. The
// rest of the engine's environment (database URLs, tokens) stays private;
// a task passes what its process needs through `environment`.
var inheritedEnv = []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "USER"}

// process is one operating-system process a `run` task starts.
type process struct {
	argv  []string
	env   map[string]string
	stdin *string
}

// processResult is the DSL's "Process Result".
type processResult struct {
	Code   int
	Stdout string
	Stderr string
}

// cappedBuffer keeps the first max bytes written to it and counts the rest.
type cappedBuffer struct {
	buf     bytes.Buffer
	max     int
	dropped int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	room := b.max - b.buf.Len()
	switch {
	case room <= 0:
		b.dropped += len(p)
	case len(p) > room:
		b.buf.Write(p[:room])
		b.dropped += len(p) - room
	default:
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *cappedBuffer) String() string {
	if b.dropped == 0 {
		return b.buf.String()
	}
	return b.buf.String() + fmt.Sprintf("\n[baton: %d more bytes dropped]", b.dropped)
}

func (p *process) command(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.argv[0], p.argv[1:]...)
	cmd.Env = processEnv(p.env)
	if p.stdin != nil {
		cmd.Stdin = strings.NewReader(*p.stdin)
	}
	// The process leads its own group so that a cancellation kills what
	// it spawned too (a shell's children).
	setProcessGroup(cmd)
	cmd.Cancel = func() error { return killProcessGroup(cmd) }
	cmd.WaitDelay = processKillGrace
	return cmd
}

// run starts the process, waits for it and reports its exit code and
// output. A process that cannot start, or that ctx ends, is an error; a
// non-zero exit is not (the caller decides what it means).
func (p *process) run(ctx context.Context) (processResult, error) {
	cmd := p.command(ctx)
	stdout := &cappedBuffer{max: maxProcessOutput}
	stderr := &cappedBuffer{max: maxProcessOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	res := processResult{Stdout: stdout.String(), Stderr: stderr.String()}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return res, fmt.Errorf("%s: stopped: %w", p.argv[0], ctxErr)
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.Code = exit.ExitCode()
		if res.Code < 0 {
			// Killed by a signal: report it the way shells do.
			res.Code = 128 + signalNumber(exit)
		}
	default:
		return res, problem.Configuration("cannot start %s: %v", p.argv[0], err)
	}
	return res, nil
}

// startDetached starts the process for `await: false`: nobody waits for
// its result, but its exit is reaped and logged so that it leaves no
// zombie. It outlives the task, not the engine's context.
func (p *process) startDetached(ctx context.Context, onExit func(processResult, error)) error {
	cmd := p.command(ctx)
	stderr := &cappedBuffer{max: 64 << 10}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return problem.Configuration("cannot start %s: %v", p.argv[0], err)
	}
	go func() {
		err := cmd.Wait()
		res := processResult{Stderr: stderr.String()}
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			res.Code, err = exit.ExitCode(), nil
		}
		onExit(res, err)
	}()
	return nil
}

func processEnv(extra map[string]string) []string {
	env := make([]string, 0, len(inheritedEnv)+len(extra))
	for _, name := range inheritedEnv {
		if _, overridden := extra[name]; overridden {
			continue
		}
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	names := make([]string, 0, len(extra))
	for name := range extra {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		env = append(env, name+"="+extra[name])
	}
	return env
}

// processOutput shapes a finished process's result into the task's output
// following `return`:
//
//	return  exit 0                      non-zero exit
//	stdout  stdout (JSON parsed)        fault: runtime error, code and stderr tail
//	stderr  stderr (JSON parsed)        stderr, as asked
//	code    0                           the code, as asked
//	all     {code, stdout, stderr}      {code, stdout, stderr}, as asked
//	none    null                        fault: runtime error, code and stderr tail
//
// A workflow that asks for stderr, the code or all of it asked for what a
// failure produces and reads it; with stdout or none, the fault is the
// only way it learns that the process failed. Trailing line breaks are
// dropped from stdout and stderr in every mode, as other runtimes do.
func processOutput(name string, res processResult, ret string) (any, error) {
	if res.Code != 0 && (ret == "" || ret == "stdout" || ret == "none") {
		return nil, &problem.Problem{
			Type:   problem.TypeRuntime,
			Status: 500,
			Title:  "Runtime Error",
			Detail: fmt.Sprintf("%s exited with code %d%s", name, res.Code, stderrTail(res.Stderr)),
		}
	}
	switch ret {
	case "", "stdout":
		return structuredText(res.Stdout), nil
	case "stderr":
		return structuredText(res.Stderr), nil
	case "code":
		return float64(res.Code), nil
	case "all":
		return map[string]any{"code": float64(res.Code), "stdout": trimLineBreaks(res.Stdout), "stderr": trimLineBreaks(res.Stderr)}, nil
	case "none":
		return nil, nil
	}
	return nil, problem.Configuration("%s: return %q is not one of stdout, stderr, code, all, none", name, ret)
}

// structuredText is what `return: stdout` (or stderr) outputs: a JSON
// object or array printed by the process becomes data that the next task
// can navigate; anything else is the text without its final line breaks.
// Scalars stay text so that `echo 007` outputs "007", not 7.
func structuredText(s string) any {
	trimmed := strings.TrimSpace(s)
	if strings.HasPrefix(trimmed, "{") || strings.HasPrefix(trimmed, "[") {
		var v any
		if err := json.Unmarshal([]byte(trimmed), &v); err == nil {
			return v
		}
	}
	return trimLineBreaks(s)
}

func trimLineBreaks(s string) string { return strings.TrimRight(s, "\r\n") }

// stderrTail quotes the end of a failed process's stderr for its error.
func stderrTail(stderr string) string {
	const keep = 2048
	s := strings.TrimSpace(stderr)
	if s == "" {
		return ""
	}
	if len(s) > keep {
		s = "…" + s[len(s)-keep:]
	}
	return ": " + s
}

// processArgs reads the pieces every process kind shares from the
// evaluated definition: arguments (a list of strings), environment (an
// object) and stdin.
func processArgs(kind string, spec map[string]any) (args []string, env map[string]string, stdin *string, err error) {
	switch a := spec["arguments"].(type) {
	case nil:
	case []any:
		for i, v := range a {
			s, ok := scalarText(v)
			if !ok {
				return nil, nil, nil, problem.Configuration("run.%s: arguments[%d] must be a string, got %T", kind, i, v)
			}
			args = append(args, s)
		}
	default:
		return nil, nil, nil, problem.Configuration("run.%s: arguments must be a list of strings, got %T", kind, a)
	}
	switch e := spec["environment"].(type) {
	case nil:
	case map[string]any:
		env = make(map[string]string, len(e))
		for name, v := range e {
			if name == "" || strings.ContainsAny(name, "=\x00") {
				return nil, nil, nil, problem.Configuration("run.%s: %q is not a valid environment variable name", kind, name)
			}
			s, ok := scalarText(v)
			if !ok {
				b, err := json.Marshal(v)
				if err != nil {
					return nil, nil, nil, problem.Configuration("run.%s: environment %s: %v", kind, name, err)
				}
				s = string(b)
			}
			env[name] = s
		}
	default:
		return nil, nil, nil, problem.Configuration("run.%s: environment must be an object, got %T", kind, e)
	}
	switch s := spec["stdin"].(type) {
	case nil:
	case string:
		stdin = &s
	default:
		// An expression produced data: the process reads it as JSON.
		b, err := json.Marshal(s)
		if err != nil {
			return nil, nil, nil, problem.Configuration("run.%s: stdin: %v", kind, err)
		}
		text := string(b)
		stdin = &text
	}
	return args, env, stdin, nil
}

// scalarText renders a string, number or boolean as a command line or
// environment would spell it.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

// runArgs are the arguments the core gives every `run` call.
type runArgs struct {
	spec  map[string]any
	await bool
	ret   string
}

func parseRunArgs(kind string, args map[string]any) (runArgs, error) {
	spec, ok := args["process"].(map[string]any)
	if !ok {
		return runArgs{}, problem.Configuration("run.%s: the process definition must be an object, got %T", kind, args["process"])
	}
	r := runArgs{spec: spec, await: true, ret: "stdout"}
	if b, ok := args["await"].(bool); ok {
		r.await = b
	}
	if s, ok := args["return"].(string); ok && s != "" {
		r.ret = s
	}
	return r, nil
}
