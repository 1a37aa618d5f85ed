package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/store"
)

func eventLogOf(t *testing.T, s store.Store) store.EventLog {
	t.Helper()
	log, ok := s.(store.EventLog)
	if !ok {
		t.Fatalf("%T does not implement store.EventLog", s)
	}
	return log
}

func loggedEvent(source, id, typ string) *store.LoggedEvent {
	return &store.LoggedEvent{
		ID: id, Source: source, Type: typ, Time: at(time.Second), ReceivedAt: at(2 * time.Second),
		Event: []byte(fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":%q,"type":%q}`, id, source, typ)),
	}
}

func testEventLog(t *testing.T, open func(t *testing.T) store.Store) {
	s := openStore(t, open)
	log := eventLogOf(t, s)
	ctx := ctxOf(t)
	src := "/" + prefix(t) + "orders"
	batch := []*store.LoggedEvent{
		loggedEvent(src, "1", "order.placed"),
		loggedEvent(src, "2", "order.paid"),
		loggedEvent(src, "3", "order.placed"),
	}
	must(t, log.AppendEvents(ctx, batch), "AppendEvents")
	for i, ev := range batch {
		if ev.Duplicate {
			t.Errorf("event %d marked duplicate on first append", i)
		}
		if i > 0 && ev.Seq <= batch[i-1].Seq {
			t.Errorf("positions do not grow: %d after %d", ev.Seq, batch[i-1].Seq)
		}
	}
	again := loggedEvent(src, "2", "order.paid")
	must(t, log.AppendEvents(ctx, []*store.LoggedEvent{again}), "AppendEvents duplicate")
	if !again.Duplicate || again.Seq != batch[1].Seq {
		t.Errorf("redelivered event: duplicate=%v seq=%d, want true and %d", again.Duplicate, again.Seq, batch[1].Seq)
	}
	if last, err := log.LastEventSeq(ctx); err != nil || last < batch[2].Seq {
		t.Errorf("LastEventSeq = %d, %v; want at least %d", last, err, batch[2].Seq)
	}

	tests := []struct {
		name string
		f    store.EventFilter
		want []string
	}{
		{"by source", store.EventFilter{Source: src}, []string{"1", "2", "3"}},
		{"by type", store.EventFilter{Source: src, Type: "order.placed"}, []string{"1", "3"}},
		{"after", store.EventFilter{Source: src, After: batch[0].Seq}, []string{"2", "3"}},
		{"limit", store.EventFilter{Source: src, Limit: 2}, []string{"1", "2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := log.ListEvents(ctx, tc.f)
			must(t, err, "ListEvents")
			var ids []string
			for _, ev := range got {
				ids = append(ids, ev.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
				t.Fatalf("ids %v, want %v", ids, tc.want)
			}
			first := got[0]
			if first.Source != src || !first.Time.Equal(at(time.Second)) || !first.ReceivedAt.Equal(at(2*time.Second)) || len(first.Event) == 0 {
				t.Errorf("event read back as %+v", first)
			}
		})
	}
}

func testEventLogConcurrentAppends(t *testing.T, open func(t *testing.T) store.Store) {
	s := openStore(t, open)
	log := eventLogOf(t, s)
	ctx := ctxOf(t)
	src := "/" + prefix(t) + "burst"
	const writers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := log.AppendEvents(ctx, []*store.LoggedEvent{loggedEvent(src, fmt.Sprintf("%d-%d", w, i), "burst")}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("AppendEvents: %v", err)
	}
	got, err := log.ListEvents(ctx, store.EventFilter{Source: src, Limit: 1000})
	must(t, err, "ListEvents")
	if len(got) != writers*each {
		t.Fatalf("%d events logged, want %d", len(got), writers*each)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("positions out of order: %d after %d", got[i].Seq, got[i-1].Seq)
		}
	}
}

func testEventCursors(t *testing.T, open func(t *testing.T) store.Store) {
	s := openStore(t, open)
	log := eventLogOf(t, s)
	ctx := ctxOf(t)
	p := prefix(t)
	pos, err := log.EventCursor(ctx, p+"listen/a", 7)
	must(t, err, "EventCursor")
	if pos != 7 {
		t.Fatalf("new cursor at %d, want 7", pos)
	}
	if pos, err = log.EventCursor(ctx, p+"listen/a", 42); err != nil || pos != 7 {
		t.Fatalf("existing cursor at %d (%v), want it kept at 7", pos, err)
	}
	moved, err := log.AdvanceEventCursor(ctx, p+"listen/a", 6, 9)
	must(t, err, "AdvanceEventCursor")
	if moved {
		t.Fatal("advanced from a stale position")
	}
	if moved, err = log.AdvanceEventCursor(ctx, p+"listen/a", 7, 9); err != nil || !moved {
		t.Fatalf("advance from the current position: moved=%v err=%v", moved, err)
	}
	if _, err := log.EventCursor(ctx, p+"other", 1); err != nil {
		t.Fatal(err)
	}
	must(t, log.DeleteEventCursors(ctx, p+"listen/"), "DeleteEventCursors")
	if pos, _ := log.EventCursor(ctx, p+"listen/a", 100); pos != 100 {
		t.Errorf("deleted cursor came back at %d", pos)
	}
	if pos, _ := log.EventCursor(ctx, p+"other", 100); pos != 1 {
		t.Errorf("cursor outside the prefix moved to %d", pos)
	}
}

func testTriggers(t *testing.T, open func(t *testing.T) store.Store) {
	s := openStore(t, open)
	log := eventLogOf(t, s)
	ctx := ctxOf(t)
	p := prefix(t)
	tr := &store.Trigger{Name: p + "nightly", Namespace: "ns", Workflow: "wf", Kind: "cron", Spec: "0 3 * * *", NextRun: at(time.Hour), CreatedAt: at(0)}
	must(t, log.CreateTrigger(ctx, tr), "CreateTrigger")
	wantErr(t, log.CreateTrigger(ctx, tr), store.ErrConflict, "CreateTrigger twice")
	got, err := log.GetTrigger(ctx, tr.Name)
	must(t, err, "GetTrigger")
	if got.Kind != "cron" || got.Spec != "0 3 * * *" || !got.NextRun.Equal(at(time.Hour)) || got.Workflow != "wf" {
		t.Fatalf("trigger read back as %+v", got)
	}
	next := *got
	next.NextRun, next.LastRun, next.LastInvocation = at(2*time.Hour), at(time.Hour), "inv-1"
	if ok, err := log.AdvanceTrigger(ctx, &next, at(0)); err != nil || ok {
		t.Fatalf("advance from a stale slot: %v %v", ok, err)
	}
	if ok, err := log.AdvanceTrigger(ctx, &next, at(time.Hour)); err != nil || !ok {
		t.Fatalf("advance from the due slot: %v %v", ok, err)
	}
	all, err := log.ListTriggers(ctx)
	must(t, err, "ListTriggers")
	found := false
	for _, x := range all {
		if x.Name == tr.Name {
			found = x.LastInvocation == "inv-1" && x.NextRun.Equal(at(2*time.Hour))
		}
	}
	if !found {
		t.Fatalf("advanced trigger not listed as advanced: %+v", all)
	}
	must(t, log.DeleteTrigger(ctx, tr.Name), "DeleteTrigger")
	wantErr(t, log.DeleteTrigger(ctx, tr.Name), store.ErrNotFound, "DeleteTrigger twice")
	_, err = log.GetTrigger(ctx, tr.Name)
	wantErr(t, err, store.ErrNotFound, "GetTrigger deleted")
}
