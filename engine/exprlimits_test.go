package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/problem"
)

const countDoc = `document: {dsl: '1.0.3', namespace: %s, name: count, version: '1.0.0'}
do:
  - count:
      set:
        n: '${ [range(100000)] | length }'
`

const doubleDoc = `document: {dsl: '1.0.3', namespace: %s, name: double, version: '1.0.0'}
do:
  - double:
      set:
        s: '${ "a" | until(length > 100000; . + .) | length }'
`

// TestExpressionLimitsPerNamespace: a namespace whose policy lowers the
// expression limits faults an expression over them with a problem naming
// the setting, while a namespace with the defaults completes the same
// expression on the same engine.
func TestExpressionLimitsPerNamespace(t *testing.T) {
	e, svc, _ := policyEngine(t)
	ctx := context.Background()
	setPolicy(t, svc, "tight", `{"limits":{"expressionSteps":1000,"expressionBytes":1000}}`)
	for _, ns := range []string{"tight", "roomy"} {
		for _, doc := range []string{countDoc, doubleDoc} {
			if _, err := e.ApplyWorkflow(ctx, "w.yaml", []byte(fmt.Sprintf(doc, ns))); err != nil {
				t.Fatal(err)
			}
		}
	}
	wantFault(t, invokeWait(t, e, "tight", "count", nil), problem.TypeExpression, "(policy limits.expressionSteps)")
	wantFault(t, invokeWait(t, e, "tight", "double", nil), problem.TypeExpression, "(policy limits.expressionBytes)")

	inv := invokeWait(t, e, "roomy", "count", nil)
	if inv.Status != core.StatusCompleted || !sameJSON(inv.Output, map[string]any{"n": 100000}) {
		t.Fatalf("roomy count: status %s output %v error %+v", inv.Status, inv.Output, inv.Error)
	}
	inv = invokeWait(t, e, "roomy", "double", nil)
	if inv.Status != core.StatusCompleted || !sameJSON(inv.Output, map[string]any{"s": 131072}) {
		t.Fatalf("roomy double: status %s output %v error %+v", inv.Status, inv.Output, inv.Error)
	}
}

// TestExpressionLimitsAfterRestart: an invocation resumed by a new engine
// evaluates its expressions with its namespace's limits, as before.
func TestExpressionLimitsAfterRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	start := func() (*engine.Engine, *policy.Service, func()) {
		st := openStore(t, dir)
		svc := policy.NewService(&policy.Server{}, st)
		e := newEngine(t, st, func(o *engine.Options) { o.Policies = svc })
		return e, svc, func() { e.Close(); st.Close() }
	}
	e, svc, stop := start()
	setPolicy(t, svc, "tight", `{"limits":{"expressionSteps":1000}}`)
	if _, err := e.ApplyWorkflow(ctx, "w.yaml", []byte(`document: {dsl: '1.0.3', namespace: tight, name: later, version: '1.0.0'}
do:
  - nap:
      wait: {milliseconds: 300}
  - count:
      set:
        n: '${ [range(100000)] | length }'
`)); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "tight", "later", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		h, _ := e.History(ctx, inv.ID)
		for _, ev := range h {
			if ev.Type == core.TimerScheduled {
				return true
			}
		}
		return false
	})
	stop()

	e, _, stop = start()
	defer stop()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done, err := e.Wait(wctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantFault(t, done, problem.TypeExpression, "(policy limits.expressionSteps)")
}

func sameJSON(got, want any) bool {
	g, err1 := json.Marshal(got)
	w, err2 := json.Marshal(want)
	return err1 == nil && err2 == nil && string(g) == string(w)
}
