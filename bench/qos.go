package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/function/wasm"
	"github.com/batonflow/baton/prewarm"
	"github.com/batonflow/baton/qos"
)

// The QoS experiment (`baton bench qos`, docs/qos.md): the saturation rate
// μ of a CPU-bound wasm workload first, then open-loop Poisson arrivals
// totalling 2μ from four tenants, under runs that differ only in how the
// server schedules: H alone, FIFO (QoS off), QoS on, three ablations, B
// alone. Clients go through the REST API and honour Retry-After.

// QoSRunNames are the runs, in the order they run.
var QoSRunNames = []string{"L0", "FIFO", "QoS", "no-EDF", "no-continuations", "no-admission", "no-cpu-priority", "B-alone"}

// QoSOptions configure the experiment.
type QoSOptions struct {
	// Duration is each run's arrivals; Drain how long a run waits for
	// its last requests afterwards.
	Duration, Drain time.Duration
	// MuDuration is the saturation measurement's length; Mu, when set,
	// skips it.
	MuDuration time.Duration
	Mu         float64
	// Load is the total offered load in units of μ (2).
	Load float64
	// Work is the target time of one function call (10ms).
	Work time.Duration
	// Deadline is tenant H's (200ms).
	Deadline time.Duration
	// Runs selects runs by name (default all).
	Runs []string
	// Seats are the G2 seats per pool (default qos.DefaultSeats).
	Seats map[string]int
	// MaxInFlight caps each run's outstanding requests; arrivals beyond
	// it are counted as dropped by the client.
	MaxInFlight int
	CacheDir    string
	WasmSource  string
	Seed        uint64
	Logger      *slog.Logger
	Progress    io.Writer
	Command     string
	// CPUProfile, when set, asks for a CPU profile of each run, in a
	// file of this name with the run's before its extension
	// (QoSProfilePath).
	CPUProfile string
	// Isolate, when set, makes each run (QoSRunSpec.Run) elsewhere,
	// typically in a fresh child process: a run made in the process of the
	// one before inherits its heap, its garbage and its last goroutines,
	// and was measured doing less (a QoS run right after FIFO did about
	// 0.1μ worse than the same run alone). Nil runs them in this process.
	Isolate func(context.Context, QoSRunSpec) (*QoSRun, error)
}

func (o *QoSOptions) defaults() {
	if o.Duration <= 0 {
		o.Duration = 60 * time.Second
	}
	if o.Drain <= 0 {
		o.Drain = 30 * time.Second
	}
	if o.MuDuration <= 0 {
		o.MuDuration = 15 * time.Second
	}
	if o.Load <= 0 {
		o.Load = 2
	}
	if o.Work <= 0 {
		o.Work = 10 * time.Millisecond
	}
	if o.Deadline <= 0 {
		o.Deadline = 200 * time.Millisecond
	}
	if len(o.Runs) == 0 {
		o.Runs = QoSRunNames
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 20000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Tenant is one client population of the experiment.
type Tenant struct {
	Name  string `json:"name"`
	Class string `json:"class"`
	// Share is its rate in units of μ.
	Share float64 `json:"share"`
	// Deadline is sent as Baton-Timeout; zero for none.
	Deadline time.Duration `json:"deadline,omitempty"`
	// ThreeStep is the fraction of its starts that run the 3-step
	// workflow (the others run 1 step).
	ThreeStep float64 `json:"threeStep,omitempty"`
}

// QoSResults is the experiment's outcome.
type QoSResults struct {
	Command string    `json:"command"`
	Started time.Time `json:"started"`
	CPUs    int       `json:"cpus"`
	// Procs is GOMAXPROCS during the runs.
	Procs int    `json:"gomaxprocs"`
	Load  string `json:"load,omitempty"`
	// Mu is the saturation rate in 1-step workflows per second: calls
	// per second, the unit of Goodput.
	Mu         float64 `json:"mu"`
	Iterations uint64  `json:"iterations"`
	// CallMs is the measured time of one function call alone (the
	// fastest of seven).
	CallMs   float64  `json:"callMs"`
	Duration float64  `json:"durationS"`
	Tenants  []Tenant `json:"tenants"`
	Runs     []QoSRun `json:"runs"`
}

// QoSRun is one run's outcome.
type QoSRun struct {
	Name string `json:"name"`
	// Mode is the server's --qos.
	Mode string `json:"mode"`
	// PID is the process that made the run.
	PID     int           `json:"pid"`
	Tenants []TenantStats `json:"tenants"`
	// Goodput is the useful work done per second while the load lasted:
	// the function calls of the workflows that completed (h's only
	// within their deadline), in μ's unit (a 1-step workflow is one
	// call, h's 3-step ones three), counted when they ended within the
	// measured window. GoodputWorkflows is the same window's completed
	// workflows per second. The window is the arrivals' time less its
	// first fifth (the warm-up, as μ's): what ends in the drain after
	// the arrivals does not count, or a scheduler that admits a backlog
	// would look faster by finishing it once the load has stopped.
	Goodput          float64 `json:"goodput"`
	GoodputWorkflows float64 `json:"goodputWorkflows"`
	// RSSMaxMB is the largest resident set of this process (engine,
	// server and clients) during the run.
	RSSMaxMB float64 `json:"rssMaxMB"`
	// HeapMaxMB is the largest Go heap of live objects during the run.
	HeapMaxMB float64 `json:"heapMaxMB"`
	// CPUs is the CPU time this process (engine, server and clients) got
	// during the run over the run's wall time: on a shared machine, how
	// much of the cores the run had. CPUPerStartMs is that CPU time per
	// completed start.
	CPUs          float64 `json:"cpus"`
	CPUPerStartMs float64 `json:"cpuPerStartMs"`
	// RejectP99Ms is the client-observed time of rejected starts (the
	// round trip, end to end); RejectServerP99Ms the server's part, its
	// handler's time to answer them.
	RejectP99Ms       float64 `json:"rejectP99Ms"`
	RejectServerP99Ms float64 `json:"rejectServerP99Ms"`
	RetryAfterOK      bool    `json:"retryAfterOnEveryRejection"`
	// CallMs is one function call alone (the fastest of seven), timed
	// in the run's process just before its arrivals: against the
	// calibration's (QoSResults.CallMs), how fast the machine was
	// during this run compared to when μ was measured.
	CallMs float64 `json:"callMs"`
	// MuAfter is the saturation rate measured again, as μ was, in the
	// run's process once its drain was over (runs whose backlog is
	// bounded: not L0, FIFO or no-admission), for as long as μ was:
	// a virtual machine's cores do not keep one speed, and μ was measured
	// minutes before. Goodput against it says how much of what the
	// machine could do then the run did.
	MuAfter float64 `json:"muAfter,omitempty"`
	// BinS is the width of the series' bins.
	BinS float64 `json:"binS"`
	// Timeline is the run second by second, arrivals and drain: where
	// goodput is lost to idle CPU, to work that counts for nothing, or
	// to a stall.
	Timeline *Timeline `json:"timeline,omitempty"`
}

// Timeline is a run's time series, one value per second from the first
// arrival to the end of the drain.
type Timeline struct {
	// CPUs is the CPU time the process got in each second.
	CPUs []float64 `json:"cpus"`
	// Calls are the function calls that ended in each second, of every
	// tenant, whatever became of their workflow.
	Calls []int `json:"calls"`
	// Useful are the calls of the useful completions (as goodput counts
	// them) by the second their workflow ended.
	Useful []int `json:"useful"`
}

// TenantStats is one tenant's outcome in a run.
type TenantStats struct {
	Tenant   string `json:"tenant"`
	Offered  int    `json:"offered"`
	Attempts int    `json:"attempts"`
	// Retries are attempts after a Retry-After.
	Retries   int            `json:"retries"`
	Completed int            `json:"completed"`
	Rejected  map[string]int `json:"rejected,omitempty"`
	// FailedMidway are admitted workflows that did not complete.
	FailedMidway int `json:"failedMidway"`
	// Unfinished are requests still open when the run's drain ended, or
	// dropped by the client's in-flight cap.
	Unfinished int     `json:"unfinished"`
	P50Ms      float64 `json:"p50Ms"`
	P99Ms      float64 `json:"p99Ms"`
	// P99EarlyMs and P99LateMs are the p99 latency seen in the first and
	// the last quarter of the arrivals (SeenP99Series): whether latency
	// grows with the run's length.
	P99EarlyMs float64 `json:"p99EarlyMs"`
	P99LateMs  float64 `json:"p99LateMs"`
	// DeadlineMet is the share of offered starts that completed within
	// the tenant's deadline (tenants with one).
	DeadlineMet float64 `json:"deadlineMet,omitempty"`
	Throughput  float64 `json:"throughput"`
	// Series: completions and p99 latency per bin of arrival time.
	Completions []int     `json:"completions"`
	P99Series   []float64 `json:"p99Series"`
	// SeenP99Series is, per bin of the run's time, the p99 latency a
	// client sees then: the latencies of the starts answered in the bin
	// and the ages, at the bin's end, of those still open (a lower bound
	// of their latency; refused starts are left out). By arrival time
	// the latency cannot show a growing backlog: the starts that arrived
	// last are not overtaken by later ones, and those still open when the
	// run ends have no latency at all.
	SeenP99Series []float64 `json:"seenP99Series"`
	// Phases is where the completed starts' time went (tenant h only).
	Phases *PhaseStats `json:"phases,omitempty"`
}

// qosTenants are the four tenants.
func qosTenants(deadline time.Duration) []Tenant {
	return []Tenant{
		{Name: "h", Class: "critical", Share: 0.2, Deadline: deadline, ThreeStep: 0.5},
		{Name: "s1", Class: "standard", Share: 0.4},
		{Name: "s2", Class: "standard", Share: 0.4},
		{Name: "b", Class: "batch", Share: 1.0},
	}
}

const spinFunction = "spin"

// RunQoS runs the experiment.
func RunQoS(ctx context.Context, opts QoSOptions) (*QoSResults, error) {
	opts.defaults()
	seats := opts.Seats[qos.PoolWasm]
	if seats <= 0 {
		seats = qos.DefaultSeats(qos.PoolWasm)
	}
	opts.Seats = maps.Clone(opts.Seats)
	if opts.Seats == nil {
		opts.Seats = map[string]int{}
	}
	opts.Seats[qos.PoolWasm] = seats
	defer wasm.EnsureProcs(seats)()
	res := &QoSResults{Command: opts.Command, Started: time.Now().UTC(), CPUs: runtime.NumCPU(),
		Tenants: qosTenants(opts.Deadline), Duration: opts.Duration.Seconds()}
	res.Procs = runtime.GOMAXPROCS(0)
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.Load = strings.TrimSpace(string(b))
	}
	wasmPath, err := buildWasm(ctx, opts.WasmSource, opts.CacheDir)
	if err != nil {
		return nil, err
	}
	// Calibrate the spin function to Work, then measure μ.
	iterations, callMs, err := calibrateSpin(ctx, opts, wasmPath)
	if err != nil {
		return nil, err
	}
	res.Iterations, res.CallMs = iterations, callMs
	fmt.Fprintf(opts.Progress, "qos: one call spins %d iterations, %.1fms alone\n", iterations, callMs)
	res.Mu = opts.Mu
	if res.Mu <= 0 {
		if res.Mu, err = measureMu(ctx, opts, wasmPath, iterations); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(opts.Progress, "qos: saturation μ = %.1f workflows/s\n", res.Mu)
	for _, name := range opts.Runs {
		spec := QoSRunSpec{Name: name, Duration: opts.Duration, Drain: opts.Drain, Seats: opts.Seats,
			MaxInFlight: opts.MaxInFlight, CacheDir: opts.CacheDir, WasmPath: wasmPath, Seed: opts.Seed,
			Mu: res.Mu, Iterations: res.Iterations, Tenants: res.Tenants, CPUProfile: QoSProfilePath(opts.CPUProfile, name),
			MuAfter: opts.MuDuration}
		var run *QoSRun
		if opts.Isolate != nil {
			run, err = opts.Isolate(ctx, spec)
		} else {
			run, err = spec.Run(ctx, opts.Logger, opts.Progress)
		}
		if err != nil {
			return nil, fmt.Errorf("bench qos: run %s: %w", name, err)
		}
		res.Runs = append(res.Runs, *run)
	}
	return res, nil
}

// QoSRunSpec is one run of the experiment with what it needs of the
// set-up before it (the calibrated function, μ); JSON, so that a child
// process can make it (QoSOptions.Isolate).
type QoSRunSpec struct {
	Name        string         `json:"name"`
	Duration    time.Duration  `json:"duration"`
	Drain       time.Duration  `json:"drain"`
	Seats       map[string]int `json:"seats"`
	MaxInFlight int            `json:"maxInFlight"`
	CacheDir    string         `json:"cacheDir"`
	WasmPath    string         `json:"wasmPath"`
	Seed        uint64         `json:"seed"`
	Mu          float64        `json:"mu"`
	Iterations  uint64         `json:"iterations"`
	Tenants     []Tenant       `json:"tenants"`
	// MuAfter, when positive, is how long to measure the saturation rate
	// again in the run's process once its drain is over (QoSRun.MuAfter).
	MuAfter time.Duration `json:"muAfter,omitempty"`
	// CPUProfile, when set, is a file to write a pprof CPU profile of
	// the run to, from its first arrival to the end of its drain.
	CPUProfile string `json:"cpuProfile,omitempty"`
}

// QoSProfilePath is where a run's CPU profile goes when the experiment's
// profiles are asked for at path: the run's name before the extension
// (qos.prof: qos-FIFO.prof).
func QoSProfilePath(path, run string) string {
	if path == "" {
		return ""
	}
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-" + run + ext
}

// qosServer is an engine with the REST API on loopback, the spin function
// deployed in every tenant's namespace and their workflows applied.
type qosServer struct {
	em    *embedded
	srv   *http.Server
	url   string
	sched *qos.Scheduler
	// calls records the calls of tenant h, for where its time goes.
	calls *callRecorder
	// refusals times the server's part of every refusal.
	refusals *refusalTimer
}

func startQoSServer(ctx context.Context, opts QoSOptions, wasmPath string, iterations uint64, mode string, tenants []Tenant) (*qosServer, error) {
	log := opts.Logger
	makeRuntimes := func(blobs *function.Blobs) (map[function.Kind]function.Runtime, error) {
		rt, err := wasm.New(wasm.Options{CacheDir: opts.CacheDir, Blobs: blobs, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("bench: wasm runtime: %w", err)
		}
		return map[function.Kind]function.Runtime{function.KindWasm: rt}, nil
	}
	qs := &qosServer{calls: newCallRecorder("h")}
	configure := func(o *engine.Options) {
		o.Executors["*"] = qs.calls.wrap(o.Executors["*"])
		qo, on := qosMode(mode)
		if !on {
			return
		}
		stats := prewarm.NewStats()
		qo.Costs, qo.Learn, qo.Seats = stats, stats.ObserveExec, opts.Seats
		qs.sched = qos.New(qo)
		o.QoS = qs.sched
	}
	// Each function may have as many instances as there are CPUs: the
	// work is CPU-bound, so more would only share the same cores.
	em, err := openEmbedded(ctx, "", nil, function.Options{}, makeRuntimes, log, configure)
	if err != nil {
		return nil, err
	}
	qs.em = em
	for _, t := range tenants {
		spec := function.Spec{Name: spinFunction, Namespace: t.Name, Runtime: function.KindWasm, Artifact: wasmPath,
			Limits: function.Limits{MaxInstances: 4 * runtime.GOMAXPROCS(0)}}
		if _, err := em.reg.Deploy(ctx, spec); err != nil {
			return nil, errors.Join(fmt.Errorf("deploying the spin function: %w", err), qs.close())
		}
		for _, steps := range []int{1, 3} {
			if _, err := em.eng.ApplyWorkflow(ctx, "w.yaml", []byte(spinWorkflow(t, steps, iterations))); err != nil {
				return nil, errors.Join(err, qs.close())
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, errors.Join(err, qs.close())
	}
	qs.refusals = &refusalTimer{next: api.NewHandler(em.eng)}
	qs.srv = &http.Server{Handler: qs.refusals, ReadHeaderTimeout: 10 * time.Second}
	qs.url = "http://" + ln.Addr().String()
	go qs.srv.Serve(ln)
	// One call per tenant warms its function (compile, first instance).
	c := newQoSClient(1)
	for _, t := range tenants {
		if r := c.start(ctx, qs.url, Tenant{Name: t.Name}, 1, time.Minute); r.status != http.StatusOK {
			return nil, errors.Join(fmt.Errorf("warming %s: status %d", t.Name, r.status), qs.close())
		}
	}
	return qs, nil
}

func (qs *qosServer) close() error {
	var errs []error
	if qs.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		errs = append(errs, qs.srv.Shutdown(ctx))
	}
	if qs.em != nil {
		errs = append(errs, qs.em.close(context.Background()))
	}
	return errors.Join(errs...)
}

// qosMode turns a run's --qos mode into scheduler options.
func qosMode(mode string) (qos.Options, bool) {
	var o qos.Options
	switch mode {
	case "off":
		return o, false
	case "no-edf":
		o.NoEDF = true
	case "no-continuations":
		o.NoContinuations = true
	case "no-admission":
		o.NoAdmission = true
	case "no-cpu-priority":
		o.NoCPUPriority = true
	}
	return o, true
}

func spinWorkflow(t Tenant, steps int, iterations uint64) string {
	class := t.Class
	if class == "" {
		class = "standard"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "document: {dsl: '1.0.0', namespace: %s, name: w%d, version: '1.0.0', metadata: {baton.priorityClass: %s, baton.durability: none}}\ndo:\n", t.Name, steps, class)
	for i := range steps {
		fmt.Fprintf(&b, "  - s%d:\n      call: %s\n      with: {iterations: %d}\n", i, spinFunction, iterations)
	}
	return b.String()
}

// calibrateSpin finds the iterations for one call of about opts.Work.
func calibrateSpin(ctx context.Context, opts QoSOptions, wasmPath string) (uint64, float64, error) {
	qs, err := startQoSServer(ctx, opts, wasmPath, 1, "off", []Tenant{{Name: "bench"}})
	if err != nil {
		return 0, 0, err
	}
	defer qs.close()
	iterations := uint64(1_000_000)
	measure := func(n uint64) (float64, error) { return qs.callAlone(ctx, "bench", n) }
	target := ms(opts.Work)
	for range 6 {
		got, err := measure(iterations)
		if err != nil {
			return 0, 0, fmt.Errorf("calibrating the spin function: %w", err)
		}
		if math.Abs(got-target) < target/10 {
			return iterations, got, nil
		}
		iterations = max(1000, uint64(float64(iterations)*target/max(got, 0.01)))
	}
	got, err := measure(iterations)
	return iterations, got, err
}

// callAlone times seven calls of the spin function in namespace ns, one
// after the other, and returns the fastest (ms): the one least disturbed
// by other processes, the function's own time on this machine now.
func (qs *qosServer) callAlone(ctx context.Context, ns string, iterations uint64) (float64, error) {
	var d []float64
	for range 7 {
		began := time.Now()
		if _, err := qs.em.mgr.Invoke(ctx, function.Qualify(ns, spinFunction), map[string]any{"iterations": iterations}); err != nil {
			return 0, err
		}
		d = append(d, ms(time.Since(began)))
	}
	return slices.Min(d), nil
}

// measureMu drives 1-step workflows closed-loop from enough clients to
// keep every seat busy and returns the completion rate.
func measureMu(ctx context.Context, opts QoSOptions, wasmPath string, iterations uint64) (float64, error) {
	t := Tenant{Name: "s1", Class: "standard"}
	// With QoS on: its seats keep the CPU-bound calls from crowding out
	// the engine, which is the server's best operating point.
	qs, err := startQoSServer(ctx, opts, wasmPath, iterations, "on", []Tenant{t})
	if err != nil {
		return 0, err
	}
	defer qs.close()
	return qs.saturate(ctx, t, opts.MuDuration), nil
}

// saturate drives t's 1-step workflows closed-loop for d from enough
// clients to keep every seat busy and returns their completion rate.
func (qs *qosServer) saturate(ctx context.Context, t Tenant, d time.Duration) float64 {
	workers := 4 * runtime.GOMAXPROCS(0)
	c := newQoSClient(workers)
	var done atomic.Int64
	end := time.Now().Add(d)
	warm := time.Now().Add(d / 5)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(end) && ctx.Err() == nil {
				r := c.start(ctx, qs.url, t, 1, time.Minute)
				if r.status == http.StatusOK && r.completed && time.Now().After(warm) {
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	// Only completions after the first fifth count: the pools are warm.
	return float64(done.Load()) / (d - d/5).Seconds()
}

// qosClient posts starts and waits for their ends.
type qosClient struct{ hc *http.Client }

func newQoSClient(conns int) *qosClient {
	// As many idle connections as requests in flight, so that a start
	// never waits for a connection to be dialled while another one idles:
	// a refusal's round trip is then one write and one read on a
	// connection kept alive. The answers are small JSON: no compression.
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute,
		DisableCompression: true}
	return &qosClient{hc: &http.Client{Transport: tr}}
}

type startResult struct {
	status     int
	completed  bool
	retryAfter time.Duration
	reason     string
	took       time.Duration
	// id, startedAt and endedAt are the invocation's, from the answer.
	id                 string
	startedAt, endedAt time.Time
}

func (c *qosClient) start(ctx context.Context, base string, t Tenant, steps int, wait time.Duration) startResult {
	url := fmt.Sprintf("%s/v1/workflows/%s/w%d/invocations?wait=%s", base, t.Name, steps, wait)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return startResult{}
	}
	if t.Deadline > 0 {
		req.Header.Set(qos.HeaderTimeout, t.Deadline.String())
	}
	began := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return startResult{took: time.Since(began)}
	}
	defer resp.Body.Close()
	r := startResult{status: resp.StatusCode}
	var body struct {
		ID        string     `json:"id"`
		Status    string     `json:"status"`
		Reason    string     `json:"reason"`
		StartedAt time.Time  `json:"startedAt"`
		EndedAt   *time.Time `json:"endedAt"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	// Read to its end, so that the connection goes back to the idle pool
	// (a body closed before its end closes the connection, and the next
	// start dials a new one).
	_, _ = io.Copy(io.Discard, resp.Body)
	r.took = time.Since(began)
	r.completed = body.Status == "completed"
	r.reason = body.Reason
	r.id, r.startedAt = body.ID, body.StartedAt
	if body.EndedAt != nil {
		r.endedAt = *body.EndedAt
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		r.retryAfter = time.Duration(s) * time.Second
	}
	return r
}

// qosRecord is one offered start's fate.
type qosRecord struct {
	arrival  time.Duration // since the run began
	steps    int           // the workflow's calls
	latency  time.Duration // arrival to the final answer
	outcome  string        // completed, failed, rejected:<reason>, unfinished
	attempts int
	rejectMs []float64
	noRetry  bool       // a rejection without Retry-After
	path     *startPath // a completed start's instants, for tenant h
}

// Run makes the run in this process.
func (spec QoSRunSpec) Run(ctx context.Context, log *slog.Logger, progress io.Writer) (*QoSRun, error) {
	opts := QoSOptions{Duration: spec.Duration, Drain: spec.Drain, Seats: spec.Seats, MaxInFlight: spec.MaxInFlight,
		CacheDir: spec.CacheDir, Seed: spec.Seed, Logger: log, Progress: progress}
	opts.defaults()
	defer wasm.EnsureProcs(opts.Seats[qos.PoolWasm])()
	name, tenants := spec.Name, spec.Tenants
	mode := "on"
	switch name {
	case "L0":
		tenants = tenants[:1]
	case "FIFO":
		mode = "off"
	case "no-EDF":
		mode = "no-edf"
	case "no-continuations", "no-admission", "no-cpu-priority":
		mode = name
	case "B-alone":
		tenants = tenants[3:]
	case "QoS":
	default:
		return nil, fmt.Errorf("unknown run %q (want %s)", name, strings.Join(QoSRunNames, ", "))
	}
	fmt.Fprintf(opts.Progress, "qos: run %s (--qos=%s) for %s\n", name, mode, opts.Duration)
	qs, err := startQoSServer(ctx, opts, spec.WasmPath, spec.Iterations, mode, spec.Tenants)
	if err != nil {
		return nil, err
	}
	defer qs.close()
	run := &QoSRun{Name: name, Mode: mode, PID: os.Getpid(), BinS: 1, RetryAfterOK: true}
	// The machine's speed now, against the calibration's: a shared or
	// virtual machine's cores do not always compute at one speed, and μ
	// was measured before this run.
	if run.CallMs, err = qs.callAlone(ctx, tenants[0].Name, spec.Iterations); err != nil {
		return nil, fmt.Errorf("timing a call alone: %w", err)
	}
	// What earlier runs left behind is given back first, so that the
	// resident set measured is this run's.
	runtime.GC()
	debug.FreeOSMemory()

	c := newQoSClient(opts.MaxInFlight)
	runCtx, cancel := context.WithTimeout(ctx, opts.Duration+opts.Drain)
	defer cancel()
	if spec.CPUProfile != "" {
		stop, err := StartCPUProfile(spec.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	began := time.Now()
	stopSampling := make(chan struct{})
	sampled := make(chan runSample)
	go func() { sampled <- sampleRun(stopSampling, &qs.calls.ended) }()
	var inFlight atomic.Int64
	records := make([][]*qosRecord, len(tenants))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for ti, t := range tenants {
		rate := t.Share * spec.Mu
		if rate <= 0 {
			continue
		}
		// Tenants of one class and share (s1, s2) draw the same arrival
		// times, so that comparing them measures the scheduler rather
		// than the sampling.
		stream := uint64(math.Round(t.Share*1000)) + uint64(len(t.Class))
		rng := rand.New(rand.NewPCG(opts.Seed+stream, stream+7))
		wg.Go(func() {
			next := time.Duration(0)
			for {
				next += time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
				if next >= opts.Duration {
					return
				}
				if d := time.Until(began.Add(next)); d > 0 {
					select {
					case <-time.After(d):
					case <-runCtx.Done():
						return
					}
				}
				steps := 1
				if rng.Float64() < t.ThreeStep {
					steps = 3
				}
				rec := &qosRecord{arrival: next, steps: steps, outcome: "unfinished"}
				mu.Lock()
				records[ti] = append(records[ti], rec)
				mu.Unlock()
				if inFlight.Load() >= int64(opts.MaxInFlight) {
					continue
				}
				inFlight.Add(1)
				wg.Go(func() {
					defer inFlight.Add(-1)
					offer(runCtx, c, qs, t, steps, rec, began, opts.Duration+opts.Drain)
				})
			}
		})
	}
	wg.Wait()
	close(stopSampling)
	sample := <-sampled
	wall := time.Since(began)
	var cpu time.Duration
	for _, s := range sample.timeline.CPUs {
		cpu += time.Duration(s * float64(time.Second))
	}
	run.Timeline, run.RSSMaxMB, run.HeapMaxMB = sample.timeline, sample.rssMaxMB, sample.heapMaxMB
	var rejects []float64
	for ti, t := range tenants {
		ts := tenantStats(t, records[ti], opts.Duration)
		for _, r := range records[ti] {
			rejects = append(rejects, r.rejectMs...)
			run.RetryAfterOK = run.RetryAfterOK && !r.noRetry
		}
		if ts.Phases != nil && qs.sched != nil {
			if ts.Phases.Waits, err = gateWaits(qs.sched, t.Class, t.Name); err != nil {
				return nil, err
			}
		}
		run.Tenants = append(run.Tenants, ts)
	}
	slices.Sort(rejects)
	if len(rejects) > 0 {
		run.RejectP99Ms = Percentile(rejects, 99)
	}
	run.RejectServerP99Ms = qs.refusals.p99()
	run.Goodput, run.GoodputWorkflows = goodput(tenants, records, opts.Duration)
	run.Timeline.Useful = usefulByEnd(tenants, records, len(run.Timeline.Calls))
	run.CPUs = cpu.Seconds() / wall.Seconds()
	if spec.MuAfter > 0 && name != "L0" && mode != "off" && mode != "no-admission" {
		// The standard tenant, as μ's measurement drives, where the run
		// has one.
		t := tenants[len(tenants)-1]
		for _, c := range tenants {
			if c.Class == "standard" {
				t = c
				break
			}
		}
		run.MuAfter = qs.saturate(ctx, t, spec.MuAfter)
	}
	completed := 0
	for _, t := range run.Tenants {
		completed += t.Completed
	}
	if completed > 0 {
		run.CPUPerStartMs = ms(cpu) / float64(completed)
	}
	fmt.Fprintf(opts.Progress, "qos: run %s: goodput %.1f calls/s, RSS max %.0f MB, heap max %.0f MB\n", name, run.Goodput, run.RSSMaxMB, run.HeapMaxMB)
	return run, nil
}

// goodput is the work (function calls) and the workflows per second that
// completed usefully within the window from the first fifth of the
// arrivals' time to their end (QoSRun.Goodput).
func goodput(tenants []Tenant, records [][]*qosRecord, arrivals time.Duration) (calls, workflows float64) {
	from := arrivals / 5
	for ti, t := range tenants {
		for _, r := range records[ti] {
			ended := r.arrival + r.latency
			if !usefulCompletion(t, r) || ended < from || ended > arrivals {
				continue
			}
			calls += float64(r.steps)
			workflows++
		}
	}
	window := (arrivals - from).Seconds()
	return calls / window, workflows / window
}

// usefulCompletion says whether r completed in time to be of use: every
// completion of a tenant without a deadline, one within it otherwise.
func usefulCompletion(t Tenant, r *qosRecord) bool {
	return r.outcome == "completed" && (t.Deadline <= 0 || r.latency <= t.Deadline)
}

// usefulByEnd counts the calls of useful completions (as goodput counts
// them) by the second their workflow ended, over bins seconds.
func usefulByEnd(tenants []Tenant, records [][]*qosRecord, bins int) []int {
	useful := make([]int, bins)
	for ti, t := range tenants {
		for _, r := range records[ti] {
			if !usefulCompletion(t, r) {
				continue
			}
			if b := int((r.arrival + r.latency).Seconds()); b < bins {
				useful[b] += r.steps
			}
		}
	}
	return useful
}

// runSample is what sampleRun saw of a run.
type runSample struct {
	rssMaxMB, heapMaxMB float64
	timeline            *Timeline
}

// sampleRun watches a run until stop: every 250ms the resident set and
// the Go heap of live objects (their largest), and each second the CPU
// time this process got and the calls that ended (a running count in
// ended), the last, partial second too.
func sampleRun(stop <-chan struct{}, ended *atomic.Int64) runSample {
	const perSecond = 4
	s := runSample{timeline: &Timeline{}}
	heap := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	tick := time.NewTicker(time.Second / perSecond)
	defer tick.Stop()
	cpu, calls := processCPU(), ended.Load()
	for ticks := 1; ; ticks++ {
		metrics.Read(heap)
		if heap[0].Value.Kind() == metrics.KindUint64 {
			s.heapMaxMB = max(s.heapMaxMB, float64(heap[0].Value.Uint64())/(1<<20))
		}
		s.rssMaxMB = max(s.rssMaxMB, rssMB())
		stopped := false
		select {
		case <-stop:
			stopped = true
		case <-tick.C:
		}
		if stopped || ticks%perSecond == 0 {
			c, n := processCPU(), ended.Load()
			s.timeline.CPUs = append(s.timeline.CPUs, (c - cpu).Seconds())
			s.timeline.Calls = append(s.timeline.Calls, int(n-calls))
			cpu, calls = c, n
		}
		if stopped {
			return s
		}
	}
}

// maxAttempts bounds a start's tries: a client honours Retry-After but
// gives up after this many refusals.
const maxAttempts = 3

// offer makes one start: retried after Retry-After while the tenant has no
// deadline (a retry after a second cannot meet 200ms).
func offer(ctx context.Context, c *qosClient, qs *qosServer, t Tenant, steps int, rec *qosRecord, began time.Time, wait time.Duration) {
	arrived := began.Add(rec.arrival)
	sent := time.Now()
	for {
		rec.attempts++
		r := c.start(ctx, qs.url, t, steps, wait)
		answered := time.Now()
		rec.latency = answered.Sub(arrived)
		var calls []callSpan
		if r.id != "" {
			// The bench reads no history: what the harness's tap kept of
			// the invocation's calls is dropped at once.
			qs.em.tap.forget(r.id)
			calls = qs.calls.take(r.id)
		}
		switch {
		case r.status == http.StatusOK && r.completed:
			rec.outcome = "completed"
			if qs.calls.namespaces[t.Name] {
				rec.path = &startPath{arrival: arrived, sent: sent, started: r.startedAt, ended: r.endedAt, answered: answered, calls: calls}
			}
			return
		case r.status == http.StatusOK:
			rec.outcome = "failed"
			return
		case r.status == http.StatusTooManyRequests || r.status == http.StatusServiceUnavailable || r.status == http.StatusGatewayTimeout:
			rec.outcome = "rejected:" + r.reason
			if r.reason == "" {
				rec.outcome = "rejected:" + strconv.Itoa(r.status)
			}
			if r.status != http.StatusGatewayTimeout {
				// A 504 waited in the queue for its deadline: not a
				// fail-fast rejection.
				rec.rejectMs = append(rec.rejectMs, ms(r.took))
			}
			if r.retryAfter <= 0 {
				rec.noRetry = true
				return
			}
			if t.Deadline > 0 || rec.attempts >= maxAttempts || r.status == http.StatusGatewayTimeout {
				return
			}
			select {
			case <-time.After(r.retryAfter):
			case <-ctx.Done():
				return
			}
		default:
			// 202: the wait ran out; or the run's context ended.
			rec.outcome = "unfinished"
			return
		}
	}
}

func tenantStats(t Tenant, recs []*qosRecord, d time.Duration) TenantStats {
	ts := TenantStats{Tenant: t.Name, Offered: len(recs), Rejected: map[string]int{}}
	var lat []float64
	bins := int(math.Ceil(d.Seconds()))
	ts.Completions = make([]int, bins)
	perBin := make([][]float64, bins)
	met := 0
	for _, r := range recs {
		ts.Attempts += r.attempts
		ts.Retries += max(0, r.attempts-1)
		switch {
		case r.outcome == "completed":
			ts.Completed++
			l := ms(r.latency)
			lat = append(lat, l)
			b := min(bins-1, int(r.arrival.Seconds()))
			ts.Completions[b]++
			perBin[b] = append(perBin[b], l)
			if t.Deadline > 0 && r.latency <= t.Deadline {
				met++
			}
		case r.outcome == "failed":
			ts.FailedMidway++
		case strings.HasPrefix(r.outcome, "rejected:"):
			ts.Rejected[strings.TrimPrefix(r.outcome, "rejected:")]++
		default:
			ts.Unfinished++
		}
	}
	p99 := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		return Percentile(v, 99)
	}
	ts.P99Ms = p99(lat)
	if len(lat) > 0 {
		ts.P50Ms = Percentile(lat, 50)
	}
	for _, v := range perBin {
		ts.P99Series = append(ts.P99Series, p99(v))
	}
	seen := seenLatencies(recs, bins)
	var early, late []float64
	for b, v := range seen {
		switch {
		case b < max(1, bins/4):
			early = append(early, v...)
		case b >= bins-max(1, bins/4):
			late = append(late, v...)
		}
		ts.SeenP99Series = append(ts.SeenP99Series, p99(v))
	}
	ts.P99EarlyMs, ts.P99LateMs = p99(early), p99(late)
	if t.Deadline > 0 && len(recs) > 0 {
		ts.DeadlineMet = float64(met) / float64(len(recs))
	}
	ts.Throughput = float64(ts.Completed) / d.Seconds()
	var paths []*startPath
	for _, r := range recs {
		if r.outcome == "completed" && r.path != nil {
			paths = append(paths, r.path)
		}
	}
	ts.Phases = phaseStats(paths)
	return ts
}

// seenLatencies are, per bin of a second, the latencies (ms) a client sees
// then: of the starts answered in the bin, and the ages at the bin's end
// of those still open. Refused starts are left out.
func seenLatencies(recs []*qosRecord, bins int) [][]float64 {
	seen := make([][]float64, bins)
	for _, r := range recs {
		answered := r.outcome == "completed" || r.outcome == "failed"
		if !answered && r.outcome != "unfinished" {
			continue
		}
		at := r.arrival + r.latency
		for b := int(r.arrival / time.Second); b < bins; b++ {
			end := time.Duration(b+1) * time.Second
			if answered && at < end {
				seen[b] = append(seen[b], ms(r.latency))
				break
			}
			seen[b] = append(seen[b], ms(end-r.arrival))
		}
	}
	return seen
}

func rssMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
