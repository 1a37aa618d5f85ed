package js_test

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/expr/js"
)

func scope() *js.Scope {
	return &js.Scope{
		Workflow:   map[string]any{"Id": "wf-1"},
		Invocation: map[string]any{"Id": "inv-1", "Inputs": map[string]any{"default": "Hello", "headers": map[string]any{"Foo": "bar"}}},
		Tasks: map[string]any{
			"other": map[string]any{"Inputs": map[string]any{"default": 7.0, "k": "v"}, "Output": map[string]any{"n": 2.0}, "OutputHeaders": map[string]any{"Date": "today"}, "Status": "SUCCEEDED"},
		},
		Current:   map[string]any{"Inputs": map[string]any{"_item": 3.0}, "Output": "mine"},
		CurrentID: "self",
		Seed:      "inv-1/tasks/self",
	}
}

func TestEval(t *testing.T) {
	e := js.NewEvaluator(0)
	rows := []struct {
		src  string
		want any
	}{
		{"$.Invocation.Inputs.default", "Hello"},
		{"param()", "Hello"},
		{"param('headers').Foo || 'bar'", "bar"},
		{"param('missing') === undefined", true},
		{"$.Workflow.Id", "wf-1"},
		{"input('other')", 7.0},
		{"input('other', 'k')", "v"},
		{"output('other').n * 21", 42.0},
		{"output()", "mine"},
		{"outputHeaders('other').Date", "today"},
		{"task().Inputs._item * 10", 30.0},
		{"task('other').Status", "SUCCEEDED"},
		{"taskId", "self"},
		{"$.Tasks.other.Output", map[string]any{"n": 2.0}},
		{"[1, 'a', null, {x: [true]}]", []any{1.0, "a", nil, map[string]any{"x": []any{true}}}},
		{"undefined", nil},
		{"' padded '.trim().length", 6.0},
		{"({a: 1, b: function(){}})", map[string]any{"a": 1.0}},
	}
	for _, r := range rows {
		got, err := e.Eval(r.src, scope())
		if err != nil {
			t.Errorf("%s: %v", r.src, err)
			continue
		}
		if !reflect.DeepEqual(got, r.want) {
			t.Errorf("%s = %#v, want %#v", r.src, got, r.want)
		}
	}
}

func TestArgsAreVariables(t *testing.T) {
	e := js.NewEvaluator(0)
	s := scope()
	s.Vars = map[string]any{"a": 42.0, "b": 10.0}
	got, err := e.Eval("a ^ b", s)
	if err != nil || got != 32.0 {
		t.Fatalf("a ^ b = %v, %v", got, err)
	}
	s.Vars = map[string]any{"not-an-identifier": 1.0}
	if _, err := e.Eval("1", s); err == nil {
		t.Error("an argument that is no identifier was accepted")
	}
}

func TestUIDIsDeterministic(t *testing.T) {
	e := js.NewEvaluator(0)
	first, err := e.Eval("[uid(), uid()]", scope())
	if err != nil {
		t.Fatal(err)
	}
	again, _ := e.Eval("[uid(), uid()]", scope())
	ids := first.([]any)
	if ids[0] == ids[1] {
		t.Errorf("two uid() calls gave the same id %v", ids[0])
	}
	if !reflect.DeepEqual(first, again) {
		t.Errorf("uid() is not reproducible: %v then %v", first, again)
	}
	other := scope()
	other.Seed = "inv-2/tasks/self"
	third, _ := e.Eval("uid()", other)
	if third == ids[0] {
		t.Error("uid() ignores its seed")
	}
}

func TestExpressionsCannotChangeTheScope(t *testing.T) {
	e := js.NewEvaluator(0)
	s := scope()
	if _, err := e.Eval("($.Tasks.other.Output.n = 99, task().Inputs._item = 0)", s); err != nil {
		t.Fatal(err)
	}
	if s.Tasks["other"].(map[string]any)["Output"].(map[string]any)["n"] != 2.0 || s.Current["Inputs"].(map[string]any)["_item"] != 3.0 {
		t.Error("an expression changed the caller's data")
	}
	// Strict mode: an undeclared assignment fails instead of leaving a
	// global behind in the pooled runtime.
	if _, err := e.Eval("(leak = 1)", s); err == nil {
		t.Error("assignment to an undeclared variable succeeded")
	}
	if got, _ := e.Eval("typeof leak", s); got != "undefined" {
		t.Errorf("a global leaked: typeof leak = %v", got)
	}
}

func TestTimeLimit(t *testing.T) {
	e := js.NewEvaluator(50 * time.Millisecond)
	began := time.Now()
	_, err := e.Eval("(function(){ for(;;){} })()", scope())
	if !errors.Is(err, js.ErrTimeLimit) {
		t.Fatalf("err %v, want ErrTimeLimit", err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("interrupted after %v", took)
	}
	// The runtime is usable again afterwards.
	if got, err := e.Eval("1 + 1", scope()); err != nil || got != 2.0 {
		t.Errorf("after an interrupt: %v, %v", got, err)
	}
}

func TestErrors(t *testing.T) {
	e := js.NewEvaluator(0)
	if _, err := e.Eval("nothing.here", scope()); err == nil {
		t.Error("a ReferenceError was not reported")
	}
	if err := e.Check("1 +"); err == nil {
		t.Error("a syntax error was not reported")
	}
}

func TestConcurrentUse(t *testing.T) {
	e := js.NewEvaluator(0)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := scope()
			s.Vars = map[string]any{"i": float64(i)}
			for range 50 {
				got, err := e.Eval("i * 2 + output('other').n", s)
				if err != nil || got != float64(i*2+2) {
					t.Errorf("goroutine %d: %v, %v", i, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestUnwrapAndTruthy(t *testing.T) {
	if src, ok := js.Unwrap("  { a + 1 } "); !ok || src != "a + 1" {
		t.Errorf("Unwrap = %q, %v", src, ok)
	}
	if _, ok := js.Unwrap("plain"); ok {
		t.Error("plain text unwrapped")
	}
	for v, want := range map[any]bool{nil: false, false: false, 0.0: false, "": false, "x": true, 1.0: true, true: true} {
		if js.Truthy(v) != want {
			t.Errorf("Truthy(%#v) != %v", v, want)
		}
	}
	if !js.Truthy(map[string]any{}) || !js.Truthy([]any{}) {
		t.Error("objects and arrays are truthy in JavaScript")
	}
}
