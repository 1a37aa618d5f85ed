package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/function/wasm"
	"github.com/batonflow/baton/prewarm"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/sqlite"
)

// ColdstartPolicies are the keep-alive configurations the coldstart
// scenario compares, in report order. Both Baton variants prepare the
// functions a workflow calls after its first just in time and evict them
// after use; they differ in the entry function, which no workflow
// predicts: "baton" leaves it on demand, "baton+hybrid" reloads it with
// the hybrid histogram policy (and prepares the rest of the workflow with
// it).
var ColdstartPolicies = []string{"on-demand", "fixed", "hybrid", "baton", "baton+hybrid"}

// policySlug is a policy's name as it appears in function and workflow
// names.
func policySlug(policy string) string { return strings.ReplaceAll(policy, "+", "-") }

// ColdstartShapes are its workflows.
var ColdstartShapes = []string{"chain", "fanout", "branch"}

// ColdstartOptions configure `baton bench coldstart`.
type ColdstartOptions struct {
	// Interval separates a workflow's consecutive invocations; it must
	// be long enough for on-demand instances to be gone (they are evicted
	// at once) and short enough for a keep-alive to matter.
	Interval time.Duration
	// Rounds is how many times each workflow is invoked, Warmup how many
	// of the first rounds are left out of the statistics (the policies
	// learn during them).
	Rounds, Warmup int
	// Shapes and Policies select the workflows and policies to run (all of
	// ColdstartShapes and ColdstartPolicies when empty).
	Shapes, Policies []string
	// Work is how long each function call takes (the function waits, as
	// one doing I/O would); zero calls answer at once.
	Work time.Duration
	// BranchOdds is the probability of the branch workflow's short path.
	BranchOdds float64
	// Durability is the workflows' (see Config.Durability): durable by
	// default, or none, whose steps wait for no commit, so that the
	// disk's fsync times are not part of when each call is made.
	Durability     string
	FixedKeepAlive time.Duration
	// Rule is the planner's prepare rule.
	Rule       prewarm.Rule
	CacheDir   string
	WasmSource string
	DataDir    string
	Seed       uint64
	Logger     *slog.Logger
	Progress   io.Writer
	Command    string
	// CPUHog runs this many processes of HogCommand alongside, each
	// spinning a core, for a machine as busy as a shared server: prepares
	// must then aim through slower and more scattered starts.
	CPUHog     int
	HogCommand []string
}

// ColdstartRow is one (workflow, policy) pair's measurements.
type ColdstartRow struct {
	Shape       string  `json:"shape"`
	Policy      string  `json:"policy"`
	Invocations int     `json:"invocations"`
	Failed      int     `json:"failed"`
	P50Ms       float64 `json:"p50Ms"`
	P99Ms       float64 `json:"p99Ms"`
	// ColdPathMs is the cold-start latency on the critical path (the
	// longest path, through the invocation's calls, of the time calls
	// waited for instances to finish starting), summed over the measured
	// invocations; ColdPathMeanMs per invocation.
	ColdPathMs     float64 `json:"coldPathMs"`
	ColdPathMeanMs float64 `json:"coldPathMeanMs"`
	// ColdStarts counts calls that started their own instance,
	// LateStarts calls that waited for a prepared instance still starting.
	ColdStarts int `json:"coldStarts"`
	LateStarts int `json:"lateStarts"`
	// FunctionPathP50Ms is the median critical path of function time:
	// cold starts, waits for prepared instances and execution.
	FunctionPathP50Ms float64 `json:"functionPathP50Ms"`
	// IdleInstanceS is the time the pair's instances spent warm and idle
	// during the measured rounds; StartingInstanceS the time they spent
	// starting. Both hold an instance's memory without serving a call.
	IdleInstanceS     float64 `json:"idleInstanceSeconds"`
	StartingInstanceS float64 `json:"startingInstanceSeconds"`
	// HeldMBs is the memory the pair's instances held without serving a
	// call (idle or starting) integrated over the measured rounds, in
	// MB-seconds: what prewarming costs, and what on-demand pays on every
	// call while its instances start.
	HeldMBs float64 `json:"heldMBs"`
	// InstanceStarts counts the instances created over the whole run.
	InstanceStarts int `json:"instanceStarts"`
	// Functions break the memory down by function and Tasks the waits by
	// call task (results.json only): where a policy idles or waits.
	Functions []ColdstartFunction `json:"functions,omitempty"`
	Tasks     []ColdstartTask     `json:"tasks,omitempty"`
}

// ColdstartFunction is one function's share of a row's held memory over
// the measured rounds.
type ColdstartFunction struct {
	Function          string  `json:"function"`
	IdleInstanceS     float64 `json:"idleInstanceSeconds"`
	StartingInstanceS float64 `json:"startingInstanceSeconds"`
	HeldMBs           float64 `json:"heldMBs"`
}

// ColdstartTask is one call task's waits for starting instances over the
// measured invocations.
type ColdstartTask struct {
	Task        string  `json:"task"`
	ColdStarts  int     `json:"coldStarts"`
	LateStarts  int     `json:"lateStarts"`
	StartWaitMs float64 `json:"startWaitMs"`
}

// ColdstartResults is the scenario's outcome.
type ColdstartResults struct {
	Command  string         `json:"command"`
	Started  time.Time      `json:"started"`
	Interval time.Duration  `json:"interval"`
	Work     time.Duration  `json:"work"`
	Rounds   int            `json:"rounds"`
	Warmup   int            `json:"warmup"`
	Shapes   []string       `json:"shapes"`
	Policies []string       `json:"policies"`
	Rows     []ColdstartRow `json:"rows"`
	// CPUHog is how many spinning processes ran alongside.
	CPUHog int `json:"cpuHog,omitempty"`
	// Durability is the workflows': durable or none.
	Durability string `json:"durability"`
	// StartMs is how long instance starts took during the measured
	// rounds, under every policy: the noise a prepare's timing must
	// absorb, which sets how early a prepared instance has to be aimed.
	StartMs Dist `json:"startMs"`
}

func (o *ColdstartOptions) defaults() error {
	if len(o.Shapes) == 0 {
		o.Shapes = ColdstartShapes
	}
	if len(o.Policies) == 0 {
		o.Policies = ColdstartPolicies
	}
	for _, s := range o.Shapes {
		if !slices.Contains(ColdstartShapes, s) {
			return fmt.Errorf("bench: unknown workflow %q (one of %s)", s, strings.Join(ColdstartShapes, ", "))
		}
	}
	for _, p := range o.Policies {
		if !slices.Contains(ColdstartPolicies, p) {
			return fmt.Errorf("bench: unknown policy %q (one of %s)", p, strings.Join(ColdstartPolicies, ", "))
		}
	}
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.Rounds <= 0 {
		o.Rounds = 40
	}
	if o.Warmup < 0 || o.Warmup >= o.Rounds {
		o.Warmup = 0
	}
	if o.BranchOdds <= 0 || o.BranchOdds > 1 {
		o.BranchOdds = 0.7
	}
	if o.FixedKeepAlive <= 0 {
		o.FixedKeepAlive = 10 * time.Minute
	}
	switch o.Durability {
	case "":
		o.Durability = "durable"
	case "durable", "none":
	default:
		return fmt.Errorf("bench: durability must be durable or none, got %q", o.Durability)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// coldstartRefs are coldstartFunctions as the function Manager, its
// keep-alive policies and observers know them: in the bench namespace.
func coldstartRefs(shape, policy string) []string {
	fns := coldstartFunctions(shape, policy)
	refs := make([]string, len(fns))
	for i, fn := range fns {
		refs[i] = function.Qualify(Namespace, fn)
	}
	return refs
}

// coldstartFunctions names the functions of one (shape, policy) pair:
// every call task has its own, so that each is its own pool, as distinct
// functions are; all are deployments of one wasm module, compiled once.
func coldstartFunctions(shape, policy string) []string {
	n := map[string]int{"chain": 10, "fanout": 6, "branch": 4}[shape]
	out := make([]string, n)
	for i := range out {
		out[i] = "cs-" + policySlug(policy) + "-" + shape + "-" + strconv.Itoa(i)
	}
	return out
}

func coldstartWorkflow(shape, policy string, odds float64, work time.Duration, durability string) string {
	fns := coldstartFunctions(shape, policy)
	delay := ""
	if work > 0 {
		delay = ", delayMs: " + strconv.FormatInt(work.Milliseconds(), 10)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "document:\n  dsl: '1.0.0'\n  namespace: %s\n  name: cs-%s-%s\n  version: '1.0.0'\n", Namespace, shape, policySlug(policy))
	if durability == "none" {
		b.WriteString("  metadata:\n    baton.durability: none\n")
	}
	b.WriteString("do:\n")
	call := func(indent, task, fn string) {
		fmt.Fprintf(&b, "%s- %s:\n%s    call: %s\n%s    with: {task: %s%s}\n", indent, task, indent, fn, indent, task, delay)
	}
	switch shape {
	case "chain":
		for i, fn := range fns {
			call("  ", "step"+strconv.Itoa(i), fn)
		}
	case "fanout":
		b.WriteString("  - fan:\n      fork:\n        branches:\n")
		for i, fn := range fns[:5] {
			call("          ", "branch"+strconv.Itoa(i), fn)
		}
		call("  ", "join", fns[5])
	case "branch":
		fmt.Fprintf(&b, "  - route:\n      switch:\n        - short:\n            when: ${ .x < %s }\n            then: fast\n        - long:\n            then: slow\n",
			strconv.FormatFloat(odds, 'g', -1, 64))
		call("  ", "fast", fns[0])
		b.WriteString("      then: end\n  - slow:\n      do:\n")
		for i, fn := range fns[1:] {
			call("        ", "slow"+strconv.Itoa(i), fn)
		}
	}
	return b.String()
}

// lateBinding lets policies made before the Manager prepare through it.
type lateBinding struct{ mgr *function.Manager }

func (l *lateBinding) Prepare(ctx context.Context, name string, by time.Time) error {
	return l.mgr.Prepare(ctx, name, by)
}

type coldstartRecord struct {
	shape, policy string
	round         int
	id            string
	latency       time.Duration
	err           error
	status        core.Status
	// started and ended are the invocation's, as the engine recorded them.
	started, ended time.Time
}

// RunColdstart runs the coldstart scenario: the chain of 10, the fan-out
// of 5 and the branching workflow, each under the four policies, invoked
// in interleaved rounds with identical arrivals.
func RunColdstart(ctx context.Context, opts ColdstartOptions) (*ColdstartResults, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: cache directory: %w", err)
	}
	module, err := buildWasm(ctx, opts.WasmSource, opts.CacheDir)
	if err != nil {
		return nil, err
	}
	dataDir := opts.DataDir
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "baton-coldstart-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(dir)
		dataDir = dir
	}
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, "baton.db"), sqlite.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("bench: opening the store: %w", err)
	}
	defer st.Close()
	blobs, err := function.OpenBlobs(filepath.Join(dataDir, "blobs"))
	if err != nil {
		return nil, err
	}
	wasmRT, err := wasm.New(wasm.Options{CacheDir: opts.CacheDir, Blobs: blobs, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("bench: wasm runtime: %w", err)
	}
	defer wasmRT.Close(context.Background())

	late := &lateBinding{}
	planner := prewarm.NewPlanner(prewarm.Options{
		Preparer: late, Rule: opts.Rule, Logger: log,
		State: st,
		Enabled: func(def *dsl.Workflow) bool {
			return strings.HasSuffix(def.Document.Name, "-baton") || strings.HasSuffix(def.Document.Name, "-baton-hybrid")
		},
	})
	if err := planner.Load(ctx); err != nil {
		return nil, err
	}
	policies := map[string]function.KeepAlive{
		"on-demand": prewarm.OnDemand{},
		"fixed":     prewarm.Fixed(opts.FixedKeepAlive),
		"hybrid":    prewarm.NewHybrid(prewarm.HybridOptions{Preparer: late, Fallback: prewarm.Fixed(opts.FixedKeepAlive)}),
		"baton":     prewarm.NewPredictive(planner, prewarm.OnDemand{}),
		// Baton sees exact idle times, not a trace's minutes, so its
		// histogram for entry functions has 10ms bins (over a minute) and
		// a 2% margin; its reloads also prepare the rest of each workflow.
		"baton+hybrid": prewarm.NewPredictive(planner, prewarm.NewBatonHybrid(planner, prewarm.HybridOptions{
			BinWidth: 10 * time.Millisecond, Range: time.Minute, Margin: 0.02, Fallback: prewarm.Fixed(opts.FixedKeepAlive)})),
	}
	route := &prewarm.PerFunction{Default: function.DefaultKeepAlive, Functions: map[string]function.KeepAlive{}}
	for _, shape := range opts.Shapes {
		for _, p := range opts.Policies {
			for _, fn := range coldstartRefs(shape, p) {
				route.Functions[fn] = policies[p]
			}
		}
	}
	idle := newIdleMeter()
	reg := function.NewRegistry(st, blobs)
	mgr, err := function.NewManager(reg, map[function.Kind]function.Runtime{function.KindWasm: wasmRT}, function.Options{
		KeepAlive: route, Observers: []function.Observer{idle, planner}, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("bench: function manager: %w", err)
	}
	late.mgr = mgr
	defer mgr.Close(context.Background())
	// Non-durable invocations keep no history once they end: the tap
	// records their calls as they run.
	calls := newTap()
	eng, err := engine.New(engine.Options{
		Store: st, Logger: log, Observer: planner,
		Executors: map[string]engine.Executor{"*": calls.wrap(engine.FunctionExecutor(mgr))},
	})
	if err != nil {
		return nil, fmt.Errorf("bench: engine: %w", err)
	}
	if err := eng.Start(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("bench: starting the engine: %w", err), eng.Close())
	}
	defer eng.Close()

	defs := map[string]*dsl.Workflow{}
	for _, shape := range opts.Shapes {
		for _, p := range opts.Policies {
			for _, fn := range coldstartFunctions(shape, p) {
				spec := function.Spec{Namespace: Namespace, Name: fn, Runtime: function.KindWasm, Artifact: module, Limits: function.Limits{MaxInstances: 16}}
				if _, err := reg.Deploy(ctx, spec); err != nil {
					return nil, fmt.Errorf("bench: deploying %s: %w", fn, err)
				}
			}
			src := coldstartWorkflow(shape, p, opts.BranchOdds, opts.Work, opts.Durability)
			if _, err := eng.ApplyWorkflow(ctx, "cs.yaml", []byte(src)); err != nil {
				return nil, fmt.Errorf("bench: applying the %s workflow: %w", shape, err)
			}
			def, err := dsl.Parse("cs.yaml", []byte(src))
			if err != nil {
				return nil, err
			}
			defs[shape+"/"+p] = def
		}
	}
	// The module is compiled before the first round, as a server does at
	// boot, so that cold starts are instantiation and init, not compile.
	first, err := reg.Get(ctx, Namespace, coldstartFunctions(opts.Shapes[0], opts.Policies[0])[0], "")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := wasmRT.Precompile(ctx, first); err != nil {
		return nil, fmt.Errorf("bench: precompiling: %w", err)
	}

	if opts.CPUHog > 0 {
		stop, err := startHogs(opts.CPUHog, opts.HogCommand)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	// Identical arrivals: round r invokes every (shape, policy) pair once,
	// the pairs staggered evenly across the interval in a fixed order, so
	// each pair sees the same spacing; branch inputs are drawn per round
	// and shared by the four policies.
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed+7))
	inputs := make([]float64, opts.Rounds)
	for i := range inputs {
		inputs[i] = rng.Float64()
	}
	pairs := len(opts.Shapes) * len(opts.Policies)
	slot := opts.Interval / time.Duration(pairs)
	start := time.Now()
	var (
		mu      sync.Mutex
		records []coldstartRecord
		wg      sync.WaitGroup
	)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	measuredFrom := start.Add(time.Duration(opts.Warmup) * opts.Interval)
	for r := range opts.Rounds {
		for si, shape := range opts.Shapes {
			for pi, p := range opts.Policies {
				at := start.Add(time.Duration(r)*opts.Interval + time.Duration(si*len(opts.Policies)+pi)*slot)
				if wait := time.Until(at); wait > 0 {
					timer.Reset(wait)
					select {
					case <-ctx.Done():
						wg.Wait()
						return nil, ctx.Err()
					case <-timer.C:
					}
				}
				wg.Add(1)
				go func(shape, p string, r int) {
					defer wg.Done()
					rec := coldstartRecord{shape: shape, policy: p, round: r}
					begin := time.Now()
					inv, err := eng.Invoke(ctx, Namespace, "cs-"+shape+"-"+policySlug(p), "1.0.0", map[string]any{"x": inputs[r]})
					if err == nil {
						rec.id = inv.ID
						var done *store.Invocation
						done, err = eng.Wait(ctx, inv.ID)
						if done != nil {
							rec.status, rec.started, rec.ended = done.Status, done.StartedAt, done.EndedAt
						}
					}
					rec.latency, rec.err = time.Since(begin), err
					mu.Lock()
					records = append(records, rec)
					mu.Unlock()
				}(shape, p, r)
			}
		}
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "round %d/%d\n", r+1, opts.Rounds)
		}
	}
	wg.Wait()
	end := time.Now()
	idle.finish(end)
	if err := planner.Save(ctx); err != nil {
		log.Warn("saving prewarm statistics", "error", err)
	}

	res := &ColdstartResults{Command: opts.Command, Started: start, Interval: opts.Interval, Rounds: opts.Rounds, Warmup: opts.Warmup, Work: opts.Work,
		Shapes: opts.Shapes, Policies: opts.Policies, CPUHog: opts.CPUHog, Durability: opts.Durability}
	for _, shape := range opts.Shapes {
		for _, p := range opts.Policies {
			row := ColdstartRow{Shape: shape, Policy: p}
			def := defs[shape+"/"+p]
			var lat, fpath []float64
			for _, rec := range records {
				if rec.shape != shape || rec.policy != p {
					continue
				}
				if rec.round < opts.Warmup {
					calls.forget(rec.id)
					continue
				}
				row.Invocations++
				if rec.err != nil || rec.status != core.StatusCompleted {
					calls.forget(rec.id)
					row.Failed++
					continue
				}
				lat = append(lat, ms(rec.latency))
				events, err := calls.historyOf(ctx, def, outcome{ID: rec.id, Status: rec.status, Started: rec.started, Ended: rec.ended}, st.History)
				if err != nil {
					return nil, fmt.Errorf("bench: history of %s: %w", rec.id, err)
				}
				facts := ReadHistory(events)
				fp, _ := CriticalPath(def, facts.Tasks)
				fpath = append(fpath, fp)
				// A call's cold-start latency is the time it waited for an
				// instance to finish starting: its own cold start, or the
				// rest of a prepared instance's start when it came early.
				waits := slices.Clone(facts.Tasks)
				for i := range waits {
					ti := slices.IndexFunc(row.Tasks, func(t ColdstartTask) bool { return t.Task == waits[i].Key })
					if ti < 0 {
						row.Tasks = append(row.Tasks, ColdstartTask{Task: waits[i].Key})
						ti = len(row.Tasks) - 1
					}
					row.Tasks[ti].StartWaitMs += waits[i].StartWaitMs
					if waits[i].Cold {
						row.ColdStarts++
						row.Tasks[ti].ColdStarts++
					} else if waits[i].StartWaitMs > 0 {
						row.LateStarts++
						row.Tasks[ti].LateStarts++
					}
					waits[i].FunctionMs = waits[i].StartWaitMs
				}
				cp, _ := CriticalPath(def, waits)
				row.ColdPathMs += cp
			}
			d := Summarize(lat)
			row.P50Ms, row.P99Ms = d.P50, d.P99
			row.FunctionPathP50Ms = Summarize(fpath).P50
			if n := len(lat); n > 0 {
				row.ColdPathMeanMs = row.ColdPathMs / float64(n)
			}
			fns := coldstartRefs(shape, p)
			row.IdleInstanceS = idle.idleSeconds(fns, measuredFrom, end)
			row.StartingInstanceS = idle.startSeconds(fns, measuredFrom, end)
			row.HeldMBs = idle.heldMBs(fns, measuredFrom, end)
			for _, fn := range fns {
				one := []string{fn}
				row.Functions = append(row.Functions, ColdstartFunction{Function: fn,
					IdleInstanceS: idle.idleSeconds(one, measuredFrom, end), StartingInstanceS: idle.startSeconds(one, measuredFrom, end),
					HeldMBs: idle.heldMBs(one, measuredFrom, end)})
			}
			idle.mu.Lock()
			for _, fn := range fns {
				row.InstanceStarts += idle.created[fn]
			}
			idle.mu.Unlock()
			res.Rows = append(res.Rows, row)
		}
	}
	res.StartMs = idle.startDurations(measuredFrom, end)
	return res, nil
}

// startHogs starts n processes that spin a core each, and returns what
// stops them. They are processes, not goroutines: goroutines would share
// the engine's GOMAXPROCS and be scheduled by Go, not compete for the
// cores as other programs on the machine do.
func startHogs(n int, command []string) (stop func(), err error) {
	if len(command) == 0 {
		return nil, errors.New("bench: a CPU hog needs a command that spins")
	}
	var cmds []*exec.Cmd
	stop = func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
	for range n {
		c := exec.Command(command[0], command[1:]...)
		c.Env = append(os.Environ(), "GOMAXPROCS=1")
		if err := c.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("bench: starting a CPU hog: %w", err)
		}
		cmds = append(cmds, c)
	}
	return stop, nil
}
