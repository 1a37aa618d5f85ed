package prewarm

import (
	"slices"
	"time"
)

// arrivalWindow is how many inter-arrival gaps a workflow's arrival
// pattern remembers: enough for a robust median, few enough to follow a
// change of schedule within a handful of invocations.
const arrivalWindow = 16

// minArrivalGaps is how many gaps must be seen before arrivals are
// predicted at all.
const minArrivalGaps = 4

// arrivalPattern learns when a workflow is invoked. Timers, polling
// clients and batch jobs start workflows at regular intervals; for those
// the next arrival is predictable to within the jitter of the schedule,
// and the entry function (which no running invocation predicts) can be
// warmed just in time for it. Irregular arrivals are left to the
// keep-alive policy.
type arrivalPattern struct {
	last time.Time
	gaps [arrivalWindow]time.Duration
	n    int // gaps recorded, at most arrivalWindow
	next int // ring position of the next gap
}

// observe records an arrival; arrivals out of order (a resumed
// invocation) are ignored.
func (a *arrivalPattern) observe(at time.Time) {
	if !a.last.IsZero() {
		if !at.After(a.last) {
			return
		}
		a.gaps[a.next] = at.Sub(a.last)
		a.next = (a.next + 1) % arrivalWindow
		a.n = min(a.n+1, arrivalWindow)
	}
	a.last = at
}

// predict returns the next arrival and its spread (the median absolute
// deviation of the gaps) once enough gaps were seen, and when tolerance
// is positive only if the spread is at most tolerance times the median
// gap; a negative tolerance predicts nothing. Median and MAD ignore the
// odd outlier (a missed or doubled tick) that would throw a mean off.
func (a *arrivalPattern) predict(tolerance float64) (next time.Time, spread time.Duration, ok bool) {
	if a.n < minArrivalGaps || tolerance < 0 {
		return time.Time{}, 0, false
	}
	gaps := slices.Clone(a.gaps[:a.n])
	slices.Sort(gaps)
	median := gaps[len(gaps)/2]
	for i, g := range gaps {
		gaps[i] = max(g-median, median-g)
	}
	slices.Sort(gaps)
	spread = gaps[len(gaps)/2]
	if median <= 0 || tolerance > 0 && float64(spread) > tolerance*float64(median) {
		return time.Time{}, 0, false
	}
	return a.last.Add(median), spread, true
}

// expectation is an arrival the planner prepares for ahead of time: a
// pseudo-invocation whose planned calls the real invocation takes over
// when it starts between from and until.
type expectation struct {
	id          string
	at          time.Time
	from, until time.Time
}
