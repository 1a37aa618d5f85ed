// Package storetest is the conformance suite that every store.Store
// implementation must pass.
//
// The suite may call open more than once within one test to reopen the
// store: open must return a store over the same place for the same
// *testing.T, because the reopen tests fail when what was written before
// Close is gone (a store that persists nothing must not pass). The suite
// closes every store it opens. Every
// test names its workflows, invocations and functions with a prefix of its
// own and only looks at those, so open may hand out stores that share data.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// Run runs the whole suite against the stores that open returns.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) store.Store)
	}{
		{"WorkflowVersions", testWorkflowVersions},
		{"WorkflowConflict", testWorkflowConflict},
		{"WorkflowDelete", testWorkflowDelete},
		{"InvocationRoundTrip", testInvocationRoundTrip},
		{"InvocationErrors", testInvocationErrors},
		{"HistoryOrder", testHistoryOrder},
		{"ExplicitSeq", testExplicitSeq},
		{"TerminalEvents", testTerminalEvents},
		{"TerminalInCreate", testTerminalInCreate},
		{"Redriven", testRedriven},
		{"ListInvocations", testListInvocations},
		{"ListLimits", testListLimits},
		{"RunningInvocations", testRunningInvocations},
		{"PendingTimers", testPendingTimers},
		{"Functions", testFunctions},
		{"FunctionNamespaces", testFunctionNamespaces},
		{"Secrets", testSecrets},
		{"State", testState}, {"StateReopen", testStateReopen},
		{"Schedules", testSchedules},
		{"ScheduleClaimRace", testScheduleClaimRace},
		{"ConcurrentAppends", testConcurrentAppends},
		{"UnwaitedAppends", testUnwaitedAppends},
		{"Reopen", testReopen},
		{"EventLog", testEventLog},
		{"EventLogConcurrentAppends", testEventLogConcurrentAppends},
		{"EventCursors", testEventCursors},
		{"Triggers", testTriggers},
		{"Retention", testRetention},
		{"Blobs", testBlobs},
		{"IdempotentStart", testIdempotentStart},
		{"IdempotentStartRace", testIdempotentStartRace},
		{"Tokens", testTokens},
		{"Audit", testAudit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

func openStore(t *testing.T, open func(t *testing.T) store.Store) store.Store {
	t.Helper()
	s := open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// prefix returns a name prefix that no other test, run or process uses.
func prefix(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:]) + "-"
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// base is a fixed point in time at microsecond precision, the finest that
// every implementation keeps.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// normalize gives events the form they have after a JSON round trip, which
// is what a store returns: data values become map[string]any, float64...
func normalize(t *testing.T, events []core.Event) []core.Event {
	t.Helper()
	out := make([]core.Event, len(events))
	for i, ev := range events {
		b, err := json.Marshal(ev)
		must(t, err, "marshal event")
		must(t, json.Unmarshal(b, &out[i]), "unmarshal event")
	}
	return out
}

func withSeqs(events []core.Event, first int64) []core.Event {
	out := make([]core.Event, len(events))
	for i, ev := range events {
		ev.Seq = first + int64(i)
		out[i] = ev
	}
	return out
}

func assertHistory(t *testing.T, s store.Store, id string, want []core.Event) {
	t.Helper()
	got, err := s.History(ctxOf(t), id)
	must(t, err, "History "+id)
	want = normalize(t, want)
	if len(got) != len(want) {
		t.Fatalf("history of %s has %d events, want %d", id, len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("history of %s, event %d:\n got  %+v\n want %+v", id, i, got[i], want[i])
		}
	}
}

func workflow(ns, name, version, source string, created time.Time) *store.Workflow {
	return &store.Workflow{Namespace: ns, Name: name, Version: version, Format: "dsl", Source: []byte(source), CreatedAt: created}
}

func assertWorkflow(t *testing.T, got *store.Workflow, want *store.Workflow) {
	t.Helper()
	if got.Namespace != want.Namespace || got.Name != want.Name || got.Version != want.Version ||
		got.Format != want.Format || string(got.Source) != string(want.Source) || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("workflow:\n got  %s/%s@%s %s %q %v\n want %s/%s@%s %s %q %v",
			got.Namespace, got.Name, got.Version, got.Format, got.Source, got.CreatedAt,
			want.Namespace, want.Name, want.Version, want.Format, want.Source, want.CreatedAt)
	}
}

func testWorkflowVersions(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, ns := openStore(t, open), ctxOf(t), prefix(t)+"ns"
	// "newest" means the last stored, not the greatest version string nor
	// the latest CreatedAt supplied by the caller.
	v2 := workflow(ns, "order", "2.0.0", "document: two", at(2*time.Hour))
	v10 := workflow(ns, "order", "10.0.0", "document: ten", at(time.Hour))
	v1 := workflow(ns, "order", "1.0.0", "document: one", at(3*time.Hour))
	other := workflow(ns, "billing", "1.0.0", "document: billing", at(0))
	for _, wf := range []*store.Workflow{v2, v10, v1, other} {
		must(t, s.PutWorkflow(ctx, wf), "PutWorkflow "+wf.Version)
	}

	got, err := s.GetWorkflow(ctx, ns, "order", "10.0.0")
	must(t, err, "GetWorkflow 10.0.0")
	assertWorkflow(t, got, v10)

	got, err = s.GetWorkflow(ctx, ns, "order", "")
	must(t, err, "GetWorkflow newest")
	assertWorkflow(t, got, v1)

	_, err = s.GetWorkflow(ctx, ns, "order", "3.0.0")
	wantErr(t, err, store.ErrNotFound, "GetWorkflow missing version")
	_, err = s.GetWorkflow(ctx, ns, "missing", "")
	wantErr(t, err, store.ErrNotFound, "GetWorkflow missing name")
	_, err = s.GetWorkflow(ctx, ns+"-other", "order", "")
	wantErr(t, err, store.ErrNotFound, "GetWorkflow other namespace")

	all, err := s.ListWorkflows(ctx)
	must(t, err, "ListWorkflows")
	var mine []*store.Workflow
	for _, wf := range all {
		if wf.Namespace == ns {
			mine = append(mine, wf)
		}
	}
	want := []*store.Workflow{other, v2, v10, v1}
	if len(mine) != len(want) {
		t.Fatalf("ListWorkflows returned %d workflows of the namespace, want %d", len(mine), len(want))
	}
	for i := range want {
		assertWorkflow(t, mine[i], want[i])
	}
}

func testWorkflowConflict(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, ns := openStore(t, open), ctxOf(t), prefix(t)+"ns"
	wf := workflow(ns, "flow", "1", "document: a", at(0))
	must(t, s.PutWorkflow(ctx, wf), "PutWorkflow")
	again := workflow(ns, "flow", "1", "document: a", at(time.Hour))
	must(t, s.PutWorkflow(ctx, again), "PutWorkflow of the same source")

	for _, tc := range []struct {
		name string
		wf   *store.Workflow
	}{
		{"other source", workflow(ns, "flow", "1", "document: b", at(0))},
		{"other format", &store.Workflow{Namespace: ns, Name: "flow", Version: "1", Format: "fission", Source: []byte("document: a")}},
	} {
		wantErr(t, s.PutWorkflow(ctx, tc.wf), store.ErrConflict, "PutWorkflow with "+tc.name)
	}
	got, err := s.GetWorkflow(ctx, ns, "flow", "1")
	must(t, err, "GetWorkflow")
	assertWorkflow(t, got, wf)

	// The same name and version in another namespace is another workflow.
	must(t, s.PutWorkflow(ctx, workflow(ns+"-b", "flow", "1", "document: b", at(0))), "PutWorkflow in another namespace")
}

func testWorkflowDelete(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, ns := openStore(t, open), ctxOf(t), prefix(t)+"ns"
	for _, v := range []string{"1", "2", "3"} {
		must(t, s.PutWorkflow(ctx, workflow(ns, "flow", v, "document: "+v, at(0))), "PutWorkflow "+v)
	}
	must(t, s.PutWorkflow(ctx, workflow(ns, "keep", "1", "document: keep", at(0))), "PutWorkflow keep")

	must(t, s.DeleteWorkflow(ctx, ns, "flow", "3"), "DeleteWorkflow 3")
	got, err := s.GetWorkflow(ctx, ns, "flow", "")
	must(t, err, "GetWorkflow newest after delete")
	if got.Version != "2" {
		t.Fatalf("newest after deleting 3 is %s, want 2", got.Version)
	}
	wantErr(t, s.DeleteWorkflow(ctx, ns, "flow", "3"), store.ErrNotFound, "DeleteWorkflow deleted version")

	// A deleted version may be stored again, with any content, and is then
	// the newest even when an older version was stored after it first was.
	must(t, s.DeleteWorkflow(ctx, ns, "flow", "1"), "DeleteWorkflow 1")
	must(t, s.PutWorkflow(ctx, workflow(ns, "flow", "1", "document: renewed", at(0))), "PutWorkflow 1 again")
	got, err = s.GetWorkflow(ctx, ns, "flow", "")
	must(t, err, "GetWorkflow newest")
	if got.Version != "1" || string(got.Source) != "document: renewed" {
		t.Fatalf("newest is %s %q, want 1 %q", got.Version, got.Source, "document: renewed")
	}

	must(t, s.DeleteWorkflow(ctx, ns, "flow", ""), "DeleteWorkflow all versions")
	_, err = s.GetWorkflow(ctx, ns, "flow", "")
	wantErr(t, err, store.ErrNotFound, "GetWorkflow after deleting all")
	_, err = s.GetWorkflow(ctx, ns, "flow", "2")
	wantErr(t, err, store.ErrNotFound, "GetWorkflow 2 after deleting all")
	wantErr(t, s.DeleteWorkflow(ctx, ns, "flow", ""), store.ErrNotFound, "DeleteWorkflow of nothing")
	if _, err := s.GetWorkflow(ctx, ns, "keep", "1"); err != nil {
		t.Fatalf("deleting flow removed keep: %v", err)
	}
}

func startEvent(input any, tm time.Time) core.Event {
	return core.Event{Type: core.InvocationStarted, Time: tm, Input: input}
}

func newInvocation(id, ns, wf string, started time.Time) *store.Invocation {
	return &store.Invocation{
		ID: id, Namespace: ns, Workflow: wf, Version: "1.0.0", Status: core.StatusRunning,
		Input: map[string]any{"order": 42.0}, StartedAt: started, Durable: true,
	}
}

func assertInvocation(t *testing.T, got, want *store.Invocation) {
	t.Helper()
	if got.ID != want.ID || got.Namespace != want.Namespace || got.Workflow != want.Workflow ||
		got.Version != want.Version || got.Status != want.Status || got.Durable != want.Durable ||
		got.Parent != want.Parent || !got.StartedAt.Equal(want.StartedAt) || !got.EndedAt.Equal(want.EndedAt) ||
		!reflect.DeepEqual(got.Input, want.Input) || !reflect.DeepEqual(got.Output, want.Output) ||
		!reflect.DeepEqual(got.Error, want.Error) {
		t.Fatalf("invocation:\n got  %+v\n want %+v", got, want)
	}
}

func testInvocationRoundTrip(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	inv := &store.Invocation{
		ID: p + "child", Namespace: p + "ns", Workflow: "flow", Version: "2.1.0", Status: core.StatusRunning,
		Input:     map[string]any{"list": []any{1.0, "two", true, nil}, "nested": map[string]any{"x": 1.5}},
		StartedAt: at(time.Minute), Durable: true, Parent: p + "parent",
	}
	events := []core.Event{startEvent(inv.Input, inv.StartedAt)}
	must(t, s.CreateInvocation(ctx, inv, events, true), "CreateInvocation")

	got, err := s.GetInvocation(ctx, inv.ID)
	must(t, err, "GetInvocation")
	assertInvocation(t, got, inv)
	if !got.EndedAt.IsZero() {
		t.Fatalf("running invocation has EndedAt %v", got.EndedAt)
	}
	assertHistory(t, s, inv.ID, withSeqs(events, 1))

	// Scalars and an absent input survive as they are.
	for i, input := range []any{nil, "text", 3.25, []any{}} {
		id := fmt.Sprintf("%sscalar-%d", p, i)
		must(t, s.CreateInvocation(ctx, &store.Invocation{ID: id, Namespace: p + "ns", Workflow: "flow",
			Version: "1", Status: core.StatusRunning, Input: input, StartedAt: at(0), Durable: false}, nil, true),
			"CreateInvocation "+id)
		got, err := s.GetInvocation(ctx, id)
		must(t, err, "GetInvocation "+id)
		if !reflect.DeepEqual(got.Input, input) || got.Durable {
			t.Fatalf("invocation %s: input %#v durable %v, want %#v false", id, got.Input, got.Durable, input)
		}
		h, err := s.History(ctx, id)
		must(t, err, "History of an invocation without events")
		if len(h) != 0 {
			t.Fatalf("history of %s has %d events, want none", id, len(h))
		}
	}
}

func testInvocationErrors(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	inv := newInvocation(p+"inv", p+"ns", "flow", at(0))
	must(t, s.CreateInvocation(ctx, inv, []core.Event{startEvent(nil, at(0))}, true), "CreateInvocation")

	other := newInvocation(p+"inv", p+"ns", "other", at(time.Hour))
	wantErr(t, s.CreateInvocation(ctx, other, []core.Event{startEvent(nil, at(time.Hour))}, true),
		store.ErrConflict, "CreateInvocation with a used id")
	got, err := s.GetInvocation(ctx, inv.ID)
	must(t, err, "GetInvocation")
	assertInvocation(t, got, inv)
	assertHistory(t, s, inv.ID, withSeqs([]core.Event{startEvent(nil, at(0))}, 1))

	_, err = s.GetInvocation(ctx, p+"missing")
	wantErr(t, err, store.ErrNotFound, "GetInvocation missing")
	_, err = s.History(ctx, p+"missing")
	wantErr(t, err, store.ErrNotFound, "History missing")
	wantErr(t, s.Append(ctx, p+"missing", []core.Event{{Type: core.TaskStarted, Time: at(0), Task: "/do/0"}}, true),
		store.ErrNotFound, "Append to a missing invocation")
	if _, err := s.History(ctx, p+"missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed append created a history: %v", err)
	}

	// A failing request does not take down the writes around it.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	wg.Add(3)
	go func() {
		defer wg.Done()
		errs[0] = s.Append(ctx, inv.ID, []core.Event{{Type: core.TaskStarted, Time: at(1), Task: "a"}}, true)
	}()
	go func() {
		defer wg.Done()
		errs[1] = s.Append(ctx, p+"missing", []core.Event{{Type: core.TaskStarted, Time: at(1), Task: "x"}}, true)
	}()
	go func() {
		defer wg.Done()
		errs[2] = s.CreateInvocation(ctx, newInvocation(p+"second", p+"ns", "flow", at(0)), []core.Event{startEvent(nil, at(0))}, true)
	}()
	wg.Wait()
	must(t, errs[0], "concurrent Append")
	wantErr(t, errs[1], store.ErrNotFound, "concurrent Append to a missing invocation")
	must(t, errs[2], "concurrent CreateInvocation")
}

// sampleEvents exercises every field of core.Event.
func sampleEvents() []core.Event {
	return []core.Event{
		startEvent(map[string]any{"n": 3.0}, at(0)),
		{Type: core.TaskStarted, Time: at(time.Millisecond), Task: "/do/0/fetch", Ref: "/do/0/fetch", Attempt: 1},
		{Type: core.TaskFailed, Time: at(2 * time.Millisecond), Task: "/do/0/fetch", Ref: "/do/0/fetch", Attempt: 1,
			Error: problem.Communication(503, "upstream unavailable").At("/do/0/fetch"),
			Info:  map[string]any{"coldStart": true, "durationMs": 12.5}},
		{Type: core.TimerScheduled, Time: at(3 * time.Millisecond), Timer: "retry:/do/0/fetch:1", FireAt: at(time.Second)},
		{Type: core.TimerFired, Time: at(time.Second), Timer: "retry:/do/0/fetch:1"},
		{Type: core.TaskCompleted, Time: at(2 * time.Second), Task: "/do/0/fetch", Attempt: 2,
			Output: map[string]any{"items": []any{map[string]any{"id": 1.0}, "s", false, nil}, "unicode": "żółw ✓"}},
	}
}

func testHistoryOrder(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	events := sampleEvents()
	inv := newInvocation(p+"inv", p+"ns", "flow", at(0))
	must(t, s.CreateInvocation(ctx, inv, events[:1], true), "CreateInvocation")
	must(t, s.Append(ctx, inv.ID, events[1:3], true), "Append 1:3")
	must(t, s.Append(ctx, inv.ID, nil, true), "Append of nothing")
	must(t, s.Append(ctx, inv.ID, events[3:4], true), "Append 3")
	must(t, s.Append(ctx, inv.ID, events[4:], true), "Append 4:")
	assertHistory(t, s, inv.ID, withSeqs(events, 1))

	got, err := s.GetInvocation(ctx, inv.ID)
	must(t, err, "GetInvocation")
	if got.Status != core.StatusRunning || !got.EndedAt.IsZero() {
		t.Fatalf("non-terminal events changed the invocation: status %s endedAt %v", got.Status, got.EndedAt)
	}
}

func testExplicitSeq(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	events := withSeqs(sampleEvents(), 1)
	inv := newInvocation(p+"inv", p+"ns", "flow", at(0))
	must(t, s.CreateInvocation(ctx, inv, events[:2], true), "CreateInvocation with seqs")
	must(t, s.Append(ctx, inv.ID, events[2:3], true), "Append seq 3")

	for _, tc := range []struct {
		name   string
		events []core.Event
	}{
		{"a repeated seq", events[2:3]},
		{"a gap", events[4:5]},
		{"a gap inside the batch", []core.Event{events[3], events[5]}},
	} {
		wantErr(t, s.Append(ctx, inv.ID, tc.events, true), store.ErrConflict, "Append with "+tc.name)
	}
	// A rejected append leaves nothing behind; the history continues.
	must(t, s.Append(ctx, inv.ID, events[3:], true), "Append 4:")
	assertHistory(t, s, inv.ID, events)

	wantErr(t, s.CreateInvocation(ctx, newInvocation(p+"gap", p+"ns", "flow", at(0)), withSeqs(events[:1], 2), true),
		store.ErrConflict, "CreateInvocation whose first event is not seq 1")
}

func testTerminalEvents(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	fault := problem.Runtime("division by zero").At("/do/1/divide")
	cancelWhy := problem.New(problem.TypeCancelled, 499, "Cancelled", "by user")
	tests := []struct {
		name   string
		event  core.Event
		status core.Status
		output any
		err    *problem.Problem
	}{
		{"completed", core.Event{Type: core.InvocationCompleted, Time: at(time.Hour), Output: map[string]any{"total": 99.5}},
			core.StatusCompleted, map[string]any{"total": 99.5}, nil},
		{"completed with scalar", core.Event{Type: core.InvocationCompleted, Time: at(time.Hour), Output: "done"},
			core.StatusCompleted, "done", nil},
		{"faulted", core.Event{Type: core.InvocationFaulted, Time: at(2 * time.Hour), Error: fault},
			core.StatusFaulted, nil, fault},
		{"cancelled", core.Event{Type: core.InvocationCancelled, Time: at(3 * time.Hour), Error: cancelWhy},
			core.StatusCancelled, nil, cancelWhy},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := newInvocation(fmt.Sprintf("%sinv-%d", p, i), p+"ns", "flow", at(0))
			start := startEvent(nil, at(0))
			step := core.Event{Type: core.TaskCompleted, Time: at(time.Minute), Task: "/do/0/a", Output: 1.0}
			must(t, s.CreateInvocation(ctx, inv, []core.Event{start}, true), "CreateInvocation")
			// The terminal event arrives in one append with the event before
			// it, as the engine sends a step's results.
			must(t, s.Append(ctx, inv.ID, []core.Event{step, tc.event}, true), "Append terminal")

			want := *inv
			want.Status, want.Output, want.Error, want.EndedAt = tc.status, tc.output, tc.err, tc.event.Time
			got, err := s.GetInvocation(ctx, inv.ID)
			must(t, err, "GetInvocation")
			assertInvocation(t, got, &want)
			assertHistory(t, s, inv.ID, withSeqs([]core.Event{start, step, tc.event}, 1))

			wantErr(t, s.Append(ctx, inv.ID, []core.Event{{Type: core.TaskStarted, Time: at(4 * time.Hour), Task: "late"}}, true),
				store.ErrConflict, "Append after the terminal event")
			wantErr(t, s.Append(ctx, inv.ID, []core.Event{tc.event}, true),
				store.ErrConflict, "Append of a second terminal event")
		})
	}

	t.Run("event after terminal in one append", func(t *testing.T) {
		inv := newInvocation(p+"inv-after", p+"ns", "flow", at(0))
		must(t, s.CreateInvocation(ctx, inv, []core.Event{startEvent(nil, at(0))}, true), "CreateInvocation")
		err := s.Append(ctx, inv.ID, []core.Event{
			{Type: core.InvocationCompleted, Time: at(time.Hour)},
			{Type: core.TaskStarted, Time: at(time.Hour), Task: "late"},
		}, true)
		wantErr(t, err, store.ErrConflict, "Append with an event after the terminal one")
		got, err := s.GetInvocation(ctx, inv.ID)
		must(t, err, "GetInvocation")
		if got.Status != core.StatusRunning {
			t.Fatalf("rejected append changed the status to %s", got.Status)
		}
		assertHistory(t, s, inv.ID, withSeqs([]core.Event{startEvent(nil, at(0))}, 1))
	})
}

// testRedriven: an InvocationRedriven event reopens a faulted invocation's
// row and history, once; it is refused on a running invocation, in a batch
// with other events, and in a creation.
func testRedriven(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	inv := newInvocation(p+"inv-redriven", p+"ns", "flow", at(0))
	start := startEvent(nil, at(0))
	boom := problem.New("https://example.com/boom", 500, "Boom", "")
	must(t, s.CreateInvocation(ctx, inv, []core.Event{start}, true), "CreateInvocation")
	redrive := core.Event{Seq: 3, Type: core.InvocationRedriven, Time: at(2 * time.Hour)}
	wantErr(t, s.Append(ctx, inv.ID, []core.Event{{Seq: 2, Type: core.InvocationRedriven, Time: at(time.Hour)}}, true),
		store.ErrConflict, "redrive of a running invocation")
	faulted := core.Event{Type: core.InvocationFaulted, Time: at(time.Hour), Error: boom}
	must(t, s.Append(ctx, inv.ID, []core.Event{faulted}, true), "Append the fault")
	wantErr(t, s.Append(ctx, inv.ID, []core.Event{redrive, {Type: core.TaskStarted, Time: at(2 * time.Hour), Task: "a"}}, true),
		store.ErrConflict, "redrive with another event")
	must(t, s.Append(ctx, inv.ID, []core.Event{redrive}, true), "Append the redrive")
	got, err := s.GetInvocation(ctx, inv.ID)
	must(t, err, "GetInvocation")
	assertInvocation(t, got, inv)
	running, err := s.RunningInvocations(ctx)
	must(t, err, "RunningInvocations")
	found := false
	for _, r := range running {
		found = found || r.ID == inv.ID
	}
	if !found {
		t.Errorf("the redriven invocation is not among the running ones")
	}
	wantErr(t, s.Append(ctx, inv.ID, []core.Event{{Seq: 3, Type: core.InvocationRedriven, Time: at(3 * time.Hour)}}, true),
		store.ErrConflict, "a second redrive of the same fault")
	done := core.Event{Type: core.InvocationCompleted, Time: at(3 * time.Hour), Output: 1.0}
	must(t, s.Append(ctx, inv.ID, []core.Event{done}, true), "Append the end")
	want := *inv
	want.Status, want.Output, want.EndedAt = core.StatusCompleted, 1.0, done.Time
	got, err = s.GetInvocation(ctx, inv.ID)
	must(t, err, "GetInvocation")
	assertInvocation(t, got, &want)
	assertHistory(t, s, inv.ID, withSeqs([]core.Event{start, faulted, redrive, done}, 1))
	wantErr(t, s.CreateInvocation(ctx, newInvocation(p+"inv-born-redriven", p+"ns", "flow", at(0)),
		[]core.Event{{Type: core.InvocationRedriven, Time: at(0)}}, true), store.ErrConflict, "a creation with a redrive")
}

func testTerminalInCreate(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	// An invocation that finishes in its first step is created with its
	// whole history.
	inv := newInvocation(p+"inv", p+"ns", "flow", at(0))
	events := []core.Event{
		startEvent(inv.Input, at(0)),
		{Type: core.InvocationCompleted, Time: at(time.Second), Output: []any{"a", 2.0}},
	}
	must(t, s.CreateInvocation(ctx, inv, events, true), "CreateInvocation")
	want := *inv
	want.Status, want.Output, want.EndedAt = core.StatusCompleted, []any{"a", 2.0}, at(time.Second)
	got, err := s.GetInvocation(ctx, inv.ID)
	must(t, err, "GetInvocation")
	assertInvocation(t, got, &want)
	assertHistory(t, s, inv.ID, withSeqs(events, 1))
}

func testListInvocations(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	nsA, nsB := p+"a", p+"b"
	statuses := []core.Status{core.StatusRunning, core.StatusCompleted, core.StatusFaulted, core.StatusCancelled}
	terminal := map[core.Status]core.EventType{
		core.StatusCompleted: core.InvocationCompleted,
		core.StatusFaulted:   core.InvocationFaulted,
		core.StatusCancelled: core.InvocationCancelled,
	}
	var all []*store.Invocation
	for i := range 30 {
		ns, wf := nsA, "alpha"
		if i%3 == 1 {
			wf = "beta"
		}
		if i%5 == 4 {
			ns = nsB
		}
		// Pairs share a start time, so the id must break ties.
		started := at(time.Duration(i/2) * time.Second)
		inv := newInvocation(fmt.Sprintf("%sinv-%02d", p, i), ns, wf, started)
		if i%7 == 0 {
			inv.Version = "2.0.0"
		}
		must(t, s.CreateInvocation(ctx, inv, []core.Event{startEvent(nil, started)}, false), "CreateInvocation")
		status := statuses[i%len(statuses)]
		if status != core.StatusRunning {
			must(t, s.Append(ctx, inv.ID, []core.Event{{Type: terminal[status], Time: started.Add(time.Minute)}}, false), "Append")
		}
		inv.Status = status
		all = append(all, inv)
	}
	// A waited call makes every unwaited one before it visible.
	must(t, s.Append(ctx, all[0].ID, nil, true), "flush")

	sort.Slice(all, func(i, j int) bool {
		if !all[i].StartedAt.Equal(all[j].StartedAt) {
			return all[i].StartedAt.After(all[j].StartedAt)
		}
		return all[i].ID > all[j].ID
	})
	filters := []struct {
		name   string
		filter store.InvocationFilter
		match  func(*store.Invocation) bool
	}{
		{"namespace", store.InvocationFilter{Namespace: nsA}, func(i *store.Invocation) bool { return i.Namespace == nsA }},
		{"namespace and workflow", store.InvocationFilter{Namespace: nsA, Workflow: "beta"},
			func(i *store.Invocation) bool { return i.Namespace == nsA && i.Workflow == "beta" }},
		{"namespace and status", store.InvocationFilter{Namespace: nsA, Status: core.StatusFaulted},
			func(i *store.Invocation) bool { return i.Namespace == nsA && i.Status == core.StatusFaulted }},
		{"all three", store.InvocationFilter{Namespace: nsB, Workflow: "alpha", Status: core.StatusRunning},
			func(i *store.Invocation) bool {
				return i.Namespace == nsB && i.Workflow == "alpha" && i.Status == core.StatusRunning
			}},
		{"nothing matches", store.InvocationFilter{Namespace: nsB, Workflow: "gamma"}, func(*store.Invocation) bool { return false }},
		{"version", store.InvocationFilter{Namespace: nsA, Workflow: "alpha", Version: "2.0.0"},
			func(i *store.Invocation) bool {
				return i.Namespace == nsA && i.Workflow == "alpha" && i.Version == "2.0.0"
			}},
		{"id prefix", store.InvocationFilter{Namespace: nsA, IDPrefix: p + "inv-1"},
			func(i *store.Invocation) bool { return i.Namespace == nsA && strings.HasPrefix(i.ID, p+"inv-1") }},
		{"time range", store.InvocationFilter{Namespace: nsA, StartedAfter: at(3 * time.Second), StartedBefore: at(9 * time.Second)},
			func(i *store.Invocation) bool {
				return i.Namespace == nsA && !i.StartedAt.Before(at(3*time.Second)) && i.StartedAt.Before(at(9*time.Second))
			}},
	}
	for _, fc := range filters {
		for _, pageSize := range []int{1, 4, 7, 1000} {
			t.Run(fmt.Sprintf("%s/limit %d", fc.name, pageSize), func(t *testing.T) {
				var want []string
				for _, inv := range all {
					if fc.match(inv) {
						want = append(want, inv.ID)
					}
				}
				var got []string
				f := fc.filter
				f.Limit = pageSize
				for pages := 0; ; pages++ {
					if pages > len(all)+1 {
						t.Fatalf("pagination does not end")
					}
					page, next, err := s.ListInvocations(ctx, f)
					must(t, err, "ListInvocations")
					if len(page) > pageSize {
						t.Fatalf("page of %d invocations, limit %d", len(page), pageSize)
					}
					if next != "" && len(page) != pageSize {
						t.Fatalf("short page of %d (limit %d) with a next cursor", len(page), pageSize)
					}
					for _, inv := range page {
						if !fc.match(inv) {
							t.Fatalf("invocation %s (%s %s %s) does not match the filter", inv.ID, inv.Namespace, inv.Workflow, inv.Status)
						}
						got = append(got, inv.ID)
					}
					if next == "" {
						break
					}
					f.Cursor = next
				}
				if !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
					t.Fatalf("listed\n %v\nwant\n %v", got, want)
				}
			})
		}
	}

	t.Run("counts by status", func(t *testing.T) {
		counter, ok := s.(store.InvocationCounter)
		if !ok {
			t.Skip("the store counts no invocations")
		}
		f := store.InvocationFilter{Namespace: nsA, Workflow: "alpha", Status: core.StatusRunning, Limit: 1}
		got, err := counter.CountInvocations(ctx, f)
		must(t, err, "CountInvocations")
		want := map[core.Status]int{}
		for _, inv := range all {
			if inv.Namespace == nsA && inv.Workflow == "alpha" {
				want[inv.Status]++
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("counted %v, want %v (status, limit and cursor are not filters of a count)", got, want)
		}
	})

	t.Run("rows are complete", func(t *testing.T) {
		page, _, err := s.ListInvocations(ctx, store.InvocationFilter{Namespace: nsA, Status: core.StatusCompleted, Limit: 1})
		must(t, err, "ListInvocations")
		if len(page) != 1 {
			t.Fatalf("got %d invocations, want 1", len(page))
		}
		got, err := s.GetInvocation(ctx, page[0].ID)
		must(t, err, "GetInvocation")
		assertInvocation(t, page[0], got)
		if got.EndedAt.IsZero() {
			t.Fatalf("completed invocation has no EndedAt")
		}
	})

	t.Run("bad cursor", func(t *testing.T) {
		_, _, err := s.ListInvocations(ctx, store.InvocationFilter{Namespace: nsA, Cursor: "%%not a cursor%%"})
		if err == nil {
			t.Fatal("ListInvocations accepted a mangled cursor")
		}
	})
}

func testListLimits(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	ns := p + "ns"
	const n = 1001
	for i := range n {
		inv := newInvocation(fmt.Sprintf("%s%04d", p, i), ns, "flow", at(time.Duration(i)*time.Millisecond))
		must(t, s.CreateInvocation(ctx, inv, nil, false), "CreateInvocation")
	}
	must(t, s.CreateInvocation(ctx, newInvocation(p+"flush", p+"other", "flow", at(0)), nil, true), "flush")

	for _, tc := range []struct {
		limit, want int
	}{
		{0, 100},
		{-5, 100},
		{250, 250},
		{5000, 1000},
	} {
		page, next, err := s.ListInvocations(ctx, store.InvocationFilter{Namespace: ns, Limit: tc.limit})
		must(t, err, "ListInvocations")
		if len(page) != tc.want || next == "" {
			t.Fatalf("limit %d: got %d invocations (next %q), want %d and a cursor", tc.limit, len(page), next, tc.want)
		}
		if want := fmt.Sprintf("%s%04d", p, n-1); page[0].ID != want {
			t.Fatalf("limit %d: first is %s, want the newest %s", tc.limit, page[0].ID, want)
		}
	}
	page, next, err := s.ListInvocations(ctx, store.InvocationFilter{Namespace: ns, Limit: 1000})
	must(t, err, "ListInvocations")
	rest, next, err := s.ListInvocations(ctx, store.InvocationFilter{Namespace: ns, Limit: 1000, Cursor: next})
	must(t, err, "ListInvocations second page")
	if len(page) != 1000 || len(rest) != 1 || next != "" || rest[0].ID != p+"0000" {
		t.Fatalf("second page: %d invocations, next %q; want only %s0000 and no cursor", len(rest), next, p)
	}
}

func testRunningInvocations(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	running := newInvocation(p+"running", p+"ns", "flow", at(0))
	volatile := newInvocation(p+"volatile", p+"ns", "flow", at(0))
	volatile.Durable = false
	done := newInvocation(p+"done", p+"ns", "flow", at(0))
	for _, inv := range []*store.Invocation{running, volatile, done} {
		must(t, s.CreateInvocation(ctx, inv, []core.Event{startEvent(nil, at(0))}, true), "CreateInvocation "+inv.ID)
	}
	must(t, s.Append(ctx, done.ID, []core.Event{{Type: core.InvocationCompleted, Time: at(time.Second)}}, true), "complete")

	invs, err := s.RunningInvocations(ctx)
	must(t, err, "RunningInvocations")
	found := map[string]*store.Invocation{}
	for _, inv := range invs {
		if inv.Status != core.StatusRunning || !inv.Durable {
			t.Fatalf("RunningInvocations returned %s with status %s durable %v", inv.ID, inv.Status, inv.Durable)
		}
		found[inv.ID] = inv
	}
	if got := found[running.ID]; got == nil {
		t.Fatalf("RunningInvocations misses %s", running.ID)
	} else {
		assertInvocation(t, got, running)
	}
	for _, id := range []string{volatile.ID, done.ID} {
		if found[id] != nil {
			t.Fatalf("RunningInvocations returned %s", id)
		}
	}
}

func testFunctions(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	name := p + "resize"
	fns := []*store.Function{
		{Name: name, Version: "2", Spec: []byte(`{"runtime":"wasm","v":2}`), CreatedAt: at(0)},
		{Name: name, Version: "10", Spec: []byte(`{"runtime":"wasm","v":10}`), CreatedAt: at(0)},
		{Name: p + "other", Version: "1", Spec: []byte(`{"runtime":"process"}`), CreatedAt: at(time.Hour)},
	}
	for _, fn := range fns {
		must(t, s.PutFunction(ctx, fn), "PutFunction "+fn.Version)
	}
	must(t, s.PutFunction(ctx, &store.Function{Name: name, Version: "2", Spec: fns[0].Spec}), "PutFunction of the same spec")
	wantErr(t, s.PutFunction(ctx, &store.Function{Name: name, Version: "2", Spec: []byte(`{}`)}), store.ErrConflict,
		"PutFunction with another spec")

	assertFn := func(got, want *store.Function) {
		t.Helper()
		if got.Name != want.Name || got.Version != want.Version || string(got.Spec) != string(want.Spec) || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Fatalf("function:\n got  %s@%s %s %v\n want %s@%s %s %v", got.Name, got.Version, got.Spec, got.CreatedAt,
				want.Name, want.Version, want.Spec, want.CreatedAt)
		}
	}
	got, err := s.GetFunction(ctx, "", name, "2")
	must(t, err, "GetFunction 2")
	assertFn(got, fns[0])
	got, err = s.GetFunction(ctx, "", name, "")
	must(t, err, "GetFunction newest")
	assertFn(got, fns[1])
	_, err = s.GetFunction(ctx, "", name, "3")
	wantErr(t, err, store.ErrNotFound, "GetFunction missing version")

	list, err := s.ListFunctions(ctx, "default")
	must(t, err, "ListFunctions")
	var mine []*store.Function
	for _, fn := range list {
		if fn.Name == name || fn.Name == p+"other" {
			mine = append(mine, fn)
		}
	}
	want := []*store.Function{fns[2], fns[0], fns[1]}
	if len(mine) != len(want) {
		t.Fatalf("ListFunctions returned %d of this test's functions, want %d", len(mine), len(want))
	}
	for i := range want {
		assertFn(mine[i], want[i])
	}

	must(t, s.DeleteFunction(ctx, "", name, "10"), "DeleteFunction 10")
	got, err = s.GetFunction(ctx, "", name, "")
	must(t, err, "GetFunction newest after delete")
	assertFn(got, fns[0])
	wantErr(t, s.DeleteFunction(ctx, "", name, "10"), store.ErrNotFound, "DeleteFunction deleted version")
	must(t, s.DeleteFunction(ctx, "", name, ""), "DeleteFunction all")
	_, err = s.GetFunction(ctx, "", name, "")
	wantErr(t, err, store.ErrNotFound, "GetFunction after deleting all")
	if _, err := s.GetFunction(ctx, "", p+"other", "1"); err != nil {
		t.Fatalf("deleting %s removed another function: %v", name, err)
	}
}

func testConcurrentAppends(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	const (
		goroutines = 64
		perShared  = 8 // goroutines that share one invocation
		appends    = 12
	)
	invocations := goroutines / perShared
	for i := range invocations {
		inv := newInvocation(fmt.Sprintf("%sinv-%d", p, i), p+"ns", "flow", at(0))
		must(t, s.CreateInvocation(ctx, inv, []core.Event{startEvent(nil, at(0))}, true), "CreateInvocation")
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("%sinv-%d", p, g%invocations)
			for i := range appends {
				// Every other append carries two events, which must stay
				// adjacent.
				events := []core.Event{{Type: core.TaskCompleted, Time: at(time.Second), Task: fmt.Sprintf("g%d/%d", g, i), Output: float64(i)}}
				if i%2 == 1 {
					events = append(events, core.Event{Type: core.TaskStarted, Time: at(time.Second), Task: fmt.Sprintf("g%d/%d+", g, i)})
				}
				if err := s.Append(ctx, id, events, true); err != nil {
					errs <- fmt.Errorf("goroutine %d append %d: %w", g, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	for i := range invocations {
		id := fmt.Sprintf("%sinv-%d", p, i)
		h, err := s.History(ctx, id)
		must(t, err, "History")
		wantLen := 1 + perShared*(appends+appends/2)
		if len(h) != wantLen {
			t.Fatalf("history of %s has %d events, want %d", id, len(h), wantLen)
		}
		next := map[string]int{} // goroutine -> next append index expected
		for j, ev := range h {
			if ev.Seq != int64(j+1) {
				t.Fatalf("history of %s: event %d has seq %d", id, j, ev.Seq)
			}
			if j == 0 {
				continue
			}
			var g, n int
			if _, err := fmt.Sscanf(strings.TrimSuffix(ev.Task, "+"), "g%d/%d", &g, &n); err != nil {
				t.Fatalf("history of %s: unexpected task %q: %v", id, ev.Task, err)
			}
			key := fmt.Sprint(g)
			switch ev.Type {
			case core.TaskCompleted:
				if n != next[key] {
					t.Fatalf("history of %s: goroutine %d's append %d comes where %d was due", id, g, n, next[key])
				}
				if n%2 == 1 && (j+1 >= len(h) || h[j+1].Task != ev.Task+"+") {
					t.Fatalf("history of %s: the events of goroutine %d's append %d are not adjacent", id, g, n)
				}
				next[key]++
			case core.TaskStarted:
				if h[j-1].Task+"+" != ev.Task {
					t.Fatalf("history of %s: event %q does not follow its pair", id, ev.Task)
				}
			}
		}
		for g, n := range next {
			if n != appends {
				t.Fatalf("history of %s: goroutine %s has %d appends, want %d", id, g, n, appends)
			}
		}
	}
}

func testUnwaitedAppends(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	inv := newInvocation(p+"inv", p+"ns", "flow", at(0))
	events := []core.Event{startEvent(nil, at(0))}
	// Not even the creation is waited for: the appends ride behind it.
	must(t, s.CreateInvocation(ctx, inv, events, false), "CreateInvocation")
	for i := range 20 {
		ev := core.Event{Type: core.TaskStarted, Time: at(time.Duration(i) * time.Second), Task: fmt.Sprintf("/do/%d", i)}
		events = append(events, ev)
		must(t, s.Append(ctx, inv.ID, []core.Event{ev}, false), "unwaited Append")
	}
	last := core.Event{Type: core.TaskCompleted, Time: at(time.Minute), Task: "/do/20", Output: "ok"}
	events = append(events, last)
	must(t, s.Append(ctx, inv.ID, []core.Event{last}, true), "waited Append")
	assertHistory(t, s, inv.ID, withSeqs(events, 1))

	// A waited append to another invocation is a barrier too.
	other := newInvocation(p+"other", p+"ns", "flow", at(0))
	must(t, s.CreateInvocation(ctx, other, nil, true), "CreateInvocation other")
	done := core.Event{Type: core.InvocationCompleted, Time: at(time.Hour), Output: 7.0}
	must(t, s.Append(ctx, inv.ID, []core.Event{done}, false), "unwaited terminal Append")
	must(t, s.Append(ctx, other.ID, []core.Event{{Type: core.TaskStarted, Time: at(0), Task: "x"}}, true), "waited Append elsewhere")
	got, err := s.GetInvocation(ctx, inv.ID)
	must(t, err, "GetInvocation")
	if got.Status != core.StatusCompleted || got.Output != 7.0 {
		t.Fatalf("after an unwaited terminal append: status %s output %v, want completed 7", got.Status, got.Output)
	}
}

func testReopen(t *testing.T, open func(t *testing.T) store.Store) {
	ctx, p := ctxOf(t), prefix(t)
	first := open(t)
	wf := workflow(p+"ns", "flow", "1", "document: persisted", at(0))
	fn := &store.Function{Name: p + "fn", Version: "1", Spec: []byte(`{"runtime":"wasm"}`), CreatedAt: at(0)}
	inv := newInvocation(p+"inv", p+"ns", "flow", at(0))
	done := newInvocation(p+"done", p+"ns", "flow", at(time.Second))
	events := sampleEvents()
	must(t, first.PutWorkflow(ctx, wf), "PutWorkflow")
	must(t, first.PutFunction(ctx, fn), "PutFunction")
	must(t, first.CreateInvocation(ctx, inv, events[:1], true), "CreateInvocation")
	must(t, first.CreateInvocation(ctx, done, events[:1], true), "CreateInvocation done")
	must(t, first.Append(ctx, done.ID, []core.Event{{Type: core.InvocationCompleted, Time: at(time.Hour)}}, true), "complete")
	must(t, first.Append(ctx, inv.ID, events[1:3], true), "Append")
	// Close must flush what nobody waited for.
	must(t, first.Append(ctx, inv.ID, events[3:5], false), "unwaited Append")
	must(t, first.Close(), "Close")

	second := openStore(t, open)
	got, err := second.GetWorkflow(ctx, wf.Namespace, wf.Name, wf.Version)
	must(t, err, "GetWorkflow after reopen")
	assertWorkflow(t, got, wf)
	gotFn, err := second.GetFunction(ctx, "", fn.Name, "")
	must(t, err, "GetFunction after reopen")
	if string(gotFn.Spec) != string(fn.Spec) {
		t.Fatalf("function spec %s after reopen, want %s", gotFn.Spec, fn.Spec)
	}
	gotInv, err := second.GetInvocation(ctx, inv.ID)
	must(t, err, "GetInvocation after reopen")
	assertInvocation(t, gotInv, inv)
	assertHistory(t, second, inv.ID, withSeqs(events[:5], 1))

	running, err := second.RunningInvocations(ctx)
	must(t, err, "RunningInvocations after reopen")
	var ids []string
	for _, r := range running {
		if r.ID == inv.ID || r.ID == done.ID {
			ids = append(ids, r.ID)
		}
	}
	if !reflect.DeepEqual(ids, []string{inv.ID}) {
		t.Fatalf("running after reopen: %v, want [%s]", ids, inv.ID)
	}

	// The history goes on where it stopped.
	must(t, second.Append(ctx, inv.ID, events[5:], true), "Append after reopen")
	assertHistory(t, second, inv.ID, withSeqs(events, 1))
}

// testPendingTimers: a store that tells pending timers gives each running
// invocation's earliest timer not fired, and nothing of ended ones.
func testPendingTimers(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	ts, ok := s.(store.PendingTimers)
	if !ok {
		t.Skip("the store does not tell pending timers")
	}
	waiting := newInvocation(p+"waiting", p+"ns", "flow", at(0))
	done := newInvocation(p+"done", p+"ns", "flow", at(0))
	none := newInvocation(p+"none", p+"ns", "flow", at(0))
	timers := []core.Event{
		startEvent(nil, at(0)),
		{Type: core.TimerScheduled, Timer: "late", FireAt: at(time.Hour), Time: at(0)},
		{Type: core.TimerScheduled, Timer: "soon", FireAt: at(time.Minute), Time: at(0)},
		{Type: core.TimerScheduled, Timer: "later", FireAt: at(2 * time.Hour), Time: at(0)},
		{Type: core.TimerFired, Timer: "soon", Time: at(time.Minute)},
	}
	must(t, s.CreateInvocation(ctx, waiting, timers, true), "CreateInvocation waiting")
	must(t, s.CreateInvocation(ctx, done, timers[:3], true), "CreateInvocation done")
	must(t, s.Append(ctx, done.ID, []core.Event{{Type: core.InvocationCompleted, Time: at(time.Second)}}, true), "complete")
	must(t, s.CreateInvocation(ctx, none, []core.Event{startEvent(nil, at(0))}, true), "CreateInvocation none")

	got, err := ts.PendingTimers(ctx)
	must(t, err, "PendingTimers")
	if at, ok := got[waiting.ID]; !ok || !at.Equal(timers[1].FireAt) {
		t.Errorf("pending timer of %s: %v %v, want %v (the soon one fired)", waiting.ID, at, ok, timers[1].FireAt)
	}
	for _, id := range []string{done.ID, none.ID} {
		if at, ok := got[id]; ok {
			t.Errorf("pending timer of %s: %v, want none", id, at)
		}
	}
}
