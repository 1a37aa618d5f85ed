package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/store"
)

// DefaultSchedulePoll is how often the scheduler looks at the store when
// no run is due sooner; other engines sharing the store may have changed
// schedules meanwhile.
const DefaultSchedulePoll = time.Second

// scheduledIDSpace scopes the name-based UUIDs of scheduled invocations.
var scheduledIDSpace = uuid.MustParse("3e8b7c1d-52a4-4f09-b6d3-9c0e1a7f2d64")

// scheduledID is the invocation id of the run of a workflow version due at
// a given time. Being derived from the slot, it makes starting a run
// idempotent: an engine that crashed after starting it, or a replica that
// lost the race, gets a conflict instead of a second run.
func scheduledID(namespace, name, version string, due time.Time) string {
	return uuid.NewSHA1(scheduledIDSpace, []byte(fmt.Sprintf("%s/%s/%s/%d", namespace, name, version, due.UnixNano()))).String()
}

// scheduler starts the runs of scheduled workflows. Its state is the
// store's schedules table: each version's next due time, advanced with a
// conditional update after the run is started. A restarted engine
// therefore finds every due run where it was left, and engines sharing a
// PostgreSQL store can all run a scheduler: the first to start a slot's
// invocation wins, the others get a conflict on its id.
//
// Missed runs (the engine was down) are not made up one by one: the
// earliest missed slot runs at once, and the schedule continues with the
// first slot after now.
type scheduler struct {
	e    *Engine
	poll time.Duration
	wake chan struct{}
	done chan struct{}
	// mu serialises syncs of one engine, so that two applies of the same
	// workflow do not both create and delete.
	mu sync.Mutex
}

func newScheduler(e *Engine, poll time.Duration) *scheduler {
	if poll <= 0 {
		poll = DefaultSchedulePoll
	}
	return &scheduler{e: e, poll: poll, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// kick makes the loop look at the schedules now.
func (s *scheduler) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *scheduler) run(ctx context.Context) {
	defer close(s.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.wake:
		}
		wait := s.tick(ctx)
		if wait > s.poll {
			wait = s.poll
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// tick starts every due run and returns how long until the next is due.
func (s *scheduler) tick(ctx context.Context) time.Duration {
	schedules, err := s.e.store.ListSchedules(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.e.log.Error("scheduler: cannot list schedules", "err", err)
		}
		return s.poll
	}
	wait := s.poll
	keys := make([]string, len(schedules))
	for i, sc := range schedules {
		keys[i] = sc.Namespace + "/" + sc.Name + "/" + sc.Version
	}
	mine := s.e.ownedSources(sourceSchedule, keys)
	for i, sc := range schedules {
		if ctx.Err() != nil {
			return wait
		}
		if !mine[keys[i]] {
			continue // another replica's
		}
		next, err := s.step(ctx, sc)
		if err != nil {
			if ctx.Err() == nil {
				s.e.log.Error("scheduler: cannot advance schedule", "workflow", sc.Namespace+"/"+sc.Name, "version", sc.Version, "err", err)
			}
			continue
		}
		if !next.IsZero() {
			if d := time.Until(next); d < wait {
				wait = max(d, 0)
			}
		}
	}
	return wait
}

// step handles one schedule: starts its run when due, or gives an `after`
// schedule its next due time once its last run has ended. It returns the
// schedule's next due time (zero for none known).
func (s *scheduler) step(ctx context.Context, sc *store.Schedule) (time.Time, error) {
	e := s.e
	def, err := e.definition(ctx, sc.Namespace, sc.Name, sc.Version)
	if errors.Is(err, store.ErrNotFound) {
		// The version was deleted (by another engine, perhaps).
		return time.Time{}, e.store.DeleteSchedules(ctx, sc.Namespace, sc.Name, sc.Version)
	}
	if err != nil {
		return time.Time{}, err
	}
	plan, err := planOf(def)
	if err != nil || plan == nil {
		if err != nil {
			e.log.Error("scheduler: dropping an unusable schedule", "workflow", sc.Namespace+"/"+sc.Name, "version", sc.Version, "err", err)
		}
		return time.Time{}, e.store.DeleteSchedules(ctx, sc.Namespace, sc.Name, sc.Version)
	}
	now := time.Now().UTC()
	if sc.NextRun.IsZero() {
		return s.afterLastRun(ctx, sc, plan, now)
	}
	if sc.NextRun.After(now) {
		return sc.NextRun, nil
	}
	due := sc.NextRun
	id := scheduledID(sc.Namespace, sc.Name, sc.Version, due)
	_, err = e.start(ctx, id, "", sc.Namespace, sc.Name, sc.Version, nil)
	switch {
	case err == nil:
		e.metrics.observeTimerLag(due)
		e.log.Info("scheduled run started", "workflow", sc.Namespace+"/"+sc.Name, "version", sc.Version, "invocation", id, "due", due)
	case errors.Is(err, store.ErrConflict):
		// Started before: by this engine before a crash, or by another.
	case ctx.Err() != nil:
		return time.Time{}, err
	default:
		// A run that cannot start (a secret is missing, say) is skipped,
		// not retried in a loop; the next slot tries again.
		e.log.Error("scheduled run cannot start; skipping it", "workflow", sc.Namespace+"/"+sc.Name, "version", sc.Version, "due", due, "err", err)
	}
	advanced := *sc
	advanced.NextRun = plan.after(due, now)
	advanced.LastRun, advanced.LastInvocation = due, id
	if _, err := e.store.AdvanceSchedule(ctx, &advanced, due); err != nil {
		return time.Time{}, err
	}
	return advanced.NextRun, nil
}

// afterLastRun gives an `after` schedule whose run has ended its next due
// time: that long after the run's end.
func (s *scheduler) afterLastRun(ctx context.Context, sc *store.Schedule, plan *schedulePlan, now time.Time) (time.Time, error) {
	if plan.delay == 0 || sc.LastInvocation == "" {
		return time.Time{}, nil
	}
	inv, err := s.e.GetInvocation(ctx, sc.LastInvocation)
	var ended time.Time
	switch {
	case errors.Is(err, store.ErrNotFound):
		// The run never got its row (it could not start): carry on.
		ended = now
	case err != nil:
		return time.Time{}, err
	case inv.Status == core.StatusRunning:
		return time.Time{}, nil
	default:
		ended = inv.EndedAt
		if ended.IsZero() {
			ended = now
		}
	}
	advanced := *sc
	advanced.NextRun = ended.Add(plan.delay).UTC()
	if _, err := s.e.store.AdvanceSchedule(ctx, &advanced, time.Time{}); err != nil {
		return time.Time{}, err
	}
	return advanced.NextRun, nil
}

// schedulePlan is a workflow's `schedule` in the form the scheduler uses.
type schedulePlan struct {
	every time.Duration
	cron  *cronSpec
	delay time.Duration // `after`
}

// planOf reads def's schedule; nil when it has none the scheduler runs
// (`schedule.on` starts workflows on events, not on time).
func planOf(def *dsl.Workflow) (*schedulePlan, error) {
	sc := def.Schedule
	if sc == nil {
		return nil, nil
	}
	switch {
	case sc.Every != nil:
		if sc.Every.D <= 0 {
			return nil, fmt.Errorf("schedule.every must be a positive duration")
		}
		return &schedulePlan{every: sc.Every.D}, nil
	case sc.Cron != "":
		spec, err := parseCron(sc.Cron)
		if err != nil {
			return nil, err
		}
		if spec.next(time.Now()).IsZero() {
			return nil, fmt.Errorf("cron expression %q never matches", sc.Cron)
		}
		return &schedulePlan{cron: spec}, nil
	case sc.After != nil:
		if sc.After.D < 0 {
			return nil, fmt.Errorf("schedule.after must not be negative")
		}
		return &schedulePlan{delay: sc.After.D}, nil
	}
	return nil, nil
}

// first is the first due time of a schedule created at now: one period
// on for `every`, the next matching minute for `cron`, at once for
// `after` (whose period starts when a run ends).
func (p *schedulePlan) first(now time.Time) time.Time {
	switch {
	case p.every > 0:
		return now.Add(p.every)
	case p.cron != nil:
		return p.cron.next(now)
	}
	return now
}

// after is the due time that follows the run due at due, seen at now:
// missed slots are skipped, so the result is in the future (or zero for an
// `after` schedule, which waits for the run to end).
func (p *schedulePlan) after(due, now time.Time) time.Time {
	switch {
	case p.every > 0:
		next := due.Add(p.every)
		if !next.After(now) {
			missed := now.Sub(due)/p.every + 1
			next = due.Add(missed * p.every)
		}
		return next
	case p.cron != nil:
		return p.cron.next(now)
	}
	return time.Time{}
}

// syncSchedule makes the store's schedules of a workflow follow its newest
// version: that version's schedule is created if it has one (an existing
// row keeps its state, so applying the same document again changes
// nothing), and every other version's schedule is removed.
func (e *Engine) syncSchedule(ctx context.Context, namespace, name string) error {
	if e.sched != nil {
		e.sched.mu.Lock()
		defer e.sched.mu.Unlock()
	}
	all, err := e.store.ListSchedules(ctx)
	if err != nil {
		return err
	}
	newest, err := e.store.GetWorkflow(ctx, namespace, name, "")
	if errors.Is(err, store.ErrNotFound) {
		return e.store.DeleteSchedules(ctx, namespace, name, "")
	}
	if err != nil {
		return err
	}
	def, err := e.definition(ctx, newest.Namespace, newest.Name, newest.Version)
	if err != nil {
		return err
	}
	plan, err := planOf(def)
	if err != nil {
		return err
	}
	has := false
	for _, sc := range all {
		if sc.Namespace != namespace || sc.Name != name {
			continue
		}
		if sc.Version == newest.Version && plan != nil {
			has = true
			continue
		}
		if err := e.store.DeleteSchedules(ctx, namespace, name, sc.Version); err != nil {
			return err
		}
	}
	if plan != nil && !has {
		now := time.Now().UTC()
		err := e.store.CreateSchedule(ctx, &store.Schedule{
			Namespace: namespace, Name: name, Version: newest.Version,
			NextRun: plan.first(now), CreatedAt: now,
		})
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	if e.sched != nil {
		e.sched.kick()
	}
	return nil
}
