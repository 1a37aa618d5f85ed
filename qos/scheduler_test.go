package qos

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newTestScheduler(o Options) *Scheduler {
	if o.Random == nil {
		o.Random = func() float64 { return 0.5 }
	}
	return New(o)
}

func wantRejection(t *testing.T, err error, reason Reason, status int) *Rejection {
	t.Helper()
	r, ok := AsRejection(err)
	if !ok {
		t.Fatalf("got %v, want a %s rejection", err, reason)
	}
	if r.Reason != reason || r.Status() != status {
		t.Fatalf("got %s (%d), want %s (%d)", r.Reason, r.Status(), reason, status)
	}
	if r.RetryAfter < time.Second || r.RetryAfterSeconds() < 1 {
		t.Fatalf("Retry-After %s is below a second", r.RetryAfter)
	}
	return r
}

func TestAdmitQuota(t *testing.T) {
	now := t0
	s := newTestScheduler(Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	st := Start{Class: Standard, Namespace: "ns", Rate: 2, Burst: 2}
	for range 2 {
		tk, err := s.Admit(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		tk.Settle()
	}
	r := wantRejection(t, mustFail(s.Admit(ctx, st)), ReasonQuota, http.StatusTooManyRequests)
	if r.Namespace != "ns" || r.Class != Standard {
		t.Errorf("rejection names %s/%s", r.Namespace, r.Class)
	}
	// Half a second later one token is back.
	now = now.Add(500 * time.Millisecond)
	if _, err := s.Admit(ctx, st); err != nil {
		t.Fatalf("after a token's time: %v", err)
	}
	// The running cap is per server.
	capped := Start{Class: Batch, Namespace: "ns2", Running: 10, RunningCap: 10}
	wantRejection(t, mustFail(s.Admit(ctx, capped)), ReasonQuota, http.StatusTooManyRequests)
	capped.Running = 9
	if _, err := s.Admit(ctx, capped); err != nil {
		t.Fatalf("under the cap: %v", err)
	}
	// The rate is split between live replicas: two halve it.
	s.SetReplicas(func() int { return 2 })
	now = now.Add(time.Hour)
	split := Start{Class: Standard, Namespace: "ns3", Rate: 4, Burst: 2}
	if _, err := s.Admit(ctx, split); err != nil {
		t.Fatal(err)
	}
	wantRejection(t, mustFail(s.Admit(ctx, split)), ReasonQuota, http.StatusTooManyRequests)
	now = now.Add(250 * time.Millisecond) // one token at 4/s, none at 2/s
	wantRejection(t, mustFail(s.Admit(ctx, split)), ReasonQuota, http.StatusTooManyRequests)
	now = now.Add(250 * time.Millisecond)
	if _, err := s.Admit(ctx, split); err != nil {
		t.Fatalf("after a token's time at half the rate: %v", err)
	}
	if got := s.Status().Rejected; len(got) != 3 {
		t.Errorf("status counts rejections %v", got)
	}
}

func mustFail(_ *Ticket, err error) error { return err }

func TestAdmitDeferredWaitsForQuota(t *testing.T) {
	s := newTestScheduler(Options{})
	ctx := context.Background()
	st := Start{Class: Standard, Namespace: "ns", Rate: 50, Burst: 1, Defer: true}
	for range 3 {
		if _, err := s.Admit(ctx, st); err != nil {
			t.Fatalf("a deferred start was refused: %v", err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Admit(cctx, Start{Class: Standard, Namespace: "ns", Rate: 0.001, Burst: 1, Defer: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a deferred start whose caller left: %v", err)
	}
}

// TestAdmitContinuationPriority: while calls of running workflows wait at
// G2, new starts wait at G1, and go once the backlog drains.
func TestAdmitContinuationPriority(t *testing.T) {
	s := newTestScheduler(Options{BacklogTarget: 1, Seats: map[string]int{PoolWasm: 1}})
	ctx := context.Background()
	first, err := s.Admit(ctx, Start{Class: Standard, Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		tk, err := s.Admit(ctx, Start{Class: Standard, Namespace: "ns"})
		tk.Settle()
		got <- err
	}()
	waitFor(t, func() bool { return len(s.Status().Admission.Queued) == 1 })
	select {
	case err := <-got:
		t.Fatalf("a start was admitted while the first was not yet at G2: %v", err)
	default:
	}
	first.Settle()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// A critical start is not held back by standard's backlog.
	hold, _ := s.Admit(ctx, Start{Class: Standard, Namespace: "ns"})
	defer hold.Settle()
	if _, err := s.Admit(ctx, Start{Class: Critical, Namespace: "h"}); err != nil {
		t.Fatal(err)
	}
}

func TestAdmitDeadlines(t *testing.T) {
	s := newTestScheduler(Options{BacklogTarget: 1})
	ctx := context.Background()
	hold, _ := s.Admit(ctx, Start{Class: Standard, Namespace: "ns"})
	defer hold.Settle()
	// Queued until its deadline passes: 504.
	_, err := s.Admit(ctx, Start{Class: Standard, Namespace: "ns", Deadline: time.Now().Add(30 * time.Millisecond)})
	wantRejection(t, err, ReasonDeadline, http.StatusGatewayTimeout)
	// A deadline already passed is infeasible at once: 503.
	_, err = s.Admit(ctx, Start{Class: Standard, Namespace: "ns", Deadline: time.Now().Add(-time.Millisecond)})
	wantRejection(t, err, ReasonInfeasible, http.StatusServiceUnavailable)
	if n := len(s.Status().Admission.Queued); n != 0 {
		t.Fatalf("%d queues left behind by starts that gave up", n)
	}
}

func TestAdmitInfeasibleByPredictedWait(t *testing.T) {
	s := newTestScheduler(Options{Seats: map[string]int{PoolWasm: 1}, BacklogTarget: 1000})
	ctx := context.Background()
	release, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Standard, Flow: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	// 20 calls of a second each wait behind the seat.
	costs := costFunc(func(string) (time.Duration, bool) { return time.Second, true })
	s.opts.Costs = costs
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			r, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Standard, Flow: "ns", Continuation: true})
			if err == nil {
				r()
			}
		})
	}
	waitFor(t, func() bool { return s.pools[PoolWasm] != nil && lenOf(s, PoolWasm) == 20 })
	_, err = s.Admit(ctx, Start{Class: Standard, Namespace: "ns", Deadline: time.Now().Add(time.Second)})
	wantRejection(t, err, ReasonInfeasible, http.StatusServiceUnavailable)
	// Critical is ahead of that backlog.
	if _, err := s.Admit(ctx, Start{Class: Critical, Namespace: "h", Deadline: time.Now().Add(time.Second)}); err != nil {
		t.Fatalf("critical: %v", err)
	}
	release()
	wg.Wait()
}

type costFunc func(string) (time.Duration, bool)

func (f costFunc) ExecCost(fn string) (time.Duration, bool) { return f(fn) }

func lenOf(s *Scheduler, pool string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pools[pool].Total()
}

func TestAdmitShedsBatch(t *testing.T) {
	s := newTestScheduler(Options{BacklogTarget: 1, QueueLimit: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hold, _ := s.Admit(ctx, Start{Class: Standard, Namespace: "ns"})
	errs := make(chan error, 3)
	for _, c := range []Class{Batch, Batch} {
		go func() {
			_, err := s.Admit(ctx, Start{Class: c, Namespace: "b"})
			errs <- err
		}()
	}
	waitFor(t, func() bool { return s.g1Total() == 2 })
	go func() {
		tk, err := s.Admit(ctx, Start{Class: Standard, Namespace: "s"})
		tk.Settle()
		errs <- err
	}()
	wantRejection(t, <-errs, ReasonOverloaded, http.StatusServiceUnavailable)
	_, err := s.Admit(ctx, Start{Class: Batch, Namespace: "b"})
	wantRejection(t, err, ReasonOverloaded, http.StatusServiceUnavailable)
	hold.Settle()
	cancel()
}

func (s *Scheduler) g1Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.g1.Total()
}

func TestAdmitNoAdmissionNeverRefuses(t *testing.T) {
	s := newTestScheduler(Options{NoAdmission: true})
	for range 10 {
		tk, err := s.Admit(context.Background(), Start{Class: Batch, Namespace: "ns", Rate: 0.001, Burst: 1, Running: 5, RunningCap: 1})
		if err != nil {
			t.Fatal(err)
		}
		tk.Settle()
	}
}

func TestAcquireSeats(t *testing.T) {
	s := newTestScheduler(Options{Seats: map[string]int{PoolWasm: 2}})
	ctx := context.Background()
	r1, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Standard, Flow: "a"})
	if err != nil {
		t.Fatal(err)
	}
	// The second seat is critical's reserve.
	got := make(chan func(), 1)
	go func() {
		r, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Standard, Flow: "b"})
		if err == nil {
			got <- r
		}
	}()
	waitFor(t, func() bool { return lenOf(s, PoolWasm) == 1 })
	rc, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Critical, Flow: "h"})
	if err != nil {
		t.Fatal(err)
	}
	// A call whose caller gives up leaves the queue.
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() {
		_, err := acquire(cctx, s, Call{Pool: PoolWasm, Class: Batch, Flow: "c"})
		gaveUp <- err
	}()
	waitFor(t, func() bool { return lenOf(s, PoolWasm) == 2 })
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled acquire: %v", err)
	}
	r1()
	r1() // a second release does nothing
	// The shared seat is not refilled beside critical's call (one CPU's
	// worth of seats: critical computes alone) until it ends.
	if n := lenOf(s, PoolWasm); n != 1 {
		t.Fatalf("%d calls queued beside critical's call, want standard's", n)
	}
	rc()
	(<-got)()
	st := s.Status()
	if len(st.Pools) != 1 || st.Pools[0].Seats != 2 || len(st.Pools[0].InUse) != 0 || len(st.Pools[0].Queued) != 0 {
		t.Fatalf("status after everything was released: %+v", st.Pools)
	}
	if m := gather(t, s); m["baton_qos_wait_seconds"] == nil {
		t.Error("no wait histogram series")
	}
	// System never waits.
	for range 5 {
		if _, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: System, Flow: "sys"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMetricsExposition(t *testing.T) {
	s := newTestScheduler(Options{})
	_, _ = s.Admit(context.Background(), Start{Class: Standard, Namespace: "ns", Rate: 1, Burst: 1})
	_, _ = s.Admit(context.Background(), Start{Class: Standard, Namespace: "ns", Rate: 1, Burst: 1})
	r, _ := acquire(context.Background(), s, Call{Pool: PoolHTTP, Class: Critical, Flow: "ns"})
	defer r()
	m := gather(t, s)
	if got := m["baton_qos_rejections_total"]; len(got) != 1 || got[0] != `class=standard,namespace=ns,reason=quota_exceeded 1` {
		t.Errorf("rejections %v", got)
	}
	if got := m["baton_qos_seats_in_use"]; len(got) != 1 || got[0] != `class=critical,namespace=ns,pool=http 1` {
		t.Errorf("seats in use %v", got)
	}
	if got := m["baton_qos_seats"]; len(got) != 1 || got[0] != `pool=http +Inf` {
		t.Errorf("seats %v", got)
	}
}

// gather collects c's series as "label=value,... value" by metric name.
func gather(t *testing.T, c prometheus.Collector) map[string][]string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
			out[f.GetName()] = append(out[f.GetName()], strings.Join(labels, ",")+" "+strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	return out
}

func TestParseHeaders(t *testing.T) {
	now := t0
	tests := []struct {
		h       map[string]string
		want    Request
		wantErr string
	}{
		{h: nil, want: Request{}},
		{h: map[string]string{HeaderClass: "Batch"}, want: Request{Class: Batch, HasClass: true}},
		{h: map[string]string{HeaderClass: "urgent"}, wantErr: "unknown priority class"},
		{h: map[string]string{HeaderTimeout: "200ms"}, want: Request{Deadline: now.Add(200 * time.Millisecond)}},
		{h: map[string]string{HeaderTimeout: "0.5"}, want: Request{Deadline: now.Add(500 * time.Millisecond)}},
		{h: map[string]string{HeaderTimeout: "-1s"}, wantErr: "positive"},
		{h: map[string]string{HeaderTimeout: "soon"}, wantErr: "want a duration"},
		{h: map[string]string{HeaderDeadline: "2026-01-01T00:00:01Z", HeaderTimeout: "2s"}, want: Request{Deadline: now.Add(time.Second)}},
		{h: map[string]string{HeaderDeadline: "2026-01-01T00:00:05Z", HeaderTimeout: "2s"}, want: Request{Deadline: now.Add(2 * time.Second)}},
		{h: map[string]string{HeaderDeadline: "tomorrow"}, wantErr: "RFC 3339"},
	}
	for _, tt := range tests {
		h := http.Header{}
		for k, v := range tt.h {
			h.Set(k, v)
		}
		got, err := ParseHeaders(h, now)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: error %v, want %q", tt.h, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%v: %+v, %v; want %+v", tt.h, got, err, tt.want)
		}
	}
}

func FuzzParseHeaders(f *testing.F) {
	for _, s := range []string{"critical", "200ms", "0.2", "2026-01-01T00:00:00Z", "-5", "NaN", "1e300"} {
		f.Add(s, s, s)
	}
	f.Fuzz(func(t *testing.T, class, deadline, timeout string) {
		h := http.Header{}
		h.Set(HeaderClass, class)
		h.Set(HeaderDeadline, deadline)
		h.Set(HeaderTimeout, timeout)
		r, err := ParseHeaders(h, t0)
		if err != nil {
			return
		}
		if r.HasClass && r.Class >= numClasses {
			t.Fatalf("class %d out of range", r.Class)
		}
		if h.Get(HeaderTimeout) != "" && !r.Deadline.After(t0) && h.Get(HeaderDeadline) == "" {
			t.Fatalf("timeout %q gave deadline %s, not after now", timeout, r.Deadline)
		}
	})
}

func TestClassify(t *testing.T) {
	all := []Class{Critical, Standard, Batch}
	tests := []struct {
		def     Class
		req     Request
		allowed []Class
		want    Class
		wantErr bool
	}{
		{def: Standard, want: Standard, allowed: all},
		{def: Standard, req: Request{Class: Batch, HasClass: true}, allowed: all, want: Batch},
		{def: Standard, req: Request{Class: Critical, HasClass: true}, allowed: all, wantErr: true},
		{def: Standard, req: Request{Class: Critical, HasClass: true, MayRaise: true}, allowed: all, want: Critical},
		{def: Standard, req: Request{Class: System, HasClass: true, MayRaise: true}, allowed: all, wantErr: true},
		{def: Standard, req: Request{Class: System, HasClass: true, MayRaise: true}, allowed: []Class{System}, want: System},
		// A document's default the namespace does not allow is lowered.
		{def: Critical, allowed: []Class{Standard, Batch}, want: Standard},
		{def: Batch, allowed: []Class{Critical}, wantErr: true},
	}
	for _, tt := range tests {
		got, err := Classify(tt.def, tt.req, tt.allowed)
		if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
			t.Errorf("Classify(%s, %+v, %v) = %s, %v; want %s (error %v)", tt.def, tt.req, tt.allowed, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestJitter(t *testing.T) {
	if got := jitter(0, time.Second, 0); got != time.Second {
		t.Errorf("floor: %s", got)
	}
	if got := jitter(2*time.Second, time.Second, 0.999); got < 2*time.Second || got > 3*time.Second {
		t.Errorf("jitter(2s) = %s, want in [2s,3s]", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSeatHandOff: the seat a workflow's call gives back is kept for the
// same workflow's next call, which takes it although another call waits;
// the workflow's end gives it back; without continuation priority there
// is no hand-off.
func TestSeatHandOff(t *testing.T) {
	ctx := context.Background()
	acquireAsync := func(s *Scheduler, c Call) <-chan func() {
		got := make(chan func(), 1)
		go func() {
			if r, err := acquire(ctx, s, c); err == nil {
				got <- r
			}
		}()
		return got
	}
	t.Run("hand-off", func(t *testing.T) {
		s := newTestScheduler(Options{Seats: map[string]int{PoolWasm: 1}, HandOff: time.Hour})
		var chain Chain
		w := Call{Pool: PoolWasm, Class: Standard, Flow: "a", Chain: &chain}
		r, err := acquire(ctx, s, w)
		if err != nil {
			t.Fatal(err)
		}
		other := acquireAsync(s, Call{Pool: PoolWasm, Class: Standard, Flow: "b"})
		waitFor(t, func() bool { return lenOf(s, PoolWasm) == 1 })
		r()
		if n := lenOf(s, PoolWasm); n != 1 {
			t.Fatalf("%d queued after the chain's call ended, want the other call still waiting", n)
		}
		// The next call of the chain takes the kept seat at once.
		w.Continuation = true
		r2, err := acquire(ctx, s, w)
		if err != nil {
			t.Fatal(err)
		}
		r2()
		s.EndChain(&chain)
		(<-other)()
		// An ended chain keeps no seat.
		r3, err := acquire(ctx, s, w)
		if err != nil {
			t.Fatal(err)
		}
		r3()
		if st := s.Status(); len(st.Pools[0].InUse) != 0 {
			t.Fatalf("seats held after the chain ended: %+v", st.Pools[0].InUse)
		}
	})
	t.Run("another chain waits", func(t *testing.T) {
		s := newTestScheduler(Options{Seats: map[string]int{PoolWasm: 1}, HandOff: time.Hour})
		var a, b Chain
		r, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Standard, Flow: "a", Chain: &a})
		if err != nil {
			t.Fatal(err)
		}
		r()
		got := acquireAsync(s, Call{Pool: PoolWasm, Class: Standard, Flow: "a", Chain: &b})
		waitFor(t, func() bool { return lenOf(s, PoolWasm) == 1 })
		s.EndChain(&a)
		(<-got)()
	})
	t.Run("kept no longer than HandOff", func(t *testing.T) {
		s := newTestScheduler(Options{Seats: map[string]int{PoolWasm: 1}, HandOff: time.Millisecond})
		var chain Chain
		r, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Standard, Flow: "a", Chain: &chain})
		if err != nil {
			t.Fatal(err)
		}
		r()
		// The chain never calls again nor ends: the seat comes back.
		(<-acquireAsync(s, Call{Pool: PoolWasm, Class: Standard, Flow: "b"}))()
	})
	t.Run("no-continuations", func(t *testing.T) {
		s := newTestScheduler(Options{Seats: map[string]int{PoolWasm: 1}, HandOff: time.Hour, NoContinuations: true})
		var chain Chain
		r, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Standard, Flow: "a", Chain: &chain})
		if err != nil {
			t.Fatal(err)
		}
		other := acquireAsync(s, Call{Pool: PoolWasm, Class: Standard, Flow: "b"})
		waitFor(t, func() bool { return lenOf(s, PoolWasm) == 1 })
		r()
		(<-other)()
	})
}

// TestLeadOfReservingClasses: only a class that reserves seats (critical)
// has a lead at G2; G1 has none.
func TestLeadOfReservingClasses(t *testing.T) {
	o := Options{}
	o.defaults()
	for _, seats := range []int{1, 2, 3, 10} {
		d := o.discipline(seats, true)
		if want := [numClasses]time.Duration{0, 5 * time.Second, 0, 0}; d.Lead != want {
			t.Errorf("%d seats: leads %v, want %v", seats, d.Lead, want)
		}
	}
	if d := o.discipline(0, false); d.Lead != ([numClasses]time.Duration{}) {
		t.Errorf("G1 leads %v, want none", d.Lead)
	}
}

// TestNominalSeats: beyond its share critical still goes first up to its
// weight's share of a pool, rounded down, short of every shared seat.
func TestNominalSeats(t *testing.T) {
	o := Options{}
	o.defaults()
	for seats, want := range map[int]int{1: 0, 2: 0, 3: 1, 4: 2, 5: 2, 10: 5} {
		if got := o.discipline(seats, true).Nominal[Critical]; got != want {
			t.Errorf("%d seats: critical's nominal seats %d, want %d", seats, got, want)
		}
		if d := o.discipline(seats, true); d.Nominal[Standard] != 0 || d.Nominal[Batch] != 0 {
			t.Errorf("%d seats: nominal seats of classes that reserve none: %v", seats, d.Nominal)
		}
	}
}

// acquire takes a seat for c and returns what gives it back.
func acquire(ctx context.Context, s *Scheduler, c Call) (release func(), err error) {
	seat, err := s.Seat(ctx, c)
	return seat.Release, err
}
