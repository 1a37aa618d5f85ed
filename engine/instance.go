package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/telemetry"
)

// instance is one live invocation: its machine and the I/O around it. It
// works as an actor: events arrive in an inbox from calls, timers and the
// API; whichever goroutine finds the inbox idle drains it, appending each
// batch to the history (one group-committed write), stepping the machine
// through it and then executing the commands the machine produced. A
// result therefore becomes durable before anything that depends on it runs.
type instance struct {
	e   *Engine
	def *dsl.Workflow
	m   *core.Machine
	// mopts are the machine's options, for rebuilding it (see redrive).
	mopts core.Options
	// secrets are the values of the workflow's use.secrets, loaded when
	// the instance was created; redact masks them in Baton's records.
	secrets map[string]any
	redact  *redactor
	// lifecycle publishes the invocation's lifecycle events; nil when the
	// engine has no event publisher.
	lifecycle *lifecycle

	mu       sync.Mutex
	inv      store.Invocation
	inbox    []core.Event
	draining bool
	stopped  bool // the engine is closing
	ended    bool // the terminal event has been taken in
	seq      int64
	calls    map[string]context.CancelFunc
	timers   map[string]*time.Timer
	memory   []core.Event // the history of a non-durable invocation
	done     chan struct{}
	// limits are the namespace's limits when the invocation started.
	limits policy.EffectiveLimits
	// full is set once a terminal event is queued (the invocation's own
	// end, or the fault of its history limit): nothing may follow it in
	// the history, so later events are dropped.
	full bool
	// halted is closed by stop: the invocation goes on elsewhere or
	// after a restart, not here.
	halted chan struct{}
	// fence is the lease its history is written under when the engine is
	// a cluster replica; nil otherwise.
	fence *store.Fence
	// parking is set while its partition is handed over: calls the
	// machine asks for are left to the next owner.
	parking bool
	// trace is the invocation's OpenTelemetry trace; nil when tracing is
	// off.
	trace *telemetry.Invocation
	// metrics are its workflow's metrics; nil without engine metrics.
	metrics *workflowMetrics
	// replaying is set while replay feeds the machine a stored history;
	// only the goroutine replaying reads it.
	replaying bool
	// callKeys are the calls handed out and not ended yet: their tasks
	// have their own records (TaskStarted, TaskCompleted...).
	callKeys map[string]struct{}
	// qos is its QoS classification; nil without QoS scheduling.
	qos *qosState
	// qosSite prefixes the G2 site of each of its calls (see seat): its
	// workflow's version, made once rather than per call.
	qosSite string
}

// openTrace opens the trace span of inv, whose start recorded info, from
// started. The engine's Tracer is set.
func (e *Engine) openTrace(inv *store.Invocation, info map[string]any, started time.Time) *telemetry.Invocation {
	return e.opts.Tracer.Open(info, telemetry.Attributes{
		ID: inv.ID, Namespace: inv.Namespace, Workflow: inv.Workflow, Version: inv.Version, Parent: inv.Parent,
	}, started)
}

// newInstance makes the live instance of an invocation; startInfo is the
// Info of its InvocationStarted event, which holds its trace identity.
func (e *Engine) newInstance(inv *store.Invocation, def *dsl.Workflow, secrets map[string]any, limits policy.EffectiveLimits,
	startInfo map[string]any) *instance {
	in := &instance{
		e:        e,
		limits:   limits,
		def:      def,
		secrets:  secrets,
		redact:   newRedactor(secrets),
		inv:      *inv,
		calls:    make(map[string]context.CancelFunc),
		timers:   make(map[string]*time.Timer),
		done:     make(chan struct{}),
		callKeys: make(map[string]struct{}),
		halted:   make(chan struct{}),
	}
	if e.opts.QoS != nil {
		in.qosSite = inv.Namespace + "/" + inv.Workflow + "@" + inv.Version + "#"
	}
	if e.opts.Tracer != nil {
		in.trace = e.openTrace(inv, startInfo, inv.StartedAt)
	}
	if e.metrics != nil {
		in.metrics = e.metrics.forWorkflow(inv.Namespace, inv.Workflow)
	}
	in.mopts = core.Options{
		ID:        inv.ID,
		Secrets:   secrets,
		Runtime:   runtimeDescriptor(),
		Evaluator: e.evaluatorFor(limits),
		JS:        e.js,
		Observer:  e.instanceObserver(in),
	}
	in.m = core.New(def, in.mopts)
	e.invocationStarted(inv.ID, def, inv.StartedAt)
	return in
}

type taskObserver struct {
	id string
	o  TaskObserver
}

func (t taskObserver) TaskStarted(key, ref, name string, at time.Time) {
	t.o.TaskStarted(t.id, key, ref, name, at)
}
func (t taskObserver) TaskEnded(key, ref, name string, at time.Time, err *problem.Problem) {
	t.o.TaskEnded(t.id, key, ref, name, at, err)
}

// begin takes in the InvocationStarted event, which the store already holds.
func (in *instance) begin(started core.Event) {
	in.mu.Lock()
	in.draining = true
	in.seq = started.Seq
	if !in.inv.Durable {
		in.memory = append(in.memory, started)
	}
	in.mu.Unlock()
	if in.lifecycle != nil {
		in.lifecycle.workflowStarted(started.Time)
	}
	if in.metrics != nil {
		in.metrics.started.Inc()
	}
	in.apply([]core.Event{started})
	in.drain()
}

// replay rebuilds the machine from a stored history and carries on from
// where it stood: pending calls go out again, timers are set again. A
// history that was redriven is stepped as core.Effective makes it.
func (in *instance) replay(history []core.Event) error {
	effective, err := core.Effective(in.def, in.mopts, history)
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.draining = true
	if n := len(history); n > 0 {
		in.seq = history[n-1].Seq
	}
	in.replaying = true
	in.mu.Unlock()
	if in.trace != nil {
		in.trace.Replaying(true)
	}
	// What the history holds was published when it happened.
	in.lifecycle.replaying(func() {
		if in.lifecycle != nil && len(history) > 0 && history[0].Type == core.InvocationStarted {
			in.lifecycle.workflowStarted(history[0].Time)
		}
		in.apply(effective)
	})
	in.replaying = false
	if in.trace != nil {
		in.trace.Replaying(false)
	}
	in.drain()
	return nil
}

// push adds an event to the inbox and drains it unless another goroutine
// is at it already.
func (in *instance) push(ev core.Event) {
	in.mu.Lock()
	if !in.admitLocked(&ev) {
		in.mu.Unlock()
		return
	}
	in.inbox = append(in.inbox, ev)
	if in.draining {
		in.mu.Unlock()
		return
	}
	in.draining = true
	in.mu.Unlock()
	in.drain()
}

// admitLocked numbers an event as the next of the history (and stamps,
// redacts, and bounds it by the history limit), or reports false when
// nothing may be added any more. in.mu is held.
func (in *instance) admitLocked(ev *core.Event) bool {
	if in.stopped || in.ended || in.full {
		return false
	}
	max := int64(in.limits.HistoryEvents)
	if ev.Type == core.TaskEnded && max > 0 && in.seq+1 >= max/2 {
		// Records of tasks without I/O take at most the first half of
		// the history, so that what the workflow waits on keeps room.
		return false
	}
	if max > 0 && in.seq+1 >= max && !ev.Terminal() {
		// The last place in the history is kept for the fault.
		*ev = core.Event{Type: core.InvocationFaulted, Error: in.historyLimit()}
	}
	if ev.Terminal() {
		in.full = true
	}
	in.redact.event(ev)
	in.seq++
	ev.Seq = in.seq
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	return true
}

func (in *instance) drain() {
	for {
		in.mu.Lock()
		if len(in.inbox) == 0 || in.stopped {
			in.draining = false
			in.mu.Unlock()
			return
		}
		batch := in.inbox
		in.inbox = nil
		in.mu.Unlock()
		if !in.inv.Durable || terminalIn(batch) {
			if !in.persist(batch) {
				return
			}
			in.apply(batch)
			continue
		}
		// The machine is stepped before the batch is durable so that,
		// when the batch finishes the invocation, its end shares the
		// batch's commit instead of paying one of its own. Nothing it
		// asks for runs before the commit, so a crash still re-executes
		// at most the calls in flight; if the append fails the instance
		// halts and its machine is rebuilt from the durable history.
		cmds := in.step(batch)
		var end *core.Event
		batch, cmds, end = in.foldFinish(batch, cmds)
		if !in.persist(batch) {
			return
		}
		in.execute(cmds)
		if end != nil {
			in.end(end)
		}
	}
}

func terminalIn(batch []core.Event) bool {
	for i := range batch {
		if batch[i].Terminal() {
			return true
		}
	}
	return false
}

// step steps the machine through non-terminal events and returns what it
// asks for.
func (in *instance) step(batch []core.Event) []core.Command {
	for i := range batch {
		if err := in.m.Step(batch[i]); err != nil {
			in.e.log.Error("history event rejected", "invocation", in.inv.ID, "seq", batch[i].Seq, "err", err)
		}
	}
	return in.m.Ready()
}

// foldFinish turns the machine's Finish, when it asks for one, into the
// terminal event at the end of the batch, so that the invocation ends in
// the commit of the event that finished it. It leaves the Finish to
// execute (and so to a commit of its own) when other events were queued
// meanwhile: they are numbered before it and were not stepped.
func (in *instance) foldFinish(batch []core.Event, cmds []core.Command) ([]core.Event, []core.Command, *core.Event) {
	at := -1
	for i, c := range cmds {
		if _, ok := c.(*core.Finish); ok {
			at = i
			break
		}
	}
	if at < 0 {
		return batch, cmds, nil
	}
	ev := in.finishEvent(cmds[at].(*core.Finish))
	in.mu.Lock()
	folded := len(in.inbox) == 0 && in.admitLocked(&ev)
	in.mu.Unlock()
	if !folded {
		return batch, cmds, nil
	}
	rest := make([]core.Command, 0, len(cmds)-1)
	rest = append(rest, cmds[:at]...)
	rest = append(rest, cmds[at+1:]...)
	batch = append(batch, ev)
	return batch, rest, &batch[len(batch)-1]
}

// persist appends a batch to the history. It waits for durability unless
// the batch only records that calls were dispatched: nothing depends on
// those being durable. On a store failure the invocation stops here; it
// is resumed from its durable history by the next engine start.
func (in *instance) persist(batch []core.Event) bool {
	if !in.inv.Durable {
		in.mu.Lock()
		in.memory = append(in.memory, batch...)
		in.mu.Unlock()
		in.e.watch.publish(in.inv.ID, batch)
		return true
	}
	wait := false
	for i := range batch {
		if !batch[i].Informational() {
			wait = true
			break
		}
	}
	err := in.e.appendHistory(in, batch, wait)
	if err == nil || errors.Is(err, store.ErrUnwaitedWriteFailed) {
		in.e.watch.publish(in.inv.ID, batch)
	}
	if err == nil {
		return true
	}
	if errors.Is(err, store.ErrFenced) {
		// Another replica owns the partition now and carries on from
		// the durable history; nothing more is written from here.
		in.stop()
		in.mu.Lock()
		in.draining = false
		in.mu.Unlock()
		in.forget()
		in.e.cluster.fenced(in.fence)
		return false
	}
	if errors.Is(err, store.ErrUnwaitedWriteFailed) {
		// This batch is durable; what was lost is an earlier unwaited
		// record of a dispatch, which nothing depends on.
		in.e.log.Warn("an informational history record was lost", "invocation", in.inv.ID, "err", err)
		return true
	}
	if in.e.closing(err) {
		// A stop cut the append short; the history is resumed as it is.
		in.e.log.Debug("append cut short by the engine stopping", "invocation", in.inv.ID, "err", err)
	} else {
		in.e.log.Error("cannot append to history; the invocation halts until the engine restarts",
			"invocation", in.inv.ID, "err", err)
	}
	in.mu.Lock()
	in.stopped = true
	in.draining = false
	in.mu.Unlock()
	return false
}

// apply steps the machine through durable events and executes what it asks.
func (in *instance) apply(batch []core.Event) {
	for i := range batch {
		ev := &batch[i]
		if ev.Terminal() {
			in.end(ev)
			return
		}
		if err := in.m.Step(*ev); err != nil {
			in.e.log.Error("history event rejected", "invocation", in.inv.ID, "seq", ev.Seq, "err", err)
		}
	}
	in.execute(in.m.Ready())
}

func (in *instance) execute(cmds []core.Command) {
	toG2 := false
	for _, c := range cmds {
		switch c := c.(type) {
		case *core.Call:
			in.callKeys[c.Task] = struct{}{}
			if !toG2 && in.qos.admissionOpen() {
				toG2 = in.e.poolOf(in.e.ctx, in, c) != ""
			}
			in.startCall(c)
		case *core.CancelCall:
			in.mu.Lock()
			if cancel := in.calls[c.Task]; cancel != nil {
				delete(in.calls, c.Task)
				cancel()
			}
			in.mu.Unlock()
		case *core.StartTimer:
			in.startTimer(c)
		case *core.CancelTimer:
			in.mu.Lock()
			if t := in.timers[c.Timer]; t != nil {
				t.Stop()
				delete(in.timers, c.Timer)
			}
			in.mu.Unlock()
		case *core.Finish:
			in.push(in.finishEvent(c))
		}
	}
	in.qos.stepped(toG2)
}

// finishEvent is the terminal event of the machine's Finish.
func (in *instance) finishEvent(c *core.Finish) core.Event {
	ev := core.Event{Output: c.Output, Error: c.Error}
	switch c.Status {
	case core.StatusCompleted:
		ev.Type = core.InvocationCompleted
		if p := in.outputLimit(c.Output); p != nil {
			ev = core.Event{Type: core.InvocationFaulted, Error: p}
		}
	case core.StatusCancelled:
		ev.Type = core.InvocationCancelled
	default:
		ev.Type = core.InvocationFaulted
	}
	return ev
}

func (in *instance) startCall(c *core.Call) {
	ctx, cancel := context.WithCancel(in.e.ctx)
	if c.Timeout > 0 {
		ctx, cancel = context.WithTimeout(in.e.ctx, c.Timeout)
	}
	in.mu.Lock()
	if in.stopped || in.parking || !in.e.drain.callStarted(c.Function) {
		// Stopping, handing the partition over, or draining: the call is
		// held, unsent, for whoever replays the history next.
		in.mu.Unlock()
		cancel()
		return
	}
	if in.fence != nil && !in.e.cluster.leaseFresh() {
		in.mu.Unlock()
		cancel()
		in.e.drain.callEnded(c.Function)
		in.e.cluster.unload(in)
		return
	}
	in.calls[c.Task] = cancel
	in.mu.Unlock()
	if in.inv.Durable {
		in.push(core.Event{Type: core.TaskStarted, Task: c.Task, Ref: c.Ref, Attempt: c.Attempt})
	}
	var span *telemetry.Call
	if in.trace != nil {
		ctx, span = in.trace.StartCall(ctx, c.Task, c.Function, c.Attempt)
	}
	in.e.calls.Add(1)
	in.e.workers.run(func() {
		defer in.e.calls.Done()
		// Counted until the result is handed to the invocation, so that
		// Drain sees it in an inbox once the count drops.
		defer in.e.drain.callEnded(c.Function)
		started := time.Now()
		res, p := in.e.execute(ctx, in, c)
		elapsed := time.Since(started)
		if span != nil {
			span.End(res.Info, p)
		}
		cancel()
		if in.e.ctx.Err() != nil {
			return // the engine is closing; the call is redone on restart
		}
		in.mu.Lock()
		_, wanted := in.calls[c.Task]
		delete(in.calls, c.Task)
		in.mu.Unlock()
		if !wanted {
			return
		}
		info := res.Info
		if info == nil {
			info = make(map[string]any, 1)
		}
		info["durationMs"] = ms(elapsed)
		ev := core.Event{Task: c.Task, Ref: c.Ref, Attempt: c.Attempt, Info: info}
		if p != nil {
			ev.Type, ev.Error = core.TaskFailed, p
		} else {
			ev.Type, ev.Output = core.TaskCompleted, res.Output
		}
		in.push(ev)
	})
}

func (in *instance) startTimer(c *core.StartTimer) {
	fireAt := c.FireAt
	if fireAt.IsZero() {
		fireAt = time.Now().UTC().Add(c.After)
		// The deadline is recorded so that a restart keeps it.
		in.push(core.Event{Type: core.TimerScheduled, Timer: c.Timer, FireAt: fireAt})
	}
	id := c.Timer
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return
	}
	if old := in.timers[id]; old != nil {
		old.Stop()
	}
	in.timers[id] = time.AfterFunc(time.Until(fireAt), func() {
		in.mu.Lock()
		_, pending := in.timers[id]
		delete(in.timers, id)
		in.mu.Unlock()
		if pending {
			in.e.metrics.observeTimerLag(fireAt)
			in.push(core.Event{Type: core.TimerFired, Timer: id})
		}
	})
}

// end takes in the terminal event: the row is updated (by the store, in the
// same transaction as the event) and waiters are released.
func (in *instance) end(ev *core.Event) {
	in.mu.Lock()
	if in.ended {
		in.mu.Unlock()
		return
	}
	in.ended = true
	if in.lifecycle != nil {
		in.lifecycle.workflowEnded(ev)
	}
	switch ev.Type {
	case core.InvocationCompleted:
		in.inv.Status = core.StatusCompleted
	case core.InvocationCancelled:
		in.inv.Status = core.StatusCancelled
	default:
		in.inv.Status = core.StatusFaulted
	}
	in.inv.Output, in.inv.Error, in.inv.EndedAt = ev.Output, ev.Error, ev.Time
	if in.trace != nil && !in.replaying {
		// A span of an end already recorded was exported by its process.
		in.trace.End(string(in.inv.Status), ev.Error, ev.Time)
	}
	if in.metrics != nil && !in.replaying {
		in.metrics.ended(in.inv.Status, ev.Time.Sub(in.inv.StartedAt))
	}
	for id, t := range in.timers {
		t.Stop()
		delete(in.timers, id)
	}
	for task, cancel := range in.calls {
		cancel()
		delete(in.calls, task)
	}
	in.inbox = nil
	durable := in.inv.Durable
	in.mu.Unlock()
	// The seat kept for a next call goes back before the end's row is
	// written: other workflows' calls need not wait for the store.
	in.qos.endCalls(in.e.opts.QoS)
	if !durable {
		// The end is reported once its row write holds one of the bounded
		// slots: when the store falls behind, invocations wait here
		// instead of piling up goroutines and memory behind it.
		in.e.endWrites <- struct{}{}
	}
	close(in.done)
	in.qos.settle()
	in.e.invocationEnded(in.inv.ID)
	in.e.listensEnded(in.inv.ID, in.def)
	if durable {
		in.forget()
		return
	}
	// A non-durable invocation's row is brought up to date without the
	// caller waiting; the instance stays live (and answers Get) until the
	// row is.
	in.e.calls.Add(1)
	go func() {
		defer in.e.calls.Done()
		defer func() { <-in.e.endWrites }()
		// The stored history of a non-durable invocation is its first and
		// last event only, so the last one follows the first.
		last := *ev
		last.Seq = 2
		if err := in.e.store.Append(context.Background(), in.inv.ID, []core.Event{last}, true); err != nil {
			in.e.log.Error("cannot record the end of a non-durable invocation", "invocation", in.inv.ID, "err", err)
		}
		in.forget()
	}()
}

func (in *instance) forget() {
	in.e.mu.Lock()
	if in.e.live[in.inv.ID] == in {
		delete(in.e.live, in.inv.ID)
		in.e.running[in.inv.Namespace]--
		if in.e.running[in.inv.Namespace] <= 0 {
			delete(in.e.running, in.inv.Namespace)
		}
	}
	in.e.mu.Unlock()
}

// cancel asks the invocation to stop for reason (may be empty); false
// when it has ended.
func (in *instance) cancel(reason string) bool {
	in.mu.Lock()
	over := in.ended || in.stopped
	in.mu.Unlock()
	if over {
		return false
	}
	in.push(core.CancelRequest(reason))
	return true
}

// stop halts the instance for engine shutdown without recording anything.
func (in *instance) stop() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.stopped {
		close(in.halted)
	}
	in.stopped = true
	for id, t := range in.timers {
		t.Stop()
		delete(in.timers, id)
	}
	for task, cancel := range in.calls {
		cancel()
		delete(in.calls, task)
	}
}

func (in *instance) snapshot() *store.Invocation {
	in.mu.Lock()
	defer in.mu.Unlock()
	inv := in.inv
	return &inv
}

func (in *instance) memoryHistory() []core.Event {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]core.Event(nil), in.memory...)
}
