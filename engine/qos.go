package engine

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/qos"
	"github.com/batonflow/baton/store"
)

// The engine's side of QoS scheduling (package qos): admitQoS is gate G1,
// in front of every start; seat is gate G2, around every call of a
// function, HTTP endpoint or process. Without Options.QoS both do nothing:
// starts and calls go in arrival order, as they always did.

// TypeClassNotAllowed is the problem type of a start that asks for a
// priority class it may not have (HTTP 403).
const TypeClassNotAllowed = "https://batonflow.dev/problems/priority-class-not-allowed"

// qosState is an invocation's classification, which its calls and
// subflows inherit.
type qosState struct {
	class    qos.Class
	flow     string
	weight   float64
	deadline time.Time
	// ticket is its G1 admission, settled when its first call reaches G2,
	// when a step of its sends nothing there before that, or at its end.
	ticket *qos.Ticket
	// sentToG2 is whether a step has sent a call toward G2 (then that
	// call's seat settles the ticket), settledByStep whether a step
	// that sent none settled it. Only the instance's drain touches them.
	sentToG2, settledByStep bool
	// calls counts the calls it asked G2 for: the first begins its work,
	// the others continue it.
	calls atomic.Int64
	// chain hands the seat of one of its calls to the next.
	chain qos.Chain
}

// DefaultClass is the priority class a workflow document declares in its
// metadata (`baton.priorityClass: critical`, or nested under `baton`), or
// ok false when it declares none.
func DefaultClass(def *dsl.Workflow) (qos.Class, bool) {
	md := def.Document.Metadata
	v, ok := md["baton.priorityClass"].(string)
	if !ok {
		if b, isMap := md["baton"].(map[string]any); isMap {
			v, ok = b["priorityClass"].(string)
		}
	}
	if !ok {
		return 0, false
	}
	c, err := qos.ParseClass(v)
	return c, err == nil
}

// admitQoS classifies a start and passes it through G1. A subflow
// inherits its parent's classification and is not gated: it is part of a
// workflow that was admitted already.
func (e *Engine) admitQoS(ctx context.Context, def *dsl.Workflow, eff *policy.Effective, parent, namespace string) (*qosState, error) {
	if e.opts.QoS == nil {
		return nil, nil
	}
	if parent != "" {
		e.mu.Lock()
		p := e.live[parent]
		e.mu.Unlock()
		if p != nil && p.qos != nil {
			// Its own chain: its calls run beside its parent's.
			return &qosState{class: p.qos.class, flow: p.qos.flow, weight: p.qos.weight, deadline: p.qos.deadline}, nil
		}
	}
	start, err := classifyStart(ctx, def, eff, namespace)
	if err != nil {
		return nil, err
	}
	st := &qosState{class: start.Class, flow: namespace, weight: start.Weight, deadline: start.Deadline}
	if parent != "" {
		// A subflow whose parent is not live here (it runs elsewhere).
		return st, nil
	}
	e.mu.Lock()
	start.Running = e.running[namespace]
	e.mu.Unlock()
	st.ticket, err = e.opts.QoS.Admit(ctx, start)
	if r, ok := qos.AsRejection(err); ok && start.Defer && r.Reason == qos.ReasonDeadline {
		return nil, &deferredDeadline{r}
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// TypeDeadlineExceeded is the problem type of a start whose deadline
// passed before G1 admitted it: the API's answer to a synchronous start
// (504), and the error an asynchronous one is recorded with.
const TypeDeadlineExceeded = "https://batonflow.dev/problems/deadline-exceeded"

// deferredDeadline is an asynchronous start whose deadline passed while it
// was deferred at G1. It has no client to answer, so the start is recorded
// as an invocation that failed with a deadline error (see
// recordDeadlineMissed) rather than vanishing with a log line.
type deferredDeadline struct{ rejection *qos.Rejection }

func (d *deferredDeadline) Error() string { return d.rejection.Error() }
func (d *deferredDeadline) Unwrap() error { return d.rejection }

// recordDeadlineMissed records inv, a deferred start of which nothing ran,
// as faulted with a deadline error: its history is its start, at its
// arrival, and its end now. An id taken already fails with
// store.ErrConflict, as a start would.
func (e *Engine) recordDeadlineMissed(ctx context.Context, inv *store.Invocation, started core.Event, missed *deferredDeadline) (*store.Invocation, error) {
	r := missed.rejection
	p := problem.Newf(TypeDeadlineExceeded, http.StatusGatewayTimeout, "Deadline Exceeded",
		"%s (class %s, namespace %s): the deferred start never ran", r.Detail, r.Class, r.Namespace)
	now := time.Now().UTC()
	inv.Status, inv.Error, inv.EndedAt = core.StatusFaulted, p, now
	failed := core.Event{Seq: 2, Type: core.InvocationFaulted, Time: now, Error: p}
	// Waited for even without a history: this row is all there is of it.
	if err := e.store.CreateInvocation(ctx, inv, []core.Event{started, failed}, true); err != nil {
		return nil, fmt.Errorf("recording the start of %s/%s whose deadline passed: %w", inv.Namespace, inv.Workflow, err)
	}
	e.log.Warn("an asynchronous start's deadline passed while it was deferred; recorded as faulted",
		"invocation", inv.ID, "workflow", inv.Namespace+"/"+inv.Workflow, "class", r.Class.String())
	e.announceEnded(inv, started, failed)
	return inv, nil
}

// announceEnded publishes what a live instance would have published over
// the life of inv, which started and ended without one: its lifecycle
// CloudEvents, its trace span and its metrics, so that a start that never
// ran is seen by the same consumers as one that failed running.
func (e *Engine) announceEnded(inv *store.Invocation, started, ended core.Event) {
	if e.publisher != nil {
		lc := newLifecycle(inv, e.publisher.enqueue)
		lc.workflowStarted(started.Time)
		lc.workflowEnded(&ended)
	}
	if e.opts.Tracer != nil {
		e.openTrace(inv, started.Info, started.Time).End(string(inv.Status), ended.Error, ended.Time)
	}
	if e.metrics != nil {
		m := e.metrics.forWorkflow(inv.Namespace, inv.Workflow)
		m.started.Inc()
		m.ended(inv.Status, ended.Time.Sub(started.Time))
	}
}

// classifyStart is the class, flow, deadline and quotas of a start of def
// in namespace, as the client in ctx asked (Running left to the caller).
func classifyStart(ctx context.Context, def *dsl.Workflow, eff *policy.Effective, namespace string) (qos.Start, error) {
	q := eff.QoS
	def0 := q.DefaultClass
	if c, ok := DefaultClass(def); ok {
		def0 = c
	}
	req, synchronous := qos.RequestFrom(ctx)
	class, err := qos.Classify(def0, req, q.Classes)
	if err != nil {
		return qos.Start{}, problem.Newf(TypeClassNotAllowed, http.StatusForbidden, "Priority Class Not Allowed", "%v", err)
	}
	deadline := req.Deadline
	if def.Timeout != nil && !def.Timeout.After.IsExpr() && def.Timeout.After.D > 0 {
		if t := time.Now().Add(def.Timeout.After.D); deadline.IsZero() || t.Before(deadline) {
			deadline = t
		}
	}
	return qos.Start{
		Class: class, Namespace: namespace, Weight: q.Weight, Deadline: deadline,
		Defer: !synchronous || req.Deferred, RefuseOverQuota: synchronous && req.Deferred,
		Rate: q.Rate, Burst: q.Burst, RunningCap: eff.Limits.RunningInvocations,
	}, nil
}

// RefuseEarly answers, before a client's start is read, whether G1 would
// refuse it at once: the API asks before it reads the request's body, so
// that an overloaded server refuses in microseconds, writing nothing and
// never waiting for the gates' lock. It judges only from what is at hand
// (the workflow's definition and newest version as cached by earlier
// starts; the namespace's policy, which the policy service caches and
// reads from the store only when its cache expired); when something is
// missing, or the start may go, it returns nil and the start takes the
// ordinary way, where G1 decides. A refusal is a *qos.Rejection.
func (e *Engine) RefuseEarly(ctx context.Context, namespace, name, version string) error {
	if e.opts.QoS == nil {
		return nil
	}
	if req, synchronous := qos.RequestFrom(ctx); !synchronous || req.Deferred {
		return nil
	}
	e.mu.Lock()
	if version == "" {
		l, ok := e.latest[namespace+"/"+name]
		if !ok || time.Since(l.at) >= latestTTL {
			e.mu.Unlock()
			return nil
		}
		version = l.version
	}
	def := e.defs[defKey(namespace, name, version)]
	running := e.running[namespace]
	e.mu.Unlock()
	if def == nil {
		return nil
	}
	eff, err := e.policyFor(ctx, namespace)
	if err != nil {
		return nil
	}
	start, err := classifyStart(ctx, def, eff, namespace)
	if err != nil {
		return nil // the ordinary way answers it
	}
	start.Running = running
	if r := e.opts.QoS.Refuse(start); r != nil {
		return r
	}
	return nil
}

// resumedQoS is the classification of an invocation resumed from its
// history: its document's class; a client's deadline is not kept.
func (e *Engine) resumedQoS(def *dsl.Workflow, eff *policy.Effective, namespace string) *qosState {
	if e.opts.QoS == nil {
		return nil
	}
	c := eff.QoS.DefaultClass
	if d, ok := DefaultClass(def); ok {
		c = d
	}
	return &qosState{class: c, flow: namespace, weight: eff.QoS.Weight}
}

func (s *qosState) settle() {
	if s != nil {
		s.ticket.Settle()
	}
}

// stepped settles the admission after a step that sends no call to G2
// while none sent before is on its way there. An admitted start is
// backlog only as work about to reach G2: a workflow that first waits (a
// timer, an event, a subflow) or runs only calls that take no seat
// (built-in functions, set tasks) must not hold the gate shut while it
// does, or a few sleeping workflows would stop every new start.
func (s *qosState) stepped(toG2 bool) {
	if s == nil {
		return
	}
	if toG2 {
		s.sentToG2 = true
		return
	}
	if !s.sentToG2 && !s.settledByStep {
		s.settledByStep = true
		s.ticket.Settle()
	}
}

// admissionOpen says whether the admission is still to be settled by a
// step, so that the step must find out whether its calls go to G2: past
// the first steps a call's pool is looked up only once, as it is seated.
func (s *qosState) admissionOpen() bool {
	return s != nil && !s.sentToG2 && !s.settledByStep
}

// endCalls gives back the seat kept for the invocation's next call: it
// has ended and makes none.
func (s *qosState) endCalls(sched *qos.Scheduler) {
	if s != nil && sched != nil {
		sched.EndChain(&s.chain)
	}
}

// seat passes a call through G2: it waits for a seat in the pool of the
// call's runtime. Calls that wait for something else than a runtime
// (subflows, events, timers) are not seated. Release gives the seat back.
func (e *Engine) seat(ctx context.Context, in *instance, c *core.Call) (qos.Seat, *problem.Problem) {
	unseated := qos.Seat{Release: func() {}}
	if e.opts.QoS == nil || in.qos == nil {
		return unseated, nil
	}
	pool := e.poolOf(ctx, in, c)
	if pool == "" {
		return unseated, nil
	}
	q := in.qos
	// The admission is settled as the call reaches G2: the workflow's
	// work is counted there from then on.
	seat, err := e.opts.QoS.Seat(ctx, qos.Call{
		Pool: pool, Function: functionKey(in.inv.Namespace, c.Function), Class: q.class, Flow: q.flow, Weight: q.weight,
		Deadline: q.deadline, Continuation: q.calls.Add(1) > 1, Admission: q.ticket, Chain: &q.chain,
		// The task in the workflow's version: whether a seat is worth
		// keeping after its call depends on what the definition does next.
		Site: in.qosSite + c.Ref,
	})
	if err != nil {
		return qos.Seat{}, problem.Timeout("%s: waiting for a seat: %v", c.Name, err)
	}
	return seat, nil
}

// poolOf is the G2 pool of a call, "" for calls that are not seated.
func (e *Engine) poolOf(ctx context.Context, in *instance, c *core.Call) string {
	switch c.Function {
	case "http", FunctionOpenAPI, FunctionGRPC, FunctionFission:
		return qos.PoolHTTP
	case FunctionRunShell, FunctionRunScript, FunctionRunContainer:
		return qos.PoolProcess
	case FunctionEmit, FunctionRunWorkflow, FunctionListen:
		return ""
	}
	if _, own := e.opts.Executors[c.Function]; own {
		return ""
	}
	if e.opts.QoSPool != nil {
		return e.opts.QoSPool(ctx, in.inv.Namespace, c.Function)
	}
	return qos.PoolWasm
}

// QoSStatus is the state of the QoS gates (Enabled false without them).
func (e *Engine) QoSStatus() qos.Status {
	if e.opts.QoS == nil {
		return qos.Status{}
	}
	return e.opts.QoS.Status()
}

// liveReplicas is how many replicas share the namespaces' quotas: the
// live ones at the last heartbeat (this one at least).
func (e *Engine) liveReplicas() int {
	if e.cluster == nil {
		return 1
	}
	return max(1, int(e.cluster.live.Load()))
}

// functionKey names a called function as its statistics do (function
// events, prewarm.Stats): qualified by namespace, without a version.
func functionKey(namespace, fn string) string {
	name, _, _ := strings.Cut(fn, "@")
	return function.Qualify(namespace, name)
}
