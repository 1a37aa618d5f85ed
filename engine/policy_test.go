package engine_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// policyEngine is an engine whose namespaces answer to policies over a
// server that allows nothing by default.
func policyEngine(t *testing.T) (*engine.Engine, *policy.Service, store.Store) {
	t.Helper()
	st := openStore(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	svc := policy.NewService(&policy.Server{}, st)
	e := newEngine(t, st, func(o *engine.Options) { o.Policies = svc })
	t.Cleanup(func() { e.Close() })
	return e, svc, st
}

func setPolicy(t *testing.T, svc *policy.Service, ns, doc string) {
	t.Helper()
	p, err := policy.Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Put(context.Background(), ns, p); err != nil {
		t.Fatal(err)
	}
}

func wantProblem(t *testing.T, err error, typ string, status int, mention string) {
	t.Helper()
	var p *problem.Problem
	if !errors.As(err, &p) || p.Type != typ || p.Status != status || !strings.Contains(p.Detail, mention) {
		t.Fatalf("got %v, want a %d %s problem mentioning %q", err, status, typ, mention)
	}
}

func wantFault(t *testing.T, inv *store.Invocation, typ, mention string) {
	t.Helper()
	if inv.Status != core.StatusFaulted || inv.Error == nil || inv.Error.Type != typ || !strings.Contains(inv.Error.Detail, mention) {
		t.Fatalf("invocation %s: status %s error %+v, want a %s fault mentioning %q", inv.ID, inv.Status, inv.Error, typ, mention)
	}
}

func invokeWait(t *testing.T, e *engine.Engine, ns, name string, input any) *store.Invocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inv, err := e.Invoke(ctx, ns, name, "", input)
	if err != nil {
		t.Fatalf("invoke %s/%s: %v", ns, name, err)
	}
	done, err := e.Wait(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	return done
}

const shellDoc = `document: {dsl: '1.0.3', namespace: team-a, name: whoami, version: '%s'}
do:
  - who:
      run:
        shell:
          command: echo hello
`

// TestCapabilityRefusedAtApplyAndAtRun: a namespace without the shell
// capability cannot apply a shell workflow; once allowed it can; when the
// policy is tightened again, the workflow already applied faults at run
// time with the same refusal.
func TestCapabilityRefusedAtApplyAndAtRun(t *testing.T) {
	e, svc, _ := policyEngine(t)
	ctx := context.Background()
	_, err := e.ApplyWorkflow(ctx, "w.yaml", []byte(strings.Replace(shellDoc, "%s", "1.0.0", 1)))
	wantProblem(t, err, policy.TypeCapability, http.StatusForbidden,
		"capability run.shell is not allowed in namespace team-a (policy capabilities.shell)")

	setPolicy(t, svc, "team-a", `{"capabilities":{"shell":true}}`)
	if _, err := e.ApplyWorkflow(ctx, "w.yaml", []byte(strings.Replace(shellDoc, "%s", "1.0.0", 1))); err != nil {
		t.Fatal(err)
	}
	if inv := invokeWait(t, e, "team-a", "whoami", nil); inv.Status != core.StatusCompleted || inv.Output != "hello" {
		t.Fatalf("allowed shell: %+v", inv)
	}
	setPolicy(t, svc, "team-a", `{}`)
	wantFault(t, invokeWait(t, e, "team-a", "whoami", nil), policy.TypeCapability, "policy capabilities.shell")
}

// TestNoServerSecretInProcesses: the server's own variables never reach
// a shell command or a script, even on an engine that allows them all.
func TestNoServerSecretInProcesses(t *testing.T) {
	t.Setenv("BATON_SECRET_KEY", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	t.Setenv("BATON_DATA", "/var/lib/baton")
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	shell := runDoc(t, e, taskDoc("sh", `      run:
        shell:
          command: 'env | grep ^BATON_ || echo none'
`), nil)
	if got := mustComplete(t, shell); got != "none" {
		t.Fatalf("a shell command saw %v", got)
	}
	js := runDoc(t, e, taskDoc("js", `      run:
        script:
          language: js
          code: 'Object.keys(process.env).filter(k => k.startsWith("BATON_")).length'
`), nil)
	if got := mustComplete(t, js); got != float64(0) && got != "0" {
		t.Fatalf("a script saw %v BATON_ variables", got)
	}
}

// TestSubflowDepthLimit: a workflow that calls itself stops at the depth
// limit with a fault naming it, having started exactly limit+1
// invocations.
func TestSubflowDepthLimit(t *testing.T) {
	e, svc, st := policyEngine(t)
	setPolicy(t, svc, "loop", `{"limits":{"subflowDepth":4}}`)
	if _, err := e.ApplyWorkflow(context.Background(), "self.yaml", []byte(`document: {dsl: '1.0.3', namespace: loop, name: self, version: '1.0.0'}
do:
  - again:
      run:
        workflow: {namespace: loop, name: self, version: '1.0.0'}
`)); err != nil {
		t.Fatal(err)
	}
	root := invokeWait(t, e, "loop", "self", nil)
	wantFault(t, root, policy.TypeLimit, "(policy limits.subflowDepth)")
	list, _, err := st.ListInvocations(context.Background(), store.InvocationFilter{Namespace: "loop", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 5 {
		t.Fatalf("%d invocations, want 5 (the root and 4 levels)", len(list))
	}
}

// TestCancelRootCancelsSubtree: cancelling a root also cancels the
// subflows it started, detached ones included.
func TestCancelRootCancelsSubtree(t *testing.T) {
	e, _, _ := policyEngine(t)
	ctx := context.Background()
	for _, doc := range []string{
		`document: {dsl: '1.0.3', namespace: tree, name: leaf, version: '1.0.0'}
do:
  - nap:
      wait: {hours: 1}
`, `document: {dsl: '1.0.3', namespace: tree, name: root, version: '1.0.0'}
do:
  - spawn:
      run:
        workflow: {namespace: tree, name: leaf, version: '1.0.0'}
        await: false
  - nap:
      wait: {hours: 1}
`} {
		if _, err := e.ApplyWorkflow(ctx, "w.yaml", []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	root, err := e.Invoke(ctx, "tree", "root", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var leaf *store.Invocation
	waitUntil(t, func() bool {
		list, _, _ := e.ListInvocations(ctx, store.InvocationFilter{Namespace: "tree", Workflow: "leaf"})
		if len(list) == 1 {
			leaf = list[0]
		}
		return leaf != nil
	})
	if err := e.CancelInvocation(ctx, root.ID, "tree felled"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done, err := e.Wait(wctx, leaf.ID)
	if err != nil || done.Status != core.StatusCancelled {
		t.Fatalf("the detached subflow after its root was cancelled: %+v %v", done, err)
	}
	// The cancellation reaches the subflow through the root's own act of
	// cancelling, which is recorded in the root's history; the subflow can
	// end before that record is read back, so the root is waited for too.
	if done, err := e.Wait(wctx, root.ID); err != nil || done.Status != core.StatusCancelled {
		t.Fatalf("the root after its cancellation: %+v %v", done, err)
	}
	// The subflow says why it stopped: its parent was cancelled.
	wantCancelReason(t, e, root.ID, "tree felled")
	wantCancelReason(t, e, leaf.ID, "parent "+root.ID+" cancelled")
}

// TestHistoryEventsLimit: an invocation whose history reaches the limit
// faults, naming it, and its history holds no more events than that.
func TestHistoryEventsLimit(t *testing.T) {
	e, svc, _ := policyEngine(t)
	setPolicy(t, svc, "chatty", `{"limits":{"historyEvents":20}}`)
	if _, err := e.ApplyWorkflow(context.Background(), "w.yaml", []byte(`document: {dsl: '1.0.3', namespace: chatty, name: ticks, version: '1.0.0'}
do:
  - loop:
      for: {in: '${ [range(0; 100)] }'}
      do:
        - tick:
            wait: {milliseconds: 1}
`)); err != nil {
		t.Fatal(err)
	}
	inv := invokeWait(t, e, "chatty", "ticks", nil)
	wantFault(t, inv, policy.TypeLimit, "(policy limits.historyEvents)")
	h, err := e.History(context.Background(), inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) > 20 || h[len(h)-1].Type != core.InvocationFaulted {
		t.Fatalf("history of %d events ending with %s, want at most 20 ending with the fault", len(h), h[len(h)-1].Type)
	}
}

// TestRunningInvocationsLimit: a start over the namespace's limit is
// refused with 429 naming it; other namespaces are not affected, and a
// slot freed is usable again.
func TestRunningInvocationsLimit(t *testing.T) {
	e, svc, _ := policyEngine(t)
	ctx := context.Background()
	setPolicy(t, svc, "small", `{"limits":{"runningInvocations":2}}`)
	for _, ns := range []string{"small", "big"} {
		if _, err := e.ApplyWorkflow(ctx, "w.yaml", []byte(`document: {dsl: '1.0.3', namespace: `+ns+`, name: nap, version: '1.0.0'}
do:
  - nap:
      wait: {hours: 1}
`)); err != nil {
			t.Fatal(err)
		}
	}
	first, err := e.Invoke(ctx, "small", "nap", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Invoke(ctx, "small", "nap", "", nil); err != nil {
		t.Fatal(err)
	}
	_, err = e.Invoke(ctx, "small", "nap", "", nil)
	wantProblem(t, err, policy.TypeLimit, http.StatusTooManyRequests, "(policy limits.runningInvocations)")
	if _, err := e.Invoke(ctx, "big", "nap", "", nil); err != nil {
		t.Fatalf("another namespace: %v", err)
	}
	if err := e.CancelInvocation(ctx, first.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Wait(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		_, err := e.Invoke(ctx, "small", "nap", "", nil)
		return err == nil
	})
}

// TestPayloadLimits: an input over the limit is refused (413) and an
// output over it faults the invocation.
func TestPayloadLimits(t *testing.T) {
	e, svc, _ := policyEngine(t)
	ctx := context.Background()
	setPolicy(t, svc, "tiny", `{"limits":{"inputBytes":64,"outputBytes":64}}`)
	if _, err := e.ApplyWorkflow(ctx, "w.yaml", []byte(`document: {dsl: '1.0.3', namespace: tiny, name: grow, version: '1.0.0'}
do:
  - grow:
      set:
        text: '${ .text * 10 }'
`)); err != nil {
		t.Fatal(err)
	}
	_, err := e.Invoke(ctx, "tiny", "grow", "", map[string]any{"text": strings.Repeat("x", 100)})
	wantProblem(t, err, policy.TypeLimit, http.StatusRequestEntityTooLarge, "(policy limits.inputBytes)")
	if inv := invokeWait(t, e, "tiny", "grow", map[string]any{"text": "x"}); inv.Status != core.StatusCompleted {
		t.Fatalf("small output: %+v", inv)
	}
	wantFault(t, invokeWait(t, e, "tiny", "grow", map[string]any{"text": "xxxxxxxx"}), policy.TypeLimit, "(policy limits.outputBytes)")
}

// TestScriptTimeLimit: a JavaScript loop that never ends, and a Python one,
// are stopped at the namespace's script time limit.
func TestScriptTimeLimit(t *testing.T) {
	e, svc, _ := policyEngine(t)
	ctx := context.Background()
	setPolicy(t, svc, "spin", `{"capabilities":{"script":true},"limits":{"scriptTimeout":"300ms"}}`)
	langs := []string{"js"}
	if _, err := exec.LookPath("python3"); err == nil {
		langs = append(langs, "python")
	}
	for _, lang := range langs {
		code := "while (true) {}"
		if lang == "python" {
			code = "while True: pass"
		}
		if _, err := e.ApplyWorkflow(ctx, "w.yaml", []byte(`document: {dsl: '1.0.3', namespace: spin, name: `+lang+`, version: '1.0.0'}
do:
  - spin:
      run:
        script:
          language: `+lang+`
          code: '`+code+`'
`)); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		inv := invokeWait(t, e, "spin", lang, nil)
		wantFault(t, inv, policy.TypeLimit, "(policy limits.scriptTimeout)")
		t.Logf("%s loop stopped after %s", lang, time.Since(begin).Round(time.Millisecond))
	}
}

// waitUntil polls cond until it holds, failing the test after 10s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEgressPolicy: call: http reaches a loopback service but not the
// cloud metadata address, nor what a namespace's policy denies; the
// fault names the rule.
func TestEgressPolicy(t *testing.T) {
	e, svc, _ := policyEngine(t)
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	setPolicy(t, svc, "closed", `{"egress":{"deny":["loopback"]}}`)
	for _, ns := range []string{"open", "closed"} {
		if _, err := e.ApplyWorkflow(ctx, "w.yaml", []byte(`document: {dsl: '1.0.3', namespace: `+ns+`, name: fetch, version: '1.0.0'}
do:
  - get:
      call: http
      with:
        method: get
        endpoint: ${ .url }
`)); err != nil {
			t.Fatal(err)
		}
	}
	if inv := invokeWait(t, e, "open", "fetch", map[string]any{"url": srv.URL}); inv.Status != core.StatusCompleted {
		t.Fatalf("a loopback service: %+v", inv.Error)
	}
	wantFault(t, invokeWait(t, e, "open", "fetch", map[string]any{"url": "http://169.254.169.254/latest/meta-data/"}),
		problem.TypeCommunication, `built-in egress denial of "metadata"`)
	wantFault(t, invokeWait(t, e, "closed", "fetch", map[string]any{"url": srv.URL}),
		problem.TypeCommunication, `namespace closed policy egress.deny "loopback"`)

	// call: openapi loads its document through the same guard.
	if _, err := e.ApplyWorkflow(ctx, "w.yaml", []byte(`document: {dsl: '1.0.3', namespace: open, name: api, version: '1.0.0'}
do:
  - op:
      call: openapi
      with:
        document: {endpoint: 'http://169.254.169.254/openapi.json'}
        operationId: steal
`)); err != nil {
		t.Fatal(err)
	}
	inv := invokeWait(t, e, "open", "api", nil)
	if inv.Status != core.StatusFaulted || !strings.Contains(inv.Error.Detail, `egress denial of "metadata"`) {
		t.Fatalf("an openapi document on the metadata address: %+v", inv.Error)
	}
}
