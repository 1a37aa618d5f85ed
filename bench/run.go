package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonflow/baton/client"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/function"
	fnhttp "github.com/batonflow/baton/function/http"
	"github.com/batonflow/baton/function/process"
	"github.com/batonflow/baton/function/wasm"
)

// Config is one configuration of a run; --compare makes several, run
// interleaved.
type Config struct {
	Label string `json:"label"`
	// Durability is "durable", "none", or "" to keep a user's document's.
	Durability string    `json:"durability,omitempty"`
	Functions  Functions `json:"functions"`
}

// Options configure a run.
type Options struct {
	Workload Workload
	Configs  []Config
	Arrivals Arrivals
	// Duration bounds the run's arrivals in time, Invocations in number;
	// at least one is needed (a trace replay ends with its trace).
	Duration    time.Duration
	Invocations int
	// Warmup is excluded from the statistics: invocations submitted
	// before it has passed are recorded but not summarised.
	Warmup time.Duration
	Seed   uint64
	// Work is the simulated function time of the http endpoint.
	Work time.Duration
	// KeepAlive is the idle time after which function instances are
	// evicted; zero keeps the function layer's default.
	KeepAlive time.Duration
	// MaxInstances caps each benchmarked function's pool.
	MaxInstances int
	// MaxInFlight caps an open loop's outstanding invocations; arrivals
	// beyond it are counted as dropped rather than queued in the client.
	MaxInFlight int
	// DataDir keeps the embedded engine's database; empty uses a
	// temporary directory removed at the end.
	DataDir string
	// Server benchmarks a running server at this URL instead, or several
	// servers sharing one store: comma-separated URLs, over which starts
	// are spread round-robin.
	Server string
	// Connect, when set, makes the client of each server over hc (the
	// caller may add what requests need, such as credentials); the
	// default is client.New.
	Connect    func(url string, hc *http.Client) (*client.Client, error)
	CacheDir   string
	WasmSource string
	// Progress receives the progress display; Interactive redraws one
	// line (a terminal), otherwise a plain line is written every
	// ProgressEvery.
	Progress      io.Writer
	Interactive   bool
	ProgressEvery time.Duration
	Logger        *slog.Logger
	// Command is the command line, recorded in the results.
	Command string
	// CPUProfile, when set, receives a pprof CPU profile of the load
	// phase: from the first arrival until the last invocation has ended
	// and its figures are taken (reading its history included).
	CPUProfile io.Writer
	// KeepSamples keeps every invocation's sample for results.json, so
	// that the harness's memory grows with the run; without it the run
	// keeps only streaming histograms and fixed time series.
	KeepSamples bool
	// HistorySample bounds, over REST, how many completed measured
	// invocations of each configuration have their histories read: a
	// uniform sample of that many, so that reading them after the load
	// costs the server a fixed amount however long the run. The others
	// count in the invocations, latency and tasks (by the call count
	// their workflow fixes; a workflow that fixes none, or is not
	// durable, has every history read). Zero means
	// DefaultHistorySample; negative, every history.
	HistorySample int
}

// record is what the load generator knows of one invocation until the
// analyzer has taken its figures.
type record struct {
	config, stream int
	input          int
	scheduled      time.Duration // open loop: the intended arrival
	submitted      time.Duration
	returned       time.Duration
	out            outcome
	err            error
}

type runner struct {
	opts      Options
	tgt       target
	em        *embedded
	wfs       [][]*Workflow // by config, then stream
	start     time.Time
	completed atomic.Int64
	failed    atomic.Int64
	inFlight  atomic.Int64
	dropped   atomic.Int64
	idle      *idleMeter
	an        *analyzer
	log       *slog.Logger
	// settled is when, after the load, the embedded engine had written
	// the rows of every ended invocation (see engine.Settle).
	settled time.Duration
}

// Run runs a benchmark and computes its results.
func Run(ctx context.Context, opts Options) (*Results, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &runner{opts: opts, idle: newIdleMeter(), log: log}

	kinds := map[Functions]bool{}
	for _, c := range opts.Configs {
		kinds[c.Functions] = true
	}
	host, err := startFunctionHost(ctx, kinds, hostOptions{Work: opts.Work, CacheDir: opts.CacheDir, WasmSource: opts.WasmSource})
	if err != nil {
		return nil, err
	}
	defer host.close(context.Background())

	streams := opts.Arrivals.Streams()
	if opts.Server != "" {
		tgt, err := dialServers(ctx, opts.Server, opts.Connect)
		if err != nil {
			return nil, err
		}
		r.tgt = tgt
		if err := deployOnServer(ctx, tgt, host, kinds, streams, opts.MaxInstances); err != nil {
			return nil, err
		}
	} else {
		mgrOpts := function.Options{Observers: []function.Observer{r.idle}}
		if opts.KeepAlive > 0 {
			mgrOpts.KeepAlive = function.IdleTimeout(opts.KeepAlive)
		}
		makeRuntimes := func(blobs *function.Blobs) (map[function.Kind]function.Runtime, error) {
			wasmRT, err := wasm.New(wasm.Options{CacheDir: opts.CacheDir, Blobs: blobs, Logger: log})
			if err != nil {
				return nil, fmt.Errorf("bench: wasm runtime: %w", err)
			}
			return map[function.Kind]function.Runtime{
				function.KindWasm:    wasmRT,
				function.KindProcess: process.New(process.Options{Logger: log}),
				function.KindHTTP:    fnhttp.New(fnhttp.Options{Logger: log}),
			}, nil
		}
		em, err := openEmbedded(ctx, opts.DataDir, map[string]engine.Executor{noopExecutorName: noopExecutor}, mgrOpts, makeRuntimes, log)
		if err != nil {
			return nil, err
		}
		r.em, r.tgt = em, em
		for f := range kinds {
			if f == Noop || f == Set {
				continue
			}
			for s := range streams {
				spec, err := host.spec(f, functionName(f, s, streams), opts.MaxInstances)
				if err != nil {
					return nil, errors.Join(err, em.close(ctx))
				}
				// The workloads' workflows are the bench namespace's,
				// and call that namespace's functions.
				spec.Namespace = Namespace
				if _, err := em.reg.Deploy(ctx, spec); err != nil {
					return nil, errors.Join(fmt.Errorf("bench: deploying %s: %w", spec.Name, err), em.close(ctx))
				}
			}
		}
	}
	defer r.tgt.close(context.Background())

	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed+1))
	r.wfs = make([][]*Workflow, len(opts.Configs))
	for ci, c := range opts.Configs {
		for s := range streams {
			call := Call{Function: functionName(c.Functions, s, streams), Set: c.Functions == Set}
			if opts.Server != "" && c.Functions == HTTPFunctions {
				// The DSL's own call: the endpoint is the harness's.
				call = Call{Endpoint: host.endpoint}
			}
			name := opts.Workload.Label() + "-" + c.Label
			if streams > 1 {
				name += fmt.Sprintf("-s%d", s)
			}
			wf, err := opts.Workload.Build(sanitizeName(name), call, c.Durability, rng)
			if err != nil {
				return nil, err
			}
			if err := r.tgt.apply(ctx, wf); err != nil {
				return nil, fmt.Errorf("bench: applying %s: %w", wf.Name, err)
			}
			r.wfs[ci] = append(r.wfs[ci], wf)
		}
	}

	var schedule []Arrival
	if opts.Arrivals.Kind != Closed {
		if schedule, err = opts.Arrivals.Schedule(rng, opts.Duration, opts.Invocations); err != nil {
			return nil, err
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The meter probes the disk first, which takes a moment: before the
	// progress display, which reads the start time.
	m, err := r.startMeter(runCtx)
	if err != nil {
		return nil, err
	}
	r.start = time.Now()
	progressDone := make(chan struct{})
	stopProgress := r.progress(runCtx, len(schedule), progressDone)
	if opts.CPUProfile != nil {
		if err := pprof.StartCPUProfile(opts.CPUProfile); err != nil {
			return nil, fmt.Errorf("bench: CPU profile: %w", err)
		}
	}
	r.an = r.startAnalyzer(runCtx)
	if opts.Arrivals.Kind == Closed {
		r.closedLoop(runCtx)
	} else {
		r.openLoop(runCtx, schedule)
	}
	elapsed := time.Since(r.start)
	// The engine's writes settle while the analyzer takes the last
	// figures: the window of throughput ends with the former.
	var settleErr error
	if r.em != nil {
		settleErr = r.em.eng.Settle(runCtx)
		r.settled = time.Since(r.start)
	}
	// The analyzer's CPU time during the load is measured and taken
	// out of the engine's; the deferred histories are read once the
	// engine's CPU and memory are taken.
	r.an.finishLive()
	if settleErr != nil {
		r.an.finish(runCtx)
		return nil, settleErr
	}
	if opts.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	m.finish(runCtx, r.an.cpu.Load())
	analyzed := r.an.finish(runCtx)
	stopProgress()
	<-progressDone
	r.idle.finish(time.Now())
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if analyzed != nil {
		return nil, analyzed
	}
	return r.results(elapsed, m.res), nil
}

func (o *Options) check() error {
	if err := o.Workload.Validate(); err != nil {
		return err
	}
	if len(o.Configs) == 0 {
		return errors.New("bench: no configuration to run")
	}
	if err := o.Arrivals.Validate(); err != nil {
		return err
	}
	if o.Arrivals.Kind == Closed && o.Duration <= 0 && o.Invocations <= 0 {
		return errors.New("bench: a closed loop needs a --duration or --invocations bound")
	}
	if o.MaxInstances <= 0 {
		o.MaxInstances = 256
	}
	if o.HistorySample == 0 {
		o.HistorySample = DefaultHistorySample
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 10000
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 5 * time.Second
	}
	return nil
}

func sanitizeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		default:
			b[i] = '-'
		}
	}
	return string(b)
}

// one runs one invocation, fills its record and hands it to the analyzer.
// It allocates nothing of its own: the input was generated before the run.
func (r *runner) one(ctx context.Context, rec record) {
	wf := r.wfs[rec.config][rec.stream]
	r.inFlight.Add(1)
	rec.submitted = time.Since(r.start)
	rec.out, rec.err = r.tgt.invoke(ctx, wf, rec.input)
	rec.returned = time.Since(r.start)
	r.inFlight.Add(-1)
	if rec.err != nil || rec.out.Status != core.StatusCompleted {
		r.failed.Add(1)
	} else {
		r.completed.Add(1)
	}
	r.an.add(rec)
}

// closedLoop runs C clients; client w's j-th invocation goes to
// configuration (w+j) mod K, so configurations interleave.
func (r *runner) closedLoop(ctx context.Context) {
	var (
		issued atomic.Int64
		wg     sync.WaitGroup
	)
	k := len(r.opts.Configs)
	for w := range r.opts.Arrivals.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				if ctx.Err() != nil || (r.opts.Duration > 0 && time.Since(r.start) >= r.opts.Duration) {
					return
				}
				n := issued.Add(1)
				if r.opts.Invocations > 0 && n > int64(r.opts.Invocations) {
					return
				}
				r.one(ctx, record{config: (w + j) % k, input: int(n)})
			}
		}()
	}
	wg.Wait()
}

// openLoop fires the schedule's arrivals at their times, whether or not
// earlier ones have ended; arrival i goes to configuration i mod K.
func (r *runner) openLoop(ctx context.Context, schedule []Arrival) {
	k := len(r.opts.Configs)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i, a := range schedule {
		if wait := a.At - time.Since(r.start); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		if r.inFlight.Load() >= int64(r.opts.MaxInFlight) {
			r.dropped.Add(1)
			continue
		}
		wg.Add(1)
		go func(rec record) {
			defer wg.Done()
			r.one(ctx, rec)
		}(record{config: i % k, stream: a.Stream, input: i, scheduled: a.At})
	}
}

// progress shows the run's progress until stop is called.
func (r *runner) progress(ctx context.Context, planned int, done chan<- struct{}) (stop func()) {
	out := r.opts.Progress
	stopCh := make(chan struct{})
	var once sync.Once
	if out == nil {
		close(done)
		return func() {}
	}
	every := r.opts.ProgressEvery
	if r.opts.Interactive {
		every = 200 * time.Millisecond
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		last, lastAt := int64(0), time.Now()
		line := func(final bool) {
			now := time.Now()
			n := r.completed.Load() + r.failed.Load()
			rate := float64(n-last) / now.Sub(lastAt).Seconds()
			if final {
				// The last interval is a sliver; the whole run's rate says more.
				rate = float64(n) / now.Sub(r.start).Seconds()
			}
			last, lastAt = n, now
			elapsed := now.Sub(r.start).Truncate(100 * time.Millisecond)
			bar := ""
			if frac := r.fraction(elapsed, n, planned); frac >= 0 {
				const width = 24
				filled := int(frac * width)
				bar = "[" + repeat('#', filled) + repeat('.', width-filled) + "] "
			}
			msg := fmt.Sprintf("%s%s  %d done  %d failed  %d in flight  %.0f/s", bar, elapsed, n-r.failed.Load(), r.failed.Load(), r.inFlight.Load(), rate)
			if d := r.dropped.Load(); d > 0 {
				msg += fmt.Sprintf("  %d dropped", d)
			}
			if r.opts.Interactive {
				fmt.Fprintf(out, "\r\033[K%s", msg)
				if final {
					fmt.Fprintln(out)
				}
			} else {
				fmt.Fprintln(out, msg)
			}
		}
		for {
			select {
			case <-tick.C:
				line(false)
			case <-stopCh:
				line(true)
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { once.Do(func() { close(stopCh) }) }
}

// fraction is how far the run is, or -1 when that is unknown.
func (r *runner) fraction(elapsed time.Duration, n int64, planned int) float64 {
	f := -1.0
	if r.opts.Duration > 0 {
		f = elapsed.Seconds() / r.opts.Duration.Seconds()
	}
	total := r.opts.Invocations
	if planned > 0 {
		total = planned
	}
	if total > 0 {
		f = max(f, float64(n)/float64(total))
	}
	if f > 1 {
		f = 1
	}
	return f
}

func repeat(c byte, n int) string {
	if n <= 0 {
		return ""
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

// analyzer takes each invocation's figures as it ends, on a few
// goroutines of its own so that clients go on submitting, folds them into
// its configuration's streaming statistics and drops the record and the
// history: the harness keeps no per-invocation state past this point
// unless KeepSamples asks for it. Its queue is bounded; when the history
// reads fall behind, clients wait for room rather than the queue growing.
type analyzer struct {
	r     *runner
	queue chan record
	wg    sync.WaitGroup
	tasks atomic.Int64
	// cpu is the CPU time the analyzer's goroutines spent, each on an
	// OS thread of its own, so that the engine's CPU can be told from
	// the harness's reading of histories (-1 where threads' CPU time is
	// not measured).
	cpu atomic.Int64
	// deferred holds the records of invocations whose histories are in
	// a store, read after the load: reading them during it would add to
	// the work of the engine measured (a server's CPU, the embedded
	// SQLite store's reads beside its writer). A record is small, but
	// there is one per such invocation until the end.
	deferMu  sync.Mutex
	deferred []record
	// sampler picks the histories read over REST; nil when every
	// history is read.
	sampler *historySampler

	mu    sync.Mutex
	stats []*configStats
	lag   Histogram
	// err is the first failure to read a history, failures how many.
	err      error
	failures int
}

// analyzerQueue bounds the ended invocations waiting for their figures;
// a non-durable one's calls wait in the tap meanwhile.
const analyzerQueue = 256

func (r *runner) startAnalyzer(ctx context.Context) *analyzer {
	a := &analyzer{r: r, queue: make(chan record, analyzerQueue)}
	for range r.opts.Configs {
		a.stats = append(a.stats, newConfigStats(r.opts.Warmup.Seconds(), r.opts.KeepSamples))
	}
	if r.opts.Server != "" && r.opts.HistorySample > 0 {
		a.sampler = newHistorySampler(r.opts.HistorySample, r.opts.Seed, r.wfs)
		for ci := range r.opts.Configs {
			a.stats[ci].sampled = a.sampler.sampled(ci)
		}
	}
	for range min(runtime.GOMAXPROCS(0)*2, 8) {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0, ok := threadCPU()
			for rec := range a.queue {
				a.take(ctx, &rec)
			}
			if cpu1, ok1 := threadCPU(); ok && ok1 {
				a.cpu.Add(int64(cpu1 - cpu0))
			} else {
				a.cpu.Store(-1 << 62)
			}
		}()
	}
	return a
}

// add hands an ended invocation to the analyzer, or keeps it for after
// the load when its history is in a store.
func (a *analyzer) add(rec record) {
	if a.sampler != nil {
		a.deferMu.Lock()
		read, unread, ok := a.sampler.offer(rec, rec.submitted >= a.r.opts.Warmup)
		if read {
			a.deferred = append(a.deferred, rec)
		}
		a.deferMu.Unlock()
		if ok {
			s := a.r.unreadSample(&unread, a.sampler.fixed[unread.config][unread.stream])
			a.fold(&unread, &s, nil)
		}
		return
	}
	if a.r.opts.Server != "" || rec.err == nil && engine.Durable(a.r.wfs[rec.config][rec.stream].Def) {
		a.deferMu.Lock()
		a.deferred = append(a.deferred, rec)
		a.deferMu.Unlock()
		return
	}
	a.queue <- rec
}

// finishLive waits for the figures of the invocations analysed as they
// ended.
func (a *analyzer) finishLive() {
	close(a.queue)
	a.wg.Wait()
}

// finish reads the deferred histories, a few at a time, and returns the
// first failure to read one.
func (a *analyzer) finish(ctx context.Context) error {
	a.deferMu.Lock()
	deferred := a.deferred
	a.deferred = nil
	if a.sampler != nil {
		deferred = append(deferred, a.sampler.take()...)
	}
	a.deferMu.Unlock()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(runtime.GOMAXPROCS(0)*2, 8) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(deferred) {
					return
				}
				a.take(ctx, &deferred[i])
				deferred[i] = record{}
			}
		}()
	}
	wg.Wait()
	if a.failures > 1 {
		return fmt.Errorf("%w (and %d more histories could not be read)", a.err, a.failures-1)
	}
	return a.err
}

// heldBytes is the memory the analyzer's statistics hold.
func (a *analyzer) heldBytes() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.lag.bytes()
	for _, st := range a.stats {
		n += st.heldBytes()
	}
	return n
}

func (a *analyzer) take(ctx context.Context, rec *record) {
	s, err := a.r.sample(ctx, rec)
	if err == nil && a.sampler != nil {
		err = a.sampler.checkCalls(&s)
	}
	a.fold(rec, &s, err)
}

// fold adds an invocation's sample to its configuration's statistics.
func (a *analyzer) fold(rec *record, s *Sample, err error) {
	a.tasks.Add(int64(len(s.Tasks) + s.Calls))
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		if a.err == nil {
			a.err = err
		}
		a.failures++
	}
	if a.r.opts.Arrivals.Kind != Closed {
		a.lag.Add(ms(rec.submitted - rec.scheduled))
	}
	a.stats[rec.config].add(s)
}

func (r *runner) sample(ctx context.Context, rec *record) (Sample, error) {
	wf := r.wfs[rec.config][rec.stream]
	s := r.clientSample(rec)
	if rec.err != nil {
		if r.em != nil && rec.out.ID != "" {
			// Its calls, if any ran, are not read: let them go.
			r.em.tap.forget(rec.out.ID)
		}
		s.Error = rec.err.Error()
		s.Status = "error"
		return s, nil
	}
	events, err := r.tgt.history(ctx, wf, rec.out)
	if err != nil {
		return s, fmt.Errorf("bench: history of %s: %w", rec.out.ID, err)
	}
	facts := ReadHistory(events)
	s.fill(wf, facts)
	if facts.Error != "" {
		s.Error = facts.Error
	}
	return s, nil
}

// clientSample is what the client saw of an invocation: its submission,
// its end and its latency.
func (r *runner) clientSample(rec *record) Sample {
	return Sample{
		Config: rec.config, Stream: rec.stream, ID: rec.out.ID,
		ScheduledS: rec.scheduled.Seconds(), SubmittedS: rec.submitted.Seconds(),
		LatencyMs: ms(rec.returned - rec.submitted), Status: string(rec.out.Status),
		Warmup: rec.submitted < r.opts.Warmup,
	}
}

// failure says why an invocation did not complete.
func (s *Sample) failure() string {
	if s.Error != "" {
		return s.Error
	}
	return "invocation " + s.ID + " ended " + s.Status
}

// Sample is one invocation's measurements.
type Sample struct {
	Config int    `json:"config"`
	Stream int    `json:"stream,omitempty"`
	ID     string `json:"id"`
	// Warmup marks invocations submitted during the warm-up period,
	// which the summaries leave out.
	Warmup bool `json:"warmup,omitempty"`
	// ScheduledS is an open loop's intended arrival, SubmittedS the
	// actual one, in seconds from the start of the run.
	ScheduledS float64 `json:"scheduledS,omitempty"`
	SubmittedS float64 `json:"submittedS"`
	// LatencyMs is end-to-end, as the client saw it.
	LatencyMs float64 `json:"latencyMs"`
	// SpanMs is the history's own span, InvocationStarted to its end.
	SpanMs float64 `json:"spanMs"`
	Status string  `json:"status"`
	Error  string  `json:"error,omitempty"`
	// Traced says whether the history held the invocation's calls; a
	// server's non-durable invocations keep only their ends.
	Traced bool `json:"traced"`
	// Unread marks an invocation whose history was not read (over REST,
	// outside the sample): it counts with its latency and Calls, the
	// call count its workflow fixes, and has no figure from a history.
	Unread         bool         `json:"unread,omitempty"`
	Calls          int          `json:"calls,omitempty"`
	CriticalPathMs float64      `json:"criticalPathMs"`
	CriticalCalls  int          `json:"criticalCalls"`
	OverheadMs     float64      `json:"overheadMs"`
	OverheadTaskMs float64      `json:"overheadPerTaskMs"`
	ColdStarts     int          `json:"coldStarts,omitempty"`
	ColdStartMs    float64      `json:"coldStartMs,omitempty"`
	Tasks          []TaskSample `json:"tasks"`
}

func (s *Sample) fill(wf *Workflow, facts HistoryFacts) {
	if !facts.Ended.IsZero() && !facts.Started.IsZero() {
		s.SpanMs = ms(facts.Ended.Sub(facts.Started))
	}
	s.Tasks = facts.Tasks
	s.Traced = len(facts.Tasks) > 0 || !hasCalls(wf.Def.Do)
	if !s.Traced {
		return
	}
	s.CriticalPathMs, s.CriticalCalls = CriticalPath(wf.Def, facts.Tasks)
	s.OverheadMs = s.LatencyMs - s.CriticalPathMs
	if s.CriticalCalls > 0 {
		s.OverheadTaskMs = s.OverheadMs / float64(s.CriticalCalls)
	} else if wf.SetSteps > 0 {
		s.OverheadTaskMs = s.OverheadMs / float64(wf.SetSteps)
		s.CriticalCalls = wf.SetSteps
	}
	for _, t := range facts.Tasks {
		if t.Cold {
			s.ColdStarts++
			s.ColdStartMs += t.ColdStartMs
		}
	}
}
