package function

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonflow/baton/problem"
)

// pool holds the instances of one function version.
//
// Invariants, under mu: every instance is in exactly one of idle (a LIFO
// stack, so the most recently used, warmest instance serves next) or busy;
// len(idle)+busy+starting <= max; starts in flight never outnumber waiters
// except for prepared starts.
type pool struct {
	m       *Manager
	spec    *Spec
	rt      Runtime
	log     *eventLog
	metrics *fnMetrics
	max     int
	timeout time.Duration

	checkedAt  atomic.Int64 // unix nanoseconds of the last spec check
	refreshing atomic.Bool

	mu       sync.Mutex
	idle     []*member
	busy     map[*member]struct{}
	starting int
	waiters  []*waiter
	retired  bool
	nextID   int
	stats    Stats
	prepared time.Time // the latest time a Prepare asked for
}

// member is an instance as its pool tracks it.
type member struct {
	id        string
	inst      Instance
	phases    Phases
	created   time.Time
	calls     uint64
	prepared  bool // started by Prepare: its first call is not cold
	idleSince time.Time
	gen       uint64    // counts idle periods, to discard stale decisions
	checkAt   time.Time // when the keep-alive policy wants to be asked again
}

// grant is what a waiting call receives: an instance, or the error of the
// start made for it. started is set when the instance comes straight from
// its cold start (the call waited for a start, not for a busy instance).
type grant struct {
	member  *member
	err     error
	started bool
}

type waiter struct{ ch chan grant }

func newPool(m *Manager, spec *Spec, rt Runtime, log *eventLog) *pool {
	return &pool{
		m:       m,
		spec:    spec,
		rt:      rt,
		log:     log,
		metrics: m.metrics.forFunction(spec.key()),
		max:     spec.EffectiveMaxInstances(),
		timeout: spec.EffectiveTimeout(),
		busy:    map[*member]struct{}{},
	}
}

func (p *pool) event(kind EventKind, mb *member) Event {
	e := Event{Kind: kind, Time: p.m.now(), Function: p.spec.key(), Version: p.spec.Version, Instance: mb.id}
	if kind == EventCreated || kind == EventIdle {
		if r, ok := mb.inst.(MemoryReporter); ok {
			e.Memory = r.MemoryBytes()
		}
	}
	return e
}

func (p *pool) invoke(ctx context.Context, input json.RawMessage, begin time.Time) (Result, error) {
	res := Result{Version: p.spec.Version, Runtime: p.spec.Runtime}
	mb, startWait, err := p.acquire(ctx, begin)
	if err != nil {
		return res, err
	}
	res.StartWait = startWait
	res.Instance = mb.id
	if mb.calls == 0 && !mb.prepared {
		res.Cold, res.ColdStart = true, mb.phases
	}
	busy := p.event(EventBusy, mb)
	busy.Waited = startWait
	p.m.emit(p.log, busy)

	callCtx, cancel := context.WithTimeout(ctx, p.timeout)
	execBegin := p.m.now()
	out, err := mb.inst.Invoke(callCtx, input)
	if err != nil {
		err = CallError(callCtx, p.spec, p.timeout, err)
	}
	cancel()
	p.release(mb, mb.inst.Healthy(), err, p.m.now().Sub(execBegin))

	if err != nil {
		return res, err
	}
	res.Raw = out
	if len(out) == 0 {
		res.Raw = json.RawMessage("null")
	}
	if err := json.Unmarshal(res.Raw, &res.Output); err != nil {
		return res, problem.Runtime("function %s returned invalid JSON: %v", p.spec.Ref(), err)
	}
	return res, nil
}

// acquire returns an instance reserved for one call: an idle one, or one
// started for this call or handed over by a finishing call. startWait is
// how long the call waited for an instance that was starting (for it or
// prepared ahead): the cold-start latency the call paid.
func (p *pool) acquire(ctx context.Context, arrival time.Time) (mb *member, startWait time.Duration, err error) {
	p.mu.Lock()
	p.recordArrival(arrival)
	for len(p.idle) > 0 && !p.retired {
		mb := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !mb.inst.Healthy() {
			p.evictLocked(mb, ReasonUnhealthy, nil)
			continue
		}
		p.busy[mb] = struct{}{}
		p.updateGauges()
		p.mu.Unlock()
		return mb, 0, nil
	}
	if p.retired {
		p.mu.Unlock()
		// The version was replaced between resolving the pool and now:
		// the caller sees it as a transient failure of this version.
		return nil, 0, problem.Runtime("function %s was replaced while the call was starting; retry", p.spec.Ref())
	}
	// Calls waiting for an instance being started for them are not
	// queued: the queue is what waits for the pool to have room.
	full := len(p.idle)+len(p.busy)+p.starting >= p.max
	if q := p.spec.Limits.MaxQueue; q > 0 && full && len(p.waiters)-p.starting >= q {
		p.mu.Unlock()
		return nil, 0, problem.Communication(429, "function %s has %d calls waiting for an instance already", p.spec.Ref(), q)
	}
	w := &waiter{ch: make(chan grant, 1)}
	p.waiters = append(p.waiters, w)
	p.fillLocked()
	p.metrics.queued.Set(float64(len(p.waiters)))
	p.mu.Unlock()

	waitBegin := p.m.now()
	select {
	case g := <-w.ch:
		if g.started {
			startWait = p.m.now().Sub(waitBegin)
		}
		return g.member, startWait, g.err
	case <-ctx.Done():
	}
	p.mu.Lock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.metrics.queued.Set(float64(len(p.waiters)))
			p.mu.Unlock()
			return nil, 0, CallError(ctx, p.spec, p.timeout, ctx.Err())
		}
	}
	p.mu.Unlock()
	// A grant raced with the cancellation: pass the instance on.
	if g := <-w.ch; g.member != nil {
		p.putBack(g.member)
	}
	return nil, 0, CallError(ctx, p.spec, p.timeout, ctx.Err())
}

// fillLocked starts instances for waiters that no start in flight will
// serve, as far as the pool's size allows.
func (p *pool) fillLocked() {
	for !p.retired && len(p.waiters) > p.starting && len(p.idle)+len(p.busy)+p.starting < p.max {
		p.starting++
		p.updateGauges()
		go p.start(false, time.Time{})
	}
}

// start runs a cold start and hands the instance to the first waiter, or
// parks it idle.
func (p *pool) start(prepared bool, preparedFor time.Time) (*member, error) {
	ctx, cancel := context.WithTimeout(p.m.startCtx, p.m.opts.StartTimeout)
	defer cancel()
	p.mu.Lock()
	p.nextID++
	id := Qualify(p.spec.Namespace, p.spec.Ref()) + "/" + strconv.Itoa(p.nextID)
	p.mu.Unlock()

	inst, phases, err := p.rt.Start(ctx, p.spec)
	if err != nil {
		err = startError(ctx, p.spec, err)
		p.m.log.Warn("function instance failed to start", "instance", id, "error", err)
		e := Event{Kind: EventStartFailed, Time: p.m.now(), Function: p.spec.key(), Version: p.spec.Version, Instance: id, Err: err}
		p.m.emit(p.log, e)
		p.mu.Lock()
		p.starting--
		if len(p.waiters) > 0 && !prepared {
			w := p.waiters[0]
			p.waiters = p.waiters[1:]
			p.metrics.queued.Set(float64(len(p.waiters)))
			w.ch <- grant{err: err}
		}
		p.fillLocked()
		p.updateGauges()
		p.mu.Unlock()
		return nil, err
	}

	mb := &member{id: id, inst: inst, phases: phases, created: p.m.now(), prepared: prepared}
	p.metrics.coldStart(phases)
	e := p.event(EventCreated, mb)
	e.Phases = phases
	p.m.emit(p.log, e)
	p.m.log.Debug("function instance started", "instance", id, "compile", phases.Compile,
		"instantiate", phases.Instantiate, "init", phases.Init)

	p.mu.Lock()
	p.starting--
	p.stats.ColdStarts++
	p.stats.MeanColdStart = ewma(p.stats.MeanColdStart, phases.Total())
	if preparedFor.After(p.prepared) {
		p.prepared = preparedFor
	}
	if p.retired {
		p.updateGauges()
		p.mu.Unlock()
		p.m.closeInBackground(id, inst)
		p.m.emit(p.log, Event{Kind: EventEvicted, Time: p.m.now(), Function: p.spec.key(), Version: p.spec.Version, Instance: id, Reason: ReasonRetired})
		return nil, errors.New("pool retired")
	}
	p.handOffLocked(mb, true) // unlocks
	return mb, nil
}

func startError(ctx context.Context, spec *Spec, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return problem.Timeout("function %s did not start in time: %v", spec.Ref(), err)
	}
	var p *problem.Problem
	if errors.As(err, &p) {
		return p
	}
	return problem.Runtime("function %s could not start: %v", spec.Ref(), err)
}

// handOffLocked gives a ready instance to the first waiter, or parks it
// idle and asks the keep-alive policy about it; started says it comes
// from its cold start. It is called with mu held and releases it.
func (p *pool) handOffLocked(mb *member, started bool) {
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.metrics.queued.Set(float64(len(p.waiters)))
		p.busy[mb] = struct{}{}
		p.updateGauges()
		p.mu.Unlock()
		w.ch <- grant{member: mb, started: started}
		return
	}
	mb.idleSince = p.m.now()
	mb.gen++
	mb.checkAt = time.Time{}
	p.idle = append(p.idle, mb)
	p.updateGauges()
	state := p.idleStateLocked(mb)
	gen := mb.gen
	p.mu.Unlock()

	p.m.emit(p.log, p.event(EventIdle, mb))
	p.decide(mb, gen, state)
}

// release takes an instance back after a call.
func (p *pool) release(mb *member, healthy bool, callErr error, took time.Duration) {
	p.mu.Lock()
	delete(p.busy, mb)
	mb.calls++
	if callErr != nil {
		p.stats.Errors++
	}
	p.stats.MeanDuration = ewma(p.stats.MeanDuration, took)
	if !healthy || p.retired {
		reason := ReasonUnhealthy
		if healthy {
			reason = ReasonRetired
		}
		p.evictLocked(mb, reason, callErr)
		p.fillLocked()
		p.mu.Unlock()
		return
	}
	p.handOffLocked(mb, false)
}

// putBack returns an instance no call used.
func (p *pool) putBack(mb *member) {
	p.mu.Lock()
	delete(p.busy, mb)
	if p.retired {
		p.evictLocked(mb, ReasonRetired, nil)
		p.mu.Unlock()
		return
	}
	p.handOffLocked(mb, false)
}

// evictLocked forgets an instance and closes it in the background.
func (p *pool) evictLocked(mb *member, reason string, cause error) {
	p.updateGauges()
	e := p.event(EventEvicted, mb)
	e.Reason, e.Err = reason, cause
	// Emitting under the lock keeps eviction ordered after the events of
	// the instance's last call; observers are required to be fast.
	p.m.emit(p.log, e)
	p.m.closeInBackground(mb.id, mb.inst)
}

func (p *pool) idleStateLocked(mb *member) IdleState {
	return IdleState{
		Function:    p.spec.key(),
		Version:     p.spec.Version,
		KeepAlive:   p.spec.KeepAlive,
		Instance:    mb.id,
		IdleSince:   mb.idleSince,
		Now:         p.m.now(),
		PreparedFor: p.prepared,
		Idle:        len(p.idle),
		Busy:        len(p.busy),
		Stats:       p.stats,
	}
}

// decide applies the keep-alive policy's verdict on an idle instance,
// unless the instance was used (or evicted) in the meantime.
func (p *pool) decide(mb *member, gen uint64, state IdleState) {
	d := p.m.opts.KeepAlive.Decide(state)
	p.mu.Lock()
	i := p.idleIndexLocked(mb)
	if i < 0 || mb.gen != gen {
		p.mu.Unlock()
		return
	}
	if d.Evict {
		p.idle = append(p.idle[:i], p.idle[i+1:]...)
		p.evictLocked(mb, ReasonKeepAlive, nil)
		p.mu.Unlock()
		return
	}
	now := p.m.now()
	if !d.RecheckAt.After(now) {
		d.RecheckAt = now.Add(time.Second)
	}
	mb.checkAt = d.RecheckAt
	p.mu.Unlock()
	p.m.scheduleSweep(d.RecheckAt)
}

func (p *pool) idleIndexLocked(mb *member) int {
	for i, x := range p.idle {
		if x == mb {
			return i
		}
	}
	return -1
}

// sweep asks the policy about every idle instance whose check is due and
// returns the earliest check still pending.
func (p *pool) sweep(now time.Time) time.Time {
	type due struct {
		mb    *member
		gen   uint64
		state IdleState
	}
	var todo []due
	var earliest time.Time
	p.mu.Lock()
	for _, mb := range p.idle {
		if mb.checkAt.IsZero() {
			continue // the decision at the start of its idle period is pending
		}
		if !mb.checkAt.After(now) {
			todo = append(todo, due{mb, mb.gen, p.idleStateLocked(mb)})
			continue
		}
		if earliest.IsZero() || mb.checkAt.Before(earliest) {
			earliest = mb.checkAt
		}
	}
	p.mu.Unlock()
	for _, d := range todo {
		p.decide(d.mb, d.gen, d.state)
	}
	return earliest
}

// prepare makes sure an instance will be idle and ready by the given
// time, starting one as soon as a prepare slot is free if needed and
// possible. Prepared starts take turns (Options.MaxPreparing at a time):
// they are speculative, and on a small machine a burst of them would take
// the cores from the calls and the engine they are meant to speed up. A
// prepare waiting for its turn does not hold a place in the pool: a call
// that comes meanwhile starts its own instance rather than queue behind it.
func (p *pool) prepare(ctx context.Context, by time.Time) error {
	p.mu.Lock()
	if by.After(p.prepared) {
		p.prepared = by
	}
	if !p.needsPreparedLocked() {
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()

	select {
	case p.m.prepSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.m.startCtx.Done():
		return errManagerClosed
	}
	defer func() { <-p.m.prepSlots }()
	// A slot freeing as the prepare is abandoned is as likely to win the
	// select as the abandonment: an abandoned prepare (its call started
	// an instance of its own) must not start a second one.
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	if !p.needsPreparedLocked() {
		p.mu.Unlock()
		return nil
	}
	p.starting++
	p.updateGauges()
	p.mu.Unlock()
	_, err := p.start(true, by)
	return err
}

// needsPreparedLocked reports whether a prepared instance should be
// started: no idle one is waiting, no start is in flight beyond those the
// waiting calls will take, and the pool has room.
func (p *pool) needsPreparedLocked() bool {
	return !p.retired && len(p.idle) == 0 && p.starting <= len(p.waiters) &&
		len(p.idle)+len(p.busy)+p.starting < p.max
}

// retire stops the pool: idle instances are closed now, busy ones when
// their call ends, and waiting calls fail.
func (p *pool) retire(reason string) {
	p.mu.Lock()
	if p.retired {
		p.mu.Unlock()
		return
	}
	p.retired = true
	idle := p.idle
	p.idle = nil
	for _, mb := range idle {
		p.evictLocked(mb, reason, nil)
	}
	waiters := p.waiters
	p.waiters = nil
	p.metrics.queued.Set(0)
	p.updateGauges()
	p.mu.Unlock()
	p.rt.Retire(p.spec)
	for _, w := range waiters {
		w.ch <- grant{err: problem.Runtime("function %s was replaced or removed while the call waited; retry", p.spec.Ref())}
	}
}

func (p *pool) busyCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.busy) + p.starting
}

func (p *pool) updateGauges() {
	p.metrics.starting.Set(float64(p.starting))
	p.metrics.busy.Set(float64(len(p.busy)))
	p.metrics.idle.Set(float64(len(p.idle)))
}

func (p *pool) recordArrival(t time.Time) {
	s := &p.stats
	if !s.LastInvocation.IsZero() && t.After(s.LastInvocation) {
		s.MeanInterArrival = ewma(s.MeanInterArrival, t.Sub(s.LastInvocation))
	}
	s.Invocations++
	if t.After(s.LastInvocation) {
		s.LastInvocation = t
	}
}

func (p *pool) statsSnapshot() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

func (p *pool) expectedColdStart() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats.MeanColdStart
}

func (p *pool) appendInstances(out []InstanceInfo) []InstanceInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	info := func(mb *member, state string) InstanceInfo {
		return InstanceInfo{ID: mb.id, Function: p.spec.Name, Version: p.spec.Version, State: state,
			Created: mb.created, ColdStart: mb.phases, Calls: mb.calls, IdleSince: mb.idleSince}
	}
	for mb := range p.busy {
		out = append(out, info(mb, "busy"))
	}
	for _, mb := range p.idle {
		out = append(out, info(mb, "idle"))
	}
	return out
}

// ewma weighs a new sample by one fifth: recent enough to follow a change
// of traffic, smooth enough to ignore one outlier.
func ewma(mean, sample time.Duration) time.Duration {
	if mean == 0 {
		return sample
	}
	return mean + (sample-mean)/5
}
