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
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := engine.New(engine.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
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
