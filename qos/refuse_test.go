package qos

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestRefuseAgreesWithAdmit: what Refuse refuses without the gates' lock,
// Admit refuses for the same reason; what Refuse lets through, Admit
// admits or queues.
func TestRefuseAgreesWithAdmit(t *testing.T) {
	now := time.Now()
	busyN := func(n int) func(t *testing.T, s *Scheduler) {
		return func(t *testing.T, s *Scheduler) {
			hold(t, s, Standard)
			for range n {
				queue(t, s, Start{Class: Standard, Namespace: "ns"})
			}
		}
	}
	busy := busyN(5)
	slow := Options{BacklogTarget: 1, Seats: map[string]int{PoolWasm: 1}, DefaultCost: 100 * time.Millisecond}
	tests := []struct {
		name  string
		opts  Options
		setup func(t *testing.T, s *Scheduler)
		start Start
		want  Reason // "": not refused
	}{
		{name: "idle", start: Start{Class: Standard, Namespace: "ns"}},
		{name: "running cap", start: Start{Class: Standard, Namespace: "ns", Running: 3, RunningCap: 3}, want: ReasonQuota},
		{name: "rate spent", start: Start{Class: Standard, Namespace: "ns", Rate: 1, Burst: 1},
			setup: func(t *testing.T, s *Scheduler) {
				if _, err := s.Admit(context.Background(), Start{Class: Standard, Namespace: "ns", Rate: 1, Burst: 1}); err != nil {
					t.Fatal(err)
				}
			}, want: ReasonQuota},
		{name: "rate of another namespace spent", start: Start{Class: Standard, Namespace: "other", Rate: 1, Burst: 1},
			setup: func(t *testing.T, s *Scheduler) {
				if _, err := s.Admit(context.Background(), Start{Class: Standard, Namespace: "ns", Rate: 1, Burst: 1}); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "infeasible deadline", opts: slow, setup: busy, want: ReasonInfeasible,
			start: Start{Class: Standard, Namespace: "ns", Deadline: now.Add(200 * time.Millisecond)}},
		{name: "feasible deadline", opts: slow, setup: busy,
			start: Start{Class: Standard, Namespace: "ns", Deadline: now.Add(time.Hour)}},
		{name: "longer than the max wait", opts: Options{BacklogTarget: 1, Seats: map[string]int{PoolWasm: 1},
			DefaultCost: 100 * time.Millisecond, MaxWait: 250 * time.Millisecond}, setup: busyN(3),
			start: Start{Class: Standard, Namespace: "ns"}, want: ReasonOverloaded},
		{name: "critical ahead of a standard queue", opts: slow, setup: busy,
			start: Start{Class: Critical, Namespace: "h", Deadline: now.Add(200 * time.Millisecond)}},
		{name: "full queue", opts: Options{BacklogTarget: 1, QueueLimit: 1},
			setup: func(t *testing.T, s *Scheduler) {
				hold(t, s, Standard)
				queue(t, s, Start{Class: Standard, Namespace: "ns"})
			},
			start: Start{Class: Standard, Namespace: "ns"}, want: ReasonOverloaded},
		{name: "full queue sheds batch for standard", opts: Options{BacklogTarget: 1, QueueLimit: 1},
			setup: func(t *testing.T, s *Scheduler) {
				hold(t, s, Standard)
				queue(t, s, Start{Class: Batch, Namespace: "b"})
			},
			start: Start{Class: Standard, Namespace: "ns"}},
		{name: "asynchronous starts are deferred", opts: Options{BacklogTarget: 1, QueueLimit: 1},
			setup: func(t *testing.T, s *Scheduler) {
				hold(t, s, Standard)
				queue(t, s, Start{Class: Standard, Namespace: "ns"})
			},
			start: Start{Class: Standard, Namespace: "ns", Defer: true, Running: 5, RunningCap: 1}},
		{name: "system", start: Start{Class: System, Namespace: "ns", Running: 5, RunningCap: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Now = func() time.Time { return now }
			s := newTestScheduler(tt.opts)
			if tt.setup != nil {
				tt.setup(t, s)
			}
			refused := s.Refuse(tt.start)
			if tt.want == "" {
				if refused != nil {
					t.Fatalf("Refuse: %v, want none", refused)
				}
				if tt.start.Defer {
					return // Admit would wait: nothing to compare
				}
				tk, err := s.Admit(cancelled(), tt.start)
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Fatalf("Refuse let through a start Admit refuses: %v", err)
				}
				tk.Settle()
				return
			}
			if refused == nil {
				t.Fatalf("Refuse let it through, want %s", tt.want)
			}
			wantRejection(t, refused, tt.want, refused.Status())
			_, err := s.Admit(cancelled(), tt.start)
			if r, ok := AsRejection(err); !ok || r.Reason != tt.want {
				t.Fatalf("Admit: %v, want %s like Refuse", err, tt.want)
			}
			if got := s.Status().Rejected; len(got) == 0 || got[0].Count != 2 {
				t.Errorf("rejections counted %+v, want Refuse's and Admit's", got)
			}
		})
	}
}

// TestRefuseTakesNoToken: asking does not spend the namespace's quota.
func TestRefuseTakesNoToken(t *testing.T) {
	now := time.Now()
	s := newTestScheduler(Options{Now: func() time.Time { return now }})
	st := Start{Class: Standard, Namespace: "ns", Rate: 1, Burst: 2}
	for range 5 {
		if r := s.Refuse(st); r != nil {
			t.Fatalf("Refuse: %v", r)
		}
	}
	for i := range 2 {
		tk, err := s.Admit(context.Background(), st)
		if err != nil {
			t.Fatalf("start %d of a burst of 2: %v", i, err)
		}
		tk.Settle()
	}
	if r := s.Refuse(st); r == nil || r.Reason != ReasonQuota {
		t.Fatalf("Refuse after the burst: %v, want quota_exceeded", r)
	}
	now = now.Add(time.Second)
	if r := s.Refuse(st); r != nil {
		t.Fatalf("Refuse a second later: %v, want none", r)
	}
}

// TestRefuseWithoutTheGatesLock: a refusal does not wait for the lock the
// gates hold while they seat calls and admit starts.
func TestRefuseWithoutTheGatesLock(t *testing.T) {
	s := newTestScheduler(Options{})
	s.mu.Lock()
	defer s.mu.Unlock()
	done := make(chan *Rejection, 1)
	go func() {
		done <- s.Refuse(Start{Class: Batch, Namespace: "b", Rate: 1, Burst: 1, Running: 1, RunningCap: 1})
	}()
	select {
	case r := <-done:
		if r == nil || r.Reason != ReasonQuota {
			t.Fatalf("got %v, want quota_exceeded", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Refuse waited for the gates' lock")
	}
}

// TestRefuseFollowsTheGates: the view Refuse reads follows the gates as
// calls end and starts are admitted, so a server that recovers stops
// refusing.
func TestRefuseFollowsTheGates(t *testing.T) {
	s := newTestScheduler(Options{BacklogTarget: 1, Seats: map[string]int{PoolWasm: 1}, DefaultCost: 100 * time.Millisecond, MaxWait: 250 * time.Millisecond})
	st := Start{Class: Standard, Namespace: "ns"}
	seat, err := acquire(context.Background(), s, Call{Pool: PoolWasm, Class: Standard, Flow: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := s.Admit(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	admitted := make(chan *Ticket, 3)
	for range 3 {
		go func() {
			if tk, err := s.Admit(ctx, st); err == nil {
				admitted <- tk
			}
		}()
	}
	waitFor(t, func() bool { return s.g1Total() == 3 })
	if r := s.Refuse(st); r == nil || r.Reason != ReasonOverloaded {
		t.Fatalf("with 3 queued at 100ms a seat: %v, want overloaded", r)
	}
	cancel()
	waitFor(t, func() bool { return s.g1Total() == 0 })
	tk.Settle()
	seat()
	if r := s.Refuse(st); r != nil {
		t.Fatalf("after the queue emptied: %v, want none", r)
	}
}

// TestHTTPPoolUnlimited: calls of the http pool wait on the network, not
// on this server: by default they never wait for a seat, and however many
// are in flight, starts are admitted (the cause of a server that stopped
// admitting while 256 slow HTTP calls held every seat).
func TestHTTPPoolUnlimited(t *testing.T) {
	s := newTestScheduler(Options{BacklogTarget: 1})
	var releases []func()
	for i := range 300 {
		tk, err := s.Admit(cancelled(), Start{Class: Standard, Namespace: "ns"})
		if err != nil {
			t.Fatalf("start %d with %d HTTP calls in flight: %v", i, i, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := acquire(ctx, s, Call{Pool: PoolHTTP, Class: Standard, Flow: "ns", Admission: tk})
		cancel()
		if err != nil {
			t.Fatalf("call %d waited for a seat: %v", i, err)
		}
		releases = append(releases, r)
	}
	if r := s.Refuse(Start{Class: Standard, Namespace: "ns", Deadline: time.Now().Add(50 * time.Millisecond)}); r != nil {
		t.Fatalf("refused with 300 HTTP calls in flight: %v", r)
	}
	st := s.Status()
	if len(st.Pools) != 1 || st.Pools[0].Seats != 0 || len(st.Pools[0].InUse) != 1 || st.Pools[0].InUse[0].Count != 300 {
		t.Fatalf("status %+v, want the http pool unlimited with 300 in use", st.Pools)
	}
	for _, r := range releases {
		r()
	}
	// A configured limit still holds.
	s = newTestScheduler(Options{Seats: map[string]int{PoolHTTP: 1}})
	r, err := acquire(context.Background(), s, Call{Pool: PoolHTTP, Class: Standard, Flow: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	defer r()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := acquire(ctx, s, Call{Pool: PoolHTTP, Class: Standard, Flow: "ns"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second call of a 1-seat http pool: %v, want it to wait", err)
	}
}

// TestJitterWholeSeconds: Retry-After's whole seconds are never below
// the wait and spread a crowd refused together over neighbouring seconds.
func TestJitterWholeSeconds(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		u    float64
		want time.Duration
	}{
		{300 * time.Millisecond, 0, time.Second}, // never below a second
		{time.Second, 0.49, time.Second},
		{time.Second, 0.5, 2 * time.Second},
		{1200 * time.Millisecond, 0, 2 * time.Second}, // never below the wait
		{4 * time.Second, 0.99, 6 * time.Second},
	} {
		if got := jitter(tt.d, time.Second, tt.u); got != tt.want {
			t.Errorf("jitter(%s, %g) = %s, want %s", tt.d, tt.u, got, tt.want)
		}
	}
	counts := map[time.Duration]int{}
	for i := range 1000 {
		counts[jitter(time.Second, time.Second, (float64(i)+0.5)/1000)]++
	}
	if len(counts) != 2 || counts[time.Second] != 500 || counts[2*time.Second] != 500 {
		t.Fatalf("a crowd refused with a wait of 1s is told %v, want 1s and 2s alike", counts)
	}
}

// BenchmarkRefuse is the scheduler's share of a refusal (an overloaded
// server's most frequent answer), from parallel callers while the gates
// are busy seating calls.
func BenchmarkRefuse(b *testing.B) {
	s := New(Options{BacklogTarget: 1, Seats: map[string]int{PoolWasm: 1}, DefaultCost: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seat, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Standard, Flow: "ns"})
	if err != nil {
		b.Fatal(err)
	}
	defer seat()
	if _, err := s.Admit(ctx, Start{Class: Standard, Namespace: "ns"}); err != nil {
		b.Fatal(err)
	}
	for range 4 {
		go func() { _, _ = s.Admit(ctx, Start{Class: Standard, Namespace: "ns"}) }()
	}
	for deadline := time.Now().Add(10 * time.Second); s.g1Total() < 4; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the starts did not queue")
		}
	}
	// The gates stay busy: calls of another pool come and go meanwhile.
	go func() {
		for ctx.Err() == nil {
			if r, err := acquire(ctx, s, Call{Pool: PoolHTTP, Class: Critical, Flow: "h"}); err == nil {
				r()
			}
		}
	}()
	// Four starts ahead at 100ms each: a 200ms deadline is infeasible.
	st := Start{Class: Standard, Namespace: "ns", Deadline: time.Now().Add(200 * time.Millisecond)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := s.Refuse(st); r == nil {
				panic(fmt.Sprint("not refused: ", s.Status()))
			}
		}
	})
}

// TestAdmitIdleSeatsOfAnotherPool: the idle seats of one pool do not
// admit starts while another pool is full, since the starts' calls may be
// bound for the full one.
func TestAdmitIdleSeatsOfAnotherPool(t *testing.T) {
	s := newTestScheduler(Options{BacklogTarget: 1, Seats: map[string]int{PoolWasm: 1, PoolProcess: 5}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := acquire(ctx, s, Call{Pool: PoolProcess, Class: Standard, Flow: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	r() // the process pool exists, all five seats idle
	seat, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Standard, Flow: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	defer seat()
	tk, err := s.Admit(ctx, Start{Class: Standard, Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Settle()
	if _, err := s.Admit(cancelled(), Start{Class: Standard, Namespace: "ns"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a start in transit and the wasm pool full: %v, want the next start queued", err)
	}
}
