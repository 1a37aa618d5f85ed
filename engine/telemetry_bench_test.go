package engine_test

import (
	"context"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/httpcall"
	"github.com/batonflow/baton/telemetry"
)

// BenchmarkChain10Telemetry runs BenchmarkChain10's durable chain of ten
// HTTP calls, one invocation at a time, with tracing and metrics off and
// on. Tracing exports through the SDK's batch processor to an exporter
// that drops the spans, so the cost measured is the engine's and the
// SDK's, not a collector's. Compare "off" with BenchmarkChain10/durable/c=1
// on the main branch, and "tracing" with "off" for tracing's cost per task.
//
//	go test ./engine -run '^$' -bench Chain10Telemetry -benchtime 2000x -benchmem
func BenchmarkChain10Telemetry(b *testing.B) {
	noop := startNoopServer(b)
	for _, cfg := range []struct {
		name             string
		tracing, metrics bool
	}{{"off", false, false}, {"metrics", false, true}, {"tracing", true, false}, {"tracing+metrics", true, true}} {
		b.Run(cfg.name, func(b *testing.B) {
			ctx := context.Background()
			st := openStore(b, b.TempDir())
			defer st.Close()
			timing := &timingTransport{base: httpcall.NewTransport(), spent: map[string]time.Duration{}}
			var tracer *telemetry.Tracer
			if cfg.tracing {
				tracer = telemetry.New(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				defer tracer.Shutdown(ctx)
			}
			e := newEngine(b, st, func(o *engine.Options) {
				o.HTTPClient = &http.Client{Transport: timing}
				o.Tracer = tracer
				if cfg.metrics {
					o.Metrics = prometheus.NewRegistry()
				}
			})
			defer e.Close()
			if _, err := e.ApplyWorkflow(ctx, "chain.yaml", []byte(chainDoc(noop, 10, ""))); err != nil {
				b.Fatal(err)
			}
			overheads := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			cpuBefore := cpuTime()
			for range b.N {
				t0 := time.Now()
				inv, err := e.Invoke(ctx, "default", "chain", "", nil)
				if err != nil {
					b.Fatal(err)
				}
				done, err := e.Wait(ctx, inv.ID)
				if err != nil || done.Status != core.StatusCompleted {
					b.Fatalf("%+v %v", done, err)
				}
				overheads = append(overheads, (time.Since(t0)-timing.take(inv.ID))/10)
			}
			cpu := cpuTime() - cpuBefore
			b.StopTimer()
			sort.Slice(overheads, func(i, j int) bool { return overheads[i] < overheads[j] })
			b.ReportMetric(float64(overheads[len(overheads)/2].Microseconds()), "overhead-p50-µs/task")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*10), "cpu-µs/task")
		})
	}
}
