package qos

import "time"

// Seat hand-off, adaptive. A seat kept for a workflow's next call is idle
// until that call comes: worth it when the call comes soon, a waste when
// it never comes (the workflow ends after this call, as most one-step
// workflows do) or comes later than another call would have used the seat.
// Kept for every workflow's call for a fixed 5ms, the seat idled between a
// call's end and its workflow's end, which on a loaded machine takes
// milliseconds: 0.91μ of goodput against 1.12μ without hand-off in the QoS
// experiment (docs/qos.md). So the scheduler learns, for each place in a
// workflow that makes a call (Call.Site), how often the workflow calls again
// after it and how soon, and keeps the seat only when it is expected back
// sooner than a call takes, for about twice that gap.

// siteStats is what the scheduler learned of the calls made at one site.
type siteStats struct {
	// follow is the exponentially weighted share of its calls after
	// which the same workflow asked for another seat before it ended.
	follow float64
	// gap is the weighted mean time from such a call's end to the next
	// call's request.
	gap time.Duration
	// n counts observations, up to siteWarm.
	n int
}

const (
	// maxSites bounds the sites remembered: when more are seen, the
	// statistics start over (workflow versions come and go).
	maxSites = 4096
	// siteWarm is how many observations a site needs before its
	// statistics decide: until then its seat is kept, as it always was,
	// so that the gap to its next call can be measured.
	siteWarm = 4
	// handOffSlack is added to twice the learned gap: a workflow's next
	// call comes after an engine step, whose time varies with the load.
	handOffSlack = 500 * time.Microsecond
)

// learnLocked records whether a call at site was followed by another call
// of its workflow, and after how long.
func (s *Scheduler) learnLocked(site string, followed bool, gap time.Duration) {
	if site == "" {
		return
	}
	st := s.sites[site]
	if st == nil {
		if len(s.sites) >= maxSites {
			clear(s.sites)
		}
		st = &siteStats{}
		s.sites[site] = st
	}
	f := 0.0
	if followed {
		f = 1
	}
	if st.n == 0 {
		st.follow = f
	} else {
		st.follow += (f - st.follow) / 8
	}
	if followed {
		if st.gap == 0 {
			st.gap = gap
		} else {
			st.gap += (gap - st.gap) / 8
		}
	}
	st.n = min(st.n+1, siteWarm)
}

// holdLocked is how long the seat of call c, ending now, is kept for its
// workflow's next call: 0 to give it back at once.
func (s *Scheduler) holdLocked(p *Queue, c Call) time.Duration {
	for k := Critical; k < c.Class; k++ {
		if p.Len(k) > 0 {
			// A call of a class served before it waits: the seat is its.
			return 0
		}
	}
	st := s.sites[c.Site]
	if c.Site == "" || st == nil || st.n < siteWarm {
		return s.opts.HandOff
	}
	if st.follow < 0.5 || st.gap >= s.callCostLocked(c.Pool) || st.gap >= s.opts.HandOff {
		// Its workflow mostly ends after this call, or calls again later
		// than another call would have used the seat meanwhile.
		return 0
	}
	return min(s.opts.HandOff, 2*st.gap+handOffSlack)
}
