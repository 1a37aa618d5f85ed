package bench

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
)

// fakeTarget ends every invocation at once and makes up a chain's history
// for it, fresh each time, as a non-durable embedded run's tap does.
type fakeTarget struct {
	calls int
	n     atomic.Int64
}

func (f *fakeTarget) apply(context.Context, *Workflow) error { return nil }
func (f *fakeTarget) close(context.Context) error            { return nil }

func (f *fakeTarget) invoke(_ context.Context, _ *Workflow, i int) (outcome, error) {
	now := time.Now()
	return outcome{ID: "inv-" + strconv.FormatInt(f.n.Add(1), 10), Status: core.StatusCompleted,
		Started: now, Ended: now.Add(time.Duration(i%1000) * time.Microsecond)}, nil
}

func (f *fakeTarget) history(_ context.Context, _ *Workflow, o outcome) ([]core.Event, error) {
	events := []core.Event{{Type: core.InvocationStarted, Time: o.Started}}
	at := o.Started
	for c := range f.calls {
		key := "/do/" + strconv.Itoa(c) + "/call"
		events = append(events,
			core.Event{Type: core.TaskStarted, Task: key, Time: at.Add(time.Microsecond)},
			core.Event{Type: core.TaskCompleted, Task: key, Time: at.Add(3 * time.Microsecond),
				Info: map[string]any{"durationMs": 0.002, "cold": c == 0, "coldStartMs": 0.5}})
		at = at.Add(3 * time.Microsecond)
	}
	return append(events, core.Event{Type: core.InvocationCompleted, Time: o.Ended}), nil
}

// fakeRun runs n invocations of a chain of 10 against a fakeTarget through
// the harness's closed loop and analyzer, and returns the analyzer, which
// holds everything the harness keeps of them.
func fakeRun(t *testing.T, n int, keep bool) *analyzer {
	t.Helper()
	wf, err := Workload{Kind: Chain, N: 10}.Build("probe", Call{Function: noopExecutorName}, "none", rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{
		opts: Options{Configs: compared, Arrivals: Arrivals{Kind: Closed, Concurrency: 8}, Invocations: n, KeepSamples: keep},
		tgt:  &fakeTarget{calls: 10}, wfs: [][]*Workflow{{wf}, {wf}}, start: time.Now(),
	}
	ctx := context.Background()
	r.an = r.startAnalyzer(ctx)
	r.closedLoop(ctx)
	r.an.finishLive()
	if err := r.an.finish(ctx); err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, st := range r.an.stats {
		got += st.s.Invocations
	}
	if got != n {
		t.Fatalf("%d invocations summarised, want %d", got, n)
	}
	return r.an
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestHarnessMemoryDoesNotGrowWithInvocations: what the harness keeps of
// 20,000 invocations is the size of what it keeps of 2,000, both as it
// counts its statistics and as the Go heap sees them, while the samples
// KeepSamples asks for grow with the run.
func TestHarnessMemoryDoesNotGrowWithInvocations(t *testing.T) {
	const n = 2000
	base := liveHeap()
	small := fakeRun(t, n, false)
	smallHeap := liveHeap() - min(base, liveHeap())
	large := fakeRun(t, 10*n, false)
	largeHeap := liveHeap() - min(base, liveHeap())
	// The time series has more bins in a longer run, up to maxTickBins;
	// the histograms grow only by the binades a wider spread of latencies
	// reaches (1 KB each), never by invocation. On a loaded machine the
	// longer run meets a wider spread, so the bound allows those binades
	// (up to 4×) and still fails on growth with the invocations (10×).
	withoutSeries := func(a *analyzer) int {
		b := a.heldBytes()
		for _, st := range a.stats {
			b -= st.series.bytes()
		}
		return b
	}
	if s, l := withoutSeries(small), withoutSeries(large); l > 4*s || l > 512<<10 {
		t.Errorf("statistics of %d invocations hold %d bytes, of %d: %d", 10*n, l, n, s)
	}
	for _, st := range large.stats {
		if len(st.series.bins) > maxTickBins {
			t.Errorf("%d bins in the time series", len(st.series.bins))
		}
		if st.samples != nil {
			t.Errorf("%d samples kept without KeepSamples", len(st.samples))
		}
	}
	// Both analyzers are alive: the heap holds the two. A record per
	// invocation kept would be well over 100 bytes each, 1.8 MB for the
	// 18,000 more; the statistics of both are a few hundred KB.
	if grew := int64(largeHeap) - 2*int64(smallHeap); grew > 1<<20 {
		t.Errorf("the heap grew by %d bytes from %d to %d invocations (small run: %d)", grew, n, 10*n, smallHeap)
	}
	runtime.KeepAlive(small)
	runtime.KeepAlive(large)

	kept := fakeRun(t, n, true)
	if got := len(kept.stats[0].samples) + len(kept.stats[1].samples); got != n {
		t.Errorf("%d samples kept, want %d", got, n)
	}
}

// The streaming summary of samples agrees with the exact one (the sorted
// values) within the histogram's error.
func TestStreamingSummaryMatchesExactPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var samples []Sample
	var lat []float64
	for i := range 5000 {
		l := math.Exp(rng.NormFloat64() + 2)
		samples = append(samples, Sample{SubmittedS: float64(i) / 1000, LatencyMs: l, Status: "completed", Traced: true,
			CriticalCalls: 1, OverheadMs: l / 2, OverheadTaskMs: l / 2, Tasks: []TaskSample{{FunctionMs: l / 2, QueueMs: 0.1}}})
		lat = append(lat, l)
	}
	s := summarize(samples, 0, 0)
	exact := Summarize(lat)
	for _, q := range [][2]float64{{s.Latency.P50, exact.P50}, {s.Latency.P90, exact.P90}, {s.Latency.P99, exact.P99}, {s.Latency.P999, exact.P999}} {
		if math.Abs(q[0]-q[1]) > histError*q[1] {
			t.Errorf("streaming %v, exact %v", q[0], q[1])
		}
	}
	if s.Latency.Count != exact.Count || s.Latency.Max != exact.Max || s.OverheadTask.Count != 5000 || s.Queue.Count != 5000 {
		t.Errorf("summary %+v", s)
	}
}

func TestTickSeriesWidensAndKeepsCounts(t *testing.T) {
	var ts tickSeries
	// An hour of completions, ten a second: the bins widen as it goes.
	total, colds := 0, 0
	for i := range 36000 {
		ts.add(float64(i)/10, float64(i%100), i%7/6)
		total++
		colds += i % 7 / 6
	}
	if len(ts.bins) > maxTickBins {
		t.Fatalf("%d bins kept", len(ts.bins))
	}
	width := binWidth(time.Hour)
	ser, w := ts.series(width)
	if w != width || len(ser.TimeS) > seriesBins+1 {
		t.Errorf("width %v (want %v), %d bins", w, width, len(ser.TimeS))
	}
	sum, c := 0.0, 0
	for i := range ser.TimeS {
		sum += ser.Throughput[i] * w.Seconds()
		c += ser.ColdStarts[i]
	}
	if math.Round(sum) != float64(total) || c != colds {
		t.Errorf("bins hold %v completions and %d cold starts, want %d and %d", sum, c, total, colds)
	}
	if ser.P50Ms[0] < 40 || ser.P50Ms[0] > 60 || ser.P99Ms[0] < 95 {
		t.Errorf("first bin p50 %v p99 %v", ser.P50Ms[0], ser.P99Ms[0])
	}
}
