// Package prewarm ends cascading cold starts: a Planner that predicts from
// a workflow's definition and learned statistics which functions an
// invocation will call next and when, and prepares instances just in time;
// and keep-alive policies for the function layer (fixed, the hybrid
// histogram policy of Shahrad et al., ATC '20, and a workflow-aware policy
// that keeps an instance only while a predicted call is near).
package prewarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// Preparer warms an instance of a function by a time;
// *function.Manager implements it.
type Preparer interface {
	Prepare(ctx context.Context, name string, by time.Time) error
}

// StateStore keeps small named blobs across restarts; every store.Store
// implements it. GetState of a key never written returns an error
// wrapping store.ErrNotFound.
type StateStore interface {
	GetState(ctx context.Context, key string) ([]byte, error)
	PutState(ctx context.Context, key string, value []byte) error
}

// StatsKey is the StateStore key of the planner's statistics.
const StatsKey = "prewarm/stats"

// Rule decides whether a predicted call is worth an instance prepared for
// it. Preparing pays when the expected cold-start latency saved exceeds
// the expected cost of the memory it holds, both in seconds, with an
// instance-second held without serving weighing IdleCost seconds of
// latency:
//
//	prob × coldStart  ≥  IdleCost × (Margin + (1 − prob) × (coldStart + Margin + recheck))
//
// A call that comes costs Margin of idle time (the instance is ready that
// much early); one that does not costs the instance's whole life: its
// start, the margin, and the few milliseconds until the workflow-aware
// keep-alive looks at it again past the predicted time and finds its path
// not taken (recheckAfterDue).
//
// Prepared instances are started just in time: ready a margin before the
// predicted call, started the expected cold start before that. The
// margin is Margin until the planner has seen how early its instances
// turn out against their aim; then it is the one that makes a prepared
// call wait with probability WaitShare. After a
// call, the workflow-aware keep-alive keeps an instance only when the
// next predicted call of its function is nearer than the break-even time,
// KeepFactor × prob × coldStart: waiting idle for t costs t instance
// seconds, a cold start costs its duration in latency.
type Rule struct {
	// IdleCost is the price of an idle instance-second in seconds of
	// latency. Default 0.2: a second of idle instance is worth 200 ms of
	// latency saved.
	IdleCost float64
	// WaitShare is the share of prepared calls that may wait for the end
	// of their instance's start: the learned margin is that quantile of
	// the readiness errors. Default 0.05.
	//
	// It is a service level rather than IdleCost's newsvendor quantile
	// (IdleCost / (1 + IdleCost), one call in six at 0.2): which calls to
	// prepare for is a bet priced by IdleCost, but a call that is surely
	// coming is the promise prewarming makes, and it is judged by how
	// much of the cold-start latency it removes.
	WaitShare float64
	// Margin is how long before the predicted call the instance should be
	// ready, until the errors of the function's prepares are learned:
	// slack for the error of the predicted time and of the cold start.
	// Negative aims late: the call may wait up to that long for the end
	// of the start, and the instance seldom waits for the call. Default
	// (zero) 2ms.
	Margin time.Duration
	// Grace is how long an instance prepared for an expected arrival is
	// kept past the arrival's window, and the least time a call whose
	// task started holds its prepared instance before the call reaches
	// the function layer. Default 100ms.
	Grace time.Duration
	// KeepFactor scales the break-even time up to which an idle instance
	// is kept for its function's next predicted call. Default 1: keep
	// exactly when the idle time costs no more than the cold start saved.
	KeepFactor float64
}

func (r Rule) withDefaults() Rule {
	if r.IdleCost <= 0 {
		r.IdleCost = 0.2
	}
	if r.WaitShare <= 0 || r.WaitShare >= 1 {
		r.WaitShare = 0.05
	}
	if r.Margin == 0 {
		r.Margin = 2 * time.Millisecond
	}
	if r.KeepFactor <= 0 {
		r.KeepFactor = 1
	}
	if r.Grace <= 0 {
		r.Grace = 100 * time.Millisecond
	}
	return r
}

// Worth applies the rule.
func (r Rule) Worth(prob float64, coldStart time.Duration) bool {
	margin := max(r.Margin, 0)
	gain := prob * coldStart.Seconds()
	cost := r.IdleCost * (margin.Seconds() + (1-prob)*(coldStart+margin+recheckAfterDue).Seconds())
	return gain >= cost
}

// Keep reports whether an idle instance should wait for a call predicted
// after wait with probability prob rather than be evicted and started
// again (just in time) for it: whether the expected idle time is within
// the break-even time of the function's cold start.
func (r Rule) Keep(prob float64, coldStart, wait time.Duration) bool {
	return wait.Seconds() <= r.KeepFactor*prob*coldStart.Seconds()
}

// Options configure a Planner.
type Options struct {
	Preparer Preparer
	// Clock defaults to the wall clock.
	Clock Clock
	// State persists the statistics (Load, Save); nil keeps them in memory.
	State StateStore
	Rule  Rule
	// Defaults are the estimates before anything is learned; ColdStart
	// defaults to 50ms.
	Defaults Defaults
	// Lookahead bounds how far ahead calls are predicted. Default 30s:
	// further calls are prepared when a later task starts.
	Lookahead time.Duration
	// MinProbability prunes unlikely paths. Default 0.01.
	MinProbability float64
	// PrepareSlots is how many prepared starts the Preparer runs at once
	// (function.Options.MaxPreparing); the planner staggers the prepares
	// of one invocation so that none waits for a turn past its call.
	// Default function.DefaultMaxPreparing().
	PrepareSlots int
	// Subflows resolves `run: workflow` children; nil leaves them opaque.
	Subflows Subflows
	// ArrivalTolerance bounds the spread of a workflow's inter-arrival
	// times (their median absolute deviation), as a fraction of their
	// median, for which its next invocation is predicted and its
	// functions, the entry ones included, are prepared just in time for
	// it. Zero (the default) sets no such bound: what decides is the cost
	// of the spread, whatever the period — the next arrival is predicted
	// when an entry instance ready for it, idling half its window (three
	// deviations either way) at the rule's IdleCost, costs less than the
	// cold start it saves. Negative turns arrival prediction off.
	ArrivalTolerance float64
	// Enabled selects the workflows to prewarm for (all when nil). A
	// workflow whose document.metadata has `baton.prewarm: false` is
	// never prewarmed for.
	Enabled func(def *dsl.Workflow) bool
	Logger  *slog.Logger
}

// Planner predicts the calls of running invocations and prepares
// instances for them. It is an engine.TaskObserver (with the engine's
// InvocationObserver extension) and a function.Observer: register it as
// engine.Options.Observer (or compose it with another one with
// Observers) and in function.Options.Observers. It learns as it goes:
// execution and cold-start times from the function layer, task durations,
// switch odds, loop lengths and catch odds from the engine.
type Planner struct {
	opts  Options
	rule  Rule
	clock Clock
	log   *slog.Logger
	stats *Stats

	mu          sync.Mutex
	models      map[string]*Model // by workflow id
	invocations map[string]*invocation
	// upcoming holds, per function, the calls predicted by live
	// invocations: what the workflow-aware keep-alive consults.
	upcoming map[string]map[string]*plannedCall
	// dispatching holds, per function, the calls whose task started,
	// oldest first, until the call takes an instance (its busy event),
	// which tells how long the call waited for an instance to start. The
	// engine may invoke the function well after the task started (a busy
	// store, a loaded machine); an instance prepared for the call that
	// becomes ready in between must wait for the call rather than be
	// evicted as unneeded, which would make the call start cold.
	dispatching map[string][]dispatchingCall
	entries     map[string]bool // functions first called by some workflow
	inner       map[string]bool // functions called after another task
	// late marks functions whose first prediction in an invocation came
	// with less lead than their cold start: preparing cannot hide it, so
	// their instances are left to the fallback keep-alive.
	late      map[string]bool
	busySince map[string]time.Time // instance id -> busy since
	// fresh marks instances started and not yet used; readyAt is when
	// such an instance became ready and idle, to learn how early
	// prepared instances are (Stats.ObserveReadiness).
	fresh   map[string]bool
	readyAt map[string]time.Time
	// began is when a fresh instance's start began, for the debug trace.
	began map[string]time.Time
	// arrivals learns each workflow's arrival pattern, pending holds the
	// arrival each workflow is expected next, and regular says whether
	// the planner predicts its arrivals (all by model id).
	arrivals map[string]*arrivalPattern
	pending  map[string]*expectation
	regular  map[string]bool
}

type plannedCall struct {
	at time.Time
	// until is when the prediction lapses: the end of an expected
	// arrival's window and the rule's grace; for a live invocation's
	// call, once it is long overdue (it is dropped sooner when the
	// invocation takes another path or ends).
	until time.Time
	prob  float64
	// readyBy is the time the prepare of this call is for, zero when the
	// rule declined; startAt is when the prepare is (or was) sent, the
	// expected cold start and the margin before readyBy.
	readyBy, startAt time.Time
	// timer sends the prepare at startAt; sent is set once it did.
	timer Timer
	sent  bool
	// lead is, once sent, how long before the predicted call the
	// instance was aimed to be ready.
	lead time.Duration
	// sentAt is when the prepare was sent: the debug trace of a
	// readiness error splits the error into the call's and the start's.
	sentAt time.Time
	// anchor is the running call the latest prediction of this one
	// counted on, while that call has not reached the function layer:
	// this call cannot come before it does, so its prepare moves with
	// the running call's dispatch (callAnchor).
	anchor *callAnchor
	// abandon cancels the prepare's context: a prepare still waiting for
	// a prepare slot when its call's task starts gives up its turn.
	abandon context.CancelFunc
}

// callAnchor is a call whose task started and whose dispatch a
// prediction assumed: the calls predicted from its task's start come its
// execution and the engine's delays after it takes an instance, so
// their prepares are moved by however much later (or earlier) than
// assumed it does. Its dispatch is the least-known part of the nearest
// predictions (a median of a millisecond or two, but tens of
// milliseconds when the engine stalls), and it is known before the next
// prepare is due whenever the call runs for longer than a start.
type callAnchor struct {
	invocation, fn, key string
	// due is when the prediction assumed the call takes an instance,
	// moved up as a prepare waits for it: each planned call has its own.
	due time.Time
}

func (a *callAnchor) copy() *callAnchor {
	if a == nil {
		return nil
	}
	c := *a
	return &c
}

// dispatchingCall is a call whose task started that has not taken an
// instance yet.
type dispatchingCall struct {
	invocation, key string
	// workflow and ref name the call's task in the statistics.
	workflow, ref string
	since         time.Time
	// holdUntil, for a call an instance was prepared for, is when the
	// call no longer holds it: the prediction's lapse, at least the
	// rule's grace after the task started, in case the call never
	// reaches the function layer. Zero when nothing was prepared.
	holdUntil time.Time
	lead      time.Duration // the prepared instance's aimed lead
	// predicted, readyBy, startAt and sentAt are the prepare's aim, for
	// the debug trace of its readiness error.
	predicted, readyBy, startAt, sentAt time.Time
	// learned is set when the call's readiness error was learned as its
	// task started (it came before its prepare was due).
	learned bool
}

// hold makes the call hold the instance prepared for pc: until the
// prediction lapses, and at least until grace (in case the call never
// reaches the function layer).
func (call *dispatchingCall) hold(pc *plannedCall, grace time.Time) {
	call.holdUntil, call.lead = pc.until, pc.lead
	if call.holdUntil.Before(grace) {
		call.holdUntil = grace
	}
	call.predicted, call.readyBy, call.startAt, call.sentAt = pc.at, pc.readyBy, pc.startAt, pc.sentAt
}

// cancel stops a prepare not sent yet.
func (c *plannedCall) cancel() {
	if c.timer != nil && !c.sent {
		c.timer.Stop()
	}
	c.timer = nil
}

type invocation struct {
	model   *Model
	enabled bool
	// planned are the functions this invocation has upcoming calls of.
	planned  map[string]bool
	started  map[string]time.Time // task key -> start
	lastSeen time.Time
	// pendingSwitch: switches that ended, by the ref of their list, with
	// the case each target task stands for.
	pendingSwitch map[string]*pendingSwitch
	// waited is, per call task, how long its call waited for an instance
	// to start: taken off the task's duration, so that predictions assume
	// the warm calls that prewarming makes.
	waited map[string]time.Duration
	loops  map[string]int  // for ref -> iterations begun
	caught map[string]bool // try ref -> its catch block ran
}

type pendingSwitch struct {
	ref     string
	targets map[string]string // target ref ("" leaves the list) -> case
}

// NewPlanner returns a planner with empty statistics; call Load to
// resume learned ones.
func NewPlanner(opts Options) *Planner {
	if opts.Clock == nil {
		opts.Clock = WallClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Defaults.ColdStart <= 0 {
		opts.Defaults.ColdStart = 50 * time.Millisecond
	}
	if opts.Lookahead <= 0 {
		opts.Lookahead = 30 * time.Second
	}
	if opts.MinProbability <= 0 {
		opts.MinProbability = 0.01
	}
	if opts.PrepareSlots <= 0 {
		opts.PrepareSlots = function.DefaultMaxPreparing()
	}
	return &Planner{
		opts: opts, rule: opts.Rule.withDefaults(), clock: opts.Clock, log: opts.Logger, stats: NewStats(),
		models: map[string]*Model{}, invocations: map[string]*invocation{},
		upcoming: map[string]map[string]*plannedCall{}, dispatching: map[string][]dispatchingCall{}, entries: map[string]bool{}, inner: map[string]bool{}, late: map[string]bool{},
		busySince: map[string]time.Time{}, fresh: map[string]bool{}, readyAt: map[string]time.Time{}, began: map[string]time.Time{}, arrivals: map[string]*arrivalPattern{}, pending: map[string]*expectation{},
		regular: map[string]bool{},
	}
}

// Stats are the planner's learned statistics.
func (p *Planner) Stats() *Stats { return p.stats }

// Rule is the planner's effective prepare rule.
func (p *Planner) Rule() Rule { return p.rule }

// Load replaces the statistics with the saved ones; without saved ones
// it keeps the defaults.
func (p *Planner) Load(ctx context.Context) error {
	if p.opts.State == nil {
		return nil
	}
	raw, err := p.opts.State.GetState(ctx, StatsKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("prewarm: loading statistics: %w", err)
	}
	return p.stats.UnmarshalJSON(raw)
}

// Save writes the statistics.
func (p *Planner) Save(ctx context.Context) error {
	if p.opts.State == nil {
		return nil
	}
	raw, err := json.Marshal(p.stats)
	if err != nil {
		return fmt.Errorf("prewarm: encoding statistics: %w", err)
	}
	if err := p.opts.State.PutState(ctx, StatsKey, raw); err != nil {
		return fmt.Errorf("prewarm: saving statistics: %w", err)
	}
	return nil
}

func (p *Planner) enabled(def *dsl.Workflow) bool {
	if v, ok := def.Document.Metadata["baton.prewarm"]; ok {
		if b, isBool := v.(bool); isBool && !b {
			return false
		}
	}
	return p.opts.Enabled == nil || p.opts.Enabled(def)
}

// InvocationStarted implements engine.InvocationObserver. An invocation
// that was expected (its arrival predicted) takes over the calls planned
// for it; the arrival is learned, and when the workflow's arrivals are
// regular the next one is expected and planned for.
func (p *Planner) InvocationStarted(id string, def *dsl.Workflow, arrived time.Time) {
	now := p.clock.Now()
	p.mu.Lock()
	key := def.Document.Namespace + "/" + def.Document.Name + "/" + def.Document.Version
	m := p.models[key]
	if m == nil || m.def != def {
		m = Compile(def, p.opts.Subflows)
		p.models[key] = m
		for fn := range m.functions {
			if m.entries[fn] {
				p.entries[fn] = true
			} else {
				p.inner[fn] = true
			}
		}
	}
	inv := newInvocation(m, p.enabled(def))
	p.invocations[id] = inv
	if e := p.pending[m.ID]; e != nil && !now.Before(e.from) && !now.After(e.until) {
		delete(p.pending, m.ID)
		p.adoptLocked(e.id, id)
	}
	ap := p.arrivals[m.ID]
	if ap == nil {
		ap = &arrivalPattern{}
		p.arrivals[m.ID] = ap
	}
	ap.observe(arrived)
	next, spread, regular := ap.predict(p.opts.ArrivalTolerance)
	regular = regular && inv.enabled && p.arrivalPaysLocked(m, spread)
	p.regular[m.ID] = regular
	p.mu.Unlock()
	if regular && !m.callsNothing() && next.Sub(now) <= p.opts.Lookahead {
		// The window covers the schedule's jitter; a tick that does not
		// come releases what was prepared for it after the rule's grace.
		p.expect(m, next, now, 3*spread, "")
	}
}

// arrivalPaysLocked reports whether preparing m's entry functions for an
// arrival predicted give or take 3 × spread pays: each instance, ready
// for the early edge of the window, idles half of it on average, which
// at the rule's IdleCost must cost less than the cold start it saves.
// The bound is on the spread itself, not on its ratio to the period: a
// timer every hour jittering by 5ms is as predictable as one every
// second. p.mu is held.
func (p *Planner) arrivalPaysLocked(m *Model, spread time.Duration) bool {
	p.stats.mu.Lock()
	defer p.stats.mu.Unlock()
	v := view{s: p.stats, workflow: m.ID, def: p.opts.Defaults}
	for fn := range m.entries {
		if v.coldStart(fn).Seconds() < p.rule.IdleCost*(3*spread/2).Seconds() {
			return false
		}
	}
	return true
}

func newInvocation(m *Model, enabled bool) *invocation {
	return &invocation{
		model: m, enabled: enabled, planned: map[string]bool{}, started: map[string]time.Time{},
		pendingSwitch: map[string]*pendingSwitch{}, loops: map[string]int{}, caught: map[string]bool{},
		waited: map[string]time.Duration{},
	}
}

// adoptLocked hands the calls planned for an expected arrival over to the
// invocation that arrived: the instances prepared (or about to be) are
// now held for it, and its own predictions move their timers. p.mu is
// held.
func (p *Planner) adoptLocked(expected, id string) {
	from := p.invocations[expected]
	to := p.invocations[id]
	if from == nil || to == nil {
		return
	}
	for fn := range from.planned {
		if calls := p.upcoming[fn]; calls != nil && calls[expected] != nil {
			calls[id] = calls[expected]
			delete(calls, expected)
			to.planned[fn] = true
		}
	}
	delete(p.invocations, expected)
}

// InvocationEnded implements engine.InvocationObserver.
func (p *Planner) InvocationEnded(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	inv := p.invocations[id]
	if inv == nil {
		return
	}
	for _, ps := range inv.pendingSwitch {
		if name, ok := ps.targets[""]; ok {
			p.stats.ObserveCase(inv.model.ID, ps.ref, name)
		}
	}
	delete(p.invocations, id)
	if e := p.pending[inv.model.ID]; e != nil && e.id == id {
		delete(p.pending, inv.model.ID)
	}
	for fn, calls := range p.dispatching {
		calls = slices.DeleteFunc(calls, func(c dispatchingCall) bool { return c.invocation == id })
		if len(calls) == 0 {
			delete(p.dispatching, fn)
		} else {
			p.dispatching[fn] = calls
		}
	}
	for fn := range inv.planned {
		p.forgetLocked(fn, id)
	}
}

// forgetLocked drops an invocation's upcoming call of fn, and the prepare
// not sent for it; p.mu is held.
func (p *Planner) forgetLocked(fn, id string) {
	calls := p.upcoming[fn]
	if c := calls[id]; c != nil {
		c.cancel()
	}
	delete(calls, id)
	if len(calls) == 0 {
		delete(p.upcoming, fn)
	}
	if inv := p.invocations[id]; inv != nil {
		delete(inv.planned, fn)
	}
}

// listRef is the JSON pointer of the list a task sits in: its ref without
// the trailing /index/name.
func listRef(ref string) string {
	for range 2 {
		i := strings.LastIndexByte(ref, '/')
		if i < 0 {
			return ""
		}
		ref = ref[:i]
	}
	return ref
}

// TaskStarted implements engine.TaskObserver: it learns, then predicts
// the calls that follow the task and prepares those worth it.
func (p *Planner) TaskStarted(id, key, ref, name string, at time.Time) {
	p.mu.Lock()
	inv := p.invocations[id]
	if inv == nil {
		p.mu.Unlock()
		return
	}
	m := inv.model
	inv.started[key] = at
	// A task starting in the list of a switch that ended tells its case.
	if ps := inv.pendingSwitch[listRef(ref)]; ps != nil {
		if c, ok := ps.targets[ref]; ok {
			p.stats.ObserveCase(m.ID, ps.ref, c)
		}
		delete(inv.pendingSwitch, listRef(ref))
	}
	if fr, ok := m.frames[ref]; ok && fr.owner != nil {
		switch fr.owner.Kind {
		case dsl.KindFor:
			if fr.index == 0 {
				inv.loops[fr.owner.Ref]++
			}
		case dsl.KindTry:
			if fr.owner.Try.Catch != nil && sameList(fr.list, fr.owner.Try.Catch.Do) {
				inv.caught[fr.owner.Ref] = true
			}
		}
	}
	t := m.tasks[ref]
	if fn, ok := m.Function(ref); ok {
		if !inv.lastSeen.IsZero() {
			p.stats.ObserveGap(at.Sub(inv.lastSeen))
		}
		// The call is being made: an instance prepared for it is held
		// for the call until it takes one.
		call := dispatchingCall{invocation: id, key: key, workflow: m.ID, ref: ref, since: at}
		c := p.upcoming[fn][id]
		switch {
		case c != nil && c.sent:
			// A prepare still queued for a prepare slot cannot start, let
			// alone finish, before the call, which starts an instance of
			// its own without waiting for a slot; left queued, it would
			// start a second instance nobody waits for. One already
			// starting is not affected.
			if c.abandon != nil {
				c.abandon()
			}
		case c != nil && c.timer != nil:
			// Too early for its prepare. That is a readiness error too
			// (the call came that much before the prediction); leaving it
			// out would teach the margin only from the calls that came
			// late enough. Predictions are of when the call reaches the
			// function layer, its dispatch after the task starts.
			dispatch := p.dispatchDelay()
			p.stats.ObserveReadiness(fn, at.Add(dispatch).Sub(c.at))
			call.learned = true
			p.log.Debug("prewarm call before its prepare", "function", fn, "task", key,
				"earlyMs", msf(c.at.Sub(at.Add(dispatch))), "toSendMs", msf(c.startAt.Sub(at)))
			// The prepare is sent now rather than dropped. The call
			// would start an instance of its own once it reaches the
			// function layer, a dispatch from now; the prepared one is
			// started that much sooner, and the call waits for it
			// instead. Its timer is often only late: Go's fire up to a
			// millisecond late on an idle runtime, and a prepare due
			// just before the task starts missed it. A prepare that has
			// not had its turn for a slot by the time the call should
			// arrive gives up: the call has started its own instance.
			// Aimed at now, its instance is held for the grace only.
			c.cancel()
			c.readyBy, c.startAt, c.until = at, at, at
			p.clock.AfterFunc(0, p.sendLocked(fn, c, dispatch))
		}
		if c != nil && c.sent {
			call.hold(c, at.Add(p.rule.Grace))
		}
		p.dispatching[fn] = append(p.dispatching[fn], call)
		p.forgetLocked(fn, id)
	}
	if t != nil && t.Kind == dsl.KindFor {
		inv.loops[ref] = 0
	}
	inv.lastSeen = at
	enabled := inv.enabled
	p.mu.Unlock()
	if !enabled || t == nil || m.callsNothing() {
		return
	}
	preds := m.Predict(ref, strings.TrimPrefix(key, ref), p.stats, p.opts.Defaults, p.opts.Lookahead, p.opts.MinProbability)
	scope := planScope{complete: !m.inFork(ref)}
	if fn, ok := m.Function(ref); ok && scope.complete {
		scope.anchorFn, scope.anchorKey, scope.anchorRef = fn, key, ref
	}
	p.plan(id, m, at, preds, scope)
}

// plan applies the rule to predictions made at time at and schedules a
// just-in-time prepare for each function that passes it: sent the
// expected cold start and the margin before the predicted call, with the
// call's time as the time to be ready by. A prediction that moves before
// its prepare was sent moves the prepare with it. With scope.complete,
// preds are every call the invocation can still make (the prediction did
// not start inside one branch of a fork): an upcoming call no longer
// among them was on a path not taken, and is dropped, so that an
// instance prepared for it is evicted rather than kept for nothing.
func (p *Planner) plan(id string, m *Model, at time.Time, preds []Prediction, scope planScope) {
	var anchor *callAnchor
	p.stats.mu.Lock()
	v := view{s: p.stats, workflow: m.ID, def: p.opts.Defaults}
	cold := make([]time.Duration, len(preds))
	margin := make([]time.Duration, len(preds))
	for i, pr := range preds {
		cold[i] = v.coldStart(pr.Function)
		margin[i] = v.margin(pr.Function, p.rule)
	}
	// The model predicts when call tasks start; their instances are
	// needed when the calls reach the function layer, a dispatch later.
	dispatch := v.dispatchDelay()
	spread := v.runSpread()
	// Without the function layer's events (the planner is not one of
	// its observers) a call's dispatch is never seen, nor learned.
	seesDispatch := p.stats.dispatch.Known()
	anchorDispatch := v.taskDispatch(scope.anchorRef)
	p.stats.mu.Unlock()
	if scope.anchorFn != "" && seesDispatch {
		anchor = &callAnchor{invocation: id, fn: scope.anchorFn, key: scope.anchorKey, due: at.Add(anchorDispatch)}
	}
	preds = slices.Clone(preds)
	for i := range preds {
		preds[i].After += dispatch
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	inv := p.invocations[id]
	if inv == nil {
		return
	}
	now := p.clock.Now()
	if scope.complete {
		for fn := range inv.planned {
			if !slices.ContainsFunc(preds, func(pr Prediction) bool { return pr.Function == fn }) {
				p.forgetLocked(fn, id)
			}
		}
	}
	startAts := p.staggerLocked(id, at, preds, cold, margin, spread)
	for i, pr := range preds {
		callAt := at.Add(pr.After)
		calls := p.upcoming[pr.Function]
		if calls == nil {
			calls = map[string]*plannedCall{}
			p.upcoming[pr.Function] = calls
		}
		pc := calls[id]
		if pc == nil && scope.expected && !scope.windowCost && !startAts[i].Before(at) {
			// Due late enough after an arrival a keep-alive policy
			// reloads for (anywhere in a window that may last minutes)
			// to be prepared once it has come: the invocation plans it
			// then. An arrival the planner predicted itself is known to
			// within milliseconds, and its staggered prepares are all
			// planned now, so that they keep their turns.
			continue
		}
		if pc == nil {
			p.late[pr.Function] = callAt.Sub(now) < cold[i]+margin[i] && !coveredElsewhere(calls, id, callAt)
			pc = &plannedCall{}
			calls[id] = pc
			inv.planned[pr.Function] = true
		}
		pc.at, pc.prob = callAt, pr.Prob
		pc.until = callAt.Add(max(p.rule.Grace, overdueFactor*pr.After, overdueFactor*cold[i]))
		if scope.expected {
			pc.until = callAt.Add(scope.window + p.rule.Grace)
		}
		worth := p.rule.Worth(pr.Prob, cold[i])
		if scope.windowCost {
			// An instance ready for an arrival expected within ±window
			// idles about half the window on average.
			worth = worth && pr.Prob*cold[i].Seconds() >= p.rule.IdleCost*(scope.window/2).Seconds()
		}
		if !worth {
			if !pc.sent {
				pc.cancel()
				pc.readyBy, pc.startAt = time.Time{}, time.Time{}
			}
			continue
		}
		startAt := startAts[i]
		if pc.sent {
			// An instance is on its way. A second one would not be ready
			// sooner: starts compete for the same cores.
			continue
		}
		pc.anchor = anchor.copy()
		if pc.timer != nil {
			if d := startAt.Sub(pc.startAt); d > -reaimResolution && d < reaimResolution {
				continue
			}
			pc.cancel()
		}
		p.schedulePrepare(pr.Function, pc, startAt.Add(cold[i]), startAt, now)
	}
}

// overdueFactor bounds how late a live invocation's predicted call may
// be, as a multiple of how far ahead it was predicted or of a cold start
// (whichever is longer), before the prediction lapses: a predecessor may
// well run several times longer than predicted (a cold start of its own,
// a slow call), but an invocation stuck for much longer should not keep
// instances waiting.
const overdueFactor = 4

// planScope says what a plan covers.
type planScope struct {
	// complete: the predictions are every call the invocation can still
	// make.
	complete bool
	// expected: the invocation is an expected arrival, window its
	// uncertainty; its calls lapse after the window and the rule's grace.
	// Those of a live invocation are dropped when it takes another path
	// or ends, and lapse only when long overdue (overdueFactor).
	expected bool
	window   time.Duration
	// windowCost: count the idle time the window costs against the
	// cold start saved (an arrival the planner predicted itself, rather
	// than one a keep-alive policy is reloading the entry function for).
	windowCost bool
	// anchorFn, anchorKey and anchorRef name the call whose task's start
	// the predictions were made from, when they all follow its end (it
	// is not in a fork): their prepares move with its dispatch.
	anchorFn, anchorKey, anchorRef string
}

// reaimResolution is the least change of a prepare's start that a later
// prediction moves its timer for: the latest prediction carries the
// least of its predecessors' noise, and a deadband as wide as the margin
// kept up to a margin of an older prediction's error in every aim.
const reaimResolution = 100 * time.Microsecond

// staggerLocked returns when to send each prediction's prepare: the
// expected cold start and the margin before the call, or earlier when
// the prepares of later calls would otherwise hold every prepare slot at
// that time. Prepares are placed backwards from the latest call; one
// whose slot is taken from some time on must be ready, with its own
// margin, before that time, as if that were its call: a start that
// overruns delays the prepares queued behind it, and the margin, learned
// from how late starts come, is the protection each prepare already has.
// (Aiming every queued prepare at a slow start instead would add the
// slow-start excess once per queued prepare, and a chain of ten would be
// ready tens of milliseconds early.) Prepares already sent are left out
// (their instances are on their way). p.mu is held.
func (p *Planner) staggerLocked(id string, at time.Time, preds []Prediction, cold, margin []time.Duration, spread float64) []time.Time {
	starts := make([]time.Time, len(preds))
	free := make([]slotUse, p.opts.PrepareSlots) // zero: free from now on
	for i := len(preds) - 1; i >= 0; i-- {
		pr := preds[i]
		if pc := p.upcoming[pr.Function][id]; (pc != nil && pc.sent) || !p.rule.Worth(pr.Prob, cold[i]) {
			starts[i] = at.Add(pr.After - margin[i] - cold[i])
			continue
		}
		latest := 0 // the slot free the latest; a zero time is latest of all
		for j := 1; j < len(free) && !free[latest].from.IsZero(); j++ {
			if free[j].from.IsZero() || free[j].from.After(free[latest].from) {
				latest = j
			}
		}
		var use slotUse
		use.from, use.run = stagger(at.Add(pr.After), margin[i], cold[i], spread, free[latest])
		starts[i] = use.from
		free[latest] = use
	}
	return starts
}

// slotUse is when a prepare slot is taken from on, by a run of run
// prepares placed back to back after the first (the one whose own call
// bounds the run).
type slotUse struct {
	from time.Time
	run  int
}

// stagger places one prepare on a slot taken from next.from on (zero:
// free): it returns when to send the prepare and the length of the run it
// joins. A prepare that has the slot to itself is sent the cold start and
// its margin before its call. One that must be done before the next
// prepare on its slot is sent is placed just before it: overruns add up
// along a run of prepares back to back, but as errors that are not all
// alike do, so the run's margin grows with the square root of its
// length, times spread (runSpread: more when consecutive starts are
// slow together), rather than once per prepare, which left the head of
// a chain of ten ready ten margins early. It never grows by more than a
// margin per prepare.
func stagger(call time.Time, margin, cold time.Duration, spread float64, next slotUse) (time.Time, int) {
	ready := call.Add(-margin)
	if next.from.IsZero() || !next.from.Before(ready) {
		return ready.Add(-cold), 0
	}
	run := next.run + 1
	total := func(k int) float64 { return min(spread*math.Sqrt(float64(k)), float64(k)) }
	step := time.Duration(float64(max(margin, 0)) * (total(run+1) - total(run)))
	return next.from.Add(-step - cold), run
}

// schedulePrepare sets pc's prepare to be sent at startAt; p.mu is held.
func (p *Planner) schedulePrepare(fn string, pc *plannedCall, readyBy, startAt, now time.Time) {
	pc.readyBy, pc.startAt, pc.sent = readyBy, startAt, false
	var t Timer
	// Prepare may start an instance synchronously, so it always runs off
	// the engine's goroutine, even when it is due at once.
	t = p.clock.AfterFunc(startAt.Sub(now), func() {
		p.mu.Lock()
		if pc.timer != t || pc.sent {
			p.mu.Unlock()
			return
		}
		if a := pc.anchor; a != nil && pc.startAt.After(a.due) && p.dispatchPending(a) {
			if now := p.clock.Now(); now.After(a.due) {
				// The running call has not taken an instance yet, so this
				// call cannot come before its predicted time plus that
				// delay: the prepare waits as long, and again if the
				// running call is still not there, until it is
				// (callDispatched then moves the prepare to the delay
				// it had). A prepare aimed before the running call's
				// dispatch (a call that follows it within a start) is
				// sent: waiting would make it later still, and each
				// wait would be due at once.
				p.shiftLocked(fn, pc, now.Sub(a.due), now)
				a.due = now
				p.mu.Unlock()
				return
			}
		}
		send := p.sendLocked(fn, pc, 0)
		p.mu.Unlock()
		send()
	})
	pc.timer = t
}

// sendLocked marks pc's prepare sent and returns what sends it, to run
// off the engine's goroutine (Prepare may start an instance
// synchronously) and without p.mu. With within > 0, a prepare still
// waiting for a prepare slot that long after is abandoned. p.mu is held.
func (p *Planner) sendLocked(fn string, pc *plannedCall, within time.Duration) func() {
	pc.sent = true
	pc.lead = pc.at.Sub(pc.readyBy)
	pc.sentAt = p.clock.Now()
	by := pc.readyBy
	ctx, abandon := context.WithCancel(context.Background())
	pc.abandon = abandon
	var expiry Timer
	if within > 0 {
		expiry = p.clock.AfterFunc(within, abandon)
	}
	return func() {
		defer abandon()
		if expiry != nil {
			defer expiry.Stop()
		}
		if err := p.opts.Preparer.Prepare(ctx, fn, by); err != nil {
			var prob *problem.Problem
			level := slog.LevelWarn
			if errors.As(err, &prob) && prob.Status == 404 || errors.Is(err, context.Canceled) {
				level = slog.LevelDebug
			}
			p.log.Log(context.Background(), level, "prewarming failed", "function", fn, "error", err)
		}
	}
}

// coveredElsewhere reports whether another plan (an expected arrival)
// has an instance prepared for fn around at, so that a late prediction
// does not mean the function cannot be served warm.
func coveredElsewhere(calls map[string]*plannedCall, id string, at time.Time) bool {
	for other, c := range calls {
		if other != id && !c.readyBy.IsZero() && !c.readyBy.After(at) {
			return true
		}
	}
	return false
}

// expectPrefix marks the pseudo-invocations of expected arrivals.
const expectPrefix = "expect\x00"

// ExpectArrival tells the planner that an invocation starting with fn is
// expected around at (an arrival-pattern policy is reloading fn for it):
// the functions every workflow starting with fn calls next are prepared
// for the same invocation, and the prediction lapses after keep.
func (p *Planner) ExpectArrival(fn string, at time.Time, keep time.Duration) {
	now := p.clock.Now()
	p.mu.Lock()
	var models []*Model
	for _, m := range p.models {
		if m.entries[fn] && p.enabled(m.def) {
			models = append(models, m)
		}
	}
	p.mu.Unlock()
	for _, m := range models {
		p.expect(m, at, now, keep, fn)
	}
}

// expect plans the calls of an invocation of m expected at time at,
// give or take window, as a pseudo-invocation that the real one adopts
// when it starts (from now until the window and the rule's grace have
// passed). The entry function reloaded is left out: its reload is
// prepared already. An arrival already expected at about that time is
// not planned twice.
func (p *Planner) expect(m *Model, at, now time.Time, window time.Duration, reloaded string) {
	until := at.Add(window + p.rule.Grace)
	id := expectPrefix + m.ID + "\x00" + at.Format(time.RFC3339Nano)
	p.mu.Lock()
	if e := p.pending[m.ID]; e != nil && !at.After(e.until) && !at.Before(e.at.Add(-window-p.rule.Grace)) {
		p.mu.Unlock()
		return
	}
	if e := p.pending[m.ID]; e != nil {
		p.dropLocked(e.id)
	}
	p.invocations[id] = newInvocation(m, true)
	p.pending[m.ID] = &expectation{id: id, at: at, from: now, until: until}
	p.mu.Unlock()
	var preds []Prediction
	for _, pr := range m.predict(p.stats, "", "", p.opts.Defaults, predictLimits{lookahead: p.opts.Lookahead, minProb: p.opts.MinProbability, budget: 2048}, false) {
		if pr.Function != reloaded || pr.After > 0 {
			preds = append(preds, pr)
		}
	}
	p.plan(id, m, at, preds, planScope{window: window, expected: true, windowCost: reloaded == ""})
	p.clock.AfterFunc(max(until.Sub(p.clock.Now()), 0), func() { p.InvocationEnded(id) })
}

// dropLocked forgets a pseudo-invocation; p.mu is held.
func (p *Planner) dropLocked(id string) {
	inv := p.invocations[id]
	if inv == nil {
		return
	}
	for fn := range inv.planned {
		p.forgetLocked(fn, id)
	}
	delete(p.invocations, id)
}

// TaskEnded implements engine.TaskObserver.
func (p *Planner) TaskEnded(id, key, ref, name string, at time.Time, err *problem.Problem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	inv := p.invocations[id]
	if inv == nil {
		return
	}
	m := inv.model
	// A call that ends without having taken an instance (it failed
	// before reaching the function layer) holds no prepare back.
	for fn := range inv.planned {
		if pc := p.upcoming[fn][id]; pc != nil && pc.anchor != nil && pc.anchor.key == key {
			pc.anchor = nil
		}
	}
	if began, ok := inv.started[key]; ok {
		delete(inv.started, key)
		if err == nil {
			p.stats.ObserveTask(m.ID, ref, at.Sub(began)-inv.waited[key])
		}
		delete(inv.waited, key)
	}
	inv.lastSeen = at
	t := m.tasks[ref]
	if t == nil {
		return
	}
	// A list whose owner ends resolves a switch that left it.
	for list, ps := range inv.pendingSwitch {
		if strings.HasPrefix(list, ref+"/") {
			if c, ok := ps.targets[""]; ok {
				p.stats.ObserveCase(m.ID, ps.ref, c)
			}
			delete(inv.pendingSwitch, list)
		}
	}
	switch t.Kind {
	case dsl.KindSwitch:
		if err == nil {
			inv.pendingSwitch[listRef(ref)] = switchTargets(m, t)
		}
	case dsl.KindFor:
		if err == nil {
			p.stats.ObserveLoop(m.ID, ref, inv.loops[ref])
		}
		delete(inv.loops, ref)
	case dsl.KindTry:
		p.stats.ObserveTry(m.ID, ref, inv.caught[ref])
		delete(inv.caught, ref)
	}
}

// switchTargets maps the task each case of a switch leads to onto the
// case ("" for leaving the list). Cases leading to the same task cannot
// be told apart; the first one is credited.
func switchTargets(m *Model, t *dsl.Task) *pendingSwitch {
	ps := &pendingSwitch{ref: t.Ref, targets: map[string]string{}}
	fr := m.frames[t.Ref]
	for _, c := range t.Switch {
		flow := c.Then
		if flow == "" {
			flow = t.Then
		}
		target := ""
		if i, ended := nextIndex(fr.list, fr.index, flow); !ended && i < len(fr.list) {
			target = fr.list[i].Task.Ref
		}
		if _, seen := ps.targets[target]; !seen {
			ps.targets[target] = c.Name
		}
	}
	return ps
}

// Observe implements function.Observer: cold starts and warm execution
// times are learned from the instances' lifecycle.
func (p *Planner) Observe(e function.Event) {
	switch e.Kind {
	case function.EventCreated:
		p.stats.ObserveCold(e.Function, e.Phases.Total())
		p.mu.Lock()
		p.fresh[e.Instance] = true
		p.began[e.Instance] = e.Time.Add(-e.Phases.Total())
		p.mu.Unlock()
	case function.EventBusy:
		p.mu.Lock()
		p.busySince[e.Instance] = e.Time
		p.callDispatched(e)
		delete(p.fresh, e.Instance)
		delete(p.readyAt, e.Instance)
		delete(p.began, e.Instance)
		p.mu.Unlock()
	case function.EventIdle, function.EventEvicted:
		p.mu.Lock()
		began, ok := p.busySince[e.Instance]
		delete(p.busySince, e.Instance)
		if p.fresh[e.Instance] && e.Kind == function.EventIdle {
			p.readyAt[e.Instance] = e.Time
		}
		delete(p.fresh, e.Instance)
		if e.Kind == function.EventEvicted {
			delete(p.readyAt, e.Instance)
			delete(p.began, e.Instance)
		}
		p.mu.Unlock()
		if ok && e.Kind == function.EventIdle {
			p.stats.ObserveExec(e.Function, e.Time.Sub(began))
		}
	}
}

// callDispatched retires the oldest call of the busy event's function
// waiting to take an instance, now that one did: it learns how long the
// call waited for a start and, for a call an instance was prepared for,
// how early that instance was against its aim. p.mu is held. Events do
// not say which invocation a call belongs to: calls of one function take
// instances roughly in the order their tasks started.
func (p *Planner) callDispatched(e function.Event) {
	fn := e.Function
	calls := p.dispatching[fn]
	if len(calls) > 0 {
		c := calls[0]
		if inv := p.invocations[c.invocation]; inv != nil && e.Waited > 0 {
			inv.waited[c.key] = e.Waited
		}
		// The call reached the function layer when it began to wait for
		// an instance (or took an idle one).
		p.stats.ObserveDispatch(e.Time.Add(-e.Waited).Sub(c.since))
		if !c.holdUntil.IsZero() {
			ready, ok := p.readyAt[e.Instance]
			if e.Waited > 0 {
				ready, ok = e.Time, true
				if !c.learned {
					p.stats.ObserveReadiness(fn, -e.Waited-c.lead)
				}
			} else if ok && !c.learned {
				p.stats.ObserveReadiness(fn, e.Time.Sub(ready)-c.lead)
			}
			if ok && p.log.Enabled(context.Background(), slog.LevelDebug) {
				p.traceReadiness(fn, c, e, ready)
			}
		}
		calls = calls[1:]
		p.stats.ObserveTaskDispatch(c.workflow, c.ref, e.Time.Sub(c.since))
		p.reaimLocked(c, e.Time)
	}
	if len(calls) == 0 {
		delete(p.dispatching, fn)
		return
	}
	p.dispatching[fn] = calls
}

// reaimLocked moves the prepares not sent yet of the calls predicted from
// c's task by how much later (or earlier) than assumed c took its
// instance, at took: what follows c follows it as much later. p.mu is
// held.
func (p *Planner) reaimLocked(c dispatchingCall, took time.Time) {
	inv := p.invocations[c.invocation]
	if inv == nil {
		return
	}
	now := p.clock.Now()
	for fn := range inv.planned {
		pc := p.upcoming[fn][c.invocation]
		if pc == nil || pc.anchor == nil || pc.anchor.key != c.key || pc.anchor.invocation != c.invocation {
			continue
		}
		a := pc.anchor
		pc.anchor = nil
		if pc.sent || pc.timer == nil {
			continue
		}
		if d := took.Sub(a.due); d <= -reaimResolution || d >= reaimResolution {
			p.shiftLocked(fn, pc, d, now)
		}
	}
}

// shiftLocked moves a planned call, and its prepare not sent yet, by d.
// p.mu is held.
func (p *Planner) shiftLocked(fn string, pc *plannedCall, d time.Duration, now time.Time) {
	pc.at, pc.until = pc.at.Add(d), pc.until.Add(d)
	pc.cancel()
	p.schedulePrepare(fn, pc, pc.readyBy.Add(d), pc.startAt.Add(d), now)
}

// dispatchPending reports whether a's call has yet to take an instance.
// p.mu is held.
func (p *Planner) dispatchPending(a *callAnchor) bool {
	return slices.ContainsFunc(p.dispatching[a.fn], func(c dispatchingCall) bool {
		return c.invocation == a.invocation && c.key == a.key
	})
}

// traceReadiness logs a prepared call's readiness error split into its
// parts: how late the call came against its prediction (its task's start
// and its dispatch), and how late the instance was against its aim (the
// prepare's timer, its wait for a prepare slot, its start against the
// expected one). p.mu is held.
func (p *Planner) traceReadiness(fn string, c dispatchingCall, e function.Event, ready time.Time) {
	arrival := e.Time.Add(-e.Waited)
	began := p.began[e.Instance]
	p.log.Debug("prewarm readiness", "function", fn, "task", c.key,
		"errorMs", msf(arrival.Sub(ready)-c.lead), "leadMs", msf(c.lead),
		"callLateMs", msf(arrival.Sub(c.predicted)), "dispatchMs", msf(arrival.Sub(c.since)),
		"readyLateMs", msf(ready.Sub(c.readyBy)), "sendLateMs", msf(c.sentAt.Sub(c.startAt)),
		"slotWaitMs", msf(began.Sub(c.sentAt)), "startMs", msf(ready.Sub(began)), "aimedStartMs", msf(c.readyBy.Sub(c.startAt)),
		"aheadMs", msf(c.predicted.Sub(c.sentAt)), "waitedMs", msf(e.Waited))
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// PredictedCall is a call of a function that a live invocation (or an
// expected arrival) is predicted to make.
type PredictedCall struct {
	// At is the predicted time, Until when the prediction lapses.
	At, Until time.Time
	Prob      float64
	// Prepared is set once an instance was asked to be ready for it.
	Prepared bool
}

// dispatchDelay is the learned time from a call task's start to its call
// reaching the function layer.
func (p *Planner) dispatchDelay() time.Duration {
	p.stats.mu.Lock()
	defer p.stats.mu.Unlock()
	return view{s: p.stats}.dispatchDelay()
}

// NextCall returns the soonest call of fn that is predicted and whose
// prediction has not lapsed by now. A call whose task started with an
// instance prepared for it counts, due at once, until it takes an
// instance.
func (p *Planner) NextCall(fn string, now time.Time) (PredictedCall, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var next PredictedCall
	ok := false
	for _, c := range p.dispatching[fn] {
		if c.holdUntil.Before(now) {
			continue
		}
		if !ok || c.since.Before(next.At) {
			next, ok = PredictedCall{At: c.since, Until: c.holdUntil, Prob: 1, Prepared: true}, true
		}
	}
	for _, c := range p.upcoming[fn] {
		if c.until.Before(now) {
			continue
		}
		if !ok || c.at.Before(next.At) {
			next, ok = PredictedCall{At: c.at, Until: c.until, Prob: c.prob, Prepared: c.sent}, true
		}
	}
	return next, ok
}

// ColdStart is the expected cold start of fn.
func (p *Planner) ColdStart(fn string) time.Duration {
	p.stats.mu.Lock()
	defer p.stats.mu.Unlock()
	return view{s: p.stats, def: p.opts.Defaults}.coldStart(fn)
}

// Inner reports whether every call of fn is one the planner predicts
// and prepares for in time: fn is called after other tasks of a
// workflow and predicted early enough, or first, by workflows whose
// arrivals the planner predicts (regular ones). Its calls are the
// planner's to serve, and an idle instance of it with no predicted call
// near is waste; an entry function of a workflow invoked at random is
// left to the keep-alive policy's fallback.
func (p *Planner) Inner(fn string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.late[fn] || !p.inner[fn] && !p.entries[fn] {
		return false
	}
	if p.entries[fn] {
		for _, m := range p.models {
			if m.entries[fn] && !p.regular[m.ID] {
				return false
			}
		}
	}
	return true
}
