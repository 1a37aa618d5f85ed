//go:build linux

package qos

import (
	"context"
	"testing"
	"time"
)

// seatOrWait asks for a seat on its own goroutine and says whether it was
// granted within d; the seat comes on the channel either way.
func seatOrWait(t *testing.T, s *Scheduler, c Call, d time.Duration) (<-chan Seat, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	got := make(chan Seat, 1)
	go func() {
		st, err := s.Seat(ctx, c)
		if err != nil {
			st = Seat{Release: func() {}}
		}
		got <- st
	}()
	select {
	case st := <-got:
		got <- st
		return got, true
	case <-time.After(d):
		return got, false
	}
}

// TestSeatYieldsWhileCriticalWorkIsAbout: a lower class's call in the
// wasm pool yields the CPU only while critical work is about (seated,
// queued, or asking for a seat lately); never in a pool whose calls
// compute elsewhere, never critical's own, never with the ablation.
func TestSeatYieldsWhileCriticalWorkIsAbout(t *testing.T) {
	clock := &testClock{now: t0}
	s := newTestScheduler(Options{Seats: map[string]int{PoolWasm: 3, PoolProcess: 3}, Now: clock.Now})
	seat := func(pool string, k Class) Seat {
		t.Helper()
		got, ok := seatOrWait(t, s, Call{Pool: pool, Class: k, Flow: k.String()}, 5*time.Second)
		if !ok {
			t.Fatalf("a %s call in %s got no seat", k, pool)
		}
		return <-got
	}
	alone := seat(PoolWasm, Standard)
	if alone.Yield {
		t.Error("a standard call yields with no critical work about")
	}
	alone.Release()
	crit := seat(PoolWasm, Critical)
	if crit.Yield {
		t.Error("a critical call yields")
	}
	beside, process := seat(PoolWasm, Standard), seat(PoolProcess, Batch)
	if !beside.Yield || process.Yield {
		t.Errorf("beside a critical call: a wasm call yields %v, a process call %v; want true, false", beside.Yield, process.Yield)
	}
	for _, p := range s.Status().Pools {
		if want := map[string]int{PoolWasm: 1}[p.Pool]; p.Yielding != want {
			t.Errorf("pool %s shows %d yielding seats, want %d", p.Pool, p.Yielding, want)
		}
	}
	beside.Release()
	process.Release()
	crit.Release()
	if p := s.Status().Pools; len(p) == 0 || p[len(p)-1].Yielding != 0 {
		t.Errorf("yielding seats after every call ended: %+v", p)
	}
	clock.advance(criticalWindow + time.Millisecond)
	late := seat(PoolWasm, Batch)
	if late.Yield {
		t.Error("a batch call yields long after the last critical call")
	}
	late.Release()

	off := newTestScheduler(Options{Seats: map[string]int{PoolWasm: 3}, NoCPUPriority: true, Now: clock.Now})
	c, _ := off.Seat(context.Background(), Call{Pool: PoolWasm, Class: Critical, Flow: "h"})
	if st, _ := off.Seat(context.Background(), Call{Pool: PoolWasm, Class: Standard, Flow: "s"}); st.Yield {
		t.Error("a standard call yields with the no-cpu-priority ablation")
	}
	c.Release()
}

// TestCriticalSeatedBesideYieldingCalls: within its share, a critical
// call takes a seat on a full pool when calls that yield hold some of it,
// and waits when the calls there do not yield.
func TestCriticalSeatedBesideYieldingCalls(t *testing.T) {
	for _, yielding := range []bool{true, false} {
		s := newTestScheduler(Options{Seats: map[string]int{PoolWasm: 3}})
		call := func(k Class) Call { return Call{Pool: PoolWasm, Class: k, Flow: k.String()} }
		var held []Seat
		take := func(k Class) Seat {
			t.Helper()
			got, ok := seatOrWait(t, s, call(k), 5*time.Second)
			if !ok {
				t.Fatalf("yielding %v: a %s call got no seat", yielding, k)
			}
			st := <-got
			held = append(held, st)
			return st
		}
		var std Seat
		if yielding {
			take(Critical) // critical about: the standard call yields
			std = take(Standard)
		} else {
			std = take(Standard) // no critical work yet: it does not
			take(Critical)
		}
		take(Critical) // the reserve, or a seat the yielding call holds
		// The pool's three seats are taken.
		// Granted, it comes at once: the wait only bounds a loaded
		// machine's scheduling of the asking goroutine.
		wait := 200 * time.Millisecond
		if yielding {
			wait = 5 * time.Second
		}
		got, ok := seatOrWait(t, s, call(Critical), wait)
		if ok != yielding {
			t.Errorf("standard yielding %v: a critical call seated on the full pool at once: %v", std.Yield, ok)
		}
		if !ok {
			std.Release()
			select {
			case st := <-got:
				st.Release()
			case <-time.After(5 * time.Second):
				t.Fatal("the critical call still waits after the standard call's seat was given back")
			}
		} else {
			(<-got).Release()
		}
		for _, st := range held {
			st.Release()
		}
	}
}
