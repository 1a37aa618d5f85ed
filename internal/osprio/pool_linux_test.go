package osprio

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// threadNice is the calling thread's nice value (Linux's getpriority
// answers 20 - nice, so that no answer is negative).
func threadNice(t *testing.T) int {
	t.Helper()
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	return 20 - prio
}

func TestRunLowersOnlyThePoolsThreads(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := threadNice(t)
	var failed error
	p := NewPool(7, 0, func(err error) { failed = err })
	var nice, tid int
	p.Run(func() { nice, tid = threadNice(t), syscall.Gettid() })
	if failed != nil {
		t.Fatal(failed)
	}
	if want := min(19, before+7); nice != want {
		t.Errorf("the pool's thread runs at nice %d, want %d", nice, want)
	}
	if tid == syscall.Gettid() {
		t.Error("f ran on the caller's thread")
	}
	if got := threadNice(t); got != before {
		t.Errorf("the caller's thread went from nice %d to %d", before, got)
	}
	// An idle thread takes the next job: the same thread, still lowered.
	// A run that comes before the thread is back waiting makes another,
	// so the runs are spaced until one finds a thread that ran before.
	seen := map[int]bool{tid: true}
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(time.Millisecond)
		var again, againNice int
		p.Run(func() { again, againNice = syscall.Gettid(), threadNice(t) })
		if seen[again] {
			if againNice != nice {
				t.Errorf("the idle thread runs at nice %d, want %d", againNice, nice)
			}
			return
		}
		seen[again] = true
		if time.Now().After(deadline) {
			t.Fatalf("no run took an idle thread in 5s: threads %v", seen)
		}
	}
}

func TestRunRaisesFsPanicInTheCaller(t *testing.T) {
	p := NewPool(5, 0, nil)
	defer func() {
		if v := recover(); v != "boom" {
			t.Errorf("recovered %v, want boom", v)
		}
	}()
	p.Run(func() { panic("boom") })
	t.Error("Run returned after a panic")
}

func TestConcurrentRunsTakeThreadsOfTheirOwn(t *testing.T) {
	p := NewPool(5, 0, nil)
	inside := make(chan int)
	release := make(chan struct{})
	for range 2 {
		go p.Run(func() {
			inside <- syscall.Gettid()
			<-release
		})
	}
	// Both are inside at once: neither waits for the other's thread.
	a, b := <-inside, <-inside
	close(release)
	if a == b {
		t.Errorf("two runs at once shared thread %d", a)
	}
}

func TestIdleThreadsEnd(t *testing.T) {
	p := NewPool(5, 5*time.Millisecond, nil)
	var first int
	p.Run(func() { first = syscall.Gettid() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		// The ended thread's goroutine is gone, and its thread with it
		// (it was never unlocked), so a later run makes a new one.
		var next int
		time.Sleep(20 * time.Millisecond)
		p.Run(func() { next = syscall.Gettid() })
		if next != first {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the idle thread %d still takes work after 5s", first)
		}
	}
}
