// Package js evaluates the JavaScript expressions of Fission Workflows:
// strings wrapped in `{ ... }` that compute a task's inputs from the
// invocation's scope ($.Workflow, $.Invocation, $.Tasks) and a few helper
// functions (uid, input, output, outputHeaders, param, task).
//
// Evaluation is deterministic as far as the workflow machine needs it to
// be: the scope is copied into the runtime so an expression cannot change
// the machine's state, uid() is derived from the invocation, the task and a
// counter rather than from randomness, and every program runs in strict mode
// inside a function so that it leaves nothing behind in a pooled runtime.
package js

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"
)

// DefaultTimeLimit bounds one evaluation, so that `{ while(true){} }`
// faults its task instead of hanging the engine.
const DefaultTimeLimit = 2 * time.Second

// ErrTimeLimit is wrapped by the error of an evaluation that ran too long.
var ErrTimeLimit = errors.New("expression ran longer than its time limit")

// Unwrap returns the JavaScript inside a `{ ... }` string and true, or the
// string and false when it is not an expression.
func Unwrap(s string) (string, bool) {
	t := strings.TrimSpace(s)
	if len(t) >= 2 && t[0] == '{' && t[len(t)-1] == '}' {
		return strings.TrimSpace(t[1 : len(t)-1]), true
	}
	return s, false
}

// IsExpr reports whether s is a `{ ... }` expression.
func IsExpr(s string) bool {
	_, ok := Unwrap(s)
	return ok
}

// Scope is what one evaluation sees.
type Scope struct {
	// Workflow, Invocation and Tasks make up `$`. Tasks maps a task id to
	// {Inputs, Output, OutputHeaders, Status}.
	Workflow   map[string]any
	Invocation map[string]any
	Tasks      map[string]any
	// Current is the task being resolved, returned by task(), output() and
	// outputHeaders() without argument; CurrentID is exposed as taskId.
	Current   map[string]any
	CurrentID string
	// Seed makes uid() deterministic: the invocation id and the task's
	// activation key. Each call of uid() within the scope's lifetime
	// yields the next value of the sequence.
	Seed string
	// Vars are extra variables (the `args` of the javascript function).
	// Their names must be JavaScript identifiers.
	Vars map[string]any

	uids int
}

// Evaluator compiles and caches programs and pools runtimes. It is safe
// for concurrent use; a goja runtime is not, so each evaluation takes one
// out of the pool for its duration.
type Evaluator struct {
	limit    time.Duration
	runtimes sync.Pool

	mu       sync.RWMutex
	programs map[string]*goja.Program
}

// NewEvaluator returns an evaluator whose evaluations run at most limit
// (DefaultTimeLimit when limit is not positive).
func NewEvaluator(limit time.Duration) *Evaluator {
	if limit <= 0 {
		limit = DefaultTimeLimit
	}
	e := &Evaluator{limit: limit, programs: make(map[string]*goja.Program)}
	e.runtimes.New = func() any {
		rt := goja.New()
		rt.SetFieldNameMapper(goja.TagFieldNameMapper("json", true))
		// Taken now, before any expression could replace JSON.stringify
		// in this (pooled) runtime.
		stringify, _ := goja.AssertFunction(rt.Get("JSON").ToObject(rt).Get("stringify"))
		return &vm{rt: rt, stringify: stringify}
	}
	return e
}

// vm is a pooled runtime with the JSON.stringify it started with.
type vm struct {
	rt        *goja.Runtime
	stringify goja.Callable
}

// helpers are the parameters every program is called with, in this order,
// ahead of the scope's Vars.
var helpers = []string{"$", "taskId", "uid", "input", "output", "outputHeaders", "param", "task"}

var identifier = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

// Check compiles src and reports a syntax error, for validation.
func (e *Evaluator) Check(src string) error {
	_, err := e.program(src, nil)
	return err
}

// Eval runs the JavaScript expression src (without its braces) and returns
// its value as plain JSON data: objects become map[string]any, arrays
// []any, numbers float64, undefined and null nil.
func (e *Evaluator) Eval(src string, s *Scope) (any, error) {
	names := make([]string, 0, len(s.Vars))
	for name := range s.Vars {
		if !identifier.MatchString(name) {
			return nil, fmt.Errorf("argument %q is not a JavaScript identifier", name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	prog, err := e.program(src, names)
	if err != nil {
		return nil, err
	}
	v := e.runtimes.Get().(*vm)
	defer e.runtimes.Put(v)
	rt := v.rt

	fnValue, err := rt.RunProgram(prog)
	if err != nil {
		return nil, err
	}
	fn, ok := goja.AssertFunction(fnValue)
	if !ok {
		return nil, errors.New("expression did not compile to a function")
	}
	args := e.arguments(rt, s, names)

	timer := time.AfterFunc(e.limit, func() { rt.Interrupt(ErrTimeLimit) })
	result, err := fn(goja.Undefined(), args...)
	timer.Stop()
	rt.ClearInterrupt()
	if err != nil {
		var interrupted *goja.InterruptedError
		if errors.As(err, &interrupted) {
			return nil, fmt.Errorf("%w (%v)", ErrTimeLimit, e.limit)
		}
		var exc *goja.Exception
		if errors.As(err, &exc) {
			return nil, errors.New(exc.Value().String())
		}
		return nil, err
	}
	return v.export(result)
}

// program compiles src once per set of variable names. The source is
// wrapped in a strict-mode function so that the expression's value is the
// function's result and assignments to undeclared names fail instead of
// leaking into the pooled runtime.
func (e *Evaluator) program(src string, names []string) (*goja.Program, error) {
	params := strings.Join(append(append([]string(nil), helpers...), names...), ",")
	key := params + "\x00" + src
	e.mu.RLock()
	p := e.programs[key]
	e.mu.RUnlock()
	if p != nil {
		return p, nil
	}
	wrapped := "(function(" + params + "){\"use strict\";return (\n" + src + "\n);})"
	p, err := goja.Compile("expression", wrapped, true)
	if err != nil {
		return nil, fmt.Errorf("syntax error in %q: %w", src, err)
	}
	e.mu.Lock()
	e.programs[key] = p
	e.mu.Unlock()
	return p, nil
}

func (e *Evaluator) arguments(rt *goja.Runtime, s *Scope, names []string) []goja.Value {
	tasks := s.Tasks
	if tasks == nil {
		tasks = map[string]any{}
	}
	invocation := s.Invocation
	if invocation == nil {
		invocation = map[string]any{}
	}
	root := map[string]any{
		"Workflow":   copyData(s.Workflow),
		"Invocation": copyData(invocation),
		"Tasks":      copyData(tasks),
	}
	current := copyData(s.Current)
	lookupTask := func(call goja.FunctionCall) any {
		if len(call.Arguments) == 0 || goja.IsUndefined(call.Argument(0)) {
			return current
		}
		t, _ := root["Tasks"].(map[string]any)
		return t[call.Argument(0).String()]
	}
	field := func(task any, name string) any {
		if m, ok := task.(map[string]any); ok {
			return m[name]
		}
		return nil
	}
	vals := []goja.Value{
		rt.ToValue(root),
		rt.ToValue(s.CurrentID),
		rt.ToValue(func() string { return s.uid() }),
		rt.ToValue(func(call goja.FunctionCall) goja.Value {
			if len(call.Arguments) == 0 {
				return goja.Undefined()
			}
			key := "default"
			if len(call.Arguments) > 1 && !goja.IsUndefined(call.Argument(1)) {
				key = call.Argument(1).String()
			}
			inputs, _ := field(lookupTask(call), "Inputs").(map[string]any)
			return valueOrUndefined(rt, inputs, key)
		}),
		rt.ToValue(func(call goja.FunctionCall) goja.Value {
			return rt.ToValue(field(lookupTask(call), "Output"))
		}),
		rt.ToValue(func(call goja.FunctionCall) goja.Value {
			return rt.ToValue(field(lookupTask(call), "OutputHeaders"))
		}),
		rt.ToValue(func(call goja.FunctionCall) goja.Value {
			key := "default"
			if len(call.Arguments) > 0 && !goja.IsUndefined(call.Argument(0)) {
				key = call.Argument(0).String()
			}
			inputs, _ := root["Invocation"].(map[string]any)["Inputs"].(map[string]any)
			return valueOrUndefined(rt, inputs, key)
		}),
		rt.ToValue(func(call goja.FunctionCall) goja.Value {
			t := lookupTask(call)
			if t == nil {
				return goja.Undefined()
			}
			return rt.ToValue(t)
		}),
	}
	for _, name := range names {
		vals = append(vals, rt.ToValue(copyData(s.Vars[name])))
	}
	return vals
}

func valueOrUndefined(rt *goja.Runtime, m map[string]any, key string) goja.Value {
	v, ok := m[key]
	if !ok {
		return goja.Undefined()
	}
	return rt.ToValue(v)
}

// uid is the next value of the scope's deterministic id sequence.
func (s *Scope) uid() string {
	s.uids++
	sum := sha256.Sum256([]byte(s.Seed + "\x00" + strconv.Itoa(s.uids)))
	return hex.EncodeToString(sum[:12])
}

// copyData deep-copies plain data, so that the runtime's view of it can
// be changed by an expression without touching the caller's.
func copyData(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if x == nil {
			return nil
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = copyData(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyData(e)
		}
		return out
	default:
		return v
	}
}

// export turns a JavaScript value into plain JSON data, with the semantics
// of JSON.stringify that users expect (dates become strings, functions and
// undefined members disappear).
func (v *vm) export(val goja.Value) (any, error) {
	if val == nil || goja.IsUndefined(val) || goja.IsNull(val) {
		return nil, nil
	}
	switch x := val.Export().(type) {
	case string:
		return x, nil
	case bool:
		return x, nil
	case int64:
		return float64(x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, nil
		}
		return x, nil
	}
	text, err := v.stringify(goja.Undefined(), val)
	if err != nil {
		return nil, fmt.Errorf("the expression's value cannot be made into JSON: %w", err)
	}
	if goja.IsUndefined(text) {
		return nil, nil
	}
	var out any
	if err := json.Unmarshal([]byte(text.String()), &out); err != nil {
		return nil, fmt.Errorf("the expression's value cannot be made into JSON: %w", err)
	}
	return out, nil
}

// Truthy is JavaScript's truthiness over plain JSON data: null, false, 0,
// NaN and "" are false, everything else (objects and arrays too) is true.
func Truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case float64:
		return x != 0 && !math.IsNaN(x)
	case string:
		return x != ""
	}
	return true
}
