package bench

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/core"
)

// historyCountingServer is an API server in front of a fresh engine that
// counts the history reads it serves.
func historyCountingServer(t *testing.T) (url string, reads *atomic.Int64) {
	t.Helper()
	h := api.NewHandler(startedEngine(t))
	reads = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/history") {
			reads.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, reads
}

// Over REST a run reads at most HistorySample histories per configuration
// and still counts every invocation, its latency and every call.
func TestRESTRunReadsASampleOfHistoriesAndCountsEveryTask(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const invocations, calls, sample = 40, 3, 5
	for _, tt := range []struct {
		name          string
		historySample int
		wantReads     int
	}{
		{"sampled", sample, sample},
		{"every history", -1, invocations},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url, reads := historyCountingServer(t)
			res, err := Run(ctx, Options{
				Workload: Workload{Kind: Chain, N: calls},
				Configs:  []Config{{Label: "noop", Durability: "durable", Functions: Noop}},
				Arrivals: Arrivals{Kind: Closed, Concurrency: 4}, Invocations: invocations, Seed: 7,
				Server: url, HistorySample: tt.historySample, KeepSamples: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			if n := reads.Load(); n != int64(tt.wantReads) {
				t.Errorf("%d histories read, want %d", n, tt.wantReads)
			}
			s := res.Configs[0].Summary
			if s.Invocations != invocations || s.Failed != 0 || s.Latency.Count != invocations {
				t.Errorf("%d invocations (%d failed), %d latencies; want %d, 0, %d", s.Invocations, s.Failed, s.Latency.Count, invocations, invocations)
			}
			if s.HistoriesRead != tt.wantReads || s.HistorySampled != (tt.historySample > 0) {
				t.Errorf("historiesRead %d, sampled %v; want %d, %v", s.HistoriesRead, s.HistorySampled, tt.wantReads, tt.historySample > 0)
			}
			if s.OverheadTask.Count != tt.wantReads || s.Function.Count != tt.wantReads*calls {
				t.Errorf("%d overheads and %d function times, want %d and %d: the sample's", s.OverheadTask.Count, s.Function.Count, tt.wantReads, tt.wantReads*calls)
			}
			if got := res.Meta.Resources.Tasks; got != invocations*calls {
				t.Errorf("%d tasks counted, want %d", got, invocations*calls)
			}
			if got := s.TasksPerSecond * s.WindowS; math.Abs(got-invocations*calls) > 1e-6 {
				t.Errorf("tasks/s × window = %.3f, want %d", got, invocations*calls)
			}
			unread := 0
			for _, x := range res.Configs[0].Samples {
				if x.Unread {
					unread++
					if x.Calls != calls || x.LatencyMs <= 0 {
						t.Errorf("unread %s: %d calls, latency %.3fms", x.ID, x.Calls, x.LatencyMs)
					}
				}
			}
			if unread != invocations-tt.wantReads {
				t.Errorf("%d invocations unread, want %d", unread, invocations-tt.wantReads)
			}
			if sampled := strings.Contains(strings.Join(resourceLines(res), "\n"), "histories: SAMPLED"); sampled != (tt.historySample > 0) {
				t.Errorf("the report says sampled: %v; want %v: %q", sampled, tt.historySample > 0, resourceLines(res))
			}
		})
	}
}

// The sampler keeps at most its limit per configuration, hands every
// other completed invocation back exactly once to be counted unread,
// sends failures to be read and counts warm-up ones unread.
func TestHistorySamplerKeepsABoundedUniformSample(t *testing.T) {
	wf, err := Workload{Kind: Chain, N: 2}.Build("c", Call{Function: noopExecutorName}, "durable", rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	const limit, n = 10, 1000
	h := newHistorySampler(limit, 1, [][]*Workflow{{wf}})
	seen := map[string]int{}
	for i := range n {
		rec := record{out: outcome{ID: string(rune('a'+i%26)) + string(rune('A'+i/26)), Status: core.StatusCompleted}}
		read, unread, ok := h.offer(rec, true)
		if read {
			t.Fatalf("completed invocation %d sent to be read outside the sample", i)
		}
		if ok {
			seen[unread.out.ID]++
		}
	}
	kept := h.take()
	if len(kept) != limit {
		t.Fatalf("%d kept, want %d", len(kept), limit)
	}
	for _, rec := range kept {
		seen[rec.out.ID]++
	}
	if len(seen) != n {
		t.Fatalf("%d distinct invocations accounted for, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("invocation %s accounted for %d times", id, k)
		}
	}
	// Uniform: the late half of the run is in the sample too, which a
	// sampler keeping the first ones would miss.
	late := 0
	for _, rec := range kept {
		if rec.out.ID[1] >= 'A'+n/2/26 {
			late++
		}
	}
	if late == 0 {
		t.Error("no invocation of the run's second half in the sample")
	}

	if read, _, ok := h.offer(record{out: outcome{ID: "f", Status: core.StatusFaulted}}, true); !read || ok {
		t.Errorf("a faulted invocation: read %v, unread %v; want its history read", read, ok)
	}
	if read, _, ok := h.offer(record{err: context.DeadlineExceeded}, true); !read || ok {
		t.Errorf("a client error: read %v, unread %v; want it through the reading path", read, ok)
	}
	if read, unread, ok := h.offer(record{out: outcome{ID: "w", Status: core.StatusCompleted}}, false); read || !ok || unread.out.ID != "w" {
		t.Errorf("a warm-up invocation: read %v, unread %v (%q); want it counted unread", read, ok, unread.out.ID)
	}
}

// A workflow fixes its call count only when every completed invocation
// runs the same calls; the count is what its histories hold.
func TestFixedCallsMatchTheWorkloads(t *testing.T) {
	for _, tt := range []struct {
		w     Workload
		calls int
		fixed bool
	}{
		{Workload{Kind: Chain, N: 10}, 10, true},
		{Workload{Kind: Fanout, Width: 3}, 4, true},
		{Workload{Kind: Map, Items: 5}, 0, false},
		{Workload{Kind: Branch, Odds: 0.5}, 0, false},
	} {
		wf, err := tt.w.Build("probe", Call{Function: noopExecutorName}, "durable", rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		n, ok := fixedCalls(wf.Def)
		if ok != tt.fixed || ok && n != tt.calls {
			t.Errorf("%s: %d calls, fixed %v; want %d, %v", tt.w.Label(), n, ok, tt.calls, tt.fixed)
		}
	}
	wf, err := Workload{Kind: Chain, N: 2}.Build("c", Call{Function: noopExecutorName}, "durable", rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	none, err := Workload{Kind: Chain, N: 2}.Build("n", Call{Function: noopExecutorName}, "none", rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	h := newHistorySampler(1, 1, [][]*Workflow{{wf}, {none}})
	if !h.sampled(0) || h.sampled(1) {
		t.Errorf("sampled: durable %v, non-durable %v; want true, false (a server's non-durable histories hold no calls)", h.sampled(0), h.sampled(1))
	}
	s := Sample{ID: "x", Status: "completed", Tasks: make([]TaskSample, 3)}
	if err := h.checkCalls(&s); err == nil {
		t.Error("a history of 3 calls for a workflow of 2 passed the check")
	}
	s.Tasks = s.Tasks[:2]
	if err := h.checkCalls(&s); err != nil {
		t.Error(err)
	}
}
