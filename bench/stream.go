package bench

import (
	"math"
	"sort"
	"time"
	"unsafe"
)

// configStats folds one configuration's invocations into fixed-memory
// figures as they end, so that the harness's memory does not grow with
// the run: histograms of every distribution the report shows, counters,
// and the time series' bins. Only KeepSamples keeps the samples
// themselves. It is not safe for concurrent use.
type configStats struct {
	warmupS float64
	s       Summary
	// first and last bound the measured invocations: the first
	// submission and the last end, in seconds from the start.
	first, last                                    float64
	completed, calls                               int
	lat, span, over, overTask, queue, fn, cp, cold Histogram
	// coldLat and warmLat split the latency by whether a call started
	// cold, for the cold-start penalty.
	coldLat, warmLat Histogram
	series           tickSeries
	keep             bool
	samples          []Sample
	// sampled says that only a sample of the histories is read (over
	// REST): the summary says so.
	sampled bool
}

func newConfigStats(warmupS float64, keepSamples bool) *configStats {
	return &configStats{warmupS: warmupS, first: math.Inf(1), keep: keepSamples}
}

// add folds in one ended invocation; x may be dropped afterwards.
func (c *configStats) add(x *Sample) {
	if c.keep {
		c.samples = append(c.samples, *x)
	}
	if x.Status == "completed" {
		c.series.add(x.SubmittedS+x.LatencyMs/1000, x.LatencyMs, x.ColdStarts)
	}
	if x.Warmup {
		return
	}
	s := &c.s
	s.Invocations++
	if x.Status != "completed" {
		if x.Status != "error" {
			s.HistoriesRead++
		}
		s.Failed++
		if s.FirstError == "" {
			s.FirstError = x.failure()
		}
		return
	}
	c.first = math.Min(c.first, x.SubmittedS)
	c.last = math.Max(c.last, x.SubmittedS+x.LatencyMs/1000)
	c.completed++
	c.lat.Add(x.LatencyMs)
	if x.Unread {
		c.calls += x.Calls
		return
	}
	s.HistoriesRead++
	c.span.Add(x.SpanMs)
	if !x.Traced {
		s.Untraced++
		return
	}
	c.over.Add(x.OverheadMs)
	if x.CriticalCalls > 0 {
		c.overTask.Add(x.OverheadTaskMs)
	}
	c.cp.Add(x.CriticalPathMs)
	c.calls += len(x.Tasks)
	for _, t := range x.Tasks {
		if t.QueueMs >= 0 {
			c.queue.Add(t.QueueMs)
		}
		c.fn.Add(t.FunctionMs)
		if t.Cold {
			s.ColdStarts++
			c.cold.Add(t.ColdStartMs)
		}
	}
	if x.ColdStarts > 0 {
		c.coldLat.Add(x.LatencyMs)
	} else {
		c.warmLat.Add(x.LatencyMs)
	}
}

// summary is the configuration's summary. settledS, when not zero, is
// when the engine had written every ended invocation's row: throughput
// counts invocations whose writes are done, so the window lasts until then.
func (c *configStats) summary(settledS float64) Summary {
	s := c.s
	s.HistorySampled = c.sampled
	first, last := c.first, c.last
	start := math.Max(c.warmupS, math.Min(first, last))
	if c.completed > 0 {
		last = math.Max(last, settledS)
	}
	s.WindowS = last - start
	if s.WindowS > 0 {
		s.Throughput = float64(c.completed) / s.WindowS
		s.TasksPerSecond = float64(c.calls) / s.WindowS
	}
	s.Latency, s.Span, s.Overhead, s.OverheadTask = c.lat.Dist(), c.span.Dist(), c.over.Dist(), c.overTask.Dist()
	s.Queue, s.Function, s.CriticalPath, s.ColdStart = c.queue.Dist(), c.fn.Dist(), c.cp.Dist(), c.cold.Dist()
	if c.coldLat.Count() > 0 && c.warmLat.Count() > 0 {
		s.ColdPenaltyMs = c.coldLat.Quantile(50) - c.warmLat.Quantile(50)
	}
	return s
}

// kept is the samples KeepSamples kept, in order of submission.
func (c *configStats) kept() []Sample {
	sort.Slice(c.samples, func(i, j int) bool { return c.samples[i].SubmittedS < c.samples[j].SubmittedS })
	return c.samples
}

// summarize computes the summary of samples, as the run does while they
// end.
func summarize(samples []Sample, warmupS, settledS float64) Summary {
	c := newConfigStats(warmupS, false)
	for i := range samples {
		c.add(&samples[i])
	}
	return c.summary(settledS)
}

// seriesSteps are the widths of the time series' bins, each a multiple of
// the one before so that bins can be merged into wider ones as the run
// goes on; past the last, the width doubles.
var seriesSteps = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, time.Second,
	2 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute}

const (
	// seriesBins is about how many bins a plot shows.
	seriesBins = 60
	// maxTickBins bounds the bins kept while running; beyond it they are
	// merged into wider ones.
	maxTickBins = 2 * seriesBins
)

// nextStep is the bin width after w.
func nextStep(w time.Duration) time.Duration {
	for _, s := range seriesSteps {
		if s > w {
			return s
		}
	}
	return 2 * w
}

// binWidth picks the time series' bin for a window: about sixty bins, at
// least 100ms.
func binWidth(window time.Duration) time.Duration {
	w := seriesSteps[0]
	for window/w > seriesBins {
		w = nextStep(w)
	}
	return w
}

// tickSeries is a time series of completions by their end: per bin, a
// latency histogram and the cold starts, in at most maxTickBins bins.
type tickSeries struct {
	width time.Duration
	bins  []tickBin
}

type tickBin struct {
	lat   Histogram
	colds int
}

func (t *tickSeries) add(endS, latencyMs float64, colds int) {
	if t.width == 0 {
		t.width = seriesSteps[0]
	}
	b := int(endS / t.width.Seconds())
	for b >= maxTickBins {
		t.widen(nextStep(t.width))
		b = int(endS / t.width.Seconds())
	}
	b = max(b, 0)
	for len(t.bins) <= b {
		t.bins = append(t.bins, tickBin{})
	}
	t.bins[b].lat.Add(latencyMs)
	t.bins[b].colds += colds
}

// widen merges the bins into bins of width w, a multiple of the width.
func (t *tickSeries) widen(w time.Duration) {
	k := int(w / t.width)
	merged := make([]tickBin, (len(t.bins)+k-1)/k)
	for i := range t.bins {
		m := &merged[i/k]
		m.lat.Merge(&t.bins[i].lat)
		m.colds += t.bins[i].colds
	}
	t.bins, t.width = merged, w
}

// series is the time series with bins at least width wide.
func (t *tickSeries) series(width time.Duration) (Series, time.Duration) {
	if t.width == 0 {
		t.width = seriesSteps[0]
	}
	for t.width < width {
		t.widen(nextStep(t.width))
	}
	var out Series
	w := t.width.Seconds()
	for b := range t.bins {
		bin := &t.bins[b]
		out.TimeS = append(out.TimeS, (float64(b)+0.5)*w)
		out.Throughput = append(out.Throughput, float64(bin.lat.Count())/w)
		p50, p99 := noData, noData
		if bin.lat.Count() > 0 {
			p50, p99 = bin.lat.Quantile(50), bin.lat.Quantile(99)
		}
		out.P50Ms = append(out.P50Ms, p50)
		out.P99Ms = append(out.P99Ms, p99)
		out.ColdStarts = append(out.ColdStarts, bin.colds)
	}
	return out, t.width
}

// heldBytes is the memory the statistics hold: fixed by the values' range
// and the bins' count, plus the samples when they are kept.
func (c *configStats) heldBytes() int {
	n := int(unsafe.Sizeof(*c))
	for _, h := range []*Histogram{&c.lat, &c.span, &c.over, &c.overTask, &c.queue, &c.fn, &c.cp, &c.cold, &c.coldLat, &c.warmLat} {
		n += h.bytes() - int(unsafe.Sizeof(*h))
	}
	n += c.series.bytes()
	for i := range c.samples {
		n += int(unsafe.Sizeof(c.samples[i])) + len(c.samples[i].Tasks)*int(unsafe.Sizeof(TaskSample{})) + len(c.samples[i].ID) + len(c.samples[i].Error)
	}
	return n
}

// bytes is the memory the series' bins hold: at most maxTickBins of them.
func (t *tickSeries) bytes() int {
	n := 0
	for i := range t.bins {
		n += int(unsafe.Sizeof(t.bins[i])) + t.bins[i].lat.bytes() - int(unsafe.Sizeof(t.bins[i].lat))
	}
	return n
}
