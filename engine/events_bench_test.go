package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/events/natsbus"
	"github.com/batonflow/baton/store"
)

// BenchmarkIngestHTTP measures events accepted per second through POST
// /v1/events (structured mode, one event per request, concurrent
// clients), each durable in the SQLite event log before the response.
func BenchmarkIngestHTTP(b *testing.B) {
	st := openStore(b, b.TempDir())
	defer st.Close()
	e := eventEngine(b, st, events.NewLog(st.(store.EventLog), nil, nil))
	defer e.Close()
	srv := httptest.NewServer(api.NewHandler(e))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			body := fmt.Sprintf(`{"specversion":"1.0","id":"%d","source":"/bench","type":"bench.http","data":{"n":%d}}`, i, i)
			resp, err := client.Post(srv.URL+"/v1/events", events.ContentTypeStructured, strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "events/s")
}

// BenchmarkIngestNATS measures events per second from JetStream publishes
// to the server's event log: b.N events are published, and the clock stops
// when the durable consumer has logged the last one.
func BenchmarkIngestNATS(b *testing.B) {
	url := natsURL(b)
	ctx := context.Background()
	id := uniqueName(b)
	stream := "BATON_BENCH_" + strings.ToUpper(id)
	prefix := "batonbench." + id
	bus, err := natsbus.Connect(ctx, url, natsbus.Options{Stream: stream, SubjectPrefix: prefix, Consumer: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	js, _ := jetstream.New(bus.Conn())
	defer js.DeleteStream(ctx, stream)
	st := openStore(b, b.TempDir())
	defer st.Close()
	log := events.NewLog(st.(store.EventLog), bus, nil)
	var logged atomic.Int64
	cctx, cancel := context.WithCancel(ctx)
	done, ready := make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(done)
		_ = bus.Consume(cctx, func(ctx context.Context, evs []events.Event) error {
			rows, err := log.Append(ctx, evs)
			logged.Add(int64(len(rows)))
			return err
		}, ready)
	}()
	defer func() { cancel(); <-done }()
	if err := <-ready; err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	var futures []jetstream.PubAckFuture
	for i := range b.N {
		data, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": fmt.Sprint(i), "source": "/bench", "type": "bench.nats", "data": map[string]any{"n": i}})
		f, err := js.PublishAsync(prefix+".bench.nats", data)
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for logged.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d events logged", logged.Load(), b.N)
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkEventToTaskStart measures the latency from posting an event
// over HTTP to the start of the task it triggers: a workflow with
// schedule.on, whose first task's TaskStarted time is compared with the
// moment the POST began. Events are posted one at a time.
func BenchmarkEventToTaskStart(b *testing.B) {
	ctx := context.Background()
	st := openStore(b, b.TempDir())
	defer st.Close()
	e := eventEngine(b, st, events.NewLog(st.(store.EventLog), nil, nil), func(o *engine.Options) {
		o.Executors = map[string]engine.Executor{"noop": engine.ExecutorFunc(func(context.Context, *engine.CallRequest) (engine.CallResult, error) {
			return engine.CallResult{}, nil
		})}
	})
	defer e.Close()
	doc := `
document: {dsl: '1.0.0', namespace: bench, name: onevent, version: '1.0.0'}
schedule:
  on:
    one:
      with: {type: bench.latency}
do:
  - work:
      call: noop
`
	if _, err := e.ApplyWorkflow(ctx, "b.yaml", []byte(doc)); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api.NewHandler(e))
	defer srv.Close()
	latencies := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		body := fmt.Sprintf(`{"specversion":"1.0","id":"%d","source":"/bench","type":"bench.latency"}`, i)
		sent := time.Now()
		resp, err := http.Post(srv.URL+"/v1/events", events.ContentTypeStructured, bytes.NewReader([]byte(body)))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		started := waitFirstTaskStart(b, st, i+1)
		latencies = append(latencies, started.Sub(sent))
	}
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
}

// waitFirstTaskStart waits for the n-th run and returns when its first
// task started.
func waitFirstTaskStart(b *testing.B, st store.Store, n int) time.Time {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		invs, _, err := st.ListInvocations(context.Background(), store.InvocationFilter{Namespace: "bench", Workflow: "onevent", Limit: 1})
		if err != nil {
			b.Fatal(err)
		}
		if len(invs) == 1 {
			in, _ := invs[0].Input.([]any)
			if len(in) == 1 && in[0].(map[string]any)["id"] == fmt.Sprint(n-1) {
				h, err := st.History(context.Background(), invs[0].ID)
				if err != nil {
					b.Fatal(err)
				}
				for _, ev := range h {
					if ev.Type == "TaskStarted" {
						return ev.Time
					}
				}
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	b.Fatalf("run %d did not start its task", n)
	return time.Time{}
}
