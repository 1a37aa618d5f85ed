package prewarm

import (
	"context"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/batonflow/baton/function"
)

// OnDemand evicts an instance as soon as it is idle: every call that
// finds no busy instance about to finish pays a cold start. It is the
// baseline that keep-alive and prewarming are measured against.
type OnDemand struct{}

func (OnDemand) Decide(s function.IdleState) function.Decision {
	// An instance prepared for a call still to come is kept for it.
	if s.PreparedFor.After(s.Now) {
		return function.Decision{RecheckAt: s.PreparedFor}
	}
	return function.Decision{Evict: true}
}

// Fixed is the commercial platforms' policy: keep an idle instance for a
// fixed time (function.IdleTimeout, 10 minutes by default).
func Fixed(d time.Duration) function.KeepAlive { return function.IdleTimeout(d) }

// HybridOptions configure the hybrid histogram policy.
type HybridOptions struct {
	// BinWidth and Range shape the idle-time histogram: 1-minute bins
	// over 4 hours in the paper.
	BinWidth time.Duration
	Range    time.Duration
	// Head and Tail are the percentiles that bound the window in which
	// the next call is expected: 5 and 99.
	Head, Tail float64
	// Margin widens the window on both sides (10%, as in the paper).
	Margin float64
	// MinSamples is how many idle times make a histogram worth trusting.
	// Default 10.
	MinSamples int
	// MinCV is the coefficient of variation of the bin counts below which
	// the histogram is too flat to predict anything (2 in the paper).
	MinCV float64
	// MaxOutOfRange is the fraction of idle times beyond Range past which
	// the histogram is not representative. Default 0.5.
	MaxOutOfRange float64
	// Fallback decides for functions whose histogram is not
	// representative. Default: Fixed(10 minutes).
	Fallback function.KeepAlive
	// Preparer reloads instances at the head of the window after evicting
	// them (the pre-warm window); nil keeps them alive from the end of the
	// call instead.
	Preparer Preparer
	Clock    Clock
	// OnReload hears each pre-warm the policy schedules: the function,
	// the time its instance is asked to be ready by, and the keep-alive
	// window from then. The workflow-aware policy uses it to prepare the
	// functions a workflow calls after its entry.
	OnReload func(fn string, by time.Time, keep time.Duration)
}

// Hybrid is the hybrid histogram policy of Shahrad et al., "Serverless in
// the Wild" (ATC '20). Per function it keeps a histogram of idle times
// (end of a call to the start of the next). When the histogram is
// representative, an instance is unloaded after each call and loaded
// again at the head percentile of the idle times (the pre-warm window),
// then kept until the tail percentile (the keep-alive window); when the
// head is zero it is simply kept to the tail. Otherwise the fallback
// decides.
type Hybrid struct {
	opts HybridOptions

	mu     sync.Mutex
	fns    map[string]*idleHistogram
	active map[string]bool // instance -> served a call since it was last idle
}

type idleHistogram struct {
	bins       []uint32
	outOfRange uint32
	total      uint32
	lastEnd    time.Time // end of the latest call, zero while one runs
	busy       int
	reloadFor  time.Time // the last pre-warm scheduled
	// cached holds the windows until the histogram changes: decisions
	// far outnumber new idle times on a busy function.
	cached *Windows
}

// NewHybrid returns the policy with the paper's defaults for zero options.
func NewHybrid(opts HybridOptions) *Hybrid {
	if opts.BinWidth <= 0 {
		opts.BinWidth = time.Minute
	}
	if opts.Range <= 0 {
		opts.Range = 4 * time.Hour
	}
	if opts.Head <= 0 {
		opts.Head = 5
	}
	if opts.Tail <= 0 {
		opts.Tail = 99
	}
	if opts.Margin <= 0 {
		opts.Margin = 0.1
	}
	if opts.MinSamples <= 0 {
		opts.MinSamples = 10
	}
	if opts.MinCV <= 0 {
		opts.MinCV = 2
	}
	if opts.MaxOutOfRange <= 0 {
		opts.MaxOutOfRange = 0.5
	}
	if opts.Fallback == nil {
		opts.Fallback = function.DefaultKeepAlive
	}
	if opts.Clock == nil {
		opts.Clock = WallClock{}
	}
	return &Hybrid{opts: opts, fns: map[string]*idleHistogram{}, active: map[string]bool{}}
}

func (h *Hybrid) histogram(fn string) *idleHistogram {
	x := h.fns[fn]
	if x == nil {
		x = &idleHistogram{bins: make([]uint32, int(math.Ceil(float64(h.opts.Range)/float64(h.opts.BinWidth))))}
		h.fns[fn] = x
	}
	return x
}

// Observe implements function.Observer: a call starting after an idle
// period adds that period to the function's histogram.
func (h *Hybrid) Observe(e function.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch e.Kind {
	case function.EventBusy:
		x := h.histogram(e.Function)
		if !x.lastEnd.IsZero() && x.busy == 0 {
			h.addIdle(x, e.Time.Sub(x.lastEnd))
			x.lastEnd = time.Time{}
		}
		x.busy++
		h.active[e.Instance] = true
	case function.EventIdle:
		if h.active[e.Instance] {
			delete(h.active, e.Instance)
			x := h.histogram(e.Function)
			x.busy = max(x.busy-1, 0)
			if x.busy == 0 {
				x.lastEnd = e.Time
			}
		}
	case function.EventEvicted:
		if h.active[e.Instance] {
			delete(h.active, e.Instance)
			x := h.histogram(e.Function)
			x.busy = max(x.busy-1, 0)
			if x.busy == 0 {
				x.lastEnd = e.Time
			}
		}
	}
}

// AddIdle records an idle time directly, for replaying a history.
func (h *Hybrid) AddIdle(fn string, d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.addIdle(h.histogram(fn), d)
}

func (h *Hybrid) addIdle(x *idleHistogram, d time.Duration) {
	x.cached = nil
	x.total++
	if d < 0 {
		d = 0
	}
	i := int(d / h.opts.BinWidth)
	if i >= len(x.bins) {
		x.outOfRange++
		return
	}
	x.bins[i]++
}

// Windows are the hybrid policy's verdict for a function: whether its
// histogram is representative, and if so its pre-warm window (how long
// after a call to load an instance again) and keep-alive window (how long
// to keep it from then).
type Windows struct {
	Representative bool
	PreWarm        time.Duration
	KeepAlive      time.Duration
}

// Windows computes a function's windows from its histogram.
func (h *Hybrid) Windows(fn string) Windows {
	h.mu.Lock()
	defer h.mu.Unlock()
	x := h.fns[fn]
	if x == nil {
		return Windows{}
	}
	return h.windows(x)
}

func (h *Hybrid) windows(x *idleHistogram) Windows {
	if x.cached == nil {
		w := h.computeWindows(x)
		x.cached = &w
	}
	return *x.cached
}

func (h *Hybrid) computeWindows(x *idleHistogram) Windows {
	if int(x.total) < h.opts.MinSamples || float64(x.outOfRange) > h.opts.MaxOutOfRange*float64(x.total) {
		return Windows{}
	}
	inRange := x.total - x.outOfRange
	if inRange == 0 {
		return Windows{}
	}
	mean := float64(inRange) / float64(len(x.bins))
	var ss float64
	for _, c := range x.bins {
		d := float64(c) - mean
		ss += d * d
	}
	cv := math.Sqrt(ss/float64(len(x.bins))) / mean
	if cv < h.opts.MinCV {
		return Windows{}
	}
	binAt := func(pct float64) int {
		need := uint32(math.Ceil(pct / 100 * float64(inRange)))
		var seen uint32
		for i, c := range x.bins {
			seen += c
			if seen >= max(need, 1) {
				return i
			}
		}
		return len(x.bins) - 1
	}
	head := time.Duration(binAt(h.opts.Head)) * h.opts.BinWidth
	tail := time.Duration(binAt(h.opts.Tail)+1) * h.opts.BinWidth
	pre := time.Duration(float64(head) * (1 - h.opts.Margin))
	keep := time.Duration(float64(tail)*(1+h.opts.Margin)) - pre
	return Windows{Representative: true, PreWarm: pre, KeepAlive: keep}
}

// Decide implements function.KeepAlive.
func (h *Hybrid) Decide(s function.IdleState) function.Decision {
	h.mu.Lock()
	x := h.histogram(s.Function)
	w := h.windows(x)
	if !w.Representative {
		h.mu.Unlock()
		return h.opts.Fallback.Decide(s)
	}
	// An instance loaded for a call still to come (by the pre-warm window
	// or a planner) lives through the keep-alive window from then.
	if s.PreparedFor.After(s.Stats.LastInvocation) {
		h.mu.Unlock()
		return keepUntil(s, s.PreparedFor.Add(w.KeepAlive))
	}
	if w.PreWarm <= 0 || h.opts.Preparer == nil {
		h.mu.Unlock()
		return keepUntil(s, s.IdleSince.Add(w.PreWarm+w.KeepAlive))
	}
	by := s.IdleSince.Add(w.PreWarm)
	schedule := by.After(s.Now) && !x.reloadFor.Equal(by)
	if schedule {
		x.reloadFor = by
	}
	h.mu.Unlock()
	if schedule {
		fn, keep := s.Function, w.KeepAlive
		h.opts.Clock.AfterFunc(0, func() {
			_ = h.opts.Preparer.Prepare(context.Background(), fn, by)
			if h.opts.OnReload != nil {
				h.opts.OnReload(fn, by, keep)
			}
		})
	}
	return function.Decision{Evict: true}
}

func keepUntil(s function.IdleState, deadline time.Time) function.Decision {
	if !s.Now.Before(deadline) {
		return function.Decision{Evict: true}
	}
	return function.Decision{RecheckAt: deadline}
}

// Predictive is Baton's workflow-aware policy, just in time. The planner
// starts an instance of a function that a workflow is about to call so
// that it is ready when the call is predicted; after a call, an instance
// is kept only while its function's next predicted call is nearer than
// the break-even time (Rule.Keep: the idle time it costs against the cold
// start it saves) or was already prepared for, and evicted otherwise: a
// later call gets an instance prepared for it again. Functions only
// called inside workflows and predicted early enough, and entry functions
// of workflows whose arrivals the planner predicts, are the planner's to
// serve (Planner.Inner); the others (entry functions of workflows invoked
// at random, and functions predicted with less lead than their cold
// start) are left to the fallback: OnDemand, or a hybrid histogram policy
// (NewBatonHybrid).
type Predictive struct {
	Planner  *Planner
	Fallback function.KeepAlive
}

// NewPredictive returns the policy; a nil fallback is a Hybrid policy
// that reloads through the planner's preparer. Use NewBatonHybrid to make
// a Hybrid fallback whose reloads of a workflow's entry function also
// prepare the functions the workflow calls after it.
func NewPredictive(p *Planner, fallback function.KeepAlive) *Predictive {
	if fallback == nil {
		fallback = NewBatonHybrid(p, HybridOptions{})
	}
	return &Predictive{Planner: p, Fallback: fallback}
}

// NewBatonHybrid returns a Hybrid policy wired to a planner: it reloads
// through the planner's preparer and clock, and each reload of an entry
// function is announced to the planner as an expected invocation
// (Planner.ExpectArrival), so the rest of the workflow is prepared in step.
func NewBatonHybrid(p *Planner, opts HybridOptions) *Hybrid {
	opts.Preparer, opts.Clock, opts.OnReload = p.opts.Preparer, p.clock, p.ExpectArrival
	return NewHybrid(opts)
}

// Observe forwards lifecycle events to the fallback when it learns from
// them.
func (k *Predictive) Observe(e function.Event) {
	if o, ok := k.Fallback.(function.Observer); ok {
		o.Observe(e)
	}
}

// recheckAfterDue is how long past a predicted call the workflow-aware
// policy looks at an instance kept for it again.
const recheckAfterDue = 5 * time.Millisecond

// Decide implements function.KeepAlive.
func (k *Predictive) Decide(s function.IdleState) function.Decision {
	if c, ok := k.Planner.NextCall(s.Function, s.Now); ok {
		wait := max(c.At.Sub(s.Now), 0)
		// A call an instance was prepared for finds it waiting: the
		// prepare is not sent again, so evicting would make the call cold.
		if c.Prepared || k.Planner.rule.Keep(c.Prob, k.Planner.ColdStart(s.Function), wait) {
			// Asked again just after the call is due (once it took an
			// instance, or its path was not taken, this one is surplus),
			// and past that when the prediction lapses.
			recheck := c.At.Add(recheckAfterDue)
			if !recheck.After(s.Now) {
				// Overdue: look again as long after as it is late
				// already, so that a call held up long costs few checks.
				recheck = s.Now.Add(max(recheckAfterDue, s.Now.Sub(c.At)))
			}
			if recheck.After(c.Until) {
				recheck = c.Until
			}
			return function.Decision{RecheckAt: recheck}
		}
	}
	if k.Planner.Inner(s.Function) {
		return function.Decision{Evict: true}
	}
	return k.Fallback.Decide(s)
}

// BySpec applies the keep-alive policy each function's spec names
// (function.Spec.KeepAlive, seen as IdleState.KeepAlive) and Default to
// the functions whose spec names none. Make it with NewBySpec.
type BySpec struct {
	Default function.KeepAlive
	// Named are the policies by name; "fixed:DURATION" needs no entry.
	Named     map[string]function.KeepAlive
	observers []function.Observer
}

// NewBySpec returns the router. Every policy among def and named that
// learns from lifecycle events hears all of them: events do not say
// which policy a function's spec names.
func NewBySpec(def function.KeepAlive, named map[string]function.KeepAlive) *BySpec {
	b := &BySpec{Default: def, Named: named}
	seen := map[function.Observer]bool{}
	add := func(k function.KeepAlive) {
		if o, ok := k.(function.Observer); ok && !seen[o] {
			seen[o] = true
			b.observers = append(b.observers, o)
		}
	}
	add(def)
	for _, name := range slices.Sorted(maps.Keys(named)) {
		add(named[name])
	}
	return b
}

// Decide implements function.KeepAlive.
func (b *BySpec) Decide(s function.IdleState) function.Decision {
	if k := b.policy(s.KeepAlive); k != nil {
		return k.Decide(s)
	}
	return b.Default.Decide(s)
}

func (b *BySpec) policy(name string) function.KeepAlive {
	if name == "" {
		return nil
	}
	if k, ok := b.Named[name]; ok {
		return k
	}
	if policy, keep, err := function.ParseKeepAlive(name); err == nil && policy == "fixed" && keep > 0 {
		return Fixed(keep)
	}
	return nil
}

// Observe implements function.Observer.
func (b *BySpec) Observe(e function.Event) {
	for _, o := range b.observers {
		o.Observe(e)
	}
}

// PerFunction selects a policy per function, with a default for the
// others. Lifecycle events reach every policy that observes them.
type PerFunction struct {
	Default   function.KeepAlive
	Functions map[string]function.KeepAlive
}

// Decide implements function.KeepAlive.
func (p *PerFunction) Decide(s function.IdleState) function.Decision {
	if k, ok := p.Functions[s.Function]; ok {
		return k.Decide(s)
	}
	if p.Default == nil {
		return function.DefaultKeepAlive.Decide(s)
	}
	return p.Default.Decide(s)
}

// Observe implements function.Observer, once per distinct policy.
func (p *PerFunction) Observe(e function.Event) {
	if k, ok := p.Functions[e.Function]; ok {
		if o, ok := k.(function.Observer); ok {
			o.Observe(e)
		}
		return
	}
	if o, ok := p.Default.(function.Observer); ok {
		o.Observe(e)
	}
}
