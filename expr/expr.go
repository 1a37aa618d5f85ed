// Package expr evaluates the DSL's runtime expressions: jq programs (through
// gojq) over JSON data, with the DSL's arguments ($context, $input, $task...)
// bound as jq variables.
//
// Compiled programs are cached, so the hot path of a workflow evaluates
// expressions without parsing them again.
package expr

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"

	"github.com/itchyny/gojq"
)

// Vars are the variables an expression sees, named without the leading '$'.
type Vars map[string]any

// Unwrap returns the jq text inside a `${ ... }` string and true, or the
// string itself and false when it is not wrapped.
func Unwrap(s string) (string, bool) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "${") && strings.HasSuffix(t, "}") {
		return strings.TrimSpace(t[2 : len(t)-1]), true
	}
	return s, false
}

// IsExpr reports whether s is a `${ ... }` runtime expression.
func IsExpr(s string) bool {
	_, ok := Unwrap(s)
	return ok
}

// Check parses a jq program and reports a syntax error, for validation.
func Check(src string) error {
	_, err := gojq.Parse(src)
	return err
}

// Evaluator compiles and caches jq programs. It is safe for concurrent use.
type Evaluator struct {
	limits Limits
	mu     sync.RWMutex
	cache  map[cacheKey]*gojq.Code
}

type cacheKey struct {
	src  string
	vars string
}

// NewEvaluator returns an empty evaluator with DefaultLimits.
func NewEvaluator() *Evaluator { return NewEvaluatorWithLimits(DefaultLimits) }

// NewEvaluatorWithLimits returns an empty evaluator whose evaluations are
// bounded by limits; zero fields take DefaultLimits' values.
func NewEvaluatorWithLimits(limits Limits) *Evaluator {
	return &Evaluator{limits: limits.withDefaults(), cache: make(map[cacheKey]*gojq.Code)}
}

// Limits returns the evaluator's limits.
func (e *Evaluator) Limits() Limits { return e.limits }

// Eval runs the jq program src on input. A program that yields no value
// yields nil; one that yields several yields the first, as the DSL's
// reference runtimes do.
func (e *Evaluator) Eval(src string, input any, vars Vars) (any, error) {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	code, err := e.compile(src, names)
	if err != nil {
		return nil, err
	}
	values := make([]any, len(names))
	for i, n := range names {
		values[i] = vars[n]
	}
	safety, cancel := context.WithTimeout(context.Background(), e.limits.Time)
	defer cancel()
	b := newBudget(safety, e.limits.Steps)
	iter := code.RunWithContext(b, normalize(input), values...)
	v, ok := iter.Next()
	if !ok {
		return nil, nil
	}
	if err, isErr := v.(error); isErr {
		var halt *gojq.HaltError
		if errors.As(err, &halt) && halt.Value() == nil {
			return nil, nil
		}
		switch {
		case b.over:
			return nil, exceeded(e.limits.Settings.Steps, "the expression did more than %d steps of work", e.limits.Steps)
		case errors.Is(err, context.DeadlineExceeded):
			return nil, limitErrorf("the expression ran longer than the %v safety limit", e.limits.Time)
		}
		return nil, err
	}
	if err := e.limits.checkResult(v); err != nil {
		return nil, err
	}
	return v, nil
}

func (e *Evaluator) compile(src string, names []string) (*gojq.Code, error) {
	key := cacheKey{src: src, vars: strings.Join(names, ",")}
	e.mu.RLock()
	code := e.cache[key]
	e.mu.RUnlock()
	if code != nil {
		return code, nil
	}
	q, err := gojq.Parse(src)
	if err != nil {
		return nil, err
	}
	guardQuery(q)
	dollar := make([]string, len(names))
	for i, n := range names {
		dollar[i] = "$" + n
	}
	code, err = gojq.Compile(q, append(e.limits.compilerOptions(), gojq.WithVariables(dollar))...)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.cache[key] = code
	e.mu.Unlock()
	return code, nil
}

// EvalString evaluates a field that is a runtime expression by definition
// (`if`, `when`, `for.in`, `input.from`...): `${ }` around it is optional.
func (e *Evaluator) EvalString(s string, input any, vars Vars) (any, error) {
	src, _ := Unwrap(s)
	return e.Eval(src, input, vars)
}

// EvalValue evaluates data with expressions inside: every string that is a
// `${ }` expression is replaced by its value, everything else is kept. A
// string at the top level that is not wrapped is evaluated as jq when bare is
// true (output.as, export.as and input.from accept bare jq).
func (e *Evaluator) EvalValue(v any, input any, vars Vars, bare bool) (any, error) {
	if s, ok := v.(string); ok && bare {
		return e.EvalString(s, input, vars)
	}
	return e.evalDeep(v, input, vars)
}

func (e *Evaluator) evalDeep(v any, input any, vars Vars) (any, error) {
	switch x := v.(type) {
	case string:
		if src, ok := Unwrap(x); ok {
			return e.Eval(src, input, vars)
		}
		return x, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			r, err := e.evalDeep(val, input, vars)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			r, err := e.evalDeep(val, input, vars)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	default:
		return v, nil
	}
}

// Truthy applies jq's notion of truth: everything but false and null is true.
func Truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	default:
		return true
	}
}

// normalize turns Go values that gojq does not accept (typed maps and slices
// from callers) into plain JSON data. Plain data passes through untouched.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return m
	case []string:
		a := make([]any, len(x))
		for i, s := range x {
			a[i] = s
		}
		return a
	case int64:
		return int(x)
	case int32:
		return int(x)
	case float32:
		return float64(x)
	default:
		return v
	}
}
