package rowcodec

import (
	"time"

	"github.com/batonflow/baton/core"
)

// PendingTimers folds timer events, read in history order per invocation,
// into each invocation's earliest timer that has not fired.
type PendingTimers struct {
	open map[string]map[string]time.Time // invocation → timer → deadline
}

// Add takes in one TimerScheduled or TimerFired event.
func (p *PendingTimers) Add(invocation string, typ core.EventType, timer string, fireAt time.Time) {
	if p.open == nil {
		p.open = map[string]map[string]time.Time{}
	}
	timers := p.open[invocation]
	switch typ {
	case core.TimerScheduled:
		if timers == nil {
			timers = map[string]time.Time{}
			p.open[invocation] = timers
		}
		timers[timer] = fireAt
	case core.TimerFired:
		delete(timers, timer)
	}
}

// Earliest returns each invocation's earliest pending deadline.
func (p *PendingTimers) Earliest() map[string]time.Time {
	out := make(map[string]time.Time, len(p.open))
	for id, timers := range p.open {
		for _, at := range timers {
			if cur, ok := out[id]; !ok || at.Before(cur) {
				out[id] = at
			}
		}
	}
	return out
}
