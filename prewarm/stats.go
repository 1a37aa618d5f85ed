package prewarm

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// windowSize is how many recent samples an Estimate keeps for its
// percentiles: enough for a stable median and a usable 95th percentile,
// small enough to follow a change of behaviour within a few dozen calls.
const windowSize = 32

// Estimate is the learned distribution of one duration: an exponentially
// weighted mean and a window of recent samples for percentiles. Expected
// times use the median, which a cold start or a stall does not drag the
// way it drags a mean.
type Estimate struct {
	Mean    time.Duration   `json:"mean"`
	Samples uint64          `json:"samples"`
	Recent  []time.Duration `json:"recent,omitempty"`
	Next    int             `json:"next,omitempty"`
}

// Add records a sample of a duration; a negative one (clock skew, a
// subtraction gone below zero) counts as zero.
func (e *Estimate) Add(d time.Duration) { e.AddSigned(max(d, 0)) }

// AddSigned records a sample of a signed quantity, such as an error.
func (e *Estimate) AddSigned(d time.Duration) {
	if e.Samples == 0 {
		e.Mean = d
	} else {
		e.Mean += (d - e.Mean) / 5
	}
	e.Samples++
	if len(e.Recent) < windowSize {
		e.Recent = append(e.Recent, d)
		return
	}
	e.Recent[e.Next%windowSize] = d
	e.Next = (e.Next + 1) % windowSize
}

// Known reports whether any sample was recorded.
func (e *Estimate) Known() bool { return e != nil && e.Samples > 0 }

// Quantile is the nearest-rank q-quantile (0..1) of the recent samples.
func (e *Estimate) Quantile(q float64) time.Duration {
	if !e.Known() || len(e.Recent) == 0 {
		return 0
	}
	s := slices.Clone(e.Recent)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Median is the 0.5-quantile.
func (e *Estimate) Median() time.Duration { return e.Quantile(0.5) }

// FunctionStats is what is learned about a function.
type FunctionStats struct {
	// Exec is the execution time on a warm instance (busy to idle).
	Exec Estimate `json:"exec"`
	// Cold is the cold start (compile, instantiate, init).
	Cold Estimate `json:"cold"`
	// Readiness is the error of prepared instances' timing: how much
	// earlier than aimed an instance prepared for a call was ready
	// (negative: the call came first and waited). It combines the
	// errors of the predicted call time and of the cold start, and sets
	// how early the next prepares aim (Rule.WaitShare).
	Readiness Estimate `json:"readiness,omitzero"`
}

// TaskStats is what is learned about one task of one workflow.
type TaskStats struct {
	// Duration is TaskStarted to TaskEnded.
	Duration Estimate `json:"duration"`
	// Dispatch, for a call task, is the time from its start to its call
	// taking an instance: the part of Duration before the call runs.
	// It differs by task (an invocation's first calls also wait for the
	// invocation to be recorded), so the calls after a task are moved
	// by how far their running call's dispatch is from its own.
	Dispatch Estimate `json:"dispatch,omitzero"`
	// Cases counts the switch cases taken, by case name.
	Cases map[string]uint64 `json:"cases,omitempty"`
	// Loops counts the iteration counts of a for task.
	Loops map[int]uint64 `json:"loops,omitempty"`
	// Caught and Runs count a try task's activations that ran their catch
	// block, and all of its activations.
	Caught uint64 `json:"caught,omitempty"`
	Runs   uint64 `json:"runs,omitempty"`
}

// Stats is the planner's learned model of the world. It is safe for
// concurrent use and serialises to JSON for persistence.
type Stats struct {
	mu        sync.Mutex
	functions map[string]*FunctionStats
	tasks     map[string]*TaskStats // workflow id + ref
	// gap is the engine's own time from a task becoming ready to its
	// dispatch, added per task on a predicted path.
	gap Estimate
	// dispatch is the time from a call task's start to its call reaching
	// the function layer (the engine records the task, resolves the
	// function, queues the call): the instance is needed that much after
	// the task starts. Learned across functions: it is the engine's.
	dispatch Estimate
	// readiness pools every function's readiness errors: the machine's
	// current timing noise (how scattered starts and calls are now),
	// which a function with few errors of its own aims by.
	readiness Estimate
	// starts follows how consecutive cold starts, of any function,
	// deviate from their function's median together.
	starts startCorrelation
}

// startCorrelation estimates the correlation between the deviations of
// consecutive cold starts (each the log of the start over its function's
// median): on a loaded machine slow starts come in spells, and the
// overruns of prepares run back to back then add up faster than
// independent ones would. Exponentially weighted, so that it follows the
// machine's current state; not persisted, the machine's state being
// what it is now.
type startCorrelation struct {
	n                     int
	prev                  float64
	mean, variance, covar float64
}

// startCorrelationWeight is the weight of a new pair of consecutive
// starts: the estimate spans the last hundred or so.
const startCorrelationWeight = 0.02

// minCorrelatedStarts is how many starts are seen before the correlation
// is trusted.
const minCorrelatedStarts = 20

func (c *startCorrelation) add(x float64) {
	c.n++
	if c.n == 1 {
		c.mean, c.prev = x, x
		return
	}
	w := startCorrelationWeight
	if c.n < minCorrelatedStarts {
		w = 1 / float64(c.n) // a plain mean until enough are seen
	}
	c.mean += w * (x - c.mean)
	c.variance += w * ((x-c.mean)*(x-c.mean) - c.variance)
	c.covar += w * ((x-c.mean)*(c.prev-c.mean) - c.covar)
	c.prev = x
}

// rho is the lag-one correlation, zero until trusted, within [0, 0.8]:
// negative correlation (a fast start after a slow one) is not relied on,
// and beyond 0.8 the run margin grows no further.
func (c *startCorrelation) rho() float64 {
	if c.n < minCorrelatedStarts || c.variance <= 0 {
		return 0
	}
	return min(max(c.covar/c.variance, 0), 0.8)
}

// NewStats returns empty statistics: every estimate starts from the
// defaults of Defaults.
func NewStats() *Stats {
	return &Stats{functions: map[string]*FunctionStats{}, tasks: map[string]*TaskStats{}}
}

func taskKey(workflow, ref string) string { return workflow + "#" + ref }

// function returns a function's statistics; s.mu must be held.
func (s *Stats) function(name string) *FunctionStats {
	f := s.functions[name]
	if f == nil {
		f = &FunctionStats{}
		s.functions[name] = f
	}
	return f
}

// task returns a task's statistics; s.mu must be held.
func (s *Stats) task(workflow, ref string) *TaskStats {
	k := taskKey(workflow, ref)
	t := s.tasks[k]
	if t == nil {
		t = &TaskStats{}
		s.tasks[k] = t
	}
	return t
}

// ObserveExec records a warm execution of a function.
func (s *Stats) ObserveExec(fn string, d time.Duration) {
	s.mu.Lock()
	s.function(fn).Exec.Add(d)
	s.mu.Unlock()
}

// ObserveCold records a cold start of a function.
func (s *Stats) ObserveCold(fn string, d time.Duration) {
	s.mu.Lock()
	f := s.function(fn)
	if med := f.Cold.Median(); med > 0 && d > 0 {
		s.starts.add(math.Log(float64(d) / float64(med)))
	}
	f.Cold.Add(d)
	s.mu.Unlock()
}

// ObserveReadiness records how much earlier than aimed a prepared
// instance was ready for its call (negative when the call waited).
func (s *Stats) ObserveReadiness(fn string, d time.Duration) {
	s.mu.Lock()
	s.function(fn).Readiness.AddSigned(d)
	s.readiness.AddSigned(d)
	s.mu.Unlock()
}

// ObserveDispatch records how long after its task started a call reached
// the function layer.
func (s *Stats) ObserveDispatch(d time.Duration) {
	s.mu.Lock()
	s.dispatch.Add(d)
	s.mu.Unlock()
}

// ObserveTaskDispatch records how long after a call task started its call
// took an instance.
func (s *Stats) ObserveTaskDispatch(workflow, ref string, d time.Duration) {
	s.mu.Lock()
	s.task(workflow, ref).Dispatch.Add(d)
	s.mu.Unlock()
}

// ObserveTask records a task's duration.
func (s *Stats) ObserveTask(workflow, ref string, d time.Duration) {
	s.mu.Lock()
	s.task(workflow, ref).Duration.Add(d)
	s.mu.Unlock()
}

// ObserveGap records the engine's dispatch delay before a call.
func (s *Stats) ObserveGap(d time.Duration) {
	s.mu.Lock()
	s.gap.Add(d)
	s.mu.Unlock()
}

// ObserveCase records that a switch took the named case.
func (s *Stats) ObserveCase(workflow, ref, name string) {
	s.mu.Lock()
	t := s.task(workflow, ref)
	if t.Cases == nil {
		t.Cases = map[string]uint64{}
	}
	t.Cases[name]++
	s.mu.Unlock()
}

// ObserveLoop records a for task's number of iterations.
func (s *Stats) ObserveLoop(workflow, ref string, n int) {
	s.mu.Lock()
	t := s.task(workflow, ref)
	if t.Loops == nil {
		t.Loops = map[int]uint64{}
	}
	t.Loops[n]++
	s.mu.Unlock()
}

// ObserveTry records whether a try task ran its catch block.
func (s *Stats) ObserveTry(workflow, ref string, caught bool) {
	s.mu.Lock()
	t := s.task(workflow, ref)
	t.Runs++
	if caught {
		t.Caught++
	}
	s.mu.Unlock()
}

// Defaults are the estimates used before anything was learned. They err
// on the side of preparing early: an instance ready too soon costs some
// idle time, one ready too late costs a cold start on the critical path.
type Defaults struct {
	// ColdStart is assumed for a function never started; the Manager
	// leads its own prewarming by its measured average once there is one.
	ColdStart time.Duration
	// Task is the duration of a task never observed (zero: predicted
	// calls after it are assumed to follow at once).
	Task time.Duration
}

// view is a consistent read of the statistics for one prediction.
type view struct {
	s        *Stats
	workflow string
	def      Defaults
}

// callDuration is the expected time from a call task's start to the
// start of what follows it when its function is warm: its own observed
// median when known (its cold runs are outliers the median ignores),
// else the function's warm execution; either way plus the engine's gap
// between one task's end and the next one's start, which on a loaded
// machine is milliseconds per task and adds up along a chain.
func (v view) callDuration(ref, fn string) time.Duration {
	if t := v.s.tasks[taskKey(v.workflow, ref)]; t != nil && t.Duration.Known() {
		return t.Duration.Median() + v.s.gap.Median()
	}
	if f := v.s.functions[fn]; f != nil && f.Exec.Known() {
		return f.Exec.Median() + v.s.gap.Median()
	}
	return v.def.Task
}

func (v view) taskDuration(ref string) time.Duration {
	if t := v.s.tasks[taskKey(v.workflow, ref)]; t != nil && t.Duration.Known() {
		return t.Duration.Median() + v.s.gap.Median()
	}
	return v.def.Task
}

// runSpread is how much faster than one prepare's own the margin of a run
// of prepares back to back grows: by the square root of the run for
// independent overruns, times sqrt((1+ρ)/(1−ρ)) when consecutive starts
// correlate by ρ (the long-run variance of a correlated sum).
func (v view) runSpread() float64 {
	rho := v.s.starts.rho()
	return math.Sqrt((1 + rho) / (1 - rho))
}

// dispatchDelay is the expected time from a call task's start to its call
// reaching the function layer, when its instance must be ready.
func (v view) dispatchDelay() time.Duration { return v.s.dispatch.Median() }

// taskDispatch is the expected time from the start of call task ref to its
// call taking an instance: its own median once known, else the engine's.
func (v view) taskDispatch(ref string) time.Duration {
	if t := v.s.tasks[taskKey(v.workflow, ref)]; t != nil && t.Dispatch.Known() {
		return t.Dispatch.Median()
	}
	return v.dispatchDelay()
}

// minReadinessSamples is how many readiness errors a function needs
// before they replace the rule's fixed margin.
const minReadinessSamples = 8

// margin is how long before a predicted call of fn its instance should be
// ready. Once enough readiness errors are known, it is the one that lets
// a prepared call wait for the end of its start with probability
// r.WaitShare: an instance ready early idles, one ready late makes the
// call wait, and the margin trades one for the other. A function with
// too few errors of its own takes the quantile of every function's
// recent ones: the noise is mostly the machine's (how long starts take
// now, how late the engine dispatches), and a chain of ten learns it ten
// times as fast pooled. It aims late by at most a median start, and early
// by at most the slower starts' time: on a busy machine the starts the
// scheduler preempts take a time slice longer (the 90th percentile of
// the bench's chain under two CPU hogs was 6.5 ms against a median of 2.3),
// and a margin of one median start left their calls waiting.
func (v view) margin(fn string, r Rule) time.Duration {
	errs := &v.s.readiness
	if f := v.s.functions[fn]; f != nil && f.Readiness.Samples >= minReadinessSamples {
		errs = &f.Readiness
	}
	if errs.Samples < minReadinessSamples {
		return r.Margin
	}
	m := -errs.Quantile(r.WaitShare)
	return min(max(m, -v.coldStart(fn)), v.coldStartQuantile(fn, 0.9))
}

// coldStart is fn's expected cold start: the median of its recent ones.
func (v view) coldStart(fn string) time.Duration { return v.coldStartQuantile(fn, 0.5) }

// coldStartQuantile is the q-quantile of fn's recent cold starts, the
// default cold start before any was seen.
func (v view) coldStartQuantile(fn string, q float64) time.Duration {
	if f := v.s.functions[fn]; f != nil && f.Cold.Known() {
		return f.Cold.Quantile(q)
	}
	return v.def.ColdStart
}

// caseOdds are the probabilities of a switch's cases: observed
// frequencies with one pseudo-count per case (Laplace smoothing), so an
// unseen switch is uniform and a case never taken keeps a small chance.
func (v view) caseOdds(ref string, names []string) []float64 {
	t := v.s.tasks[taskKey(v.workflow, ref)]
	out := make([]float64, len(names))
	total := 0.0
	for i, n := range names {
		c := 1.0
		if t != nil {
			c += float64(t.Cases[n])
		}
		out[i] = c
		total += c
	}
	for i := range out {
		out[i] /= total
	}
	return out
}

// loopSurvival returns P(iterations > k) for k = 0..limit-1. Before any
// observation a loop is assumed to run once.
func (v view) loopSurvival(ref string, limit int) []float64 {
	out := make([]float64, limit)
	t := v.s.tasks[taskKey(v.workflow, ref)]
	if t == nil || len(t.Loops) == 0 {
		if limit > 0 {
			out[0] = 1
		}
		return out
	}
	total := 0.0
	for _, c := range t.Loops {
		total += float64(c)
	}
	for n, c := range t.Loops {
		for k := 0; k < min(n, limit); k++ {
			out[k] += float64(c) / total
		}
	}
	return out
}

// catchOdds is the probability that a try runs its catch block; zero
// until a failure was seen.
func (v view) catchOdds(ref string) float64 {
	t := v.s.tasks[taskKey(v.workflow, ref)]
	if t == nil || t.Runs == 0 {
		return 0
	}
	return float64(t.Caught) / float64(t.Runs+1)
}

// snapshot is the persisted form.
type snapshot struct {
	Version   int                       `json:"version"`
	Functions map[string]*FunctionStats `json:"functions"`
	Tasks     map[string]*TaskStats     `json:"tasks"`
	Gap       Estimate                  `json:"gap"`
	Dispatch  Estimate                  `json:"dispatch,omitzero"`
	Readiness Estimate                  `json:"readiness,omitzero"`
}

const snapshotVersion = 1

// MarshalJSON encodes the statistics.
func (s *Stats) MarshalJSON() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.Marshal(snapshot{Version: snapshotVersion, Functions: s.functions, Tasks: s.tasks, Gap: s.gap,
		Dispatch: s.dispatch, Readiness: s.readiness})
}

// UnmarshalJSON replaces the statistics with decoded ones.
func (s *Stats) UnmarshalJSON(b []byte) error {
	var snap snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return fmt.Errorf("prewarm statistics: %w", err)
	}
	if snap.Version != snapshotVersion {
		return fmt.Errorf("prewarm statistics: version %d, this build reads %d", snap.Version, snapshotVersion)
	}
	if snap.Functions == nil {
		snap.Functions = map[string]*FunctionStats{}
	}
	if snap.Tasks == nil {
		snap.Tasks = map[string]*TaskStats{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.functions, s.tasks, s.gap, s.dispatch, s.readiness = snap.Functions, snap.Tasks, snap.Gap, snap.Dispatch, snap.Readiness
	return nil
}

// Function returns a copy of a function's statistics.
func (s *Stats) Function(name string) (FunctionStats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.functions[name]
	if f == nil {
		return FunctionStats{}, false
	}
	c := *f
	c.Exec.Recent = slices.Clone(f.Exec.Recent)
	c.Cold.Recent = slices.Clone(f.Cold.Recent)
	c.Readiness.Recent = slices.Clone(f.Readiness.Recent)
	return c, true
}

// Task returns a copy of a task's statistics.
func (s *Stats) Task(workflow, ref string) (TaskStats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[taskKey(workflow, ref)]
	if t == nil {
		return TaskStats{}, false
	}
	raw, _ := json.Marshal(t)
	var c TaskStats
	_ = json.Unmarshal(raw, &c)
	return c, true
}

// ExecCost is the median warm execution time of a function, for the QoS
// scheduler's cost of its calls (qos.CostModel); false before any sample.
func (s *Stats) ExecCost(fn string) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.functions[fn]
	if f == nil || !f.Exec.Known() {
		return 0, false
	}
	return f.Exec.Median(), true
}
