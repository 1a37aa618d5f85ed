package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/store/sqlite"
)

// TestServerListSpreadsStarts benchmarks two API servers in front of one
// engine, as --server URL,URL does replicas: starts alternate between
// them and every invocation is awaited to its end.
func TestServerListSpreadsStarts(t *testing.T) {
	ctx := context.Background()
	eng := startedEngine(t)
	var starts [2]atomic.Int64
	var urls []string
	for i := range starts {
		h := api.NewHandler(eng)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/invocations") {
				starts[i].Add(1)
			}
			h.ServeHTTP(w, r)
		}))
		defer srv.Close()
		urls = append(urls, srv.URL)
	}

	res, err := Run(ctx, Options{
		Workload: Workload{Kind: Chain, N: 2},
		Configs:  []Config{{Label: "durable", Durability: "durable", Functions: HTTPFunctions}},
		Arrivals: Arrivals{Kind: Closed, Concurrency: 2}, Invocations: 10, Seed: 3,
		Server: strings.Join(urls, ","),
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Configs[0].Summary; s.Invocations != 10 || s.Failed != 0 {
		t.Fatalf("%d invocations, %d failed; want 10 and 0", s.Invocations, s.Failed)
	}
	if a, b := starts[0].Load(), starts[1].Load(); a != 5 || b != 5 {
		t.Fatalf("starts per server: %d and %d, want 5 each", a, b)
	}
	if _, err := Run(ctx, Options{Workload: Workload{Kind: Chain, N: 1}, Invocations: 1, Arrivals: Arrivals{Kind: Closed, Concurrency: 1},
		Configs: []Config{{Label: "x", Durability: "durable", Functions: HTTPFunctions}}, Server: urls[0] + ",,"}); err == nil ||
		!strings.Contains(err.Error(), "an empty URL") {
		t.Fatalf("a list with an empty URL: %v", err)
	}
}

// Against a server, noop calls run the engine's own baton.noop and set
// workloads need no function at all, so the API's own cost is measured
// with the same workflows as the embedded engine's.
func TestServerRunsNoopAndSetWorkloads(t *testing.T) {
	ctx := context.Background()
	eng := startedEngine(t)
	srv := httptest.NewServer(api.NewHandler(eng))
	defer srv.Close()
	res, err := Run(ctx, Options{
		Workload: Workload{Kind: Chain, N: 3},
		Configs: []Config{
			{Label: "noop", Durability: "durable", Functions: Noop},
			{Label: "set", Durability: "durable", Functions: Set},
		},
		Arrivals: Arrivals{Kind: Closed, Concurrency: 2}, Invocations: 8, Seed: 5,
		Server: srv.URL,
	})
	if err != nil {
		t.Fatal(err)
	}
	noop, set := res.Configs[0].Summary, res.Configs[1].Summary
	if noop.Invocations != 4 || noop.Failed != 0 || set.Invocations != 4 || set.Failed != 0 {
		t.Fatalf("noop %d (%d failed), set %d (%d failed): %s %s", noop.Invocations, noop.Failed,
			set.Invocations, set.Failed, noop.FirstError, set.FirstError)
	}
	// Three calls per noop invocation in its history; the set steps are
	// counted from the workflow's shape.
	if noop.Function.Count != 12 || noop.OverheadTask.Count != 4 || set.OverheadTask.Count != 4 || set.Function.Count != 0 {
		t.Errorf("noop: %d calls, %d per-task overheads; set: %d calls, %d per-task overheads",
			noop.Function.Count, noop.OverheadTask.Count, set.Function.Count, set.OverheadTask.Count)
	}
}

// startedEngine is an engine over a fresh SQLite store, started, and
// closed with the test.
func startedEngine(t *testing.T) *engine.Engine {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng, err := engine.New(engine.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}
