package engine_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/qos"
	"github.com/batonflow/baton/store"
)

// gatedFunctions is a "*" executor whose calls block until released, and
// which records the order calls began in.
type gatedFunctions struct {
	mu      sync.Mutex
	order   []string
	waiting map[string]chan struct{}
}

func newGatedFunctions() *gatedFunctions {
	return &gatedFunctions{waiting: map[string]chan struct{}{}}
}

func (g *gatedFunctions) gate(label string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := g.waiting[label]
	if ch == nil {
		ch = make(chan struct{})
		g.waiting[label] = ch
	}
	return ch
}

func (g *gatedFunctions) Execute(ctx context.Context, req *engine.CallRequest) (engine.CallResult, error) {
	label := fmt.Sprint(req.Args["label"])
	g.mu.Lock()
	g.order = append(g.order, label)
	g.mu.Unlock()
	select {
	case <-g.gate(label):
	case <-ctx.Done():
		return engine.CallResult{}, ctx.Err()
	}
	return engine.CallResult{Output: label}, nil
}

func (g *gatedFunctions) release(label string) { close(g.gate(label)) }

func (g *gatedFunctions) began() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.order...)
}

func qosEngine(t *testing.T, fns *gatedFunctions, o qos.Options, pol engine.Policies) (*engine.Engine, *qos.Scheduler) {
	t.Helper()
	s := qos.New(o)
	e := newEngine(t, openStore(t, t.TempDir()), func(opts *engine.Options) {
		opts.QoS = s
		opts.Executors = map[string]engine.Executor{"*": fns}
		opts.Policies = pol
	})
	t.Cleanup(func() { e.Close() })
	return e, s
}

// stepsDoc is a workflow of calls of fn, labelled prefix1, prefix2...
func stepsDoc(name, metadata string, labels ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "document: {dsl: '1.0.0', namespace: default, name: %s, version: '1.0.0'%s}\ndo:\n", name, metadata)
	for i, l := range labels {
		fmt.Fprintf(&b, "  - s%d:\n      call: fn\n      with: {label: %s}\n", i, l)
	}
	return b.String()
}

func apply(t *testing.T, e *engine.Engine, doc string) {
	t.Helper()
	if _, err := e.ApplyWorkflow(context.Background(), "wf.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
}

// TestQoSContinuationPriority: with one wasm seat taken, the second call
// of a running workflow goes before the first call of a workflow that
// started earlier, unless the ablation turns continuation priority off.
// The running workflow's first call runs in another pool (http).
func TestQoSContinuationPriority(t *testing.T) {
	for _, tt := range []struct {
		name string
		off  bool
		want string
	}{
		{"on", false, "[x1 a1 a2 b1]"},
		{"ablated", true, "[x1 a1 b1 a2]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fns := newGatedFunctions()
			s := qos.New(qos.Options{Seats: map[string]int{qos.PoolWasm: 1}, BacklogTarget: 5, NoContinuations: tt.off})
			e := newEngine(t, openStore(t, t.TempDir()), func(opts *engine.Options) {
				opts.QoS = s
				opts.Executors = map[string]engine.Executor{"*": fns}
				opts.QoSPool = func(_ context.Context, _, fn string) string {
					if fn == "remote" {
						return qos.PoolHTTP
					}
					return qos.PoolWasm
				}
			})
			t.Cleanup(func() { e.Close() })
			apply(t, e, stepsDoc("x", "", "x1"))
			apply(t, e, stepsDoc("b", "", "b1"))
			apply(t, e, strings.Replace(stepsDoc("a", "", "a1", "a2"), "call: fn", "call: remote", 1))
			ctx := context.Background()
			var ids []string
			invoke := func(name string) {
				inv, err := e.Invoke(ctx, "default", name, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, inv.ID)
			}
			invoke("x")
			waitUntil(t, func() bool { return len(fns.began()) == 1 })
			invoke("b")
			waitUntil(t, func() bool { return queuedAtG2(s.Status()) == 1 })
			invoke("a")
			waitUntil(t, func() bool { return len(fns.began()) == 2 })
			fns.release("a1")
			waitUntil(t, func() bool { return queuedAtG2(s.Status()) == 2 })
			fns.release("x1")
			waitUntil(t, func() bool { return len(fns.began()) == 3 })
			fns.release("a2")
			fns.release("b1")
			for _, id := range ids {
				inv, err := e.Wait(ctx, id)
				if err != nil || inv.Status != core.StatusCompleted {
					t.Fatalf("%s: %v %v", id, inv.Status, err)
				}
			}
			if got := fmt.Sprint(fns.began()); got != tt.want {
				t.Errorf("calls began in order %s, want %s", got, tt.want)
			}
		})
	}
}

// TestQoSSeatHandOff: with one wasm seat, a running workflow's seat goes
// from each of its calls to the next although another workflow's call
// waits, and comes back when the workflow ends; the ablation turns the
// hand-off off.
func TestQoSSeatHandOff(t *testing.T) {
	for _, tt := range []struct {
		name string
		off  bool
		want string
	}{
		{"on", false, "[a1 a2 a3 b1]"},
		{"ablated", true, "[a1 b1 a2 a3]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fns := newGatedFunctions()
			// A kept seat waits for the workflow's next call or its end,
			// never for the clock.
			e, s := qosEngine(t, fns, qos.Options{Seats: map[string]int{qos.PoolWasm: 1}, BacklogTarget: 5,
				HandOff: time.Hour, NoContinuations: tt.off}, nil)
			apply(t, e, stepsDoc("a", "", "a1", "a2", "a3"))
			apply(t, e, stepsDoc("b", "", "b1"))
			ctx := context.Background()
			a, err := e.Invoke(ctx, "default", "a", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			waitUntil(t, func() bool { return len(fns.began()) == 1 })
			b, err := e.Invoke(ctx, "default", "b", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			waitUntil(t, func() bool { return queuedAtG2(s.Status()) == 1 })
			// Each call is released once it began: the order is the
			// scheduler's.
			for i := range 4 {
				waitUntil(t, func() bool { return len(fns.began()) > i })
				fns.release(fns.began()[i])
			}
			for _, id := range []string{a.ID, b.ID} {
				inv, err := e.Wait(ctx, id)
				if err != nil || inv.Status != core.StatusCompleted {
					t.Fatalf("%s: %v %v", id, inv.Status, err)
				}
			}
			if got := fmt.Sprint(fns.began()); got != tt.want {
				t.Errorf("calls began in order %s, want %s", got, tt.want)
			}
			waitUntil(t, func() bool {
				st := s.Status()
				return len(st.Pools) == 1 && len(st.Pools[0].InUse) == 0
			})
		})
	}
}

func queuedAtG2(s qos.Status) int {
	n := 0
	for _, p := range s.Pools {
		for _, q := range p.Queued {
			n += q.Count
		}
	}
	return n
}

// TestQoSClassInheritance: a subflow's calls carry the class, namespace
// and deadline of the workflow that started it; a request lowers the
// document's class.
func TestQoSClassInheritance(t *testing.T) {
	fns := newGatedFunctions()
	e, s := qosEngine(t, fns, qos.Options{}, nil)
	apply(t, e, stepsDoc("child", "", "c1"))
	apply(t, e, `
document: {dsl: '1.0.0', namespace: default, name: parent, version: '1.0.0', metadata: {baton.priorityClass: critical}}
do:
  - sub:
      run:
        workflow: {namespace: default, name: child, version: latest}
`)
	ctx := context.Background()
	for _, tt := range []struct {
		req  *qos.Request
		want string
	}{
		{nil, "critical"},
		{&qos.Request{Class: qos.Batch, HasClass: true}, "batch"},
	} {
		rctx := ctx
		if tt.req != nil {
			rctx = qos.WithRequest(ctx, *tt.req)
		}
		inv, err := e.Invoke(rctx, "default", "parent", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, func() bool {
			for _, p := range s.Status().Pools {
				for _, u := range p.InUse {
					if u.Count == 1 {
						return true
					}
				}
			}
			return false
		})
		var got []string
		for _, p := range s.Status().Pools {
			for _, u := range p.InUse {
				got = append(got, p.Pool+"/"+u.Class+"/"+u.Namespace)
			}
		}
		if fmt.Sprint(got) != "[wasm/"+tt.want+"/default]" {
			t.Errorf("seats in use %v, want the subflow's call as wasm/%s/default", got, tt.want)
		}
		fns.release("c1")
		if done, err := e.Wait(ctx, inv.ID); err != nil || done.Status != core.StatusCompleted {
			t.Fatalf("parent: %v %v", done.Status, err)
		}
		fns.mu.Lock()
		delete(fns.waiting, "c1")
		fns.mu.Unlock()
	}
	// Raising above the document's class needs the right to.
	_, err := e.Invoke(qos.WithRequest(ctx, qos.Request{Class: qos.Critical, HasClass: true}), "default", "child", "", nil)
	if err == nil || !strings.Contains(err.Error(), "raising it needs") {
		t.Fatalf("raising without the role: %v", err)
	}
}

// staticPolicies gives every namespace the same policy.
type staticPolicies struct{ eff *policy.Effective }

func (p staticPolicies) Effective(context.Context, string) (*policy.Effective, error) {
	return p.eff, nil
}

func ptr[T any](v T) *T { return &v }

// TestQoSDefersAsynchronousStarts: over its rate quota, a start without a
// client (an event, a schedule) waits for its turn, while a client's is
// refused with quota_exceeded.
func TestQoSDefersAsynchronousStarts(t *testing.T) {
	// A token every 500 ms: the client's second start, right after its
	// first, finds none even on a loaded machine, and the deferred starts
	// wait 1.5 s in all.
	srv := &policy.Server{Defaults: policy.Policy{QoS: policy.QoS{Rate: ptr(2.0), Burst: ptr(1)}}}
	eff, err := srv.Resolve("default", nil)
	if err != nil {
		t.Fatal(err)
	}
	fns := newGatedFunctions()
	e, _ := qosEngine(t, fns, qos.Options{}, staticPolicies{eff})
	apply(t, e, stepsDoc("set", "")+"  - s:\n      set: {x: 1}\n")
	ctx := context.Background()
	client := qos.WithRequest(ctx, qos.Request{})
	if _, err := e.Invoke(client, "default", "set", "", nil); err != nil {
		t.Fatal(err)
	}
	_, err = e.Invoke(client, "default", "set", "", nil)
	if r, ok := qos.AsRejection(err); !ok || r.Reason != qos.ReasonQuota || r.Status() != 429 {
		t.Fatalf("a client's start over the quota: %v", err)
	}
	for range 3 {
		inv, err := e.Invoke(ctx, "default", "set", "", nil)
		if err != nil {
			t.Fatalf("an asynchronous start over the quota was refused: %v", err)
		}
		if done, err := e.Wait(ctx, inv.ID); err != nil || done.Status != core.StatusCompleted {
			t.Fatal(done.Status, err)
		}
	}
	// Only the client's start was refused: the others waited for tokens.
	if r := e.QoSStatus().Rejected; len(r) != 1 || r[0].Count != 1 || r[0].Reason != qos.ReasonQuota {
		t.Errorf("rejections %+v, want the client's one", r)
	}
}

// TestQoSDeadlineWhileQueued: a client's start still queued at G1 when its
// deadline passes is refused with deadline_exceeded (504), and nothing of
// it runs.
func TestQoSDeadlineWhileQueued(t *testing.T) {
	fns := newGatedFunctions()
	e, _ := qosEngine(t, fns, qos.Options{Seats: map[string]int{qos.PoolWasm: 1}, BacklogTarget: 1}, nil)
	apply(t, e, stepsDoc("a", "", "a1"))
	apply(t, e, stepsDoc("b", "", "b1"))
	apply(t, e, stepsDoc("c", "", "c1"))
	ctx := context.Background()
	a, _ := e.Invoke(ctx, "default", "a", "", nil)
	waitUntil(t, func() bool { return len(fns.began()) == 1 })
	b, _ := e.Invoke(ctx, "default", "b", "", nil)
	// b1 waits at G2: the backlog holds c at G1 past its deadline.
	req := qos.Request{Deadline: time.Now().Add(100 * time.Millisecond)}
	_, err := e.Invoke(qos.WithRequest(ctx, req), "default", "c", "", nil)
	r, ok := qos.AsRejection(err)
	if !ok || r.Reason != qos.ReasonDeadline || r.Status() != 504 {
		t.Fatalf("a start queued past its deadline: %v", err)
	}
	fns.release("a1")
	fns.release("b1")
	for _, inv := range []string{a.ID, b.ID} {
		if done, err := e.Wait(ctx, inv); err != nil || done.Status != core.StatusCompleted {
			t.Fatal(done.Status, err)
		}
	}
	if got := fmt.Sprint(fns.began()); got != "[a1 b1]" {
		t.Errorf("calls %s: the refused start ran", got)
	}
}

// TestQoSDeferredStartDeadline: an asynchronous start deferred at G1 past
// its workflow's deadline ends as an invocation faulted with a deadline
// error, recorded with its history, published as a started and a faulted
// workflow and counted as deadline_exceeded; a deferred start without a
// deadline waits as long as it takes and runs.
func TestQoSDeferredStartDeadline(t *testing.T) {
	fns := newGatedFunctions()
	bus := &recorder{}
	e := newEngine(t, openStore(t, t.TempDir()), func(opts *engine.Options) {
		opts.QoS = qos.New(qos.Options{Seats: map[string]int{qos.PoolWasm: 1}, BacklogTarget: 1})
		opts.Executors = map[string]engine.Executor{"*": fns}
		opts.Events = bus
	})
	t.Cleanup(func() { e.Close() })
	apply(t, e, stepsDoc("a", "", "a1"))
	apply(t, e, stepsDoc("b", "", "b1"))
	apply(t, e, strings.Replace(stepsDoc("c", "", "c1"), "do:\n", "timeout: {after: {milliseconds: 150}}\ndo:\n", 1))
	apply(t, e, stepsDoc("d", "", "d1"))
	ctx := context.Background()
	a, _ := e.Invoke(ctx, "default", "a", "", nil)
	waitUntil(t, func() bool { return len(fns.began()) == 1 })
	b, _ := e.Invoke(ctx, "default", "b", "", nil)
	// b1 waits at G2; the backlog holds the asynchronous starts at G1.
	d := make(chan error, 1)
	go func() {
		inv, err := e.Invoke(ctx, "default", "d", "", nil)
		if err == nil {
			inv, err = e.Wait(ctx, inv.ID)
		}
		if err == nil && inv.Status != core.StatusCompleted {
			err = fmt.Errorf("d %s: %v", inv.Status, inv.Error)
		}
		d <- err
	}()
	began := time.Now()
	type started struct {
		inv *store.Invocation
		err error
	}
	cs := make(chan started, 1)
	go func() {
		inv, err := e.Invoke(ctx, "default", "c", "", nil)
		cs <- started{inv, err}
	}()
	var c *store.Invocation
	select {
	case got := <-cs:
		if got.err != nil {
			t.Fatalf("a deferred start past its deadline: %v, want it recorded as faulted", got.err)
		}
		c = got.inv
	case <-time.After(5 * time.Second):
		fns.release("a1")
		fns.release("b1")
		fns.release("d1")
		t.Fatal("c still waits at G1 5s after its deadline passed")
	}
	if waited := time.Since(began); waited < 150*time.Millisecond {
		t.Errorf("c ended after %s, before its deadline", waited)
	}
	stored, err := e.GetInvocation(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Status != core.StatusFaulted || stored.Error == nil || stored.Error.Type != engine.TypeDeadlineExceeded ||
		stored.Error.Status != 504 || !strings.Contains(stored.Error.Detail, "class standard, namespace default") {
		t.Fatalf("c stored as %s with %+v, want faulted with a deadline error naming its class and namespace", stored.Status, stored.Error)
	}
	history, err := e.History(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(history) != 2 || history[0].Type != core.InvocationStarted || history[1].Type != core.InvocationFaulted ||
		history[1].Error == nil || history[1].Error.Type != engine.TypeDeadlineExceeded {
		t.Fatalf("c's history %+v, want its start and its deadline error", history)
	}
	if r := e.QoSStatus().Rejected; len(r) != 1 || r[0].Reason != qos.ReasonDeadline || r[0].Count != 1 {
		t.Errorf("rejections %+v, want c's deadline", r)
	}
	rebuilt, err := e.LifecycleEvents(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []lifecycleStep{{engine.EventWorkflowStarted, ""}, {engine.EventWorkflowFaulted, ""}}
	if got := steps(rebuilt); !reflect.DeepEqual(got, want) {
		t.Fatalf("c's lifecycle %v, want %v", got, want)
	}
	source := "/v1/invocations/" + c.ID
	waitUntil(t, func() bool { return len(bus.of(source)) == len(want) })
	if live := bus.of(source); !reflect.DeepEqual(jsonRoundTrip(t, live), jsonRoundTrip(t, rebuilt)) {
		t.Fatalf("c's published events differ from its history's:\n live    %v\n rebuilt %v", live, rebuilt)
	}
	select {
	case err := <-d:
		t.Fatalf("d, which has no deadline, ended while the gates were held: %v", err)
	default:
	}
	fns.release("a1")
	fns.release("b1")
	fns.release("d1")
	for _, inv := range []string{a.ID, b.ID} {
		if done, err := e.Wait(ctx, inv); err != nil || done.Status != core.StatusCompleted {
			t.Fatal(done.Status, err)
		}
	}
	if err := <-d; err != nil {
		t.Fatalf("the deferred start without a deadline: %v", err)
	}
	if got := fmt.Sprint(fns.began()); strings.Contains(got, "c1") {
		t.Errorf("calls %s: the start whose deadline passed ran", got)
	}
}

// TestQoSWaitingWorkflowsDoNotHoldTheGate: admitted workflows whose first
// step waits on a timer send nothing to G2, so they are no backlog there;
// however many sleep, a new start is admitted and its call runs.
func TestQoSWaitingWorkflowsDoNotHoldTheGate(t *testing.T) {
	fns := newGatedFunctions()
	e, s := qosEngine(t, fns, qos.Options{Seats: map[string]int{qos.PoolWasm: 1}, BacklogTarget: 1}, nil)
	apply(t, e, `document: {dsl: '1.0.0', namespace: default, name: sleeper, version: '1.0.0'}
do:
  - nap:
      wait: {hours: 1}
  - late:
      call: fn
      with: {label: late}
`)
	apply(t, e, stepsDoc("a", "", "a1"))
	// Bounded, so that a start held at G1 fails the test instead of
	// hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 5 {
		if _, err := e.Invoke(ctx, "default", "sleeper", "", nil); err != nil {
			t.Fatalf("sleeper %d: %v (gates %+v)", i, err, s.Status())
		}
	}
	if _, err := e.Invoke(ctx, "default", "a", "", nil); err != nil {
		t.Fatalf("a start behind five sleeping workflows: %v (gates %+v)", err, s.Status())
	}
	waitUntil(t, func() bool { return slices.Contains(fns.began(), "a1") })
	fns.release("a1")
}

// priorityExecutor records, per call label, whether the call was marked
// to yield the CPU.
type priorityExecutor struct {
	mu  sync.Mutex
	low map[string]bool
}

func (p *priorityExecutor) Execute(ctx context.Context, req *engine.CallRequest) (engine.CallResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.low[fmt.Sprint(req.Args["label"])] = function.LowPriority(ctx)
	return engine.CallResult{Output: "ok"}, nil
}

// TestQoSLowerClassesYieldTheCPU: under QoS, while critical work is
// about, the calls of classes below critical are marked to compute at a
// lower priority; critical's are not, and neither are any where no
// critical work ran, with the no-cpu-priority ablation or without QoS.
// The workflows run one after the other, in the order listed.
func TestQoSLowerClassesYieldTheCPU(t *testing.T) {
	type run struct {
		class string
		want  bool
	}
	for _, tt := range []struct {
		name string
		qos  *qos.Options
		runs []run
	}{
		{"qos", &qos.Options{}, []run{{"critical", false}, {"standard", true}, {"batch", true}}},
		{"qos, no critical work", &qos.Options{}, []run{{"standard", false}, {"batch", false}}},
		{"no-cpu-priority", &qos.Options{NoCPUPriority: true}, []run{{"critical", false}, {"standard", false}, {"batch", false}}},
		{"no qos", nil, []run{{"critical", false}, {"standard", false}, {"batch", false}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ex := &priorityExecutor{low: map[string]bool{}}
			e := newEngine(t, openStore(t, t.TempDir()), func(opts *engine.Options) {
				if tt.qos != nil {
					opts.QoS = qos.New(*tt.qos)
				}
				opts.Executors = map[string]engine.Executor{"*": ex}
			})
			t.Cleanup(func() { e.Close() })
			want := map[string]bool{}
			for _, r := range tt.runs {
				class := r.class
				want[class] = r.want
				apply(t, e, stepsDoc(class, ", metadata: {baton.priorityClass: "+class+"}", class))
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				inv, err := e.Invoke(ctx, "default", class, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				if done, err := e.Wait(ctx, inv.ID); err != nil || done.Status != core.StatusCompleted {
					t.Fatalf("%s: %v %v", class, done.Status, err)
				}
			}
			ex.mu.Lock()
			defer ex.mu.Unlock()
			if fmt.Sprint(ex.low) != fmt.Sprint(want) {
				t.Errorf("calls marked to yield %v, want %v", ex.low, want)
			}
		})
	}
}
