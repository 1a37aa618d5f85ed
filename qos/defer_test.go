package qos

import (
	"context"
	"testing"
	"time"
)

// TestAdmitDeferredOverQuota: a deferred start over its namespace's rate
// quota waits for a token, but not past its deadline (a deadline error),
// and a hook's (RefuseOverQuota) is refused at once with quota_exceeded.
func TestAdmitDeferredOverQuota(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name     string
		start    Start
		deadline bool   // 100 ms after the first start
		reason   Reason // "" for admitted
		within   time.Duration
	}{
		{"no deadline waits for its token", Start{Rate: 20}, false, "", 2 * time.Second},
		{"deadline before the token", Start{Rate: 0.1}, true, ReasonDeadline, 2 * time.Second},
		{"hook", Start{Rate: 0.1, RefuseOverQuota: true}, false, ReasonQuota, 50 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{})
			st := tt.start
			st.Class, st.Namespace, st.Burst, st.Defer = Standard, "ns", 1, true
			if tt.deadline {
				st.Deadline = time.Now().Add(100 * time.Millisecond)
			}
			first, err := s.Admit(ctx, st)
			if err != nil {
				t.Fatalf("the first start, within the burst: %v", err)
			}
			first.Settle()
			began := time.Now()
			ticket, err := s.Admit(ctx, st)
			took := time.Since(began)
			if took > tt.within {
				t.Errorf("answered after %s, want within %s", took, tt.within)
			}
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("over the quota without a deadline: %v, want admitted once a token came", err)
				}
				ticket.Settle()
				return
			}
			r, ok := AsRejection(err)
			if !ok || r.Reason != tt.reason {
				t.Fatalf("got %v, want %s", err, tt.reason)
			}
			if tt.reason == ReasonDeadline && took < 90*time.Millisecond {
				t.Errorf("the deadline error came after %s, before the deadline", took)
			}
		})
	}
}
