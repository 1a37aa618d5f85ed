package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
)

// testRetention checks DeleteInvocation and DeleteEnded: only ended
// invocations go, oldest first, in bounded batches, with their histories,
// and the namespace filters hold. Its invocations end long before any
// other test's, so that sweeping by time touches only them.
func testRetention(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	ns1, ns2 := p+"ns1", p+"ns2"
	long := -1000 * time.Hour
	create := func(id, ns string, started time.Time, ended time.Duration, durable bool) *store.Invocation {
		t.Helper()
		inv := newInvocation(p+id, ns, "flow", started)
		inv.Durable = durable
		must(t, s.CreateInvocation(ctx, inv, []core.Event{startEvent(nil, started)}, true), "CreateInvocation "+id)
		if ended != 0 {
			events := []core.Event{{Type: core.TaskStarted, Task: "/do/0/a", Time: started}}
			if !durable {
				events = nil
			}
			events = append(events, core.Event{Type: core.InvocationCompleted, Time: started.Add(ended)})
			must(t, s.Append(ctx, inv.ID, events, true), "end "+id)
		}
		return inv
	}
	old1 := create("old1", ns1, at(long), time.Second, true)
	old2 := create("old2", ns1, at(long), time.Minute, false)
	recent := create("recent", ns1, at(-time.Hour), time.Second, true)
	running := create("running", ns1, at(long), 0, true)
	other := create("other", ns2, at(long), time.Second, true)

	gone := func(inv *store.Invocation) {
		t.Helper()
		if _, err := s.GetInvocation(ctx, inv.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: got %v after deletion, want ErrNotFound", inv.ID, err)
		}
		if h, err := s.History(ctx, inv.ID); err == nil && len(h) > 0 {
			t.Fatalf("%s: %d history events left after deletion", inv.ID, len(h))
		}
	}
	kept := func(inv *store.Invocation) {
		t.Helper()
		if _, err := s.GetInvocation(ctx, inv.ID); err != nil {
			t.Fatalf("%s must be kept: %v", inv.ID, err)
		}
	}
	before := at(-500 * time.Hour)

	n, err := s.DeleteEnded(ctx, store.EndedFilter{Before: before, Namespace: ns1, Limit: 1})
	must(t, err, "DeleteEnded limit 1")
	if n != 1 {
		t.Fatalf("DeleteEnded with limit 1 removed %d", n)
	}
	gone(old1) // ended first
	kept(old2)
	n, err = s.DeleteEnded(ctx, store.EndedFilter{Before: before, Namespace: ns1, Limit: 10})
	must(t, err, "DeleteEnded")
	if n != 1 {
		t.Fatalf("second DeleteEnded removed %d, want the non-durable one", n)
	}
	gone(old2)
	n, err = s.DeleteEnded(ctx, store.EndedFilter{Before: before, Namespace: ns1})
	must(t, err, "DeleteEnded again")
	if n != 0 {
		t.Fatalf("DeleteEnded with nothing left removed %d", n)
	}
	kept(recent)
	kept(running)
	kept(other)

	n, err = s.DeleteEnded(ctx, store.EndedFilter{Before: before, Except: []string{ns2}})
	must(t, err, "DeleteEnded except")
	kept(other)
	n, err = s.DeleteEnded(ctx, store.EndedFilter{Before: before, Except: []string{ns1, "elsewhere"}})
	must(t, err, "DeleteEnded except ns1")
	if n < 1 {
		t.Fatalf("DeleteEnded outside %s removed %d", ns1, n)
	}
	gone(other)
	kept(running)

	wantErr(t, s.DeleteInvocation(ctx, running.ID), store.ErrConflict, "DeleteInvocation of a running invocation")
	kept(running)
	must(t, s.DeleteInvocation(ctx, recent.ID), "DeleteInvocation")
	gone(recent)
	wantErr(t, s.DeleteInvocation(ctx, recent.ID), store.ErrNotFound, "DeleteInvocation again")

	// A deleted id can be used again (an invocation is its row).
	again := create("recent", ns1, at(0), time.Second, true)
	kept(again)
}
