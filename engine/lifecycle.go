package engine

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// The DSL's lifecycle CloudEvent types that Baton produces.
const (
	EventWorkflowStarted   = "io.serverlessworkflow.workflow.started.v1"
	EventWorkflowCompleted = "io.serverlessworkflow.workflow.completed.v1"
	EventWorkflowFaulted   = "io.serverlessworkflow.workflow.faulted.v1"
	EventWorkflowCancelled = "io.serverlessworkflow.workflow.cancelled.v1"
	EventTaskStarted       = "io.serverlessworkflow.task.started.v1"
	EventTaskCompleted     = "io.serverlessworkflow.task.completed.v1"
	EventTaskFaulted       = "io.serverlessworkflow.task.faulted.v1"
	EventTaskCancelled     = "io.serverlessworkflow.task.cancelled.v1"
)

// lifecycleIDSpace scopes the name-based UUIDs of lifecycle events: the
// n-th lifecycle event of an invocation has the same id whether it was
// published live or rebuilt from history, so consumers can deduplicate.
var lifecycleIDSpace = uuid.MustParse("0c1f6a3e-7b52-4d8e-9f41-6e2d8a5b3c70")

// lifecycle derives an invocation's lifecycle CloudEvents from the machine's
// task transitions and the history's first and last events. Nothing is
// written for them: they are a pure function of the history, so the live
// engine publishes them as they happen and LifecycleEvents rebuilds them
// by replaying the history through a machine. It is used from the
// invocation's draining goroutine only.
type lifecycle struct {
	id, namespace, name, version string
	// emit receives each event; nil while replaying a history that was
	// published before, when events are only counted so that the ids of
	// the next ones continue the sequence.
	emit  func(event map[string]any)
	count int
	open  map[string]string // activation key → task pointer, of started tasks that have not ended
	order []string          // keys of open in start order, for a deterministic end
}

func newLifecycle(inv *store.Invocation, emit func(map[string]any)) *lifecycle {
	return &lifecycle{
		id: inv.ID, namespace: inv.Namespace, name: inv.Workflow, version: inv.Version,
		emit: emit, open: map[string]string{},
	}
}

// qualifiedName is the DSL's qualified name of a workflow instance:
// name-id.namespace.
func (l *lifecycle) qualifiedName() string { return l.name + "-" + l.id + "." + l.namespace }

func (l *lifecycle) event(typ string, at time.Time, subject string, data map[string]any) {
	l.count++
	if l.emit == nil {
		return
	}
	ev := map[string]any{
		"specversion":     "1.0",
		"id":              uuid.NewSHA1(lifecycleIDSpace, []byte(l.id+"/"+strconv.Itoa(l.count))).String(),
		"source":          "/v1/invocations/" + l.id,
		"type":            typ,
		"time":            at.UTC().Format(time.RFC3339Nano),
		"datacontenttype": "application/json",
		"data":            data,
	}
	if subject != "" {
		ev["subject"] = subject
	}
	l.emit(ev)
}

func stamp(at time.Time) string { return at.UTC().Format(time.RFC3339Nano) }

func (l *lifecycle) workflowStarted(at time.Time) {
	l.event(EventWorkflowStarted, at, "", map[string]any{
		"name": l.qualifiedName(),
		"definition": map[string]any{
			"namespace": l.namespace, "name": l.name, "version": l.version,
		},
		"startedAt": stamp(at),
	})
}

// TaskStarted implements core.Observer.
func (l *lifecycle) TaskStarted(key, ref, _ string, at time.Time) {
	if _, dup := l.open[key]; !dup {
		l.order = append(l.order, key)
	}
	l.open[key] = ref
	l.event(EventTaskStarted, at, key, map[string]any{
		"workflow": l.qualifiedName(), "task": ref, "startedAt": stamp(at),
	})
}

// TaskEnded implements core.Observer.
func (l *lifecycle) TaskEnded(key, ref, _ string, at time.Time, err *problem.Problem) {
	delete(l.open, key)
	if err != nil {
		l.event(EventTaskFaulted, at, key, map[string]any{
			"workflow": l.qualifiedName(), "task": ref, "faultedAt": stamp(at), "error": problemData(err),
		})
		return
	}
	l.event(EventTaskCompleted, at, key, map[string]any{
		"workflow": l.qualifiedName(), "task": ref, "completedAt": stamp(at),
	})
}

// workflowEnded takes in the terminal history event. Tasks that never
// ended (those a cancellation, a timeout or a lost race cut short) are
// reported cancelled first, innermost last started first.
func (l *lifecycle) workflowEnded(ev *core.Event) {
	at := ev.Time
	for i := len(l.order) - 1; i >= 0; i-- {
		key := l.order[i]
		ref, open := l.open[key]
		if !open {
			continue
		}
		delete(l.open, key)
		l.event(EventTaskCancelled, at, key, map[string]any{
			"workflow": l.qualifiedName(), "task": ref, "cancelledAt": stamp(at),
		})
	}
	l.order = nil
	switch ev.Type {
	case core.InvocationCompleted:
		data := map[string]any{"name": l.qualifiedName(), "completedAt": stamp(at)}
		if ev.Output != nil {
			data["output"] = ev.Output
		}
		l.event(EventWorkflowCompleted, at, "", data)
	case core.InvocationCancelled:
		data := map[string]any{"name": l.qualifiedName(), "cancelledAt": stamp(at)}
		if ev.Error != nil {
			// Beyond the spec's fields: its detail holds the reason given.
			data["error"] = problemData(ev.Error)
		}
		l.event(EventWorkflowCancelled, at, "", data)
	default:
		data := map[string]any{"name": l.qualifiedName(), "faultedAt": stamp(at)}
		if ev.Error != nil {
			data["error"] = problemData(ev.Error)
		}
		l.event(EventWorkflowFaulted, at, "", data)
	}
}

// compact drops the bookkeeping of tasks that ended, which order keeps
// until the workflow ends; called as the list grows, it keeps a long loop
// from holding every iteration's key.
func (l *lifecycle) compact() {
	if len(l.order) < 64 || len(l.order) < 2*len(l.open) {
		return
	}
	kept := l.order[:0]
	for _, key := range l.order {
		if _, open := l.open[key]; open {
			kept = append(kept, key)
		}
	}
	l.order = kept
}

func problemData(p *problem.Problem) map[string]any {
	out := map[string]any{"type": p.Type, "status": float64(p.Status)}
	if p.Title != "" {
		out["title"] = p.Title
	}
	if p.Detail != "" {
		out["detail"] = p.Detail
	}
	if p.Instance != "" {
		out["instance"] = p.Instance
	}
	return out
}

// observers fans the machine's transitions out to several observers.
type observers []core.Observer

func (o observers) TaskStarted(key, ref, name string, at time.Time) {
	for _, x := range o {
		x.TaskStarted(key, ref, name, at)
	}
}

func (o observers) TaskEnded(key, ref, name string, at time.Time, err *problem.Problem) {
	for _, x := range o {
		x.TaskEnded(key, ref, name, at, err)
	}
}

// compactingLifecycle calls compact after each transition.
type compactingLifecycle struct{ *lifecycle }

func (c compactingLifecycle) TaskEnded(key, ref, name string, at time.Time, err *problem.Problem) {
	c.lifecycle.TaskEnded(key, ref, name, at, err)
	c.compact()
}

// instanceObserver returns the observer of a live instance's machine: the
// engine's TaskObserver and, when the engine publishes events, the
// instance's lifecycle.
func (e *Engine) instanceObserver(in *instance) core.Observer {
	list := observers{&taskRecorder{in: in}}
	if e.opts.Observer != nil {
		list = append(list, taskObserver{id: in.inv.ID, o: e.opts.Observer})
	}
	if e.publisher != nil {
		in.lifecycle = newLifecycle(&in.inv, e.publisher.enqueue)
		list = append(list, compactingLifecycle{in.lifecycle})
	}
	if in.trace != nil {
		list = append(list, in.trace)
	}
	if in.metrics != nil {
		list = append(list, &taskTimer{in: in, m: in.metrics.taskDuration, started: make(map[string]time.Time)})
	}
	if len(list) == 1 {
		return list[0]
	}
	return list
}

// taskRecorder writes a TaskEnded record for each task that ends without
// records of its own (set, switch, for, fork, do, try, wait, raise...), so
// that the history shows every task the machine ran. The record joins the
// inbox and so the batch of whatever the step records next (the next
// call's dispatch, a timer, the end): it never costs a commit of its own.
type taskRecorder struct {
	in *instance
	// started holds when running tasks started, to record the start of
	// those that end later.
	started map[string]time.Time
}

func (r *taskRecorder) TaskStarted(key, _, _ string, at time.Time) {
	if r.in.replaying {
		return
	}
	if r.started == nil {
		r.started = make(map[string]time.Time)
	}
	r.started[key] = at
}

func (r *taskRecorder) TaskEnded(key, ref, _ string, at time.Time, err *problem.Problem) {
	started, ok := r.started[key]
	delete(r.started, key)
	if _, call := r.in.callKeys[key]; call {
		delete(r.in.callKeys, key)
		return
	}
	if r.in.replaying {
		return
	}
	ev := core.Event{Type: core.TaskEnded, Task: key, Ref: ref, Time: at, Error: err}
	if ok && started.Before(at) {
		ev.Info = map[string]any{"startedAt": started.UTC().Format(time.RFC3339Nano)}
	}
	r.in.push(ev)
}

// replaying runs fn (the replay of a history that was published before)
// with publishing off; the events are counted so that ids carry on.
func (l *lifecycle) replaying(fn func()) {
	if l == nil {
		fn()
		return
	}
	emit := l.emit
	l.emit = nil
	defer func() { l.emit = emit }()
	fn()
}

// neverRan reports whether history is that of a deferred start whose
// deadline passed before it was admitted (see recordDeadlineMissed): its
// machine never ran, so it has workflow events only, where replaying it
// would have the machine start its first task.
func neverRan(history []core.Event) bool {
	return len(history) == 2 && history[1].Type == core.InvocationFaulted &&
		history[1].Error != nil && history[1].Error.Type == TypeDeadlineExceeded
}

// LifecycleEvents rebuilds the DSL lifecycle CloudEvents of an invocation
// from its history: the history is replayed through a fresh machine whose
// observer reports every task transition, in the order and with the times
// they had when the invocation ran. The events' ids are those that were
// published live. A non-durable invocation keeps only its first and last
// events, so only its workflow events can be rebuilt; a start that never
// ran has only those.
func (e *Engine) LifecycleEvents(ctx context.Context, id string) ([]map[string]any, error) {
	inv, err := e.GetInvocation(ctx, id)
	if err != nil {
		return nil, err
	}
	history, err := e.History(ctx, id)
	if err != nil {
		return nil, err
	}
	var events []map[string]any
	lc := newLifecycle(inv, func(ev map[string]any) { events = append(events, ev) })
	if len(history) == 0 {
		return events, nil
	}
	if !inv.Durable || neverRan(history) {
		for i := range history {
			switch ev := &history[i]; {
			case ev.Type == core.InvocationStarted:
				lc.workflowStarted(ev.Time)
			case ev.Terminal():
				lc.workflowEnded(ev)
			}
		}
		return events, nil
	}
	def, err := e.definition(ctx, inv.Namespace, inv.Workflow, inv.Version)
	if err != nil {
		return nil, fmt.Errorf("rebuilding lifecycle events of %s: %w", id, err)
	}
	secrets, err := e.loadSecrets(ctx, def, false)
	if err != nil {
		return nil, err
	}
	// The machine is rebuilt as the invocation's own was: with its
	// namespace's expression limits, so that expressions reach the same
	// verdicts.
	eff, err := e.policyFor(ctx, inv.Namespace)
	if err != nil {
		return nil, fmt.Errorf("rebuilding lifecycle events of %s: %w", id, err)
	}
	opts := core.Options{
		ID:        inv.ID,
		Secrets:   secrets,
		Runtime:   runtimeDescriptor(),
		Evaluator: e.evaluatorFor(eff.Limits),
		Observer:  lc,
	}
	m := core.New(def, opts)
	if history, err = core.Effective(def, opts, history); err != nil {
		return nil, fmt.Errorf("rebuilding lifecycle events of %s: %w", id, err)
	}
	for i := range history {
		ev := history[i]
		if ev.Type == core.InvocationStarted {
			lc.workflowStarted(ev.Time)
		}
		if ev.Terminal() {
			lc.workflowEnded(&ev)
			break
		}
		if err := m.Step(ev); err != nil {
			return nil, fmt.Errorf("rebuilding lifecycle events of %s: event %d: %w", id, ev.Seq, err)
		}
		m.Ready()
	}
	return events, nil
}

// runtimeDescriptor is $runtime.
func runtimeDescriptor() map[string]any {
	return map[string]any{"name": "baton", "version": Version, "metadata": map[string]any{}}
}

// publisher delivers lifecycle events to Options.Events in order, off the
// invocations' goroutines: a slow or failing event bus must not hold up
// workflows. Delivery is best effort (an event that cannot be published is
// logged and dropped); LifecycleEvents gives the complete, durable record.
type publisher struct {
	events EventPublisher
	log    interface {
		Warn(msg string, args ...any)
	}

	mu     sync.Mutex
	queue  []map[string]any
	wake   chan struct{}
	closed bool
	done   chan struct{}
}

// maxQueuedLifecycleEvents bounds the queue while the bus is slower than the
// workflows: past it, the oldest events are dropped (and logged).
const maxQueuedLifecycleEvents = 1 << 16

func newPublisher(events EventPublisher, log interface{ Warn(string, ...any) }) *publisher {
	p := &publisher{events: events, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *publisher) enqueue(ev map[string]any) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	if len(p.queue) >= maxQueuedLifecycleEvents {
		dropped := p.queue[0]
		p.queue = p.queue[1:]
		p.log.Warn("lifecycle event dropped: the event bus is not keeping up", "id", dropped["id"], "type", dropped["type"])
	}
	p.queue = append(p.queue, ev)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *publisher) run() {
	defer close(p.done)
	for {
		p.mu.Lock()
		batch := p.queue
		p.queue = nil
		closed := p.closed
		p.mu.Unlock()
		for _, ev := range batch {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := p.events.Publish(ctx, ev); err != nil {
				p.log.Warn("cannot publish lifecycle event", "id", ev["id"], "type", ev["type"], "err", err)
			}
			cancel()
		}
		if closed {
			return
		}
		if len(batch) == 0 {
			<-p.wake
		}
	}
}

// close publishes what is queued and stops.
func (p *publisher) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	<-p.done
}
