package engine_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/store"
)

// appendLog records the history appends an engine makes.
type appendLog struct {
	store.Store
	mu      sync.Mutex
	appends []recordedAppend
}

type recordedAppend struct {
	types []core.EventType
	wait  bool
}

func (l *appendLog) Append(ctx context.Context, id string, events []core.Event, wait bool) error {
	types := make([]core.EventType, len(events))
	for i := range events {
		types[i] = events[i].Type
	}
	l.mu.Lock()
	l.appends = append(l.appends, recordedAppend{types: types, wait: wait})
	l.mu.Unlock()
	return l.Store.Append(ctx, id, events, wait)
}

const chainOfNoops = `
document: {dsl: '1.0.0', namespace: default, name: noops, version: '1.0.0'}
do:
  - one:
      call: noop
  - two:
      call: noop
  - three:
      call: noop
`

// The end of an invocation is made durable in the same append as the
// result that finished it: one waited append per call, none for the end.
func TestEndSharesTheLastResultsAppend(t *testing.T) {
	ctx := context.Background()
	inner := openStore(t, t.TempDir())
	defer inner.Close()
	st := &appendLog{Store: inner}
	noop := engine.ExecutorFunc(func(context.Context, *engine.CallRequest) (engine.CallResult, error) {
		return engine.CallResult{Output: map[string]any{"ok": true}}, nil
	})
	e := newEngine(t, st, func(o *engine.Options) { o.Executors = map[string]engine.Executor{"noop": noop} })
	defer e.Close()
	if _, err := e.ApplyWorkflow(ctx, "noops.yaml", []byte(chainOfNoops)); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "default", "noops", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	done, err := e.Wait(ctx, inv.ID)
	if err != nil || done.Status != core.StatusCompleted {
		t.Fatalf("%+v %v", done, err)
	}
	st.mu.Lock()
	appends := append([]recordedAppend(nil), st.appends...)
	st.mu.Unlock()
	waited := 0
	for _, a := range appends {
		if a.wait {
			waited++
		}
	}
	if waited != 3 {
		t.Errorf("%d waited appends, want 3 (one per result): %+v", waited, appends)
	}
	last := appends[len(appends)-1]
	if n := len(last.types); n < 2 || last.types[n-2] != core.TaskCompleted || last.types[n-1] != core.InvocationCompleted {
		t.Errorf("last append %v, want the last result and the end together", last.types)
	}
	history, err := e.History(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Started, then three dispatches and results, then the end.
	if len(history) != 8 || history[7].Type != core.InvocationCompleted || history[7].Seq != 8 {
		t.Errorf("history %+v", history)
	}
}

// Once Settle returns, the store holds the end of every non-durable
// invocation that had ended, although their callers did not wait for it.
func TestSettleWritesEndedNonDurableRows(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	noop := engine.ExecutorFunc(func(context.Context, *engine.CallRequest) (engine.CallResult, error) {
		return engine.CallResult{}, nil
	})
	e := newEngine(t, st, func(o *engine.Options) { o.Executors = map[string]engine.Executor{"noop": noop} })
	defer e.Close()
	doc := strings.Replace(chainOfNoops, "version: '1.0.0'}", "version: '1.0.0', metadata: {baton.durability: none}}", 1)
	if _, err := e.ApplyWorkflow(ctx, "noops.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		ids []string
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				inv, err := e.Invoke(ctx, "default", "noops", "", nil)
				if err != nil {
					t.Error(err)
					return
				}
				if done, err := e.Wait(ctx, inv.ID); err != nil || done.Status != core.StatusCompleted {
					t.Errorf("%+v %v", done, err)
					return
				}
				mu.Lock()
				ids = append(ids, inv.ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := e.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		inv, err := st.GetInvocation(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if inv.Status != core.StatusCompleted {
			t.Fatalf("invocation %s is %s in the store after Settle", id, inv.Status)
		}
	}
}
