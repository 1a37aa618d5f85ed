package policy_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/sqlite"
)

const quickFlow = `document: {dsl: '1.0.0', namespace: %s, name: quick, version: '1.0.0'}
do:
  - answer:
      set: {n: '${ .n }'}
`

// countInvocations counts every invocation row the store lists.
func countInvocations(t *testing.T, st store.Store, namespace string) int {
	t.Helper()
	n, cursor := 0, ""
	for {
		page, next, err := st.ListInvocations(context.Background(), store.InvocationFilter{Namespace: namespace, Limit: 1000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		n += len(page)
		if next == "" {
			return n
		}
		cursor = next
	}
}

// TestSweeperKeepsTheStoreBounded runs invocations in rounds, a sweep
// after each, on a virtual clock: with a retention of two rounds the
// store never holds more than about three rounds of invocations, however
// many rounds run, while a namespace with a long retention keeps all of
// its own and running invocations are never touched.
func TestSweeperKeepsTheStoreBounded(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	retention := policy.Duration(2 * time.Hour)
	server := &policy.Server{Defaults: policy.Policy{Retention: &retention}}
	svc := policy.NewService(server, st)
	keep := policy.Duration(1000 * time.Hour)
	if err := svc.Put(ctx, "archive", &policy.Policy{Retention: &keep}); err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Store: st, Policies: svc})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for _, ns := range []string{"busy", "archive"} {
		if _, err := eng.ApplyWorkflow(ctx, "quick.yaml", []byte(fmt.Sprintf(quickFlow, ns))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := eng.ApplyWorkflow(ctx, "slow.yaml", []byte(`document: {dsl: '1.0.0', namespace: busy, name: slow, version: '1.0.0'}
do:
  - rest:
      wait: {hours: 1000}
`)); err != nil {
		t.Fatal(err)
	}
	slow, err := eng.Invoke(ctx, "busy", "slow", "", nil)
	if err != nil {
		t.Fatal(err)
	}

	sw := &policy.Sweeper{Policies: svc, Store: st, Batch: 7}
	const rounds, perRound = 12, 40
	// The sweeper's clock moves an hour a round while the invocations
	// really end within the test's seconds of start: from the third round
	// on, each pass finds everything finished past its retention, in
	// batches of 7.
	start := time.Now()
	peak := 0
	for r := 0; r < rounds; r++ {
		for i := 0; i < perRound; i++ {
			inv, err := eng.Invoke(ctx, "busy", "quick", "", map[string]any{"n": i})
			if err != nil {
				t.Fatal(err)
			}
			if done, err := eng.Wait(ctx, inv.ID); err != nil || done.Status != core.StatusCompleted {
				t.Fatalf("invocation %s: %v %v", inv.ID, done, err)
			}
		}
		if r == 0 {
			inv, _ := eng.Invoke(ctx, "archive", "quick", "", nil)
			eng.Wait(ctx, inv.ID)
		}
		if _, err := sw.Pass(ctx, start.Add(time.Duration(r)*time.Hour+time.Minute)); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, countInvocations(t, st, "busy"))
	}
	if got := countInvocations(t, st, "busy"); got != 1 {
		t.Fatalf("after the last sweep %d invocations of busy are left, want only the running one", got)
	}
	if peak > 3*perRound+1 {
		t.Fatalf("the store grew to %d invocations of busy, want at most %d", peak, 3*perRound+1)
	}
	if got := countInvocations(t, st, "archive"); got != 1 {
		t.Fatalf("archive keeps its invocation for 1000h: %d left", got)
	}
	if inv, err := st.GetInvocation(ctx, slow.ID); err != nil || inv.Status != core.StatusRunning {
		t.Fatalf("the running invocation: %+v %v", inv, err)
	}
	t.Logf("%d invocations in %d rounds; the store held at most %d", rounds*perRound, rounds, peak)
}
