package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/problem"
)

// fakeFunctions records the calls it receives and answers like a Manager
// would: cold for the first call of a function, warm afterwards.
type fakeFunctions struct {
	mu    sync.Mutex
	calls []fakeCall
	fail  map[string]error
}

type fakeCall struct {
	invocation string
	call       core.Call
}

func (f *fakeFunctions) Call(_ context.Context, _, invocation string, c *core.Call) (function.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fakeCall{invocation: invocation, call: *c})
	if err := f.fail[c.Function]; err != nil {
		return function.Result{}, err
	}
	cold := len(f.calls) == 1
	res := function.Result{
		Output:   map[string]any{"echo": c.Args, "input": c.Input},
		Cold:     cold,
		Duration: 3 * time.Millisecond,
		Instance: "hello@1-1",
		Version:  "1",
	}
	if cold {
		res.ColdStart = function.Phases{Compile: time.Millisecond, Instantiate: 2 * time.Millisecond, Init: 500 * time.Microsecond}
		res.StartWait = 3600 * time.Microsecond
	}
	return res, nil
}

const functionCalls = `
document: {dsl: '1.0.0', namespace: default, name: fncalls, version: '1.0.0'}
do:
  - first:
      call: hello
      with:
        name: ${ .name }
      output:
        as: ${ .echo }
  - second:
      call: hello
  - flaky:
      try:
        - boom:
            call: broken
      catch:
        errors:
          with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout}
        as: failure
        do:
          - recover:
              set:
                recovered: ${ $failure.type }
`

func TestFunctionExecutorCallsRegisteredFunctions(t *testing.T) {
	ctx := context.Background()
	fns := &fakeFunctions{fail: map[string]error{"broken": problem.Timeout("function broken did not answer within 1s")}}
	e := newEngine(t, openStore(t, t.TempDir()), func(o *engine.Options) {
		o.Executors = map[string]engine.Executor{"*": engine.FunctionExecutor(fns)}
	})
	defer e.Close()
	if _, err := e.ApplyWorkflow(ctx, "fncalls.yaml", []byte(functionCalls)); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "default", "fncalls", "", map[string]any{"name": "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	done, err := e.Wait(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != core.StatusCompleted {
		t.Fatalf("status %s, error %v", done.Status, done.Error)
	}
	if got := done.Output.(map[string]any)["recovered"]; got != problem.TypeTimeout {
		t.Fatalf("the function's timeout did not reach the workflow's catch: output %v", done.Output)
	}

	fns.mu.Lock()
	calls := fns.calls
	fns.mu.Unlock()
	if len(calls) != 3 {
		t.Fatalf("got %d calls, want 3", len(calls))
	}
	if c := calls[0]; c.invocation != inv.ID || c.call.Function != "hello" || c.call.Args["name"] != "Ada" {
		t.Fatalf("first call %+v: want function hello with {name: Ada} for invocation %s", c, inv.ID)
	}
	// A call without `with` gets the task's input: the first task's output.
	if c := calls[1]; len(c.call.Args) != 0 || c.call.Input.(map[string]any)["name"] != "Ada" {
		t.Fatalf("second call %+v: want no arguments and the previous output as input", c)
	}

	hist, err := e.History(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	var infos []map[string]any
	for _, ev := range hist {
		if ev.Type == core.TaskCompleted && ev.Info != nil {
			infos = append(infos, ev.Info)
		}
	}
	if len(infos) != 2 {
		t.Fatalf("want Info on both completed calls, history %+v", hist)
	}
	first, second := infos[0], infos[1]
	if first["cold"] != true || first["coldStartMs"] != 3.5 || first["startWaitMs"] != 3.6 || first["version"] != "1" {
		t.Fatalf("first call's Info %v: want a 3.5 ms cold start of version 1, waited for 3.6 ms", first)
	}
	phases, _ := first["coldStart"].(map[string]any)
	if phases["compileMs"] != 1.0 || phases["instantiateMs"] != 2.0 || phases["initMs"] != 0.5 {
		t.Fatalf("cold start phases %v", phases)
	}
	if _, ok := first["durationMs"].(float64); !ok {
		t.Fatalf("first call's Info %v: want the engine's durationMs", first)
	}
	if second["cold"] != false || second["coldStart"] != nil || second["startWaitMs"] != nil {
		t.Fatalf("second call's Info %v: want a warm call", second)
	}
}
