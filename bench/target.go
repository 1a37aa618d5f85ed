package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonflow/baton/client"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/lang"
	"github.com/batonflow/baton/store/sqlite"
)

// outcome is what the client learns from one invocation.
type outcome struct {
	ID             string
	Status         core.Status
	Started, Ended time.Time
}

// target runs invocations: an embedded engine or a server.
type target interface {
	apply(ctx context.Context, wf *Workflow) error
	// invoke starts invocation of wf with input number i and waits for
	// its end.
	invoke(ctx context.Context, wf *Workflow, i int) (outcome, error)
	// history returns the invocation's events, from the store when it
	// keeps them and otherwise from what the harness recorded.
	history(ctx context.Context, wf *Workflow, o outcome) ([]core.Event, error)
	close(ctx context.Context) error
}

// embedded is an engine in this process over SQLite.
type embedded struct {
	eng *engine.Engine
	st  *sqlite.Store
	mgr *function.Manager
	reg *function.Registry
	// runtimes are closed after the manager: it does not own them.
	runtimes map[function.Kind]function.Runtime
	tap      *tap
	tempDir  string
	// dataDir holds the database, where the disk's commit time is probed.
	dataDir string
}

// runtimeSet makes the function runtimes once the blob directory that
// deployed wasm artifacts live in is known.
type runtimeSet func(blobs *function.Blobs) (map[function.Kind]function.Runtime, error)

func openEmbedded(ctx context.Context, dataDir string, executors map[string]engine.Executor, mgrOpts function.Options, makeRuntimes runtimeSet, log *slog.Logger, configure ...func(*engine.Options)) (*embedded, error) {
	em := &embedded{tap: newTap()}
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "baton-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: temporary data directory: %w", err)
		}
		dataDir, em.tempDir = dir, dir
	} else if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("bench: data directory: %w", err)
	}
	em.dataDir = dataDir
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, "baton.db"), sqlite.WithLogger(log))
	if err != nil {
		em.removeTemp()
		return nil, fmt.Errorf("bench: opening the store: %w", err)
	}
	em.st = st
	blobs, err := function.OpenBlobs(filepath.Join(dataDir, "blobs"))
	if err != nil {
		return nil, errors.Join(err, em.close(ctx))
	}
	runtimes, err := makeRuntimes(blobs)
	if err != nil {
		return nil, errors.Join(err, em.close(ctx))
	}
	em.runtimes = runtimes
	mgrOpts.Logger = log
	em.reg = function.NewRegistry(st, blobs)
	mgr, err := function.NewManager(em.reg, runtimes, mgrOpts)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("bench: function manager: %w", err), em.close(ctx))
	}
	em.mgr = mgr
	all := map[string]engine.Executor{"*": engine.FunctionExecutor(mgr)}
	for name, ex := range executors {
		all[name] = ex
	}
	for name, ex := range all {
		all[name] = em.tap.wrap(ex)
	}
	engOpts := engine.Options{Store: st, Logger: log, Executors: all}
	for _, c := range configure {
		c(&engOpts)
	}
	eng, err := engine.New(engOpts)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("bench: engine: %w", err), em.close(ctx))
	}
	if err := eng.Start(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("bench: starting the engine: %w", err), eng.Close(), em.close(ctx))
	}
	em.eng = eng
	return em, nil
}

func (em *embedded) apply(ctx context.Context, wf *Workflow) error {
	_, err := em.eng.ApplyWorkflow(ctx, wf.Name+".yaml", wf.Source)
	return err
}

func (em *embedded) invoke(ctx context.Context, wf *Workflow, i int) (outcome, error) {
	inv, err := em.eng.Invoke(ctx, wf.Namespace, wf.Name, wf.Version, wf.Inputs[i%len(wf.Inputs)])
	if err != nil {
		return outcome{}, err
	}
	done, err := em.eng.Wait(ctx, inv.ID)
	if err != nil {
		return outcome{ID: inv.ID}, err
	}
	return outcome{ID: done.ID, Status: done.Status, Started: done.StartedAt, Ended: done.EndedAt}, nil
}

func (em *embedded) history(ctx context.Context, wf *Workflow, o outcome) ([]core.Event, error) {
	return em.tap.historyOf(ctx, wf.Def, o, em.eng.History)
}

func (em *embedded) close(ctx context.Context) error {
	var errs []error
	if em.eng != nil {
		errs = append(errs, em.eng.Close())
	}
	if em.mgr != nil {
		errs = append(errs, em.mgr.Close(ctx))
	}
	for _, rt := range em.runtimes {
		errs = append(errs, rt.Close(ctx))
	}
	if em.st != nil {
		errs = append(errs, em.st.Close())
	}
	em.removeTemp()
	return errors.Join(errs...)
}

func (em *embedded) removeTemp() {
	if em.tempDir != "" {
		os.RemoveAll(em.tempDir)
	}
}

// tap records the calls of non-durable invocations, whose histories the
// engine does not keep once they end: the harness rebuilds an equivalent
// history (dispatch, result with its Info) from what it saw the executors
// do. Durable invocations pass through untouched.
type tap struct {
	mu    sync.Mutex
	calls map[string][]core.Event
}

func newTap() *tap { return &tap{calls: map[string][]core.Event{}} }

// historyOf is o's history: read from the store for a durable workflow,
// rebuilt from the calls the tap saw otherwise.
func (t *tap) historyOf(ctx context.Context, def *dsl.Workflow, o outcome, read func(context.Context, string) ([]core.Event, error)) ([]core.Event, error) {
	if !engine.Durable(def) {
		return t.history(o), nil
	}
	return read(ctx, o.ID)
}

func (t *tap) wrap(ex engine.Executor) engine.Executor {
	return engine.ExecutorFunc(func(ctx context.Context, req *engine.CallRequest) (engine.CallResult, error) {
		if engine.Durable(req.Workflow) {
			return ex.Execute(ctx, req)
		}
		begin := time.Now()
		res, err := ex.Execute(ctx, req)
		end := time.Now()
		info := map[string]any{"durationMs": ms(end.Sub(begin))}
		if cold, ok := res.Info["cold"].(bool); ok {
			info["cold"] = cold
			info["coldStartMs"] = res.Info["coldStartMs"]
		}
		if wait, ok := res.Info["startWaitMs"]; ok {
			info["startWaitMs"] = wait
		}
		done := core.Event{Type: core.TaskCompleted, Time: end, Task: req.Task, Ref: req.Ref, Attempt: req.Attempt, Info: info}
		if err != nil {
			done.Type = core.TaskFailed
		}
		started := core.Event{Type: core.TaskStarted, Time: begin, Task: req.Task, Ref: req.Ref, Attempt: req.Attempt}
		t.mu.Lock()
		t.calls[req.Invocation] = append(t.calls[req.Invocation], started, done)
		t.mu.Unlock()
		return res, err
	})
}

// forget drops the recorded calls of an invocation whose history will
// not be read.
func (t *tap) forget(id string) {
	t.mu.Lock()
	delete(t.calls, id)
	t.mu.Unlock()
}

// history takes the recorded calls of an invocation out of the tap and
// frames them with its start and end.
func (t *tap) history(o outcome) []core.Event {
	t.mu.Lock()
	calls := t.calls[o.ID]
	delete(t.calls, o.ID)
	t.mu.Unlock()
	slices.SortStableFunc(calls, func(a, b core.Event) int { return a.Time.Compare(b.Time) })
	events := make([]core.Event, 0, len(calls)+2)
	events = append(events, core.Event{Type: core.InvocationStarted, Time: o.Started})
	events = append(events, calls...)
	end := core.Event{Time: o.Ended}
	switch o.Status {
	case core.StatusCompleted:
		end.Type = core.InvocationCompleted
	case core.StatusCancelled:
		end.Type = core.InvocationCancelled
	default:
		end.Type = core.InvocationFaulted
	}
	events = append(events, end)
	for i := range events {
		events[i].Seq = int64(i + 1)
	}
	return events
}

// remote is a Baton server reached over its REST API, or several servers
// sharing one store (replicas): starts go to each in turn, and an
// invocation is awaited on the server that started it, which answers for
// it whichever replica runs it.
type remote struct {
	clients []*client.Client
	next    atomic.Uint64
}

// dialServers connects to the comma-separated server URLs and checks that
// each answers.
func dialServers(ctx context.Context, urls string, connect func(url string, hc *http.Client) (*client.Client, error)) (*remote, error) {
	if connect == nil {
		connect = client.New
	}
	// One transport: its per-host pools keep each server's connections.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	r := &remote{}
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			return nil, fmt.Errorf("bench: --server %q: an empty URL in the list", urls)
		}
		c, err := connect(u, hc)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if err := c.Health(ctx); err != nil {
			return nil, fmt.Errorf("bench: server %s: %w", u, err)
		}
		r.clients = append(r.clients, c)
	}
	return r, nil
}

// pick returns the server of the next start.
func (r *remote) pick() *client.Client {
	return r.clients[(r.next.Add(1)-1)%uint64(len(r.clients))]
}

// serverWait is how long one request asks the server to hold the
// response for the invocation's end.
const serverWait = 5 * time.Minute

func (r *remote) apply(ctx context.Context, wf *Workflow) error {
	// The servers share a store: one of them stores it for all.
	_, err := r.clients[0].ApplyWorkflow(ctx, wf.Name+".yaml", wf.Source, lang.Options{})
	return err
}

func (r *remote) invoke(ctx context.Context, wf *Workflow, i int) (outcome, error) {
	c := r.pick()
	inv, err := c.Invoke(ctx, wf.Namespace, wf.Name, wf.RawInputs[i%len(wf.RawInputs)],
		client.InvokeOptions{Version: wf.Version, Wait: serverWait})
	if err != nil {
		return outcome{}, err
	}
	for !inv.Ended() {
		id := inv.ID
		if inv, err = c.WaitInvocation(ctx, id, serverWait); err != nil {
			return outcome{ID: id}, err
		}
	}
	o := outcome{ID: inv.ID, Status: inv.Status, Started: inv.StartedAt}
	if inv.EndedAt != nil {
		o.Ended = *inv.EndedAt
	}
	return o, nil
}

func (r *remote) history(ctx context.Context, _ *Workflow, o outcome) ([]core.Event, error) {
	return r.clients[0].History(ctx, o.ID)
}

func (r *remote) close(context.Context) error { return nil }

// processMetrics reads the first server's CPU time and resident memory
// from its /metrics.
func (r *remote) processMetrics(ctx context.Context) (cpuS, rssBytes float64, err error) {
	data, err := r.clients[0].Metrics(ctx)
	if err != nil {
		return 0, 0, err
	}
	return processMetrics(data)
}

// deployOnServer deploys the wasm and process functions the run calls on
// the server, in the bench namespace; noop calls the server's own
// baton.noop, http calls the harness's endpoint with `call: http`, and set
// calls nothing.
func deployOnServer(ctx context.Context, r *remote, host *functionHost, kinds map[Functions]bool, streams, maxInstances int) error {
	c := r.clients[0].WithNamespace(Namespace)
	for f := range kinds {
		if f != Wasm && f != Process {
			continue
		}
		for s := range streams {
			spec, err := host.spec(f, functionName(f, s, streams), maxInstances)
			if err != nil {
				return err
			}
			if f == Process {
				// The server may run elsewhere: the script goes inline.
				spec.Args = []string{"-c", processScript}
				_, err = c.DeployFunction(ctx, spec)
			} else {
				module := spec.Artifact
				spec.Artifact = ""
				_, err = c.DeployModule(ctx, spec, module)
			}
			if err != nil {
				return fmt.Errorf("bench: deploying %s on the server: %w", spec.Name, err)
			}
		}
	}
	return nil
}
