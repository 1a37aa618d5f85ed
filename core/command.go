package core

import (
	"time"

	"github.com/batonflow/baton/problem"
)

// Command is something the machine asks its driver to do. The driver
// executes it and reports back through history events.
type Command interface{ commandKey() string }

// Call asks the driver to run an external call and to report its result
// with TaskCompleted or TaskFailed carrying the same Task and Attempt.
type Call struct {
	// Task is the activation key: the task's JSON pointer plus the loop
	// iterations and retry attempts that lead to it, unique within the
	// invocation and stable across replays.
	Task string
	// Ref is the task's JSON pointer in the definition.
	Ref  string
	Name string
	// Attempt counts retries of the enclosing try, from 1; together with the
	// invocation id and Task it makes the idempotency key.
	Attempt int
	// Function is what the task calls: "http", a Baton function name...
	Function string
	// Args are the task's `with` arguments, expressions evaluated.
	Args map[string]any
	// Input is the task's transformed input, for URI templates and for
	// functions that take the input as a whole.
	Input any
	// Timeout is the time left before the task's own timeout, zero for none.
	// The machine enforces timeouts with timers; this lets the driver stop
	// the call's I/O at the same moment.
	Timeout time.Duration
	// Redrive counts the redrives of the invocation when the call went
	// out again after one (see InvocationRedriven), 0 before any. A call
	// redone by a redrive is a new execution: its idempotency key differs
	// from the failed one's, which a receiver may have remembered.
	Redrive int
}

// CancelCall tells the driver that the result of a call is no longer wanted
// (its task timed out, lost a race, or the invocation was cancelled).
type CancelCall struct {
	Task string
}

// StartTimer asks the driver to fire a timer. When FireAt is zero the driver
// picks the deadline (now + After) and records it with TimerScheduled; when
// it is set, the deadline was recorded before and must be kept.
type StartTimer struct {
	Timer  string
	After  time.Duration
	FireAt time.Time
}

// CancelTimer withdraws a timer that has not fired.
type CancelTimer struct {
	Timer string
}

// Status is an invocation's status.
type Status string

const (
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFaulted   Status = "faulted"
	StatusCancelled Status = "cancelled"
)

// Finish says the invocation is over; the driver appends the matching
// terminal event.
type Finish struct {
	Status Status
	Output any
	Error  *problem.Problem
}

func (c *Call) commandKey() string        { return "call:" + c.Task }
func (c *CancelCall) commandKey() string  { return "cancel:" + c.Task }
func (c *StartTimer) commandKey() string  { return "timer:" + c.Timer }
func (c *CancelTimer) commandKey() string { return "untimer:" + c.Timer }
func (c *Finish) commandKey() string      { return "finish" }
