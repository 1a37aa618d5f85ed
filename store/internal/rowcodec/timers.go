package rowcodec

import (
	"fmt"
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

// ReadPendingTimers folds rows of (invocation, event type, timer, fireAt)
// into each invocation's earliest pending deadline.
func ReadPendingTimers(rows Rows) (map[string]time.Time, error) {
	var fold PendingTimers
	for rows.Next() {
		var id, typ, timer, fireAt string
		if err := rows.Scan(&id, &typ, &timer, &fireAt); err != nil {
			return nil, fmt.Errorf("pending timers: %w", err)
		}
		at, _ := time.Parse(time.RFC3339Nano, fireAt)
		fold.Add(id, core.EventType(typ), timer, at)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending timers: %w", err)
	}
	return fold.Earliest(), nil
}
