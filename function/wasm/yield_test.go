package wasm

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/problem"
)

// Calls that yield the CPU run on another thread than their caller's:
// the instance they run on, its state and its timeout are the same as for
// any call.
func TestYieldingCallsBehaveAsAnyCall(t *testing.T) {
	m := newManager(t, newRuntime(t, ""),
		&function.Spec{Name: "guest", Artifact: built(t, guestFn)},
		&function.Spec{Name: "loop", Artifact: built(t, loopFn), Limits: function.Limits{Timeout: function.Duration(300 * time.Millisecond)}},
		&function.Spec{Name: "hello-wasi", Artifact: built(t, helloWASI)})
	low := function.WithLowPriority(context.Background())
	for i, ctx := range []context.Context{context.Background(), low, low, context.Background()} {
		res, err := m.Invoke(ctx, "guest", map[string]any{"op": "echo", "value": "x"})
		if err != nil {
			t.Fatal(err)
		}
		// One instance serves all four: its state counts every call.
		if out := res.Output.(map[string]any); out["calls"] != float64(i+1) || out["value"] != "x" {
			t.Errorf("call %d: output %v", i+1, out)
		}
	}
	res, err := m.Invoke(low, "hello-wasi", map[string]string{"name": "Grace"})
	if err != nil || res.Output.(map[string]any)["greeting"] != "Hello, Grace!" {
		t.Errorf("a command module's yielding call: %v %v", res.Output, err)
	}
	if _, err := m.Invoke(low, "loop", map[string]int{"iterations": 1}); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	_, err = m.Invoke(low, "loop", map[string]int{})
	wantProblem(t, err, problem.TypeTimeout, "300ms")
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("an endless yielding call returned after %s", took)
	}
}

// BenchmarkYieldingCalls is the throughput of CPU-bound calls from as
// many callers as CPUs, computed on the caller's goroutine or handed to
// the yielding threads: what the hand-off and the lower priority cost
// when nothing else runs.
func BenchmarkYieldingCalls(b *testing.B) {
	m := newManager(b, newRuntime(b, ""), &function.Spec{Name: "loop", Artifact: built(b, loopFn),
		Limits: function.Limits{MaxInstances: 2 * runtime.GOMAXPROCS(0)}})
	input := map[string]int{"iterations": 100000}
	for _, bc := range []struct {
		name string
		ctx  context.Context
	}{{"ordinary", context.Background()}, {"yielding", function.WithLowPriority(context.Background())}} {
		b.Run(bc.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := m.Invoke(bc.ctx, "loop", input); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
