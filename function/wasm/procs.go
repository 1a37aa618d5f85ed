package wasm

import "runtime"

// ProcsFor is the GOMAXPROCS a process needs while up to computing calls
// run compiled wasm at once. Compiled wasm keeps its goroutine's P until
// the call returns (the Go scheduler cannot preempt it), so with only as
// many Ps as such calls, the engine, the HTTP server and everything else
// in the process would wait for a call to end before they run. Twice the
// calls plus two leaves Ps for the rest, and for the critical calls that
// compute beside lower classes' yielding ones (qos.Discipline.OthersYield);
// the kernel shares the cores between the threads.
func ProcsFor(computing int) int { return 2*computing + 2 }

// EnsureProcs raises GOMAXPROCS to ProcsFor(computing) if it is lower,
// until restore is called.
func EnsureProcs(computing int) (restore func()) {
	want := ProcsFor(computing)
	if runtime.GOMAXPROCS(0) >= want {
		return func() {}
	}
	before := runtime.GOMAXPROCS(want)
	return func() { runtime.GOMAXPROCS(before) }
}
