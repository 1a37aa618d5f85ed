package qos

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// cancelled is a context already done: a start that Admit queues returns
// its error, so a Rejection from Admit with it was decided at arrival,
// before any wait.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestAdmitRefusalIsNeverAfterWaiting: every refusal of a synchronous
// start is decided at its arrival.
func TestAdmitRefusalIsNeverAfterWaiting(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name   string
		opts   Options
		setup  func(t *testing.T, s *Scheduler)
		start  Start
		reason Reason
		status int
	}{
		{
			name:   "quota",
			start:  Start{Class: Standard, Namespace: "ns", Running: 3, RunningCap: 3},
			reason: ReasonQuota, status: http.StatusTooManyRequests,
		},
		{
			name: "full queue",
			opts: Options{BacklogTarget: 1, QueueLimit: 1},
			setup: func(t *testing.T, s *Scheduler) {
				hold(t, s, Standard)
				queue(t, s, Start{Class: Standard, Namespace: "ns"})
			},
			start:  Start{Class: Standard, Namespace: "ns"},
			reason: ReasonOverloaded, status: http.StatusServiceUnavailable,
		},
		{
			name: "predicted wait longer than the deadline left",
			opts: Options{BacklogTarget: 1, Seats: map[string]int{PoolWasm: 1}, DefaultCost: 100 * time.Millisecond},
			setup: func(t *testing.T, s *Scheduler) {
				hold(t, s, Standard)
				for range 5 {
					queue(t, s, Start{Class: Standard, Namespace: "ns"})
				}
			},
			start:  Start{Class: Standard, Namespace: "ns", Deadline: now.Add(200 * time.Millisecond)},
			reason: ReasonInfeasible, status: http.StatusServiceUnavailable,
		},
		{
			name: "predicted wait longer than the max wait",
			opts: Options{BacklogTarget: 1, Seats: map[string]int{PoolWasm: 1}, DefaultCost: 100 * time.Millisecond, MaxWait: 250 * time.Millisecond},
			setup: func(t *testing.T, s *Scheduler) {
				hold(t, s, Standard)
				for range 3 {
					queue(t, s, Start{Class: Standard, Namespace: "ns"})
				}
			},
			start:  Start{Class: Standard, Namespace: "ns"},
			reason: ReasonOverloaded, status: http.StatusServiceUnavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Now = func() time.Time { return now }
			s := newTestScheduler(tt.opts)
			if tt.setup != nil {
				tt.setup(t, s)
			}
			queued := s.g1Total()
			_, err := s.Admit(cancelled(), tt.start)
			if errors.Is(err, context.Canceled) {
				t.Fatal("the start was queued rather than refused at arrival")
			}
			wantRejection(t, err, tt.reason, tt.status)
			if got := s.g1Total(); got != queued {
				t.Errorf("G1 holds %d starts after the refusal, want %d", got, queued)
			}
		})
	}
}

// hold admits a start of class k that never reaches G2 (the backlog).
func hold(t *testing.T, s *Scheduler, k Class) {
	t.Helper()
	tk, err := s.Admit(context.Background(), Start{Class: k, Namespace: "hold"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tk.Settle)
}

// queue queues a start at G1 whose caller leaves when the test ends.
func queue(t *testing.T, s *Scheduler, st Start) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n := s.g1Total()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if tk, err := s.Admit(ctx, st); err == nil {
			tk.Settle()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, func() bool { return s.g1Total() == n+1 })
}

// TestAdmitQueuedEndsAdmittedOrDeadline: a start once queued is never
// refused as overloaded, however long it waits: it is admitted, or its
// own deadline ends it with deadline_exceeded (504).
func TestAdmitQueuedEndsAdmittedOrDeadline(t *testing.T) {
	const maxWait = time.Millisecond
	tests := []struct {
		name     string
		deadline time.Duration // 0: none
		want     Reason        // "": admitted
	}{
		{name: "no deadline, waits past the max wait, admitted"},
		{name: "deadline passes while queued", deadline: 50 * time.Millisecond, want: ReasonDeadline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestScheduler(Options{BacklogTarget: 1, MaxWait: maxWait})
			first, err := s.Admit(context.Background(), Start{Class: Standard, Namespace: "ns"})
			if err != nil {
				t.Fatal(err)
			}
			st := Start{Class: Standard, Namespace: "ns"}
			if tt.deadline > 0 {
				st.Deadline = time.Now().Add(tt.deadline)
			}
			got := make(chan error, 1)
			queuedAt := time.Now()
			go func() {
				tk, err := s.Admit(context.Background(), st)
				tk.Settle()
				got <- err
			}()
			waitFor(t, func() bool { return s.g1Total() == 1 })
			if tt.want == "" {
				// Well past the max wait, the start still waits.
				waitFor(t, func() bool { return time.Since(queuedAt) > 20*maxWait })
				select {
				case err := <-got:
					t.Fatalf("a queued start ended before its turn: %v", err)
				default:
				}
				first.Settle()
				if err := <-got; err != nil {
					t.Fatalf("a queued start ended with %v, want admitted", err)
				}
				return
			}
			defer first.Settle()
			wantRejection(t, <-got, tt.want, http.StatusGatewayTimeout)
			if n := s.g1Total(); n != 0 {
				t.Errorf("%d starts left queued", n)
			}
		})
	}
}

// TestAdmitWhileG2HasIdleSeats: admitted starts on their way to G2 are
// backlog only beyond G2's idle seats, so G1 keeps the seats busy; calls
// waiting at G2 hold new starts back (continuation priority).
func TestAdmitWhileG2HasIdleSeats(t *testing.T) {
	tests := []struct {
		name    string
		seats   int
		seated  int // calls holding seats
		waiting int // calls queued at G2
		pending int // admitted starts not yet at G2
		admit   bool
	}{
		{name: "idle seats take the starts in transit", seats: 4, pending: 4, admit: true},
		{name: "one in transit beyond the idle seats is the backlog", seats: 4, pending: 5, admit: false},
		{name: "busy seats leave no room", seats: 4, seated: 4, pending: 1, admit: false},
		{name: "some seats idle", seats: 4, seated: 2, pending: 2, admit: true},
		{name: "calls waiting at G2 go first", seats: 1, seated: 1, waiting: 1, admit: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestScheduler(Options{BacklogTarget: 1, Seats: map[string]int{PoolWasm: tt.seats}})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// The pool exists once a call used it.
			r, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Standard, Flow: "ns"})
			if err != nil {
				t.Fatal(err)
			}
			r()
			for range tt.seated {
				// Critical may take every seat (others leave it its reserve).
				r, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Critical, Flow: "h"})
				if err != nil {
					t.Fatal(err)
				}
				defer r()
			}
			for range tt.waiting {
				go func() {
					if r, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Standard, Flow: "ns", Continuation: true}); err == nil {
						r()
					}
				}()
			}
			waitFor(t, func() bool { return lenOf(s, PoolWasm) == tt.waiting })
			for range tt.pending {
				tk, err := s.Admit(context.Background(), Start{Class: Standard, Namespace: "ns"})
				if err != nil {
					t.Fatal(err)
				}
				defer tk.Settle()
			}
			tk, err := s.Admit(cancelled(), Start{Class: Standard, Namespace: "ns"})
			switch {
			case tt.admit && err != nil:
				t.Fatalf("held back with %v, want admitted", err)
			case !tt.admit && !errors.Is(err, context.Canceled):
				t.Fatalf("got %v, want queued", err)
			}
			tk.Settle()
		})
	}
}
