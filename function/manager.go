package function

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonflow/baton/problem"
	"github.com/prometheus/client_golang/prometheus"
)

// Specs resolves a namespace's function name to its deployed spec. *Registry is the
// implementation; a Registry also notifies the Manager of deploys so that
// a new version is used at once.
type Specs interface {
	// Get returns a version, or the newest when version is "", or a
	// NotFound error.
	Get(ctx context.Context, namespace, name, version string) (*Spec, error)
}

// Options configure a Manager. The zero value is usable.
type Options struct {
	// KeepAlive decides when idle instances are evicted; the default is
	// DefaultKeepAlive (idle for ten minutes).
	KeepAlive KeepAlive
	// Observers receive every instance lifecycle event. A KeepAlive that
	// is also an Observer receives them without being listed here.
	Observers []Observer
	// Metrics is where the function metrics are registered; nil keeps
	// them unregistered (they are still maintained).
	Metrics prometheus.Registerer
	Logger  *slog.Logger
	// SpecTTL is how long a resolved spec is trusted before the registry
	// is asked again, which is how versions deployed by another replica
	// are noticed. Deploys through the Registry given to NewManager are
	// noticed at once. Default: 2s.
	SpecTTL time.Duration
	// MaxPreparing is how many prepared (speculative) starts may run at
	// once across all functions; others wait for a turn. Default:
	// DefaultMaxPreparing(). Starts made for a waiting call are not
	// limited.
	MaxPreparing int
	// StartTimeout bounds an instance's cold start. Default: 2 minutes
	// (compiling a large module without a cache takes seconds).
	StartTimeout time.Duration
	// Now is the clock; tests replace it. Default: time.Now.
	Now func() time.Time
	// Admit, when set, decides each call before an instance is taken:
	// the server refuses calls to functions whose capabilities the
	// caller's policy (found in ctx) does not allow. An error is returned
	// to the caller as it is.
	Admit func(ctx context.Context, spec *Spec) error
}

// Result is a call's outcome.
type Result struct {
	// Output is the function's JSON output, decoded.
	Output any
	// Raw is the same output as the function wrote it.
	Raw json.RawMessage
	// Cold is true when the call started a new instance or waited for one
	// being started (a prepared instance is not cold).
	Cold bool
	// ColdStart is the serving instance's cold start, when Cold.
	ColdStart Phases
	// StartWait is how long the call waited for an instance to finish
	// starting, whether started for it (Cold) or prepared ahead and still
	// starting when the call came: the cold-start latency the call paid.
	StartWait time.Duration
	// Duration is the whole call as the caller saw it: queueing, cold
	// start and execution.
	Duration time.Duration
	// Instance names the instance that served the call.
	Instance string
	// Version is the function version that served the call.
	Version string
	// Runtime is the kind of runtime that ran it (wasm, process, http).
	Runtime Kind
}

// Manager runs calls on pools of function instances: one pool per
// function version, created on the first call, each instance serving one
// call at a time, at most Limits.MaxInstances instances, further calls
// waiting in a queue. It is safe for concurrent use.
type Manager struct {
	specs    Specs
	runtimes map[Kind]Runtime
	opts     Options
	log      *slog.Logger
	metrics  *metrics
	observer []Observer
	now      func() time.Time

	mu     sync.Mutex
	pools  map[string]*pool // by the reference callers use (Qualify): "[ns/]fn" or "[ns/]fn@version"
	logs   map[string]*eventLog
	closed bool

	unsubscribe func()

	// startCtx bounds every cold start; Close cancels it so that no start
	// outlives the Manager.
	startCtx    context.Context
	cancelStart context.CancelFunc

	// The sweeper asks the keep-alive policy about idle instances when
	// the times it named come.
	sweepMu   sync.Mutex
	timerMu   sync.Mutex
	timer     *time.Timer
	nextSweep atomic.Int64 // unix nanoseconds, 0 when none is scheduled

	prepMu     sync.Mutex
	prepTimers map[*time.Timer]struct{}
	prepSlots  chan struct{} // one token per prepared start running

	bgMu     sync.Mutex
	bgClosed bool
	bg       sync.WaitGroup
}

// DefaultMaxPreparing is the default number of prepared starts that run
// at once: half the usable CPUs, at least one, so that speculative starts
// leave the calls and the engine a core.
func DefaultMaxPreparing() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// NewManager returns a Manager resolving functions through specs and
// starting instances with the runtime of their kind.
func NewManager(specs Specs, runtimes map[Kind]Runtime, opts Options) (*Manager, error) {
	if opts.KeepAlive == nil {
		opts.KeepAlive = DefaultKeepAlive
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SpecTTL <= 0 {
		opts.SpecTTL = 2 * time.Second
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	if opts.MaxPreparing <= 0 {
		opts.MaxPreparing = DefaultMaxPreparing()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	met, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, err
	}
	rts := make(map[Kind]Runtime, len(runtimes))
	for k, rt := range runtimes {
		rts[k] = rt
	}
	m := &Manager{
		specs:      specs,
		runtimes:   rts,
		opts:       opts,
		log:        opts.Logger,
		metrics:    met,
		now:        opts.Now,
		pools:      map[string]*pool{},
		logs:       map[string]*eventLog{},
		prepTimers: map[*time.Timer]struct{}{},
		prepSlots:  make(chan struct{}, opts.MaxPreparing),
	}
	m.startCtx, m.cancelStart = context.WithCancel(context.Background())
	m.observer = append(m.observer, opts.Observers...)
	if o, ok := opts.KeepAlive.(Observer); ok {
		m.observer = append(m.observer, o)
	}
	if sub, ok := specs.(interface {
		Subscribe(func(name string)) func()
	}); ok {
		m.unsubscribe = sub.Subscribe(m.invalidate)
	}
	return m, nil
}

// Invoke calls a function with input (any JSON-encodable value; a
// json.RawMessage is sent as it is). name is a function reference (see
// Qualify): a function name, whose newest version is called, or
// "name@version", prefixed with "namespace/" outside the default
// namespace. Errors are
// *problem.Problem values: configuration (404) for an unknown function,
// timeout, runtime (trap, crash, invalid output), communication
// (unreachable endpoint, full queue).
func (m *Manager) Invoke(ctx context.Context, name string, input any) (Result, error) {
	begin := m.now()
	raw, err := encodeInput(input)
	if err != nil {
		return Result{}, err
	}
	p, err := m.pool(ctx, name)
	if err != nil {
		return Result{}, err
	}
	if m.opts.Admit != nil {
		if err := m.opts.Admit(ctx, p.spec); err != nil {
			return Result{}, err
		}
	}
	p.metrics.invocations.Inc()
	res, err := p.invoke(ctx, raw, begin)
	res.Duration = m.now().Sub(begin)
	p.metrics.duration.Observe(res.Duration.Seconds())
	if err != nil {
		p.metrics.failed(err)
		return res, err
	}
	return res, nil
}

func encodeInput(input any) (json.RawMessage, error) {
	if raw, ok := input.(json.RawMessage); ok {
		if len(raw) == 0 {
			return json.RawMessage("null"), nil
		}
		if !json.Valid(raw) {
			return nil, problem.Validation("function input is not valid JSON")
		}
		return raw, nil
	}
	raw, err := json.Marshal(input)
	if err != nil {
		return nil, problem.Validation("function input cannot be encoded as JSON: %v", err)
	}
	return raw, nil
}

// Runtime is the runtime kind of a function a workflow of namespace calls
// (fn as in a call: a name, perhaps @version), for the QoS scheduler that
// seats calls in a pool per runtime.
func (m *Manager) Runtime(ctx context.Context, namespace, fn string) (Kind, error) {
	p, err := m.pool(ctx, Qualify(namespace, fn))
	if err != nil {
		return "", err
	}
	return p.spec.Runtime, nil
}

// Prepare asks for a warm instance of a function to be ready by the given
// time: prewarming. An idle instance is kept for it; otherwise one is
// started so that its expected cold start ends by then (at once when that
// is now or past, in which case Prepare returns after the start and
// reports its error). With every instance busy there is nothing to do:
// they will be idle soon enough.
func (m *Manager) Prepare(ctx context.Context, name string, by time.Time) error {
	p, err := m.pool(ctx, name)
	if err != nil {
		return err
	}
	lead := p.expectedColdStart()
	startAt := by.Add(-lead - lead/4)
	wait := startAt.Sub(m.now())
	if wait <= 0 {
		return p.prepare(ctx, by)
	}
	m.prepMu.Lock()
	defer m.prepMu.Unlock()
	if m.isClosed() {
		return errManagerClosed
	}
	var t *time.Timer
	t = time.AfterFunc(wait, func() {
		m.prepMu.Lock()
		delete(m.prepTimers, t)
		m.prepMu.Unlock()
		if err := p.prepare(context.Background(), by); err != nil {
			m.log.Warn("prewarming failed", "function", p.spec.Ref(), "error", err)
		}
	})
	m.prepTimers[t] = struct{}{}
	return nil
}

var errManagerClosed = problem.New(problem.TypeCancelled, 503, "Unavailable", "the function manager is closed")

func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// InstanceInfo describes a live instance.
type InstanceInfo struct {
	ID        string    `json:"id"`
	Function  string    `json:"function"`
	Version   string    `json:"version"`
	State     string    `json:"state"` // "busy" or "idle"
	Created   time.Time `json:"created"`
	ColdStart Phases    `json:"coldStart"`
	Calls     uint64    `json:"calls"`
	IdleSince time.Time `json:"idleSince,omitzero"`
}

// Instances lists the live instances of a function (every version; name
// is a reference as Qualify makes it), or of every function when name is "".
func (m *Manager) Instances(name string) []InstanceInfo {
	var out []InstanceInfo
	for _, p := range m.poolList() {
		if name == "" || p.spec.key() == name {
			out = p.appendInstances(out)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Events returns the newest lifecycle events of a function's instances,
// oldest first; name is a reference as Qualify makes it.
func (m *Manager) Events(name string) []Event {
	m.mu.Lock()
	l := m.logs[name]
	m.mu.Unlock()
	if l == nil {
		return nil
	}
	return l.events()
}

// Stats returns the traffic summary of a function's current pool.
func (m *Manager) Stats(name string) (Stats, bool) {
	m.mu.Lock()
	p := m.pools[name]
	m.mu.Unlock()
	if p == nil {
		return Stats{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats, true
}

// Close stops every instance. Calls in flight finish first, or are
// abandoned when ctx ends. Runtimes are not closed: they belong to the
// caller, who closes them after the Manager.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	pools := make([]*pool, 0, len(m.pools))
	for _, p := range m.pools {
		pools = append(pools, p)
	}
	m.pools = map[string]*pool{}
	m.mu.Unlock()

	if m.unsubscribe != nil {
		m.unsubscribe()
	}
	m.prepMu.Lock()
	for t := range m.prepTimers {
		t.Stop()
	}
	m.prepTimers = map[*time.Timer]struct{}{}
	m.prepMu.Unlock()
	m.timerMu.Lock()
	if m.timer != nil {
		m.timer.Stop()
	}
	m.timerMu.Unlock()
	m.sweepMu.Lock() // waits for a sweep under way
	m.sweepMu.Unlock()

	for _, p := range pools {
		p.retire(ReasonClosed)
	}
	m.cancelStart()
	// Busy instances are closed when their call ends.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		busy := 0
		for _, p := range pools {
			busy += p.busyCount()
		}
		if busy == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("function manager: %d calls still running: %w", busy, ctx.Err())
		case <-tick.C:
		}
	}
	m.bgMu.Lock()
	m.bgClosed = true
	m.bgMu.Unlock()
	m.bg.Wait()
	return nil
}

// pool returns the pool serving name, resolving the spec when the pool is
// new or its spec was last checked longer than SpecTTL ago.
func (m *Manager) pool(ctx context.Context, name string) (*pool, error) {
	ns, fn, version := splitRef(name)
	now := m.now()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errManagerClosed
	}
	p := m.pools[name]
	m.mu.Unlock()
	if p != nil {
		checked := time.Unix(0, p.checkedAt.Load())
		if now.Sub(checked) < m.opts.SpecTTL || !p.refreshing.CompareAndSwap(false, true) {
			return p, nil
		}
		defer p.refreshing.Store(false)
	}

	spec, err := m.specs.Get(ctx, ns, fn, version)
	if err != nil {
		var nf *notFoundError
		if errors.As(err, &nf) {
			if p != nil {
				m.dropPool(name, p, ReasonRetired)
			}
			return nil, err
		}
		if p != nil {
			m.log.Warn("function registry unavailable; serving the known version", "function", name, "error", err)
			p.checkedAt.Store(now.UnixNano())
			return p, nil
		}
		return nil, fmt.Errorf("function %s: %w", name, err)
	}
	if spec.Namespace != ns {
		// The pool, its events and metrics are the namespace's that was
		// asked for, whatever a Specs implementation fills in.
		c := *spec
		c.Namespace = ns
		spec = &c
	}
	if p != nil && p.spec.Version == spec.Version {
		p.checkedAt.Store(now.UnixNano())
		return p, nil
	}

	rt := m.runtimes[spec.Runtime]
	if rt == nil {
		p := problem.Configuration("function %s needs the %q runtime, which this server does not run", spec.Ref(), spec.Runtime)
		return nil, p
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errManagerClosed
	}
	if cur := m.pools[name]; cur != nil && cur != p {
		// Someone else replaced the pool meanwhile.
		return cur, nil
	}
	np := newPool(m, spec, rt, m.logFor(spec.key()))
	np.checkedAt.Store(now.UnixNano())
	if p != nil {
		np.stats = p.statsSnapshot()
		delete(m.pools, name)
		go p.retire(ReasonRetired)
	}
	m.pools[name] = np
	return np, nil
}

// logFor returns a function's event log; m.mu must be held.
func (m *Manager) logFor(name string) *eventLog {
	l := m.logs[name]
	if l == nil {
		l = &eventLog{}
		m.logs[name] = l
	}
	return l
}

func (m *Manager) dropPool(name string, p *pool, reason string) {
	m.mu.Lock()
	if m.pools[name] == p {
		delete(m.pools, name)
	}
	m.mu.Unlock()
	p.retire(reason)
}

// invalidate makes the next call of a function check its spec again; the
// Registry calls it after a deploy or delete.
func (m *Manager) invalidate(name string) {
	for _, p := range m.poolList() {
		if p.spec.key() == name {
			p.checkedAt.Store(0)
		}
	}
}

func (m *Manager) poolList() []*pool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*pool, 0, len(m.pools))
	for _, p := range m.pools {
		out = append(out, p)
	}
	return out
}

func (m *Manager) emit(l *eventLog, e Event) {
	if e.Err != nil {
		e.Error = e.Err.Error()
	}
	l.add(e)
	for _, o := range m.observer {
		o.Observe(e)
	}
}

// closeInBackground closes an evicted instance without holding up the
// call that evicted it.
func (m *Manager) closeInBackground(id string, inst Instance) {
	m.bgMu.Lock()
	if m.bgClosed {
		m.bgMu.Unlock()
		m.closeInstance(id, inst)
		return
	}
	m.bg.Add(1)
	m.bgMu.Unlock()
	go func() {
		defer m.bg.Done()
		m.closeInstance(id, inst)
	}()
}

func (m *Manager) closeInstance(id string, inst Instance) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := inst.Close(ctx); err != nil {
		m.log.Warn("closing a function instance failed", "instance", id, "error", err)
	}
}

// scheduleSweep makes sure the sweeper runs by t.
func (m *Manager) scheduleSweep(t time.Time) {
	if next := m.nextSweep.Load(); next != 0 && next <= t.UnixNano() {
		return
	}
	m.timerMu.Lock()
	defer m.timerMu.Unlock()
	if next := m.nextSweep.Load(); next != 0 && next <= t.UnixNano() {
		return
	}
	if m.isClosed() {
		return
	}
	m.nextSweep.Store(t.UnixNano())
	d := max(t.Sub(m.now()), 0)
	if m.timer == nil {
		m.timer = time.AfterFunc(d, m.sweep)
	} else {
		m.timer.Reset(d)
	}
}

// sweep asks the keep-alive policy about every idle instance whose check
// is due, then schedules itself for the earliest next check.
func (m *Manager) sweep() {
	m.sweepMu.Lock()
	defer m.sweepMu.Unlock()
	m.nextSweep.Store(0)
	if m.isClosed() {
		return
	}
	var earliest time.Time
	for _, p := range m.poolList() {
		if next := p.sweep(m.now()); !next.IsZero() && (earliest.IsZero() || next.Before(earliest)) {
			earliest = next
		}
	}
	if !earliest.IsZero() {
		m.scheduleSweep(earliest)
	}
}
