package prewarm

import (
	"container/heap"
	"sync"
	"time"
)

// Clock is the time source of planners and policies: the wall clock in a
// server or benchmark, a VirtualClock in the simulator and in tests, so
// that the same policy code runs in both.
type Clock interface {
	Now() time.Time
	// AfterFunc runs f once d has passed (at once for d <= 0), never on
	// the caller's goroutine stack.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop cancels the call; false when it ran or was stopped already.
	Stop() bool
}

// WallClock is the real clock.
type WallClock struct{}

func (WallClock) Now() time.Time { return time.Now() }

func (WallClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// VirtualClock is a discrete-event clock: time stands still until Advance
// or Run moves it to the next scheduled function, which then runs on the
// caller's goroutine. Functions due at the same instant run in the order
// they were scheduled, so a simulation is deterministic.
type VirtualClock struct {
	mu    sync.Mutex
	now   time.Time
	seq   uint64
	queue timerQueue
}

// NewVirtualClock returns a clock standing at start.
func NewVirtualClock(start time.Time) *VirtualClock {
	return &VirtualClock{now: start}
}

func (c *VirtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *VirtualClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &virtualTimer{c: c, at: c.now.Add(max(d, 0)), seq: c.seq, f: f}
	heap.Push(&c.queue, t)
	return t
}

// Next is the time of the earliest scheduled function.
func (c *VirtualClock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return time.Time{}, false
	}
	return c.queue[0].at, true
}

// Advance runs every function due up to and including until, in time
// order, and leaves the clock at until.
func (c *VirtualClock) Advance(until time.Time) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.queue[0].at.After(until) {
			if until.After(c.now) {
				c.now = until
			}
			c.mu.Unlock()
			return
		}
		t := heap.Pop(&c.queue).(*virtualTimer)
		t.index = -1
		if t.at.After(c.now) {
			c.now = t.at
		}
		c.mu.Unlock()
		t.f()
	}
}

// Run runs every scheduled function, including those they schedule.
func (c *VirtualClock) Run() {
	for {
		at, ok := c.Next()
		if !ok {
			return
		}
		c.Advance(at)
	}
}

type virtualTimer struct {
	c     *VirtualClock
	at    time.Time
	seq   uint64
	f     func()
	index int
}

func (t *virtualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&t.c.queue, t.index)
	t.index = -1
	return true
}

type timerQueue []*virtualTimer

func (q timerQueue) Len() int { return len(q) }
func (q timerQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q timerQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *timerQueue) Push(x any) {
	t := x.(*virtualTimer)
	t.index = len(*q)
	*q = append(*q, t)
}
func (q *timerQueue) Pop() any {
	old := *q
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return t
}
