package store

import (
	"context"
	"time"
)

// LoggedEvent is one CloudEvent of the event log. Event is the event in
// structured mode (JSON); the other fields are copies of its attributes,
// kept as columns so that the log can be filtered without decoding it.
type LoggedEvent struct {
	// Seq is the event's position in the log, assigned by AppendEvents:
	// positions grow in the order appends commit, so a reader that has
	// seen every event up to n never later finds a new event below n.
	Seq    int64
	ID     string
	Source string
	Type   string
	// Time is the event's time attribute, zero when it has none.
	Time time.Time
	// ReceivedAt is when Baton accepted the event.
	ReceivedAt time.Time
	Event      []byte
	// Duplicate is set by AppendEvents on events whose source and id were
	// logged before; Seq is then the position of the first one.
	Duplicate bool
}

// EventFilter selects events of the log. Zero fields match all.
type EventFilter struct {
	Type   string
	Source string
	// After selects events whose Seq is greater.
	After int64
	// Limit caps the page; implementations apply a default of 100 and a
	// maximum of 1000.
	Limit int
}

// Trigger starts invocations of a workflow when something happens outside
// it: an HTTP request to a hook, a cron slot, a NATS message, an MQTT
// message.
type Trigger struct {
	Name      string
	Namespace string
	Workflow  string
	// Kind is http, cron, nats or mqtt; Spec is respectively the hook's
	// path, the cron expression, the subject and the topic.
	Kind string
	Spec string
	// NextRun is when a cron trigger's next slot is due (zero for other
	// kinds); LastRun and LastInvocation describe the last slot started.
	NextRun        time.Time
	LastRun        time.Time
	LastInvocation string
	CreatedAt      time.Time
}

// EventLog is the durable log of the CloudEvents Baton accepted, the
// positions of its consumers, and the triggers. The stores of this module
// implement it next to Store.
type EventLog interface {
	// AppendEvents adds events to the log in one transaction and returns
	// once they are durable. An event whose source and id are in the log
	// already is not added again: it is marked Duplicate and given the
	// first one's Seq, which makes redelivery harmless.
	AppendEvents(ctx context.Context, events []*LoggedEvent) error
	// ListEvents returns events in log order.
	ListEvents(ctx context.Context, f EventFilter) ([]*LoggedEvent, error)
	// LastEventSeq is the position of the newest event, 0 for none.
	LastEventSeq(ctx context.Context) (int64, error)

	// EventCursor returns a consumer's stored position, storing initial
	// first when it has none: the first call fixes it, every later call
	// (after a restart too) finds the same value.
	EventCursor(ctx context.Context, name string, initial int64) (int64, error)
	// AdvanceEventCursor moves a consumer's position from one value to
	// another, only if it still is from; it reports whether it did.
	AdvanceEventCursor(ctx context.Context, name string, from, to int64) (bool, error)
	// DeleteEventCursors removes the positions whose names start with
	// prefix.
	DeleteEventCursors(ctx context.Context, prefix string) error

	// CreateTrigger stores a trigger; ErrConflict when the name is taken.
	CreateTrigger(ctx context.Context, t *Trigger) error
	GetTrigger(ctx context.Context, name string) (*Trigger, error)
	// ListTriggers returns every trigger ordered by name.
	ListTriggers(ctx context.Context) ([]*Trigger, error)
	// DeleteTrigger removes a trigger; ErrNotFound when there is none.
	DeleteTrigger(ctx context.Context, name string) error
	// AdvanceTrigger stores t's NextRun, LastRun and LastInvocation if
	// the stored NextRun is still from, like AdvanceSchedule.
	AdvanceTrigger(ctx context.Context, t *Trigger, from time.Time) (bool, error)
}
