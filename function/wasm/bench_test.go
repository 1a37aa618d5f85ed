package wasm

import (
	"context"
	"encoding/json"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/batonflow/baton/function"
)

// BenchmarkColdStart measures each phase of a cold start of the Go SDK
// example: compiling without and with the disk cache, instantiating, and
// the guest's initialisation (the Go runtime and init functions).
func BenchmarkColdStart(b *testing.B) {
	spec := &function.Spec{Name: "hello", Version: "1", Runtime: function.KindWasm, Artifact: built(b, helloGo)}
	ctx := context.Background()
	start := func(b *testing.B, rt *Runtime) function.Phases {
		inst, phases, err := rt.Start(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		inst.Close(ctx)
		return phases
	}
	report := func(b *testing.B, total function.Phases, n int) {
		b.ReportMetric(float64(total.Compile.Microseconds())/1000/float64(n), "compile-ms/op")
		b.ReportMetric(float64(total.Instantiate.Microseconds())/1000/float64(n), "instantiate-ms/op")
		b.ReportMetric(float64(total.Init.Microseconds())/1000/float64(n), "init-ms/op")
	}
	b.Run("compile-empty-cache", func(b *testing.B) {
		var total function.Phases
		n := 0
		for b.Loop() {
			rt, err := New(Options{CacheDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			p := start(b, rt)
			rt.Close(ctx)
			total.Compile += p.Compile
			n++
		}
		report(b, total, n)
	})
	b.Run("compile-disk-cache", func(b *testing.B) {
		cache := b.TempDir()
		warm, err := New(Options{CacheDir: cache})
		if err != nil {
			b.Fatal(err)
		}
		start(b, warm)
		warm.Close(ctx)
		var total function.Phases
		n := 0
		for b.Loop() {
			rt, err := New(Options{CacheDir: cache})
			if err != nil {
				b.Fatal(err)
			}
			p := start(b, rt)
			rt.Close(ctx)
			total = add(total, p)
			n++
		}
		report(b, total, n)
		b.ReportMetric(float64(total.Total().Microseconds())/1000/float64(n), "cold-start-ms/op")
	})
	// The first start after Precompile: compiling is a lookup.
	b.Run("after-precompile", func(b *testing.B) {
		var total function.Phases
		n := 0
		for b.Loop() {
			rt, err := New(Options{})
			if err != nil {
				b.Fatal(err)
			}
			if err := rt.Precompile(ctx, spec); err != nil {
				b.Fatal(err)
			}
			total = add(total, start(b, rt))
			rt.Close(ctx)
			n++
		}
		report(b, total, n)
	})
	// Instantiation and init, with the linear memory of the last instance
	// recycled (the default) and with a fresh one every time.
	for _, mem := range []struct {
		name     string
		recycled int64
	}{{"instantiate-and-init", 0}, {"instantiate-and-init-fresh-memory", -1}} {
		b.Run(mem.name, func(b *testing.B) {
			rt, err := New(Options{RecycledMemory: mem.recycled})
			if err != nil {
				b.Fatal(err)
			}
			defer rt.Close(ctx)
			start(b, rt) // compile once
			var total function.Phases
			n := 0
			for b.Loop() {
				total = add(total, start(b, rt))
				n++
			}
			report(b, total, n)
		})
	}
}

// BenchmarkColdStartSpread measures how much a start's duration varies
// with the idle time before it: back to back, and 5 ms and 20 ms after the
// last (the gap is not timed). A prepare is aimed by the expected start, so
// the spread is what its margin must cover; on an idle virtual machine a
// start after a pause is slower and far less steady than one right after
// another (docs/prewarming.md, "the fifth quiet run").
func BenchmarkColdStartSpread(b *testing.B) {
	spec := &function.Spec{Name: "hello", Version: "1", Runtime: function.KindWasm, Artifact: built(b, helloGo)}
	ctx := context.Background()
	for _, gap := range []time.Duration{0, 5 * time.Millisecond, 20 * time.Millisecond} {
		b.Run("after-"+gap.String(), func(b *testing.B) {
			rt, err := New(Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer rt.Close(ctx)
			if err := rt.Precompile(ctx, spec); err != nil {
				b.Fatal(err)
			}
			var starts []time.Duration
			for b.Loop() {
				if gap > 0 {
					b.StopTimer()
					time.Sleep(gap)
					b.StartTimer()
				}
				begin := time.Now()
				inst, _, err := rt.Start(ctx, spec)
				if err != nil {
					b.Fatal(err)
				}
				starts = append(starts, time.Since(begin))
				b.StopTimer()
				inst.Close(ctx)
				b.StartTimer()
			}
			slices.Sort(starts)
			at := func(q float64) float64 { return float64(starts[int(q*float64(len(starts)-1))].Microseconds()) / 1000 }
			b.ReportMetric(at(0.5), "p50-ms")
			b.ReportMetric(at(0.9), "p90-ms")
		})
	}
}

func add(a, b function.Phases) function.Phases {
	return function.Phases{Compile: a.Compile + b.Compile, Instantiate: a.Instantiate + b.Instantiate, Init: a.Init + b.Init}
}

// BenchmarkWarmCall measures a warm call of the Go SDK example through the
// Manager (pool, metrics, events, JSON in and out), and reports its p50
// and p99.
func BenchmarkWarmCall(b *testing.B) {
	m := newManager(b, newRuntime(b, ""), &function.Spec{Name: "hello", Artifact: built(b, helloGo)})
	ctx := context.Background()
	input := json.RawMessage(`{"name":"bench"}`)
	if _, err := m.Invoke(ctx, "hello", input); err != nil {
		b.Fatal(err)
	}
	var durations []time.Duration
	for b.Loop() {
		begin := time.Now()
		if _, err := m.Invoke(ctx, "hello", input); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(begin))
	}
	reportPercentiles(b, durations)
}

// BenchmarkWarmCallInstance is a warm call on an instance directly: the
// cost of the ABI and the guest, without the pool.
func BenchmarkWarmCallInstance(b *testing.B) {
	rt := newRuntime(b, "")
	spec := &function.Spec{Name: "hello", Version: "1", Runtime: function.KindWasm, Artifact: built(b, helloGo)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	inst, _, err := rt.Start(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	defer inst.Close(ctx)
	input := json.RawMessage(`{"name":"bench"}`)
	for b.Loop() {
		if _, err := inst.Invoke(ctx, input); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConcurrentCalls runs 16 concurrent callers against a pool of
// up to 16 instances and reports the throughput.
func BenchmarkConcurrentCalls(b *testing.B) {
	m := newManager(b, newRuntime(b, ""), &function.Spec{Name: "hello", Artifact: built(b, helloGo), Limits: function.Limits{MaxInstances: 16}})
	ctx := context.Background()
	input := json.RawMessage(`{"name":"bench"}`)
	if _, err := m.Invoke(ctx, "hello", input); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(max(16/runtime.GOMAXPROCS(0), 1))
	begin := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Invoke(ctx, "hello", input); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(begin).Seconds(), "calls/s")
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	at := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Nanoseconds()) / 1000 }
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

// BenchmarkWarmCallNoop is a warm call through the Manager of a function
// that does no work: the overhead Baton adds to a call.
func BenchmarkWarmCallNoop(b *testing.B) {
	m := newManager(b, newRuntime(b, ""), &function.Spec{Name: "noop", Artifact: built(b, noopFn)})
	ctx := context.Background()
	input := json.RawMessage(`{"name":"bench"}`)
	if _, err := m.Invoke(ctx, "noop", input); err != nil {
		b.Fatal(err)
	}
	var durations []time.Duration
	for b.Loop() {
		begin := time.Now()
		if _, err := m.Invoke(ctx, "noop", input); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(begin))
	}
	reportPercentiles(b, durations)
}
