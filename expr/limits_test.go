package expr

import (
	"context"
	"errors"
	"reflect"
	"runtime"
	"sync"
	"testing"

	"github.com/itchyny/gojq"
)

// TestBombsAreStopped: programs that would run forever or allocate
// without bound fail with ErrLimit, having allocated a bounded amount.
func TestBombsAreStopped(t *testing.T) {
	bombs := []string{
		`[range(1e9)]`,
		`"a" | until(length > 1e9; . + .)`,
		`"a" | until(length > 1e9; "\(.)\(.)")`,
		`"a" | until(length > 1e9; . += .)`,
		`"a" * 1e9`,
		`1e9 * "ab"`,
		`[1] | until(length > 1e9; . + .)`,
		`{a: 1} | until(length > 1e9; . + with_entries(.key += "x"))`,
		`reduce range(64) as $i (2; . * .)`,
		`reduce range(40) as $i (0; [., .])`,
		`[repeat(.)]`,
		`def f: f; f`,
		`last(range(1e12))`,
		`[limit(1e9; repeat("x"))]`,
		`[range(1e9)] | length`,
		`[.[]?, range(1e9)] | add`,
		`[range(10)] | until(length > 1e9; [., .] | add)`,
		`"ab" | until(length > 1e9; [., .] | join(""))`,
		`[1] | until(length > 1e9; add(., .))`,
		`reduce range(40) as $i (0; [., .]) | tojson | length`,
		`reduce range(40) as $i (0; [., .]) | tostring | length`,
		`reduce range(40) as $i (0; [., .]) | @base64 | length`,
		`reduce range(40) as $i (0; [., .]) | flatten | length`,
		`reduce range(40) as $i (0; [., .]) | . == .`,
		`reduce range(40) as $i (0; [., .]) | [.] | contains([.[0]])`,
		`[] | .[100000000] = 1`,
		`[] | setpath([100000000]; 1)`,
		`{} | .a[100000000] |= 1`,
	}
	// A fifth of the default work budget keeps the test quick under the
	// race detector; the other limits are the defaults.
	e := NewEvaluatorWithLimits(Limits{Steps: DefaultLimits.Steps / 5})
	for _, src := range bombs {
		t.Run(src, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := e.Eval(src, nil, nil)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrLimit) {
				t.Fatalf("error %v, want a limit error", err)
			}
			// The bombs would need gigabytes; stopped, they take at most
			// a few hundred megabytes of allocation in all.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 512<<20 {
				t.Errorf("allocated %d MiB before stopping", alloc>>20)
			}
		})
	}
}

// TestHonestExpressionUnderLoad: the bound is work, not time, so an honest
// expression passes however busy the machine is.
func TestHonestExpressionUnderLoad(t *testing.T) {
	stop := make(chan struct{})
	var hogs sync.WaitGroup
	for range 2 * runtime.GOMAXPROCS(0) {
		hogs.Add(1)
		go func() {
			defer hogs.Done()
			x := 0
			for {
				select {
				case <-stop:
					return
				default:
					for i := range 100_000 {
						x += i
					}
				}
			}
		}()
	}
	defer func() { close(stop); hogs.Wait() }()
	e := NewEvaluator()
	// About 150,000 steps: a fair share of the budget, small enough that
	// the race detector on a loaded machine stays far from the safety net.
	input := make([]any, 2_000)
	for i := range input {
		input[i] = map[string]any{"id": float64(i), "name": "item", "tags": []any{"a", "b"}}
	}
	v, err := e.Eval(`map(select(.id % 2 == 0) | {id, label: "\(.name)-\(.id)", n: (.tags | length)}) | sort_by(-.id) | length`, input, nil)
	if err != nil || v != 1_000 {
		t.Fatalf("got %v, %v; want 1000", v, err)
	}
}

// TestStepLimitIsDeterministic: the same program on the same data passes
// or fails the same way, and the limit is configurable.
func TestStepLimitIsDeterministic(t *testing.T) {
	small := NewEvaluatorWithLimits(Limits{Steps: 5_000})
	large := NewEvaluatorWithLimits(Limits{Steps: 500_000})
	for range 3 {
		if _, err := small.Eval(`[range(10000)] | length`, nil, nil); !errors.Is(err, ErrLimit) {
			t.Fatalf("small budget: %v", err)
		}
		if v, err := large.Eval(`[range(10000)] | length`, nil, nil); err != nil || v != 10000 {
			t.Fatalf("large budget: %v, %v", v, err)
		}
	}
	if got := NewEvaluatorWithLimits(Limits{Steps: 7}).Limits(); got.Steps != 7 || got.Bytes != DefaultLimits.Bytes || got.Time != DefaultLimits.Time {
		t.Errorf("limits %+v: unset fields must take the defaults", got)
	}
	bytes := NewEvaluatorWithLimits(Limits{Bytes: 10})
	if _, err := bytes.Eval(`"abcdef" + "ghijk"`, nil, nil); !errors.Is(err, ErrLimit) {
		t.Errorf("an 11-byte string under a 10-byte limit: %v", err)
	}
	if _, err := bytes.Eval(`{text: "abcdefghijk"}`, nil, nil); !errors.Is(err, ErrLimit) {
		t.Errorf("an 11-byte result under a 10-byte limit: %v", err)
	}
}

// guardedSamples exercise every rewritten form next to what it could be
// confused with.
var guardedSamples = []string{
	`1 + 2`, `. + 1`, `"a" + "b"`, `[1] + [2]`, `{a: 1} + {b: 2}`, `null + 1`, `1 + null`,
	`"ab" * 3`, `3 * "ab"`, `"ab" * 0`, `{a: {b: 1}} * {a: {c: 2}}`, `2 * 3.5`,
	`9223372036854775807 + 1`, `100000000000000000000 * 100000000000000000000`,
	`"x\(.)y\(. + 1)z"`, `@base64 "x\(.)"`, `@json "v=\([., .])"`, `"\("in\(.)ner")"`,
	`{a: 2} | .a += 3`, `{a: 2} | .a *= 3`, `{a: [1]} | .a += [2]`, `[1, 2] | .[] += 10`,
	`[1, 2] | .[] += (10, 20)`, `{} | .x += 1`, `. as $x | [$x] | .[0] += $x`,
	`reduce range(5) as $i (0; . + $i)`, `[foreach range(4) as $i (0; . + $i; . * 2)]`,
	`def f(x): x + 1; f(. + 1)`, `[.[]? + 1]`, `(1, 2) + (10, 20)`, `[(1, 2) + (10, 20)]`,
	`1 + "a"`, `{} * 2`, `try (1 + "a") catch .`, `if . + 1 > 1 then "big" else "small" end`,
	`{(. + 1 | tostring): 1}`, `.[0 + 0]?`, `[range(3)] | .[1 + 0:]`, `1 + 2 * 3`, `-(. + 1)`,
	`label $out | 1 + 1 | ., break $out`, `. as [$a] ?// $a | $a + 1`, `"\(1 + 1)" + "x"`,
	`.a = 1`, `.a |= . + 1`, `.[0] = 5`, `.a -= 1`, `.a //= 3`, `.[1:] = ["x"]`, `.. |= .`, `(.a, .b) = 1`,
	`[1, 2] | .[] |= empty`, `setpath(["a"]; 1)`, `try (.[] = 1) catch .`, `.a.b = (1, 2)`,
	`tojson`, `tostring`, `[[1], [2, [3]]] | flatten`, `[[1], [2, [3]]] | flatten(1)`, `[1, 2] | add`,
	`["a", "b"] | join("-")`, `[3, 1, 2] | sort`, `[1, 1, 2] | unique`, `"foobar" | contains("bar")`,
	`"bar" | inside("foobar")`, `"a,b,a" | indices("a")`, `@base64`, `@json`, `@csv "\([1, "a"])"`,
	`add(.[]?)`, `add(1, 2)`, `. == 1`, `1 < 2`, `[1] != [1]`, `tojson[0:1]`, `[1, [2]] | flatten[0]`,
}

// evalPlain runs src with gojq as it is, without the rewrite.
func evalPlain(src string, input any) (any, bool) {
	q, err := gojq.Parse(src)
	if err != nil {
		return nil, false
	}
	code, err := gojq.Compile(q)
	if err != nil {
		return nil, false
	}
	b := newBudget(context.Background(), 100_000)
	v, ok := code.RunWithContext(b, input).Next()
	if b.over {
		return nil, false
	}
	if !ok {
		return nil, true
	}
	if err, isErr := v.(error); isErr {
		return err.Error(), true
	}
	return v, true
}

func checkSameAsGojq(t *testing.T, e *Evaluator, src string, input any) {
	want, ok := evalPlain(src, input)
	if !ok {
		return
	}
	got, err := e.Eval(src, input, nil)
	if errors.Is(err, ErrLimit) {
		return
	}
	if err != nil {
		got = err.Error()
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s on %v: guarded %#v, gojq %#v", src, input, got, want)
	}
}

func TestGuardedOperatorsMatchGojq(t *testing.T) {
	e := NewEvaluatorWithLimits(Limits{Steps: 100_000})
	for _, src := range guardedSamples {
		for _, input := range []any{1.0, "s", []any{1.0, 2.0}, map[string]any{"a": 1.0}, nil} {
			checkSameAsGojq(t, e, src, input)
		}
	}
}

func FuzzGuardedOperatorsMatchGojq(f *testing.F) {
	for _, s := range guardedSamples {
		f.Add(s)
	}
	e := NewEvaluatorWithLimits(Limits{Steps: 100_000, Bytes: 1 << 16, Items: 1 << 12})
	f.Fuzz(func(t *testing.T, src string) {
		checkSameAsGojq(t, e, src, map[string]any{"a": []any{1.0, "x"}})
	})
}
