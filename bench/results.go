package bench

import (
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/function"
)

// Results are a run's summaries, distributions and time series (and its
// samples with KeepSamples): what results.json holds.
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
	// HistorySample is, over REST, the most completed measured
	// invocations per configuration whose histories were read (0: all).
	HistorySample int `json:"historySample,omitempty"`
	// BinS is the width of the time series' bins.
	BinS float64 `json:"binS"`
	// Resources are the engine's CPU, commits and memory over the load,
	// and the disk's commit time.
	Resources Resources `json:"resources"`
}

// ConfigResult is one configuration's outcome.
type ConfigResult struct {
	Config  Config  `json:"config"`
	Summary Summary `json:"summary"`
	Series  Series  `json:"series"`
	// LatencyCDF and OverheadTaskCDF are the measured invocations'
	// distributions of latency and overhead per task, from the
	// histograms: one point per bucket.
	LatencyCDF      []CDFPoint `json:"latencyCdf,omitempty"`
	OverheadTaskCDF []CDFPoint `json:"overheadPerTaskCdf,omitempty"`
	// Samples are every invocation's, only with KeepSamples (--samples):
	// they grow with the run.
	Samples []Sample `json:"samples,omitempty"`
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
	// HistoriesRead counts the measured invocations whose histories were
	// read: every one but the client's errors, unless HistorySampled.
	HistoriesRead int `json:"historiesRead"`
	// HistorySampled says that over REST the histories read were a
	// uniform sample of the completed invocations (Meta.HistorySample at
	// most; HistoriesRead says how many): latency, invocations and
	// tasks/s count every invocation, the figures from histories (span,
	// overhead, queue, function time, critical path, cold starts) are
	// the sample's.
	HistorySampled bool `json:"historySampled,omitempty"`
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

func (r *runner) results(elapsed time.Duration, resources Resources) *Results {
	an := r.an
	resources.perTask(an.tasks.Load())
	resources.HarnessStatsKB = float64(an.heldBytes()) / 1024
	res := &Results{Meta: Meta{
		Command: r.opts.Command, Workload: r.opts.Workload.Label(), Arrivals: r.opts.Arrivals.Label(),
		Target: "embedded engine (SQLite)", Started: r.start.UTC(), ElapsedS: elapsed.Seconds(),
		WarmupS: r.opts.Warmup.Seconds(), Seed: r.opts.Seed,
		GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.NumCPU(),
		Dropped: r.dropped.Load(), Resources: resources,
	}}
	if r.opts.Server != "" {
		res.Meta.Target = "server " + r.opts.Server
		if an.sampler != nil {
			res.Meta.HistorySample = an.sampler.limit
		}
	}
	if r.opts.Arrivals.Kind != Closed {
		res.Meta.LagMs = an.lag.Dist()
	}
	// Every configuration's series shares one bin width: the widest any
	// of them had to take.
	bin := binWidth(elapsed - r.opts.Warmup)
	for _, st := range an.stats {
		bin = max(bin, st.series.width)
	}
	res.Meta.BinS = bin.Seconds()
	windowEnd := r.start.Add(elapsed)
	streams := r.opts.Arrivals.Streams()
	for ci, c := range r.opts.Configs {
		st := an.stats[ci]
		var fns []string
		for s := range streams {
			// The idle meter knows functions by their references.
			fns = append(fns, function.Qualify(Namespace, functionName(c.Functions, s, streams)))
		}
		sum := st.summary(r.settled.Seconds())
		sum.IdleInstanceS = r.idle.idleSeconds(fns, r.start.Add(r.opts.Warmup), windowEnd)
		ser, _ := st.series.series(bin)
		res.Configs = append(res.Configs, ConfigResult{
			Config: c, Summary: sum, Series: ser, Samples: st.kept(),
			LatencyCDF: st.lat.CDF(), OverheadTaskCDF: st.overTask.CDF(),
		})
	}
	res.Function = r.idle.usage(r.start.Add(r.opts.Warmup), windowEnd)
	return res
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
