package function

import (
	"context"
	"encoding/json"
	"time"
)

// Runtime starts instances of functions of one kind. Implementations live
// in function/wasm, function/process and function/http.
type Runtime interface {
	// Start creates an instance of spec ready to serve calls, and reports
	// how long each phase of its cold start took. The context bounds the
	// start only, not the instance's life.
	Start(ctx context.Context, spec *Spec) (Instance, Phases, error)
	// Retire tells the runtime that no more instances of spec will be
	// started (the version was replaced or deleted), so that it may drop
	// what it caches for it. Instances already running are closed by
	// their pool.
	Retire(spec *Spec)
	// Close releases the runtime once every pool using it is closed.
	Close(ctx context.Context) error
}

// Instance is one running copy of a function. The pool never calls an
// instance concurrently, so implementations need no locking for Invoke.
type Instance interface {
	// Invoke runs one call: JSON input in, JSON output out. The context
	// carries the call's deadline. Errors should be *problem.Problem
	// values (timeout, runtime, communication) so workflows can catch and
	// retry them.
	Invoke(ctx context.Context, input json.RawMessage) (json.RawMessage, error)
	// Healthy reports whether the instance may serve another call. An
	// instance that trapped, timed out, or whose process died is not, and
	// its pool replaces it.
	Healthy() bool
	// Close stops the instance and releases its resources.
	Close(ctx context.Context) error
}

// MemoryReporter is implemented by instances that can tell how much memory
// they hold (a wasm instance's linear memory); the Manager reports it in
// the created and idle events, for measuring what keeping instances costs.
type MemoryReporter interface {
	MemoryBytes() int64
}

// Phases splits a cold start into its parts. A phase a runtime does not
// have stays zero.
type Phases struct {
	// Compile is the time to compile the module (wasm), near zero when it
	// was compiled before and cached in memory, a few milliseconds when
	// read from the disk cache.
	Compile time.Duration `json:"compile,omitempty"`
	// Instantiate is the time to create the instance: wasm instantiation,
	// or starting the process.
	Instantiate time.Duration `json:"instantiate,omitempty"`
	// Init is the guest's own initialisation: the Go runtime and init
	// functions of an SDK module, a process until it reports ready, an
	// http function's warm-up request.
	Init time.Duration `json:"init,omitempty"`
}

// Total is the whole cold start.
func (p Phases) Total() time.Duration { return p.Compile + p.Instantiate + p.Init }

type callInfoKey struct{}

// CallInfo is what a caller knows about a call beyond its input; runtimes
// that can pass it on do (the http runtime sends IdempotencyKey as the
// Idempotency-Key header).
type CallInfo struct {
	// IdempotencyKey is the same for every retry of one workflow step
	// after a crash: "<invocation id>/<task key>/<attempt>".
	IdempotencyKey string
	// Invocation is the workflow invocation making the call, if any.
	Invocation string
}

// WithCallInfo returns a context carrying info for the runtimes.
func WithCallInfo(ctx context.Context, info CallInfo) context.Context {
	return context.WithValue(ctx, callInfoKey{}, info)
}

type lowPriorityKey struct{}

// WithLowPriority marks the calls made with ctx as work that yields the
// CPU: a runtime that computes in this process (wasm) runs them on
// threads of a lower operating-system priority, so that a contended core
// goes to other work first. The engine marks the calls of classes below
// critical while critical work is about (qos.Seat.Yield).
func WithLowPriority(ctx context.Context) context.Context {
	return context.WithValue(ctx, lowPriorityKey{}, true)
}

// LowPriority says whether ctx's calls yield the CPU (WithLowPriority).
func LowPriority(ctx context.Context) bool {
	low, _ := ctx.Value(lowPriorityKey{}).(bool)
	return low
}

// CallInfoFrom returns the call info attached to ctx, if any.
func CallInfoFrom(ctx context.Context) (CallInfo, bool) {
	info, ok := ctx.Value(callInfoKey{}).(CallInfo)
	return info, ok
}
