// Package osprio runs work on operating-system threads of a lower
// scheduling priority (a raised nice value), so that when the CPUs are
// contended the kernel gives them to everything else first: the server's
// own goroutines and the work of higher classes.
//
// Go schedules goroutines, not threads, and a thread's nice value is not
// the goroutine's: work of a lower priority therefore runs on threads of
// a Pool's own, each locked to a goroutine that lives as long as its
// thread. A thread's nice value is raised once and never lowered, because
// an unprivileged process may raise a nice value but not lower it again:
// such a thread must end with its goroutine instead of going back to the
// runtime, where other goroutines would inherit its priority.
package osprio

import (
	"runtime"
	"sync"
	"time"
)

// DefaultIdle is how long a pool's thread waits for more work before it
// ends, so that a burst's threads do not stay around.
const DefaultIdle = 5 * time.Second

// Pool runs functions on threads of a raised nice value. Its zero value
// is not usable; make one with NewPool.
type Pool struct {
	raise  int
	idle   time.Duration
	jobs   chan *job
	failed func(error)
	// reported makes failed hear only the first failure.
	reported sync.Once
}

type job struct {
	f    func()
	done chan any // f's panic value, or nil
}

// NewPool returns a pool whose threads run at a nice value raise above
// the process's (at most 19; a higher value is a lower priority: what
// counts is the difference to the other threads), and end after idle
// without work (DefaultIdle when idle is 0). failed, when not nil, hears
// the first failure to raise a thread's nice value, once: work still runs
// then, at the ordinary priority.
func NewPool(raise int, idle time.Duration, failed func(error)) *Pool {
	if idle <= 0 {
		idle = DefaultIdle
	}
	return &Pool{raise: raise, idle: idle, jobs: make(chan *job), failed: failed}
}

// Run runs f on one of the pool's threads and returns when f has: on an
// idle thread, or on a new one when none is idle. A panic in f is raised
// again in the caller. Where threads have no nice value of their own
// (other systems than Linux), f runs on the caller's thread.
func (p *Pool) Run(f func()) {
	if !Supported {
		f()
		return
	}
	j := &job{f: f, done: make(chan any, 1)}
	select {
	case p.jobs <- j:
	default:
		go p.work(j)
	}
	if v := <-j.done; v != nil {
		panic(v)
	}
}

func (p *Pool) work(j *job) {
	// Never unlocked: see the package's comment.
	runtime.LockOSThread()
	if err := raiseThreadNice(p.raise); err != nil && p.failed != nil {
		p.reported.Do(func() { p.failed(err) })
	}
	idle := time.NewTimer(p.idle)
	defer idle.Stop()
	for {
		run(j)
		j = nil // not kept alive while idle
		idle.Reset(p.idle)
		select {
		case j = <-p.jobs:
		case <-idle.C:
			return
		}
	}
}

func run(j *job) {
	var failed any
	defer func() { j.done <- failed }()
	defer func() { failed = recover() }()
	j.f()
}
