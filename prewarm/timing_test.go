package prewarm

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/batonflow/baton/function"
)

// The planner aims a prepared instance at when its call reaches the
// function layer, not when its task starts: the engine's gap after the
// task before and its dispatch of the call, both learned, add up along a
// chain. The prepares move by exactly what was learned.
func TestPlannerAimsAtTheCallsDispatch(t *testing.T) {
	def := parse(t, chainDoc)
	for _, tc := range []struct {
		name           string
		gap, dispatch  time.Duration // learned
		wantFb, wantFc time.Duration // prepares sent, after the task a starts
	}{
		// fb due 100ms after a starts, fc 300ms; cold 30ms, margin 5ms.
		{"nothing learned", 0, 0, 65 * time.Millisecond, 265 * time.Millisecond},
		{"dispatch 4ms", 0, 4 * time.Millisecond, 69 * time.Millisecond, 269 * time.Millisecond},
		// Each task before a call is followed by the gap: fb is one task
		// (a) away, fc two.
		{"gap 3ms and dispatch 4ms", 3 * time.Millisecond, 4 * time.Millisecond, 72 * time.Millisecond, 275 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, clock, prep := newTestPlanner(Options{Rule: Rule{Margin: 5 * time.Millisecond}})
			learnChain(p, def, 200*time.Millisecond, map[string]time.Duration{"fb": 30 * time.Millisecond, "fc": 30 * time.Millisecond})
			if tc.gap > 0 {
				p.Stats().ObserveGap(tc.gap)
			}
			if tc.dispatch > 0 {
				p.Stats().ObserveDispatch(tc.dispatch)
			}
			p.InvocationStarted("i", def, t0)
			p.TaskStarted("i", "/do/0/a", "/do/0/a", "a", t0)
			// a's call reaches the function layer as predicted: the
			// prepares after it stay where they were aimed.
			clock.Advance(t0.Add(tc.dispatch))
			p.Observe(function.Event{Kind: function.EventBusy, Time: t0.Add(tc.dispatch), Function: "fa", Instance: "fa/1"})
			clock.Advance(t0.Add(time.Second))
			if len(prep.calls) != 2 || !prep.calls[0].at.Equal(t0.Add(tc.wantFb)) || !prep.calls[1].at.Equal(t0.Add(tc.wantFc)) {
				t.Fatalf("prepares %+v, want fb at %v and fc at %v", prep.calls, tc.wantFb, tc.wantFc)
			}
		})
	}
}

// The dispatch delay is learned from the calls themselves: from the task's
// start to the call reaching the function layer (its busy event, less the
// time it then waited for an instance to start).
func TestPlannerLearnsTheDispatchDelay(t *testing.T) {
	def := parse(t, chainDoc)
	p, _, _ := newTestPlanner(Options{})
	p.InvocationStarted("i", def, t0)
	p.TaskStarted("i", "/do/0/a", "/do/0/a", "a", t0)
	p.Observe(function.Event{Kind: function.EventBusy, Time: t0.Add(9 * time.Millisecond), Function: "fa", Instance: "fa/1", Waited: 6 * time.Millisecond})
	p.Stats().mu.Lock()
	got := view{s: p.Stats()}.dispatchDelay()
	p.Stats().mu.Unlock()
	if got != 3*time.Millisecond {
		t.Fatalf("dispatch delay %v, want 3ms", got)
	}
}

// A function with few readiness errors of its own is aimed by every
// function's: the margin is the quantile of the machine's recent timing
// errors, until the function has enough of its own.
// The margin covers up to the slower starts: on a busy machine one start
// in ten or more is preempted and takes a time slice longer, and a margin
// of one median start left those calls waiting.
func TestMarginReachesTheSlowerStarts(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	s := NewStats()
	for i := range 20 {
		d := ms(2)
		if i%5 == 0 {
			d = ms(7) // one start in five preempted
		}
		s.ObserveCold("fn", d)
	}
	for range 20 {
		s.ObserveReadiness("fn", ms(-9))
	}
	s.mu.Lock()
	got := view{s: s}.margin("fn", Rule{}.withDefaults())
	s.mu.Unlock()
	if got != ms(7) {
		t.Fatalf("margin %v, want 7ms: the errors ask for 9ms, the slower starts take 7ms", got)
	}
}

func TestMarginFallsBackToThePooledReadiness(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	pooled := []time.Duration{ms(-5), ms(-4), ms(-3), ms(-2), ms(-1), 0, ms(1), ms(2), ms(3), ms(4), ms(5)}
	for _, tc := range []struct {
		name        string
		waitShare   float64
		own, others []time.Duration // readiness errors of fn, and of other functions
		want        time.Duration
	}{
		{"nothing learned: the rule's margin", 1.0 / 6, nil, nil, ms(2)},
		{"too few anywhere", 1.0 / 6, []time.Duration{ms(-4)}, []time.Duration{ms(-4), ms(-4)}, ms(2)},
		// Twelve errors, -6..+5ms, fn's own among them: the 1/6-quantile
		// is -5ms, so instances aim 5ms early; by default (one call in
		// twenty may wait) the earliest, 6ms.
		{"pooled", 1.0 / 6, []time.Duration{ms(-6)}, pooled, ms(5)},
		{"pooled, default wait share", 0, []time.Duration{ms(-6)}, pooled, ms(6)},
		{"its own once it has enough", 1.0 / 6, []time.Duration{ms(3), ms(3), ms(3), ms(3), ms(3), ms(3), ms(3), ms(3)},
			[]time.Duration{ms(-9), ms(-9), ms(-9), ms(-9), ms(-9), ms(-9), ms(-9), ms(-9)}, ms(-3)},
		// Early by at most the slower starts' time (the 90th percentile,
		// here every start 10ms), late by at most the median start.
		{"bounded by the cold start", 1.0 / 6, nil, []time.Duration{ms(-50), ms(-50), ms(-50), ms(-50), ms(-50), ms(-50), ms(-50), ms(-50)}, ms(10)},
		{"late by at most the median start", 1.0 / 6, nil, []time.Duration{ms(50), ms(50), ms(50), ms(50), ms(50), ms(50), ms(50), ms(50)}, ms(-10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStats()
			s.ObserveCold("fn", ms(10))
			for _, d := range tc.own {
				s.ObserveReadiness("fn", d)
			}
			for _, d := range tc.others {
				s.ObserveReadiness("other", d)
			}
			s.mu.Lock()
			got := view{s: s}.margin("fn", Rule{WaitShare: tc.waitShare, Margin: ms(2)}.withDefaults())
			s.mu.Unlock()
			if got != tc.want {
				t.Fatalf("margin %v, want %v", got, tc.want)
			}
		})
	}
}

// Whether a workflow's arrivals are predicted depends on what their
// spread costs against the entry's cold start, not on a fixed fraction of
// the period; an entry whose arrivals are predicted is the planner's to
// serve, so the workflow-aware policy evicts it after its call rather
// than leave it to the fallback's keep-alive.
func TestArrivalsArePredictedWhenTheirSpreadPays(t *testing.T) {
	def := parse(t, chainDoc)
	for _, tc := range []struct {
		name    string
		period  time.Duration
		jitter  time.Duration // gaps cycle through period - jitter, period, period + jitter
		cold    time.Duration // fa's cold start
		predict bool
	}{
		// Spread 2ms: an instance idles 3ms on average for a 10ms start.
		{"steady 1s timer", time.Second, 2 * time.Millisecond, 10 * time.Millisecond, true},
		// Within 5% of an hour's period, but 60s of spread is worth far
		// more idle time than a 10ms start.
		{"hourly, jittering by a minute", time.Hour, time.Minute, 10 * time.Millisecond, false},
		// The same 40ms spread pays for a 500ms start, not for a 10ms one.
		{"jittery, cheap start", time.Second, 40 * time.Millisecond, 10 * time.Millisecond, false},
		{"jittery, slow start", time.Second, 40 * time.Millisecond, 500 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, clock, prep := newTestPlanner(Options{})
			m := Compile(def, nil)
			p.Stats().ObserveCold("fa", tc.cold)
			p.Stats().ObserveTask(m.ID, "/do/0/a", time.Millisecond)
			k := NewPredictive(p, Fixed(time.Minute))
			at := t0
			for i := range 10 {
				if i > 0 {
					at = at.Add(tc.period + time.Duration(i%3-1)*tc.jitter)
				}
				clock.Advance(at)
				id := string(rune('a' + i))
				p.InvocationStarted(id, def, at)
				p.TaskStarted(id, "/do/0/a", "/do/0/a", "a", at)
				p.InvocationEnded(id)
			}
			// Its call done, the entry's instance is idle: evicted when
			// the planner will prepare one for the next arrival.
			d := k.Decide(function.IdleState{Function: "fa", IdleSince: at, Now: at})
			if d.Evict != tc.predict {
				t.Fatalf("entry evicted after its call: %v, want %v (%+v)", d.Evict, tc.predict, d)
			}
			prep.calls = nil
			clock.Advance(at.Add(tc.period + tc.jitter))
			prepared := false
			for _, c := range prep.calls {
				prepared = prepared || c.fn == "fa"
			}
			if prepared != tc.predict {
				t.Fatalf("entry prepared for the next arrival: %v, want %v (%+v)", prepared, tc.predict, prep.calls)
			}
		})
	}
}

// Arrivals frequent enough that waiting for the next one costs less than
// starting an instance for it: the entry's instance is kept, not evicted
// and prepared again.
func TestEntryKeptWhenArrivalsComeWithinAStart(t *testing.T) {
	def := parse(t, chainDoc)
	p, clock, _ := newTestPlanner(Options{})
	p.Stats().ObserveCold("fa", 10*time.Millisecond)
	k := NewPredictive(p, OnDemand{})
	at := t0
	for i := range 10 {
		at = t0.Add(time.Duration(i) * 8 * time.Millisecond)
		clock.Advance(at)
		id := string(rune('a' + i))
		p.InvocationStarted(id, def, at)
		p.TaskStarted(id, "/do/0/a", "/do/0/a", "a", at)
		p.InvocationEnded(id)
	}
	d := k.Decide(function.IdleState{Function: "fa", IdleSince: at, Now: at.Add(time.Millisecond)})
	if d.Evict || d.RecheckAt.Before(at.Add(8*time.Millisecond)) {
		t.Fatalf("entry with arrivals every 8ms and a 10ms start: %+v, want kept past the next arrival", d)
	}
}

// blockingPreparer holds each Prepare, as the Manager does while the
// prepare waits for a prepare slot, until it is released or its context
// ends.
type blockingPreparer struct {
	started chan context.Context
	release chan struct{}
	done    chan error
}

func (b *blockingPreparer) Prepare(ctx context.Context, _ string, _ time.Time) error {
	b.started <- ctx
	var err error
	select {
	case <-ctx.Done():
		err = ctx.Err()
	case <-b.release:
	}
	b.done <- err
	return err
}

// A prepare still queued when its call's task starts gives up its turn:
// the call starts an instance of its own, and the prepare would only
// start a second one. A prepare that got going is left alone.
func TestPlannerAbandonsAPrepareStillQueuedWhenItsCallStarts(t *testing.T) {
	def := parse(t, chainDoc)
	for _, tc := range []struct {
		name    string
		queued  bool // still waiting for its slot when b's task starts
		wantErr error
	}{
		{"queued", true, context.Canceled},
		{"started before the call", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewVirtualClock(t0)
			prep := &blockingPreparer{started: make(chan context.Context, 1), release: make(chan struct{}), done: make(chan error, 1)}
			p := NewPlanner(Options{Preparer: prep, Clock: clock, Rule: Rule{Margin: 5 * time.Millisecond}})
			learnChain(p, def, 200*time.Millisecond, map[string]time.Duration{"fb": 30 * time.Millisecond, "fc": 30 * time.Millisecond})
			p.InvocationStarted("i", def, t0)
			p.TaskStarted("i", "/do/0/a", "/do/0/a", "a", t0)
			advanced := make(chan struct{})
			go func() { clock.Advance(t0.Add(80 * time.Millisecond)); close(advanced) }() // fb's prepare is sent at 65ms
			<-prep.started
			if !tc.queued {
				close(prep.release)
				<-advanced
			}
			p.TaskEnded("i", "/do/0/a", "/do/0/a", "a", t0.Add(100*time.Millisecond), nil)
			p.TaskStarted("i", "/do/1/b", "/do/1/b", "b", t0.Add(100*time.Millisecond))
			select {
			case err := <-prep.done:
				if !errors.Is(err, tc.wantErr) && err != tc.wantErr {
					t.Fatalf("prepare ended with %v, want %v", err, tc.wantErr)
				}
			case <-time.After(5 * time.Second):
				close(prep.release)
				t.Fatal("the prepare still waits for its turn after its call's task started")
			}
			<-advanced
		})
	}
}

// A prepare sent as its call's task starts (the call came before the
// prepare was due) gives up when it has not had its turn for a prepare
// slot by the time the call should reach the function layer, one
// dispatch later: the call has started an instance of its own by then.
func TestPlannerAbandonsAPrepareSentAtItsTasksStartAfterADispatch(t *testing.T) {
	def := parse(t, chainDoc)
	clock := NewVirtualClock(t0)
	prep := &blockingPreparer{started: make(chan context.Context, 1), release: make(chan struct{}), done: make(chan error, 1)}
	p := NewPlanner(Options{Preparer: prep, Clock: clock, Rule: Rule{Margin: 5 * time.Millisecond}})
	learnChain(p, def, 200*time.Millisecond, map[string]time.Duration{"fb": 30 * time.Millisecond, "fc": 30 * time.Millisecond})
	p.Stats().ObserveDispatch(4 * time.Millisecond)
	p.InvocationStarted("i", def, t0)
	p.TaskStarted("i", "/do/0/a", "/do/0/a", "a", t0)
	// a ends at once, long before fb's prepare is due (at 69ms).
	p.TaskEnded("i", "/do/0/a", "/do/0/a", "a", t0.Add(time.Millisecond), nil)
	p.TaskStarted("i", "/do/1/b", "/do/1/b", "b", t0.Add(time.Millisecond))
	// The virtual clock runs the send on the goroutine advancing it,
	// where the prepare then waits for its turn.
	go clock.Advance(t0.Add(time.Millisecond))
	ctx := <-prep.started
	if ctx.Err() != nil {
		t.Fatal("the prepare was abandoned before the call could reach the function layer")
	}
	go clock.Advance(t0.Add(6 * time.Millisecond)) // past the 4ms dispatch
	select {
	case err := <-prep.done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("prepare ended with %v, want it abandoned", err)
		}
	case <-time.After(5 * time.Second):
		close(prep.release)
		t.Fatal("a prepare sent at its task's start still waits for its turn after the call's dispatch")
	}
}

// A call task's start predicts the calls after it with the median
// dispatch; once its call takes an instance, the prepares not sent yet
// move by how much later or earlier than that it did, and while the call
// has not reached the function layer past its predicted dispatch (the
// engine stalled), the prepares after it wait: those calls cannot come
// before it. fb is due 100ms after a's call takes its instance, with a
// cold start of 30ms and a margin of 5ms; calls are learned to reach the
// function layer 4ms after their task starts.
func TestPlannerMovesPreparesWithTheRunningCallsDispatch(t *testing.T) {
	def := parse(t, chainDoc)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, tc := range []struct {
		name string
		// took is when a's call takes an instance (never when zero),
		// waited how long it waited for its own start; ended, when set,
		// is when task a ends.
		took, waited, ended time.Duration
		// ownDispatch is a's own learned dispatch (none when zero).
		ownDispatch    time.Duration
		wantFb, wantFc time.Duration // the prepares sent
	}{
		{"dispatched as predicted", ms(4), 0, 0, 0, ms(69), ms(269)},
		{"dispatched 3ms early", ms(1), 0, 0, 0, ms(66), ms(266)},
		{"dispatched 6ms late", ms(10), 0, 0, 0, ms(75), ms(275)},
		// a's call is usually dispatched 10ms after its task starts (an
		// invocation's first call waits for the invocation to be
		// recorded), which a's learned duration already counts: a
		// dispatch at 10ms is on time for it, and moves nothing.
		{"dispatched as a's own calls are", ms(10), 0, 0, ms(10), ms(69), ms(269)},
		// The call reached the function layer on time but waited for an
		// instance to start: what follows it comes that much later.
		{"waited 6ms for its start", ms(10), ms(6), 0, 0, ms(75), ms(275)},
		// At 69ms, when fb's prepare is due, a's call is 65ms overdue:
		// the prepare waits as long (to 134ms); a's call takes an
		// instance at 100ms, and the prepare moves to 165ms; fc's, which
		// was not due yet, moves as much.
		{"stalled until 100ms", ms(100), 0, 0, 0, ms(165), ms(365)},
		// A call that ends without reaching the function layer holds
		// nothing back: the prepare held at 69ms goes at 134ms, fc's as
		// first aimed.
		{"failed before the function layer", 0, 0, ms(80), 0, ms(134), ms(269)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, clock, prep := newTestPlanner(Options{Rule: Rule{Margin: ms(5)}})
			learnChain(p, def, ms(200), map[string]time.Duration{"fb": ms(30), "fc": ms(30)})
			p.Stats().ObserveDispatch(ms(4))
			if tc.ownDispatch > 0 {
				p.Stats().ObserveTaskDispatch(Compile(def, nil).ID, "/do/0/a", tc.ownDispatch)
			}
			p.InvocationStarted("i", def, t0)
			p.TaskStarted("i", "/do/0/a", "/do/0/a", "a", t0)
			if tc.took > 0 {
				clock.Advance(t0.Add(tc.took))
				p.Observe(function.Event{Kind: function.EventBusy, Time: t0.Add(tc.took), Function: "fa", Instance: "fa/1", Waited: tc.waited})
			}
			if tc.ended > 0 {
				clock.Advance(t0.Add(tc.ended))
				p.TaskEnded("i", "/do/0/a", "/do/0/a", "a", t0.Add(tc.ended), nil)
			}
			clock.Advance(t0.Add(ms(400)))
			for fn, want := range map[string]time.Duration{"fb": tc.wantFb, "fc": tc.wantFc} {
				var got []prepareCall
				for _, c := range prep.calls {
					if c.fn == fn {
						got = append(got, c)
					}
				}
				if len(got) != 1 || !got[0].at.Equal(t0.Add(want)) || !got[0].by.Equal(t0.Add(want+ms(30))) {
					t.Fatalf("%s prepared %+v, want once at %v", fn, got, want)
				}
			}
		})
	}
}

// A later prediction moves a prepare not sent yet however little it
// differs: it carries less of its predecessors' noise. (A deadband of a
// margin used to keep the older aim, and its error, within 5ms here.)
func TestPlannerMovesPreparesByALaterPredictionHoweverLittle(t *testing.T) {
	def := parse(t, chainDoc)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	p, clock, prep := newTestPlanner(Options{Rule: Rule{Margin: ms(5)}})
	learnChain(p, def, ms(200), map[string]time.Duration{"fb": ms(30), "fc": ms(30)})
	p.InvocationStarted("i", def, t0)
	p.TaskStarted("i", "/do/0/a", "/do/0/a", "a", t0)
	// fc is predicted at 300ms, its prepare due at 265ms; b starts 1ms
	// late, so fc is due at 301ms and its prepare at 266ms.
	clock.Advance(t0.Add(ms(101)))
	p.TaskEnded("i", "/do/0/a", "/do/0/a", "a", clock.Now(), nil)
	p.TaskStarted("i", "/do/1/b", "/do/1/b", "b", clock.Now())
	clock.Advance(t0.Add(ms(300)))
	last := prep.calls[len(prep.calls)-1]
	if last.fn != "fc" || !last.at.Equal(t0.Add(ms(266))) {
		t.Fatalf("prepares %+v, want fc's at 266ms", prep.calls)
	}
}

// lateClock fires every timer late by a fixed delay, as a loaded
// machine's runtime does.
type lateClock struct {
	*VirtualClock
	late time.Duration
}

func (c lateClock) AfterFunc(d time.Duration, f func()) Timer {
	return c.VirtualClock.AfterFunc(max(d, 0)+c.late, f)
}

// A prepare aimed before the running call's dispatch (its call follows
// the running one within a start) is sent when its timer fires, even if
// that is after the dispatch was due and the running call has not come:
// waiting for it would only make the prepare later. fb is due 104ms
// after a starts (a takes 100ms, calls are dispatched 4ms after their
// task starts); with a cold start of 96ms and a margin of 5ms its
// prepare is due at 3ms, before a's call is, and fires at 8ms.
func TestPlannerSendsAPrepareAimedBeforeTheRunningCallsDispatch(t *testing.T) {
	def := parse(t, chainDoc)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	vc := NewVirtualClock(t0)
	prep := &fakePreparer{clock: vc}
	p := NewPlanner(Options{Preparer: prep, Clock: lateClock{vc, ms(5)}, Rule: Rule{Margin: ms(5)}})
	learnChain(p, def, ms(200), map[string]time.Duration{"fb": ms(96), "fc": ms(30)})
	p.Stats().ObserveDispatch(ms(4))
	p.InvocationStarted("i", def, t0)
	p.TaskStarted("i", "/do/0/a", "/do/0/a", "a", t0)
	vc.Advance(t0.Add(ms(30)))
	if len(prep.calls) != 1 || prep.calls[0].fn != "fb" || !prep.calls[0].at.Equal(t0.Add(ms(8))) {
		t.Fatalf("prepares by 30ms, a's call not dispatched: %+v (want fb's at 8ms)", prep.calls)
	}
}
