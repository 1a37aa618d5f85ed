package core

import (
	"errors"
	"fmt"

	"github.com/batonflow/baton/dsl"
)

// ErrNotRedrivable is wrapped by Redrive's errors: the invocation cannot go
// on from where it stopped.
var ErrNotRedrivable = errors.New("not redrivable")

// A redrive (AWS Step Functions' word) continues a faulted or cancelled
// invocation as the same invocation: the event that ended it is taken back
// and what it ended goes on. The history itself is never rewritten: an
// InvocationRedriven event follows the terminal event, and Effective
// derives from the whole history the events the machine steps through.
//
// What is taken back is the event whose step ended the machine, and only
// when it can be: a call's failure (the call goes out again, as a new
// execution), a cancellation (the calls and timers it cut short resume), a
// fired timer with the record of its deadline (the timeout starts over).
// Calls that completed keep their results and are not run again. An end
// that replaying the same events would reach again (an expression or
// schema error, a completion whose output broke a limit) is refused.

// Effective returns the events a machine steps through to rebuild the state
// a history describes: history itself when it holds no InvocationRedriven,
// else the history without the events each redrive took back. opts are the
// invocation's machine options; the Observer is not called.
func Effective(def *dsl.Workflow, opts Options, history []Event) ([]Event, error) {
	redriven := false
	for i := range history {
		if history[i].Type == InvocationRedriven {
			redriven = true
			break
		}
	}
	if !redriven {
		return history, nil
	}
	opts.Observer = nil
	kept := make([]Event, 0, len(history))
	for i := range history {
		ev := history[i]
		if ev.Type != InvocationRedriven {
			kept = append(kept, ev)
			continue
		}
		var err error
		if kept, err = takeBack(def, opts, kept); err != nil {
			return nil, fmt.Errorf("invocation %s: the redrive at seq %d: %w", opts.ID, ev.Seq, err)
		}
		kept = append(kept, ev)
	}
	return kept, nil
}

// Redrive checks that the invocation whose history this is can go on from
// where it stopped and returns the InvocationRedriven event that makes it
// so (its Seq and Time are the caller's to set). The error wraps
// ErrNotRedrivable when it cannot, saying why.
func Redrive(def *dsl.Workflow, opts Options, history []Event) (Event, error) {
	ev := Event{Type: InvocationRedriven}
	n := len(history)
	if n == 0 || !history[n-1].Terminal() {
		return ev, fmt.Errorf("the invocation has not ended: %w", ErrNotRedrivable)
	}
	if history[n-1].Type == InvocationCompleted {
		return ev, fmt.Errorf("the invocation completed: %w", ErrNotRedrivable)
	}
	effective, err := Effective(def, opts, append(history[:n:n], ev))
	if err != nil {
		return ev, err
	}
	opts.Observer = nil
	m := New(def, opts)
	for _, e := range effective {
		if e.Terminal() {
			continue
		}
		if err := m.Step(e); err != nil {
			return ev, err
		}
	}
	if m.Status() != StatusRunning {
		return ev, fmt.Errorf("the invocation would end again the same way: %w", ErrNotRedrivable)
	}
	return ev, nil
}

// takeBack removes from kept (a history ending with a terminal event, with
// earlier redrives already taken back) the terminal event and the event
// whose step ended the machine.
func takeBack(def *dsl.Workflow, opts Options, kept []Event) ([]Event, error) {
	n := len(kept)
	if n == 0 || !kept[n-1].Terminal() {
		return nil, fmt.Errorf("it does not follow a terminal event: %w", ErrNotRedrivable)
	}
	term := kept[n-1]
	if term.Type == InvocationCompleted {
		return nil, fmt.Errorf("the invocation completed: %w", ErrNotRedrivable)
	}
	m := New(def, opts)
	cause := -1
	for i, ev := range kept[:n-1] {
		if err := m.Step(ev); err != nil {
			return nil, err
		}
		if m.Status() != StatusRunning {
			cause = i
			break
		}
	}
	if cause < 0 {
		// The engine ended it (a limit of its history, say), not the
		// workflow: going on would meet the same limit.
		return nil, fmt.Errorf("the invocation was ended by a limit of the engine (%s), not by a task: %w",
			describeEnd(term), ErrNotRedrivable)
	}
	c := kept[cause]
	drop := map[int]bool{cause: true, n - 1: true}
	switch {
	case c.Type == TaskFailed && m.Status() == StatusFaulted && term.Type == InvocationFaulted:
	case c.Type == CancelRequested && term.Type == InvocationCancelled:
	case c.Type == TimerFired && term.Type != InvocationCompleted:
		// The timer starts over: its recorded deadline goes too.
		for i := cause - 1; i >= 0; i-- {
			if kept[i].Type == TimerScheduled && kept[i].Timer == c.Timer {
				drop[i] = true
				break
			}
		}
	default:
		return nil, fmt.Errorf("it ended on %s (%s), which replaying the same events would reach again: %w",
			c.Type, describeEnd(term), ErrNotRedrivable)
	}
	out := make([]Event, 0, n)
	for i, ev := range kept {
		if !drop[i] {
			out = append(out, ev)
		}
	}
	return out, nil
}

func describeEnd(term Event) string {
	if term.Error != nil && term.Error.Title != "" {
		return term.Error.Title
	}
	return string(term.Type)
}
