package engine

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
)

// recovery resumes running invocations in the background, so that an
// engine with a large backlog serves its API at once. Both ways an
// engine comes to run invocations it did not start go through it: the
// store's running invocations at Start, and the invocations of the
// partitions a replica acquires (takeovers included).
//
// Jobs are taken by a few workers in order of urgency: invocations whose
// timer is due first (a timer due in the past is late already), then
// those waiting on calls, in start order, then those whose timers lie in
// the future, by deadline. Only the histories being replayed are in memory
// at any moment. An invocation someone asks about (Wait, Cancel, a
// subflow's parent) is resumed on demand, ahead of the queue.
//
// An invocation is queued, being resumed (active), or live, never two of
// them: recovery.mu is taken before Engine.mu wherever both are held, and
// a job leaves active only once its instance is live, so no check finds
// it in none of the three while it is in flight, and none resumes it twice.
type recovery struct {
	e       *Engine
	workers int

	mu     sync.Mutex
	queue  resumeQueue
	queued map[string]*resumeJob
	active map[string]*activeJob
	// listing is open while the store's running invocations are being
	// listed at Start: an invocation asked about meanwhile may be one of
	// them, so the store is consulted.
	listing bool
	wake    chan struct{}

	total   atomic.Int64 // jobs taken in since Start
	resumed atomic.Int64 // invocations made live by a job
	skipped atomic.Int64 // jobs found ended, moved away or already live
	failed  atomic.Int64
	began   atomic.Int64 // unix nanoseconds of the first job
	lastAt  atomic.Int64 // unix nanoseconds of the last job done
	logged  atomic.Bool  // the backlog's end has been logged
	// progressAt is when progress was last logged (unix nanoseconds).
	progressAt atomic.Int64
}

// progressEvery is how often a long resumption logs how far it has come.
const progressEvery = 5 * time.Second

// activeJob is a job being resumed; done is closed when it is over.
type activeJob struct {
	job  *resumeJob
	done chan struct{}
}

// resumeJob is one invocation to resume, under a fence on a replica.
type resumeJob struct {
	inv   *store.Invocation
	fence *store.Fence
	// due orders the queue: the earliest pending timer's deadline, or
	// when the invocation was listed.
	due   time.Time
	index int
}

type resumeQueue []*resumeJob

func (q resumeQueue) Len() int { return len(q) }
func (q resumeQueue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	if !q[i].inv.StartedAt.Equal(q[j].inv.StartedAt) {
		return q[i].inv.StartedAt.Before(q[j].inv.StartedAt)
	}
	return q[i].inv.ID < q[j].inv.ID
}
func (q resumeQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *resumeQueue) Push(x any) {
	job := x.(*resumeJob)
	job.index = len(*q)
	*q = append(*q, job)
}
func (q *resumeQueue) Pop() any {
	old := *q
	n := len(old)
	job := old[n-1]
	old[n-1] = nil
	*q = old[:n-1]
	job.index = -1
	return job
}

// RecoveryStatus reports the resumption of the invocations an engine
// took over: at Start, or with partitions acquired.
type RecoveryStatus struct {
	// Queued invocations wait to be resumed; Active are being resumed.
	Queued int `json:"queued"`
	Active int `json:"active"`
	// Total counts the invocations taken in for resumption, Resumed
	// those made live, Skipped those found ended, taken elsewhere or live
	// already, Failed those whose history could not be replayed.
	Total   int64 `json:"total"`
	Resumed int64 `json:"resumed"`
	Skipped int64 `json:"skipped"`
	Failed  int64 `json:"failed"`
	// Listing is true while the store's running invocations are listed.
	Listing bool `json:"listing"`
	// Rate is invocations resumed per second from the first job to the
	// last one done.
	Rate float64 `json:"rate"`
}

func newRecovery(e *Engine) *recovery {
	// Replay is CPU work and reading a history a short query: two
	// workers per core keep both busy without starving the API; more
	// would only contend for the store's read connections.
	return &recovery{
		e:       e,
		workers: min(8, max(2, 2*runtime.GOMAXPROCS(0))),
		queued:  map[string]*resumeJob{},
		active:  map[string]*activeJob{},
		wake:    make(chan struct{}, 1),
	}
}

// RecoveryStatus reports how far the resumption of running invocations
// has come.
func (e *Engine) RecoveryStatus() RecoveryStatus {
	r := e.recovery
	r.mu.Lock()
	s := RecoveryStatus{Queued: len(r.queued), Active: len(r.active), Listing: r.listing}
	r.mu.Unlock()
	s.Total, s.Resumed, s.Skipped, s.Failed = r.total.Load(), r.resumed.Load(), r.skipped.Load(), r.failed.Load()
	if began, last := r.began.Load(), r.lastAt.Load(); began > 0 && last > began {
		s.Rate = float64(s.Resumed) / time.Duration(last-began).Seconds()
	}
	return s
}

// start runs the workers until the engine closes.
func (r *recovery) start() {
	for range r.workers {
		r.e.calls.Add(1)
		go func() {
			defer r.e.calls.Done()
			r.work()
		}()
	}
}

// listRunning takes in the store's running invocations, in the background
// of Start; it retries while the store fails.
func (r *recovery) listRunning(ctx context.Context) {
	defer func() {
		r.mu.Lock()
		r.listing = false
		r.mu.Unlock()
	}()
	began := time.Now()
	var running []*store.Invocation
	for {
		var err error
		if running, err = r.e.store.RunningInvocations(ctx); err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		r.e.log.Error("cannot list running invocations to resume them; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	// The deadlines are read first: the queue's order must be right from
	// the first job, or the late timers wait behind the whole backlog.
	due := r.pendingTimers(ctx)
	jobs := make([]*resumeJob, len(running))
	for i, inv := range running {
		jobs[i] = &resumeJob{inv: inv, due: due[inv.ID]}
	}
	n := r.add(jobs)
	if n > 0 {
		r.e.log.Info("resuming running invocations in the background", "count", n, "timers", len(due), "listed", time.Since(began))
	}
}

// pendingTimers returns the earliest pending timer of each running
// invocation, when the store can tell them without the histories.
func (r *recovery) pendingTimers(ctx context.Context) map[string]time.Time {
	ts, ok := r.e.store.(store.PendingTimers)
	if !ok {
		return nil
	}
	timers, err := ts.PendingTimers(ctx)
	if err != nil && ctx.Err() == nil {
		r.e.log.Warn("cannot read pending timers; resuming in start order", "err", err)
	}
	return timers
}

// add queues invocations to resume, leaving out those queued, being
// resumed or live already, and returns how many it queued.
func (r *recovery) add(jobs []*resumeJob) int {
	now := time.Now()
	r.mu.Lock()
	n := 0
	for _, job := range jobs {
		id := job.inv.ID
		if r.queued[id] != nil || r.active[id] != nil || r.e.isLive(id) {
			continue
		}
		if job.due.IsZero() {
			job.due = now
		}
		r.queued[id] = job
		heap.Push(&r.queue, job)
		n++
	}
	r.mu.Unlock()
	if n > 0 {
		r.total.Add(int64(n))
		r.logged.Store(false)
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	return n
}

// dropPartition forgets the queued invocations of a partition that is no
// longer owned here; its next owner resumes them.
func (r *recovery) dropPartition(p int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, job := range r.queued {
		if job.fence != nil && job.fence.Partition == p {
			heap.Remove(&r.queue, job.index)
			delete(r.queued, id)
			r.skipped.Add(1)
		}
	}
}

func (r *recovery) work() {
	ctx := r.e.ctx
	for {
		r.mu.Lock()
		var job *resumeJob
		if r.queue.Len() > 0 && !r.e.drain.draining.Load() {
			job = heap.Pop(&r.queue).(*resumeJob)
			delete(r.queued, job.inv.ID)
			r.active[job.inv.ID] = &activeJob{job: job, done: make(chan struct{})}
		}
		r.mu.Unlock()
		if job == nil {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
				continue
			}
		}
		// Another worker may be idle while jobs remain.
		select {
		case r.wake <- struct{}{}:
		default:
		}
		r.run(ctx, job)
	}
}

// run resumes a job that has been moved to active, and ends it.
func (r *recovery) run(ctx context.Context, job *resumeJob) {
	r.began.CompareAndSwap(0, time.Now().UnixNano())
	resumed, err := r.e.resume(ctx, job.inv, job.fence)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			// One broken invocation must not keep the others down.
			r.failed.Add(1)
			r.e.log.Error("cannot resume invocation", "invocation", job.inv.ID, "err", err)
		}
	case resumed:
		r.resumed.Add(1)
	default:
		r.skipped.Add(1)
	}
	r.lastAt.Store(time.Now().UnixNano())
	r.mu.Lock()
	close(r.active[job.inv.ID].done)
	delete(r.active, job.inv.ID)
	idle := len(r.queued) == 0 && len(r.active) == 0 && !r.listing
	r.mu.Unlock()
	now := time.Now().UnixNano()
	if last := r.progressAt.Load(); !idle && now-max(last, r.began.Load()) >= int64(progressEvery) && r.progressAt.CompareAndSwap(last, now) {
		s := r.e.RecoveryStatus()
		r.e.log.Info("resuming running invocations", "resumed", s.Resumed, "queued", s.Queued, "perSecond", int(s.Rate))
	}
	if idle && ctx.Err() == nil && r.logged.CompareAndSwap(false, true) {
		s := r.e.RecoveryStatus()
		r.e.log.Info("resumed running invocations", "resumed", s.Resumed, "skipped", s.Skipped, "failed", s.Failed,
			"perSecond", int(s.Rate), "took", time.Duration(r.lastAt.Load()-r.began.Load()))
	}
}

// pendingChildren returns the invocations queued or being resumed whose
// parent is parent.
func (r *recovery) pendingChildren(parent string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id, job := range r.queued {
		if job.inv.Parent == parent {
			out = append(out, id)
		}
	}
	for id, a := range r.active {
		if a.job.inv.Parent == parent {
			out = append(out, id)
		}
	}
	return out
}

// ensure makes sure that an invocation queued or being resumed is live
// before the caller looks for it: a queued one is resumed now, in the
// caller's goroutine. While the store's running invocations are still
// being listed, one found running in the store is resumed too (single
// engine only: a replica learns its invocations from its partitions).
func (r *recovery) ensure(ctx context.Context, id string) {
	for {
		r.mu.Lock()
		if job := r.queued[id]; job != nil {
			heap.Remove(&r.queue, job.index)
			delete(r.queued, id)
			r.active[id] = &activeJob{job: job, done: make(chan struct{})}
			r.mu.Unlock()
			r.run(r.e.ctx, job)
			return
		}
		if a := r.active[id]; a != nil {
			r.mu.Unlock()
			select {
			case <-a.done:
			case <-ctx.Done():
			}
			return
		}
		listing := r.listing
		r.mu.Unlock()
		if !listing || r.e.cluster != nil || r.e.isLive(id) {
			return
		}
		inv, err := r.e.store.GetInvocation(ctx, id)
		if err != nil || inv.Status != core.StatusRunning || !inv.Durable {
			return
		}
		// Queued here, unless the listing or another caller got there
		// first; then the loop takes it from where it is.
		r.add([]*resumeJob{{inv: inv}})
	}
}

// resume replays an invocation's history into a live instance. It reports
// false, without error, when there was nothing to resume: the invocation
// has ended meanwhile (its history is complete), it is live already, or
// its partition is no longer owned here under the job's fence.
func (e *Engine) resume(ctx context.Context, inv *store.Invocation, fence *store.Fence) (bool, error) {
	if fence != nil && !e.cluster.current(*fence) {
		return false, nil
	}
	if e.isLive(inv.ID) {
		return false, nil
	}
	def, err := e.definition(ctx, inv.Namespace, inv.Workflow, inv.Version)
	if err != nil {
		return false, err
	}
	history, err := e.store.History(ctx, inv.ID)
	if err != nil {
		return false, err
	}
	if n := len(history); n > 0 && history[n-1].Terminal() {
		// Ended after it was listed: listed as running, it was resumed
		// and has finished since.
		return false, nil
	}
	secrets, err := e.loadSecrets(ctx, def, false)
	if err != nil {
		return false, err
	}
	eff, err := e.policyFor(ctx, inv.Namespace)
	if err != nil {
		return false, err
	}
	var startInfo map[string]any
	if len(history) > 0 && history[0].Type == core.InvocationStarted {
		startInfo = history[0].Info
	}
	in := e.newInstance(inv, def, secrets, eff.Limits, startInfo)
	in.fence = fence
	in.qos = e.resumedQoS(def, eff, inv.Namespace)
	e.mu.Lock()
	if e.live[inv.ID] != nil {
		e.mu.Unlock()
		return false, nil
	}
	e.live[inv.ID] = in
	e.running[inv.Namespace]++
	e.mu.Unlock()
	if fence != nil && !e.cluster.current(*fence) {
		// The partition was lost while the history was read: whatever
		// stopped its instances did not see this one.
		in.stop()
		in.forget()
		e.invocationEnded(inv.ID)
		return false, nil
	}
	if err := in.replay(history); err != nil {
		in.stop()
		in.forget()
		e.invocationEnded(inv.ID)
		return false, err
	}
	return true, nil
}

// AwaitRecovery waits until no invocation is listed, queued or being
// resumed, or ctx ends (or the engine closes).
func (e *Engine) AwaitRecovery(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s := e.RecoveryStatus()
		if !s.Listing && s.Queued == 0 && s.Active == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("resuming invocations: %w", ctx.Err())
		case <-e.ctx.Done():
			return errors.New("engine: closed before its invocations were resumed")
		case <-tick.C:
		}
	}
}
