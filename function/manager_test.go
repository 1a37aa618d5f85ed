package function

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/internal/metricstest"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeRuntime starts instances that echo their input, and can be told to
// block, fail to start, or break.
type fakeRuntime struct {
	started  atomic.Int32
	closed   atomic.Int32
	retired  atomic.Int32
	startErr error
	// gate, when set, holds every call until it is closed.
	gate chan struct{}
	// running counts calls in progress; maxRunning is its peak.
	running, maxRunning atomic.Int32
}

func (r *fakeRuntime) Start(ctx context.Context, spec *Spec) (Instance, Phases, error) {
	if r.startErr != nil {
		return nil, Phases{}, r.startErr
	}
	r.started.Add(1)
	return &fakeInstance{rt: r}, Phases{Compile: time.Millisecond, Instantiate: 2 * time.Millisecond, Init: 3 * time.Millisecond}, nil
}

func (r *fakeRuntime) Retire(*Spec)                {}
func (r *fakeRuntime) Close(context.Context) error { return nil }

type fakeInstance struct {
	rt     *fakeRuntime
	broken atomic.Bool
}

func (i *fakeInstance) Invoke(ctx context.Context, input json.RawMessage) (json.RawMessage, error) {
	n := i.rt.running.Add(1)
	defer i.rt.running.Add(-1)
	for {
		m := i.rt.maxRunning.Load()
		if n <= m || i.rt.maxRunning.CompareAndSwap(m, n) {
			break
		}
	}
	if i.rt.gate != nil {
		select {
		case <-i.rt.gate:
		case <-ctx.Done():
			i.broken.Store(true)
			return nil, ctx.Err()
		}
	}
	switch string(input) {
	case `"break"`:
		i.broken.Store(true)
		return nil, problem.Runtime("instance crashed")
	case `"garbage"`:
		return json.RawMessage(`{not json`), nil
	case `"fail"`:
		return nil, problem.Runtime("function says no")
	}
	return input, nil
}

func (i *fakeInstance) Healthy() bool { return !i.broken.Load() }
func (i *fakeInstance) Close(context.Context) error {
	i.rt.closed.Add(1)
	return nil
}

// specMap is a Specs over fixed specs, by reference (Qualify).
type specMap map[string]*Spec

func (m specMap) Get(_ context.Context, namespace, name, version string) (*Spec, error) {
	s, ok := m[Qualify(namespace, name)]
	if !ok || (version != "" && version != s.Version) {
		return nil, NotFound(name, version)
	}
	return s, nil
}

// eventRecorder is an Observer keeping every event.
type eventRecorder struct {
	mu     sync.Mutex
	events []Event
	signal chan Event
}

func newRecorder() *eventRecorder { return &eventRecorder{signal: make(chan Event, 1024)} }

func (r *eventRecorder) Observe(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	r.signal <- e
}

func (r *eventRecorder) count(kind EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// waitFor waits for an event of the given kind.
func (r *eventRecorder) waitFor(t *testing.T, kind EventKind, timeout time.Duration) Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-r.signal:
			if e.Kind == kind {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event within %s", kind, timeout)
		}
	}
}

func newTestManager(t *testing.T, rt Runtime, spec *Spec, opts Options) *Manager {
	t.Helper()
	if spec.Runtime == "" {
		spec.Runtime = KindProcess
	}
	m, err := NewManager(specMap{spec.Name: spec}, map[Kind]Runtime{spec.Runtime: rt}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

func TestInvokeColdThenWarm(t *testing.T) {
	rt := &fakeRuntime{}
	rec := newRecorder()
	reg := prometheus.NewRegistry()
	m := newTestManager(t, rt, &Spec{Name: "echo", Version: "1"}, Options{Observers: []Observer{rec}, Metrics: reg})
	ctx := context.Background()

	first, err := m.Invoke(ctx, "echo", map[string]any{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	if !first.Cold {
		t.Error("first call was not cold")
	}
	want := Phases{Compile: time.Millisecond, Instantiate: 2 * time.Millisecond, Init: 3 * time.Millisecond}
	if first.ColdStart != want {
		t.Errorf("cold start = %+v, want %+v", first.ColdStart, want)
	}
	if got := first.Output.(map[string]any)["n"]; got != float64(1) {
		t.Errorf("output = %v", first.Output)
	}
	second, err := m.Invoke(ctx, "echo", json.RawMessage(`[1,2]`))
	if err != nil {
		t.Fatal(err)
	}
	if second.Cold || second.ColdStart != (Phases{}) {
		t.Errorf("second call cold=%v phases=%+v, want warm", second.Cold, second.ColdStart)
	}
	if second.Instance != first.Instance || second.Version != "1" {
		t.Errorf("instance %q version %q, want %q on version 1", second.Instance, second.Version, first.Instance)
	}
	if string(second.Raw) != `[1,2]` {
		t.Errorf("raw = %s", second.Raw)
	}
	if rt.started.Load() != 1 {
		t.Errorf("started %d instances, want 1", rt.started.Load())
	}

	kinds := []EventKind{}
	for _, e := range m.Events("echo") {
		kinds = append(kinds, e.Kind)
	}
	wantKinds := []EventKind{EventCreated, EventIdle, EventBusy, EventIdle, EventBusy, EventIdle}
	// The new instance goes idle and is then handed to the call, or is
	// handed over directly: both orders are valid starts of a life.
	if strings.Join(kindsToStrings(kinds), ",") != strings.Join(kindsToStrings(wantKinds[2:]), ",") &&
		strings.Join(kindsToStrings(kinds), ",") != "created,busy,idle,busy,idle" {
		t.Errorf("events = %v", kinds)
	}
	if created := m.Events("echo")[0]; created.Kind != EventCreated || created.Phases != want {
		t.Errorf("first event = %+v, want created with phases", created)
	}

	for _, tc := range []struct {
		metric string
		labels map[string]string
		want   float64
	}{
		{"baton_function_invocations_total", map[string]string{"function": "echo"}, 2},
		{"baton_function_cold_starts_total", map[string]string{"function": "echo"}, 1},
		{"baton_function_instances", map[string]string{"function": "echo", "state": "idle"}, 1},
		{"baton_function_instances", map[string]string{"function": "echo", "state": "busy"}, 0},
		{"baton_function_duration_seconds", map[string]string{"function": "echo"}, 2},
		{"baton_function_cold_start_seconds", map[string]string{"function": "echo", "phase": "init"}, 1},
		{"baton_function_cold_start_seconds", map[string]string{"function": "echo", "phase": "total"}, 1},
	} {
		if got := metricValue(t, reg, tc.metric, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.metric, tc.labels, got, tc.want)
		}
	}
	stats, ok := m.Stats("echo")
	if !ok || stats.Invocations != 2 || stats.ColdStarts != 1 || stats.MeanColdStart != 6*time.Millisecond {
		t.Errorf("stats = %+v", stats)
	}
}

// metricValue reads a counter or gauge, or a histogram's sample count.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok, err := metricstest.Value(reg, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("metric %s%v not found", name, labels)
	}
	return v
}

func kindsToStrings(ks []EventKind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

func TestPoolMaxSizeAndQueue(t *testing.T) {
	rt := &fakeRuntime{gate: make(chan struct{})}
	spec := &Spec{Name: "slow", Version: "1", Limits: Limits{MaxInstances: 2, MaxQueue: 3}}
	m := newTestManager(t, rt, spec, Options{})
	ctx := context.Background()

	var wg sync.WaitGroup
	results := make(chan error, 5)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := m.Invoke(ctx, "slow", "x")
			results <- err
		}()
	}
	waitUntil(t, func() bool {
		m.mu.Lock()
		p := m.pools["slow"]
		m.mu.Unlock()
		if p == nil {
			return false
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		// Both busy calls must be inside the runtime, not merely holding
		// an instance, or the first may finish before the second enters.
		return len(p.busy) == 2 && len(p.waiters) == 3 && rt.running.Load() == 2
	})
	// The queue is full: a sixth call is refused at once.
	_, err := m.Invoke(ctx, "slow", "x")
	var pr *problem.Problem
	if !errors.As(err, &pr) || pr.Type != problem.TypeCommunication || pr.Status != 429 {
		t.Fatalf("call over a full queue: %v, want communication 429", err)
	}
	close(rt.gate)
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Errorf("queued call: %v", err)
		}
	}
	if got := rt.maxRunning.Load(); got != 2 {
		t.Errorf("peak concurrency %d, want 2", got)
	}
	if got := rt.started.Load(); got != 2 {
		t.Errorf("started %d instances, want 2", got)
	}
}

func TestQueuedCallGivesUpWithItsContext(t *testing.T) {
	rt := &fakeRuntime{gate: make(chan struct{})}
	spec := &Spec{Name: "slow", Version: "1", Limits: Limits{MaxInstances: 1}}
	m := newTestManager(t, rt, spec, Options{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := m.Invoke(context.Background(), "slow", "x"); err != nil {
			t.Errorf("first call: %v", err)
		}
	}()
	waitUntil(t, func() bool { return rt.running.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := m.Invoke(ctx, "slow", "x")
	var pr *problem.Problem
	if !errors.As(err, &pr) || pr.Type != problem.TypeTimeout {
		t.Fatalf("queued call past its deadline: %v, want a timeout", err)
	}
	close(rt.gate)
	<-done
	// The instance is still there for the next call.
	if res, err := m.Invoke(context.Background(), "slow", "y"); err != nil || res.Cold {
		t.Fatalf("call after the queue emptied: %+v, %v", res, err)
	}
}

func TestCallTimeoutReplacesInstance(t *testing.T) {
	rt := &fakeRuntime{gate: make(chan struct{})}
	spec := &Spec{Name: "hang", Version: "1", Limits: Limits{Timeout: Duration(20 * time.Millisecond)}}
	rec := newRecorder()
	m := newTestManager(t, rt, spec, Options{Observers: []Observer{rec}})
	_, err := m.Invoke(context.Background(), "hang", "x")
	var pr *problem.Problem
	if !errors.As(err, &pr) || pr.Type != problem.TypeTimeout {
		t.Fatalf("err = %v, want timeout", err)
	}
	ev := rec.waitFor(t, EventEvicted, time.Second)
	if ev.Reason != ReasonUnhealthy {
		t.Errorf("evicted for %q, want %q", ev.Reason, ReasonUnhealthy)
	}
	close(rt.gate)
	res, err := m.Invoke(context.Background(), "hang", "x")
	if err != nil || !res.Cold {
		t.Fatalf("call after timeout: %+v, %v; want a cold success on a new instance", res, err)
	}
}

func TestBadOutcomes(t *testing.T) {
	tests := []struct {
		input      string
		wantType   string
		wantDetail string
		replaced   bool
	}{
		{`"break"`, problem.TypeRuntime, "crashed", true},
		{`"garbage"`, problem.TypeRuntime, "invalid JSON", false},
		{`"fail"`, problem.TypeRuntime, "says no", false},
	}
	for _, tc := range tests {
		t.Run(tc.input, func(t *testing.T) {
			rt := &fakeRuntime{}
			m := newTestManager(t, rt, &Spec{Name: "f", Version: "1"}, Options{})
			ctx := context.Background()
			if _, err := m.Invoke(ctx, "f", "warm"); err != nil {
				t.Fatal(err)
			}
			_, err := m.Invoke(ctx, "f", json.RawMessage(tc.input))
			var pr *problem.Problem
			if !errors.As(err, &pr) || pr.Type != tc.wantType || !strings.Contains(pr.Detail, tc.wantDetail) {
				t.Fatalf("err = %v, want %s containing %q", err, tc.wantType, tc.wantDetail)
			}
			res, err := m.Invoke(ctx, "f", "after")
			if err != nil || res.Output != "after" {
				t.Fatalf("next call: %+v, %v", res, err)
			}
			if res.Cold != tc.replaced {
				t.Errorf("next call cold = %v, want %v", res.Cold, tc.replaced)
			}
		})
	}
}

func TestStartFailureReachesTheCallerAndPoolRecovers(t *testing.T) {
	rt := &fakeRuntime{startErr: errors.New("exec: no such file")}
	m := newTestManager(t, rt, &Spec{Name: "f", Version: "1", Limits: Limits{MaxInstances: 1}}, Options{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := m.Invoke(context.Background(), "f", 1)
			var pr *problem.Problem
			if !errors.As(err, &pr) || pr.Type != problem.TypeRuntime || !strings.Contains(pr.Detail, "no such file") {
				t.Errorf("err = %v, want a runtime problem naming the cause", err)
			}
		}()
	}
	wg.Wait()
	rt.startErr = nil
	if _, err := m.Invoke(context.Background(), "f", 1); err != nil {
		t.Fatalf("after the runtime recovered: %v", err)
	}
}

func TestUnknownFunction(t *testing.T) {
	m := newTestManager(t, &fakeRuntime{}, &Spec{Name: "f", Version: "1"}, Options{})
	for _, name := range []string{"nope", "f@7"} {
		_, err := m.Invoke(context.Background(), name, nil)
		var pr *problem.Problem
		if !errors.As(err, &pr) || pr.Type != problem.TypeConfiguration || pr.Status != 404 {
			t.Errorf("%s: err = %v, want configuration 404", name, err)
		}
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err does not match store.ErrNotFound", name)
		}
	}
	if _, err := m.Invoke(context.Background(), "f@1", 1); err != nil {
		t.Errorf("pinned version: %v", err)
	}
}

func TestKeepAliveEvictsIdleInstances(t *testing.T) {
	rt := &fakeRuntime{}
	rec := newRecorder()
	m := newTestManager(t, rt, &Spec{Name: "f", Version: "1"}, Options{
		KeepAlive: IdleTimeout(40 * time.Millisecond),
		Observers: []Observer{rec},
	})
	begin := time.Now()
	if _, err := m.Invoke(context.Background(), "f", 1); err != nil {
		t.Fatal(err)
	}
	ev := rec.waitFor(t, EventEvicted, 2*time.Second)
	if ev.Reason != ReasonKeepAlive {
		t.Errorf("reason = %q", ev.Reason)
	}
	if waited := time.Since(begin); waited < 40*time.Millisecond {
		t.Errorf("evicted after %s, before the idle timeout", waited)
	}
	waitUntil(t, func() bool { return rt.closed.Load() == 1 })
	if n := len(m.Instances("f")); n != 0 {
		t.Errorf("%d instances left", n)
	}
	res, err := m.Invoke(context.Background(), "f", 1)
	if err != nil || !res.Cold {
		t.Fatalf("call after eviction: %+v, %v; want cold", res, err)
	}
}

// recordingPolicy keeps one instance warm and evicts the others, and
// records what it was asked.
type recordingPolicy struct {
	mu     sync.Mutex
	states []IdleState
}

func (p *recordingPolicy) Decide(s IdleState) Decision {
	p.mu.Lock()
	p.states = append(p.states, s)
	p.mu.Unlock()
	if s.Idle > 1 {
		return Decision{Evict: true}
	}
	return Decision{RecheckAt: s.Now.Add(time.Hour)}
}

func TestKeepAlivePolicySeesPoolAndStats(t *testing.T) {
	rt := &fakeRuntime{gate: make(chan struct{})}
	policy := &recordingPolicy{}
	rec := newRecorder()
	m := newTestManager(t, rt, &Spec{Name: "f", Version: "1", Limits: Limits{MaxInstances: 3}, KeepAlive: "fixed:1h"}, Options{KeepAlive: policy, Observers: []Observer{rec}})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.Invoke(context.Background(), "f", 1); err != nil {
				t.Error(err)
			}
		}()
	}
	waitUntil(t, func() bool { return rt.running.Load() == 3 })
	close(rt.gate)
	wg.Wait()
	waitUntil(t, func() bool { return rec.count(EventEvicted) == 2 })
	if n := len(m.Instances("f")); n != 1 {
		t.Fatalf("%d instances kept, want 1", n)
	}
	policy.mu.Lock()
	defer policy.mu.Unlock()
	last := policy.states[len(policy.states)-1]
	if last.Function != "f" || last.Version != "1" || last.KeepAlive != "fixed:1h" || last.Stats.Invocations != 3 || last.Stats.ColdStarts != 3 || last.IdleSince.IsZero() {
		t.Errorf("policy saw %+v", last)
	}
}

func TestKeepAliveIdleTimeoutPolicy(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	policy := IdleTimeout(10 * time.Minute)
	tests := []struct {
		name     string
		state    IdleState
		evict    bool
		recheck  time.Time
		prepared bool
	}{
		{"fresh", IdleState{IdleSince: now, Now: now}, false, now.Add(10 * time.Minute), false},
		{"almost", IdleState{IdleSince: now.Add(-9 * time.Minute), Now: now}, false, now.Add(time.Minute), false},
		{"expired", IdleState{IdleSince: now.Add(-10 * time.Minute), Now: now}, true, time.Time{}, false},
		{"prepared for later", IdleState{IdleSince: now.Add(-time.Hour), PreparedFor: now.Add(time.Minute), Now: now}, false, now.Add(11 * time.Minute), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := policy.Decide(tc.state)
			if d.Evict != tc.evict || !d.RecheckAt.Equal(tc.recheck) {
				t.Errorf("Decide = %+v, want evict=%v recheck=%v", d, tc.evict, tc.recheck)
			}
		})
	}
}

func TestPrepareWarmsAnInstance(t *testing.T) {
	rt := &fakeRuntime{}
	m := newTestManager(t, rt, &Spec{Name: "f", Version: "1"}, Options{})
	if err := m.Prepare(context.Background(), "f", time.Now()); err != nil {
		t.Fatal(err)
	}
	if rt.started.Load() != 1 {
		t.Fatalf("Prepare started %d instances", rt.started.Load())
	}
	res, err := m.Invoke(context.Background(), "f", 1)
	if err != nil || res.Cold {
		t.Fatalf("call after Prepare: %+v, %v; want warm", res, err)
	}
	// Preparing again with an idle instance starts nothing.
	if err := m.Prepare(context.Background(), "f", time.Now()); err != nil {
		t.Fatal(err)
	}
	if rt.started.Load() != 1 {
		t.Errorf("second Prepare started another instance")
	}
}

func TestPrepareLaterStartsAheadOfTime(t *testing.T) {
	rt := &fakeRuntime{}
	rec := newRecorder()
	m := newTestManager(t, rt, &Spec{Name: "f", Version: "1"}, Options{Observers: []Observer{rec}})
	if err := m.Prepare(context.Background(), "f", time.Now().Add(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if rt.started.Load() != 0 {
		t.Fatal("Prepare for later started at once")
	}
	rec.waitFor(t, EventCreated, 2*time.Second)
	waitUntil(t, func() bool { return len(m.Instances("f")) == 1 })
}

func TestNewVersionRetiresOldPool(t *testing.T) {
	rt := &fakeRuntime{}
	specs := specMap{"f": {Name: "f", Version: "1", Runtime: KindProcess}}
	m, err := NewManager(specs, map[Kind]Runtime{KindProcess: rt}, Options{SpecTTL: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if res, err := m.Invoke(context.Background(), "f", 1); err != nil || res.Version != "1" {
		t.Fatalf("%+v, %v", res, err)
	}
	specs["f"] = &Spec{Name: "f", Version: "2", Runtime: KindProcess}
	res, err := m.Invoke(context.Background(), "f", 1)
	if err != nil || res.Version != "2" || !res.Cold {
		t.Fatalf("after deploying version 2: %+v, %v", res, err)
	}
	waitUntil(t, func() bool { return rt.closed.Load() == 1 })
}

func TestCloseStopsInstances(t *testing.T) {
	rt := &fakeRuntime{}
	m, err := NewManager(specMap{"f": {Name: "f", Version: "1", Runtime: KindProcess, Limits: Limits{MaxInstances: 4}}}, map[Kind]Runtime{KindProcess: rt}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := m.Invoke(context.Background(), "f", 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rt.started.Load() != rt.closed.Load() {
		t.Errorf("started %d, closed %d", rt.started.Load(), rt.closed.Load())
	}
	if _, err := m.Invoke(context.Background(), "f", 1); err == nil {
		t.Error("Invoke after Close succeeded")
	}
}

func TestMissingRuntimeIsAConfigurationError(t *testing.T) {
	m, err := NewManager(specMap{"f": {Name: "f", Version: "1", Runtime: KindWasm}}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	_, err = m.Invoke(context.Background(), "f", 1)
	var pr *problem.Problem
	if !errors.As(err, &pr) || pr.Type != problem.TypeConfiguration {
		t.Fatalf("err = %v", err)
	}
}

func TestInvalidRawInput(t *testing.T) {
	m := newTestManager(t, &fakeRuntime{}, &Spec{Name: "f", Version: "1"}, Options{})
	_, err := m.Invoke(context.Background(), "f", json.RawMessage(`{`))
	var pr *problem.Problem
	if !errors.As(err, &pr) || pr.Type != problem.TypeValidation {
		t.Fatalf("err = %v", err)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// infoRuntime answers with the call info its context carries.
type infoRuntime struct{ fakeRuntime }

func (r *infoRuntime) Start(ctx context.Context, spec *Spec) (Instance, Phases, error) {
	return infoInstance{}, Phases{}, nil
}

type infoInstance struct{}

func (infoInstance) Invoke(ctx context.Context, input json.RawMessage) (json.RawMessage, error) {
	info, _ := CallInfoFrom(ctx)
	return json.Marshal(map[string]any{"key": info.IdempotencyKey, "input": input})
}
func (infoInstance) Healthy() bool               { return true }
func (infoInstance) Close(context.Context) error { return nil }

func TestCallFromAWorkflow(t *testing.T) {
	m := newTestManager(t, &infoRuntime{}, &Spec{Name: "hello", Version: "1"}, Options{})
	tests := []struct {
		name      string
		call      core.Call
		wantInput string
	}{
		{"with arguments", core.Call{Task: "/do/0/greet", Attempt: 2, Function: "hello", Args: map[string]any{"name": "Ada"}, Input: "ignored"}, `{"name":"Ada"}`},
		{"task input", core.Call{Task: "/do/1/greet", Attempt: 1, Function: "hello@1", Input: []any{1.0}, Timeout: time.Minute}, `[1]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := m.Call(context.Background(), DefaultNamespace, "inv-7", &tc.call)
			if err != nil {
				t.Fatal(err)
			}
			out := res.Output.(map[string]any)
			// The task key's leading slash is not doubled.
			wantKey := fmt.Sprintf("inv-7%s/%d", tc.call.Task, tc.call.Attempt)
			input, _ := json.Marshal(out["input"])
			if out["key"] != wantKey || string(input) != tc.wantInput {
				t.Errorf("function saw %v, want key %s and input %s", out, wantKey, tc.wantInput)
			}
		})
	}
}

// slowStartRuntime holds every start until release is closed, counting
// the starts in progress.
type slowStartRuntime struct {
	fakeRuntime
	release             chan struct{}
	starting, peakStart atomic.Int32
}

func (r *slowStartRuntime) Start(ctx context.Context, spec *Spec) (Instance, Phases, error) {
	n := r.starting.Add(1)
	for {
		peak := r.peakStart.Load()
		if n <= peak || r.peakStart.CompareAndSwap(peak, n) {
			break
		}
	}
	defer r.starting.Add(-1)
	select {
	case <-r.release:
	case <-ctx.Done():
		return nil, Phases{}, ctx.Err()
	}
	return r.fakeRuntime.Start(ctx, spec)
}

// Prepared starts take turns; a call meanwhile waits for the prepared
// instance of its function (not cold, but its wait is reported), and a
// call whose function's prepare waits for a turn starts its own.
func TestPreparedStartsTakeTurnsAndCallsReportTheirWait(t *testing.T) {
	rt := &slowStartRuntime{release: make(chan struct{})}
	specs := specMap{"f": {Name: "f", Version: "1", Runtime: KindProcess}, "g": {Name: "g", Version: "1", Runtime: KindProcess}}
	m, err := NewManager(specs, map[Kind]Runtime{KindProcess: rt}, Options{MaxPreparing: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })

	prepared := make(chan error, 2)
	go func() { prepared <- m.Prepare(context.Background(), "f", time.Now()) }()
	waitUntil(t, func() bool { return rt.starting.Load() == 1 })
	go func() { prepared <- m.Prepare(context.Background(), "g", time.Now()) }()

	type outcome struct {
		res Result
		err error
	}
	callF, callG := make(chan outcome, 1), make(chan outcome, 1)
	go func() { r, err := m.Invoke(context.Background(), "f", 1); callF <- outcome{r, err} }()
	go func() { r, err := m.Invoke(context.Background(), "g", 1); callG <- outcome{r, err} }()
	// g's call does not queue behind g's prepare: it starts its own.
	waitUntil(t, func() bool { return rt.starting.Load() == 2 })
	// Release the starts only once both calls wait in their pools: f's
	// for the prepared instance, g's for the one started for it.
	queued := func(name string) int {
		m.mu.Lock()
		p := m.pools[name]
		m.mu.Unlock()
		if p == nil {
			return 0
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.waiters)
	}
	waitUntil(t, func() bool { return queued("f") == 1 && queued("g") == 1 })
	close(rt.release)

	f := <-callF
	if f.err != nil || f.res.Cold || f.res.StartWait <= 0 {
		t.Fatalf("call of f during its prepared start: %+v %v; want warm with its wait for the start reported", f.res, f.err)
	}
	// (Its prepare may get its turn and finish first once starts are
	// released; either way the call waited for a start.)
	g := <-callG
	if g.err != nil || g.res.StartWait <= 0 {
		t.Fatalf("call of g while its prepare waited for a turn: %+v %v", g.res, g.err)
	}
	for range 2 {
		if err := <-prepared; err != nil {
			t.Fatal(err)
		}
	}
	if rt.peakStart.Load() != 2 {
		t.Fatalf("peak concurrent starts %d before any was released, want 2 (one prepared, one for a call)", rt.peakStart.Load())
	}
	warm, err := m.Invoke(context.Background(), "f", 1)
	if err != nil || warm.Cold || warm.StartWait != 0 {
		t.Fatalf("warm call: %+v %v", warm, err)
	}
}

// A prepare abandoned while it waited for its turn (its call came and
// started an instance of its own) starts nothing, even when a slot is
// free at the same moment: either may win the wait, and the abandonment
// must. Each try below would start an instance half the time otherwise.
func TestAbandonedPrepareStartsNothing(t *testing.T) {
	rt := &fakeRuntime{}
	m := newTestManager(t, rt, &Spec{Name: "f", Version: "1"}, Options{MaxPreparing: 1})
	abandoned, cancel := context.WithCancel(context.Background())
	cancel()
	for range 32 {
		if err := m.Prepare(abandoned, "f", time.Now()); !errors.Is(err, context.Canceled) {
			t.Fatalf("abandoned Prepare: %v, want context.Canceled", err)
		}
	}
	if n := rt.started.Load(); n != 0 {
		t.Fatalf("abandoned prepares started %d instances", n)
	}
}
