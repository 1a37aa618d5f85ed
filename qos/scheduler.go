package qos

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/batonflow/baton/internal/osprio"
)

// Pools of G2 seats. Registered functions are seated in the pool of their
// runtime (wasm, process, http); `call: http` and the other network calls
// in PoolHTTP; `run: shell/script/container` in PoolProcess.
const (
	PoolWasm    = "wasm"
	PoolProcess = "process"
	PoolHTTP    = "http"
)

// CostModel gives the expected duration of a call of a function: the
// prewarm statistics (prewarm.Stats) are one.
type CostModel interface {
	ExecCost(fn string) (time.Duration, bool)
}

// Options configure a Scheduler. The zero value of each field is its
// documented default.
type Options struct {
	// Seats is the number of G2 seats of each pool, 0 for no limit (its
	// calls never queue); pools not named get DefaultSeats.
	Seats map[string]int
	// Weights are the classes' shares of contended seats and of
	// admissions; DefaultWeights when all zero.
	Weights [numClasses]float64
	// Reserve is the seats each class keeps for itself in every pool
	// (DefaultReserve when all zero): critical lends nothing.
	Reserve [numClasses]int
	// QueueLimit bounds the starts queued at G1, FlowLimit those of one
	// namespace, ClassLimit those of one class (defaults 4096, 1024 and
	// DefaultClassLimit).
	QueueLimit int
	FlowLimit  int
	ClassLimit [numClasses]int
	// BacklogTarget is how many calls may wait at G2 before new starts
	// of the same or a lower class wait at G1: the calls of running
	// workflows go first. Starts admitted but not yet at G2 count too,
	// less the idle seats they will take: admission keeps G2's seats
	// busy while the way from G1 to G2 is slow.
	// Default: twice the CPU count, at least 4.
	BacklogTarget int
	// MaxWait bounds the predicted wait at G1 of a synchronous start: a
	// start predicted to wait longer is refused at arrival as overloaded
	// (default 2s), so that under overload a client learns at once to
	// come back later. A start once queued is never refused later; only
	// its own deadline ends its wait.
	MaxWait time.Duration
	// DefaultCost is the expected duration of a call never measured
	// (default 10ms).
	DefaultCost time.Duration
	// Costs gives expected call durations; nil uses DefaultCost.
	Costs CostModel
	// Learn, when set, hears the duration of every seated call (to feed
	// Costs when nothing else does).
	Learn func(fn string, d time.Duration)
	// Lead is the seat-time a class with a reserve (critical) may take
	// at G2 ahead of its weight's share before it competes by stride
	// like the others (default 5s: the three seats of a 2-CPU wasm pool
	// for under two seconds): the burst a class below its share is served
	// in without waiting behind lower classes. Measured at saturation, a
	// lead of 500ms policed the experiment's critical tenant in its
	// bursts (docs/qos.md). See Discipline.Lead.
	Lead time.Duration
	// HandOff is the longest a seat of a workflow's call is kept for the
	// workflow's next call (default 5ms): a running workflow goes on
	// without queueing again, and in a CPU-bound pool without another
	// call taking the CPU between its steps. The seat is given back at
	// once when the workflow ends, and not kept at all where the
	// workflow is not expected to call again soon (see holdLocked).
	HandOff time.Duration
	// Replicas is the number of live replicas sharing the namespaces'
	// quotas (each takes its share); nil means one.
	Replicas func() int

	// Ablations, for experiments: NoEDF serves a flow in arrival order,
	// NoContinuations lets new starts compete with running workflows'
	// calls (no continuation priority at G1 or G2, no seat hand-off),
	// NoAdmission never refuses a start (no quota, no bound, no
	// infeasible deadline), NoCPUPriority runs every class's calls at
	// the operating system's ordinary priority (see Seat.Yield).
	NoEDF, NoContinuations, NoAdmission, NoCPUPriority bool

	// Now and Random replace the clock and the jitter's source in tests.
	Now    func() time.Time
	Random func() float64
}

// Defaults of Options.
var (
	DefaultWeights    = [numClasses]float64{0, 50, 35, 15}
	DefaultReserve    = [numClasses]int{0, 1, 0, 0}
	DefaultClassLimit = [numClasses]int{0, 1024, 2048, 512}
)

// DefaultSeats is the G2 seats of a pool not configured: CPU-bound wasm
// gets one per CPU plus critical's reserve, processes twice that. HTTP
// gets 0, no limit: its calls wait on the network, not on this server's
// CPUs, so seating them would only hold back starts (and, through G1's
// continuation priority, starts of every other pool too) while nothing
// here is busy.
func DefaultSeats(pool string) int {
	n := runtime.GOMAXPROCS(0)
	switch pool {
	case PoolWasm:
		return n + 1
	case PoolProcess:
		return 2*n + 1
	}
	return 0
}

func (o *Options) defaults() {
	if o.Weights == [numClasses]float64{} {
		o.Weights = DefaultWeights
	}
	if o.Reserve == [numClasses]int{} {
		o.Reserve = DefaultReserve
	}
	if o.QueueLimit == 0 {
		o.QueueLimit = 4096
	}
	if o.FlowLimit == 0 {
		o.FlowLimit = 1024
	}
	if o.ClassLimit == [numClasses]int{} {
		o.ClassLimit = DefaultClassLimit
	}
	if o.BacklogTarget == 0 {
		o.BacklogTarget = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if o.MaxWait == 0 {
		o.MaxWait = 2 * time.Second
	}
	if o.DefaultCost == 0 {
		o.DefaultCost = 10 * time.Millisecond
	}
	if o.Lead == 0 {
		o.Lead = 5 * time.Second
	}
	if o.HandOff == 0 {
		o.HandOff = 5 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Random == nil {
		o.Random = rand.Float64
	}
	if o.Replicas == nil {
		o.Replicas = func() int { return 1 }
	}
	if o.NoAdmission {
		o.QueueLimit, o.FlowLimit, o.ClassLimit = 0, 0, [numClasses]int{}
	}
}

// Scheduler is the two gates of one engine. It is safe for concurrent use.
type Scheduler struct {
	opts    Options
	metrics *metrics

	mu      sync.Mutex
	g1      *Queue
	pools   map[string]*Queue
	pending [numClasses]int // admitted starts not yet at G2
	buckets map[string]*bucket
	// pace is the learned admissions per second, for the predicted wait
	// of a newcomer; counted over windows of paceWindow, whose admissions
	// are admitted, since windowStart.
	pace        [numClasses]float64
	paced       bool // a window has passed: pace is known
	admitted    [numClasses]int
	windowStart time.Time
	seatsInUse  map[seatKey]int
	rejections  map[rejectionKey]int64
	// callCost is the measured mean seat-time of a call by pool (an
	// exponential average of seated calls' durations), for the
	// predicted wait.
	callCost map[string]time.Duration
	// sites is what was learned of each call site's next call, for
	// seat hand-off.
	sites map[string]*siteStats
	// criticalAt is when a critical call last asked each pool for a
	// seat, for yieldsLocked.
	criticalAt map[string]time.Time

	// view is the admission state as of the last change under mu, read
	// without it by Refuse.
	view admissionView
	// qmu guards buckets and opts.Replicas: quotas are decided without
	// mu, so a refusal never waits for the gates.
	qmu sync.Mutex
	// rmu guards rejections, counted by refusals with or without mu.
	rmu sync.Mutex
}

type seatKey struct {
	pool, flow string
	class      Class
}

type rejectionKey struct {
	flow   string
	class  Class
	reason Reason
}

// New returns a scheduler.
func New(opts Options) *Scheduler {
	opts.defaults()
	return &Scheduler{
		opts:       opts,
		metrics:    newMetrics(),
		g1:         NewQueue(opts.discipline(0, false)),
		pools:      map[string]*Queue{},
		buckets:    map[string]*bucket{},
		seatsInUse: map[seatKey]int{},
		rejections: map[rejectionKey]int64{},
		callCost:   map[string]time.Duration{},
		sites:      map[string]*siteStats{},
		criticalAt: map[string]time.Time{},
	}
}

// discipline is a gate's discipline: G1's for 0 seats, else that of a G2
// pool of seats, cpuBound when its calls compute in this process (whose
// lower classes may then yield the CPU, see Seat.Yield).
func (o *Options) discipline(seats int, cpuBound bool) Discipline {
	d := Discipline{
		Seats: seats, Weights: o.Weights, EDF: !o.NoEDF, Continuations: !o.NoContinuations,
	}
	if seats == 0 {
		// G1: bounded queues, no seats (held back by the G2 backlog).
		d.Limit, d.FlowLimit, d.ClassLimit = o.QueueLimit, o.FlowLimit, o.ClassLimit
		return d
	}
	d.Reserve = o.Reserve
	d.OthersYield = cpuBound && o.cpuPriority()
	// A class that reserves seats (critical) lends nothing, and within
	// its share it waits behind no other class and computes beside no
	// more calls than the shared seats hold (see Discipline.Lead).
	// Beyond its share it still goes first up to its nominal seats, its
	// weight's share of the pool rounded down and short of every shared
	// seat, so that a small CPU-bound pool's shared seats (two of three
	// on two CPUs) are never all critical's by right.
	total, reserved := 0.0, 0
	for k := Critical; k < numClasses; k++ {
		total += o.Weights[k]
		reserved += o.Reserve[k]
	}
	shared := seats - min(reserved, seats-1)
	for k := Critical; k < numClasses; k++ {
		if o.Reserve[k] > 0 {
			d.Lead[k] = o.Lead
			if total > 0 {
				d.Nominal[k] = min(int(math.Floor(float64(seats)*o.Weights[k]/total)), shared-1)
			}
		}
	}
	return d
}

// SetReplicas sets how the number of live replicas sharing the quotas is
// found (the engine of a cluster replica sets it).
func (s *Scheduler) SetReplicas(f func() int) {
	s.qmu.Lock()
	s.opts.Replicas = f
	s.qmu.Unlock()
}

// Options returns the scheduler's settings, defaults applied.
func (s *Scheduler) Options() Options { return s.opts }

// criticalWindow is how lately a critical call must have asked a pool
// for a seat for the lower classes' new calls in it to yield the CPU.
const criticalWindow = 2 * time.Second

// yieldsLocked says whether a call of class k seated now in pool p (named
// pool) yields the CPU to other work while it computes. G2 decides which
// calls run, but a seat is not a CPU: a critical call seated beside
// others (in the reserve, or before a lower class's call has ended)
// shares the cores with them and with the server's own work. So below
// critical, in a pool that computes in this process, while critical work
// is about (seated, queued, or asking within criticalWindow), calls run
// at a lower operating-system priority and the kernel gives a contended
// core to critical calls and to the server first, and to them whatever is
// left: nothing idles that could run. Only where a thread's priority can
// be lowered on its own (Linux): the seat rule that lets critical calls
// beside yielding ones (OthersYield) holds only if those do yield.
func (s *Scheduler) yieldsLocked(p *Queue, pool string, k Class, now time.Time) bool {
	if !p.d.OthersYield || k <= Critical || k >= numClasses {
		return false
	}
	return p.InUse(Critical) > 0 || p.Len(Critical) > 0 || now.Sub(s.criticalAt[pool]) < criticalWindow
}

// seatYieldsLocked decides whether a seat of class k granted now in pool p
// (named pool) yields the CPU, and counts it in the pool if it does.
func (s *Scheduler) seatYieldsLocked(p *Queue, pool string, k Class, now time.Time) bool {
	yields := s.yieldsLocked(p, pool, k, now)
	p.MarkYielding(yields, 1)
	return yields
}

// cpuPriority says whether the lower classes' calls may yield the CPU.
func (o *Options) cpuPriority() bool { return !o.NoCPUPriority && osprio.Supported }

// Start is a workflow start asking G1 for admission.
type Start struct {
	Class     Class
	Namespace string
	// Weight is the namespace's share of its class (1 when zero).
	Weight float64
	// Deadline is when the workflow's result is of no use; zero for none.
	Deadline time.Time
	// Defer marks an asynchronous start (an event, a schedule, a
	// trigger): it waits for its turn and its quota instead of being
	// refused. Its deadline still ends the wait, with ReasonDeadline.
	Defer bool
	// RefuseOverQuota refuses a deferred start over its namespace's quota
	// (429) rather than holding it: a hook's caller is still connected,
	// can retry after Retry-After, and must not hold its connection for
	// as long as the quota takes to refill.
	RefuseOverQuota bool
	// Rate and Burst are the namespace's start quota per second across
	// replicas: each live replica takes an equal share. Zero Rate is none.
	Rate  float64
	Burst int
	// Running is the namespace's invocations running on this server now;
	// RunningCap its cap per server (policy limits.runningInvocations; 0
	// for none).
	Running, RunningCap int
}

// Ticket is an admitted start. Settle it once the workflow's first call
// reached G2, or the workflow ended: until then it counts as backlog that
// holds back further starts.
type Ticket struct {
	s     *Scheduler
	class Class
	once  sync.Once
}

// Settle releases the ticket's backlog place; later calls do nothing.
func (t *Ticket) Settle() {
	if t == nil || t.s == nil {
		return
	}
	t.once.Do(func() {
		t.s.mu.Lock()
		t.s.pending[t.class]--
		t.s.pumpLocked()
		t.s.mu.Unlock()
	})
}

// settleLocked is Settle with the scheduler's lock held (by Seat, so
// that the work moves from pending to G2's queue in one step).
func (t *Ticket) settleLocked(s *Scheduler) {
	if t == nil || t.s != s {
		return
	}
	t.once.Do(func() { s.pending[t.class]-- })
}

type waiter struct {
	ready    chan struct{}
	granted  bool
	rejected *Rejection
	since    time.Time
	// yields is whether the seat granted yields the CPU (G2).
	yields bool
}

// Admit passes a start through G1: it returns at once when the start may
// go, waits its turn when starts queue, or refuses it with a *Rejection.
func (s *Scheduler) Admit(ctx context.Context, st Start) (*Ticket, error) {
	if st.Class == System {
		return &Ticket{}, nil
	}
	if err := s.quota(ctx, &st); err != nil {
		return nil, err
	}
	s.mu.Lock()
	now := s.opts.Now()
	if !st.Defer && !s.opts.NoAdmission {
		// Fail fast: a start predicted to miss its deadline, or to wait
		// longer than any start waits, is refused now rather than later.
		if r := s.failFast(st, now, s.predictLocked(st.Class)); r != nil {
			s.mu.Unlock()
			return nil, r
		}
	}
	if ahead, _ := s.g1.Ahead(st.Class); ahead == 0 && s.allow(st.Class) {
		// The fast path of a gate without contention: no queueing.
		s.countAdmissionLocked(st.Class)
		s.pending[st.Class]++
		s.publishLocked()
		s.mu.Unlock()
		s.metrics.wait.WithLabelValues("g1", st.Class.String(), st.Namespace).Observe(0)
		return &Ticket{s: s, class: st.Class}, nil
	}
	w := &waiter{ready: make(chan struct{}, 1), since: now}
	it := &Item{Class: st.Class, Flow: st.Namespace, FlowWeight: st.Weight, Deadline: st.Deadline,
		Cost: s.opts.DefaultCost, Exempt: st.Defer, Value: w}
	out, evicted := s.g1.Push(it)
	if out == Refused {
		r := s.rejectLocked(st, ReasonOverloaded, s.predictLocked(st.Class), "the admission queue is full")
		s.mu.Unlock()
		return nil, r
	}
	if evicted != nil {
		ew := evicted.Value.(*waiter)
		ew.rejected = s.rejectLocked(Start{Class: evicted.Class, Namespace: evicted.Flow}, ReasonOverloaded,
			s.predictLocked(evicted.Class), "shed for work of a higher class")
		ew.ready <- struct{}{}
	}
	s.pumpLocked()
	s.mu.Unlock()

	// Queued with the intent to admit: the decision to refuse was taken
	// above, at arrival. Only the start's own deadline (a deadline
	// error, not a refusal; deferred starts too, whose result would be of
	// no use), its caller leaving, or an eviction by a start of a higher
	// class (answered at once) end the wait.
	var deadline <-chan time.Time
	if !st.Deadline.IsZero() {
		t := time.NewTimer(st.Deadline.Sub(now))
		defer t.Stop()
		deadline = t.C
	}
	var gaveUp error
	select {
	case <-w.ready:
	case <-ctx.Done():
		gaveUp = ctx.Err()
	case <-deadline:
		gaveUp = &Rejection{Reason: ReasonDeadline, Detail: "the deadline passed while the start was queued"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if gaveUp != nil && s.g1.Remove(it) {
		s.publishLocked()
		if r, ok := gaveUp.(*Rejection); ok {
			return nil, s.rejectLocked(st, r.Reason, s.predictLocked(st.Class), r.Detail)
		}
		return nil, gaveUp
	}
	if w.rejected != nil {
		return nil, w.rejected
	}
	// Admitted (perhaps just as the caller gave up: the start goes on).
	s.metrics.wait.WithLabelValues("g1", st.Class.String(), st.Namespace).Observe(s.opts.Now().Sub(w.since).Seconds())
	return &Ticket{s: s, class: st.Class}, nil
}

// quota applies the namespace's rate and running quotas; a deferred start
// waits for them instead.
func (s *Scheduler) quota(ctx context.Context, st *Start) error {
	if s.opts.NoAdmission {
		return nil
	}
	for {
		var wait time.Duration
		var detail string
		expired := false
		if st.RunningCap > 0 && st.Running >= st.RunningCap {
			wait = time.Second
			detail = runningDetail(st)
		} else if st.Rate > 0 {
			ok, w := s.bucketTake(st, true)
			if ok {
				return nil
			}
			wait = w
			detail = rateDetail(st)
		} else {
			return nil
		}
		if !st.Defer || st.RefuseOverQuota {
			return s.rejectLocked(*st, ReasonQuota, wait, detail)
		}
		if !st.Deadline.IsZero() {
			if left := st.Deadline.Sub(s.opts.Now()); left < wait {
				wait = max(0, left)
				expired = true
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if expired {
			return s.rejectLocked(*st, ReasonDeadline, 0, "the deadline passed while the start waited for its namespace's quota")
		}
		if st.RunningCap > 0 {
			// The count is the caller's: it is refreshed by asking again.
			return nil
		}
	}
}

// paceWindow is the window over which admissions are counted: long
// enough to smooth the bursts in which a drained backlog admits starts,
// short enough to follow a change of load within seconds.
const paceWindow = time.Second

// countAdmissionLocked counts an admission of class k towards the pace.
func (s *Scheduler) countAdmissionLocked(k Class) {
	now := s.opts.Now()
	if s.windowStart.IsZero() {
		s.windowStart = now
	}
	s.admitted[k]++
	if d := now.Sub(s.windowStart); d >= paceWindow {
		for j := range s.pace {
			rate := float64(s.admitted[j]) / d.Seconds()
			if !s.paced {
				s.pace[j] = rate
			} else {
				s.pace[j] += (rate - s.pace[j]) / 2
			}
			s.admitted[j] = 0
		}
		s.paced, s.windowStart = true, now
	}
}

// allow holds back starts of class k while the calls of running workflows
// of class k or higher wait at G2 (continuation priority).
func (s *Scheduler) allow(k Class) bool {
	if s.opts.NoContinuations {
		return true
	}
	n := 0
	for j := Class(0); j <= k; j++ {
		n += s.pending[j]
	}
	// Admitted starts on their way to G2 first take its idle seats: only
	// those beyond are backlog, with the calls waiting there. Counting
	// them all throttled admission to the pace of that way (slow on a
	// loaded machine), leaving seats idle under overload.
	// Which pool a start's calls will take is not known: only the idle
	// seats that every pool with a limit has are sure to take it. (Their
	// sum let an idle process pool admit starts bound for a full wasm
	// pool; a pool without a limit never makes a call wait.)
	queued, idle := 0, -1
	for _, p := range s.pools {
		c, _ := p.Ahead(k)
		queued += c
		if seats := p.Discipline().Seats; seats > 0 {
			if free := max(0, seats-p.Used()); idle < 0 || free < idle {
				idle = free
			}
		}
	}
	n = queued + max(0, n-max(0, idle))
	return n < s.opts.BacklogTarget
}

// predictLocked is the wait a start of class k would have: the starts
// ahead of it at the pace of recent admissions, and the work queued at G2
// ahead of its calls.
func (s *Scheduler) predictLocked(k Class) time.Duration {
	// The starts of its class queued ahead, at the pace its class was
	// admitted lately: a class's pace includes its share of the gate, so
	// batch behind a busy standard class is predicted to wait longer.
	// A class admitted slowly because few of its starts came is not
	// slow: its rate is at least its weight's share of all admissions.
	var wait time.Duration
	if n := s.g1.Len(k); n > 0 && s.paced {
		total, weights := 0.0, 0.0
		for j := Critical; j < numClasses; j++ {
			total += s.pace[j]
			weights += s.opts.Weights[j]
		}
		if rate := max(s.pace[k], total*s.opts.Weights[k]/weights); rate > 0 {
			wait = time.Duration(float64(n) / rate * float64(time.Second))
		}
	}
	// The pace alone was too optimistic on a loaded machine (a burst of
	// admissions from a drained backlog looks fast): the starts queued
	// ahead also need at least a call's measured seat-time each, spread
	// over the seats of the busiest pool.
	if n, _ := s.g1.Ahead(k); n > 0 {
		pool, seats := s.busyPoolLocked()
		wait = max(wait, time.Duration(n)*s.callCostLocked(pool)/time.Duration(seats))
	}
	for _, p := range s.pools {
		_, cost := p.Ahead(k)
		wait += cost / time.Duration(max(1, p.Discipline().Seats))
	}
	return wait
}

// callCostLocked is the measured mean seat-time of a call in a pool.
func (s *Scheduler) callCostLocked(pool string) time.Duration {
	if d := s.callCost[pool]; d > 0 {
		return d
	}
	return s.opts.DefaultCost
}

// busyPoolLocked is the pool of limited seats with the most calls seated
// or waiting, the one the workload is bound by (wasm when none ran yet),
// and its seats. Pools without a limit bind nothing: their calls never
// wait for a seat.
func (s *Scheduler) busyPoolLocked() (string, int) {
	name, load := PoolWasm, -1
	for n, p := range s.pools {
		if p.Discipline().Seats <= 0 {
			continue
		}
		if l := p.Used() + p.Total(); l > load || (l == load && n < name) {
			name, load = n, l
		}
	}
	if p := s.pools[name]; p != nil {
		return name, max(1, p.Discipline().Seats)
	}
	if seats := s.opts.Seats[name]; seats > 0 {
		return name, seats
	}
	return name, max(1, DefaultSeats(name))
}

// rejectLocked counts a refusal and makes its Rejection. It takes no lock
// of the gates (its counts have their own), so a refusal decided without
// mu (Refuse, quota) calls it too.
func (s *Scheduler) rejectLocked(st Start, reason Reason, wait time.Duration, detail string) *Rejection {
	s.rmu.Lock()
	s.rejections[rejectionKey{st.Namespace, st.Class, reason}]++
	s.rmu.Unlock()
	s.metrics.rejections.WithLabelValues(st.Class.String(), st.Namespace, string(reason)).Inc()
	return &Rejection{Reason: reason, Class: st.Class, Namespace: st.Namespace,
		RetryAfter: jitter(wait, time.Second, s.opts.Random()), Detail: detail}
}

// pumpLocked admits queued starts while G2's backlog allows. Every change
// of the gates' state ends here (or publishes itself), so this is where the
// view Refuse reads is refreshed.
func (s *Scheduler) pumpLocked() {
	defer s.publishLocked()
	if s.g1.Total() == 0 {
		return
	}
	for {
		it := s.g1.Next(s.allow)
		if it == nil {
			return
		}
		s.g1.Done(it.Class)
		s.countAdmissionLocked(it.Class)
		s.pending[it.Class]++
		w := it.Value.(*waiter)
		w.granted = true
		w.ready <- struct{}{}
	}
}

// Call is a call asking G2 for a seat.
type Call struct {
	Pool     string
	Function string
	Class    Class
	Flow     string
	Weight   float64
	Deadline time.Time
	// Continuation marks a call of a workflow that made calls before.
	Continuation bool
	// Admission is the workflow's G1 ticket, settled as the call reaches
	// G2 (nil for none).
	Admission *Ticket
	// Chain is the workflow's calls, whose seats are handed from one to
	// the next (nil for none).
	Chain *Chain
	// Site names the place in the workflow's definition that makes the
	// call (its version and task), so that the scheduler learns whether
	// and how soon a workflow calls again after a call there; "" learns
	// nothing and keeps the seat for Options.HandOff.
	Site string

	// yields records that the seat granted to the call is a yielding one
	// (Seat.Yield), so that giving it back uncounts it.
	yields bool
}

// Seat is a G2 seat granted to a call.
type Seat struct {
	// Release gives the seat back (or keeps it for the workflow's next
	// call); call it once the call has ended.
	Release func()
	// Yield says the call is to compute at a lower operating-system
	// priority (function.WithLowPriority): its class is below critical,
	// the pool computes in this process, and critical calls were seated
	// in it lately (see yieldsLocked). Where no critical work runs, a
	// lower class's call keeps the ordinary priority, so that a server
	// of standard work alone does not yield its cores to other processes.
	Yield bool
}

// Chain is the calls of one workflow, for seat hand-off: the seat one of
// its calls gives back is kept for its next call, at most for
// Options.HandOff, so that a workflow already running goes on at once
// (continuation priority at G2). End it when the workflow ends. Its zero
// value is ready; it belongs to one scheduler, whose lock guards it.
type Chain struct {
	parked *parkedSeat
	ended  bool
	// last is the site of its last call to end, until its next call or
	// its end tells whether one followed in the same pool (a seat kept
	// for a call to another pool is never used); lastPool that call's
	// pool, lastEnded when it ended.
	last, lastPool string
	lastEnded      time.Time
}

// parkedSeat is a seat kept for a chain's next call: still taken in its
// pool's queue, held by nobody.
type parkedSeat struct {
	pool  *Queue
	call  Call
	timer *time.Timer
}

// EndChain gives back the seat a chain keeps, if any: its workflow makes
// no more calls.
func (s *Scheduler) EndChain(ch *Chain) {
	if ch == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch.ended = true
	if ch.last != "" {
		s.learnLocked(ch.last, false, 0)
		ch.last = ""
	}
	s.unparkLocked(ch)
}

// unparkLocked gives back the seat a chain keeps.
func (s *Scheduler) unparkLocked(ch *Chain) {
	pk := ch.parked
	if pk == nil {
		return
	}
	ch.parked = nil
	pk.timer.Stop()
	s.freeSeatLocked(pk.pool, pk.call)
}

func (s *Scheduler) pool(name string) *Queue {
	p := s.pools[name]
	if p == nil {
		seats, ok := s.opts.Seats[name]
		if !ok || seats < 0 {
			seats = DefaultSeats(name)
		}
		p = NewQueue(s.opts.discipline(seats, name == PoolWasm))
		s.pools[name] = p
	}
	return p
}

// Seat waits for a G2 seat for a call. It fails only with ctx's error
// (the call was cancelled): a call of an admitted workflow is never
// refused. The seat's Release gives it back; its Yield says whether the
// call is to compute at a lower priority.
func (s *Scheduler) Seat(ctx context.Context, c Call) (Seat, error) {
	cost := s.opts.DefaultCost
	if s.opts.Costs != nil {
		if d, ok := s.opts.Costs.ExecCost(c.Function); ok && d > 0 {
			cost = d
		}
	}
	s.mu.Lock()
	c.Admission.settleLocked(s)
	p := s.pool(c.Pool)
	now := s.opts.Now()
	if c.Class == Critical {
		s.criticalAt[c.Pool] = now
	}
	if ch := c.Chain; ch != nil && ch.last != "" {
		s.learnLocked(ch.last, ch.lastPool == c.Pool, now.Sub(ch.lastEnded))
		ch.last = ""
	}
	if ch := c.Chain; ch != nil && ch.parked != nil {
		if pk := ch.parked; pk.pool == p && pk.call.Class == c.Class && pk.call.Flow == c.Flow {
			// The seat of the workflow's last call, kept for this one: it
			// is charged to the class and flow as a dispatch would be.
			ch.parked = nil
			pk.timer.Stop()
			p.Charge(&Item{Class: c.Class, Flow: c.Flow, FlowWeight: c.Weight, Cost: cost})
			// settleLocked may have moved the start out of G2's backlog:
			// the view Refuse reads must see it.
			s.publishLocked()
			s.mu.Unlock()
			s.metrics.wait.WithLabelValues("g2", c.Class.String(), c.Flow).Observe(0)
			// The seat yields as it did for the last call.
			c.yields = pk.call.yields
			return s.seat(p, c, now), nil
		}
		s.unparkLocked(ch)
	}
	if p.TryTake(c.Class) {
		// Free for a class with nothing queued, but a class with a lead
		// pays while others wait (see Queue.Charge).
		p.Charge(&Item{Class: c.Class, Flow: c.Flow, FlowWeight: c.Weight, Cost: cost})
		c.yields = s.seatYieldsLocked(p, c.Pool, c.Class, now)
		s.seatedLocked(c, 1)
		s.pumpLocked()
		s.mu.Unlock()
		s.metrics.wait.WithLabelValues("g2", c.Class.String(), c.Flow).Observe(0)
		return s.seat(p, c, now), nil
	}
	w := &waiter{ready: make(chan struct{}, 1), since: now}
	it := &Item{Class: c.Class, Flow: c.Flow, FlowWeight: c.Weight, Deadline: c.Deadline, Cost: cost,
		Continuation: c.Continuation, Exempt: true, Value: w}
	p.Push(it)
	s.pumpPoolLocked(c.Pool, p)
	s.mu.Unlock()
	select {
	case <-w.ready:
	case <-ctx.Done():
		s.mu.Lock()
		if p.Remove(it) {
			s.pumpLocked()
			s.mu.Unlock()
			return Seat{}, ctx.Err()
		}
		s.mu.Unlock()
		<-w.ready // granted meanwhile: take it, the caller releases
	}
	started := s.opts.Now()
	s.metrics.wait.WithLabelValues("g2", c.Class.String(), c.Flow).Observe(started.Sub(w.since).Seconds())
	c.yields = w.yields
	return s.seat(p, c, started), nil
}

func (s *Scheduler) seat(p *Queue, c Call, started time.Time) Seat {
	return Seat{Release: s.releaser(p, c, started), Yield: c.yields}
}

func (s *Scheduler) seatedLocked(c Call, n int) {
	k := seatKey{c.Pool, c.Flow, c.Class}
	if s.seatsInUse[k] += n; s.seatsInUse[k] == 0 {
		delete(s.seatsInUse, k)
	}
}

func (s *Scheduler) releaser(p *Queue, c Call, started time.Time) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			took := s.opts.Now().Sub(started)
			if s.opts.Learn != nil {
				s.opts.Learn(c.Function, took)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if cur := s.callCost[c.Pool]; cur == 0 {
				s.callCost[c.Pool] = took
			} else {
				s.callCost[c.Pool] = cur + (took-cur)/16
			}
			ch := c.Chain
			if ch != nil && !ch.ended && c.Site != "" {
				ch.last, ch.lastPool, ch.lastEnded = c.Site, c.Pool, started.Add(took)
			}
			if ch != nil && !ch.ended && ch.parked == nil && !s.opts.NoContinuations {
				if hold := s.holdLocked(p, c); hold > 0 {
					pk := &parkedSeat{pool: p, call: c}
					pk.timer = time.AfterFunc(hold, func() {
						s.mu.Lock()
						defer s.mu.Unlock()
						if ch.parked == pk {
							s.unparkLocked(ch)
						}
					})
					ch.parked = pk
					return
				}
			}
			s.freeSeatLocked(p, c)
		})
	}
}

// freeSeatLocked gives a seat back to its pool, which seats the next
// queued call.
func (s *Scheduler) freeSeatLocked(p *Queue, c Call) {
	p.Done(c.Class)
	p.MarkYielding(c.yields, -1)
	s.seatedLocked(c, -1)
	s.pumpPoolLocked(c.Pool, p)
}

// pumpPoolLocked seats queued calls while seats are free, then lets G1
// admit if the backlog went down.
func (s *Scheduler) pumpPoolLocked(name string, p *Queue) {
	for {
		it := p.Next(nil)
		if it == nil {
			break
		}
		s.seatedLocked(Call{Pool: name, Flow: it.Flow, Class: it.Class}, 1)
		w := it.Value.(*waiter)
		w.yields = s.seatYieldsLocked(p, name, it.Class, s.opts.Now())
		w.ready <- struct{}{}
	}
	s.pumpLocked()
}

// Status is the state of the gates, for GET /v1/qos and `baton qos status`.
type Status struct {
	Enabled   bool          `json:"enabled"`
	Ablations []string      `json:"ablations,omitempty"`
	Admission GateStatus    `json:"admission"`
	Pools     []PoolStatus  `json:"pools"`
	Rejected  []RejectCount `json:"rejections,omitempty"`
	// BacklogTarget: see Options.
	BacklogTarget int `json:"backlogTarget"`
}

// GateStatus is G1's queues.
type GateStatus struct {
	Queued  []FlowCount `json:"queued,omitempty"`
	Pending int         `json:"pending"`
}

// PoolStatus is one G2 pool.
type PoolStatus struct {
	Pool  string `json:"pool"`
	Seats int    `json:"seats"`
	// Yielding is the seats held by calls computing at a lower
	// operating-system priority (Seat.Yield).
	Yielding int         `json:"yielding,omitempty"`
	InUse    []FlowCount `json:"inUse,omitempty"`
	Queued   []FlowCount `json:"queued,omitempty"`
}

// FlowCount is a count for one class and namespace.
type FlowCount struct {
	Class     string `json:"class"`
	Namespace string `json:"namespace"`
	Count     int    `json:"count"`
}

// RejectCount counts the rejections of one class, namespace and reason.
type RejectCount struct {
	FlowCount
	Reason Reason `json:"reason"`
}

// Status returns the gates' state now.
func (s *Scheduler) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Enabled: true, BacklogTarget: s.opts.BacklogTarget}
	for name, on := range map[string]bool{"no-edf": s.opts.NoEDF, "no-continuations": s.opts.NoContinuations,
		"no-admission": s.opts.NoAdmission, "no-cpu-priority": s.opts.NoCPUPriority} {
		if on {
			st.Ablations = append(st.Ablations, name)
		}
	}
	sort.Strings(st.Ablations)
	st.Admission.Queued = depths(s.g1)
	for _, n := range s.pending {
		st.Admission.Pending += n
	}
	names := make([]string, 0, len(s.pools))
	for name := range s.pools {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := s.pools[name]
		ps := PoolStatus{Pool: name, Seats: p.Discipline().Seats, Yielding: p.yielding, Queued: depths(p)}
		for k, n := range s.seatsInUse {
			if k.pool == name {
				ps.InUse = append(ps.InUse, FlowCount{k.class.String(), k.flow, n})
			}
		}
		sortCounts(ps.InUse)
		st.Pools = append(st.Pools, ps)
	}
	s.rmu.Lock()
	for k, n := range s.rejections {
		st.Rejected = append(st.Rejected, RejectCount{FlowCount{k.class.String(), k.flow, int(n)}, k.reason})
	}
	s.rmu.Unlock()
	sort.Slice(st.Rejected, func(i, j int) bool {
		a, b := st.Rejected[i], st.Rejected[j]
		if a.Class != b.Class || a.Namespace != b.Namespace {
			return a.Class+"/"+a.Namespace < b.Class+"/"+b.Namespace
		}
		return a.Reason < b.Reason
	})
	return st
}

func depths(q *Queue) []FlowCount {
	var out []FlowCount
	for _, k := range Classes() {
		for ns, n := range q.FlowDepths(k) {
			out = append(out, FlowCount{k.String(), ns, n})
		}
	}
	sortCounts(out)
	return out
}

func sortCounts(c []FlowCount) {
	sort.Slice(c, func(i, j int) bool {
		if c[i].Class != c[j].Class {
			return c[i].Class < c[j].Class
		}
		return c[i].Namespace < c[j].Namespace
	})
}
