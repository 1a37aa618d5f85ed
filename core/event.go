package core

import (
	"time"

	"github.com/batonflow/baton/problem"
)

// EventType names a history event.
type EventType string

// The history of an invocation is a sequence of these events. Only the
// engine appends them; the machine reads them.
const (
	// InvocationStarted opens every history. Input is the raw workflow input.
	InvocationStarted EventType = "InvocationStarted"
	// TaskStarted records that the engine dispatched a call (Task, Attempt).
	// It is informational: the machine ignores it, and the engine does not
	// wait for it to be durable before the call goes out.
	TaskStarted EventType = "TaskStarted"
	// TaskCompleted carries a call's result in Output.
	TaskCompleted EventType = "TaskCompleted"
	// TaskFailed carries a call's error in Error.
	TaskFailed EventType = "TaskFailed"
	// TaskEnded records that a task which made no call of its own (set,
	// switch, for, fork, do, try, wait, raise...) ended, so that every
	// task the machine ran appears in the history. Error is set when it
	// faulted; Info["startedAt"] is its start when that came earlier.
	// Like TaskStarted it is informational: the machine ignores it, and
	// the engine writes it with the next record it makes anyway.
	TaskEnded EventType = "TaskEnded"
	// TimerScheduled fixes a timer's absolute deadline (Timer, FireAt), so
	// that a restart keeps it.
	TimerScheduled EventType = "TimerScheduled"
	// TimerFired says that the deadline of Timer has passed.
	TimerFired EventType = "TimerFired"
	// CancelRequested asks the invocation to stop; Error may say why, and
	// Info["reason"] holds the reason given by whoever cancelled it (see
	// CancelRequest).
	CancelRequested EventType = "CancelRequested"
	// InvocationCompleted, InvocationFaulted and InvocationCancelled close a
	// history. The engine appends them when the machine finishes.
	InvocationCompleted EventType = "InvocationCompleted"
	InvocationFaulted   EventType = "InvocationFaulted"
	InvocationCancelled EventType = "InvocationCancelled"
	// InvocationRedriven reopens a faulted or cancelled history (see
	// Redrive): the invocation goes on from where it stopped, as the same
	// invocation. It follows the terminal event it undoes; Effective
	// turns a history holding such events into the one the machine steps.
	InvocationRedriven EventType = "InvocationRedriven"
)

// Event is one entry of an invocation's history. Which fields are set
// depends on Type. Data values (Input, Output) are plain JSON data.
type Event struct {
	Seq     int64            `json:"seq"`
	Type    EventType        `json:"type"`
	Time    time.Time        `json:"time"`
	Task    string           `json:"task,omitempty"`
	Ref     string           `json:"ref,omitempty"`
	Attempt int              `json:"attempt,omitempty"`
	Input   any              `json:"input,omitempty"`
	Output  any              `json:"output,omitempty"`
	Error   *problem.Problem `json:"error,omitempty"`
	Timer   string           `json:"timer,omitempty"`
	FireAt  time.Time        `json:"fireAt,omitzero"`
	// Info holds facts about how a call ran that the workflow never sees
	// but benchmarks and prewarming learn from (cold start, durations).
	Info map[string]any `json:"info,omitempty"`
}

// CancelRequest is the CancelRequested event that stops an invocation for
// reason, which may be empty. A reason is kept in Info["reason"] and in
// the detail of the error the invocation ends with, so that its record
// says why without its history.
func CancelRequest(reason string) Event {
	ev := Event{Type: CancelRequested}
	if reason != "" {
		ev.Info = map[string]any{"reason": reason}
		ev.Error = CancelledError(reason)
	}
	return ev
}

// CancelledError is the error of an invocation cancelled for reason (none
// when empty).
func CancelledError(reason string) *problem.Problem {
	detail := "the invocation was cancelled"
	if reason != "" {
		detail += ": " + reason
	}
	return problem.New(problem.TypeCancelled, 499, "Cancelled", detail)
}

// Terminal reports whether the event closes a history.
func (e *Event) Terminal() bool {
	switch e.Type {
	case InvocationCompleted, InvocationFaulted, InvocationCancelled:
		return true
	}
	return false
}

// Informational reports whether the machine ignores the event: it records
// what the engine did, not something the workflow reacts to.
func (e *Event) Informational() bool {
	return e.Type == TaskStarted || e.Type == TaskEnded
}
