package storetest

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonflow/baton/store"
)

func ownNames(names []string, p string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, p) {
			out = append(out, n)
		}
	}
	return out
}

func testSecrets(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	must(t, s.PutSecret(ctx, &store.Secret{Name: p + "b", Value: []byte{0, 1, 2}, UpdatedAt: at(0)}), "PutSecret b")
	must(t, s.PutSecret(ctx, &store.Secret{Name: p + "a", Value: []byte("first"), UpdatedAt: at(time.Second)}), "PutSecret a")
	// Putting again replaces the value.
	must(t, s.PutSecret(ctx, &store.Secret{Name: p + "a", Value: []byte("second"), UpdatedAt: at(2 * time.Second)}), "PutSecret a again")

	names, err := s.ListSecretNames(ctx)
	must(t, err, "ListSecretNames")
	if got := ownNames(names, p); !slices.Equal(got, []string{p + "a", p + "b"}) {
		t.Fatalf("ListSecretNames = %q, want [%sa %sb]", got, p, p)
	}

	got, err := s.GetSecrets(ctx, []string{p + "a", p + "b", p + "missing"})
	must(t, err, "GetSecrets")
	byName := map[string]*store.Secret{}
	for _, sec := range got {
		byName[sec.Name] = sec
	}
	if len(byName) != 2 {
		t.Fatalf("GetSecrets returned %d secrets, want 2 (a missing name is left out)", len(got))
	}
	if a := byName[p+"a"]; a == nil || string(a.Value) != "second" || !a.UpdatedAt.Equal(at(2*time.Second)) {
		t.Fatalf("secret a = %+v, want value second updated at %v", a, at(2*time.Second))
	}
	if b := byName[p+"b"]; b == nil || !slices.Equal(b.Value, []byte{0, 1, 2}) {
		t.Fatalf("secret b = %+v, want bytes 0 1 2", b)
	}
	if none, err := s.GetSecrets(ctx, nil); err != nil || len(none) != 0 {
		t.Fatalf("GetSecrets(nil) = %v, %v; want nothing", none, err)
	}

	must(t, s.DeleteSecret(ctx, p+"a"), "DeleteSecret a")
	wantErr(t, s.DeleteSecret(ctx, p+"a"), store.ErrNotFound, "DeleteSecret a again")
	names, err = s.ListSecretNames(ctx)
	must(t, err, "ListSecretNames after delete")
	if got := ownNames(names, p); !slices.Equal(got, []string{p + "b"}) {
		t.Fatalf("after delete ListSecretNames = %q, want [%sb]", got, p)
	}
	if s.PutSecret(ctx, &store.Secret{Value: []byte("x")}) == nil {
		t.Fatal("PutSecret without a name succeeded")
	}
}

func ownSchedules(t *testing.T, s store.Store, ns string) []*store.Schedule {
	t.Helper()
	all, err := s.ListSchedules(ctxOf(t))
	must(t, err, "ListSchedules")
	var out []*store.Schedule
	for _, sc := range all {
		if sc.Namespace == ns {
			out = append(out, sc)
		}
	}
	return out
}

func testSchedules(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, ns := openStore(t, open), ctxOf(t), prefix(t)+"ns"
	v1 := &store.Schedule{Namespace: ns, Name: "tick", Version: "1", NextRun: at(time.Minute), CreatedAt: at(0)}
	must(t, s.CreateSchedule(ctx, v1), "CreateSchedule v1")
	must(t, s.CreateSchedule(ctx, &store.Schedule{Namespace: ns, Name: "tick", Version: "2", CreatedAt: at(0)}), "CreateSchedule v2")
	again := *v1
	again.NextRun = at(time.Hour)
	wantErr(t, s.CreateSchedule(ctx, &again), store.ErrConflict, "CreateSchedule v1 again")

	got := ownSchedules(t, s, ns)
	if len(got) != 2 || got[0].Version != "1" || got[1].Version != "2" {
		t.Fatalf("ListSchedules = %+v, want versions 1 and 2 in order", got)
	}
	if !got[0].NextRun.Equal(at(time.Minute)) || !got[0].LastRun.IsZero() || got[0].LastInvocation != "" {
		t.Fatalf("schedule v1 = %+v; a conflicting create must not change it", got[0])
	}
	if !got[1].NextRun.IsZero() {
		t.Fatalf("schedule v2 NextRun = %v, want zero", got[1].NextRun)
	}

	// Nanosecond precision matters: the claim compares times exactly.
	due := at(time.Minute)
	next := at(2*time.Minute + 123)
	claim := &store.Schedule{Namespace: ns, Name: "tick", Version: "1", NextRun: next, LastRun: due, LastInvocation: "inv-1"}
	ok, err := s.AdvanceSchedule(ctx, claim, due)
	must(t, err, "AdvanceSchedule")
	if !ok {
		t.Fatal("AdvanceSchedule from the stored NextRun did not advance")
	}
	ok, err = s.AdvanceSchedule(ctx, claim, due)
	must(t, err, "AdvanceSchedule stale")
	if ok {
		t.Fatal("AdvanceSchedule from a NextRun that is no longer stored advanced")
	}
	got = ownSchedules(t, s, ns)
	if !got[0].NextRun.Equal(next) || !got[0].LastRun.Equal(due) || got[0].LastInvocation != "inv-1" {
		t.Fatalf("advanced schedule = %+v, want next %v last %v inv-1", got[0], next, due)
	}
	// An `after` schedule waits with no NextRun, then gets one.
	wait := &store.Schedule{Namespace: ns, Name: "tick", Version: "1", LastRun: next, LastInvocation: "inv-2"}
	ok, err = s.AdvanceSchedule(ctx, wait, next)
	must(t, err, "AdvanceSchedule to zero")
	if !ok || !ownSchedules(t, s, ns)[0].NextRun.IsZero() {
		t.Fatal("AdvanceSchedule to a zero NextRun did not store it")
	}
	wait.NextRun = at(time.Hour)
	ok, err = s.AdvanceSchedule(ctx, wait, time.Time{})
	must(t, err, "AdvanceSchedule from zero")
	if !ok {
		t.Fatal("AdvanceSchedule from a zero NextRun did not advance")
	}
	ok, err = s.AdvanceSchedule(ctx, &store.Schedule{Namespace: ns, Name: "gone", Version: "1"}, time.Time{})
	if err != nil || ok {
		t.Fatalf("AdvanceSchedule of a missing schedule = %v, %v; want false, nil", ok, err)
	}

	must(t, s.DeleteSchedules(ctx, ns, "tick", "1"), "DeleteSchedules v1")
	if got = ownSchedules(t, s, ns); len(got) != 1 || got[0].Version != "2" {
		t.Fatalf("after deleting v1: %+v", got)
	}
	must(t, s.DeleteSchedules(ctx, ns, "tick", "1"), "DeleteSchedules of nothing")
	must(t, s.CreateSchedule(ctx, &store.Schedule{Namespace: ns, Name: "tick", Version: "3", CreatedAt: at(0)}), "CreateSchedule v3")
	must(t, s.DeleteSchedules(ctx, ns, "tick", ""), "DeleteSchedules all")
	if got = ownSchedules(t, s, ns); len(got) != 0 {
		t.Fatalf("after deleting all versions: %+v", got)
	}
}

// testScheduleClaimRace has many callers claim the same due run at once:
// exactly one may win, or a scheduled run would start twice.
func testScheduleClaimRace(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, ns := openStore(t, open), ctxOf(t), prefix(t)+"ns"
	due := at(time.Minute)
	must(t, s.CreateSchedule(ctx, &store.Schedule{Namespace: ns, Name: "race", Version: "1", NextRun: due, CreatedAt: at(0)}), "CreateSchedule")
	const contenders = 16
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range contenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			claim := &store.Schedule{Namespace: ns, Name: "race", Version: "1",
				NextRun: due.Add(time.Duration(i+1) * time.Second), LastRun: due, LastInvocation: "contender"}
			ok, err := s.AdvanceSchedule(ctx, claim, due)
			if err != nil {
				t.Errorf("AdvanceSchedule: %v", err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Fatalf("%d contenders claimed the same due run, want exactly 1", n)
	}
}
