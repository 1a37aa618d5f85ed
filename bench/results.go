package bench

import (
	"context"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/function"
)

// Results are a run's raw samples and summaries: what results.json holds.
type Results struct {
	Meta     Meta           `json:"meta"`
	Configs  []ConfigResult `json:"configs"`
	Function []FunctionIdle `json:"functions,omitempty"`
}

// Meta describes the run.
type Meta struct {
	Command   string    `json:"command,omitempty"`
	Workload  string    `json:"workload"`
	Arrivals  string    `json:"arrivals"`
	Target    string    `json:"target"`
	Started   time.Time `json:"started"`
	ElapsedS  float64   `json:"elapsedS"`
	WarmupS   float64   `json:"warmupS"`
	Seed      uint64    `json:"seed"`
	GoVersion string    `json:"goVersion"`
	OS        string    `json:"os"`
	CPUs      int       `json:"cpus"`
	// Dropped counts open-loop arrivals not sent because MaxInFlight
	// invocations were outstanding.
	Dropped int64 `json:"dropped,omitempty"`
	// LagMs is how late the open loop sent its arrivals (actual minus
	// intended time): a large lag means the generator, not the engine,
	// was the bottleneck.
	LagMs Dist `json:"lagMs,omitzero"`
	// BinS is the width of the time series' bins.
	BinS float64 `json:"binS"`
	// Resources are the engine's CPU, commits and memory over the load,
	// and the disk's commit time.
	Resources Resources `json:"resources"`
}

// ConfigResult is one configuration's outcome.
type ConfigResult struct {
	Config  Config   `json:"config"`
	Summary Summary  `json:"summary"`
	Series  Series   `json:"series"`
	Samples []Sample `json:"samples"`
}

// Summary is what the table and report show. Durations are in
// milliseconds.
type Summary struct {
	Invocations int `json:"invocations"`
	Failed      int `json:"failed"`
	// WindowS is the measured window: from the end of the warm-up to the
	// last measured invocation's end.
	WindowS        float64 `json:"windowS"`
	Throughput     float64 `json:"throughput"`     // completed invocations per second
	TasksPerSecond float64 `json:"tasksPerSecond"` // their calls per second
	Latency        Dist    `json:"latencyMs"`
	Span           Dist    `json:"spanMs"`
	Overhead       Dist    `json:"overheadMs"`
	OverheadTask   Dist    `json:"overheadPerTaskMs"`
	Queue          Dist    `json:"queueMs"`
	Function       Dist    `json:"functionMs"`
	CriticalPath   Dist    `json:"criticalPathMs"`
	ColdStarts     int     `json:"coldStarts"`
	ColdStart      Dist    `json:"coldStartMs"`
	// ColdPenaltyMs is the median latency of invocations with a cold
	// start minus that of those without: the latency cold starts added.
	ColdPenaltyMs float64 `json:"coldPenaltyMs,omitempty"`
	// IdleInstanceS is the instance-seconds the configuration's functions
	// spent idle and warm in the window (shared by configurations that
	// call the same functions).
	IdleInstanceS float64 `json:"idleInstanceS"`
	Untraced      int     `json:"untraced,omitempty"`
	// FirstError is the first failure's message, so that a run whose
	// invocations fail says why.
	FirstError string `json:"firstError,omitempty"`
}

// noData marks a latency bin in which nothing completed (JSON has no NaN).
const noData = -1.0

// Series are per-bin values over the run, by completion time; a latency
// of -1 marks a bin in which nothing completed.
type Series struct {
	TimeS      []float64 `json:"timeS"`
	Throughput []float64 `json:"throughput"`
	P50Ms      []float64 `json:"p50Ms"`
	P99Ms      []float64 `json:"p99Ms"`
	ColdStarts []int     `json:"coldStarts"`
}

// FunctionIdle is a function's instance usage over the measured window.
type FunctionIdle struct {
	Function  string  `json:"function"`
	Instances int     `json:"instances"`
	IdleS     float64 `json:"idleInstanceS"`
}

func (r *runner) results(ctx context.Context, records []record, elapsed time.Duration, resources Resources) (*Results, error) {
	samples, err := r.samples(ctx, records)
	if err != nil {
		return nil, err
	}
	var tasks int64
	for i := range samples {
		if samples[i].Config >= 0 {
			tasks += int64(len(samples[i].Tasks))
		}
	}
	resources.perTask(tasks)
	res := &Results{Meta: Meta{
		Command: r.opts.Command, Workload: r.opts.Workload.Label(), Arrivals: r.opts.Arrivals.Label(),
		Target: "embedded engine (SQLite)", Started: r.start.UTC(), ElapsedS: elapsed.Seconds(),
		WarmupS: r.opts.Warmup.Seconds(), Seed: r.opts.Seed,
		GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.NumCPU(),
		Dropped: r.dropped.Load(), Resources: resources,
	}}
	if r.opts.Server != "" {
		res.Meta.Target = "server " + r.opts.Server
	}
	if r.opts.Arrivals.Kind != Closed {
		var lag []float64
		for i := range records {
			if records[i].done {
				lag = append(lag, ms(records[i].submitted-records[i].scheduled))
			}
		}
		res.Meta.LagMs = Summarize(lag)
	}
	warmup := r.opts.Warmup.Seconds()
	bin := binWidth(elapsed - r.opts.Warmup)
	res.Meta.BinS = bin.Seconds()
	windowEnd := r.start.Add(elapsed)
	streams := r.opts.Arrivals.Streams()
	for ci, c := range r.opts.Configs {
		var mine []Sample
		for i := range samples {
			if samples[i].Config == ci {
				mine = append(mine, samples[i])
			}
		}
		sort.Slice(mine, func(i, j int) bool { return mine[i].SubmittedS < mine[j].SubmittedS })
		var fns []string
		for s := range streams {
			// The idle meter knows functions by their references.
			fns = append(fns, function.Qualify(Namespace, functionName(c.Functions, s, streams)))
		}
		sum := summarize(mine, warmup, r.settled.Seconds())
		sum.IdleInstanceS = r.idle.idleSeconds(fns, r.start.Add(r.opts.Warmup), windowEnd)
		res.Configs = append(res.Configs, ConfigResult{
			Config: c, Summary: sum, Series: series(mine, warmup, bin), Samples: mine,
		})
	}
	res.Function = r.idle.usage(r.start.Add(r.opts.Warmup), windowEnd)
	return res, nil
}

// binWidth picks the time series' bin: about fifty bins, at least 100ms.
func binWidth(window time.Duration) time.Duration {
	steps := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute}
	for _, s := range steps {
		if window/s <= 60 {
			return s
		}
	}
	return 5 * time.Minute
}

// summarize computes a configuration's summary. settledS, when not zero,
// is when the engine had written every ended invocation's row: throughput
// counts invocations whose writes are done, so the window lasts until then.
func summarize(samples []Sample, warmupS, settledS float64) Summary {
	var (
		s                                              Summary
		lat, span, over, overTask, queue, fn, cp, cold []float64
		coldLat, warmLat                               []float64
		first, last                                    = math.Inf(1), 0.0
		calls                                          int
	)
	for i := range samples {
		x := &samples[i]
		if x.Warmup {
			continue
		}
		s.Invocations++
		if x.Status != "completed" {
			s.Failed++
			if s.FirstError == "" {
				s.FirstError = x.failure()
			}
			continue
		}
		first = math.Min(first, x.SubmittedS)
		last = math.Max(last, x.SubmittedS+x.LatencyMs/1000)
		lat = append(lat, x.LatencyMs)
		span = append(span, x.SpanMs)
		if !x.Traced {
			s.Untraced++
			continue
		}
		over = append(over, x.OverheadMs)
		if x.CriticalCalls > 0 {
			overTask = append(overTask, x.OverheadTaskMs)
		}
		cp = append(cp, x.CriticalPathMs)
		calls += len(x.Tasks)
		for _, t := range x.Tasks {
			if t.QueueMs >= 0 {
				queue = append(queue, t.QueueMs)
			}
			fn = append(fn, t.FunctionMs)
			if t.Cold {
				s.ColdStarts++
				cold = append(cold, t.ColdStartMs)
			}
		}
		if x.ColdStarts > 0 {
			coldLat = append(coldLat, x.LatencyMs)
		} else {
			warmLat = append(warmLat, x.LatencyMs)
		}
	}
	start := math.Max(warmupS, math.Min(first, last))
	if len(lat) > 0 {
		last = math.Max(last, settledS)
	}
	s.WindowS = last - start
	if s.WindowS > 0 {
		s.Throughput = float64(len(lat)) / s.WindowS
		s.TasksPerSecond = float64(calls) / s.WindowS
	}
	s.Latency, s.Span, s.Overhead, s.OverheadTask = Summarize(lat), Summarize(span), Summarize(over), Summarize(overTask)
	s.Queue, s.Function, s.CriticalPath, s.ColdStart = Summarize(queue), Summarize(fn), Summarize(cp), Summarize(cold)
	if len(coldLat) > 0 && len(warmLat) > 0 {
		s.ColdPenaltyMs = Summarize(coldLat).P50 - Summarize(warmLat).P50
	}
	return s
}

func series(samples []Sample, warmupS float64, bin time.Duration) Series {
	width := bin.Seconds()
	var out Series
	buckets := map[int][]float64{}
	colds := map[int]int{}
	maxBin := -1
	for i := range samples {
		x := &samples[i]
		if x.Status != "completed" {
			continue
		}
		b := int((x.SubmittedS + x.LatencyMs/1000) / width)
		buckets[b] = append(buckets[b], x.LatencyMs)
		colds[b] += x.ColdStarts
		maxBin = max(maxBin, b)
	}
	for b := 0; b <= maxBin; b++ {
		v := buckets[b]
		slices.Sort(v)
		out.TimeS = append(out.TimeS, (float64(b)+0.5)*width)
		out.Throughput = append(out.Throughput, float64(len(v))/width)
		p50, p99 := noData, noData
		if len(v) > 0 {
			p50, p99 = Percentile(v, 50), Percentile(v, 99)
		}
		out.P50Ms = append(out.P50Ms, p50)
		out.P99Ms = append(out.P99Ms, p99)
		out.ColdStarts = append(out.ColdStarts, colds[b])
	}
	return out
}

// hasCalls reports whether a task list contains anything that makes a
// call, so that an empty history can be told from a call-less workflow.
func hasCalls(l dsl.TaskList) bool {
	for _, nt := range l {
		t := nt.Task
		switch t.Kind {
		case dsl.KindCall, dsl.KindRun, dsl.KindEmit:
			return true
		case dsl.KindDo:
			if hasCalls(t.Do) {
				return true
			}
		case dsl.KindFor:
			if hasCalls(t.For.Do) {
				return true
			}
		case dsl.KindFork:
			if hasCalls(t.Fork.Branches) {
				return true
			}
		case dsl.KindTry:
			if hasCalls(t.Try.Try) || t.Try.Catch != nil && hasCalls(t.Try.Catch.Do) {
				return true
			}
		}
	}
	return false
}

// idleMeter integrates the time function instances spend idle and warm,
// from the function manager's lifecycle events.
type idleMeter struct {
	mu        sync.Mutex
	idleSince map[string]time.Time // live idle instances
	function  map[string]string    // instance -> function
	spans     map[string][]span    // function -> closed idle spans
	starts    map[string][]span    // function -> cold starts
	created   map[string]int
	memory    map[string]int64 // instance -> bytes held, as last reported
}

// span is a time an instance held memory without serving a call: idle,
// or starting. bytes is the memory it held (zero when not reported).
type span struct {
	from, to time.Time
	bytes    int64
}

func newIdleMeter() *idleMeter {
	return &idleMeter{idleSince: map[string]time.Time{}, function: map[string]string{}, spans: map[string][]span{},
		starts: map[string][]span{}, created: map[string]int{}, memory: map[string]int64{}}
}

// Observe implements function.Observer; it runs on the call path and only
// updates maps.
func (m *idleMeter) Observe(e function.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch e.Kind {
	case function.EventCreated:
		m.created[e.Function]++
		// A starting instance's memory grows to what it holds once
		// started; counting all of it from the start overstates the
		// cost of a start a little, for every policy alike.
		m.starts[e.Function] = append(m.starts[e.Function], span{e.Time.Add(-e.Phases.Total()), e.Time, e.Memory})
		m.function[e.Instance] = e.Function
		m.idleSince[e.Instance] = e.Time
		m.memory[e.Instance] = e.Memory
	case function.EventIdle:
		m.function[e.Instance] = e.Function
		m.idleSince[e.Instance] = e.Time
		m.memory[e.Instance] = e.Memory
	case function.EventBusy, function.EventEvicted:
		if since, ok := m.idleSince[e.Instance]; ok {
			m.spans[e.Function] = append(m.spans[e.Function], span{since, e.Time, m.memory[e.Instance]})
			delete(m.idleSince, e.Instance)
		}
		if e.Kind == function.EventEvicted {
			delete(m.memory, e.Instance)
			delete(m.function, e.Instance)
		}
	}
}

// finish closes the spans of instances still idle at the end of the run.
func (m *idleMeter) finish(at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for inst, since := range m.idleSince {
		fn := m.function[inst]
		m.spans[fn] = append(m.spans[fn], span{since, at, m.memory[inst]})
		delete(m.idleSince, inst)
	}
}

func (m *idleMeter) idleSeconds(functions []string, from, to time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return sumSpans(m.spans, functions, from, to, false)
}

// heldMBs is the memory the functions' instances held without serving a
// call, idle or starting, integrated over time within [from, to]: in
// MB-seconds.
func (m *idleMeter) heldMBs(functions []string, from, to time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return sumSpans(m.spans, functions, from, to, true) + sumSpans(m.starts, functions, from, to, true)
}

// startSeconds is the time the functions' instances spent starting: memory
// held before an instance can serve, which on-demand pays on every call.
func (m *idleMeter) startSeconds(functions []string, from, to time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return sumSpans(m.starts, functions, from, to, false)
}

// startDurations summarises the starts that began within [from, to], of
// every function.
func (m *idleMeter) startDurations(from, to time.Time) Dist {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ms []float64
	for _, spans := range m.starts {
		for _, s := range spans {
			if !s.from.Before(from) && !s.from.After(to) {
				ms = append(ms, float64(s.to.Sub(s.from).Nanoseconds())/1e6)
			}
		}
	}
	return Summarize(ms)
}

// sumSpans adds up the parts of the functions' spans within [from, to],
// in seconds, or in MB-seconds of the memory they held when byMemory.
func sumSpans(spans map[string][]span, functions []string, from, to time.Time, byMemory bool) float64 {
	total := 0.0
	for _, fn := range functions {
		for _, s := range spans[fn] {
			a, b := s.from, s.to
			if a.Before(from) {
				a = from
			}
			if b.After(to) {
				b = to
			}
			if !b.After(a) {
				continue
			}
			if byMemory {
				total += b.Sub(a).Seconds() * float64(s.bytes) / (1 << 20)
			} else {
				total += b.Sub(a).Seconds()
			}
		}
	}
	return total
}

func (m *idleMeter) usage(from, to time.Time) []FunctionIdle {
	m.mu.Lock()
	names := make([]string, 0, len(m.created))
	for fn := range m.created {
		names = append(names, fn)
	}
	m.mu.Unlock()
	sort.Strings(names)
	out := make([]FunctionIdle, 0, len(names))
	for _, fn := range names {
		m.mu.Lock()
		n := m.created[fn]
		m.mu.Unlock()
		out = append(out, FunctionIdle{Function: fn, Instances: n, IdleS: m.idleSeconds([]string{fn}, from, to)})
	}
	return out
}
