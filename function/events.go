package function

import (
	"sync"
	"time"
)

// EventKind names a step in an instance's life.
type EventKind string

const (
	// EventCreated: an instance finished its cold start (Phases says how
	// long each part took).
	EventCreated EventKind = "created"
	// EventStartFailed: an instance could not be started (Err says why).
	EventStartFailed EventKind = "start-failed"
	// EventBusy: an instance took a call.
	EventBusy EventKind = "busy"
	// EventIdle: an instance finished a call, or a prepared instance
	// became ready, and waits for the next one.
	EventIdle EventKind = "idle"
	// EventEvicted: an instance was closed (Reason says why).
	EventEvicted EventKind = "evicted"
)

// Reasons an instance is evicted.
const (
	ReasonKeepAlive = "keep-alive" // the keep-alive policy evicted it
	ReasonUnhealthy = "unhealthy"  // it trapped, timed out, or its process died
	ReasonRetired   = "retired"    // its function version was replaced or deleted
	ReasonClosed    = "closed"     // the Manager is closing
)

// Event is one step of an instance's life.
type Event struct {
	Kind EventKind `json:"kind"`
	Time time.Time `json:"time"`
	// Function is the function's reference (Qualify): its name, prefixed
	// by its namespace outside the default one.
	Function string `json:"function"`
	Version  string `json:"version"`
	Instance string `json:"instance"`
	// Phases is the cold start of a created instance.
	Phases Phases `json:"phases,omitzero"`
	// Waited is, on a busy event, how long the call waited for the
	// instance to finish starting (Result.StartWait).
	Waited time.Duration `json:"waited,omitempty"`
	// Memory is, on created and idle events, the bytes the instance holds
	// when its runtime can tell (see MemoryReporter); zero otherwise.
	Memory int64 `json:"memory,omitempty"`
	// Reason explains an eviction.
	Reason string `json:"reason,omitempty"`
	// Err is why a start failed, or what made an instance unhealthy.
	Err error `json:"-"`
	// Error is Err's message, for JSON.
	Error string `json:"error,omitempty"`
}

// Observer receives instance lifecycle events. Observe is called
// synchronously on the call path (busy and idle happen for every call), so
// it must be fast and must not block or call back into the Manager.
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Event)

func (f ObserverFunc) Observe(e Event) { f(e) }

// eventLog keeps the newest lifecycle events of one function, so that the
// API and CLI can show an instance's history. Busy and idle events are far
// more frequent than the others; they are kept in their own ring so that a
// burst of calls does not push creations and evictions out.
type eventLog struct {
	mu        sync.Mutex
	lifecycle ring
	activity  ring
}

type ring struct {
	buf  []Event
	next int
	full bool
}

func (r *ring) add(e Event, size int) {
	if r.buf == nil {
		r.buf = make([]Event, size)
	}
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

func (r *ring) appendTo(out []Event) []Event {
	if r.full {
		out = append(out, r.buf[r.next:]...)
	}
	return append(out, r.buf[:r.next]...)
}

const (
	lifecycleEventsKept = 256
	activityEventsKept  = 256
)

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Kind == EventBusy || e.Kind == EventIdle {
		l.activity.add(e, activityEventsKept)
	} else {
		l.lifecycle.add(e, lifecycleEventsKept)
	}
}

// events returns the kept events in time order.
func (l *eventLog) events() []Event {
	l.mu.Lock()
	out := l.lifecycle.appendTo(nil)
	out = l.activity.appendTo(out)
	l.mu.Unlock()
	sortEvents(out)
	return out
}

func sortEvents(es []Event) {
	// Insertion sort: the two rings are each sorted already, and the
	// slices are short.
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].Time.Before(es[j-1].Time); j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}
