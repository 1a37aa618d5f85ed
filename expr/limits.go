package expr

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/itchyny/gojq"
)

// Limits bound one evaluation by the work it does and the size of what it
// builds, never by how long a busy machine takes to do it: the same
// expression on the same data passes or fails the same way on an idle
// laptop and on a loaded server, and replay reaches the same verdict.
type Limits struct {
	// Steps is the most jq instructions one evaluation may execute. It
	// stops runaway loops and recursion (`repeat(.)`, `[range(1e9)]`)
	// long before they hold much memory.
	Steps int64
	// Bytes is the longest string an expression may build with `+`, `*`
	// or string interpolation, and the most text the input of a walking
	// built-in (tojson, join...) or the result may hold.
	Bytes int
	// Items is the longest array or object an expression may build with
	// `+` or `*`, the highest array index it may assign, and the most
	// values the input of a walking built-in or the result may hold.
	Items int
	// Time is a last-resort safety net on the wall clock, generous enough
	// that load alone never trips it.
	Time time.Duration
	// Settings name where Steps, Bytes and Items are configured; a limit
	// error's message ends with the name of the limit it hit, so that
	// whoever meets it knows what to raise.
	Settings LimitSettings
}

// LimitSettings name the settings of the limits ("policy
// limits.expressionSteps"); an empty name adds nothing to the message.
type LimitSettings struct {
	Steps, Bytes, Items string
}

// DefaultLimits leave honest expressions far from every bound: mapping,
// filtering, formatting and sorting 20,000 objects takes about 1.5 million
// steps. A runaway program stops after a few seconds at most on a busy
// machine, having allocated at most about 150 MiB (`[range(1e9)]`, the
// worst found).
var DefaultLimits = Limits{
	Steps: 5_000_000,
	Bytes: 16 << 20,
	Items: 1 << 20,
	Time:  30 * time.Second,
}

// withDefaults fills unset limits from DefaultLimits.
func (l Limits) withDefaults() Limits {
	if l.Steps <= 0 {
		l.Steps = DefaultLimits.Steps
	}
	if l.Bytes <= 0 {
		l.Bytes = DefaultLimits.Bytes
	}
	if l.Items <= 0 {
		l.Items = DefaultLimits.Items
	}
	if l.Time <= 0 {
		l.Time = DefaultLimits.Time
	}
	return l
}

// ErrLimit is what an evaluation that exceeds its limits fails with
// (errors.Is); the message says which limit.
var ErrLimit = errors.New("expression limit exceeded")

type limitError struct{ msg string }

func (e *limitError) Error() string        { return e.msg }
func (e *limitError) Is(target error) bool { return target == ErrLimit }

func limitErrorf(format string, args ...any) error {
	return &limitError{msg: fmt.Sprintf(format, args...)}
}

// exceeded is the error of a limit whose setting is named setting.
func exceeded(setting, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if setting != "" {
		msg += " (" + setting + ")"
	}
	return &limitError{msg: msg}
}

// budget is the context an evaluation runs with. gojq asks the context
// whether it is done before every instruction it executes, so counting
// those questions counts the work; past the budget the answer is yes.
// Underneath, the wall-clock safety net.
type budget struct {
	context.Context
	done <-chan struct{} // the safety net's, fetched once: Done is hot
	left int64
	over bool
}

func newBudget(safety context.Context, steps int64) *budget {
	return &budget{Context: safety, done: safety.Done(), left: steps}
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (b *budget) Done() <-chan struct{} {
	b.left--
	if b.left < 0 {
		b.over = true
		return closed
	}
	return b.done
}

func (b *budget) Err() error {
	if b.over {
		return context.Canceled
	}
	return b.Context.Err()
}

// The size-checked operators. An expression's `+` and `*` (with `+=`,
// `*=` and string interpolation, which gojq builds from them) are
// rewritten into calls of these before compiling, so that a value that
// doubles with every step (`"a" | until(length > 1e9; . + .)`) is stopped
// before it is allocated rather than after.
const (
	addFunc = "_baton_add"
	mulFunc = "_baton_mul"
	// sizeFunc passes its input on once it is within the size limits.
	sizeFunc = "_baton_size"
	// pathFunc passes a path on once its array indexes are within Items.
	pathFunc = "_baton_path"
)

// arithmetic evaluates the operator itself once the sizes are checked, so
// that results and type errors are exactly gojq's.
var arithmetic = func() map[string]*gojq.Code {
	out := map[string]*gojq.Code{}
	for name, src := range map[string]string{addFunc: ".[0] + .[1]", mulFunc: ".[0] * .[1]"} {
		q, err := gojq.Parse(src)
		if err != nil {
			panic(err)
		}
		c, err := gojq.Compile(q)
		if err != nil {
			panic(err)
		}
		out[name] = c
	}
	return out
}()

// apply computes l op r, the common cases directly and the rest by gojq.
func apply(name string, l, r any) any {
	switch x := l.(type) {
	case float64:
		if y, ok := r.(float64); ok {
			if name == addFunc {
				return x + y
			}
			return x * y
		}
	case string:
		if y, ok := r.(string); ok && name == addFunc {
			return x + y
		}
	}
	v, _ := arithmetic[name].Run([]any{l, r}).Next()
	return v
}

// compilerOptions define the size-checked operators with these limits.
func (l Limits) compilerOptions() []gojq.CompilerOption {
	return []gojq.CompilerOption{
		gojq.WithFunction(addFunc, 2, 2, func(_ any, args []any) any {
			if err := l.checkAdd(args[0], args[1]); err != nil {
				return err
			}
			return apply(addFunc, args[0], args[1])
		}),
		gojq.WithFunction(mulFunc, 2, 2, func(_ any, args []any) any {
			if err := l.checkMul(args[0], args[1]); err != nil {
				return err
			}
			return apply(mulFunc, args[0], args[1])
		}),
		gojq.WithFunction(sizeFunc, 0, 0, func(v any, _ []any) any {
			if err := l.checkSize(v, "the input of a built-in"); err != nil {
				return err
			}
			return v
		}),
		gojq.WithFunction(pathFunc, 0, 0, func(v any, _ []any) any {
			if path, ok := v.([]any); ok {
				for _, step := range path {
					if f, ok := number(step); ok && f > float64(l.Items) {
						return exceeded(l.Settings.Items, "an array index of %v is past the limit of %d items", f, l.Items)
					}
				}
			}
			return v
		}),
	}
}

func (l Limits) checkAdd(a, b any) error {
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok && len(x)+len(y) > l.Bytes {
			return exceeded(l.Settings.Bytes, "a string of %d bytes is longer than the limit of %d", len(x)+len(y), l.Bytes)
		}
	case []any:
		if y, ok := b.([]any); ok && len(x)+len(y) > l.Items {
			return exceeded(l.Settings.Items, "an array of %d items is longer than the limit of %d", len(x)+len(y), l.Items)
		}
	case map[string]any:
		if y, ok := b.(map[string]any); ok && len(x)+len(y) > l.Items {
			return exceeded(l.Settings.Items, "an object of up to %d keys is larger than the limit of %d", len(x)+len(y), l.Items)
		}
	}
	return nil
}

func (l Limits) checkMul(a, b any) error {
	s, n := a, b
	if _, ok := b.(string); ok {
		s, n = b, a
	}
	if str, ok := s.(string); ok {
		if f, ok := number(n); ok && f > 0 && float64(len(str))*f > float64(l.Bytes) {
			return exceeded(l.Settings.Bytes, "repeating a string of %d bytes %v times is longer than the limit of %d bytes", len(str), f, l.Bytes)
		}
		return nil
	}
	// Multiplying big integers adds their lengths: squaring doubles one.
	if bits := bitLen(a) + bitLen(b); bits > maxIntegerBits {
		return limitErrorf("an integer of %d bits is larger than the limit of %d bits", bits, maxIntegerBits)
	}
	if x, ok := a.(map[string]any); ok {
		if y, ok := b.(map[string]any); ok && len(x)+len(y) > l.Items {
			return exceeded(l.Settings.Items, "an object of up to %d keys is larger than the limit of %d", len(x)+len(y), l.Items)
		}
	}
	return nil
}

// maxIntegerBits bounds the integers (beyond 64 bits, gojq keeps them
// exact) that multiplication may build: far more digits than any data
// needs, far fewer than make multiplying them slow.
const maxIntegerBits = 1 << 16

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case float64:
		return x, true
	case *big.Int:
		f, _ := new(big.Float).SetInt(x).Float64()
		return f, true
	}
	return 0, false
}

func bitLen(v any) int {
	if x, ok := v.(*big.Int); ok {
		return x.BitLen()
	}
	return 64
}

// checkResult bounds what an evaluation hands back: a value built by
// sharing one part many times (`reduce range(40) as $i (0; [., .])`) is
// cheap to hold but would explode once stored or sent.
func (l Limits) checkResult(v any) error { return l.checkSize(v, "the result") }

// checkSize walks v as far as the limits allow, counting every value and
// every byte of text as often as it appears.
func (l Limits) checkSize(v any, what string) error {
	items, bytes := 0, 0
	var walk func(v any) error
	walk = func(v any) error {
		items++
		if items > l.Items {
			return exceeded(l.Settings.Items, "%s holds more than %d values", what, l.Items)
		}
		switch x := v.(type) {
		case string:
			bytes += len(x)
		case []any:
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
		case map[string]any:
			for k, e := range x {
				bytes += len(k)
				if err := walk(e); err != nil {
					return err
				}
			}
		}
		if bytes > l.Bytes {
			return exceeded(l.Settings.Bytes, "%s holds more than %d bytes of text", what, l.Bytes)
		}
		return nil
	}
	return walk(v)
}
