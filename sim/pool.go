package sim

import (
	"context"
	"strconv"
	"time"

	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/prewarm"
)

// world is the simulated function layer of one workflow: a pool per
// function, with the Manager's semantics (idle instances reused most
// recent first, a prepared instance started so that its expected cold
// start ends by the time asked, keep-alive decisions at idle and at each
// recheck, stale decisions discarded).
type world struct {
	clock     *prewarm.VirtualClock
	pools     map[string]*simPool
	keepAlive function.KeepAlive
	observers []function.Observer
	idle      time.Duration
	nextID    int
}

type simPool struct {
	w        *world
	name     string
	cold     time.Duration
	idle     []*simInstance
	starting []*simInstance
	waiters  []func(inst *simInstance)
	prepared time.Time
	stats    function.Stats
}

type simInstance struct {
	id        string
	idleSince time.Time
	gen       uint64
	ready     time.Time
	startedAt time.Time
	calls     int
	prepared  bool
	// recheck is the pending keep-alive recheck, stopped when the
	// instance is used so that stale timers do not pile up.
	recheck prewarm.Timer
}

func (w *world) emit(e function.Event) {
	for _, o := range w.observers {
		o.Observe(e)
	}
}

// Prepare implements prewarm.Preparer with the Manager's timing: the
// start begins the expected cold start (and a quarter more) before by.
func (w *world) Prepare(_ context.Context, name string, by time.Time) error {
	p := w.pools[name]
	if p == nil {
		return nil
	}
	lead := p.stats.MeanColdStart
	startAt := by.Add(-lead - lead/4)
	w.clock.AfterFunc(startAt.Sub(w.clock.Now()), func() { p.prepare(by) })
	return nil
}

func (p *simPool) prepare(by time.Time) {
	if by.After(p.prepared) {
		p.prepared = by
	}
	if len(p.idle) > 0 || len(p.starting) > 0 {
		return
	}
	p.start(true)
}

// start begins a cold start; the instance goes to the first waiter when
// ready, or idles.
func (p *simPool) start(prepared bool) {
	w := p.w
	w.nextID++
	inst := &simInstance{id: p.name + "/" + strconv.Itoa(w.nextID), startedAt: w.clock.Now(), prepared: prepared}
	inst.ready = inst.startedAt.Add(p.cold)
	p.starting = append(p.starting, inst)
	w.clock.AfterFunc(p.cold, func() {
		for i, x := range p.starting {
			if x == inst {
				p.starting = append(p.starting[:i], p.starting[i+1:]...)
				break
			}
		}
		p.stats.ColdStarts++
		if p.stats.MeanColdStart == 0 {
			p.stats.MeanColdStart = p.cold
		} else {
			p.stats.MeanColdStart += (p.cold - p.stats.MeanColdStart) / 5
		}
		w.emit(function.Event{Kind: function.EventCreated, Time: w.clock.Now(), Function: p.name, Instance: inst.id, Phases: function.Phases{Instantiate: p.cold}})
		p.handOff(inst)
	})
}

func (p *simPool) handOff(inst *simInstance) {
	if len(p.waiters) > 0 {
		wait := p.waiters[0]
		p.waiters = p.waiters[1:]
		wait(inst)
		return
	}
	w := p.w
	inst.idleSince = w.clock.Now()
	inst.gen++
	p.idle = append(p.idle, inst)
	w.emit(function.Event{Kind: function.EventIdle, Time: inst.idleSince, Function: p.name, Instance: inst.id})
	p.decide(inst, inst.gen)
}

func (p *simPool) decide(inst *simInstance, gen uint64) {
	w := p.w
	now := w.clock.Now()
	d := w.keepAlive.Decide(function.IdleState{
		Function: p.name, Instance: inst.id, IdleSince: inst.idleSince, Now: now,
		PreparedFor: p.prepared, Idle: len(p.idle), Stats: p.stats,
	})
	if inst.gen != gen || !p.isIdle(inst) {
		return
	}
	if d.Evict {
		p.removeIdle(inst)
		w.idle += now.Sub(inst.idleSince)
		w.emit(function.Event{Kind: function.EventEvicted, Time: now, Function: p.name, Instance: inst.id, Reason: function.ReasonKeepAlive})
		return
	}
	at := d.RecheckAt
	if !at.After(now) {
		at = now.Add(time.Second)
	}
	inst.recheck = w.clock.AfterFunc(at.Sub(now), func() {
		inst.recheck = nil
		if inst.gen == gen && p.isIdle(inst) {
			p.decide(inst, gen)
		}
	})
}

func (p *simPool) isIdle(inst *simInstance) bool {
	for _, x := range p.idle {
		if x == inst {
			return true
		}
	}
	return false
}

func (p *simPool) removeIdle(inst *simInstance) {
	for i, x := range p.idle {
		if x == inst {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			return
		}
	}
}

// call runs one call of exec on an instance and reports how long it
// waited for a cold start, and whether the instance it waited for was a
// prepared one (started ahead, not by the call), then releases the
// instance.
func (p *simPool) call(exec time.Duration, done func(wait time.Duration, prepared bool)) {
	w := p.w
	arrival := w.clock.Now()
	if !p.stats.LastInvocation.IsZero() {
		gap := arrival.Sub(p.stats.LastInvocation)
		if p.stats.MeanInterArrival == 0 {
			p.stats.MeanInterArrival = gap
		} else {
			p.stats.MeanInterArrival += (gap - p.stats.MeanInterArrival) / 5
		}
	}
	p.stats.LastInvocation = arrival
	p.stats.Invocations++
	run := func(inst *simInstance) {
		now := w.clock.Now()
		wait := now.Sub(arrival)
		inst.calls++
		w.emit(function.Event{Kind: function.EventBusy, Time: now, Function: p.name, Instance: inst.id, Waited: wait})
		w.clock.AfterFunc(exec, func() {
			done(wait, inst.prepared)
			p.handOff(inst)
		})
	}
	if n := len(p.idle); n > 0 {
		inst := p.idle[n-1]
		p.idle = p.idle[:n-1]
		inst.gen++
		if inst.recheck != nil {
			inst.recheck.Stop()
			inst.recheck = nil
		}
		w.idle += arrival.Sub(inst.idleSince)
		run(inst)
		return
	}
	p.waiters = append(p.waiters, run)
	// A start under way (a prepared one) serves this call when ready;
	// otherwise one is started for it.
	if len(p.waiters) > len(p.starting) {
		p.start(false)
	}
}

// closeAt counts the idle time of instances still idle at the end.
func (w *world) closeAt(end time.Time) {
	for _, p := range w.pools {
		for _, inst := range p.idle {
			if end.After(inst.idleSince) {
				w.idle += end.Sub(inst.idleSince)
			}
		}
		p.idle = nil
	}
}
