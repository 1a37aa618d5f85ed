package wasm

import (
	"context"
	"runtime"
	"syscall"
	"testing"

	"github.com/batonflow/baton/function"
)

func TestYieldingCallsComputeAtALowerPriority(t *testing.T) {
	rt := newRuntime(t, "")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	nice := func() int {
		// Linux's getpriority answers 20 - nice.
		prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
		if err != nil {
			t.Fatal(err)
		}
		return 20 - prio
	}
	mine := nice()
	var plain, yielding int
	rt.compute(context.Background(), func() { plain = nice() })
	rt.compute(function.WithLowPriority(context.Background()), func() { yielding = nice() })
	// The pool's threads start at the process's value, which this
	// test's thread has too.
	if want := min(19, mine+YieldingNice); plain != mine || yielding != want {
		t.Errorf("nice values: an ordinary call %d (want %d), a yielding one %d (want %d)", plain, mine, yielding, want)
	}
}
