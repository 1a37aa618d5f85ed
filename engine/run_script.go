package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"

	"github.com/dop251/goja"

	"github.com/batonflow/baton/httpcall"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/problem"
)

// maxScriptSource bounds a script loaded from source.endpoint.
const maxScriptSource = 4 << 20

// scriptExecutor runs `run: script`. JavaScript runs in an embedded goja
// runtime, one per execution, with a Node-like `process` (argv, env,
// exit, stdin.read) and `console`; Python runs as a `python3` process.
type scriptExecutor struct {
	base context.Context
	http *http.Client
	log  *slog.Logger
}

func (x *scriptExecutor) Execute(ctx context.Context, req *CallRequest) (CallResult, error) {
	run, err := parseRunArgs("script", req.Args)
	if err != nil {
		return CallResult{}, err
	}
	language, _ := run.spec["language"].(string)
	args, env, stdin, err := processArgs("script", run.spec)
	if err != nil {
		return CallResult{}, err
	}
	code, name, err := x.source(ctx, run.spec)
	if err != nil {
		return CallResult{}, err
	}
	named, err := namedArguments("script", run.spec)
	if err != nil {
		return CallResult{}, err
	}
	x = x.detachedWithin(ctx, run)
	switch strings.ToLower(language) {
	case "js", "javascript":
		s := &jsScript{name: name, code: code, args: args, named: named, env: env, stdin: stdin}
		return x.runJS(ctx, req, s, run)
	case "python", "python3":
		python, err := exec.LookPath("python3")
		if err != nil {
			return CallResult{}, problem.Configuration("run.script: language python needs python3, which this engine's host does not have: %v", err)
		}
		prelude, err := pythonPrelude(named)
		if err != nil {
			return CallResult{}, err
		}
		code = prelude + code
		p := &process{argv: append([]string{python, "-c", code}, args...), env: env, stdin: stdin}
		return runProcessTask(ctx, x.base, x.log, req, "python script "+name, p, run)
	}
	return CallResult{}, problem.Configuration("run.script: language %q is not supported; use js or python", language)
}

// detachedWithin returns the executor to run one script with: a detached
// script (await: false) outlives its task, but not its namespace's script
// time limit, which the task's context carries.
func (x *scriptExecutor) detachedWithin(ctx context.Context, run runArgs) *scriptExecutor {
	eff := policy.FromContext(ctx)
	if run.await || eff == nil {
		return x
	}
	base := x.base
	if base == nil {
		base = context.Background()
	}
	bounded, cancel := context.WithTimeout(base, eff.Limits.ScriptTimeout)
	context.AfterFunc(bounded, cancel)
	return &scriptExecutor{base: bounded, http: x.http, log: x.log}
}

// source returns the script's code, inline or loaded from source.endpoint
// (file:// or http(s)://), and a name for messages.
func (x *scriptExecutor) source(ctx context.Context, spec map[string]any) (code, name string, err error) {
	if c, ok := spec["code"].(string); ok {
		return c, "inline script", nil
	}
	src, ok := spec["source"].(map[string]any)
	if !ok {
		return "", "", problem.Configuration("run.script: code or source is required")
	}
	var endpoint string
	switch ep := src["endpoint"].(type) {
	case string:
		endpoint = ep
	case map[string]any:
		if ep["authentication"] != nil {
			return "", "", problem.Configuration("run.script: authenticated script sources are not supported")
		}
		endpoint, _ = ep["uri"].(string)
	}
	u, err := url.Parse(endpoint)
	if err != nil || endpoint == "" {
		return "", "", problem.Configuration("run.script: source endpoint %q is not a URI", endpoint)
	}
	switch u.Scheme {
	case "file":
		f, err := os.Open(u.Path)
		if err != nil {
			return "", "", problem.Configuration("run.script: cannot read %s: %v", endpoint, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxScriptSource+1))
		if err != nil {
			return "", "", problem.Configuration("run.script: cannot read %s: %v", endpoint, err)
		}
		if len(b) > maxScriptSource {
			return "", "", problem.Configuration("run.script: %s is larger than %d bytes", endpoint, maxScriptSource)
		}
		return string(b), endpoint, nil
	case "http", "https":
		b, err := x.fetch(ctx, u)
		if err != nil {
			return "", "", err
		}
		return string(b), u.Redacted(), nil
	}
	return "", "", problem.Configuration("run.script: source endpoint %q: only file, http and https are supported", endpoint)
}

func (x *scriptExecutor) fetch(ctx context.Context, u *url.URL) ([]byte, error) {
	client := x.http
	if client == nil {
		client = httpcall.NewHTTPClient()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, problem.Configuration("run.script: source %s: %v", u.Redacted(), err)
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("run.script: loading %s: %w", u.Redacted(), ctx.Err())
		}
		return nil, problem.Communication(503, "run.script: loading %s: %v", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, problem.Communication(resp.StatusCode, "run.script: loading %s: %s", u.Redacted(), resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxScriptSource+1))
	if err != nil {
		return nil, problem.Communication(503, "run.script: loading %s: %v", u.Redacted(), err)
	}
	if len(b) > maxScriptSource {
		return nil, problem.Configuration("run.script: %s is larger than %d bytes", u.Redacted(), maxScriptSource)
	}
	return b, nil
}

func (x *scriptExecutor) runJS(ctx context.Context, req *CallRequest, s *jsScript, run runArgs) (CallResult, error) {
	if !run.await {
		base := x.base
		if base == nil {
			base = context.Background()
		}
		invocation, task, log := req.Invocation, req.Task, x.log
		go func() {
			res, err := s.run(base)
			if err != nil || res.Code != 0 {
				log.Warn("detached script ended badly", "invocation", invocation, "task", task,
					"code", res.Code, "err", err, "stderr", stderrTail(res.Stderr))
			}
		}()
		return CallResult{Output: req.Input, Info: map[string]any{"detached": true}}, nil
	}
	res, err := s.run(ctx)
	if err != nil {
		return CallResult{}, err
	}
	out, err := processOutput("script "+s.name, res, run.ret)
	if err != nil {
		return CallResult{}, err
	}
	return CallResult{Output: out, Info: map[string]any{"exitCode": float64(res.Code)}}, nil
}

// jsScript is one JavaScript execution.
type jsScript struct {
	name  string
	code  string
	args  []string
	named []namedArgument // a 1.0.0-1.0.2 arguments map: global variables
	env   map[string]string
	stdin *string
}

// jsExit is the interrupt value of process.exit.
type jsExit struct{ code int }

// run executes the script and reports it as a process would: console.log
// and process.stdout.write are its stdout, console.error and warn its
// stderr, process.exit(n) or an uncaught exception (1) its exit code.
// When the script writes nothing to stdout, its completion value (the
// value of its last statement) stands for it, so that `code: 1 + 2`
// outputs 3.
func (s *jsScript) run(ctx context.Context) (processResult, error) {
	vm := goja.New()
	stdout := &cappedBuffer{max: maxProcessOutput}
	stderr := &cappedBuffer{max: maxProcessOutput}
	if err := s.install(vm, stdout, stderr); err != nil {
		return processResult{}, fmt.Errorf("run.script: preparing the JavaScript runtime: %w", err)
	}
	program, err := goja.Compile(s.name, s.code, false)
	if err != nil {
		// A syntax error: the script never ran.
		return processResult{}, problem.Configuration("run.script: %v", err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
			vm.Interrupt(ctx.Err())
		case <-stop:
		}
	}()
	value, err := vm.RunProgram(program)
	res := processResult{}
	var interrupted *goja.InterruptedError
	var exception *goja.Exception
	switch {
	case err == nil:
		if stdout.buf.Len() == 0 && value != nil && !goja.IsUndefined(value) && !goja.IsNull(value) {
			stdout.Write([]byte(jsText(value)))
		}
	case errors.As(err, &interrupted):
		switch v := interrupted.Value().(type) {
		case jsExit:
			res.Code = v.code
		case error:
			return res, fmt.Errorf("run.script: %s stopped: %w", s.name, v)
		default:
			return res, fmt.Errorf("run.script: %s stopped: %v", s.name, v)
		}
	case errors.As(err, &exception):
		fmt.Fprintf(stderr, "Uncaught %s\n", exception.String())
		res.Code = 1
	default:
		return res, fmt.Errorf("run.script: %s: %w", s.name, err)
	}
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	return res, nil
}

func (s *jsScript) install(vm *goja.Runtime, stdout, stderr io.Writer) error {
	printer := func(w io.Writer) func(goja.FunctionCall) goja.Value {
		return func(call goja.FunctionCall) goja.Value {
			parts := make([]string, len(call.Arguments))
			for i, a := range call.Arguments {
				parts[i] = jsText(a)
			}
			io.WriteString(w, strings.Join(parts, " ")+"\n")
			return goja.Undefined()
		}
	}
	console := vm.NewObject()
	for name, w := range map[string]io.Writer{"log": stdout, "info": stdout, "debug": stdout, "warn": stderr, "error": stderr} {
		if err := console.Set(name, printer(w)); err != nil {
			return err
		}
	}
	writer := func(w io.Writer) *goja.Object {
		o := vm.NewObject()
		o.Set("write", func(call goja.FunctionCall) goja.Value {
			io.WriteString(w, call.Argument(0).String())
			return vm.ToValue(true)
		})
		return o
	}
	env := make(map[string]any, len(s.env))
	for k, v := range s.env {
		env[k] = v
	}
	argv := []any{"baton", s.name}
	for _, a := range s.args {
		argv = append(argv, a)
	}
	stdinText := ""
	if s.stdin != nil {
		stdinText = *s.stdin
	}
	stdin := vm.NewObject()
	stdin.Set("fd", 0)
	stdin.Set("read", func(goja.FunctionCall) goja.Value { return vm.ToValue(stdinText) })
	proc := vm.NewObject()
	for name, value := range map[string]any{
		"argv":   argv,
		"env":    env,
		"stdin":  stdin,
		"stdout": writer(stdout),
		"stderr": writer(stderr),
		"exit": func(call goja.FunctionCall) goja.Value {
			code := 0
			if a := call.Argument(0); !goja.IsUndefined(a) {
				code = int(a.ToInteger())
			}
			vm.Interrupt(jsExit{code: code})
			return goja.Undefined()
		},
	} {
		if err := proc.Set(name, value); err != nil {
			return err
		}
	}
	for _, a := range s.named {
		if err := vm.Set(a.name, a.value); err != nil {
			return err
		}
	}
	if err := vm.Set("console", console); err != nil {
		return err
	}
	return vm.Set("process", proc)
}

// jsText renders a value the way console.log shows it: strings as they
// are, data as JSON.
func jsText(v goja.Value) string {
	if v == nil || goja.IsUndefined(v) {
		return "undefined"
	}
	if goja.IsNull(v) {
		return "null"
	}
	switch exported := v.Export().(type) {
	case string:
		return exported
	case map[string]any, []any:
		if b, err := json.Marshal(exported); err == nil {
			return string(b)
		}
	}
	return v.String()
}
