package qos

import (
	"fmt"
	"sync/atomic"
	"time"
)

// A refusal is the answer an overloaded server gives most often, so it must
// be the cheapest: Refuse decides it from a view of the admission state
// that the gates publish as they change, without their lock. A refusal then
// never waits for a scheduler busy seating calls (or for a lock holder the
// operating system descheduled on a loaded machine), and a caller such as
// the API can ask before it reads the request's body or the workflow.

// admissionView is G1's state as Admit would judge a newcomer, per class.
// Each field is read on its own: a view torn between two updates is as
// good as one a microsecond older.
type admissionView struct {
	// wait is the predicted wait at G1 (predictLocked), in nanoseconds.
	wait [numClasses]atomic.Int64
	// queues says a start would queue rather than pass at once.
	queues [numClasses]atomic.Bool
	// full says a start that queues would find G1's bounds reached, with
	// no start of a lower class to shed in its place.
	full [numClasses]atomic.Bool
}

// publishLocked refreshes the view from the state under mu.
func (s *Scheduler) publishLocked() {
	for k := Critical; k < numClasses; k++ {
		s.view.wait[k].Store(int64(s.predictLocked(k)))
		ahead, _ := s.g1.Ahead(k)
		s.view.queues[k].Store(ahead > 0 || !s.allow(k))
		s.view.full[k].Store(s.g1FullLocked(k))
	}
}

// g1FullLocked says whether G1 would refuse a bounded start of class k
// for its class's bound or the total bound (a namespace's own bound is
// left to Admit, which knows it).
func (s *Scheduler) g1FullLocked(k Class) bool {
	q := s.g1
	if l := q.d.ClassLimit[k]; l > 0 && q.classes[k].bounded >= l {
		return true
	}
	if q.d.Limit <= 0 || q.queued < q.d.Limit {
		return false
	}
	for j := k + 1; j < numClasses; j++ {
		if q.classes[j].bounded > 0 {
			return false // Push sheds one of these instead
		}
	}
	return true
}

// Refuse returns the Rejection Admit would answer st with at once, judged
// without the gates' lock, or nil when st may be admitted or queued (ask
// Admit then). It never admits and takes no quota token; what it refuses
// is counted like Admit's refusals. Asynchronous and system starts are
// never refused.
func (s *Scheduler) Refuse(st Start) *Rejection {
	if st.Class == System || st.Class >= numClasses || st.Defer || s.opts.NoAdmission {
		return nil
	}
	if st.RunningCap > 0 && st.Running >= st.RunningCap {
		return s.rejectLocked(st, ReasonQuota, time.Second, runningDetail(&st))
	}
	if st.Rate > 0 {
		if ok, wait := s.bucketTake(&st, false); !ok {
			return s.rejectLocked(st, ReasonQuota, wait, rateDetail(&st))
		}
	}
	if r := s.failFast(st, s.opts.Now(), time.Duration(s.view.wait[st.Class].Load())); r != nil {
		return r
	}
	if s.view.queues[st.Class].Load() && s.view.full[st.Class].Load() {
		return s.rejectLocked(st, ReasonOverloaded, time.Duration(s.view.wait[st.Class].Load()), "the admission queue is full")
	}
	return nil
}

// failFast refuses a start predicted to wait longer than its deadline
// leaves, or longer than any start may wait.
func (s *Scheduler) failFast(st Start, now time.Time, wait time.Duration) *Rejection {
	switch {
	case !st.Deadline.IsZero() && now.Add(wait).After(st.Deadline):
		return s.rejectLocked(st, ReasonInfeasible, wait,
			fmt.Sprintf("the predicted wait of %s is longer than the %s left before the deadline", wait.Round(time.Millisecond), max(0, st.Deadline.Sub(now)).Round(time.Millisecond)))
	case wait > s.opts.MaxWait:
		return s.rejectLocked(st, ReasonOverloaded, wait,
			fmt.Sprintf("the predicted wait of %s is longer than the %s a start may wait", wait.Round(time.Millisecond), s.opts.MaxWait))
	}
	return nil
}

// bucketTake takes a token of st's namespace's rate quota (only looks
// whether there is one when take is false), or says how long until there
// is one.
func (s *Scheduler) bucketTake(st *Start, take bool) (bool, time.Duration) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	replicas := max(1, s.opts.Replicas())
	b := s.buckets[st.Namespace]
	if b == nil {
		if !take {
			return true, 0 // a bucket not used yet is full
		}
		b = &bucket{}
		s.buckets[st.Namespace] = b
	}
	rate, burst, now := st.Rate/float64(replicas), max(1, st.Burst/replicas), s.opts.Now()
	if !take {
		probe := *b
		return probe.take(now, rate, burst)
	}
	return b.take(now, rate, burst)
}

func runningDetail(st *Start) string {
	return fmt.Sprintf("namespace %s has %d invocations running, its quota", st.Namespace, st.Running)
}

func rateDetail(st *Start) string {
	return fmt.Sprintf("namespace %s starts more than its quota of %g per second", st.Namespace, st.Rate)
}
