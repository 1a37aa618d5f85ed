// Package engine drives workflow invocations: it owns the live core
// machines, executes their commands (calls, timers), appends their history
// to the store with group commit, and resumes every running invocation after
// a restart.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/expr"
	"github.com/batonflow/baton/expr/js"
	"github.com/batonflow/baton/grpccall"
	"github.com/batonflow/baton/httpcall"
	"github.com/batonflow/baton/lang"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/qos"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/telemetry"
)

// Version is reported as $runtime.version and by `baton version`.
var Version = "0.1.0-dev"

// Options configure an engine.
type Options struct {
	Store store.Store
	// HTTPClient runs `call: http`; nil means a client tuned for many
	// concurrent calls. Tests inject a transport here.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// ExpressionLimits.Time is the wall-clock safety net of every jq
	// expression the engine evaluates (expr.DefaultLimits' when zero).
	// Their work and size limits come from the namespace's policy
	// (limits.expressionSteps...); the other fields only bound
	// expressions evaluated for no namespace's policy.
	ExpressionLimits expr.Limits
	// Executors run calls of functions the engine does not know itself,
	// by function name (see Executor). An executor named "*" receives
	// every call no other executor claims, which is how the function layer
	// plugs in.
	Executors map[string]Executor
	// Secrets provides the values of the secrets that workflows declare
	// in use.secrets, exposed to their expressions as $secrets; nil means
	// no secrets, and a workflow that declares some cannot start.
	Secrets SecretSource
	// Observer hears every task start and end, for tracing, benchmarks
	// and prewarming. It is called from the invocation's goroutine and
	// must not block.
	Observer TaskObserver
	// Events receives the CloudEvents that `emit` tasks produce and the
	// DSL's lifecycle events (workflow and task started, completed,
	// faulted, cancelled) as they happen; nil means emitted events are only
	// recorded in history as the tasks' output, and lifecycle events are
	// only available from LifecycleEvents.
	Events EventPublisher
	// EventLog is the durable log of CloudEvents (see package events):
	// with it, events can be ingested, `listen` tasks wait for events,
	// `emit` tasks append to it (and through it to the shared bus), and
	// workflows with schedule.on and triggers start on events. Without
	// it, listen tasks and event-driven starts fail with a configuration
	// error.
	EventLog *events.Log
	// TriggerSources subscribe triggers of kinds other than http and cron
	// ("nats", "mqtt") to their message sources.
	TriggerSources map[string]TriggerSource
	// SchedulePoll is how often the scheduler reads the schedules when no
	// run is due sooner (DefaultSchedulePoll when zero); engines sharing
	// a store see each other's applies within it.
	SchedulePoll time.Duration
	// ContainerRuntime is the command that runs `run: container` tasks
	// ("docker", "podman", or a path to one); empty means containers are
	// not available and such tasks fail with a configuration error.
	ContainerRuntime string
	// Policies gives each namespace's capabilities, egress rules and
	// limits; nil allows every capability with the default limits (see
	// policy.Unrestricted), which is what a local `baton run` is.
	Policies Policies
	// Cluster makes the engine one of several replicas sharing a store
	// (see ClusterOptions); nil runs every invocation here.
	Cluster *ClusterOptions
	// Tracer traces every invocation, task and call with OpenTelemetry
	// (see package telemetry); nil traces nothing, at no cost.
	Tracer *telemetry.Tracer
	// Metrics registers the engine's Prometheus metrics (invocations,
	// tasks, the store's commits, timers, events); nil keeps none.
	Metrics prometheus.Registerer
	// WatchBuffer is how many history events a FollowHistory reader may
	// have waiting before it is dropped (DefaultWatchBuffer when zero).
	WatchBuffer int
	// QoS schedules starts (gate G1) and calls (gate G2) by priority
	// class, namespace and deadline (see package qos and engine/qos.go);
	// nil runs them in arrival order.
	QoS *qos.Scheduler
	// QoSPool names the G2 pool (qos.PoolWasm, PoolProcess, PoolHTTP) of
	// a registered function, by its runtime; nil seats them all in
	// qos.PoolWasm.
	QoSPool func(ctx context.Context, namespace, function string) string
}

// TaskObserver hears task lifecycle transitions of every invocation.
type TaskObserver interface {
	TaskStarted(invocation, key, ref, name string, at time.Time)
	TaskEnded(invocation, key, ref, name string, at time.Time, err *problem.Problem)
}

// Engine runs invocations. Create it with New, then Start it.
type Engine struct {
	opts  Options
	store store.Store
	log   *slog.Logger
	eval  *expr.Evaluator
	evals sync.Map // expr.Limits → *expr.Evaluator, see evaluatorFor
	js    *js.Evaluator
	http  *httpcall.Client
	grpc  *grpccall.Client
	// publisher delivers lifecycle events to Options.Events; nil without.
	publisher  *publisher
	sched      *scheduler
	scheduling bool // Start started the scheduler
	starter    *eventStarter
	// cluster is the replica's side of partition ownership; nil when the
	// engine runs alone.
	cluster *clusterState
	// metrics are the engine's Prometheus metrics; nil without
	// Options.Metrics.
	metrics *metrics
	// watch hands recorded history events to FollowHistory readers.
	watch *watchHub

	// recovery resumes the invocations left running (see recovery).
	recovery *recovery

	ctx    context.Context
	cancel context.CancelFunc
	calls  sync.WaitGroup // in-flight calls and appends
	// endWrites holds a slot for each non-durable invocation whose
	// ended row is being written (see instance.end and Settle).
	endWrites chan struct{}
	workers   *callWorkers
	drain     drainState // see Drain

	mu   sync.Mutex
	live map[string]*instance
	defs map[string]*dsl.Workflow // parsed definitions by namespace/name/version
	// latest caches each workflow's newest version for invocations by name.
	latest map[string]latestVersion
	// running counts the live invocations of each namespace, for its
	// policy's limits.runningInvocations.
	running map[string]int
}

// New returns an engine over a store. It runs nothing until Start.
func New(opts Options) (*Engine, error) {
	if opts.Store == nil {
		return nil, errors.New("engine: a store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		opts:   opts,
		store:  opts.Store,
		log:    opts.Logger,
		eval:   expr.NewEvaluatorWithLimits(opts.ExpressionLimits),
		js:     js.NewEvaluator(0),
		http:   &httpcall.Client{HTTP: opts.HTTPClient, Logger: opts.Logger, UserAgent: "baton/" + Version},
		ctx:    ctx,
		cancel: cancel,
		live:   make(map[string]*instance),
		defs:   make(map[string]*dsl.Workflow),

		endWrites: make(chan struct{}, maxPendingEndWrites),
		workers:   newCallWorkers(ctx),
		latest:    make(map[string]latestVersion),

		running: make(map[string]int),
		watch:   newWatchHub(opts.WatchBuffer),
	}
	if opts.HTTPClient == nil {
		// Calls connect under the egress policy of their namespace.
		opts.HTTPClient = &http.Client{Transport: &policy.Transport{New: httpcall.NewTransport}}
		e.opts.HTTPClient = opts.HTTPClient
		e.http.HTTP = opts.HTTPClient
	}
	e.grpc = &grpccall.Client{HTTP: opts.HTTPClient, Auth: e.http, Logger: opts.Logger}
	if opts.Events != nil {
		e.publisher = newPublisher(opts.Events, opts.Logger)
	}
	e.sched = newScheduler(e, opts.SchedulePoll)
	e.recovery = newRecovery(e)
	if opts.EventLog != nil {
		e.starter = newEventStarter(e)
	}
	e.opts.Executors = e.withBuiltinExecutors(opts.Executors)
	if opts.Metrics != nil {
		m, err := newMetrics(e, opts.Metrics)
		if err != nil {
			cancel()
			return nil, err
		}
		e.metrics = m
	}
	if opts.Cluster != nil {
		c, err := newClusterState(e, *opts.Cluster)
		if err != nil {
			cancel()
			return nil, err
		}
		e.cluster = c
		if opts.QoS != nil {
			opts.QoS.SetReplicas(e.liveReplicas)
		}
	}
	return e, nil
}

// Start sets the engine running: every invocation left running in the
// store is resumed in the background (see recovery), its history replayed
// into a fresh machine, whose pending calls are executed again (with
// their original idempotency keys) and whose timers keep their recorded
// deadlines. Start returns at once; RecoveryStatus tells the progress.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	starting := !e.scheduling
	e.scheduling = true
	e.mu.Unlock()
	if !starting {
		return nil
	}
	e.recovery.start()
	if e.cluster != nil {
		// A replica resumes the invocations of the partitions it acquires.
		e.startCluster()
		return nil
	}
	e.recovery.mu.Lock()
	e.recovery.listing = true
	e.recovery.mu.Unlock()
	e.calls.Add(1)
	go func() {
		defer e.calls.Done()
		e.recovery.listRunning(e.ctx)
	}()
	go e.sched.run(e.ctx)
	if e.starter != nil {
		go e.starter.run(e.ctx)
	}
	return nil
}

// maxPendingEndWrites bounds the non-durable invocations that have ended
// but whose row is not written yet. Their writes share group commits, so a
// few hundred keep the store's writer busy; beyond them invocations wait
// to end.
const maxPendingEndWrites = 512

// Settle waits until the rows of the non-durable invocations that have
// ended are written, so that what the store reports includes them (a
// benchmark's throughput, say). Invocations ending meanwhile may still be
// pending when it returns.
func (e *Engine) Settle(ctx context.Context) error {
	held := 0
	defer func() {
		for range held {
			<-e.endWrites
		}
	}()
	for held < cap(e.endWrites) {
		select {
		case e.endWrites <- struct{}{}:
			held++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close stops the engine: in-flight calls are cancelled and no more events
// are appended. Running invocations stay running in the store and resume
// on the next Start.
func (e *Engine) Close() error {
	e.cancel()
	e.mu.Lock()
	for _, in := range e.live {
		in.stop()
	}
	scheduling := e.scheduling
	e.mu.Unlock()
	if scheduling {
		<-e.sched.done
		if e.starter != nil {
			<-e.starter.done
		}
	}
	if e.cluster != nil {
		<-e.cluster.done
	}
	e.calls.Wait()
	e.http.CloseIdleConnections()
	if e.publisher != nil {
		e.publisher.close()
	}
	if err := e.grpc.Close(); err != nil {
		e.log.Warn("closing gRPC connections", "err", err)
	}
	return nil
}

// ApplyWorkflow parses, validates and stores a workflow document in any
// language Baton runs, recognised by its shape. An invalid document yields
// a dsl.ErrorList.
func (e *Engine) ApplyWorkflow(ctx context.Context, filename string, src []byte) (*store.Workflow, error) {
	return e.ApplyDocument(ctx, filename, src, lang.Options{})
}

// ApplyDocument is ApplyWorkflow with the language (and, for Fission
// documents, the namespace) given rather than inferred.
func (e *Engine) ApplyDocument(ctx context.Context, filename string, src []byte, opts lang.Options) (*store.Workflow, error) {
	def, format, err := lang.Parse(filename, src, opts)
	if err != nil {
		return nil, err
	}
	eff, err := e.policyFor(ctx, def.Document.Namespace)
	if err != nil {
		return nil, err
	}
	if p := eff.CheckWorkflow(def); p != nil {
		return nil, p
	}
	wf := &store.Workflow{
		Namespace: def.Document.Namespace,
		Name:      def.Document.Name,
		Version:   def.Document.Version,
		Format:    format,
		Source:    src,
		CreatedAt: time.Now().UTC(),
	}
	if err := e.store.PutWorkflow(ctx, wf); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("workflow %s/%s version %s exists with other content; give the new document a new version: %w",
				wf.Namespace, wf.Name, wf.Version, err)
		}
		return nil, err
	}
	e.mu.Lock()
	e.defs[defKey(wf.Namespace, wf.Name, wf.Version)] = def
	delete(e.latest, wf.Namespace+"/"+wf.Name)
	e.mu.Unlock()
	if err := e.syncSchedule(ctx, wf.Namespace, wf.Name); err != nil {
		return nil, fmt.Errorf("workflow %s/%s version %s is stored but its schedule is not: %w", wf.Namespace, wf.Name, wf.Version, err)
	}
	if err := e.startConsumingOn(ctx, def); err != nil {
		return nil, fmt.Errorf("workflow %s/%s version %s is stored but its schedule.on is not set up: %w", wf.Namespace, wf.Name, wf.Version, err)
	}
	return wf, nil
}

func (e *Engine) GetWorkflow(ctx context.Context, namespace, name, version string) (*store.Workflow, error) {
	return e.store.GetWorkflow(ctx, namespace, name, version)
}

func (e *Engine) ListWorkflows(ctx context.Context) ([]*store.Workflow, error) {
	return e.store.ListWorkflows(ctx)
}

// DeleteWorkflow removes a version (or all when version is ""). Running
// invocations keep the definition they started with.
func (e *Engine) DeleteWorkflow(ctx context.Context, namespace, name, version string) error {
	if err := e.store.DeleteWorkflow(ctx, namespace, name, version); err != nil {
		return err
	}
	// The deleted versions' schedules stop; if the newest version left
	// has a schedule, it takes over.
	defer func() {
		if err := e.syncSchedule(ctx, namespace, name); err != nil {
			e.log.Error("workflow deleted but its schedule is not updated", "workflow", namespace+"/"+name, "err", err)
		}
	}()
	if err := e.store.DeleteSchedules(ctx, namespace, name, version); err != nil {
		return fmt.Errorf("workflow %s/%s is deleted but its schedule is not: %w", namespace, name, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.latest, namespace+"/"+name)
	for k, def := range e.defs {
		if def.Document.Namespace == namespace && def.Document.Name == name &&
			(version == "" || def.Document.Version == version) {
			delete(e.defs, k)
		}
	}
	return nil
}

func defKey(namespace, name, version string) string { return namespace + "/" + name + "/" + version }

// definition returns a stored workflow parsed, from the cache when it was
// parsed before. Running invocations find their definition here even after
// the workflow was deleted, because the cache outlives the row for them.
func (e *Engine) definition(ctx context.Context, namespace, name, version string) (*dsl.Workflow, error) {
	if version != "" {
		e.mu.Lock()
		def := e.defs[defKey(namespace, name, version)]
		e.mu.Unlock()
		if def != nil {
			return def, nil
		}
	}
	wf, err := e.store.GetWorkflow(ctx, namespace, name, version)
	if err != nil {
		return nil, err
	}
	key := defKey(wf.Namespace, wf.Name, wf.Version)
	e.mu.Lock()
	def := e.defs[key]
	e.mu.Unlock()
	if def != nil {
		return def, nil
	}
	def, err = lang.ParseStored(wf)
	if err != nil {
		return nil, fmt.Errorf("stored workflow %s no longer parses: %w", key, err)
	}
	e.mu.Lock()
	e.defs[key] = def
	e.mu.Unlock()
	return def, nil
}

// latestTTL is how long the newest version of a workflow is trusted
// without asking the store: invoking by name is the hot path, while a new
// version applied through another replica may take this long to be seen.
const latestTTL = time.Second

type latestVersion struct {
	version string
	at      time.Time
}

func (e *Engine) latestVersion(ctx context.Context, namespace, name string) (string, error) {
	key := namespace + "/" + name
	e.mu.Lock()
	l, ok := e.latest[key]
	e.mu.Unlock()
	if ok && time.Since(l.at) < latestTTL {
		return l.version, nil
	}
	wf, err := e.store.GetWorkflow(ctx, namespace, name, "")
	if err != nil {
		return "", err
	}
	e.mu.Lock()
	e.latest[key] = latestVersion{version: wf.Version, at: time.Now()}
	e.mu.Unlock()
	return wf.Version, nil
}

// Invoke starts an invocation of a stored workflow (the newest version when
// version is "") and returns its index row.
func (e *Engine) Invoke(ctx context.Context, namespace, name, version string, input any) (*store.Invocation, error) {
	if err := e.admitting(); err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("engine: invocation id: %w", err)
	}
	return e.start(ctx, id.String(), "", namespace, name, version, input)
}

// start creates an invocation with a given id and sets it running. An id
// that is taken (live here or stored) fails with store.ErrConflict and
// leaves the existing invocation alone.
func (e *Engine) start(ctx context.Context, id, parent, namespace, name, version string, input any) (*store.Invocation, error) {
	inv, _, err := e.startOnce(ctx, id, parent, namespace, name, version, input, nil, nil)
	return inv, err
}

// traceInfo is info with the trace identity of a new invocation started
// in ctx, when the engine traces. The identity is recorded with the start,
// so that whoever runs the invocation, now or after a restart, traces it
// alike.
func (e *Engine) traceInfo(ctx context.Context, info map[string]any) map[string]any {
	if e.opts.Tracer == nil {
		return info
	}
	traced := e.opts.Tracer.Plan(ctx)
	maps.Copy(traced, info)
	return traced
}

// startOnce is start under an idempotency key when once is not nil: if the
// key is taken, nothing starts and the record holding it is returned.
// info, when set, is recorded on the InvocationStarted event (a rerun's
// origin).
func (e *Engine) startOnce(ctx context.Context, id, parent, namespace, name, version string, input any,
	once *store.IdempotencyRecord, info map[string]any) (*store.Invocation, *store.IdempotencyRecord, error) {
	if version == "" {
		v, err := e.latestVersion(ctx, namespace, name)
		if err != nil {
			return nil, nil, err
		}
		version = v
	}
	def, err := e.definition(ctx, namespace, name, version)
	if err != nil {
		return nil, nil, err
	}
	secrets, err := e.loadSecrets(ctx, def, true)
	if err != nil {
		return nil, nil, err
	}
	eff, err := e.policyFor(ctx, namespace)
	if err != nil {
		return nil, nil, err
	}
	if err := e.admitStart(ctx, eff, parent, namespace, input); err != nil {
		return nil, nil, err
	}
	arrived := time.Now().UTC()
	qs, err := e.admitQoS(ctx, def, eff, parent, namespace)
	if missed := (*deferredDeadline)(nil); errors.As(err, &missed) && once == nil {
		inv := &store.Invocation{ID: id, Namespace: namespace, Workflow: name, Version: version,
			Input: input, StartedAt: arrived, Durable: Durable(def), Parent: parent}
		started := core.Event{Seq: 1, Type: core.InvocationStarted, Time: arrived, Input: input, Info: e.traceInfo(ctx, info)}
		inv, err = e.recordDeadlineMissed(ctx, inv, started, missed)
		return inv, nil, err
	}
	if err != nil {
		return nil, nil, err
	}
	// The admission is settled by the instance once it runs; on every
	// other way out, here.
	admitted := false
	defer func() {
		if !admitted {
			qs.settle()
		}
	}()
	now := time.Now().UTC()
	inv := &store.Invocation{
		ID:        id,
		Namespace: namespace,
		Workflow:  name,
		Version:   version,
		Status:    core.StatusRunning,
		Input:     input,
		StartedAt: now,
		Durable:   Durable(def),
		Parent:    parent,
	}
	started := core.Event{Seq: 1, Type: core.InvocationStarted, Time: now, Input: input, Info: e.traceInfo(ctx, info)}
	var fence *store.Fence
	if e.cluster != nil && inv.Durable {
		var here bool
		// An idempotent start is recorded with its key in one
		// transaction of its own, unfenced: the owner, this replica or
		// another, picks it up on notification.
		if fence, here = e.cluster.fenceFor(inv.ID); !here || once != nil {
			return e.cluster.startOnceElsewhere(ctx, inv, started, once)
		}
	}
	// The instance is live before its row exists so that Wait and Get
	// find it the moment start returns.
	e.mu.Lock()
	if e.live[inv.ID] != nil {
		e.mu.Unlock()
		return nil, nil, fmt.Errorf("invocation %s is running already: %w", inv.ID, store.ErrConflict)
	}
	if err := e.runningLimitLocked(eff, namespace); err != nil {
		e.mu.Unlock()
		return nil, nil, err
	}
	// The slot is taken before the instance exists, so that concurrent
	// starts cannot all pass the limit.
	e.running[namespace]++
	e.mu.Unlock()
	in := e.newInstance(inv, def, secrets, eff.Limits, started.Info)
	in.fence = fence
	in.qos = qs
	e.mu.Lock()
	if e.live[inv.ID] != nil {
		e.running[namespace]--
		e.mu.Unlock()
		return nil, nil, fmt.Errorf("invocation %s is running already: %w", inv.ID, store.ErrConflict)
	}
	e.live[inv.ID] = in
	e.mu.Unlock()
	var held *store.IdempotencyRecord
	if fence != nil {
		err = e.createFenced(ctx, in, started)
	} else {
		held, err = e.create(ctx, inv, started, once)
	}
	if err != nil || held != nil {
		e.mu.Lock()
		if e.live[inv.ID] == in {
			delete(e.live, inv.ID)
			e.running[namespace]--
		}
		e.mu.Unlock()
		if errors.Is(err, store.ErrFenced) {
			// The partition moved on meanwhile: its new owner runs it.
			e.cluster.fenced(fence)
			return e.cluster.startOnceElsewhere(ctx, inv, started, nil)
		}
		return nil, held, err
	}
	admitted = true
	in.begin(started)
	snapshot := *inv
	return &snapshot, nil, nil
}

// Durable reports whether a workflow keeps a history. Workflows opt out
// with document.metadata `baton.durability: none` (or the nested form
// `baton: {durability: none}`).
func Durable(def *dsl.Workflow) bool {
	md := def.Document.Metadata
	if v, ok := md["baton.durability"].(string); ok {
		return v != "none"
	}
	if b, ok := md["baton"].(map[string]any); ok {
		if v, ok := b["durability"].(string); ok {
			return v != "none"
		}
	}
	return true
}

// Wait blocks until the invocation ends or ctx is done; in the latter case
// it returns the invocation as it stands and ctx's error.
func (e *Engine) Wait(ctx context.Context, id string) (*store.Invocation, error) {
	e.recovery.ensure(ctx, id)
	e.mu.Lock()
	in := e.live[id]
	e.mu.Unlock()
	if in != nil {
		select {
		case <-in.done:
			return in.snapshot(), nil
		case <-ctx.Done():
			return in.snapshot(), ctx.Err()
		case <-in.halted:
			// Stopped here (its partition moved to another replica):
			// the store tells when it ends.
		}
	}
	// Not live here: finished, or (with a shared store) run elsewhere.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		inv, err := e.store.GetInvocation(ctx, id)
		if err != nil {
			return nil, err
		}
		if inv.Status != core.StatusRunning {
			return inv, nil
		}
		select {
		case <-ctx.Done():
			return inv, ctx.Err()
		case <-tick.C:
		}
	}
}

// GetInvocation returns an invocation; live ones are answered from memory,
// which is ahead of the store for non-durable invocations.
func (e *Engine) GetInvocation(ctx context.Context, id string) (*store.Invocation, error) {
	// One not resumed yet is as its row says: nothing runs it.
	e.mu.Lock()
	in := e.live[id]
	e.mu.Unlock()
	if in != nil {
		return in.snapshot(), nil
	}
	return e.store.GetInvocation(ctx, id)
}

func (e *Engine) ListInvocations(ctx context.Context, f store.InvocationFilter) ([]*store.Invocation, string, error) {
	return e.store.ListInvocations(ctx, f)
}

// CountInvocations counts the invocations f selects by status; the error
// wraps errors.ErrUnsupported when the store cannot count.
func (e *Engine) CountInvocations(ctx context.Context, f store.InvocationFilter) (map[core.Status]int, error) {
	counter, ok := e.store.(store.InvocationCounter)
	if !ok {
		return nil, fmt.Errorf("the store %T counts no invocations: %w", e.store, errors.ErrUnsupported)
	}
	return counter.CountInvocations(ctx, f)
}

// CancelInvocation asks a running invocation to stop; reason (may be
// empty) is recorded on its CancelRequested event and in the error it ends
// with. Its child invocations are cancelled too, for a reason naming it.
// Cancelling one that has ended fails with store.ErrConflict.
func (e *Engine) CancelInvocation(ctx context.Context, id, reason string) error {
	e.recovery.ensure(ctx, id)
	e.mu.Lock()
	in := e.live[id]
	e.mu.Unlock()
	if in == nil {
		if e.cluster != nil {
			// Its owner applies the request.
			return e.cluster.requestCancel(ctx, id, reason)
		}
		inv, err := e.store.GetInvocation(ctx, id)
		if err != nil {
			return err
		}
		if inv.Status != core.StatusRunning {
			return fmt.Errorf("invocation %s has already %s: %w", id, inv.Status, store.ErrConflict)
		}
		return fmt.Errorf("invocation %s is not running on this engine: %w", id, store.ErrConflict)
	}
	if !in.cancel(reason) {
		return fmt.Errorf("invocation %s has already ended: %w", id, store.ErrConflict)
	}
	e.cancelSubtree(id)
	return nil
}

func (e *Engine) History(ctx context.Context, id string) ([]core.Event, error) {
	e.mu.Lock()
	in := e.live[id]
	e.mu.Unlock()
	if in != nil && !in.inv.Durable {
		return in.memoryHistory(), nil
	}
	if _, err := e.store.GetInvocation(ctx, id); err != nil {
		return nil, err
	}
	return e.store.History(ctx, id)
}
