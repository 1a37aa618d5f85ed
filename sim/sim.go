// Package sim replays invocation traces through Baton's keep-alive and
// prewarming policies in virtual time: the same policy and planner code
// that runs in the function layer, driven by a discrete-event clock, so
// that days of traffic of thousands of functions take seconds.
package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batonflow/baton/bench"
	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/prewarm"
)

// Policy names a keep-alive configuration.
type Policy string

const (
	// OnDemand evicts instances as soon as they are idle.
	OnDemand Policy = "on-demand"
	// Fixed keeps idle instances for Options.FixedKeepAlive.
	Fixed Policy = "fixed"
	// Hybrid is the ATC '20 hybrid histogram policy.
	Hybrid Policy = "hybrid"
	// Baton is just-in-time prewarming with the workflow-aware
	// keep-alive; the functions that start workflows are on demand.
	Baton Policy = "baton"
	// BatonHybrid is Baton with the hybrid histogram policy for the
	// functions that start workflows, whose reloads also prepare the rest
	// of the workflow.
	BatonHybrid Policy = "baton+hybrid"
)

// AllPolicies in report order.
var AllPolicies = []Policy{OnDemand, Fixed, Hybrid, Baton, BatonHybrid}

// ParsePolicies reads a comma-separated list. The fixed and hybrid
// policies take a parameter after a colon, so that several settings can be
// compared in one run (their trade-off curves): "fixed:30m" keeps idle
// instances 30 minutes, "hybrid:95" keeps them to the 95th percentile of
// the idle times rather than the 99th.
func ParsePolicies(s string) ([]Policy, error) {
	var out []Policy
	for _, f := range strings.Split(s, ",") {
		p := Policy(strings.TrimSpace(f))
		if _, err := p.settings(); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// policySettings are a policy's kind and its parameter.
type policySettings struct {
	kind Policy
	// keepAlive of a fixed policy, zero for Options.FixedKeepAlive.
	keepAlive time.Duration
	// tail percentile of a hybrid policy, zero for the paper's 99.
	tail float64
}

// settings reads a policy name and its parameter, if any.
func (p Policy) settings() (policySettings, error) {
	name, param, hasParam := strings.Cut(string(p), ":")
	set := policySettings{kind: Policy(name)}
	if !slices.Contains(AllPolicies, set.kind) {
		return set, fmt.Errorf("unknown policy %q (want on-demand, fixed, hybrid, baton or baton+hybrid)", p)
	}
	if !hasParam {
		return set, nil
	}
	switch set.kind {
	case Fixed:
		_, keep, err := function.ParseKeepAlive(string(p))
		if err != nil {
			return set, err
		}
		set.keepAlive = keep
	case Hybrid:
		pct, err := strconv.ParseFloat(param, 64)
		if err != nil || pct <= 0 || pct >= 100 {
			return set, fmt.Errorf("policy %q: want hybrid:PERCENTILE, such as hybrid:95", p)
		}
		set.tail = pct
	default:
		return set, fmt.Errorf("policy %q takes no parameter", p)
	}
	return set, nil
}

// Options configure a simulation.
type Options struct {
	// Trace is replayed when set; otherwise a synthetic trace is
	// generated row by row from Synthetic (so that 10,000 functions over
	// days never sit in memory at once).
	Trace     *bench.Trace
	Synthetic bench.SyntheticTraceOptions
	// Functions is how many functions to simulate in all (each trace row
	// is a workflow of 1..MaxChain functions); with a Trace, 0 takes
	// every row.
	Functions int
	MaxChain  int
	// MaxPerMinute caps the invocations of a row simulated one by one in
	// a minute; the rest of that minute's invocations are counted as warm
	// calls on the busy instances (every policy keeps an instance busy a
	// whole minute when calls come that often).
	MaxPerMinute int
	// ExecMedian and ColdMedian are the medians of the per-function
	// execution and cold-start times (lognormal across functions).
	ExecMedian, ColdMedian time.Duration
	// MemoryMB is each instance's memory.
	MemoryMB       float64
	FixedKeepAlive time.Duration
	Policies       []Policy
	Seed           uint64
	Workers        int
	// Rule is the planner's prepare rule for the Baton policy.
	Rule prewarm.Rule
}

func (o *Options) defaults() {
	if o.MaxChain <= 0 {
		o.MaxChain = 4
	}
	if o.MaxPerMinute <= 0 {
		o.MaxPerMinute = 1
	}
	if o.ExecMedian <= 0 {
		o.ExecMedian = 200 * time.Millisecond
	}
	if o.ColdMedian <= 0 {
		o.ColdMedian = 500 * time.Millisecond
	}
	if o.MemoryMB <= 0 {
		o.MemoryMB = 128
	}
	if o.FixedKeepAlive <= 0 {
		o.FixedKeepAlive = 10 * time.Minute
	}
	if len(o.Policies) == 0 {
		o.Policies = AllPolicies
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Trace == nil && o.Functions <= 0 {
		o.Functions = 10000
	}
}

// PolicyResult sums up one policy over the whole trace.
type PolicyResult struct {
	Policy      Policy `json:"policy"`
	Invocations uint64 `json:"invocations"`
	// ColdStarts counts calls that started an instance of their own.
	ColdStarts uint64  `json:"coldStarts"`
	ColdRate   float64 `json:"coldStartRate"`
	// LateStarts counts calls that waited for an instance prepared for
	// them (by a planner or a hybrid reload) that was still starting.
	LateStarts uint64 `json:"lateStarts"`
	// ColdWaitS is the cold-start latency the calls waited, in seconds,
	// cold or late.
	ColdWaitS float64 `json:"coldWaitSeconds"`
	// IdleInstanceS is the time instances spent warm and idle, and
	// WastedGBs that time times the instances' memory.
	IdleInstanceS float64 `json:"idleInstanceSeconds"`
	WastedGBs     float64 `json:"wastedGBSeconds"`
	// WorkflowColdRates are the per-workflow cold-start rates, for CDFs.
	WorkflowColdRates []float64 `json:"-"`
}

// Results of a simulation.
type Results struct {
	Workflows   int            `json:"workflows"`
	Functions   int            `json:"functions"`
	Minutes     int            `json:"minutes"`
	Elapsed     time.Duration  `json:"elapsed"`
	Policies    []PolicyResult `json:"policies"`
	Description string         `json:"description"`
}

// workflowSpec is one simulated workflow: a chain of functions whose
// entry is invoked at the row's times.
type workflowSpec struct {
	index  int
	row    bench.TraceRow
	chain  int
	exec   []time.Duration
	cold   []time.Duration
	def    *dsl.Workflow
	fnames []string
}

// Run simulates every policy over the trace.
func Run(ctx context.Context, opts Options) (*Results, error) {
	opts.defaults()
	for _, p := range opts.Policies {
		if _, err := p.settings(); err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
	}
	began := time.Now()
	rows := make(chan workflowSpec, opts.Workers*4)
	type partial struct {
		idx int
		res []rowResult
	}
	out := make(chan partial, opts.Workers*4)
	var genErr error
	var totalFunctions, totalWorkflows, minutes int
	go func() {
		defer close(rows)
		n := 0
		for i := 0; ; i++ {
			if ctx.Err() != nil {
				return
			}
			var row bench.TraceRow
			if opts.Trace != nil {
				if i >= len(opts.Trace.Rows) {
					return
				}
				row = opts.Trace.Rows[i]
			} else {
				so := opts.Synthetic
				so.Functions = 1
				so.Seed = opts.Seed*1_000_003 + uint64(i)
				row = bench.SyntheticTrace(so).Rows[0]
			}
			minutes = max(minutes, len(row.Counts))
			spec, err := newWorkflow(i, row, &opts)
			if err != nil {
				genErr = err
				return
			}
			if opts.Functions > 0 && n+spec.chain > opts.Functions {
				spec.chain = opts.Functions - n
				if spec.chain <= 0 {
					return
				}
				if spec, err = trimChain(spec, &opts); err != nil {
					genErr = err
					return
				}
			}
			n += spec.chain
			totalFunctions, totalWorkflows = n, i+1
			select {
			case rows <- spec:
			case <-ctx.Done():
				return
			}
			if opts.Functions > 0 && n >= opts.Functions {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for spec := range rows {
				res := make([]rowResult, len(opts.Policies))
				for pi, p := range opts.Policies {
					res[pi] = simulate(spec, p, &opts)
				}
				out <- partial{idx: spec.index, res: res}
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()
	var all []partial
	for p := range out {
		all = append(all, p)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if genErr != nil {
		return nil, genErr
	}
	// Sums in row order keep floating-point totals identical run to run.
	slices.SortFunc(all, func(a, b partial) int { return a.idx - b.idx })
	res := &Results{Workflows: totalWorkflows, Functions: totalFunctions, Minutes: minutes}
	for pi, p := range opts.Policies {
		pr := PolicyResult{Policy: p}
		for _, part := range all {
			r := part.res[pi]
			pr.Invocations += r.invocations
			pr.ColdStarts += r.cold
			pr.LateStarts += r.late
			pr.ColdWaitS += r.coldWait.Seconds()
			pr.IdleInstanceS += r.idle.Seconds()
			if r.invocations > 0 {
				pr.WorkflowColdRates = append(pr.WorkflowColdRates, float64(r.cold)/float64(r.invocations))
			}
		}
		if pr.Invocations > 0 {
			pr.ColdRate = float64(pr.ColdStarts) / float64(pr.Invocations)
		}
		pr.WastedGBs = pr.IdleInstanceS * opts.MemoryMB / 1024
		res.Policies = append(res.Policies, pr)
	}
	res.Elapsed = time.Since(began)
	return res, nil
}

func lognormal(rng *rand.Rand, median time.Duration, sigma float64, ceiling time.Duration) time.Duration {
	d := time.Duration(float64(median) * math.Exp(sigma*rng.NormFloat64()))
	return min(max(d, time.Millisecond), ceiling)
}

func newWorkflow(i int, row bench.TraceRow, opts *Options) (workflowSpec, error) {
	rng := rand.New(rand.NewPCG(opts.Seed, uint64(i)))
	spec := workflowSpec{index: i, row: row, chain: 1 + rng.IntN(opts.MaxChain)}
	for range opts.MaxChain {
		spec.exec = append(spec.exec, lognormal(rng, opts.ExecMedian, 1, time.Minute))
		spec.cold = append(spec.cold, lognormal(rng, opts.ColdMedian, 0.5, 10*time.Second))
	}
	return trimChain(spec, opts)
}

// trimChain (re)builds the workflow definition for spec.chain functions.
func trimChain(spec workflowSpec, _ *Options) (workflowSpec, error) {
	var b strings.Builder
	// The default namespace: there a call names the function by its plain
	// name, which is how the simulated functions are known.
	fmt.Fprintf(&b, "document: {dsl: '1.0.0', namespace: default, name: w%d, version: '1.0.0'}\ndo:\n", spec.index)
	spec.fnames = spec.fnames[:0]
	for j := range spec.chain {
		fn := "w" + strconv.Itoa(spec.index) + "-f" + strconv.Itoa(j)
		spec.fnames = append(spec.fnames, fn)
		fmt.Fprintf(&b, "  - s%d: {call: %s}\n", j, fn)
	}
	def, err := dsl.Parse("sim.yaml", []byte(b.String()))
	if err != nil {
		return spec, fmt.Errorf("sim: workflow %d: %w", spec.index, err)
	}
	spec.def = def
	return spec, nil
}

type rowResult struct {
	invocations, cold, late uint64
	coldWait, idle          time.Duration
}

var epoch = time.Date(2019, 7, 15, 0, 0, 0, 0, time.UTC)

// simulate runs one workflow's arrivals under one policy, in its own
// virtual time: workflows share nothing, so they are independent
// simulations and their sums do not depend on the order they ran in.
func simulate(spec workflowSpec, policy Policy, opts *Options) rowResult {
	clock := prewarm.NewVirtualClock(epoch)
	w := &world{clock: clock, pools: map[string]*simPool{}}
	for j, fn := range spec.fnames {
		w.pools[fn] = &simPool{w: w, name: fn, cold: spec.cold[j]}
	}
	var planner *prewarm.Planner
	// The simulated platform starts any number of instances at once.
	plannerOptions := prewarm.Options{Preparer: w, Clock: clock, Rule: opts.Rule, PrepareSlots: len(spec.fnames)}
	set, _ := policy.settings() // checked by Run
	keepAlive := opts.FixedKeepAlive
	if set.keepAlive > 0 {
		keepAlive = set.keepAlive
	}
	switch set.kind {
	case OnDemand:
		w.keepAlive = prewarm.OnDemand{}
	case Fixed:
		w.keepAlive = prewarm.Fixed(keepAlive)
	case Hybrid:
		h := prewarm.NewHybrid(prewarm.HybridOptions{Preparer: w, Clock: clock, Tail: set.tail, Fallback: prewarm.Fixed(opts.FixedKeepAlive)})
		w.keepAlive, w.observers = h, []function.Observer{h}
	case Baton:
		planner = prewarm.NewPlanner(plannerOptions)
		k := prewarm.NewPredictive(planner, prewarm.OnDemand{})
		w.keepAlive, w.observers = k, []function.Observer{k, planner}
	case BatonHybrid:
		planner = prewarm.NewPlanner(plannerOptions)
		k := prewarm.NewPredictive(planner, prewarm.NewBatonHybrid(planner, prewarm.HybridOptions{Fallback: prewarm.Fixed(opts.FixedKeepAlive)}))
		w.keepAlive, w.observers = k, []function.Observer{k, planner}
	}

	rng := rand.New(rand.NewPCG(opts.Seed^0xa5a5, uint64(spec.index)))
	var res rowResult
	seq := 0
	invoke := func(at time.Time) {
		seq++
		id := strconv.Itoa(seq)
		res.invocations += uint64(len(spec.fnames))
		if planner != nil {
			planner.InvocationStarted(id, spec.def, at)
		}
		var step func(j int)
		step = func(j int) {
			if j >= len(spec.fnames) {
				if planner != nil {
					planner.InvocationEnded(id)
				}
				return
			}
			ref := spec.def.Do[j].Task.Ref
			start := clock.Now()
			if planner != nil {
				planner.TaskStarted(id, ref, ref, spec.def.Do[j].Name, start)
			}
			w.pools[spec.fnames[j]].call(spec.exec[j], func(wait time.Duration, prepared bool) {
				switch {
				case wait > 0 && prepared:
					res.late++
				case wait > 0:
					res.cold++
				}
				res.coldWait += wait
				if planner != nil {
					planner.TaskEnded(id, ref, ref, spec.def.Do[j].Name, clock.Now(), nil)
				}
				step(j + 1)
			})
		}
		step(0)
	}
	for m, c := range spec.row.Counts {
		if c == 0 {
			continue
		}
		n := min(c, opts.MaxPerMinute)
		// Calls beyond the simulated ones find the busy instances warm.
		res.invocations += uint64(c-n) * uint64(len(spec.fnames))
		times := make([]time.Duration, n)
		for k := range times {
			times[k] = time.Duration(rng.Int64N(int64(time.Minute)))
		}
		slices.Sort(times)
		base := epoch.Add(time.Duration(m) * time.Minute)
		for _, off := range times {
			// Everything due before the arrival happens first; the arrival
			// itself needs no timer.
			at := base.Add(off)
			clock.Advance(at)
			invoke(at)
		}
	}
	// Let the last calls finish, then count instances still idle up to
	// the end of the trace, as if measured then.
	end := epoch.Add(time.Duration(len(spec.row.Counts)) * time.Minute)
	clock.Advance(end)
	w.closeAt(end)
	res.idle = w.idle
	return res
}
