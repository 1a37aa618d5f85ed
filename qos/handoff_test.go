package qos

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"
)

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// handOffScheduler has one wasm seat and keeps a seat for an hour at
// most, so that only the learned rules, never the timer, give it back.
func handOffScheduler() (*Scheduler, *testClock) {
	clock := &testClock{now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	return newTestScheduler(Options{Seats: map[string]int{PoolWasm: 1}, HandOff: time.Hour, Now: clock.Now}), clock
}

// runChain runs one workflow's calls at the sites given, each taking
// 10ms, gap apart, then ends it.
func runChain(t *testing.T, s *Scheduler, clock *testClock, gap time.Duration, sites ...string) {
	t.Helper()
	var ch Chain
	for i, site := range sites {
		if i > 0 {
			clock.advance(gap)
		}
		r, err := acquire(context.Background(), s, Call{Pool: PoolWasm, Class: Standard, Flow: "a", Chain: &ch, Site: site, Continuation: i > 0})
		if err != nil {
			t.Fatal(err)
		}
		clock.advance(10 * time.Millisecond)
		r()
	}
	s.EndChain(&ch)
}

// waitingCall queues a call of class k at G2 and returns its release.
func waitingCall(t *testing.T, s *Scheduler, k Class) <-chan func() {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	got := make(chan func(), 1)
	n := lenOf(s, PoolWasm)
	go func() {
		r, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: k, Flow: "b"})
		if err != nil {
			r = func() {}
		}
		got <- r
	}()
	waitFor(t, func() bool { return lenOf(s, PoolWasm) == n+1 })
	return got
}

// TestHandOffLearnsSites: a seat is kept after a call only where the
// workflow was seen to call again sooner than a call takes; after a call
// its workflow ends (a one-step workflow) or follows late, the seat goes
// at once to the call that waits. Until a site has been seen a few times
// the seat is kept, as before.
func TestHandOffLearnsSites(t *testing.T) {
	ctx := context.Background()
	// keeps reports whether the seat of a call at site is kept while
	// another call waits; then it ends the chain.
	keeps := func(t *testing.T, s *Scheduler, site string) bool {
		t.Helper()
		var ch Chain
		r, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Standard, Flow: "a", Chain: &ch, Site: site})
		if err != nil {
			t.Fatal(err)
		}
		other := waitingCall(t, s, Standard)
		r()
		kept := lenOf(s, PoolWasm) == 1
		s.EndChain(&ch)
		(<-other)()
		return kept
	}
	t.Run("unknown site", func(t *testing.T) {
		s, _ := handOffScheduler()
		if !keeps(t, s, "w@1#/do/0/a") {
			t.Error("the seat of a call at a site never seen was not kept")
		}
	})
	t.Run("the workflow ends after it", func(t *testing.T) {
		s, clock := handOffScheduler()
		for range siteWarm {
			runChain(t, s, clock, 0, "one@1#/do/0/a")
		}
		if keeps(t, s, "one@1#/do/0/a") {
			t.Error("the seat was kept after a call after which workflows end")
		}
	})
	t.Run("the next call comes soon", func(t *testing.T) {
		s, clock := handOffScheduler()
		for range siteWarm {
			runChain(t, s, clock, 100*time.Microsecond, "three@1#/do/0/a", "three@1#/do/1/b")
		}
		if !keeps(t, s, "three@1#/do/0/a") {
			t.Error("the seat was not kept after a call that its workflow follows within 0.1ms")
		}
		if keeps(t, s, "three@1#/do/1/b") {
			t.Error("the seat was kept after the workflow's last call")
		}
		s.mu.Lock()
		hold := s.holdLocked(s.pools[PoolWasm], Call{Pool: PoolWasm, Class: Standard, Site: "three@1#/do/0/a"})
		s.mu.Unlock()
		if want := 2*100*time.Microsecond + handOffSlack; hold != want {
			t.Errorf("kept for %v, want twice the gap and the slack, %v", hold, want)
		}
	})
	t.Run("the next call comes later than a call takes", func(t *testing.T) {
		s, clock := handOffScheduler()
		for range siteWarm {
			runChain(t, s, clock, 20*time.Millisecond, "slow@1#/do/0/a", "slow@1#/do/1/b")
		}
		if keeps(t, s, "slow@1#/do/0/a") {
			t.Error("the seat was kept for a next call expected after 20ms, longer than a 10ms call")
		}
	})
	t.Run("the next call goes to another pool", func(t *testing.T) {
		s, clock := handOffScheduler()
		for range siteWarm {
			var ch Chain
			for i, pool := range []string{PoolWasm, PoolProcess} {
				r, err := acquire(ctx, s, Call{Pool: pool, Class: Standard, Flow: "a", Chain: &ch, Site: "mixed@1#/do/" + pool, Continuation: i > 0})
				if err != nil {
					t.Fatal(err)
				}
				clock.advance(10 * time.Millisecond)
				r()
			}
			s.EndChain(&ch)
		}
		if keeps(t, s, "mixed@1#/do/"+PoolWasm) {
			t.Error("the seat was kept for a next call that goes to another pool")
		}
	})
	t.Run("a call of a higher class waits", func(t *testing.T) {
		s, _ := handOffScheduler()
		var ch Chain
		r, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Standard, Flow: "a", Chain: &ch, Site: "w@1#/do/0/a"})
		if err != nil {
			t.Fatal(err)
		}
		critical := waitingCall(t, s, Critical)
		r()
		if n := lenOf(s, PoolWasm); n != 0 {
			t.Errorf("%d calls queued after the seat was given back, want the critical call seated", n)
		}
		(<-critical)()
		s.EndChain(&ch)
	})
}

// TestHandOffSitesBounded: the sites remembered are bounded.
func TestHandOffSitesBounded(t *testing.T) {
	s, _ := handOffScheduler()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range 3 * maxSites {
		s.learnLocked(strconv.Itoa(i), i%2 == 0, time.Millisecond)
	}
	if n := len(s.sites); n > maxSites {
		t.Errorf("%d sites remembered, want at most %d", n, maxSites)
	}
}
